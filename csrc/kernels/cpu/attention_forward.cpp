// Forward of fused masked attention on CPU (fp32, fp16, bf16 inputs; fp32 math), flash-style:
// one work item is (batch, kv head, query tile); it streams the key tiles its rows attend, keeping
// the output, row max and row sum in fp32 scratch (online softmax), and never forms Lq x Lk.
// The query heads sharing a kv head (GQA) are stacked into one tile of rows, so each K/V tile is
// read once for the whole group (decoding with Lq = 1 gets `group` rows instead of one).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../attention.h"
#include "attention_dropout.h"
#include "attention_gemm.h"
#include "attention_layout.h"
#include "attention_pack.h"
#include "attention_paths.h"
#include "attention_row_parts.h"
#include "attention_rows.h"
#include "attention_schedule.h"
#include "attention_softmax_tile.h"
#include "attention_tile_mask.h"
#include "attention_vec.h"
#include "bf16_tiles.h"
#include "parallel_grain.h"

namespace maskattn {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Per-thread fp32 scratch, reused across work items; rows = stacked rows of a tile. With bf16
// products, q16 / p16 hold q and the probabilities as bf16 rows (rows padded to 32, zero; and
// kSplitRows more: a row part's product reads whole 16-row tiles from its start).
struct ForwardScratch {
  FloatBuffer q, s, out, row_max, row_sum16, alpha, lse, bias, q16, p16, log_sum;
  ForwardScratch(const AttentionGeometry& g, int64_t rows, bool pairs)
      : q(pairs ? 1 : rows * g.d),
        s(rows * kBlockK),
        out(rows * g.dv_pad),
        row_max(round_up16(rows)),
        row_sum16(rows * kLanes),
        alpha(round_up16(rows)),
        lse(rows),
        bias(2 * kBlockK),
        q16(pairs ? (round_up32(rows) + kSplitRows) * round_up32(g.d) / 2 : 1),
        p16(pairs ? (round_up32(rows) + kSplitRows) * kBlockK / 2 : 1),
        log_sum(rows) {}
  uint16_t* q_bf16() const { return reinterpret_cast<uint16_t*>(q16.get()); }
  uint16_t* p_bf16() const { return reinterpret_cast<uint16_t*>(p16.get()); }
};

struct ForwardItem {
  const AttentionFwdParams& p;
  const AttentionGeometry& g;
  const PackedKeys& keys;
  ForwardScratch& w;
  int64_t b, hk, qt;
  int64_t rows;  // query rows of one head in this tile; head hh of the group owns stacked rows hh * rows..

  int64_t i0() const { return g.first_row(qt); }
  int64_t stacked() const { return g.group * rows; }
  int64_t head(int64_t hh) const { return hk * g.group + hh; }
  int64_t out_row(int64_t hh) const { return (b * g.heads + head(hh)) * g.q_len + i0(); }  // in out, lse, weights

  // Row r0.. of head hh's rows in the stacked tile.
  int64_t stacked_row(int64_t hh, int64_t r0) const { return hh * rows + r0; }
  // A Partial tile's row parts (the same for every head of the group: the classifier is per batch).
  TileColumns columns_of(int64_t kt, TileState state) const {
    return row_part_columns(p.mask, b, i0(), rows, kt, g.keys_in(kt), state);
  }

  // S rows [row0, row0 + m) over columns [lo, hi) = (scale q) k^T.
  void score_rows(int64_t kt, int64_t row0, int64_t m, ColumnExtent e) const {
    float* c = w.s.get() + row0 * kBlockK + e.lo;
    if (keys.pairs) {
      const int64_t ld = keys.d_pad32;
      cpu_kernels().gemm_bf16({m, e.hi - e.lo, ld, w.q_bf16() + row0 * ld, ld, keys.k_pairs_tile(b, hk, kt) + 2 * e.lo,
                               2 * kBlockK, c, kBlockK, GemmInto::Overwrite, nullptr, (float)p.scale});
    } else {
      gemm_tile(m, e.hi - e.lo, g.d, GemmA{w.q.get() + row0 * g.d, g.d, 1}, keys.k_t_tile(b, hk, kt) + e.lo, kBlockK,
                c, kBlockK, GemmInto::Overwrite);
    }
  }

