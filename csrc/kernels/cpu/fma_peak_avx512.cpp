// fma_peak.h on AVX-512F (16-lane zmm FMAs); called only where cpu_isa.h found AVX-512.
#include <immintrin.h>

#include "fma_peak.h"

#pragma GCC push_options
#pragma GCC target("avx512f,fma")

namespace maskattn {
namespace cpu {

// 24 chains of 32 zmm registers: two 512-bit FMA pipes x latency 4 (Intel) with room to spare
double fma_chains_avx512(int64_t rounds, float* sink) {
  constexpr int kChains = 24;
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * float(c));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t r = 0; r < rounds; ++r)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  *sink = _mm512_reduce_add_ps(sum);
  return 2.0 * 16 * kChains * double(rounds);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
