// The softmax steps of attention_softmax_tile.h, and masked_softmax's exp pass (softmax_rows.h), on
// AVX-512F: one zmm register per 16 scores, the same operations in the same order as the
// baseline's two 8-lane halves (vec16.h), so both paths give the same probabilities. Called only where cpu_isa.h found AVX-512 (and the OS saving its
// state); everything but the two entries has internal linkage.
// GCC 12's AVX-512 intrinsics warn of their own _mm512_undefined_*() merge sources (GCC bug
// 105593, fixed in 13), silenced here only
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"
#include "vec16.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,fma")

namespace maskattn {
namespace cpu {
namespace {

constexpr int kLanes512 = 16;

inline __m512 splat_avx512(float x) { return _mm512_set1_ps(x); }

// exp16 of vec16.h: clamp to [-87, 88] (a NaN clamps to -87, as there), n = round(x log2 e),
// r = x - n ln2 in two steps, a degree-6 polynomial, times 2^n; 0 below -87.
inline __m512 exp_avx512(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, splat_avx512(-87.0f)), splat_avx512(88.0f));
  const __m512 magic = splat_avx512(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, splat_avx512(1.44269504088896341f), magic), magic);
  __m512 r = _mm512_fnmadd_ps(n, splat_avx512(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, splat_avx512(-2.12194440e-4f), r);
  __m512 p = splat_avx512(kExpPoly[0]);
  for (int i = 1; i < kExpPolyTerms; ++i) p = _mm512_fmadd_ps(p, r, splat_avx512(kExpPoly[i]));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 result = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
  const __mmask16 below = _mm512_cmp_ps_mask(x, splat_avx512(-87.0f), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(below, result, _mm512_setzero_ps());
}

// Largest lane, halving as attention_vec.h's tree_max16 does (same operand order: the same lane
// wins among equal values and NaN).
inline float tree_max_avx512(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v), hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 a = _mm256_max_ps(lo, hi);
  const __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 d = _mm_max_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_max_ss(d, _mm_movehdup_ps(d)));
}

}  // namespace

void online_softmax_tile_avx512(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                                float* alpha) {
  const float neg_inf = -__builtin_inff();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = s + r * lds;
    __m512 mx = splat_avx512(neg_inf);
    for (int64_t c = 0; c < cols; c += kLanes512) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + c));
    const float m = tree_max_avx512(mx);
    alpha[r] = row_max[r] < m ? m : row_max[r];  // the new max, for now (std::max's order)
  }
  for (int64_t r = 0; r < rows; r += kLanes512) {
    const __m512 m_old = _mm512_loadu_ps(row_max + r), m_new = _mm512_loadu_ps(alpha + r);
    // rows still without an allowed key (new max -inf) keep factor 1
    const __mmask16 live = _mm512_cmp_ps_mask(splat_avx512(neg_inf), m_new, _CMP_LT_OQ);
    const __m512 rescale = exp_avx512(_mm512_sub_ps(m_old, m_new));
    _mm512_storeu_ps(alpha + r, _mm512_mask_blend_ps(live, splat_avx512(1.f), rescale));
    _mm512_storeu_ps(row_max + r, m_new);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    if (row_max[r] == neg_inf) {
      for (int64_t c = 0; c < cols; c += kLanes512) _mm512_storeu_ps(row + c, _mm512_setzero_ps());
      continue;
    }
    const __m512 m = splat_avx512(row_max[r]);
    __m512 sum = _mm512_mul_ps(_mm512_loadu_ps(row_sum16 + r * kLanes512), splat_avx512(alpha[r]));
    for (int64_t c = 0; c < cols; c += kLanes512) {
      const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(row + c), m));
      _mm512_storeu_ps(row + c, e);
      sum = _mm512_add_ps(sum, e);
    }
    _mm512_storeu_ps(row_sum16 + r * kLanes512, sum);
  }
}

void probabilities_from_stats_avx512(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                     const float* log_sum) {
  const float neg_inf = -__builtin_inff();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    if (m[r] == neg_inf) {
      for (int64_t c = 0; c < cols; c += kLanes512) _mm512_storeu_ps(row + c, _mm512_setzero_ps());
      continue;
    }
    const __m512 m16 = splat_avx512(m[r]), l16 = splat_avx512(log_sum[r]);
    for (int64_t c = 0; c < cols; c += kLanes512)
      _mm512_storeu_ps(row + c, exp_avx512(_mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(row + c), m16), l16)));
  }
}

float row_exp_sum_avx512(const float* x, int64_t n, float shift, float* dst) {
  const __m512 m = splat_avx512(shift);
  __m512 sum = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + kLanes512 <= n; j += kLanes512) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
    _mm512_storeu_ps(dst + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < n) {  // the tail's missing lanes read as -inf: exp gives them 0
    const __mmask16 tail = (__mmask16)((1u << (n - j)) - 1u);
    const __m512 v = _mm512_mask_loadu_ps(splat_avx512(-__builtin_inff()), tail, x + j);
    const __m512 e = exp_avx512(_mm512_sub_ps(v, m));
    _mm512_mask_storeu_ps(dst + j, tail, e);
    sum = _mm512_add_ps(sum, e);
  }
  // lane by lane from lane 0, as vec16.h's reduce_sum16
  alignas(64) float lanes[kLanes512];
  _mm512_store_ps(lanes, sum);
  float total = 0.f;
  for (int l = 0; l < kLanes512; ++l) total += lanes[l];
  return total;
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
#pragma GCC diagnostic pop
