// Forward for a few query rows per kv head (decoding: Lq = 1, or a short draft), where each K/V
// tile is read by one work item only: packing K^T would cost more memory traffic than attention.
//
// The item (batch, kv head) stacks its R <= 16 rows (all query heads of the group) as the rows of
// one score tile. Scores come from the K rows as stored: by dot products along d, widening 16-bit
// keys in registers (R <= 8), or else as S^T = K Q^T with each row in a lane of a vector,
// transposed once. From there the tile is the main forward's: row-major softmax steps
// vectorised over keys, then O += P V, streaming V rows as stored (R <= 8: decode_pv.h, the
// output in registers; more rows: the tile product). Long spans of keys (long for the number of
// items) are cut into chunks whose partial results (output, max, sum per row) are merged at the end.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_dot_scores.h"
#include "attention_dropout.h"
#include "attention_gemm.h"
#include "attention_layout.h"
#include "attention_pack.h"
#include "attention_paths.h"
#include "attention_rows.h"
#include "attention_schedule.h"
#include "attention_softmax_tile.h"
#include "attention_tile_mask.h"
#include "parallel_grain.h"
#include "widen_rows.h"

namespace maskattn {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kChunkTiles = 16;  // key tiles a work item takes (1024 keys); its partial result is small beside them
constexpr int64_t kMinChunkTiles = 4;  // below 256 keys a chunk's fixed costs (q, its partial result) show
constexpr int64_t kChunksWanted = 8;  // chunks over all items: work for 8 threads, few enough to cost little

// Key tiles per chunk for an item whose span has span_tiles tiles: kChunkTiles, or fewer when the
// items are few (batch 1 with one kv head and 512 cached keys would be one chunk on one thread).
// From the shapes and the span (the lengths) only, never the thread count.
int64_t chunk_tiles_for(int64_t items, int64_t span_tiles) {
  const int64_t chunks_per_item = ceil_div(kChunksWanted, items);
  return std::clamp(ceil_div(span_tiles, chunks_per_item), kMinChunkTiles, kChunkTiles);
}

constexpr int64_t kStreamedPvRows = kDotProductRows;  // above this, gemm_tile's register blocks win

struct DecodeScratch {
  FloatBuffer q, q_t, s_t, s, k, v, out, row_max, row_sum16, alpha, log_sum, bias;
  explicit DecodeScratch(const AttentionGeometry& g)
      : q(kLanes * g.d),
        q_t(g.d * kLanes),
        s_t(kBlockK * kLanes),
        s(kLanes * kBlockK),
        k(kBlockK * g.d),
        v(kBlockK * g.dv_pad),
        out(kLanes * g.dv_pad),
        row_max(kLanes),
        row_sum16(kLanes * kLanes),
        alpha(kLanes),
        log_sum(kLanes),
        bias(2 * kBlockK) {}
};

struct DecodeItem {
  const AttentionFwdParams& p;
  const AttentionGeometry& g;
  DecodeScratch& w;
  int64_t b, hk;

  int64_t rows() const { return g.group * g.q_len; }  // row r: head r / q_len of the group, query r % q_len
  int64_t head(int64_t r) const { return hk * g.group + r / g.q_len; }
  int64_t out_row(int64_t r) const { return (b * g.heads + head(r)) * g.q_len + r % g.q_len; }

  // q rows (R x d), scaled, and for the lane product their transpose (d x 16); padded query rows
  // and unused lanes are zero.
  void load_q() const {
    const int64_t live = g.live_rows_in(p.mask, b, 0);
    float *q = w.q.get(), *q_t = w.q_t.get();
    std::fill(q, q + rows() * g.d, 0.f);
    std::fill(q_t, q_t + g.d * kLanes, 0.f);
    for (int64_t r = 0; r < rows(); ++r) {
      if (r % g.q_len >= live) continue;
      const int64_t off = b * p.q_stride_b + head(r) * p.q_stride_h + (r % g.q_len) * p.q_stride_i;
      load_row_f32(p.dtype, p.q, off, g.d, (float)p.scale, q + r * g.d, g.d);
      if (!scores_by_dot_products(p))
        for (int64_t c = 0; c < g.d; ++c) q_t[c * kLanes + r] = q[r * g.d + c];
    }
  }

