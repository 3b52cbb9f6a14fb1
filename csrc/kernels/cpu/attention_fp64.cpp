// Float64 attention, row by row in double: exact enough for gradcheck, not tuned for speed.
// Keys outside key_range are never touched, so wholly masked tiles cost nothing here either.
#include <cmath>
#include <limits>
#include <vector>

#include "attention_dropout.h"
#include "attention_mask_grad.h"
#include "attention_paths.h"

namespace maskattn {
namespace cpu {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct F64View {
  const AttentionFwdParams& p;
  const double* q_row(int64_t b, int64_t h, int64_t i) const {
    return static_cast<const double*>(p.q) + b * p.q_stride_b + h * p.q_stride_h + i * p.q_stride_i;
  }
  const double* k_row(int64_t b, int64_t hk, int64_t j) const {
    return static_cast<const double*>(p.k) + b * p.k_stride_b + hk * p.k_stride_h + j * p.k_stride_j;
  }
  const double* v_row(int64_t b, int64_t hk, int64_t j) const {
    return static_cast<const double*>(p.v) + b * p.v_stride_b + hk * p.v_stride_h + j * p.v_stride_j;
  }

  // Probabilities of row i over keys [r.begin, r.end) into prob (k_len wide, 0 where masked);
  // returns the row's log-sum-exp (-inf when no key is allowed) and its max in *row_max.
  double row_probabilities(int64_t b, int64_t h, int64_t i, const KeyRange& r, double* prob,
                           double* row_max = nullptr) const {
    const int64_t hk = h / (p.heads / p.kv_heads);
    const double* q = q_row(b, h, i);
    double mx = kNegInf;
    for (int64_t j = r.begin; j < r.end; ++j) {
      double s = kNegInf;
      if (p.mask.allowed_in_range(b, h, i, j)) {
        const double* k = k_row(b, hk, j);
        double dot = 0.0;
        for (int64_t d = 0; d < p.head_dim; ++d) dot += q[d] * k[d];
        s = dot * p.scale + p.mask.additive_f64(b, h, i, j);
      }
      prob[j] = s;
      mx = s > mx ? s : mx;
    }
    if (row_max) *row_max = mx;
    if (mx == kNegInf) {
      for (int64_t j = r.begin; j < r.end; ++j) prob[j] = 0.0;
      return kNegInf;
    }
    double sum = 0.0;
    for (int64_t j = r.begin; j < r.end; ++j) sum += prob[j] = std::exp(prob[j] - mx);
    for (int64_t j = r.begin; j < r.end; ++j) prob[j] /= sum;
    return mx + std::log(sum);
  }

  // keep[j] = 1 / (1 - p) where key j of row i survives the dropout, 0 where dropped, for j in r.
  void row_dropout(int64_t b, int64_t h, int64_t i, const KeyRange& r, float* keep_f32, double* keep) const {
    const DropoutSpec& d = p.dropout;
    for (int64_t j = r.begin; j < r.end; ++j) keep[j] = d.scale;
    if (!d.enabled || r.empty()) return;
    dropout_row(d, d.element(b, h, i, r.begin), r.end - r.begin, 1.f, keep_f32 + r.begin);
    for (int64_t j = r.begin; j < r.end; ++j) keep[j] = keep_f32[j] * d.scale;
  }
};

}  // namespace

void attention_fwd_f64(const AttentionFwdParams& p) {
  const F64View view{p};
  const int64_t rows = p.batch * p.heads * p.q_len;
#pragma omp parallel
  {
    std::vector<double> prob((size_t)p.k_len), keep((size_t)p.k_len);
    std::vector<float> keep_f32((size_t)p.k_len);
#pragma omp for schedule(dynamic, 16)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t i = row % p.q_len, h = (row / p.q_len) % p.heads, b = row / (p.q_len * p.heads);
      const int64_t hk = h / (p.heads / p.kv_heads);
      const KeyRange r = p.mask.key_range(b, i);
      double mx = kNegInf;
      const double lse = view.row_probabilities(b, h, i, r, prob.data(), &mx);
      view.row_dropout(b, h, i, r, keep_f32.data(), keep.data());
      double* out = static_cast<double*>(p.out) + row * p.v_head_dim;
      for (int64_t d = 0; d < p.v_head_dim; ++d) out[d] = 0.0;
      for (int64_t j = r.begin; j < r.end; ++j) {
        const double* v = view.v_row(b, hk, j);
        for (int64_t d = 0; d < p.v_head_dim; ++d) out[d] += prob[j] * keep[j] * v[d];
      }
      p.lse[row] = (float)lse;
      p.row_stats[2 * row] = (float)mx;
      p.row_stats[2 * row + 1] = mx == kNegInf ? 0.f : (float)(lse - mx);
      if (p.weights) {
        double* w = static_cast<double*>(p.weights) + row * p.k_len;
        for (int64_t j = 0; j < p.k_len; ++j) w[j] = j >= r.begin && j < r.end ? prob[j] : 0.0;
      }
    }
  }
}

