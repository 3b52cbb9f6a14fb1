// Scores by dot products along the head dimension, for problems with only a few query rows per
// kv head (decoding). The forward and the backward both use this one routine, so the backward's
// P = exp(S - lse) recomputes bit for bit the scores the forward summed (a single allowed key
// then gets probability exactly 1, as in torch).
#pragma once
#include <algorithm>
#include <cstdint>

#include "../attention.h"
#include "attention_vec.h"
#include "widen_rows.h"

namespace maskattn {
namespace cpu {

constexpr int64_t kDotProductRows = 8;  // above this, broadcasting K into 16 row lanes is cheaper

// Whether a problem's scores are computed by dot_product_scores (decided from the shapes alone).
inline bool scores_by_dot_products(const AttentionFwdParams& p) {
  return (p.heads / p.kv_heads) * p.q_len <= kDotProductRows && p.head_dim % 8 == 0;
}

// q_r . k (d floats; d a multiple of 8) for M rows of q as 8 partial sums each (out[r * 8]): the
// key's row read once, in order, each 8 floats widened once for all rows; two chains a row over
// the halves of each 16 floats.
template <int M, class Rows>
inline void key_dots(const float* q, int64_t ldq, Rows k, int64_t at, int64_t d, f32x8* out) {
  f32x8 x[M], y[M];
  for (int r = 0; r < M; ++r) x[r] = y[r] = f32x8{};
  int64_t c = 0;
  for (; c + 16 <= d; c += 16) {
    const f32x8 kx = k.load(at + c), ky = k.load(at + c + 8);
    for (int r = 0; r < M; ++r) {
      x[r] = fma8(load8(q + r * ldq + c), kx, x[r]);
      y[r] = fma8(load8(q + r * ldq + c + 8), ky, y[r]);
    }
  }
  if (c < d) {
    const f32x8 kx = k.load(at + c);
    for (int r = 0; r < M; ++r) x[r] = fma8(load8(q + r * ldq + c), kx, x[r]);
  }
  for (int r = 0; r < M; ++r) out[r * 8] = x[r] + y[r];
}

// key_dots for any rows <= 4 (M a compile-time count keeps the chains in registers).
template <class Rows>
inline void key_dots_upto4(const float* q, int64_t ldq, int64_t rows, Rows k, int64_t at, int64_t d, f32x8* out) {
  switch (rows) {
    case 1: key_dots<1>(q, ldq, k, at, d, out); break;
    case 2: key_dots<2>(q, ldq, k, at, d, out); break;
    case 3: key_dots<3>(q, ldq, k, at, d, out); break;
    default: key_dots<4>(q, ldq, k, at, d, out); break;
  }
}

// s[j * s_key + r * s_row] = q_r . k_j for rows r < rows and keys j < n (k_j at k.load(j * ldk),
// widen_rows.h); d a multiple of 8. Keys go in blocks of 8 whose partial sums are reduced
// together, then the last keys one by one; blocks are counted from the first key given (callers
// pass the same tile starts in the forward and the backward). Each key's row is read whole before
// the next, for up to 4 rows at once: interleaving the rows of a block (one accumulator per key,
// a step of d at a time) streams K from memory at under half the rate. Every score is the same
// sum of the same products whatever the number of rows.
template <class Rows>
inline void dot_product_scores(const float* q, int64_t ldq, int64_t rows, Rows k, int64_t ldk, int64_t n, int64_t d,
                               float* s, int64_t s_row, int64_t s_key) {
  constexpr int kKeys = 8, kRows = 4;
  f32x8 acc[kRows * kKeys];  // acc[r * 8 + jj]: row r, key jj of the block
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t m = std::min<int64_t>(kRows, rows - r0);
    const float* qr = q + r0 * ldq;
    int64_t j0 = 0;
    for (; j0 + kKeys <= n; j0 += kKeys) {
      for (int jj = 0; jj < kKeys; ++jj) key_dots_upto4(qr, ldq, m, k, (j0 + jj) * ldk, d, acc + jj);
      for (int64_t r = 0; r < m; ++r) {
        const f32x8 sums = sum_lanes_of_8(acc + r * kKeys);
        for (int jj = 0; jj < kKeys; ++jj) s[(j0 + jj) * s_key + (r0 + r) * s_row] = sums[jj];
      }
    }
    for (; j0 < n; ++j0) {
      key_dots_upto4(qr, ldq, m, k, j0 * ldk, d, acc);
      for (int64_t r = 0; r < m; ++r) s[j0 * s_key + (r0 + r) * s_row] = tree_sum16({acc[r * kKeys], f32x8{}});
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