  // The scores of key tile kt in w.s (R x cols, row stride kBlockK), masked; keys past the
  // sequence's length are -inf. Returns cols (the tile's keys rounded up to 16).
  int64_t scores(int64_t kt, TileState state) const {
    const int64_t n = g.keys_in(kt), cols = round_up16(n), live = g.live_keys_in(p.mask, b, kt), j0 = kt * kBlockK;
    const int64_t k_off = b * p.k_stride_b + hk * p.k_stride_h + j0 * p.k_stride_j;
    float* s = w.s.get();
    if (scores_by_dot_products(p)) {
      with_rows_of(p.dtype, p.k, k_off, [&](auto k) {
        dot_product_scores(w.q.get(), g.d, rows(), k, p.k_stride_j, live, g.d, s, kBlockK, 1);
      });
    } else {
      // many rows: K broadcast into the 16 row lanes of S^T, then one transpose
      const float* k = static_cast<const float*>(p.k) + k_off;
      int64_t ldk = p.k_stride_j;
      if (p.dtype != ScalarKind::Float32) {
        for (int64_t j = 0; j < live; ++j)
          load_row_f32(p.dtype, p.k, k_off + j * p.k_stride_j, g.d, 1.f, w.k.get() + j * g.d, g.d);
        k = w.k.get(), ldk = g.d;
      }
      gemm_tile(live, kLanes, g.d, GemmA{k, ldk, 1}, w.q_t.get(), kLanes, w.s_t.get(), kLanes, GemmInto::Overwrite);
      transpose_words(reinterpret_cast<const uint32_t*>(w.s_t.get()), kLanes, live, rows(),
                      reinterpret_cast<uint32_t*>(s), kBlockK);
    }
    for (int64_t r = 0; r < rows(); ++r) std::fill(s + r * kBlockK + live, s + r * kBlockK + cols, kNegInf);
    // a Full last tile may still have padding lanes past k_len to drop
    if (state == TileState::Partial || cols != n)
      for (int64_t hh = 0; hh < g.group; ++hh)
        mask_score_tile(p.mask, b, hk * g.group + hh, 0, g.q_len, j0, cols, g.k_len, s + hh * g.q_len * kBlockK,
                        kBlockK, w.bias.get());
    return cols;
  }

  // Floats of one chunk's partial result: out (R x dv_pad), then each row's max and sum.
  int64_t partial_floats() const { return rows() * (g.dv_pad + 2); }

  // Key tiles [first, last] into a partial result: the unnormalised output rows and, per row, the
  // running max m of the scores and the sum l of exp(s - m) (m = -inf, l = 0: no allowed key).
  void attend_chunk(int64_t first, int64_t last, float* partial) const {
    float *out = partial, *s = w.s.get(), *m = w.row_max.get(), *l16 = w.row_sum16.get(), *alpha = w.alpha.get();
    load_q();
    std::fill(m, m + kLanes, kNegInf);  // whole vectors: online_softmax_tile reads 16 rows at once
    std::fill(alpha, alpha + kLanes, 0.f);
    std::fill(l16, l16 + rows() * kLanes, 0.f);
    std::fill(out, out + rows() * g.dv_pad, 0.f);
    for (int64_t kt = first; kt <= last; ++kt) {
      const TileState state = tile_state(p.mask, g, b, 0, kt);
      if (state == TileState::Empty) continue;
      const int64_t cols = scores(kt, state);
      online_softmax_tile(rows(), cols, s, kBlockK, m, l16, alpha);
      if (p.dropout.enabled)  // after the row sums: they, lse and the weights stay undropped
        for (int64_t hh = 0; hh < g.group; ++hh)
          dropout_tile(p.dropout, b, hk * g.group + hh, 0, g.q_len, kt * kBlockK, g.keys_in(kt), 1.f,
                       s + hh * g.q_len * kBlockK, kBlockK);
      const int64_t live = g.live_keys_in(p.mask, b, kt);
      if (rows() <= kStreamedPvRows && g.dv % 8 == 0) {
        const int64_t v_off = b * p.v_stride_b + hk * p.v_stride_h + kt * kBlockK * p.v_stride_j;
        cpu_kernels().decode_pv(
            DecodePvArgs{rows(), live, s, kBlockK, p.dtype, p.v, v_off, p.v_stride_j, g.dv, out, g.dv_pad, alpha});
      } else {
        gemm_tile(rows(), g.dv_pad, live, GemmA{s, kBlockK, 1}, v_rows(kt, live), v_stride(), out, g.dv_pad,
                  GemmInto::ScaleRowsAccumulate, alpha);
      }
    }
    float* stats = partial + rows() * g.dv_pad;
    for (int64_t r = 0; r < rows(); ++r) {
      stats[r] = m[r];
      stats[rows() + r] = tree_sum16(load16(l16 + r * kLanes));
    }
  }

