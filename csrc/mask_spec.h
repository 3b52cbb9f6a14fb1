// The one description of an attention mask, shared by every kernel on every device.
//
// Which key j a query row i of sequence b (head h) may attend is decided here and nowhere else:
//   * lengths: rows i >= q_len_of(b) attend to nothing, keys j >= k_len_of(b) are masked;
//   * band: with aligned position p = i + offset(b) (align_offset, plus k_len - q_len of the
//     sequence for bottom_right), key j is allowed iff p - left <= j <= p + right, a negative
//     bound meaning unbounded (causal folds into right = 0);
//   * segments (packed sequences): q_segment(b, i) == k_segment(b, j), and a negative id is
//     padding that attends nothing and is never attended;
//   * key_mask[b, j] (true = may attend) and an explicit boolean mask[b, h, i, j];
//   * an explicit float mask is additive: it never disallows a key, it adds to the scaled score
//     (-inf there simply gives probability 0).
// All parts combine with AND. A row whose keys are all disallowed produces zeros.
#pragma once
#include <cstdint>

#include "host_device.h"
#include "scalar_kind.h"

namespace maskattn {

enum class TileState : int32_t { Empty = 0, Full = 1, Partial = 2 };

// Half-open range [begin, end) of keys a row may attend before the element-wise masks.
struct KeyRange {
  int64_t begin;
  int64_t end;
  MA_HD bool empty() const { return end <= begin; }
};

// Segment ids are summarised per chunk of positions (min, max), so a tile is classified from a
// few chunk bounds rather than by reading every id. Tiles need not align with chunks: the chunks
// covering a tile bound a superset of its ids, which keeps Empty and Full exact where claimed.
constexpr int64_t kSegmentChunk = 16;

struct SegmentBounds {
  int64_t min, max;
};

// An explicit mask is summarised per block of kMaskBlock rows x kMaskBlock keys of its own
// (non-broadcast) dims, once per call, combined over heads: a tile whose covering blocks allow
// nothing is skipped, and one whose blocks allow everything with additive 0 needs no mask work.
// As with segment chunks, tiles need not align with blocks.
constexpr int64_t kMaskBlock = 16;
constexpr uint8_t kMaskBlockAny = 1;   // some element allowed (bool True, additive > -inf)
constexpr uint8_t kMaskBlockFull = 2;  // every element allowed, additive value 0

struct MaskSpec {
  int64_t batch = 1, heads = 1, q_len = 0, k_len = 0;
  bool bottom_right = false;
  int64_t align_offset = 0;   // added to every aligned position (integer alignment of a block)
  int64_t window_left = -1;   // < 0: unbounded
  int64_t window_right = -1;  // < 0: unbounded; causal is 0
  const int64_t* q_lengths = nullptr;  // (batch,) on the kernel's device, or null
  const int64_t* k_lengths = nullptr;  // (batch,) on the kernel's device, or null
  const uint8_t* key_mask = nullptr;   // [b * key_mask_stride_b + j * key_mask_stride_j], 1 = attend
  int64_t key_mask_stride_b = 0, key_mask_stride_j = 1;
  // segments: ids[b * stride_b + i] (contiguous rows; stride_b 0 broadcasts one row over the
  // batch) and chunk bounds[(b * bounds_stride_b + c)] of positions [c * kSegmentChunk, ...).
  const int64_t* q_segments = nullptr;
  const int64_t* k_segments = nullptr;
  int64_t q_segments_stride_b = 0, k_segments_stride_b = 0;
  const SegmentBounds* q_segment_bounds = nullptr;
  const SegmentBounds* k_segment_bounds = nullptr;
  int64_t q_bounds_stride_b = 0, k_bounds_stride_b = 0;
  const void* mask = nullptr;  // explicit mask, broadcast through zero strides
  ScalarKind mask_kind = ScalarKind::Bool;
  int64_t mask_stride_b = 0, mask_stride_h = 0, mask_stride_i = 0, mask_stride_j = 0;
  // Block summary of `mask` (or null: every tile Partial): flags of row block ib and key block jb
  // at mask_blocks[b * stride_b + ib * stride_i + jb * stride_j] (stride 0 on broadcast dims).
  const uint8_t* mask_blocks = nullptr;
  int64_t mask_blocks_stride_b = 0, mask_blocks_stride_i = 0, mask_blocks_stride_j = 0;

