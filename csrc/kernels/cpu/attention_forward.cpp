// Forward of fused masked attention on CPU (fp32, fp16, bf16 inputs; fp32 math), flash-style:
// one work item is (batch, head, query tile); it streams the key tiles its rows attend, keeping
// the output, row max and row sum in fp32 scratch (online softmax), and never forms Lq x Lk.
#include <cmath>
#include <limits>
#include <vector>

#include "../attention.h"
#include "attention_gemm.h"
#include "attention_layout.h"
#include "attention_pack.h"
#include "attention_paths.h"
#include "attention_rows.h"
#include "attention_schedule.h"
#include "attention_softmax_tile.h"
#include "attention_tile_mask.h"

namespace maskattn {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Per-thread fp32 scratch, reused across work items.
struct ForwardScratch {
  FloatBuffer q, s, out, row_max, row_sum, alpha, lse, bias;
  ForwardScratch(const AttentionGeometry& g)
      : q(kBlockQ * g.d), s(kBlockQ * kBlockK), out(kBlockQ * g.dv_pad), row_max(kBlockQ), row_sum(kBlockQ),
        alpha(kBlockQ), lse(kBlockQ), bias(kBlockK) {}
};

struct ForwardItem {
  const AttentionFwdParams& p;
  const AttentionGeometry& g;
  const PackedKeys& keys;
  ForwardScratch& w;
  int64_t b, h, qt;

  int64_t hk() const { return h / g.group; }
  int64_t i0() const { return qt * kBlockQ; }

  // S (rows x cols) = (scale q) k^T for key tile kt, masked when the tile is Partial.
  void scores(int64_t rows, int64_t kt, TileState state, int64_t* cols) const {
    const int64_t n = g.keys_in(kt);
    *cols = round_up16(n);
    gemm_tile(rows, *cols, g.d, GemmA{w.q.get(), g.d, 1}, keys.k_t_tile(b, hk(), kt), kBlockK, w.s.get(), kBlockK,
              GemmInto::Overwrite);
    // a Full last tile may still have padding lanes past k_len to drop
    if (state == TileState::Partial || *cols != n)
      mask_score_tile(p.mask, b, h, i0(), rows, kt * kBlockK, *cols, g.k_len, w.s.get(), kBlockK, w.bias.get());
  }

  void run(const TileSpan& span) const {
    const int64_t rows = g.q_rows_in(qt);
    const int64_t bh_row = (b * g.heads + h) * g.q_len + i0();  // first row in out / lse / weights
    float* lse = w.lse.get();
    if (span.non_empty == 0) {
      for (int64_t r = 0; r < rows; ++r) {
        zero_row(p.dtype, p.out, (bh_row + r) * g.dv, g.dv);
        lse[r] = kNegInf;
      }
    } else {
      attend(rows, span, lse);
    }
    for (int64_t r = 0; r < rows; ++r) p.lse[bh_row + r] = lse[r];
    if (p.weights) write_weights(rows, span, bh_row);
  }

  void attend(int64_t rows, const TileSpan& span, float* lse) const {
    const float scale = (float)p.scale;
    const int64_t q_off = b * p.q_stride_b + h * p.q_stride_h + i0() * p.q_stride_i;
    for (int64_t r = 0; r < rows; ++r) load_row_f32(p.dtype, p.q, q_off + r * p.q_stride_i, g.d, scale, w.q.get() + r * g.d, g.d);
    float *m = w.row_max.get(), *l = w.row_sum.get(), *out = w.out.get();
    for (int64_t r = 0; r < rows; ++r) m[r] = kNegInf, l[r] = 0.f;
    std::fill(out, out + rows * g.dv_pad, 0.f);
    for (int64_t kt = span.first; kt <= span.last; ++kt) {
      const TileState state = tile_state(p.mask, g, b, qt, kt);
      if (state == TileState::Empty) continue;
      int64_t cols;
      scores(rows, kt, state, &cols);
      online_softmax_tile(rows, cols, w.s.get(), kBlockK, m, l, w.alpha.get());
      int64_t ldv;
      const float* v = keys.v_rows(b, hk(), kt, &ldv);
      gemm_tile(rows, g.dv_pad, g.keys_in(kt), GemmA{w.s.get(), kBlockK, 1}, v, ldv, out, g.dv_pad,
                GemmInto::ScaleRowsAccumulate, w.alpha.get());
    }
    const int64_t bh_row = (b * g.heads + h) * g.q_len + i0();
    for (int64_t r = 0; r < rows; ++r) {
      if (l[r] > 0.f) {
        store_row(p.dtype, out + r * g.dv_pad, g.dv, 1.f / l[r], p.out, (bh_row + r) * g.dv);
        lse[r] = m[r] + std::log(l[r]);
      } else {
        zero_row(p.dtype, p.out, (bh_row + r) * g.dv, g.dv);
        lse[r] = kNegInf;
      }
    }
  }

  // Probabilities exp(s - lse) recomputed tile by tile; zeros where tiles are empty.
  void write_weights(int64_t rows, const TileSpan& span, int64_t bh_row) const {
    for (int64_t kt = 0; kt < g.k_tiles; ++kt) {
      const int64_t j0 = kt * kBlockK, n = g.keys_in(kt);
      const TileState state = kt < span.first || kt > span.last ? TileState::Empty : tile_state(p.mask, g, b, qt, kt);
      if (state == TileState::Empty) {
        for (int64_t r = 0; r < rows; ++r) zero_row(p.dtype, p.weights, (bh_row + r) * g.k_len + j0, n);
        continue;
      }
      int64_t cols;
      scores(rows, kt, state, &cols);
      probabilities_from_lse(rows, cols, w.s.get(), kBlockK, w.lse.get());
      for (int64_t r = 0; r < rows; ++r) store_row(p.dtype, w.s.get() + r * kBlockK, n, 1.f, p.weights, (bh_row + r) * g.k_len + j0);
    }
  }
};

}  // namespace

void attention_fwd_f32_math(const AttentionFwdParams& p) {
  const AttentionGeometry g = geometry_of(p);
  if (g.batch * g.heads * g.q_len == 0) return;
  const std::vector<TileSpan> spans = key_spans_of_query_tiles(p.mask, g);
  const PackedKeys keys = pack_keys(p, g, /*for_backward=*/false);
  const int64_t items = g.batch * g.heads * g.q_tiles;
  std::vector<int64_t> cost((size_t)items);
  for (int64_t it = 0; it < items; ++it) {
    const int64_t qt = it % g.q_tiles, b = it / (g.heads * g.q_tiles);
    cost[it] = spans[b * g.q_tiles + qt].non_empty;
  }
  const std::vector<int64_t> order = largest_first(cost);
#pragma omp parallel
  {
    ForwardScratch scratch(g);
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < items; ++n) {
      const int64_t it = order[n];
      const int64_t qt = it % g.q_tiles, h = (it / g.q_tiles) % g.heads, b = it / (g.heads * g.q_tiles);
      ForwardItem{p, g, keys, scratch, b, h, qt}.run(spans[b * g.q_tiles + qt]);
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
