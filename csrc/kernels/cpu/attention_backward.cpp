// Backward of fused masked attention on CPU (fp32 math), FlashAttention-2 style: probabilities are
// recomputed tile by tile from the saved lse and only non-empty tiles are visited.
//
// Deterministic and race-free: an item owning (batch, kv head) walks its key tiles, accumulating
// dK/dV per tile and dQ into the fp32 workspace rows of its own query heads. With too few
// (batch, kv head) pairs to keep every thread busy, dK/dV run per (batch, kv head, key tile) and
// dQ in a second pass per (batch, head, query tile) that recomputes P and dS. The gradient of a
// mask that broadcasts over batch, heads or keys merges the items that share its elements
// (attention_mask_grad.h) and takes the split passes.
#include "attention_backward.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "attention_dropout.h"
#include "attention_gemm.h"
#include "attention_mask_grad.h"
#include "attention_paths.h"
#include "attention_rows.h"
#include "bf16_tiles.h"
#include "parallel_grain.h"

namespace maskattn {
namespace cpu {
namespace {

struct BackwardPass {
  const AttentionBwdParams& bp;
  const AttentionGeometry& g;
  const PackedKeys& keys;
  const BackwardOperands& ops;
  const std::vector<TileSpan>& key_spans;    // (b, q tile) -> key tiles
  const std::vector<TileSpan>& query_spans;  // (b, key tile) -> query tiles

  float* dq_acc;  // fp32 dQ accumulators, (batch * heads * q_len) rows of d_pad

  float* dq_rows(int64_t row) const { return dq_acc + row * g.d_pad; }