// dS_ij = P_ij (G_ij - sum_k P_ik G_ik + dlse_i), G_ij = keep_ij dout_i . v_j + dweights_ij
// (keep_ij = 1 / (1 - p) or 0 with dropout, else 1), dS also being the additive mask's gradient;
// every (batch, kv head) item owns its dk/dv rows and the dq rows of its query heads: no races.
// A mask gradient that broadcasts over batch or heads merges those items (attention_mask_grad.h).
void attention_bwd_f64(const AttentionBwdParams& bp) {
  const AttentionFwdParams& p = bp.fwd;
  const F64View view{p};
  const int64_t group = p.heads / p.kv_heads, D = p.head_dim, Dv = p.v_head_dim;
  const MaskGradOut& mg = bp.mask_grad;
  const OwnedItems items = owned_items(mg, p.batch, mg.stride_b, p.kv_heads, mg.stride_h, 1, 0);
#pragma omp parallel
  {
    std::vector<double> prob((size_t)p.k_len), grad((size_t)p.k_len), keep((size_t)p.k_len);
    std::vector<float> keep_f32((size_t)p.k_len);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items.count(); ++item) items.for_each(item, [&](int64_t b, int64_t hk, int64_t) {
      const int64_t bhk = b * p.kv_heads + hk;
      double* dk = static_cast<double*>(bp.dk) + bhk * p.k_len * D;
      double* dv = static_cast<double*>(bp.dv) + bhk * p.k_len * Dv;
      for (int64_t e = 0; e < p.k_len * D; ++e) dk[e] = 0.0;
      for (int64_t e = 0; e < p.k_len * Dv; ++e) dv[e] = 0.0;
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t i = 0; i < p.q_len; ++i) {
          const int64_t row = (b * p.heads + h) * p.q_len + i;
          double* dq = static_cast<double*>(bp.dq) + row * D;
          for (int64_t d = 0; d < D; ++d) dq[d] = 0.0;
          const KeyRange r = p.mask.key_range(b, i);
          if (view.row_probabilities(b, h, i, r, prob.data()) == kNegInf) continue;
          view.row_dropout(b, h, i, r, keep_f32.data(), keep.data());
          const double* dout = static_cast<const double*>(bp.dout) + row * Dv;
          const double* dw = bp.dweights ? static_cast<const double*>(bp.dweights) + row * p.k_len : nullptr;
          double pg = 0.0;
          for (int64_t j = r.begin; j < r.end; ++j) {
            const double* v = view.v_row(b, hk, j);
            double g = 0.0;
            for (int64_t d = 0; d < Dv; ++d) g += dout[d] * v[d];
            grad[j] = keep[j] * g + (dw ? dw[j] : 0.0);
            pg += prob[j] * grad[j];
          }
          const double dlse = bp.dlse ? bp.dlse[row] : 0.0;
          const double* q = view.q_row(b, h, i);
          double* mask_grad = mg.wanted() ? static_cast<double*>(mg.data) + mg.offset(b, h, i, 0) : nullptr;
          for (int64_t j = r.begin; j < r.end; ++j) {
            if (prob[j] == 0.0) continue;
            const double ds = prob[j] * (grad[j] - pg + dlse);
            if (mask_grad) mask_grad[j * mg.stride_j] += ds;
            const double ds_scaled = ds * p.scale;
            const double* k = view.k_row(b, hk, j);
            for (int64_t d = 0; d < D; ++d) dq[d] += ds_scaled * k[d], dk[j * D + d] += ds_scaled * q[d];
            for (int64_t d = 0; d < Dv; ++d) dv[j * Dv + d] += prob[j] * keep[j] * dout[d];
          }
        }
      }
    });
  }
}

}  // namespace cpu
}  // namespace maskattn