  // S (stacked rows x cols) = (scale q) k^T for key tile kt, masked when the tile is Partial;
  // columns a row part cannot attend are -inf without being multiplied.
  TileColumns scores(int64_t kt, TileState state) const {
    const TileColumns t = columns_of(kt, state);
    if (t.parts == 0) {
      score_rows(kt, 0, stacked(), ColumnExtent{0, t.cols});
    } else {
      const float neg_inf = -std::numeric_limits<float>::infinity();
      for (int64_t hh = 0; hh < g.group; ++hh)
        for (int k = 0; k < t.parts; ++k) {
          const int64_t row0 = stacked_row(hh, t.part_begin(k)), m = t.part_end(k) - t.part_begin(k);
          const ColumnExtent e = t.extent[k];
          if (e.hi > e.lo) score_rows(kt, row0, m, e);
          for (int64_t r = row0; r < row0 + m; ++r) {
            float* row = w.s.get() + r * kBlockK;
            std::fill(row, row + e.lo, neg_inf);
            std::fill(row + e.hi, row + t.cols, neg_inf);
          }
        }
    }
    // a Full last tile may still have padding lanes past k_len to drop
    if (state == TileState::Partial || t.cols != g.keys_in(kt))
      for (int64_t hh = 0; hh < g.group; ++hh)
        mask_score_tile(p.mask, b, head(hh), i0(), rows, kt * kBlockK, t.cols, g.k_len,
                        w.s.get() + hh * rows * kBlockK, kBlockK, w.bias.get());
    return t;
  }

  // out rows [row0, row0 + m) = alpha * out + P V over keys [lo, hi) of tile kt.
  void pv_rows(int64_t kt, int64_t row0, int64_t m, ColumnExtent e) const {
    float* out = w.out.get() + row0 * g.dv_pad;
    const float* alpha = w.alpha.get() + row0;
    if (keys.pairs) {  // bf16 products take depth in steps of 32 (probabilities past hi are 0)
      const int64_t lo = e.lo / 32 * 32, hi = std::min(round_up32(e.hi), kBlockK);
      cpu_kernels().gemm_bf16({m, g.dv_pad, hi - lo, w.p_bf16() + row0 * kBlockK + lo, kBlockK,
                               keys.v_pairs_tile(b, hk, kt) + lo * g.dv_pad, 2 * g.dv_pad, out, g.dv_pad,
                               GemmInto::ScaleRowsAccumulate, alpha, 1.f});
      return;
    }
    int64_t ldv;
    const float* v = keys.v_rows(b, hk, kt, &ldv);
    const int64_t hi = std::min(e.hi, g.live_keys_in(p.mask, b, kt));  // V past k_len is never read
    if (hi <= e.lo) return;
    gemm_tile(m, g.dv_pad, hi - e.lo, GemmA{w.s.get() + row0 * kBlockK + e.lo, kBlockK, 1}, v + e.lo * ldv, ldv, out,
              g.dv_pad, GemmInto::ScaleRowsAccumulate, alpha);
  }

  // out = alpha * out + P V over the live keys of tile kt (P: the tile's probabilities in s). A row
  // part with no live column has alpha 1 (its max did not move), so it is skipped.
  void accumulate_pv(int64_t kt, const TileColumns& t) const {
    if (keys.pairs) round_tile_rows_to_bf16(w.s.get(), stacked(), t.cols, kBlockK, w.p_bf16(), kBlockK);
    if (t.parts == 0) return pv_rows(kt, 0, stacked(), ColumnExtent{0, t.cols});
    for (int64_t hh = 0; hh < g.group; ++hh)
      for (int k = 0; k < t.parts; ++k)
        if (t.extent[k].hi > t.extent[k].lo)
          pv_rows(kt, stacked_row(hh, t.part_begin(k)), t.part_end(k) - t.part_begin(k), t.extent[k]);
  }

