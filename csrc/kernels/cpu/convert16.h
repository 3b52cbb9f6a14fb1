// fp32 <-> fp16 / bf16 element conversions written without branches, so whole rows convert in
// vector registers (8 lanes at a time) on every instruction set; each gives the same bits as the
// scalar conversions in scalar_kind.h (round to nearest even, overflow to inf, subnormals exact,
// NaN kept as a quiet NaN), except that fp16 widening by F16C quiets a signalling NaN.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "vec16.h"

namespace maskattn {
namespace cpu {

typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));

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

// 8 halves at a time: F16C's vcvtph2ps where the baseline has it (x86-64-v3; exact, and it also
// converts subnormal halves when denormal inputs are flushed; a signalling NaN comes out quieted),
// else as half_bits_to_float_branchless.
inline f32x8 half_x8_to_float(u16x8 h) {
#ifdef __F16C__
  return (f32x8)_mm256_cvtph_ps((__m128i)h);
#else
  const u32x8 x = __builtin_convertvector(h, u32x8);
  const u32x8 magnitude = (x & 0x7fffu) << 13;
  const u32x8 scaled = (u32x8)((f32x8)magnitude * 0x1p112f);
  const u32x8 bits = (x & 0x7c00u) == 0x7c00u ? magnitude | 0x7f800000u : scaled;
  return (f32x8)(bits | ((x & 0x8000u) << 16));
#endif
}

// bf16 is the top half of a float: widen and shift.
inline f32x8 bf16x8_to_float(u16x8 h) {
#ifdef __AVX2__
  // one vpmovzxwd over all 8 (GCC splits the generic conversion into two 4-lane halves)
  return (f32x8)_mm256_slli_epi32(_mm256_cvtepu16_epi32((__m128i)h), 16);
#else
  return (f32x8)(__builtin_convertvector(h, u32x8) << 16);
#endif
}

// float -> bf16 bits, round to nearest even; a NaN keeps its top bits with the quiet bit set.
inline u16x8 float_to_bf16x8(f32x8 x) {
  const u32x8 bits = (u32x8)x;
  const u32x8 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const u32x8 quiet_nan = (bits >> 16) | 0x40u;
  return __builtin_convertvector((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded, u16x8);
}

// float -> IEEE half bits, round to nearest even. Halves that are normal: rebias the exponent and
// round at bit 13. Subnormal ones (below 2^-14): adding 0.5f puts bit 0 of the float's mantissa at
// 2^-24, the half's subnormal unit, so the adder aligns and rounds (to nearest even in the default
// rounding mode; inputs a thread flushes as denormals round to 0 either way). From 2^16 up: inf,
// or the quiet NaN.
inline u16x8 float_to_half_x8(f32x8 x) {
  const u32x8 bits = (u32x8)x;
  const u32x8 sign = (bits >> 16) & 0x8000u;
  const u32x8 a = bits & 0x7fffffffu;
  const u32x8 normal = (a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const u32x8 subnormal = (u32x8)((f32x8)a + 0.5f) - 0x3f000000u;
  const u32x8 special = a > 0x7f800000u ? u32x8{} + 0x7e00u : u32x8{} + 0x7c00u;
  u32x8 h = a < 0x38800000u ? subnormal : normal;
  h = a >= 0x47800000u ? special : h;
  return __builtin_convertvector(h | sign, u16x8);
}

inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof(v)); }
inline u16x8 load_u16x8(const uint16_t* p) {
  u16x8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store_u16x8(uint16_t* p, u16x8 v) { std::memcpy(p, &v, sizeof(v)); }

}  // namespace cpu
}  // namespace maskattn
