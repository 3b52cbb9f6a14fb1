// Backward operands (fp32 q and dout, delta) and the probability recomputation shared by the passes.
#include <algorithm>
#include <cstring>
#include <limits>

#include "attention_backward.h"
#include "attention_dot_scores.h"
#include "attention_gemm.h"
#include "attention_rows.h"
#include "attention_softmax_tile.h"
#include "attention_tile_mask.h"
#include "bf16_tiles.h"
#include "parallel_grain.h"

namespace maskattn {
namespace cpu {

void recompute_probabilities(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                             const BackwardOperands& ops, int64_t b, int64_t h, int64_t qt, int64_t kt,
                             TileState state, const TileColumns& t, float* s, float* bias) {
  const AttentionFwdParams& p = bp.fwd;
  const int64_t rows = g.q_rows_in(qt), n = g.keys_in(kt), cols = round_up16(n);
  const int64_t row0 = (b * g.heads + h) * g.q_len + g.first_row(qt), hk = h / g.group;
  if (!ops.pairs && scores_by_dot_products(p)) {
    // the forward summed these scores by dot products: recompute them the same way
    const int64_t live = g.live_keys_in(p.mask, b, kt);
    for (int64_t r = 0; r < rows; ++r) std::fill(s + r * kBlockK + live, s + r * kBlockK + cols, 0.f);
    dot_product_scores(ops.q_row(g, row0), g.d_pad, rows, RowsF32{keys.k_rows(b, hk, kt)}, g.d_pad, live, g.d, s,
                       kBlockK, 1);
  } else {
    // S rows [r0, r0 + m) over columns e: the forward's products (per element the same sums, so
    // the same scores bit for bit, on bf16 operands too)
    auto score_rows = [&](int64_t r0, int64_t m, ColumnExtent e) {
      float* c = s + r0 * kBlockK + e.lo;
      if (ops.pairs) {
        cpu_kernels().gemm_bf16({m, e.hi - e.lo, ops.d_pad32, ops.q16_row(row0 + r0), ops.d_pad32,
                                 keys.k_pairs_tile(b, hk, kt) + 2 * e.lo, 2 * kBlockK, c, kBlockK,
                                 GemmInto::Overwrite, nullptr, (float)p.scale});
      } else {
        gemm_tile(m, e.hi - e.lo, g.d, GemmA{ops.q_row(g, row0 + r0), g.d_pad, 1}, keys.k_t_tile(b, hk, kt) + e.lo,
                  kBlockK, c, kBlockK, GemmInto::Overwrite);
      }
    };
    if (t.parts == 0) {
      score_rows(0, rows, ColumnExtent{0, cols});
    } else {
      const float neg_inf = -std::numeric_limits<float>::infinity();
      for (int k = 0; k < t.parts; ++k) {
        const ColumnExtent e = t.extent[k];
        if (e.hi > e.lo) score_rows(t.part_begin(k), t.part_end(k) - t.part_begin(k), e);
        for (int64_t r = t.part_begin(k); r < t.part_end(k); ++r) {
          std::fill(s + r * kBlockK, s + r * kBlockK + e.lo, neg_inf);
          std::fill(s + r * kBlockK + e.hi, s + r * kBlockK + cols, neg_inf);
        }
      }
    }
  }
  // a Full last tile may still have padding lanes past k_len to drop
  if (state == TileState::Partial || cols != n)
    mask_score_tile(p.mask, b, h, g.first_row(qt), rows, kt * kBlockK, cols, g.k_len, s, kBlockK, bias);
  // the forward's row statistics, or (lse, 0) where the caller gave only a (merged) lse
  float m[kBlockQ], log_sum[kBlockQ];
  for (int64_t r = 0; r < rows; ++r) {
    m[r] = p.row_stats ? p.row_stats[2 * (row0 + r)] : p.lse[row0 + r];
    log_sum[r] = p.row_stats ? p.row_stats[2 * (row0 + r) + 1] : 0.f;
  }
  probabilities_from_stats(rows, cols, s, kBlockK, m, log_sum);
}

namespace {

// bf16 rows of a query tile (q or dO, `width` values a row, in rows `stride` apart) into the
// operands of the pairs backward: rows (ld width_pad32, zero past width) and their transpose
// (width_pad32 rows of kBlockQ, zero past the live rows and past width). stage, stage_t: fp32
// scratch of kBlockQ x width_pad and width x kBlockQ; stage keeps the live rows widened to fp32.
void bf16_rows_and_transpose(const uint16_t* src, int64_t stride, int64_t live, int64_t rows, int64_t width,
                             int64_t width_pad, int64_t width_pad32, uint16_t* out_rows, uint16_t* out_t, float* stage,
                             float* stage_t) {
  for (int64_t r = 0; r < rows; ++r) {
    uint16_t* dst = out_rows + r * width_pad32;
    if (r < live) {
      std::memcpy(dst, src + r * stride, sizeof(uint16_t) * (size_t)width);
      std::fill(dst + width, dst + width_pad32, (uint16_t)0);
      load_row_f32(ScalarKind::BFloat16, src, r * stride, width, 1.f, stage + r * width_pad, width_pad);
    } else {
      std::fill(dst, dst + width_pad32, (uint16_t)0);
    }
  }
  // bf16 values widened and narrowed again: exact
  std::fill(stage_t, stage_t + width * kBlockQ, 0.f);
  transpose_words(reinterpret_cast<const uint32_t*>(stage), width_pad, live, width,
                  reinterpret_cast<uint32_t*>(stage_t), kBlockQ);
  round_rows_to_bf16(stage_t, width, kBlockQ, kBlockQ, out_t, kBlockQ);
  std::fill(out_t + width * kBlockQ, out_t + width_pad32 * kBlockQ, (uint16_t)0);
}

}  // namespace

BackwardOperands prepare_backward(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                                  const std::vector<TileSpan>& key_spans) {
  const AttentionFwdParams& p = bp.fwd;
  BackwardOperands ops;
  const int64_t all_rows = g.batch * g.heads * g.q_len;
  const int64_t items = g.batch * g.heads * g.q_tiles;
  ops.pairs = keys.pairs;
  if (ops.pairs) {
    ops.d_pad32 = keys.d_pad32, ops.dv_pad32 = keys.dv_pad32;
    // bf16 in float units; 32 zero rows past the last, as a product may read 32 rows from a tile's start
    ops.q16 = FloatBuffer((all_rows + 32) * ops.d_pad32 / 2);
    ops.dout16 = FloatBuffer((all_rows + 32) * ops.dv_pad32 / 2);
    ops.q16_t = FloatBuffer(items * ops.d_pad32 * kBlockQ / 2);
    ops.dout16_t = FloatBuffer(items * ops.dv_pad32 * kBlockQ / 2);
    uint16_t* q_end = reinterpret_cast<uint16_t*>(ops.q16.get()) + all_rows * ops.d_pad32;
    uint16_t* dout_end = reinterpret_cast<uint16_t*>(ops.dout16.get()) + all_rows * ops.dv_pad32;
    std::fill(q_end, q_end + 32 * ops.d_pad32, (uint16_t)0);
    std::fill(dout_end, dout_end + 32 * ops.dv_pad32, (uint16_t)0);
  } else {
    ops.q = FloatBuffer(all_rows * g.d_pad);
    ops.dout = FloatBuffer(all_rows * g.dv_pad);
  }
  ops.delta = FloatBuffer(all_rows);
  run_region(worth_parallel(items, double(all_rows) * (g.d + g.dv)), [&] {
    const int64_t width_pad = std::max(g.d_pad, g.dv_pad);
    FloatBuffer out_row(g.dv_pad), s(kBlockQ * kBlockK), bias(2 * kBlockK);
    FloatBuffer stage(ops.pairs ? kBlockQ * width_pad : 1), stage_t(ops.pairs ? kBlockQ * width_pad : 1);
    const MatrixUnitScope units(cpu_kernels(), ops.pairs && bp.dweights);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t qt = it % g.q_tiles, h = (it / g.q_tiles) % g.heads, b = it / (g.heads * g.q_tiles);
      const int64_t rows = g.q_rows_in(qt), row0 = (b * g.heads + h) * g.q_len + g.first_row(qt);
      const int64_t live = g.live_rows_in(p.mask, b, qt);
      const int64_t q_off = b * p.q_stride_b + h * p.q_stride_h + g.first_row(qt) * p.q_stride_i;
      if (ops.pairs) {
        const uint16_t* q = static_cast<const uint16_t*>(p.q) + q_off;
        const uint16_t* dout = static_cast<const uint16_t*>(bp.dout) + row0 * g.dv;
        bf16_rows_and_transpose(q, p.q_stride_i, live, rows, g.d, g.d_pad, ops.d_pad32,
                                reinterpret_cast<uint16_t*>(ops.q16.get()) + row0 * ops.d_pad32,
                                reinterpret_cast<uint16_t*>(ops.q16_t.get()) + it * ops.d_pad32 * kBlockQ, stage.get(),
                                stage_t.get());
        bf16_rows_and_transpose(dout, g.dv, live, rows, g.dv, g.dv_pad, ops.dv_pad32,
                                reinterpret_cast<uint16_t*>(ops.dout16.get()) + row0 * ops.dv_pad32,
                                reinterpret_cast<uint16_t*>(ops.dout16_t.get()) + it * ops.dv_pad32 * kBlockQ,
                                stage.get(), stage_t.get());
      }
      for (int64_t r = live; r < rows; ++r) {
        // padded query rows attend nothing: zeros, whatever their inputs hold
        if (!ops.pairs) {
          std::fill(ops.q.get() + (row0 + r) * g.d_pad, ops.q.get() + (row0 + r + 1) * g.d_pad, 0.f);
          std::fill(ops.dout.get() + (row0 + r) * g.dv_pad, ops.dout.get() + (row0 + r + 1) * g.dv_pad, 0.f);
        }
        ops.delta.get()[row0 + r] = 0.f;
      }
      for (int64_t r = 0; r < live; ++r) {
        const int64_t row = row0 + r;
        // with pairs, dO's fp32 rows are the staging rows its transpose was just built from
        const float* dout = ops.pairs ? stage.get() + r * g.dv_pad : ops.dout.get() + row * g.dv_pad;
        if (!ops.pairs) {
          load_row_f32(p.dtype, p.q, q_off + r * p.q_stride_i, g.d, (float)p.scale, ops.q.get() + row * g.d_pad,
                       g.d_pad);
          load_row_f32(p.dtype, bp.dout, row * g.dv, g.dv, 1.f, ops.dout.get() + row * g.dv_pad, g.dv_pad);
        }
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
        const TileColumns t = row_part_columns(p.mask, b, g.first_row(qt), rows, kt, g.keys_in(kt), state);
        recompute_probabilities(bp, g, keys, ops, b, h, qt, kt, state, t, s.get(), bias.get());
        for (int64_t r = 0; r < rows; ++r) {
          float acc = 0.f;
          for (int64_t c = 0; c < g.keys_in(kt); ++c)
            acc +=
                s.get()[r * kBlockK + c] * load_element(p.dtype, bp.dweights, (row0 + r) * g.k_len + kt * kBlockK + c);
          ops.delta.get()[row0 + r] += acc;
        }
      }
    }
  });
  return ops;
}

}  // namespace cpu
}  // namespace maskattn
