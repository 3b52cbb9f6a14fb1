// CPU fused scale + mask + softmax: rows in parallel, the band of allowed keys from MaskSpec,
// vectorised passes (max, exp-and-sum, normalise) over the band only; zeros elsewhere.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../masked_softmax.h"
#include "attention_tile_mask.h"
#include "attention_mask_grad.h"
#include "parallel_grain.h"
#include "row_convert.h"
#include "softmax_rows.h"

namespace maskattn {
namespace {

using namespace cpu;

// Max of two row maxima, NaN if either is NaN (a NaN logit makes its row NaN).
float max_or_nan(float a, float b) { return a != a || b != b ? __builtin_nanf("") : (a > b ? a : b); }

// s[j] (j in range) = scale * x[j] + additive, or -inf where the element-wise masks say no (x may
// be s); returns the max of s over the range. Keys go in runs of mask blocks in one state
// (MaskSpec::classify_explicit): wholly masked runs are filled, wholly allowed ones scaled straight
// from x with their max taken in the same pass, and the rest combined with a vectorised bias row.
float apply_elementwise(const MaskSpec& m, int64_t b, int64_t h, int64_t i, KeyRange range, float scale, const float* x,
                        float* s) {
  const float neg_inf = -__builtin_inff();
  const bool explicit_only = m.key_mask == nullptr && !m.has_segments();
  auto block_end = [&](int64_t j) { return std::min((j / kMaskBlock + 1) * kMaskBlock, range.end); };
  // one row lies in one block row: each key block's state is its own flags
  auto state_at = [&](int64_t j) {
    return m.mask_blocks ? MaskSpec::mask_block_state(m.mask_block_flags(b, i, j))
                         : m.classify_explicit(b, i, i + 1, j, j + 1);
  };
  thread_local std::vector<float> bias;
  float mx = neg_inf;
  for (int64_t j = range.begin; j < range.end;) {
    const TileState state = state_at(j);
    int64_t e = block_end(j);
    while (e < range.end && state_at(e) == state) e = block_end(e);
    const int64_t n = e - j;
    if (state == TileState::Empty) {
      row_fill(s + j, n, neg_inf);
    } else if (state == TileState::Full && explicit_only) {
      mx = max_or_nan(mx, row_scale_max(x + j, n, scale, s + j));
    } else {
      if ((int64_t)bias.size() < n) bias.resize((size_t)n);
      float* bj = bias.data();
      float* sj = s + j;
      elementwise_row_bias(m, b, h, i, j, 0, n, bj);
      mx = max_or_nan(mx, row_scale_bias_max(x + j, n, scale, bj, sj));
    }
    j = e;
  }
  return mx;
}

// exp(logits - mx) of n logits whose max is mx into dst (may alias them); returns the factor
// (1 / their sum) that makes them the softmax, left to the caller to apply with its store. An all
// -inf segment becomes zeros, a NaN logit (mx NaN) makes it NaN (factor 1 for both).
float unnormalised_softmax_segment(const float* logits, int64_t n, float mx, float* dst) {
  if (mx != mx) {
    row_fill(dst, n, mx);
    return 1.f;
  }
  if (!(mx > -__builtin_inff())) {
    row_fill(dst, n, 0.f);
    return 1.f;
  }
  return 1.f / row_exp_sum(logits, n, mx, dst);
}

void softmax_row_float(const MaskedSoftmaxParams& p, int64_t b, int64_t h, int64_t i, float* buf) {
  const MaskSpec& m = p.mask;
  const KeyRange range = m.live_key_range(b, i);
  const int64_t lo = range.begin, n = range.end - range.begin, k_len = p.k_len;
  const int64_t in_off = b * p.stride_b + h * p.stride_h + i * p.stride_i;
  const int64_t out_off = ((b * p.heads + h) * p.q_len + i) * k_len;
  const float scale = (float)p.scale;
  const bool direct = p.dtype == ScalarKind::Float32;
  float* row = direct ? static_cast<float*>(p.probs) + out_off : buf;
  // logits of the band: straight into the output row when no conversion or mask needs scratch
  float* logits = buf;
  float mx;
  if (direct && !m.has_elementwise()) {
    logits = row;
    mx = row_scale_max(static_cast<const float*>(p.scores) + in_off + lo, n, scale, row + lo);
  } else {
    // fp32 logits are read where they are (the mask pass writes the scratch row), others converted first
    const float* x = direct ? static_cast<const float*>(p.scores) + in_off : buf;
    if (!direct) load_row_as_float(p.dtype, p.scores, in_off + lo, n, buf + lo);
    if (m.has_elementwise()) {
      mx = apply_elementwise(m, b, h, i, range, scale, x, buf);
    } else {
      mx = row_scale_max(buf + lo, n, scale, buf + lo);
    }
  }
  const float norm = n > 0 ? unnormalised_softmax_segment(logits + lo, n, mx, row + lo) : 1.f;
  row_fill(row, lo, 0.f);
  row_fill(row + range.end, k_len - range.end, 0.f);
  if (direct)
    row_scale(row + lo, n, norm);
  else  // 16-bit: normalised by the converting store, one pass fewer
    store_row(p.dtype, row, k_len, norm, p.probs, out_off);
}

// float64 rows: double math throughout, so gradcheck sees the exact function.
void softmax_row_double(const MaskedSoftmaxParams& p, int64_t b, int64_t h, int64_t i) {
  const MaskSpec& m = p.mask;
  const KeyRange range = m.key_range(b, i);
  const double* x = static_cast<const double*>(p.scores) + b * p.stride_b + h * p.stride_h + i * p.stride_i;
  double* y = static_cast<double*>(p.probs) + ((b * p.heads + h) * p.q_len + i) * p.k_len;
  double mx = -INFINITY;
  for (int64_t j = 0; j < p.k_len; ++j) {
    const bool ok = j >= range.begin && j < range.end && m.allowed_in_range(b, h, i, j);
    y[j] = ok ? rounded_product(x[j], p.scale) + m.additive_f64(b, h, i, j) : -INFINITY;
    mx = y[j] > mx || y[j] != y[j] ? y[j] : mx;  // a NaN logit makes the max, and the row, NaN
  }
  const bool live = !(mx == -INFINITY);
  double sum = 0;
  for (int64_t j = 0; j < p.k_len; ++j) {
    y[j] = live ? std::exp(y[j] - mx) : 0.0;
    sum += y[j];
  }
  const double inv = sum > 0 ? 1.0 / sum : 0.0;
  for (int64_t j = 0; j < p.k_len; ++j) y[j] *= inv;
}

}  // namespace

void masked_softmax_fwd_cpu(const MaskedSoftmaxParams& p) {
  const int64_t rows = p.batch * p.heads * p.q_len;
  run_region(worth_parallel(rows, rows * p.k_len), [&] {
    std::vector<float> buf(p.dtype == ScalarKind::Float64 ? 0 : p.k_len);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r % p.q_len, bh = r / p.q_len, h = bh % p.heads, b = bh / p.heads;
      if (p.dtype == ScalarKind::Float64)
        softmax_row_double(p, b, h, i);
      else
        softmax_row_float(p, b, h, i, buf.data());
    }
  });
}

