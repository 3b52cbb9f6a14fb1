// Forward for a few query rows per kv head (decoding: Lq = 1, or a short draft), where each K/V
// tile is read by one work item only: packing K^T would cost more memory traffic than attention.
//
// The item (batch, kv head) puts its R <= 16 rows (all query heads of the group, stacked) in the
// 16 lanes of a vector and computes the transposed scores S^T = K Q^T straight from the K rows,
// one key per row of S^T. Softmax statistics are then plain lane-wise vector operations, and
// O += P V reads P through the transposed strides: no transposes anywhere.
#include <cmath>
#include <limits>
#include <vector>

#include "attention_dot_scores.h"
#include "attention_gemm.h"
#include "attention_layout.h"
#include "attention_paths.h"
#include "attention_rows.h"
#include "attention_schedule.h"
#include "attention_tile_mask.h"

namespace maskattn {
namespace cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct DecodeScratch {
  FloatBuffer q, q_t, s_t, k, v, out, alpha, lse, bias;
  explicit DecodeScratch(const AttentionGeometry& g)
      : q(kLanes * g.d),
        q_t(g.d * kLanes),
        s_t(kBlockK * kLanes),
        k(kBlockK * g.d),
        v(kBlockK * g.dv_pad),
        out(kLanes * g.dv_pad),
        alpha(kLanes),
        lse(kLanes),
        bias(kBlockK) {}
};

struct DecodeItem {
  const AttentionFwdParams& p;
  const AttentionGeometry& g;
  DecodeScratch& w;
  int64_t b, hk;

  int64_t rows() const { return g.group * g.q_len; }  // lane l: head l / q_len of the group, row l % q_len
  int64_t head(int64_t lane) const { return hk * g.group + lane / g.q_len; }
  int64_t out_row(int64_t lane) const { return (b * g.heads + head(lane)) * g.q_len + lane % g.q_len; }

  // q rows (R x d) and their transpose, one lane per row (d x 16), scaled; padded query rows
  // and unused lanes are zero.
  void load_q() const {
    const int64_t live = g.live_rows_in(p.mask, b, 0);
    float *q = w.q.get(), *q_t = w.q_t.get();
    std::fill(q, q + rows() * g.d, 0.f);
    std::fill(q_t, q_t + g.d * kLanes, 0.f);
    for (int64_t lane = 0; lane < rows(); ++lane) {
      if (lane % g.q_len >= live) continue;
      const int64_t off = b * p.q_stride_b + head(lane) * p.q_stride_h + (lane % g.q_len) * p.q_stride_i;
      load_row_f32(p.dtype, p.q, off, g.d, (float)p.scale, q + lane * g.d, g.d);
      for (int64_t c = 0; c < g.d; ++c) q_t[c * kLanes + lane] = q[lane * g.d + c];
    }
  }

  // S^T (keys x 16) of key tile kt, masked; keys past the sequence's length are -inf.
  int64_t scores_t(int64_t kt, TileState state) const {
    const int64_t n = g.keys_in(kt), live = g.live_keys_in(p.mask, b, kt), j0 = kt * kBlockK;
    const int64_t k_off = b * p.k_stride_b + hk * p.k_stride_h + j0 * p.k_stride_j;
    const float* k = static_cast<const float*>(p.k) + k_off;
    int64_t ldk = p.k_stride_j;
    if (p.dtype != ScalarKind::Float32) {
      for (int64_t j = 0; j < live; ++j)
        load_row_f32(p.dtype, p.k, k_off + j * p.k_stride_j, g.d, 1.f, w.k.get() + j * g.d, g.d);
      k = w.k.get(), ldk = g.d;
    }
    float* s_t = w.s_t.get();
    if (scores_by_dot_products(p)) {
      // few rows: dot products along d (vector loads of K) beat broadcasting K into 16 lanes
      for (int64_t j = 0; j < live; ++j) store16(s_t + j * kLanes, splat16(0.f));  // unused lanes
      dot_product_scores(w.q.get(), g.d, rows(), k, ldk, live, g.d, s_t, 1, kLanes);
    } else {
      gemm_tile(live, kLanes, g.d, GemmA{k, ldk, 1}, w.q_t.get(), kLanes, s_t, kLanes, GemmInto::Overwrite);
    }
    for (int64_t j = live; j < n; ++j) store16(s_t + j * kLanes, splat16(kNegInf));
    if (state == TileState::Partial) mask_lanes(j0, live, s_t);
    return n;
  }

