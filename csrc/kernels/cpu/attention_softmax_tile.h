// Softmax steps on one tile of scaled, masked scores, in fp32: the entries of the selected CPU
// path (cpu_kernels.h; softmax_tile_avx2.cpp, softmax_tile_avx512.cpp).
#pragma once
#include <cstdint>

#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

// Online softmax (FlashAttention-2): folds the tile into each row's running max and sum, replaces
// the scores by exp(s - new max) and returns in alpha the factor that rescales the row's output so
// far. A row with no allowed key yet keeps max -inf and gets zeros (never exp(-inf - -inf)).
// Row sums stay 16-lane vectors (row_sum16, 16 floats a row), reduced once at the end; the
// rescale factors of 16 rows take one vector exp. row_max, alpha: multiples of 16 floats; cols a
// multiple of 16.
inline void online_softmax_tile(int64_t rows, int64_t cols, float* s, int64_t lds, float* row_max, float* row_sum16,
                                float* alpha) {
  cpu_kernels().online_softmax_tile(rows, cols, s, lds, row_max, row_sum16, alpha);
}

// Final probabilities from the row statistics: p = exp((s - m) - log_sum), rows with m = -inf are 0.
// s - m comes first: it is exact where s and m are close, even where m itself is huge (-1e9).
inline void probabilities_from_stats(int64_t rows, int64_t cols, float* s, int64_t lds, const float* m,
                                     const float* log_sum) {
  cpu_kernels().probabilities_from_stats(rows, cols, s, lds, m, log_sum);
}

}  // namespace cpu
}  // namespace maskattn
