// Vectorised row primitives of the masked softmax: max, exp-and-sum, scale, dot.
#pragma once
#include <cstdint>

#include "cpu_kernels.h"
#include "vec16.h"

namespace maskattn {
namespace cpu {

// Running max over a row's vectors, NaN when one lane was NaN (as in torch's softmax, a NaN
// logit makes its row NaN).
struct MaxOrNan {
  f32x16 max = splat16(-__builtin_inff());
  i32x16 nan_lanes = i32x16{};
  void add(f32x16 v) {
    max = max16(max, v);
    nan_lanes |= is_nan16(v);
  }
  float result() const {
    for (int l = 0; l < kLanes; ++l)
      if (nan_lanes[l]) return __builtin_nanf("");
    return reduce_max16(max);
  }
};

// a * b rounded to its type, never fused with a following add (the compiler may contract one).
inline double rounded_product(double a, double b) {
  double r = a * b;
  __asm__("" : "+x"(r));
  return r;
}

// dst[j] = scale * x[j] (dst may alias x); returns their max (NaN if one is NaN). Scaling first
// keeps masked lanes -inf whatever the sign of scale, and the exp pass then subtracts the max from
// the very values it was taken over: the largest logit gives exp(0) = 1 exactly, never a fused
// multiply-subtract residue that exp rounds to 0 at large scales (a 0/0 row).
inline float row_scale_max(const float* x, int64_t n, float scale, float* dst) {
  MaxOrNan m;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const f32x16 v = load16(x + j) * scale;
    store16(dst + j, v);
    m.add(v);
  }
  if (j < n) {
    const int rest = (int)(n - j);
    store16_partial(dst + j, load16_partial(x + j, rest, 0.f) * scale, rest);
    m.add(load16_partial(dst + j, rest, -__builtin_inff()));
  }
  return m.result();
}

// dst[j] = scale * x[j] + bias[j], the product rounded before the bias joins it (as torch's
// x * scale + mask: a fused multiply-add would let a bias of ~1 break ties torch keeps at scales
// near 1e20), or -inf where bias[j] is -inf whatever x[j] is (inf and NaN too, as masked_fill);
// returns the max (NaN if one is NaN). dst may alias x or bias.
inline float row_scale_bias_max(const float* x, int64_t n, float scale, const float* bias, float* dst) {
  MaxOrNan m;
  const f32x16 neg_inf = splat16(-__builtin_inff()), lowest = splat16(-__FLT_MAX__);
  auto logits = [&](f32x16 xv, f32x16 bv) {
    f32x16 product = xv * scale;
    __asm__("" : "+x"(product.lo), "+x"(product.hi));  // no contraction into an FMA with the add
    return select16(less16(bv, lowest), neg_inf, product + bv);
  };
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const f32x16 v = logits(load16(x + j), load16(bias + j));
    store16(dst + j, v);
    m.add(v);
  }
  if (j < n) {
    const int rest = (int)(n - j);
    const f32x16 v = logits(load16_partial(x + j, rest, 0.f), load16_partial(bias + j, rest, -__builtin_inff()));
    store16_partial(dst + j, v, rest);
    m.add(v);  // the lanes past n are -inf
  }
  return m.result();
}

// Max of n logits already scaled and masked (-inf where masked), NaN if one is NaN.
inline float row_max(const float* x, int64_t n) {
  MaxOrNan m;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) m.add(load16(x + j));
  if (j < n) m.add(load16_partial(x + j, (int)(n - j), -__builtin_inff()));
  return m.result();
}

// dst[j] = exp(x[j] - shift) for logits x (already scaled); returns the sum. dst may alias x.
// In the baseline's vectors; row_exp_sum below takes the selected path's.
inline float row_exp_sum_vec16(const float* x, int64_t n, float shift, float* dst) {
  f32x16 sum = splat16(0.f);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const f32x16 e = exp16(load16(x + j) - shift);
    store16(dst + j, e);
    sum += e;
  }
  if (j < n) {
    const int rest = (int)(n - j);
    const f32x16 e = exp16(load16_partial(x + j, rest, -__builtin_inff()) - shift);
    store16_partial(dst + j, e, rest);
    sum += e;
  }
  return reduce_sum16(sum);
}

inline float row_exp_sum(const float* x, int64_t n, float shift, float* dst) {
  const RowExpSumFn f = cpu_kernels().row_exp_sum;
  return f ? f(x, n, shift, dst) : row_exp_sum_vec16(x, n, shift, dst);
}

inline void row_scale(float* x, int64_t n, float factor) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) store16(x + j, load16(x + j) * factor);
  for (; j < n; ++j) x[j] *= factor;
}

inline float row_dot(const float* a, const float* b, int64_t n) {
  f32x16 acc = splat16(0.f);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) acc += load16(a + j) * load16(b + j);
  float s = reduce_sum16(acc);
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

// dst[j] = factor * p[j] * (g[j] - dot); dst may alias g or p.
inline void row_softmax_grad(const float* g, const float* p, int64_t n, float dot, float factor, float* dst) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) store16(dst + j, (load16(g + j) - dot) * load16(p + j) * factor);
  for (; j < n; ++j) dst[j] = (g[j] - dot) * p[j] * factor;
}

inline void row_fill(float* x, int64_t n, float v) {
  for (int64_t j = 0; j < n; ++j) x[j] = v;
}

}  // namespace cpu
}  // namespace maskattn
