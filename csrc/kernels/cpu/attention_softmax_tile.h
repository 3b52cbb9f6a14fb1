// Softmax steps on one tile of scaled, masked scores, in fp32 with the vectorised exp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "vec16.h"

namespace maskattn {
namespace cpu {

// Online softmax (FlashAttention-2): folds the tile into each row's running max and sum, replaces
// the scores by exp(s - new max) and returns in alpha the factor that rescales the row's output so
// far. A row with no allowed key yet keeps max -inf and gets zeros (never exp(-inf - -inf)).
inline void online_softmax_tile(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max,
                                float* row_sum, float* alpha) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    f32x16 mx = splat16(neg_inf);
    for (int64_t c = 0; c < cols; c += kLanes) mx = max16(mx, load16(row + c));
    const float m_new = std::max(row_max[r], reduce_max16(mx));
    if (m_new == neg_inf) {
      for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, splat16(0.f));
      alpha[r] = 1.f;
      continue;
    }
    alpha[r] = exp1(row_max[r] - m_new);  // 0 when the old max was -inf
    const f32x16 m16 = splat16(m_new);
    f32x16 sum = splat16(0.f);
    for (int64_t c = 0; c < cols; c += kLanes) {
      const f32x16 e = exp16(load16(row + c) - m16);
      store16(row + c, e);
      sum += e;
    }
    row_sum[r] = row_sum[r] * alpha[r] + reduce_sum16(sum);
    row_max[r] = m_new;
  }
}

// Final probabilities from the saved log-sum-exp: p = exp(s - lse); rows with lse = -inf are 0.
inline void probabilities_from_lse(int64_t rows, int64_t cols, float* s, int64_t lds, const float* lse) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    if (lse[r] == neg_inf) {
      for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, splat16(0.f));
      continue;
    }
    const f32x16 l16 = splat16(lse[r]);
    for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, exp16(load16(row + c) - l16));
  }
}

}  // namespace cpu
}  // namespace maskattn
