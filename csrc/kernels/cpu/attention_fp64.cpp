// Float64 attention, row by row in double: exact enough for gradcheck, not tuned for speed.
// Keys outside key_range are never touched, so wholly masked tiles cost nothing here either.
#include <cmath>
#include <limits>
#include <vector>

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
  // returns the row's log-sum-exp (-inf when no key is allowed).
  double row_probabilities(int64_t b, int64_t h, int64_t i, const KeyRange& r, double* prob) const {
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
    if (mx == kNegInf) {
      for (int64_t j = r.begin; j < r.end; ++j) prob[j] = 0.0;
      return kNegInf;
    }
    double sum = 0.0;
    for (int64_t j = r.begin; j < r.end; ++j) sum += prob[j] = std::exp(prob[j] - mx);
    for (int64_t j = r.begin; j < r.end; ++j) prob[j] /= sum;
    return mx + std::log(sum);
  }
};

}  // namespace

void attention_fwd_f64(const AttentionFwdParams& p) {
  const F64View view{p};
  const int64_t rows = p.batch * p.heads * p.q_len;
#pragma omp parallel
  {
    std::vector<double> prob((size_t)p.k_len);
#pragma omp for schedule(dynamic, 16)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t i = row % p.q_len, h = (row / p.q_len) % p.heads, b = row / (p.q_len * p.heads);
      const int64_t hk = h / (p.heads / p.kv_heads);
      const KeyRange r = p.mask.key_range(b, i);
      const double lse = view.row_probabilities(b, h, i, r, prob.data());
      double* out = static_cast<double*>(p.out) + row * p.v_head_dim;
      for (int64_t d = 0; d < p.v_head_dim; ++d) out[d] = 0.0;
      for (int64_t j = r.begin; j < r.end; ++j) {
        const double* v = view.v_row(b, hk, j);
        for (int64_t d = 0; d < p.v_head_dim; ++d) out[d] += prob[j] * v[d];
      }
      p.lse[row] = (float)lse;
      if (p.weights) {
        double* w = static_cast<double*>(p.weights) + row * p.k_len;
        for (int64_t j = 0; j < p.k_len; ++j) w[j] = j >= r.begin && j < r.end ? prob[j] : 0.0;
      }
    }
  }
}

// dS_ij = P_ij (G_ij - sum_k P_ik G_ik + dlse_i), G_ij = dout_i . v_j + dweights_ij; every
// (batch, kv head) item owns its dk/dv rows and the dq rows of its query heads: no races.
void attention_bwd_f64(const AttentionBwdParams& bp) {
  const AttentionFwdParams& p = bp.fwd;
  const F64View view{p};
  const int64_t group = p.heads / p.kv_heads, D = p.head_dim, Dv = p.v_head_dim;
#pragma omp parallel
  {
    std::vector<double> prob((size_t)p.k_len), grad((size_t)p.k_len);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bhk = 0; bhk < p.batch * p.kv_heads; ++bhk) {
      const int64_t b = bhk / p.kv_heads, hk = bhk % p.kv_heads;
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
          const double* dout = static_cast<const double*>(bp.dout) + row * Dv;
          const double* dw = bp.dweights ? static_cast<const double*>(bp.dweights) + row * p.k_len : nullptr;
          double pg = 0.0;
          for (int64_t j = r.begin; j < r.end; ++j) {
            const double* v = view.v_row(b, hk, j);
            double g = dw ? dw[j] : 0.0;
            for (int64_t d = 0; d < Dv; ++d) g += dout[d] * v[d];
            grad[j] = g;
            pg += prob[j] * g;
          }
          const double dlse = bp.dlse ? bp.dlse[row] : 0.0;
          const double* q = view.q_row(b, h, i);
          for (int64_t j = r.begin; j < r.end; ++j) {
            if (prob[j] == 0.0) continue;
            const double ds = prob[j] * (grad[j] - pg + dlse) * p.scale;
            const double* k = view.k_row(b, hk, j);
            for (int64_t d = 0; d < D; ++d) dq[d] += ds * k[d], dk[j * D + d] += ds * q[d];
            for (int64_t d = 0; d < Dv; ++d) dv[j * Dv + d] += prob[j] * dout[d];
          }
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace maskattn
