// Which tiles hold work, and in what order threads take the work items.
#pragma once
#include <cstdint>
#include <vector>

#include "../../mask_spec.h"
#include "attention_layout.h"

namespace maskattn {
namespace cpu {

inline TileState tile_state(const MaskSpec& m, const AttentionGeometry& g, int64_t b, int64_t qt, int64_t kt) {
  const int64_t i0 = g.first_row(qt), j0 = kt * kBlockK;
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

// Order in which dynamically scheduled threads take items. Items come in consecutive groups of
// group_size that read the same K/V (e.g. the query tiles of one head): groups stay in order so
// the threads share K/V in cache, and within a group the most expensive items go first so the
// cheap ones fill the gaps at the end (causal: long rows before short ones).
std::vector<int64_t> schedule_order(const std::vector<int64_t>& cost, int64_t group_size);

}  // namespace cpu
}  // namespace maskattn
