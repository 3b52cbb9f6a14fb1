// Row parts of a partly masked (query tile, key tile) pair, for the CPU forward and backward: the
// tile's rows are multiplied in parts of kSplitRows, each over the key columns the tile classifier
// leaves live for it (a causal diagonal tile: rows 0-15 see keys 0-15, rows 16-31 keys 0-31, ...:
// 62.5% of the tile's products; with GQA a 16-row part may see a quarter of its key tile).
#pragma once
#include <algorithm>
#include <cstdint>

#include "../../mask_spec.h"
#include "attention_layout.h"

namespace maskattn {
namespace cpu {

// 16: the key classifier's chunks and the mask summary's blocks have the same grain.
constexpr int64_t kSplitRows = 16;
constexpr int kMaxRowParts = (int)(kBlockQ / kSplitRows);

// Key columns [lo, hi) of a tile that some rows may attend (multiples of 16; lo == hi: none).
struct ColumnExtent {
  int64_t lo = 0, hi = 0;
};

// How the rows of one tile are multiplied: whole (parts == 0: every row over every column), or in
// row parts [part_begin(k), part_end(k)), each over its own columns (the rest of its scores are
// -inf, its probabilities 0).
struct TileColumns {
  int64_t cols = 0;  // columns of S: the tile's keys rounded up to 16
  int64_t rows = 0;
  int parts = 0;
  ColumnExtent extent[kMaxRowParts];

  int64_t part_begin(int k) const { return k * kSplitRows; }
  int64_t part_end(int k) const { return std::min(rows, (k + 1) * kSplitRows); }
};

// Columns [0, cols) of the key tile starting at key j0 that rows i0 + [r0, r1) may attend, from the
// tile classifier on 16-key chunks.
inline ColumnExtent live_columns(const MaskSpec& mask, int64_t b, int64_t i0, int64_t r0, int64_t r1, int64_t j0,
                                 int64_t cols) {
  ColumnExtent e{cols, 0};
  for (int64_t c = 0; c < cols; c += 16)
    if (mask.classify_tile(b, i0 + r0, i0 + r1, j0 + c, j0 + c + 16) != TileState::Empty) {
      e.lo = std::min(e.lo, c);
      e.hi = c + 16;
    }
  return e.lo < e.hi ? e : ColumnExtent{};
}

// The row parts of query rows i0 .. i0 + rows (rows <= kBlockQ) against key tile kt of `keys` keys:
// parts only for a Partial tile where some part has fewer live columns than the tile.
inline TileColumns row_part_columns(const MaskSpec& mask, int64_t b, int64_t i0, int64_t rows, int64_t kt,
                                    int64_t keys, TileState state) {
  TileColumns t;
  t.cols = round_up16(keys);
  t.rows = rows;
  if (state != TileState::Partial) return t;
  const int parts = (int)((rows + kSplitRows - 1) / kSplitRows);
  bool narrower = false;
  for (int k = 0; k < parts; ++k) {
    t.extent[k] = live_columns(mask, b, i0, t.part_begin(k), t.part_end(k), kt * kBlockK, t.cols);
    narrower |= t.extent[k].hi - t.extent[k].lo < t.cols;
  }
  if (narrower) t.parts = parts;  // else nothing to save: one product over the whole tile
  return t;
}

}  // namespace cpu
}  // namespace maskattn