  MA_HD int64_t q_len_of(int64_t b) const { return q_lengths ? q_lengths[b] : q_len; }
  MA_HD int64_t k_len_of(int64_t b) const { return k_lengths ? k_lengths[b] : k_len; }
  MA_HD int64_t offset_of(int64_t b) const {
    return align_offset + (bottom_right ? k_len_of(b) - q_len_of(b) : 0);
  }

  MA_HD bool has_bool_mask() const { return mask != nullptr && mask_kind == ScalarKind::Bool; }
  MA_HD bool has_additive_mask() const { return mask != nullptr && mask_kind != ScalarKind::Bool; }
  MA_HD bool has_segments() const { return q_segments != nullptr; }
  // True when some key inside key_range() can still be disallowed or biased element by element.
  MA_HD bool has_elementwise() const { return key_mask != nullptr || mask != nullptr || has_segments(); }

  // Band of keys left after lengths, causal and window: everything outside is masked.
  // Always 0 <= begin <= end <= k_len_of(b), so callers may fill [0, begin) and [end, k_len).
  MA_HD KeyRange key_range(int64_t b, int64_t i) const {
    const int64_t ql = q_len_of(b), kl = k_len_of(b);
    if (i >= ql || kl <= 0) return {0, 0};
    const int64_t p = i + offset_of(b);
    int64_t lo = window_left < 0 ? 0 : p - window_left;
    int64_t hi = window_right < 0 ? kl : p + window_right + 1;
    lo = lo < 0 ? 0 : (lo > kl ? kl : lo);  // a band wholly past the keys is empty at k_len, not beyond
    hi = hi > kl ? kl : hi;
    return {lo, hi < lo ? lo : hi};
  }

  MA_HD int64_t mask_offset(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return b * mask_stride_b + h * mask_stride_h + i * mask_stride_i + j * mask_stride_j;
  }

  // key_mask part of the predicate (true without a key_mask).
  MA_HD bool key_allowed(int64_t b, int64_t j) const {
    return !key_mask || key_mask[b * key_mask_stride_b + j * key_mask_stride_j];
  }

  MA_HD int64_t q_segment(int64_t b, int64_t i) const { return q_segments[b * q_segments_stride_b + i]; }
  MA_HD int64_t k_segment(int64_t b, int64_t j) const { return k_segments[b * k_segments_stride_b + j]; }
  // Segment part of the predicate for ids already read: same document, and not padding.
  MA_HD static bool same_segment(int64_t q_id, int64_t k_id) { return q_id >= 0 && q_id == k_id; }
  MA_HD bool segments_allow(int64_t b, int64_t i, int64_t j) const {
    return !has_segments() || same_segment(q_segment(b, i), k_segment(b, j));
  }

  // Explicit boolean mask part of the predicate (true without one).
  MA_HD bool bool_mask_allows(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return !has_bool_mask() || static_cast<const uint8_t*>(mask)[mask_offset(b, h, i, j)];
  }

  // Element-wise part of the predicate, for a key already known to be inside key_range(b, i).
  MA_HD bool allowed_in_range(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return key_allowed(b, j) && segments_allow(b, i, j) && bool_mask_allows(b, h, i, j);
  }

  // The predicate: may query row i of (b, h) attend to key j?
  MA_HD bool allowed(int64_t b, int64_t h, int64_t i, int64_t j) const {
    const KeyRange r = key_range(b, i);
    return j >= r.begin && j < r.end && allowed_in_range(b, h, i, j);
  }

