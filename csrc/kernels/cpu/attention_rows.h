// Row conversions between the inputs' element types (fp32, fp16, bf16) and fp32 scratch.
#pragma once
#include <cstdint>
#include <cstring>

#include "../../scalar_kind.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

typedef uint16_t u16x8 __attribute__((vector_size(16)));

// IEEE half bits -> float without branches, so a row converts in vector registers: the exponent
// and mantissa moved into place and scaled by 2^112 (exact for normal and subnormal halves, unless
// the thread flushes denormal inputs: torch.set_flush_denormal), inf and NaN given the float
// exponent, then the sign.
inline float half_bits_to_float_branchless(uint16_t h) {
  const uint32_t magnitude = (uint32_t)(h & 0x7fffu) << 13;
  float scaled, special;
  const uint32_t special_bits = magnitude | 0x7f800000u;
  std::memcpy(&scaled, &magnitude, sizeof(float));
  std::memcpy(&special, &special_bits, sizeof(float));
  float f = (h & 0x7c00u) == 0x7c00u ? special : scaled * 0x1p112f;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  bits |= (uint32_t)(h & 0x8000u) << 16;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

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
  if (kind == ScalarKind::Float32) {
    const float* src = static_cast<const float*>(base) + offset;
    for (; c + kLanes <= n; c += kLanes) store16(dst + c, load16(src + c) * mul);
  } else if (kind == ScalarKind::Float16) {
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
    for (; c < n; ++c) dst[c] = half_bits_to_float_branchless(src[c]) * mul;  // vectorises
  } else if (kind == ScalarKind::BFloat16) {
    // bf16 is the top half of a float: widen and shift, 16 lanes at a time
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
    for (; c + 8 <= n; c += 8) {
      u16x8 h;
      std::memcpy(&h, src + c, sizeof(h));
      const i32x8 bits = __builtin_convertvector(h, i32x8) << 16;
      const f32x8 x = (f32x8)bits * mul;
      std::memcpy(dst + c, &x, sizeof(x));
    }
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
  for (int64_t c = 0; c < n; ++c) store_element(kind, base, offset + c, src[c] * mul);
}

inline void zero_row(ScalarKind kind, void* base, int64_t offset, int64_t n) {
  const int64_t bytes = kind == ScalarKind::Float32 ? 4 : 2;
  std::memset(static_cast<char*>(base) + offset * bytes, 0, (size_t)(n * bytes));
}

}  // namespace cpu
}  // namespace maskattn