  void run(const TileSpan& span) const {
    const MatrixUnitScope units(cpu_kernels(), keys.pairs && span.non_empty > 0);
    float* lse = w.lse.get();
    if (span.non_empty == 0) {
      for (int64_t hh = 0; hh < g.group; ++hh)
        for (int64_t r = 0; r < rows; ++r) zero_row(p.dtype, p.out, (out_row(hh) + r) * g.dv, g.dv);
      std::fill(lse, lse + stacked(), kNegInf);
      std::fill(w.row_max.get(), w.row_max.get() + stacked(), kNegInf);
    } else {
      attend(span, lse);
    }
    for (int64_t hh = 0; hh < g.group; ++hh) std::copy(lse + hh * rows, lse + (hh + 1) * rows, p.lse + out_row(hh));
    write_row_stats(p.row_stats, w.row_max.get(), w.log_sum.get());
    if (p.weights) write_weights(span);
  }

  void load_q() const {
    const int64_t live = g.live_rows_in(p.mask, b, qt);
    if (keys.pairs) {
      // bf16 rows as they are (the scale goes on S), zero past d, past the live rows and to 32 rows
      const int64_t ld = keys.d_pad32;
      uint16_t* q16 = w.q_bf16();
      std::fill(q16, q16 + (round_up32(stacked()) + kSplitRows) * ld, (uint16_t)0);
      for (int64_t hh = 0; hh < g.group; ++hh)
        for (int64_t r = 0; r < live; ++r)
          std::memcpy(q16 + (hh * rows + r) * ld,
                      static_cast<const uint16_t*>(p.q) + b * p.q_stride_b + head(hh) * p.q_stride_h +
                          (i0() + r) * p.q_stride_i,
                      sizeof(uint16_t) * (size_t)g.d);
      return;
    }
    for (int64_t hh = 0; hh < g.group; ++hh) {
      const int64_t q_off = b * p.q_stride_b + head(hh) * p.q_stride_h + i0() * p.q_stride_i;
      float* q = w.q.get() + hh * rows * g.d;
      for (int64_t r = 0; r < live; ++r)
        load_row_f32(p.dtype, p.q, q_off + r * p.q_stride_i, g.d, (float)p.scale, q + r * g.d, g.d);
      std::fill(q + live * g.d, q + rows * g.d, 0.f);
    }
  }

  void attend(const TileSpan& span, float* lse) const {
    const int64_t n_rows = stacked();
    load_q();
    float *m = w.row_max.get(), *l16 = w.row_sum16.get(), *out = w.out.get();
    std::fill(m, m + round_up16(n_rows), kNegInf);  // whole vectors: online_softmax_tile reads 16 rows at once
    std::fill(w.alpha.get(), w.alpha.get() + round_up16(n_rows), 0.f);
    std::fill(l16, l16 + n_rows * kLanes, 0.f);
    std::fill(out, out + n_rows * g.dv_pad, 0.f);
    for (int64_t kt = span.first; kt <= span.last; ++kt) {
      const TileState state = tile_state(p.mask, g, b, qt, kt);
      if (state == TileState::Empty) continue;
      const TileColumns t = scores(kt, state);
      online_softmax_tile(n_rows, t.cols, w.s.get(), kBlockK, m, l16, w.alpha.get());
      if (p.dropout.enabled)  // after the row sums: they, lse and the weights stay undropped
        for (int64_t hh = 0; hh < g.group; ++hh)
          dropout_tile(p.dropout, b, head(hh), i0(), rows, kt * kBlockK, g.keys_in(kt), 1.f,
                       w.s.get() + hh * rows * kBlockK, kBlockK);
      accumulate_pv(kt, t);
    }
    for (int64_t hh = 0; hh < g.group; ++hh)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t sr = hh * rows + r, dst = (out_row(hh) + r) * g.dv;
        const float l = tree_sum16(load16(l16 + sr * kLanes));
        if (l > 0.f) {
          store_row(p.dtype, out + sr * g.dv_pad, g.dv, (float)p.dropout.scale / l, p.out, dst);
          w.log_sum.get()[sr] = std::log(l);
          lse[sr] = m[sr] + w.log_sum.get()[sr];
        } else {
          zero_row(p.dtype, p.out, dst, g.dv);
          lse[sr] = kNegInf;
        }
      }
  }