  // One (query tile, key tile) pair: P, dS, then dV += P^T dO and dK += dS^T (scale q) into the
  // scratch tiles (with_kv, which also adds dS into the mask's gradient) and dQ += dS K into the
  // workspace (with_q). With dropout dP and P are dropped and scaled, P only after dS used it.
  // With bf16 products P and dS are rounded to bf16 for the products that take them, and dV, dK
  // accumulate transposed (dV^T += dO^T P, dK^T += q^T dS: P and dS are their B operands).
  void pair(int64_t b, int64_t h, int64_t qt, int64_t kt, TileState state, BackwardScratch& w, bool with_kv,
            bool with_q) const {
    const int64_t rows = g.q_rows_in(qt), n = g.keys_in(kt), cols = round_up16(n);
    const int64_t row0 = (b * g.heads + h) * g.q_len + g.first_row(qt), hk = h / g.group;
    float *s = w.s.get(), *ds = w.ds.get();
    const TileColumns t = row_part_columns(bp.fwd.mask, b, g.first_row(qt), rows, kt, n, state);
    recompute_probabilities(bp, g, keys, ops, b, h, qt, kt, state, t, s, w.bias.get());
    // dP rows [r0, r0 + m) over columns e = dO V^T
    auto dp_rows = [&](int64_t r0, int64_t m, ColumnExtent e) {
      float* c = ds + r0 * kBlockK + e.lo;
      if (ops.pairs) {
        cpu_kernels().gemm_bf16({m, e.hi - e.lo, ops.dv_pad32, ops.dout16_row(row0 + r0), ops.dv_pad32,
                                 keys.v_t_pairs_tile(b, hk, kt) + 2 * e.lo, 2 * kBlockK, c, kBlockK,
                                 GemmInto::Overwrite, nullptr, 1.f});
      } else {
        gemm_tile(m, e.hi - e.lo, g.dv, GemmA{ops.dout_row(g, row0 + r0), g.dv_pad, 1},
                  keys.v_t_tile(b, hk, kt) + e.lo, kBlockK, c, kBlockK, GemmInto::Overwrite);
      }
    };
    if (t.parts == 0) {
      dp_rows(0, rows, ColumnExtent{0, cols});
    } else {  // P is 0 past a part's columns: dP 0 there keeps dS = P (dP - delta) at 0
      for (int k = 0; k < t.parts; ++k) {
        const ColumnExtent e = t.extent[k];
        if (e.hi > e.lo) dp_rows(t.part_begin(k), t.part_end(k) - t.part_begin(k), e);
        for (int64_t r = t.part_begin(k); r < t.part_end(k); ++r) {
          std::fill(ds + r * kBlockK, ds + r * kBlockK + e.lo, 0.f);
          std::fill(ds + r * kBlockK + e.hi, ds + r * kBlockK + cols, 0.f);
        }
      }
    }
    const DropoutSpec& drop = bp.fwd.dropout;
    float* keep = w.keep.get();
    if (drop.enabled) {
      uint64_t e0[kBlockQ];
      for (int64_t r = 0; r < rows; ++r) e0[r] = drop.element(b, h, g.first_row(qt) + r, kt * kBlockK);
      dropout_rows(drop, e0, rows, n, (float)drop.scale, keep, kBlockK);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* dsr = ds + r * kBlockK;
      if (drop.enabled) multiply_row(dsr, keep + r * kBlockK, n);
      if (bp.dweights)
        for (int64_t c = 0; c < n; ++c)
          dsr[c] += load_element(bp.fwd.dtype, bp.dweights, (row0 + r) * g.k_len + kt * kBlockK + c);
      const f32x16 delta = splat16(ops.delta.get()[row0 + r]);
      for (int64_t c = 0; c < cols; c += kLanes)
        store16(dsr + c, load16(s + r * kBlockK + c) * (load16(dsr + c) - delta));
      if (drop.enabled) multiply_row(s + r * kBlockK, keep + r * kBlockK, n);
    }
    if (with_kv && bp.mask_grad.wanted())
      add_mask_grad_tile<float>(bp.mask_grad, b, h, g.first_row(qt), rows, kt * kBlockK, n, ds, kBlockK);
    if (ops.pairs) return pair_products_bf16(b, h, qt, kt, t, w, with_kv, with_q);
    if (with_kv && t.parts == 0) {
      gemm_tile(n, g.dv_pad, rows, GemmA{s, 1, kBlockK}, ops.dout_row(g, row0), g.dv_pad, w.dv.get(), g.dv_pad,
                GemmInto::Accumulate);
      gemm_tile(n, g.d_pad, rows, GemmA{ds, 1, kBlockK}, ops.q_row(g, row0), g.d_pad, w.dk.get(), g.d_pad,
                GemmInto::Accumulate);
    } else if (with_kv) {
      // dV, dK of each 16-key chunk over the row parts whose columns hold it (first to last: P and
      // dS are 0 in the rows between, so the sums are the whole tile's)
      for (int64_t c = 0; c < n; c += 16) {
        int first = -1, last = -1;
        for (int k = 0; k < t.parts; ++k)
          if (t.extent[k].lo <= c && c < t.extent[k].hi) {
            if (first < 0) first = k;
            last = k;
          }
        if (first < 0) continue;
        const int64_t r0 = t.part_begin(first), depth = t.part_end(last) - r0, m = std::min<int64_t>(16, n - c);
        gemm_tile(m, g.dv_pad, depth, GemmA{s + r0 * kBlockK + c, 1, kBlockK}, ops.dout_row(g, row0 + r0), g.dv_pad,
                  w.dv.get() + c * g.dv_pad, g.dv_pad, GemmInto::Accumulate);
        gemm_tile(m, g.d_pad, depth, GemmA{ds + r0 * kBlockK + c, 1, kBlockK}, ops.q_row(g, row0 + r0), g.d_pad,
                  w.dk.get() + c * g.d_pad, g.d_pad, GemmInto::Accumulate);
      }
    }
    if (!with_q) return;
    if (t.parts == 0)
      return gemm_tile(rows, g.d_pad, n, GemmA{ds, kBlockK, 1}, keys.k_rows(b, hk, kt), g.d_pad, dq_rows(row0), g.d_pad,
                       GemmInto::Accumulate);
    for (int k = 0; k < t.parts; ++k) {  // dQ of a part over its columns only (dS is 0 past them)
      const int64_t r0 = t.part_begin(k), lo = t.extent[k].lo, hi = std::min(t.extent[k].hi, n);
      if (hi > lo)
        gemm_tile(t.part_end(k) - r0, g.d_pad, hi - lo, GemmA{ds + r0 * kBlockK + lo, kBlockK, 1},
                  keys.k_rows(b, hk, kt) + lo * g.d_pad, g.d_pad, dq_rows(row0 + r0), g.d_pad, GemmInto::Accumulate);
    }
  }