  // Value an explicit float mask adds to the scaled score (0 without one).
  MA_HD float additive(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!has_additive_mask()) return 0.f;
    const int64_t o = mask_offset(b, h, i, j);
    switch (mask_kind) {
      case ScalarKind::Float32: return static_cast<const float*>(mask)[o];
      case ScalarKind::Float16: return half_bits_to_float(static_cast<const uint16_t*>(mask)[o]);
      case ScalarKind::BFloat16: return bf16_bits_to_float(static_cast<const uint16_t*>(mask)[o]);
      case ScalarKind::Float64: return (float)static_cast<const double*>(mask)[o];
      default: return 0.f;
    }
  }

  // The additive value times log2(e), for the kernels that take exp in base 2. A finite value
  // stays finite: float32's finfo.min * log2(e) rounds to -inf, which would mask the key outright
  // where torch gives a row of such keys uniform weights (clamped to the largest float instead).
  MA_HD float additive_log2(int64_t b, int64_t h, int64_t i, int64_t j) const {
    const float a = additive(b, h, i, j);
    const float a2 = a * 1.4426950408889634f;
    constexpr float kLargest = 3.402823466e38f;
    if (a >= -kLargest && a <= kLargest) return a2 < -kLargest ? -kLargest : (a2 > kLargest ? kLargest : a2);
    return a2;
  }

  // The additive value in double: a float64 mask keeps its precision on the float64 paths (gradcheck).
  MA_HD double additive_f64(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (mask_kind == ScalarKind::Float64 && mask != nullptr)
      return static_cast<const double*>(mask)[mask_offset(b, h, i, j)];
    return additive(b, h, i, j);
  }

  // (min, max) of the ids of positions [p0, p1) (p1 > p0), from the chunks that cover them.
  MA_HD static SegmentBounds segment_bounds(const SegmentBounds* bounds, int64_t p0, int64_t p1) {
    SegmentBounds r = bounds[p0 / kSegmentChunk];
    for (int64_t c = p0 / kSegmentChunk + 1; c <= (p1 - 1) / kSegmentChunk; ++c) {
      r.min = bounds[c].min < r.min ? bounds[c].min : r.min;
      r.max = bounds[c].max > r.max ? bounds[c].max : r.max;
    }
    return r;
  }

  // Segment part of a tile of rows [i0, i1) and keys [j0, j1) (non-empty ranges): Empty when no
  // row's id can meet a key's, Full when every row and key share one id, Partial otherwise.
  MA_HD TileState classify_segments(int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) const {
    const SegmentBounds q = segment_bounds(q_segment_bounds + b * q_bounds_stride_b, i0, i1);
    const SegmentBounds k = segment_bounds(k_segment_bounds + b * k_bounds_stride_b, j0, j1);
    if (q.max < 0 || k.max < 0 || q.max < k.min || k.max < q.min) return TileState::Empty;
    const bool one_id = q.min == q.max && k.min == k.max && q.min == k.min;
    return one_id ? TileState::Full : TileState::Partial;
  }

  // Summary flags of the mask block holding (i, j) (mask_blocks must be set).
  MA_HD uint8_t mask_block_flags(int64_t b, int64_t i, int64_t j) const {
    return mask_blocks[b * mask_blocks_stride_b + (i / kMaskBlock) * mask_blocks_stride_i +
                       (j / kMaskBlock) * mask_blocks_stride_j];
  }
  // The state one block's flags stand for.
  MA_HD static TileState mask_block_state(uint8_t flags) {
    if (!(flags & kMaskBlockAny)) return TileState::Empty;
    return (flags & kMaskBlockFull) ? TileState::Full : TileState::Partial;
  }

