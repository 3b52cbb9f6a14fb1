// Applies the MaskSpec to one tile of scaled scores (only Partial tiles come here).
//
// The band (lengths, causal, window) becomes a per-row key interval applied with a vector
// select; element-wise parts (key_mask, explicit masks) become a bias row (0, -inf or the
// additive value), built once per tile when it does not depend on the query row.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "../../mask_spec.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

inline float element_bias(const MaskSpec& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (!m.allowed_in_range(b, h, i, j)) return -std::numeric_limits<float>::infinity();
  return m.additive(b, h, i, j);
}

inline i32x16 lane_index16() { return i32x16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; }

// s (rows x cols, row stride lds) holds the scores of rows i0.. and keys j0..; cols is a multiple
// of 16 and may run past k_len (those keys are masked). bias: scratch of cols floats.
inline void mask_score_tile(const MaskSpec& m, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0,
                            int64_t cols, int64_t k_len, float* s, int64_t lds, float* bias) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const bool elementwise = m.has_elementwise();
  const bool row_varying = m.mask != nullptr && m.mask_stride_i != 0;
  const int64_t in_memory = std::min(cols, k_len - j0);  // keys past k_len must not be read
  if (elementwise && !row_varying) {
    for (int64_t c = 0; c < in_memory; ++c) bias[c] = element_bias(m, b, h, i0, j0 + c);
    for (int64_t c = in_memory; c < cols; ++c) bias[c] = neg_inf;
  }
  const f32x16 neg_inf16 = splat16(neg_inf);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    const KeyRange kr = m.key_range(b, i);
    const int64_t lo = std::min(std::max<int64_t>(kr.begin - j0, 0), cols);
    const int64_t hi = std::max(std::min(kr.end - j0, cols), lo);
    if (!elementwise && lo == 0 && hi == cols) continue;  // row wholly inside the band
    if (elementwise && row_varying)
      for (int64_t c = lo; c < hi; ++c) bias[c] = element_bias(m, b, h, i, j0 + c);
    float* row = s + r * lds;
    const i32x16 lo16 = i32x16{} + (int32_t)lo, hi16 = i32x16{} + (int32_t)hi;
    for (int64_t c = 0; c < cols; c += kLanes) {
      const i32x16 idx = lane_index16() + (int32_t)c;
      const i32x16 keep = (idx >= lo16) & (idx < hi16);
      f32x16 x = load16(row + c);
      if (elementwise) {
        // outside [lo, hi) the row-varying bias is stale, but those lanes are dropped below
        x += load16(bias + c);
      }
      store16(row + c, keep ? x : neg_inf16);
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
