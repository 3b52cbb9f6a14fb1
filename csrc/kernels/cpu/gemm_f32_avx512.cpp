// The fp32 tile product on AVX-512F: 16-lane zmm registers, blocks of 6 rows x up to 64 columns
// (24 accumulators, 4 B vectors and one broadcast A value of the 32 registers).
// Called only where cpu_isa.h found AVX-512 (and the OS saving its state).
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")

namespace maskattn {
namespace cpu {
namespace {

struct Avx512Vec {
  using reg = __m512;
  static constexpr int kLanes = 16, kRows = 6, kMaxVecs = 4;
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static inline reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static inline reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn

#include "gemm_f32_body.h"

namespace maskattn {
namespace cpu {

void gemm_f32_avx512(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                     int64_t ldc, GemmInto into, const float* row_scale) {
  gemm_f32_tile<Avx512Vec>(m, n, K, a, b, ldb, c, ldc, into, row_scale);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
