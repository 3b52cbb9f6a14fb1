// Row conversions between the inputs' element types (fp32, fp16, bf16) and fp32 scratch.
#pragma once
#include <cstdint>
#include <cstring>

#include "../../scalar_kind.h"
#include "convert16.h"
#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

inline float load_element(ScalarKind kind, const void* base, int64_t offset) {
  switch (kind) {
    case ScalarKind::Float16: return half_bits_to_float(static_cast<const uint16_t*>(base)[offset]);
    case ScalarKind::BFloat16: return bf16_bits_to_float(static_cast<const uint16_t*>(base)[offset]);
    default: return static_cast<const float*>(base)[offset];
  }
}

inline void store_element(ScalarKind kind, void* base, int64_t offset, float x) {
  switch (kind) {
    case ScalarKind::Float16: static_cast<uint16_t*>(base)[offset] = float_to_half_bits(x); break;
    case ScalarKind::BFloat16: static_cast<uint16_t*>(base)[offset] = float_to_bf16_bits(x); break;
    default: static_cast<float*>(base)[offset] = x; break;
  }
}

// dst[0:n] = mul * src[offset : offset + n], dst[n:n_pad] = 0.
inline void load_row_f32(ScalarKind kind, const void* base, int64_t offset, int64_t n, float mul, float* dst,
                         int64_t n_pad) {
  int64_t c = 0;
  const LoadRow16Fn wide = cpu_kernels().load_row16;
  if (wide != nullptr && (kind == ScalarKind::Float16 || kind == ScalarKind::BFloat16)) {
    wide(kind, static_cast<const uint16_t*>(base) + offset, n, mul, dst);
    c = n;
  } else if (kind == ScalarKind::Float32) {
    const float* src = static_cast<const float*>(base) + offset;
    for (; c + kLanes <= n; c += kLanes) store16(dst + c, load16(src + c) * mul);
  } else if (kind == ScalarKind::Float16) {
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
    for (; c + 8 <= n; c += 8) store8(dst + c, half_x8_to_float(load_u16x8(src + c)) * mul);
  } else if (kind == ScalarKind::BFloat16) {
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
    for (; c + 8 <= n; c += 8) store8(dst + c, bf16x8_to_float(load_u16x8(src + c)) * mul);
  }
  for (; c < n; ++c) dst[c] = load_element(kind, base, offset + c) * mul;
  for (; c < n_pad; ++c) dst[c] = 0.f;
}

// dst[offset : offset + n] = mul * src[0:n], rounded to the output type.
inline void store_row(ScalarKind kind, const float* src, int64_t n, float mul, void* base, int64_t offset) {
  if (kind == ScalarKind::Float32) {
    float* dst = static_cast<float*>(base) + offset;
    int64_t c = 0;
    for (; c + kLanes <= n; c += kLanes) store16(dst + c, load16(src + c) * mul);
    for (; c < n; ++c) dst[c] = src[c] * mul;
    return;
  }
  // fp16 / bf16: the selected path's row conversion, or 8 lanes at a time by the branchless
  // conversions and the tail element by element
  uint16_t* dst = static_cast<uint16_t*>(base) + offset;
  if (const StoreRow16Fn wide = cpu_kernels().store_row16) return wide(kind, src, n, mul, dst);
  int64_t c = 0;
  if (kind == ScalarKind::Float16) {
    for (; c + 8 <= n; c += 8) store_u16x8(dst + c, float_to_half_x8(load8(src + c) * mul));
  } else {
    for (; c + 8 <= n; c += 8) store_u16x8(dst + c, float_to_bf16x8(load8(src + c) * mul));
  }
  for (; c < n; ++c) store_element(kind, base, offset + c, src[c] * mul);
}

inline void zero_row(ScalarKind kind, void* base, int64_t offset, int64_t n) {
  const int64_t bytes = kind == ScalarKind::Float32 ? 4 : 2;
  std::memset(static_cast<char*>(base) + offset * bytes, 0, (size_t)(n * bytes));
}

}  // namespace cpu
}  // namespace maskattn
