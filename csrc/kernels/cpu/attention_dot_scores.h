// Scores by dot products along the head dimension, for problems with only a few query rows per
// kv head (decoding). The forward and the backward both use this one routine, so the backward's
// P = exp(S - lse) recomputes bit for bit the scores the forward summed (a single allowed key
// then gets probability exactly 1, as in torch).
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_vec.h"

namespace maskattn {
namespace cpu {

constexpr int64_t kDotProductRows = 8;  // above this, broadcasting K into 16 row lanes is cheaper

// Whether a problem's scores are computed by dot_product_scores (decided from the shapes alone).
inline bool scores_by_dot_products(const AttentionFwdParams& p) {
  return (p.heads / p.kv_heads) * p.q_len <= kDotProductRows && p.head_dim % kLanes == 0;
}

// s[j * s_key + r * s_row] = q_r . k_j for rows r < rows and keys j < n; d a multiple of 16.
// Keys go in blocks of 16 whose sums are reduced together, then one by one, always counted from
// the first key given: callers pass the same tile starts in the forward and the backward.
inline void dot_product_scores(const float* q, int64_t ldq, int64_t rows, const float* k, int64_t ldk, int64_t n,
                               int64_t d, float* s, int64_t s_row, int64_t s_key) {
  const int64_t nd = d / kLanes;
  int64_t j0 = 0;
  for (; j0 + kLanes <= n; j0 += kLanes)
    for (int64_t r = 0; r < rows; ++r) {
      f32x16 acc[kLanes];
      for (int jj = 0; jj < kLanes; ++jj) acc[jj] = splat16(0.f);
      for (int64_t c = 0; c < nd; ++c) {
        const f32x16 qv = load16(q + r * ldq + c * kLanes);
        for (int jj = 0; jj < kLanes; ++jj) acc[jj] += qv * load16(k + (j0 + jj) * ldk + c * kLanes);
      }
      const f32x16 sums = sum_lanes_of_16(acc);
      for (int jj = 0; jj < kLanes; ++jj) s[(j0 + jj) * s_key + r * s_row] = sums[jj];
    }
  for (; j0 < n; ++j0)
    for (int64_t r = 0; r < rows; ++r) {
      f32x16 acc = splat16(0.f);
      for (int64_t c = 0; c < nd; ++c) acc += load16(q + r * ldq + c * kLanes) * load16(k + j0 * ldk + c * kLanes);
      s[j0 * s_key + r * s_row] = tree_sum16(acc);
    }
}

}  // namespace cpu
}  // namespace maskattn
