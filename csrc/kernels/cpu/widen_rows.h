// Rows of an input in their stored type (fp32, bf16, fp16), read 8 elements at a time as floats
// straight into registers: kernels that stream K and V once (decoding) read them as stored,
// without a widened copy. Widening is exact, so every type gives what its fp32 copy would.
#pragma once
#include <cstdint>

#include "../../scalar_kind.h"
#include "convert16.h"

namespace maskattn {
namespace cpu {

struct RowsF32 {
  const float* p;
  f32x8 load(int64_t at) const { return load8(p + at); }
};

struct RowsBf16 {
  const uint16_t* p;
  f32x8 load(int64_t at) const { return bf16x8_to_float(load_u16x8(p + at)); }
};

struct RowsF16 {
  const uint16_t* p;
  f32x8 load(int64_t at) const { return half_x8_to_float(load_u16x8(p + at)); }
};

// Calls f with the rows of `kind` starting `offset` elements into base (a 16-bit type other than
// bf16 is fp16).
template <class F>
inline void with_rows_of(ScalarKind kind, const void* base, int64_t offset, F&& f) {
  if (kind == ScalarKind::Float32) {
    f(RowsF32{static_cast<const float*>(base) + offset});
  } else if (kind == ScalarKind::BFloat16) {
    f(RowsBf16{static_cast<const uint16_t*>(base) + offset});
  } else {
    f(RowsF16{static_cast<const uint16_t*>(base) + offset});
  }
}

}  // namespace cpu
}  // namespace maskattn
