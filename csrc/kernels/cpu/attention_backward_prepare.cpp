// Backward operands (fp32 q and dout, delta) and the probability recomputation shared by the passes.
#include <algorithm>

#include "attention_backward.h"
#include "attention_dot_scores.h"
#include "attention_gemm.h"
#include "attention_rows.h"
#include "attention_softmax_tile.h"
#include "attention_tile_mask.h"

namespace maskattn {
namespace cpu {

void recompute_probabilities(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                             const float* q_tile, int64_t b, int64_t h, int64_t qt, int64_t kt, TileState state,
                             float* s, float* bias) {
  const AttentionFwdParams& p = bp.fwd;
  const int64_t rows = g.q_rows_in(qt), n = g.keys_in(kt), cols = round_up16(n);
  if (scores_by_dot_products(p)) {
    // the forward summed these scores by dot products: recompute them the same way
    const int64_t live = g.live_keys_in(p.mask, b, kt);
    for (int64_t r = 0; r < rows; ++r) std::fill(s + r * kBlockK + live, s + r * kBlockK + cols, 0.f);
    dot_product_scores(q_tile, g.d_pad, rows, keys.k_rows(b, h / g.group, kt), g.d_pad, live, g.d, s, kBlockK, 1);
  } else {
    gemm_tile(rows, cols, g.d, GemmA{q_tile, g.d_pad, 1}, keys.k_t_tile(b, h / g.group, kt), kBlockK, s, kBlockK,
              GemmInto::Overwrite);
  }
  // a Full last tile may still have padding lanes past k_len to drop
  if (state == TileState::Partial || cols != n)
    mask_score_tile(p.mask, b, h, g.first_row(qt), rows, kt * kBlockK, cols, g.k_len, s, kBlockK, bias);
  // the forward's row statistics, or (lse, 0) where the caller gave only a (merged) lse
  float m[kBlockQ], log_sum[kBlockQ];
  const int64_t row0 = (b * g.heads + h) * g.q_len + g.first_row(qt);
  for (int64_t r = 0; r < rows; ++r) {
    m[r] = p.row_stats ? p.row_stats[2 * (row0 + r)] : p.lse[row0 + r];
    log_sum[r] = p.row_stats ? p.row_stats[2 * (row0 + r) + 1] : 0.f;
  }
  probabilities_from_stats(rows, cols, s, kBlockK, m, log_sum);
}

BackwardOperands prepare_backward(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                                  const std::vector<TileSpan>& key_spans) {
  const AttentionFwdParams& p = bp.fwd;
  BackwardOperands ops;
  const int64_t all_rows = g.batch * g.heads * g.q_len;
  ops.q = FloatBuffer(all_rows * g.d_pad);
  ops.dout = FloatBuffer(all_rows * g.dv_pad);
  ops.delta = FloatBuffer(all_rows);
  const int64_t items = g.batch * g.heads * g.q_tiles;
#pragma omp parallel
  {
    FloatBuffer out_row(g.dv_pad), s(kBlockQ * kBlockK), bias(2 * kBlockK);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t qt = it % g.q_tiles, h = (it / g.q_tiles) % g.heads, b = it / (g.heads * g.q_tiles);
      const int64_t rows = g.q_rows_in(qt), row0 = (b * g.heads + h) * g.q_len + g.first_row(qt);
      const int64_t live = g.live_rows_in(p.mask, b, qt);
      for (int64_t r = live; r < rows; ++r) {
        // padded query rows attend nothing: zeros, whatever their inputs hold
        std::fill(ops.q.get() + (row0 + r) * g.d_pad, ops.q.get() + (row0 + r + 1) * g.d_pad, 0.f);
        std::fill(ops.dout.get() + (row0 + r) * g.dv_pad, ops.dout.get() + (row0 + r + 1) * g.dv_pad, 0.f);
        ops.delta.get()[row0 + r] = 0.f;
      }
      for (int64_t r = 0; r < live; ++r) {
        const int64_t row = row0 + r;
        load_row_f32(p.dtype, p.q, b * p.q_stride_b + h * p.q_stride_h + (g.first_row(qt) + r) * p.q_stride_i, g.d,
                     (float)p.scale, ops.q.get() + row * g.d_pad, g.d_pad);
        float* dout = ops.dout.get() + row * g.dv_pad;
        load_row_f32(p.dtype, bp.dout, row * g.dv, g.dv, 1.f, dout, g.dv_pad);
        load_row_f32(p.dtype, p.out, row * g.dv, g.dv, 1.f, out_row.get(), g.dv_pad);
        f32x16 acc = splat16(0.f);
        for (int64_t c = 0; c < g.dv_pad; c += kLanes) acc += load16(dout + c) * load16(out_row.get() + c);
        ops.delta.get()[row] = reduce_sum16(acc) - (bp.dlse ? bp.dlse[row] : 0.f);
      }
      if (!bp.dweights) continue;
      // the weights' gradient enters the softmax through rowsum(P * dweights) too
      const TileSpan& span = key_spans[b * g.q_tiles + qt];
      for (int64_t kt = span.first; kt <= span.last; ++kt) {
        const TileState state = tile_state(p.mask, g, b, qt, kt);
        if (state == TileState::Empty) continue;
        recompute_probabilities(bp, g, keys, ops.q_row(g, row0), b, h, qt, kt, state, s.get(), bias.get());
        for (int64_t r = 0; r < rows; ++r) {
          float acc = 0.f;
          for (int64_t c = 0; c < g.keys_in(kt); ++c)
            acc +=
                s.get()[r * kBlockK + c] * load_element(p.dtype, bp.dweights, (row0 + r) * g.k_len + kt * kBlockK + c);
          ops.delta.get()[row0 + r] += acc;
        }
      }
    }
  }
  return ops;
}

}  // namespace cpu
}  // namespace maskattn