  // The MaskSpec on the transposed tile: lane by lane (R <= 16 rows), key by key.
  void mask_lanes(int64_t j0, int64_t live, float* s_t) const {
    const MaskSpec& m = p.mask;
    for (int64_t lane = 0; lane < rows(); ++lane) {
      const int64_t i = lane % g.q_len;
      const KeyRange kr = m.key_range(b, i);
      const int64_t lo = std::min(std::max<int64_t>(kr.begin - j0, 0), live);
      const int64_t hi = std::max(std::min(kr.end - j0, live), lo);
      for (int64_t j = 0; j < lo; ++j) s_t[j * kLanes + lane] = kNegInf;
      for (int64_t j = hi; j < live; ++j) s_t[j * kLanes + lane] = kNegInf;
      if (!m.has_elementwise() || lo == hi) continue;
      float* bias = w.bias.get();
      elementwise_row_bias(m, b, head(lane), i, j0, lo, hi, bias);
      for (int64_t j = lo; j < hi; ++j) s_t[j * kLanes + lane] += bias[j];
    }
  }

  void run(const TileSpan& span) const {
    float *out = w.out.get(), *alpha = w.alpha.get(), *s_t = w.s_t.get();
    f32x16 m = splat16(kNegInf), l = splat16(0.f);
    load_q();
    std::fill(out, out + rows() * g.dv_pad, 0.f);
    for (int64_t kt = span.first; kt <= span.last && span.non_empty > 0; ++kt) {
      const TileState state = tile_state(p.mask, g, b, 0, kt);
      if (state == TileState::Empty) continue;
      const int64_t n = scores_t(kt, state);
      // online softmax, one lane per query row
      f32x16 mx = m;
      for (int64_t j = 0; j < n; ++j) mx = max16(mx, load16(s_t + j * kLanes));
      const auto dead = mx == kNegInf;  // lanes with no allowed key so far
      const f32x16 a = dead ? splat16(1.f) : exp16(m - mx);
      f32x16 sum = splat16(0.f);
      for (int64_t j = 0; j < n; ++j) {
        const f32x16 e = dead ? splat16(0.f) : exp16(load16(s_t + j * kLanes) - mx);
        store16(s_t + j * kLanes, e);
        sum += e;
      }
      l = l * a + sum, m = mx;
      store16(alpha, a);
      const int64_t live = g.live_keys_in(p.mask, b, kt);
      gemm_tile(rows(), g.dv_pad, live, GemmA{s_t, 1, kLanes}, v_rows(kt, live), v_stride(), out, g.dv_pad,
                GemmInto::ScaleRowsAccumulate, alpha);
    }
    for (int64_t lane = 0; lane < rows(); ++lane) {
      const int64_t dst = out_row(lane);
      if (l[lane] > 0.f) {
        store_row(p.dtype, out + lane * g.dv_pad, g.dv, 1.f / l[lane], p.out, dst * g.dv);
        w.lse.get()[lane] = m[lane] + std::log(l[lane]);
      } else {
        zero_row(p.dtype, p.out, dst * g.dv, g.dv);
        w.lse.get()[lane] = kNegInf;
      }
      p.lse[dst] = w.lse.get()[lane];
    }
    if (p.weights) write_weights(span);
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

  void write_weights(const TileSpan& span) const {
    const f32x16 lse = load16_partial(w.lse.get(), (int)rows(), kNegInf);
    const auto dead = lse == kNegInf;
    float* s_t = w.s_t.get();
    for (int64_t kt = 0; kt < g.k_tiles; ++kt) {
      const int64_t j0 = kt * kBlockK, n = g.keys_in(kt);
      const TileState state = kt < span.first || kt > span.last ? TileState::Empty : tile_state(p.mask, g, b, 0, kt);
      if (state == TileState::Empty) {
        for (int64_t lane = 0; lane < rows(); ++lane) zero_row(p.dtype, p.weights, out_row(lane) * g.k_len + j0, n);
        continue;
      }
      scores_t(kt, state);
      for (int64_t j = 0; j < n; ++j)
        store16(s_t + j * kLanes, dead ? splat16(0.f) : exp16(load16(s_t + j * kLanes) - lse));
      for (int64_t lane = 0; lane < rows(); ++lane)
        for (int64_t j = 0; j < n; ++j)
          store_element(p.dtype, p.weights, out_row(lane) * g.k_len + j0 + j, s_t[j * kLanes + lane]);
    }
  }
};

}  // namespace

bool attention_fwd_decode_applies(const AttentionFwdParams& p) { return (p.heads / p.kv_heads) * p.q_len <= kLanes; }

void attention_fwd_decode(const AttentionFwdParams& p) {
  const AttentionGeometry g = geometry_of(p, std::max<int64_t>(p.q_len, 1));  // one query tile
  const std::vector<TileSpan> spans = key_spans_of_query_tiles(p.mask, g);
  const int64_t items = g.batch * g.kv_heads;
#pragma omp parallel
  {
    DecodeScratch scratch(g);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t b = it / g.kv_heads;
      DecodeItem{p, g, scratch, b, it % g.kv_heads}.run(spans[b]);
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