// Adds (g - dot) * p over keys [lo, hi) of row (b, h, i) into the mask's gradient.
template <typename T>
void add_row_mask_grad(const MaskGradOut& mg, int64_t b, int64_t h, int64_t i, const T* g, const T* p, T dot,
                       int64_t lo, int64_t hi) {
  T* dst = static_cast<T*>(mg.data) + mg.offset(b, h, i, 0);
  for (int64_t j = lo; j < hi; ++j) dst[j * mg.stride_j] += (g[j] - dot) * p[j];
}

void masked_softmax_bwd_cpu(const MaskedSoftmaxBwdParams& p) {
  const int64_t n = p.k_len;
  const MaskGradOut& mg = p.mask_grad;
  auto row_backward = [&](int64_t r, std::vector<float>& g, std::vector<float>& pr) {
    const int64_t off = r * n;
    const int64_t b = r / (p.heads * p.q_len), h = (r / p.q_len) % p.heads, i = r % p.q_len;
    // only the band can hold non-zero probabilities: read it, write zeros around it
    const KeyRange range = p.mask.live_key_range(b, i);
    const int64_t lo = range.begin, len = range.end - range.begin;
    if (p.dtype == ScalarKind::Float64) {
      const double* gd = static_cast<const double*>(p.grad) + off;
      const double* pd = static_cast<const double*>(p.probs) + off;
      double* out = static_cast<double*>(p.grad_scores) + off;
      double dot = 0;
      for (int64_t j = lo; j < range.end; ++j) dot += gd[j] * pd[j];
      for (int64_t j = 0; j < n; ++j) out[j] = j >= lo && j < range.end ? p.scale * pd[j] * (gd[j] - dot) : 0.0;
      if (mg.wanted()) add_row_mask_grad<double>(mg, b, h, i, gd, pd, dot, lo, range.end);
    } else if (p.dtype == ScalarKind::Float32) {
      const float* gf = static_cast<const float*>(p.grad) + off + lo;
      const float* pf = static_cast<const float*>(p.probs) + off + lo;
      float* out = static_cast<float*>(p.grad_scores) + off;
      const float dot = row_dot(gf, pf, len);
      if (mg.wanted()) add_row_mask_grad<float>(mg, b, h, i, gf - lo, pf - lo, dot, lo, range.end);
      row_softmax_grad(gf, pf, len, dot, (float)p.scale, out + lo);
      row_fill(out, lo, 0.f);
      row_fill(out + range.end, n - range.end, 0.f);
    } else {
      load_row_as_float(p.dtype, p.grad, off + lo, len, g.data() + lo);
      load_row_as_float(p.dtype, p.probs, off + lo, len, pr.data() + lo);
      const float dot = row_dot(g.data() + lo, pr.data() + lo, len);
      if (mg.wanted()) add_row_mask_grad<float>(mg, b, h, i, g.data(), pr.data(), dot, lo, range.end);
      row_softmax_grad(g.data() + lo, pr.data() + lo, len, dot, (float)p.scale, g.data() + lo);
      row_fill(g.data(), lo, 0.f);
      row_fill(g.data() + range.end, n - range.end, 0.f);
      store_row_from_float(p.dtype, p.grad_scores, off, n, g.data());
    }
  };
  // a mask gradient broadcast over batch, heads or rows: one item owns each of its elements
  const int64_t batch = p.rows / (p.heads * p.q_len);
  const OwnedItems items = owned_items(mg, batch, mg.stride_b, p.heads, mg.stride_h, p.q_len, mg.stride_i);
  run_region(worth_parallel(items.count(), items.count() * n), [&] {
    std::vector<float> g(n), pr(n);
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items.count(); ++it)
      items.for_each(it, [&](int64_t b, int64_t h, int64_t i) { row_backward((b * p.heads + h) * p.q_len + i, g, pr); });
  });
}

}  // namespace maskattn