  // The pair's dV^T, dK^T and dQ products on bf16 operands (P and dS in w.s, w.ds).
  void pair_products_bf16(int64_t b, int64_t h, int64_t qt, int64_t kt, const TileColumns& t, BackwardScratch& w,
                          bool with_kv, bool with_q) const {
    const int64_t rows = g.q_rows_in(qt), n = g.keys_in(kt), cols = round_up16(n);
    const int64_t row0 = (b * g.heads + h) * g.q_len + g.first_row(qt), hk = h / g.group;
    const int64_t tile = (b * g.heads + h) * g.q_tiles + qt, depth = round_up32(rows);
    const GemmBf16Fn gemm = cpu_kernels().gemm_bf16;
    if (with_kv) {
      uint16_t *p_pairs = w.bf16(w.p_pairs), *ds_pairs = w.bf16(w.ds_pairs);
      round_tile_pairs_over_rows(w.s.get(), rows, cols, kBlockK, p_pairs, 2 * kBlockK);
      round_tile_pairs_over_rows(w.ds.get(), rows, cols, kBlockK, ds_pairs, 2 * kBlockK);
      gemm({g.dv, cols, depth, ops.dout16_t_tile(tile), kBlockQ, p_pairs, 2 * kBlockK, w.dv_t.get(), kBlockK,
            GemmInto::Accumulate, nullptr, 1.f});
      gemm({g.d, cols, depth, ops.q16_t_tile(tile), kBlockQ, ds_pairs, 2 * kBlockK, w.dk_t.get(), kBlockK,
            GemmInto::Accumulate, nullptr, (float)bp.fwd.scale});
    }
    if (with_q) {
      uint16_t* ds16 = w.bf16(w.ds16);
      round_tile_rows_to_bf16(w.ds.get(), rows, cols, kBlockK, ds16, kBlockK);
      if (t.parts == 0)
        return gemm({rows, g.d_pad, round_up32(n), ds16, kBlockK, keys.k_row_pairs_tile(b, hk, kt), 2 * g.d_pad,
                     dq_rows(row0), g.d_pad, GemmInto::Accumulate, nullptr, 1.f});
      for (int k = 0; k < t.parts; ++k) {  // depth in steps of 32 (dS past a part's columns is 0)
        const int64_t r0 = t.part_begin(k), lo = t.extent[k].lo / 32 * 32;
        const int64_t hi = std::min(round_up32(t.extent[k].hi), round_up32(n));
        if (t.extent[k].hi > t.extent[k].lo)
          gemm({t.part_end(k) - r0, g.d_pad, hi - lo, ds16 + r0 * kBlockK + lo, kBlockK,
                keys.k_row_pairs_tile(b, hk, kt) + lo * g.d_pad, 2 * g.d_pad, dq_rows(row0 + r0), g.d_pad,
                GemmInto::Accumulate, nullptr, 1.f});
      }
    }
  }

  // dK, dV of key tile kt of (b, hk), from every query tile of the group's heads; dQ too if with_q.
  void key_tile(int64_t b, int64_t hk, int64_t kt, BackwardScratch& w, bool with_q) const {
    const int64_t n = g.keys_in(kt), row0 = (b * g.kv_heads + hk) * g.k_len + kt * kBlockK;
    const TileSpan& span = query_spans[b * g.k_tiles + kt];
    if (ops.pairs) {
      std::fill(w.dk_t.get(), w.dk_t.get() + g.d * kBlockK, 0.f);
      std::fill(w.dv_t.get(), w.dv_t.get() + g.dv * kBlockK, 0.f);
    } else {
      std::fill(w.dk.get(), w.dk.get() + n * g.d_pad, 0.f);
      std::fill(w.dv.get(), w.dv.get() + n * g.dv_pad, 0.f);
    }
    for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h)
      for (int64_t qt = span.first; qt <= span.last; ++qt) {
        const TileState state = tile_state(bp.fwd.mask, g, b, qt, kt);
        if (state != TileState::Empty) pair(b, h, qt, kt, state, w, /*with_kv=*/true, with_q);
      }
    if (ops.pairs) {  // dK, dV rows from their transposes
      transpose_words(reinterpret_cast<const uint32_t*>(w.dk_t.get()), kBlockK, g.d, n,
                      reinterpret_cast<uint32_t*>(w.dk.get()), g.d_pad);
      transpose_words(reinterpret_cast<const uint32_t*>(w.dv_t.get()), kBlockK, g.dv, n,
                      reinterpret_cast<uint32_t*>(w.dv.get()), g.dv_pad);
    }
    for (int64_t r = 0; r < n; ++r) {
      store_row(bp.fwd.dtype, w.dk.get() + r * g.d_pad, g.d, 1.f, bp.dk, (row0 + r) * g.d);
      store_row(bp.fwd.dtype, w.dv.get() + r * g.dv_pad, g.dv, 1.f, bp.dv, (row0 + r) * g.dv);
    }
  }

  // dQ of query tile qt of (b, h) alone (split schedule).
  void query_tile(int64_t b, int64_t h, int64_t qt, BackwardScratch& w) const {
    const TileSpan& span = key_spans[b * g.q_tiles + qt];
    for (int64_t kt = span.first; kt <= span.last; ++kt) {
      const TileState state = tile_state(bp.fwd.mask, g, b, qt, kt);
      if (state != TileState::Empty) pair(b, h, qt, kt, state, w, /*with_kv=*/false, /*with_q=*/true);
    }
  }
};

// Runs fn(item, scratch) over items in schedule_order, dynamically scheduled.
template <typename Fn>
void run_items(const AttentionGeometry& g, bool pairs, const std::vector<int64_t>& cost, int64_t group_size, Fn&& fn) {
  const std::vector<int64_t> order = schedule_order(cost, group_size);
  const int64_t items = (int64_t)order.size();
  // the backward's multiply-adds, unmasked: five products per score (3 of head_dim, 2 of v_head_dim)
  const double work = double(g.batch) * g.heads * g.q_len * g.k_len * (3.0 * g.d + 2.0 * g.dv);
  run_region(worth_parallel(items, work), [&] {
    BackwardScratch scratch(g, pairs);
    const MatrixUnitScope units(cpu_kernels(), pairs);
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < items; ++n) fn(order[n], scratch);
  });
}

}  // namespace

