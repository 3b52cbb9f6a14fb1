// Applies the MaskSpec to one tile of scaled scores (only Partial tiles come here).
//
// The band (lengths, causal, window) becomes a per-row key interval applied with a vector
// select; element-wise parts (key_mask, segments, explicit masks) become a bias row (0, -inf or
// the additive value), built once per tile for the parts that do not depend on the query row.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../../mask_spec.h"
#include "attention_rows.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

inline float key_mask_bias(const MaskSpec& m, int64_t b, int64_t j) {
  return m.key_allowed(b, j) ? 0.f : -std::numeric_limits<float>::infinity();
}

// Explicit mask of row i over keys j0 + [lo, hi) as a bias: 0 / -inf (bool) or the additive
// value. Rows with contiguous keys (every broadcast pattern of a materialised mask: (B,1,L,L),
// (1,1,L,L), (B,1,1,L), (L,L)) are read by one loop per dtype that vectorises; a mask broadcast
// over keys is one value; other layouts ask MaskSpec element by element.
inline void explicit_mask_row(const MaskSpec& m, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t lo, int64_t hi,
                              float* out) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t base = m.mask_offset(b, h, i, j0);
  if (m.mask_stride_j == 0) {
    const float v = m.mask_kind == ScalarKind::Bool ? (m.bool_mask_allows(b, h, i, j0) ? 0.f : neg_inf)
                                                    : m.additive(b, h, i, j0);
    std::fill(out + lo, out + hi, v);
    return;
  }
  if (m.mask_stride_j != 1) {
    for (int64_t c = lo; c < hi; ++c)
      out[c] = m.mask_kind == ScalarKind::Bool ? (m.bool_mask_allows(b, h, i, j0 + c) ? 0.f : neg_inf)
                                               : m.additive(b, h, i, j0 + c);
    return;
  }
  switch (m.mask_kind) {
    case ScalarKind::Bool: {
      const uint8_t* src = static_cast<const uint8_t*>(m.mask) + base;
      for (int64_t c = lo; c < hi; ++c) out[c] = src[c] ? 0.f : neg_inf;
      break;
    }
    case ScalarKind::Float32: {
      const float* src = static_cast<const float*>(m.mask) + base;
      std::copy(src + lo, src + hi, out + lo);
      break;
    }
    case ScalarKind::Float64: {
      const double* src = static_cast<const double*>(m.mask) + base;
      for (int64_t c = lo; c < hi; ++c) out[c] = (float)src[c];
      break;
    }
    case ScalarKind::BFloat16:
    case ScalarKind::Float16: load_row_f32(m.mask_kind, m.mask, base + lo, hi - lo, 1.f, out + lo, hi - lo); break;
  }
}

// Adds the segment part of row i over keys j0 + [lo, hi): -inf where the key lies in another
// document (or either side is padding). The row's id is read once, so the loop vectorises.
inline void add_segment_row_bias(const MaskSpec& m, int64_t b, int64_t i, int64_t j0, int64_t lo, int64_t hi,
                                 float* out) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t q_id = m.q_segment(b, i);
  const int64_t* k_ids = m.k_segments + b * m.k_segments_stride_b + j0;
  for (int64_t c = lo; c < hi; ++c) out[c] += MaskSpec::same_segment(q_id, k_ids[c]) ? 0.f : neg_inf;
}

// Every element-wise part of row i over keys j0 + [lo, hi) as one bias (for callers that mask a
// row at a time).
inline void elementwise_row_bias(const MaskSpec& m, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t lo,
                                 int64_t hi, float* out) {
  if (m.mask != nullptr) {
    explicit_mask_row(m, b, h, i, j0, lo, hi, out);
  } else {
    std::fill(out + lo, out + hi, 0.f);
  }
  if (m.key_mask != nullptr)
    for (int64_t c = lo; c < hi; ++c) out[c] += key_mask_bias(m, b, j0 + c);
  if (m.has_segments()) add_segment_row_bias(m, b, i, j0, lo, hi, out);
}

// s (rows x cols, row stride lds) holds the scores of rows i0.. and keys j0..; cols is a multiple
// of 16 and may run past k_len (those keys are masked). bias: scratch of 2 * cols floats.
inline void mask_score_tile(const MaskSpec& m, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t cols,
                            int64_t k_len, float* s, int64_t lds, float* bias) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const bool row_mask = m.mask != nullptr && m.mask_stride_i != 0;
  const bool row_varying = row_mask || m.has_segments();
  const bool tile_biased = m.key_mask != nullptr || (m.mask != nullptr && !row_mask);
  float* tile_bias = bias;                               // key_mask and a mask that is the same for every row
  float* row_bias = bias + cols;                         // segments and a mask that differs from row to row
  const int64_t in_memory = std::min(cols, k_len - j0);  // keys past k_len must not be read
  if (tile_biased) {
    for (int64_t c = 0; c < in_memory; ++c) tile_bias[c] = key_mask_bias(m, b, j0 + c);
    if (m.mask != nullptr && !row_mask) {
      explicit_mask_row(m, b, h, i0, j0, 0, in_memory, row_bias);
      for (int64_t c = 0; c < in_memory; ++c) tile_bias[c] += row_bias[c];
    }
    for (int64_t c = in_memory; c < cols; ++c) tile_bias[c] = neg_inf;
  }
  const f32x16 neg_inf16 = splat16(neg_inf);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    const KeyRange kr = m.key_range(b, i);
    const int64_t lo = std::min(std::max<int64_t>(kr.begin - j0, 0), cols);
    const int64_t hi = std::max(std::min(kr.end - j0, cols), lo);
    if (!tile_biased && !row_varying && lo == 0 && hi == cols) continue;  // row wholly inside the band
    // only [lo, hi) is filled: lanes outside it are dropped by the select below
    if (row_varying) {
      if (row_mask) {
        explicit_mask_row(m, b, h, i, j0, lo, hi, row_bias);
      } else {
        std::fill(row_bias + lo, row_bias + hi, 0.f);
      }
      if (m.has_segments()) add_segment_row_bias(m, b, i, j0, lo, hi, row_bias);
    }
    float* row = s + r * lds;
    for (int64_t c = 0; c < cols; c += kLanes) {
      if (c + kLanes <= lo || c >= hi) {
        store16(row + c, neg_inf16);  // wholly outside the band
        continue;
      }
      f32x16 x = load16(row + c);
      if (tile_biased) x += load16(tile_bias + c);
      if (row_varying) x += load16(row_bias + c);
      store16(row + c, x);
      if (c < lo || c + kLanes > hi)  // the band's edges: lanes outside it one by one
        for (int64_t l = c; l < c + kLanes; ++l)
          if (l < lo || l >= hi) row[l] = neg_inf;
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
