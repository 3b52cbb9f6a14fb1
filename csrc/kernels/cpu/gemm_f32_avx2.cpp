// The fp32 tile product on AVX2 + FMA: 8-lane ymm registers, blocks of 6 rows x 16 columns
// (12 accumulators, 2 B vectors and one broadcast A value: 15 of the 16 registers).
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace maskattn {
namespace cpu {
namespace {

struct Avx2Vec {
  using reg = __m256;
  static constexpr int kLanes = 8, kRows = 6, kMaxVecs = 2;
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static inline reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn

#include "gemm_f32_body.h"

namespace maskattn {
namespace cpu {

void gemm_f32_avx2(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                   int64_t ldc, GemmInto into, const float* row_scale) {
  gemm_f32_tile<Avx2Vec>(m, n, K, a, b, ldb, c, ldc, into, row_scale);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