  // Row statistics (m, log l) of the stacked rows: m = -inf where a row attends to nothing.
  void write_row_stats(float* stats, const float* m, const float* log_sum) const {
    for (int64_t hh = 0; hh < g.group; ++hh)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t sr = hh * rows + r, dst = 2 * (out_row(hh) + r);
        stats[dst] = m[sr];
        stats[dst + 1] = m[sr] == kNegInf ? 0.f : log_sum[sr];
      }
  }

  // Probabilities exp((s - m) - log l) recomputed tile by tile; zeros where tiles are empty.
  void write_weights(const TileSpan& span) const {
    for (int64_t kt = 0; kt < g.k_tiles; ++kt) {
      const int64_t j0 = kt * kBlockK, n = g.keys_in(kt);
      const TileState state = kt < span.first || kt > span.last ? TileState::Empty : tile_state(p.mask, g, b, qt, kt);
      if (state != TileState::Empty) {
        const TileColumns t = scores(kt, state);
        probabilities_from_stats(stacked(), t.cols, w.s.get(), kBlockK, w.row_max.get(), w.log_sum.get());
      }
      for (int64_t hh = 0; hh < g.group; ++hh)
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t dst = (out_row(hh) + r) * g.k_len + j0;
          if (state == TileState::Empty) {
            zero_row(p.dtype, p.weights, dst, n);
          } else {
            store_row(p.dtype, w.s.get() + (hh * rows + r) * kBlockK, n, 1.f, p.weights, dst);
          }
        }
    }
  }
};

}  // namespace

void attention_fwd_f32_math(const AttentionFwdParams& p) {
  if (attention_fwd_decode_applies(p)) return attention_fwd_decode(p);
  const int64_t group = p.heads / p.kv_heads;
  // a tile holds about kBlockQ stacked rows, whatever the group size
  const AttentionGeometry g = geometry_of(p, std::max<int64_t>(1, kBlockQ / group));
  if (g.batch * g.heads * g.q_len == 0) return;
  const std::vector<TileSpan> spans = key_spans_of_query_tiles(p.mask, g);
  const bool pairs = uses_bf16_products(p);
  const PackedKeys keys = pack_keys(p, g, /*for_backward=*/false, pairs);
  const int64_t items = g.batch * g.kv_heads * g.q_tiles;
  std::vector<int64_t> cost((size_t)items);
  for (int64_t it = 0; it < items; ++it) {
    const int64_t qt = it % g.q_tiles, b = it / (g.kv_heads * g.q_tiles);
    cost[it] = spans[b * g.q_tiles + qt].non_empty;
  }
  const std::vector<int64_t> order = schedule_order(cost, g.q_tiles);
  const double work = double(g.batch) * g.heads * g.q_len * g.k_len * (g.d + g.dv);  // multiply-adds, unmasked
  run_region(worth_parallel(items, work), [&] {
    ForwardScratch scratch(g, g.group * g.q_block, pairs);
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < items; ++n) {
      const int64_t it = order[n];
      const int64_t qt = it % g.q_tiles, hk = (it / g.q_tiles) % g.kv_heads, b = it / (g.kv_heads * g.q_tiles);
      ForwardItem{p, g, keys, scratch, b, hk, qt, g.q_rows_in(qt)}.run(spans[b * g.q_tiles + qt]);
    }
  });
}

}  // namespace cpu
}  // namespace maskattn