  // Explicit-mask part of a tile of rows [i0, i1) and keys [j0, j1) (non-empty ranges), from the
  // blocks that cover it: Empty when none allows a pair, Full when all allow every pair with
  // additive 0, Partial otherwise (and always without a summary). Full without a mask.
  MA_HD TileState classify_explicit(int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) const {
    if (mask == nullptr) return TileState::Full;
    if (mask_blocks == nullptr) return TileState::Partial;
    // a broadcast dim has one block: step over it once
    const int64_t i_last = mask_blocks_stride_i == 0 ? i0 : i1 - 1;
    const int64_t j_last = mask_blocks_stride_j == 0 ? j0 : j1 - 1;
    uint8_t any = 0, all = kMaskBlockFull;
    for (int64_t i = i0; i <= i_last; i = (i / kMaskBlock + 1) * kMaskBlock)
      for (int64_t j = j0; j <= j_last; j = (j / kMaskBlock + 1) * kMaskBlock) {
        const uint8_t f = mask_block_flags(b, i, j);
        any |= f & kMaskBlockAny;
        all &= f;
      }
    return mask_block_state((uint8_t)(any | (all & kMaskBlockFull)));
  }

  // Keys of row i that may hold probability: key_range(b, i) less the key blocks at either end
  // that the explicit mask's summary shows wholly masked for this row.
  MA_HD KeyRange live_key_range(int64_t b, int64_t i) const {
    KeyRange r = key_range(b, i);
    if (mask_blocks == nullptr) return r;
    while (r.begin < r.end && !(mask_block_flags(b, i, r.begin) & kMaskBlockAny)) {
      const int64_t edge = (r.begin / kMaskBlock + 1) * kMaskBlock;
      r.begin = edge < r.end ? edge : r.end;
    }
    while (r.end > r.begin && !(mask_block_flags(b, i, r.end - 1) & kMaskBlockAny)) {
      const int64_t edge = (r.end - 1) / kMaskBlock * kMaskBlock;
      r.end = edge > r.begin ? edge : r.begin;
    }
    return r;
  }

  // Tile of rows [i0, i1) and keys [j0, j1): Empty (skip it), Full (every pair allowed, no
  // additive term: no mask arithmetic needed) or Partial (evaluate the predicate). Conservative:
  // Partial is always a correct answer. Relies on key_range bounds being monotone in i.
  MA_HD TileState classify_tile(int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) const {
    const int64_t ql = q_len_of(b), kl = k_len_of(b);
    const int64_t last_row = (i1 < ql ? i1 : ql) - 1;
    const int64_t last_key = (j1 < kl ? j1 : kl) - 1;
    if (last_row < i0 || last_key < j0) return TileState::Empty;
    const int64_t p_first = i0 + offset_of(b), p_last = last_row + offset_of(b);
    // rows' upper bounds grow with i: the last row reaches furthest right
    if (window_right >= 0 && p_last + window_right < j0) return TileState::Empty;
    // rows' lower bounds grow with i: the first row reaches furthest left
    if (window_left >= 0 && p_first - window_left > last_key) return TileState::Empty;
    const TileState segments_state =
        has_segments() ? classify_segments(b, i0, last_row + 1, j0, last_key + 1) : TileState::Full;
    if (segments_state == TileState::Empty) return TileState::Empty;
    const TileState explicit_state = classify_explicit(b, i0, last_row + 1, j0, last_key + 1);
    if (explicit_state == TileState::Empty) return TileState::Empty;
    const bool rows_complete = i1 <= ql, keys_complete = j1 <= kl;
    const bool left_ok = window_left < 0 || p_last - window_left <= j0;
    const bool right_ok = window_right < 0 || p_first + window_right >= j1 - 1;
    const bool no_other_elementwise = key_mask == nullptr && explicit_state == TileState::Full;
    if (rows_complete && keys_complete && left_ok && right_ok && no_other_elementwise &&
        segments_state == TileState::Full)
      return TileState::Full;
    return TileState::Partial;
  }
};

}  // namespace maskattn
