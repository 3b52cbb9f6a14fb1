// The fp32 tile product on AVX-512F: 16-lane zmm registers, blocks of 6 rows x up to 64 columns
// (24 accumulators, 4 B vectors and one broadcast A value of the 32 registers).
// Called only where cpu_isa.h found AVX-512 (and the OS saving its state).
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")

#include "gemm_avx512_accumulators.h"

namespace maskattn {
namespace cpu {
namespace {

struct Avx512F32 : Avx512Accumulators {
  using AElem = float;
  using BElem = float;
  using AVec = reg;
  using BVec = reg;
  static constexpr int kKStep = 1, kBStride = kLanes;
  static inline BVec load_b(const float* p) { return _mm512_loadu_ps(p); }
  static inline AVec broadcast_a(const float* p) { return _mm512_set1_ps(*p); }
  static inline reg dot(AVec a, BVec b, reg acc) { return _mm512_fmadd_ps(a, b, acc); }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn

#include "gemm_tile_body.h"

namespace maskattn {
namespace cpu {

void gemm_f32_avx512(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                     int64_t ldc, GemmInto into, const float* row_scale) {
  gemm_tile_blocked<Avx512F32>(m, n, K, a.p, a.row_stride, a.k_stride, b, ldb, c, ldc, into, row_scale, 1.f);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