  // The output, lse and row statistics from the item's `count` chunk partials, in key order:
  // m = max m_c, l = sum l_c exp(m_c - m), out = sum out_c exp(m_c - m) / l. One chunk gives its
  // own values, bit for bit (factor exp(0) = 1).
  void finish(const float* partials, int64_t count, const TileSpan& span) const {
    float *acc = w.out.get(), *m = w.row_max.get(), *log_sum = w.log_sum.get();
    const int64_t stride = partial_floats();
    for (int64_t r = 0; r < rows(); ++r) {
      float mx = kNegInf;
      for (int64_t c = 0; c < count; ++c) mx = std::max(mx, partials[c * stride + rows() * g.dv_pad + r]);
      float l = 0.f;
      std::fill(acc, acc + g.dv_pad, 0.f);
      for (int64_t c = 0; mx != kNegInf && c < count; ++c) {
        const float* part = partials + c * stride;
        const float mc = part[rows() * g.dv_pad + r];
        if (mc == kNegInf) continue;  // no allowed key in this chunk
        const float f = std::exp(mc - mx);
        l += part[rows() * g.dv_pad + rows() + r] * f;
        const f32x16 f16 = splat16(f);
        for (int64_t c2 = 0; c2 < g.dv_pad; c2 += kLanes)
          store16(acc + c2, fma16(load16(part + r * g.dv_pad + c2), f16, load16(acc + c2)));
      }
      const int64_t dst = out_row(r);
      if (l > 0.f) {
        store_row(p.dtype, acc, g.dv, (float)p.dropout.scale / l, p.out, dst * g.dv);
        m[r] = mx;
        log_sum[r] = std::log(l);
        p.lse[dst] = m[r] + log_sum[r];
      } else {
        zero_row(p.dtype, p.out, dst * g.dv, g.dv);
        m[r] = kNegInf;
        log_sum[r] = 0.f;
        p.lse[dst] = kNegInf;
      }
      p.row_stats[2 * dst] = m[r];
      p.row_stats[2 * dst + 1] = log_sum[r];
    }
    if (p.weights) {
      load_q();  // this thread's last chunk may have been another item's
      write_weights(span);
    }
  }

  bool v_direct() const { return p.dtype == ScalarKind::Float32 && g.dv % kLanes == 0; }
  int64_t v_stride() const { return v_direct() ? p.v_stride_j : g.dv_pad; }
  const float* v_rows(int64_t kt, int64_t live) const {
    const int64_t off = b * p.v_stride_b + hk * p.v_stride_h + kt * kBlockK * p.v_stride_j;
    if (v_direct()) return static_cast<const float*>(p.v) + off;
    for (int64_t j = 0; j < live; ++j)
      load_row_f32(p.dtype, p.v, off + j * p.v_stride_j, g.dv, 1.f, w.v.get() + j * g.dv_pad, g.dv_pad);
    return w.v.get();
  }

