// The 16-lane row conversions between fp32 and fp16 / bf16 shared by the AVX-512 translation
// units: included after each one's target pragma, in an unnamed namespace, so every unit
// compiles its own copy for its own instructions. Every name says avx512: a copy the compiler
// keeps out of line must still read as a microkernel's (test_cpu_paths checks the binary).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "../../scalar_kind.h"

namespace maskattn {
namespace cpu {
namespace {

// 16 floats -> 16 bf16 bits by integer steps: round to nearest even; a NaN keeps its top bits,
// quiet bit set.
inline __m256i bf16_by_integer_steps_avx512(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet_nan = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet_nan));
}

inline __m256i half_by_unit_avx512(__m512 x) {
  return _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

inline __m512 widen_bf16_avx512(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline __mmask16 live_lanes_avx512(int64_t n, int64_t c) {
  return n - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - c)) - 1);
}

// bf16 rounding by the integer steps, as a type (a functor inlines where a function pointer may not).
struct Bf16IntegerStepsAvx512 {
  __m256i operator()(__m512 x) const { return bf16_by_integer_steps_avx512(x); }
};

// dst[0:n] = mul * src[0:n] rounded to kind, 16 lanes a step (the last one masked).
template <typename ToBf16>
inline void store_row16_steps_avx512(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst,
                                     ToBf16 to_bf16) {
  const __m512 m = _mm512_set1_ps(mul);
  const bool bf16 = kind == ScalarKind::BFloat16;
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 live = live_lanes_avx512(n, c);
    const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(live, src + c), m);
    _mm256_mask_storeu_epi16(dst + c, live, bf16 ? to_bf16(x) : half_by_unit_avx512(x));
  }
}

}  // namespace
}  // namespace cpu
}  // namespace maskattn
