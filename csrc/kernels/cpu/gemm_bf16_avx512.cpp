// The bf16 tile product on AVX512-BF16: vdpbf16ps multiplies one k-pair of A (broadcast as a
// 32-bit pair) by 16 columns of B pairs and adds both products to 16 fp32 accumulators, so a
// step covers two k. Blocks of 6 rows x up to 64 columns as the fp32 AVX-512 kernel.
// Called only where cpu_isa.h found AVX512_BF16.
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,fma")

#include "gemm_avx512_accumulators.h"

namespace maskattn {
namespace cpu {
namespace {

struct Avx512Bf16Pairs : Avx512Accumulators {
  using AElem = uint16_t;
  using BElem = uint16_t;
  using AVec = __m512bh;
  using BVec = __m512bh;
  static constexpr int kKStep = 2, kBStride = 2 * kLanes;
  // 16 columns x (k, k + 1), 64 bytes
  static inline BVec load_b(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static inline AVec broadcast_a(const uint16_t* p) {
    int32_t pair;
    __builtin_memcpy(&pair, p, sizeof(pair));
    return (__m512bh)_mm512_set1_epi32(pair);
  }
  static inline reg dot(AVec a, BVec b, reg acc) { return _mm512_dpbf16_ps(acc, a, b); }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn

#include "gemm_tile_body.h"

namespace maskattn {
namespace cpu {

void gemm_bf16_avx512(const GemmBf16Args& g) {
  gemm_tile_blocked<Avx512Bf16Pairs>(g.m, g.n, g.k, g.a, g.lda, 1, g.b, g.ldb, g.c, g.ldc, g.into, g.row_scale,
                                     g.alpha);
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
