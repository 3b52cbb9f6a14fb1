// Tile products on AVX2 + FMA: 8-lane ymm registers, blocks of 6 rows x 16 columns (12
// accumulators, 2 B vectors and one broadcast A value: 15 of the 16 registers).
//   fp32 operands: one FMA per k.
//   bf16 operands (B in k-pairs, cpu_kernels.h): each pair widened to two fp32 vectors by a shift
//   and a mask (bf16 is the top half of an fp32), then two FMAs.
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace maskattn {
namespace cpu {
namespace {

struct Avx2Accumulators {
  using reg = __m256;
  static constexpr int kLanes = 8, kRows = 6, kMaxVecs = 2;
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg splat(float x) { return _mm256_set1_ps(x); }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
};

struct Avx2F32 : Avx2Accumulators {
  using AElem = float;
  using BElem = float;
  using AVec = reg;
  using BVec = reg;
  static constexpr int kKStep = 1, kBStride = kLanes;
  static inline BVec load_b(const float* p) { return _mm256_loadu_ps(p); }
  static inline AVec broadcast_a(const float* p) { return _mm256_broadcast_ss(p); }
  static inline reg dot(AVec a, BVec b, reg acc) { return _mm256_fmadd_ps(a, b, acc); }
};

struct Avx2Bf16Pairs : Avx2Accumulators {
  using AElem = uint16_t;
  using BElem = uint16_t;
  struct AVec {
    reg even, odd;
  };
  struct BVec {
    reg even, odd;
  };
  static constexpr int kKStep = 2, kBStride = 2 * kLanes;
  // 8 columns x (k, k + 1): the even k sits in the low 16 bits of each 32-bit lane
  static inline BVec load_b(const uint16_t* p) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(x, 16)),
            _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32((int)0xffff0000u)))};
  }
  static inline AVec broadcast_a(const uint16_t* p) {
    int32_t pair;
    __builtin_memcpy(&pair, p, sizeof(pair));
    const __m256i x = _mm256_set1_epi32(pair);
    return {_mm256_castsi256_ps(_mm256_slli_epi32(x, 16)),
            _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32((int)0xffff0000u)))};
  }
  static inline reg dot(AVec a, BVec b, reg acc) {
    return _mm256_fmadd_ps(a.odd, b.odd, _mm256_fmadd_ps(a.even, b.even, acc));
  }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn

#include "gemm_tile_body.h"

namespace maskattn {
namespace cpu {

void gemm_f32_avx2(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                   int64_t ldc, GemmInto into, const float* row_scale) {
  gemm_tile_blocked<Avx2F32>(m, n, K, a.p, a.row_stride, a.k_stride, b, ldb, c, ldc, into, row_scale, 1.f);
}

void gemm_bf16_avx2(const GemmBf16Args& g) {
  gemm_tile_blocked<Avx2Bf16Pairs>(g.m, g.n, g.k, g.a, g.lda, 1, g.b, g.ldb, g.c, g.ldc, g.into, g.row_scale,
                                   g.alpha);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
