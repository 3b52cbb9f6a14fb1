// The softmax steps of attention_softmax_tile.h in the baseline's 16-lane vectors (vec16.h: two
// 8-lane halves, AVX2 registers under the default -march); softmax_tile_avx512.cpp is the AVX-512 twin.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "attention_vec.h"
#include "cpu_kernels.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

// Online softmax (FlashAttention-2): folds the tile into each row's running max and sum, replaces
// the scores by exp(s - new max) and returns in alpha the factor that rescales the row's output so
// far. A row with no allowed key yet keeps max -inf and gets zeros (never exp(-inf - -inf)).
// Row sums stay 16-lane vectors (row_sum16, 16 floats a row), reduced once at the end; the
// rescale factors of 16 rows take one vector exp. row_max, alpha: multiples of 16 floats.
void online_softmax_tile_avx2(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                              float* alpha) {
  const f32x16 neg_inf = splat16(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = s + r * lds;
    f32x16 mx = neg_inf;
    for (int64_t c = 0; c < cols; c += kLanes) mx = max16(mx, load16(row + c));
    alpha[r] = std::max(row_max[r], tree_max16(mx));  // the new max, for now
  }
  for (int64_t r = 0; r < rows; r += kLanes) {
    const f32x16 m_old = load16(row_max + r), m_new = load16(alpha + r);
    // rows still without an allowed key (new max -inf) keep factor 1, never exp(-inf - -inf)
    store16(alpha + r, select16(less16(neg_inf, m_new), exp16(m_old - m_new), splat16(1.f)));
    store16(row_max + r, m_new);
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    const f32x16 m = splat16(row_max[r]);
    if (row_max[r] == neg_inf[0]) {
      for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, splat16(0.f));
      continue;
    }
    f32x16 sum = load16(row_sum16 + r * kLanes) * alpha[r];
    for (int64_t c = 0; c < cols; c += kLanes) {
      const f32x16 e = exp16(load16(row + c) - m);
      store16(row + c, e);
      sum += e;
    }
    store16(row_sum16 + r * kLanes, sum);
  }
}

// Final probabilities from the row statistics: p = exp((s - m) - log_sum), rows with m = -inf are 0.
// s - m comes first: it is exact where s and m are close, even where m itself is huge (-1e9).
void probabilities_from_stats_avx2(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                   const float* log_sum) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    if (m[r] == neg_inf) {
      for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, splat16(0.f));
      continue;
    }
    const f32x16 m16 = splat16(m[r]), l16 = splat16(log_sum[r]);
    for (int64_t c = 0; c < cols; c += kLanes) store16(row + c, exp16((load16(row + c) - m16) - l16));
  }
}

}  // namespace cpu
}  // namespace maskattn