  // Probabilities exp((s - m) - log l) recomputed tile by tile; zeros where tiles are empty.
  void write_weights(const TileSpan& span) const {
    float* s = w.s.get();
    for (int64_t kt = 0; kt < g.k_tiles; ++kt) {
      const int64_t j0 = kt * kBlockK, n = g.keys_in(kt);
      const TileState state = kt < span.first || kt > span.last ? TileState::Empty : tile_state(p.mask, g, b, 0, kt);
      if (state == TileState::Empty) {
        for (int64_t r = 0; r < rows(); ++r) zero_row(p.dtype, p.weights, out_row(r) * g.k_len + j0, n);
        continue;
      }
      const int64_t cols = scores(kt, state);
      probabilities_from_stats(rows(), cols, s, kBlockK, w.row_max.get(), w.log_sum.get());
      for (int64_t r = 0; r < rows(); ++r)
        store_row(p.dtype, s + r * kBlockK, n, 1.f, p.weights, out_row(r) * g.k_len + j0);
    }
  }
};

}  // namespace

bool attention_fwd_decode_applies(const AttentionFwdParams& p) { return (p.heads / p.kv_heads) * p.q_len <= kLanes; }

void attention_fwd_decode(const AttentionFwdParams& p) {
  const AttentionGeometry g = geometry_of(p, std::max<int64_t>(p.q_len, 1));  // one query tile
  const std::vector<TileSpan> spans = key_spans_of_query_tiles(p.mask, g);
  const int64_t items = g.batch * g.kv_heads;
  // Each item's key span cut into chunks (chunk_tiles_for), merged after: a few long sequences
  // (batch 1, few kv heads) still give every thread work. The cut depends on the shapes and
  // lengths only, never on the thread count, so the result does not either.
  std::vector<int64_t> first_chunk(items + 1, 0), chunk_tiles(items, kChunkTiles);
  int64_t most_chunks = 0, span_keys = 0;
  for (int64_t it = 0; it < items; ++it) {
    const TileSpan& span = spans[it / g.kv_heads];
    const int64_t span_tiles = span.non_empty > 0 ? span.last - span.first + 1 : 0;
    chunk_tiles[it] = chunk_tiles_for(items, span_tiles);
    const int64_t chunks = ceil_div(span_tiles, chunk_tiles[it]);
    if (span_tiles > 0) span_keys += std::min((span.last + 1) * kBlockK, g.k_len) - span.first * kBlockK;
    first_chunk[it + 1] = first_chunk[it] + chunks;
    most_chunks = std::max(most_chunks, chunks);
  }
  const int64_t rows = g.group * g.q_len, partial_floats = rows * (g.dv_pad + 2);
  FloatBuffer partials(first_chunk[items] * partial_floats);
  const auto attend = [&](DecodeScratch& scratch, int64_t c) {
    const int64_t it = std::upper_bound(first_chunk.begin(), first_chunk.end(), c) - first_chunk.begin() - 1;
    const int64_t b = it / g.kv_heads, first = spans[b].first + (c - first_chunk[it]) * chunk_tiles[it];
    const int64_t last = std::min(spans[b].last, first + chunk_tiles[it] - 1);
    DecodeItem{p, g, scratch, b, it % g.kv_heads}.attend_chunk(first, last, partials.get() + c * partial_floats);
  };
  const auto finish = [&](DecodeScratch& scratch, int64_t it) {
    const int64_t b = it / g.kv_heads;
    DecodeItem{p, g, scratch, b, it % g.kv_heads}.finish(partials.get() + first_chunk[it] * partial_floats,
                                                        first_chunk[it + 1] - first_chunk[it], spans[b]);
  };
  const double work = double(span_keys) * rows * (g.d + g.dv);  // multiply-adds, at most
  run_region(worth_parallel(first_chunk[items], work), [&] {
    DecodeScratch scratch(g);
    if (most_chunks <= 1) {  // short caches: each item whole, finished at once (one loop, no barrier)
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; ++it) {
        if (first_chunk[it + 1] > first_chunk[it]) attend(scratch, first_chunk[it]);
        finish(scratch, it);
      }
    } else {
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < first_chunk[items]; ++c) attend(scratch, c);
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; ++it) finish(scratch, it);
    }
  });
}

}  // namespace cpu
}  // namespace maskattn
