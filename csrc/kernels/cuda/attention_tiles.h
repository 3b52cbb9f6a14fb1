// Which tiles of the (query x key) score matrix a block must visit, decided from MaskSpec alone,
// and the launch order that starts the heaviest blocks first. Plain host/device code, so the spans
// can be checked against MaskSpec::allowed element by element on the host.
#pragma once
#include <cstdint>

#include "../../mask_spec.h"

namespace maskattn {
namespace attn {

MA_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tile sizes are powers of two: tile indices come from shifts, never from the 64-bit division
// subroutine (whose calling convention costs registers in the kernels).
MA_HD int pow2_shift(int64_t tile) {
  int s = 0;
  while ((int64_t(1) << s) < tile) ++s;
  return s;
}
MA_HD int64_t tile_of(int64_t index, int64_t tile) { return index >> pow2_shift(tile); }
MA_HD int64_t tiles_to_cover(int64_t count, int64_t tile) { return (count + tile - 1) >> pow2_shift(tile); }

// Half-open range [first, end) of tile indices.
struct TileSpan {
  int64_t first;
  int64_t end;
  MA_HD int64_t count() const { return end > first ? end - first : 0; }
};

// Key tiles of `tile_keys` (a power of two) keys that rows [i0, i0 + rows) of sequence b may attend. key_range's
// begin and end never decrease with the row, so the first row's begin and the last valid row's
// end bound every row's band; tiles outside hold no allowed pair.
MA_HD TileSpan key_tiles_for_rows(const MaskSpec& m, int64_t b, int64_t i0, int64_t rows,
                                  int64_t tile_keys) {
  const int64_t ql = m.q_len_of(b);
  const int64_t last = (i0 + rows < ql ? i0 + rows : ql) - 1;
  if (last < i0) return {0, 0};
  const int64_t begin = m.key_range(b, i0).begin, end = m.key_range(b, last).end;
  if (end <= begin) return {0, 0};
  return {tile_of(begin, tile_keys), tiles_to_cover(end, tile_keys)};
}

// First valid row whose band ends after `key` (by_end) or begins at or after `key` (!by_end);
// q_len_of(b) if none. Both predicates are monotone in the row, so a binary search finds it.
MA_HD int64_t first_row_past(const MaskSpec& m, int64_t b, int64_t key, bool by_end) {
  int64_t lo = 0, hi = m.q_len_of(b);
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const KeyRange r = m.key_range(b, mid);
    const bool past = by_end ? r.end > key : r.begin >= key;
    if (past) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// Query tiles of `tile_rows` (a power of two) rows whose bands meet keys [j0, j0 + keys) of sequence b.
MA_HD TileSpan query_tiles_for_keys(const MaskSpec& m, int64_t b, int64_t j0, int64_t keys,
                                    int64_t tile_rows) {
  if (j0 >= m.k_len_of(b)) return {0, 0};
  const int64_t row_begin = first_row_past(m, b, j0, true);
  const int64_t row_end = first_row_past(m, b, j0 + keys, false);
  if (row_end <= row_begin) return {0, 0};
  return {tile_of(row_begin, tile_rows), tiles_to_cover(row_end, tile_rows)};
}

// Rows bounded on the right only (causal) give later query rows more keys and earlier keys more
// rows; rows bounded on the left only do the reverse. Blocks start heaviest first.
MA_HD bool later_query_tiles_heavier(const MaskSpec& m) { return m.window_right >= 0 && m.window_left < 0; }
MA_HD bool later_key_tiles_heavier(const MaskSpec& m) { return m.window_left >= 0 && m.window_right < 0; }

// Work of one block of a 1-D grid: the slowest-varying index is the tile, in heaviest-first
// order, so every (batch, head) starts its heavy tiles before any light one.
// Floats of one key split's partial result of one query row (tensor-core forward): the
// unnormalised output padded to the head bucket, then the row's running max (base 2) and sum.
MA_HD constexpr int64_t fwd_partial_floats(int bucket) { return bucket + 2; }

struct TileTask {
  int64_t tile;
  int64_t batch;
  int64_t head;
};

// The launchers keep grids under 2^31 blocks, so every index here fits 32 bits (and 32-bit
// division avoids the 64-bit division subroutine).
MA_HD TileTask tile_task(uint32_t block, int64_t batch, int64_t heads, int64_t tiles, bool later_heavier) {
  const uint32_t pairs = (uint32_t)(batch * heads), per_batch = (uint32_t)heads;
  const uint32_t nth = block / pairs, pair = block % pairs;
  return {later_heavier ? tiles - 1 - nth : (int64_t)nth, (int64_t)(pair / per_batch), (int64_t)(pair % per_batch)};
}

// Query heads per kv head, and the kv head query head h reads (grouped-query attention).
// Head counts fit 32 bits.
MA_HD int64_t head_group_size(int64_t heads, int64_t kv_heads) { return (uint32_t)heads / (uint32_t)kv_heads; }
MA_HD int64_t kv_head_of(int64_t h, int64_t heads, int64_t kv_heads) {
  return (uint32_t)h / (uint32_t)head_group_size(heads, kv_heads);
}

}  // namespace attn
}  // namespace maskattn
