// Which tiles hold work, and in what order threads take the work items.
#pragma once
#include <cstdint>
#include <vector>

#include "../../mask_spec.h"
#include "attention_layout.h"

namespace maskattn {
namespace cpu {

inline TileState tile_state(const MaskSpec& m, const AttentionGeometry& g, int64_t b, int64_t qt, int64_t kt) {
  const int64_t i0 = qt * kBlockQ, j0 = kt * kBlockK;
  return m.classify_tile(b, i0, i0 + g.q_rows_in(qt), j0, j0 + g.keys_in(kt));
}

// Tiles [first, last] of the other axis between the first and the last non-empty one.
struct TileSpan {
  int64_t first = 0, last = -1, non_empty = 0;
};

// (batch, q_tiles): for each query tile, the span of key tiles it attends.
std::vector<TileSpan> key_spans_of_query_tiles(const MaskSpec& m, const AttentionGeometry& g);
// (batch, k_tiles): for each key tile, the span of query tiles that attend it.
std::vector<TileSpan> query_spans_of_key_tiles(const MaskSpec& m, const AttentionGeometry& g);

// Item indices by decreasing cost: with dynamic scheduling the expensive items start first and
// the cheap ones fill the gaps, so both threads finish together (e.g. causal long/short rows).
std::vector<int64_t> largest_first(const std::vector<int64_t>& cost);

}  // namespace cpu
}  // namespace maskattn
