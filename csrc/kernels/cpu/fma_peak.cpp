// fma_peak.h on the x86-64-v3 baseline (8-lane ymm FMAs), and the run over all threads.
#include "fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <vector>

#include "cpu_isa.h"

namespace maskattn {
namespace cpu {

// 12 chains of 16 ymm registers: two FMA pipes x latency up to 5 cycles (Zen 1-4, Intel: 4)
double fma_chains_avx2(int64_t rounds, float* sink) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(0.001f * float(c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t r = 0; r < rounds; ++r)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  *sink = lanes[0];
  return 2.0 * 8 * kChains * double(rounds);
}

double fma_peak_run(int64_t rounds) {
  const bool wide = selected_cpu_isa() != CpuIsa::Avx2;
  const int threads = omp_get_max_threads();
  std::vector<float> sinks(threads * 16);  // a cache line apart
  std::vector<double> flops(threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    flops[t] = wide ? fma_chains_avx512(rounds, &sinks[t * 16]) : fma_chains_avx2(rounds, &sinks[t * 16]);
  }
  double total = 0.0;
  for (double f : flops) total += f;
  return total;
}

}  // namespace cpu
}  // namespace maskattn