int64_t attention_bwd_workspace_floats_f32_math(const AttentionBwdParams& bp) {
  const AttentionFwdParams& p = bp.fwd;
  return p.batch * p.heads * p.q_len * round_up16(p.head_dim);  // dQ accumulators
}

void attention_bwd_f32_math(const AttentionBwdParams& bp) {
  const AttentionFwdParams& p = bp.fwd;
  const AttentionGeometry g = geometry_of(p);
  const std::vector<TileSpan> key_spans = key_spans_of_query_tiles(p.mask, g);
  const std::vector<TileSpan> query_spans = query_spans_of_key_tiles(p.mask, g);
  const PackedKeys keys = pack_keys(p, g, /*for_backward=*/true, uses_bf16_products(p));
  const BackwardOperands ops = prepare_backward(bp, g, keys, key_spans);
  // dQ accumulators: the caller's zeroed workspace, or pooled scratch zeroed here
  FloatBuffer own_dq;
  float* dq_acc = bp.workspace_f32;
  if (dq_acc == nullptr) {
    const int64_t floats = attention_bwd_workspace_floats_f32_math(bp);
    own_dq = FloatBuffer(floats);
    dq_acc = own_dq.get();
    run_region(worth_parallel(ceil_div(floats, 4096), floats), [&] {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < floats; c += 4096) std::fill(dq_acc + c, dq_acc + std::min(c + 4096, floats), 0.f);
    });
  }
  const BackwardPass pass{bp, g, keys, ops, key_spans, query_spans, dq_acc};

  const int64_t pairs = g.batch * g.kv_heads;
  const bool merged = bp.mask_grad.wanted() && bp.mask_grad.reduced;
  const bool fused = !merged && pairs >= 4 * omp_get_max_threads();
  if (fused) {
    std::vector<int64_t> cost((size_t)pairs, 0);
    for (int64_t it = 0; it < pairs; ++it)
      for (int64_t kt = 0; kt < g.k_tiles; ++kt) cost[it] += query_spans[(it / g.kv_heads) * g.k_tiles + kt].non_empty;
    run_items(g, keys.pairs, cost, /*group_size=*/(int64_t)cost.size(), [&](int64_t it, BackwardScratch& w) {
      for (int64_t kt = 0; kt < g.k_tiles; ++kt)
        pass.key_tile(it / g.kv_heads, it % g.kv_heads, kt, w, /*with_q=*/true);
    });
  } else {
    // items (batch, kv head, key tile), merged along what a reduced mask gradient broadcasts over
    const MaskGradOut& mg = bp.mask_grad;
    const OwnedItems items = owned_items(mg, g.batch, mg.stride_b, g.kv_heads, mg.stride_h, g.k_tiles, mg.stride_j);
    std::vector<int64_t> cost((size_t)items.count(), 0);
    for (int64_t it = 0; it < items.count(); ++it)
      items.for_each(it, [&](int64_t b, int64_t, int64_t kt) { cost[it] += query_spans[b * g.k_tiles + kt].non_empty; });
    run_items(g, keys.pairs, cost, items.extent(2), [&](int64_t it, BackwardScratch& w) {
      items.for_each(it, [&](int64_t b, int64_t hk, int64_t kt) { pass.key_tile(b, hk, kt, w, /*with_q=*/false); });
    });
    std::vector<int64_t> q_cost((size_t)(g.batch * g.heads * g.q_tiles));
    for (int64_t it = 0; it < (int64_t)q_cost.size(); ++it)
      q_cost[it] = key_spans[(it / (g.heads * g.q_tiles)) * g.q_tiles + it % g.q_tiles].non_empty;
    run_items(g, keys.pairs, q_cost, g.q_tiles, [&](int64_t it, BackwardScratch& w) {
      const int64_t qt = it % g.q_tiles, h = (it / g.q_tiles) % g.heads, b = it / (g.heads * g.q_tiles);
      pass.query_tile(b, h, qt, w);
    });
  }
  // dQ = scale * dS K, from the fp32 accumulators (zero for rows that attend nothing)
  const int64_t all_rows = g.batch * g.heads * g.q_len;
  run_region(worth_parallel(all_rows, double(all_rows) * g.d), [&] {
#pragma omp for schedule(static)
    for (int64_t row = 0; row < all_rows; ++row)
      store_row(p.dtype, pass.dq_rows(row), g.d, (float)p.scale, bp.dq, row * g.d);
  });
}

}  // namespace cpu
}  // namespace maskattn
