// Vectorised row primitives of the masked softmax: max, exp-and-sum, scale, dot.
#pragma once
#include <cstdint>

#include "vec16.h"

namespace maskattn {
namespace cpu {

inline float row_max_scaled(const float* x, int64_t n, float scale) {
  const float neg_inf = -__builtin_inff();
  f32x16 m = splat16(neg_inf);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) m = max16(m, load16(x + j) * scale);
  if (j < n) m = max16(m, load16_partial(x + j, (int)(n - j), neg_inf) * scale);
  return reduce_max16(m);
}

// dst[j] = exp(scale * x[j] - shift); returns the sum. dst may alias x.
inline float row_exp_sum(const float* x, int64_t n, float scale, float shift, float* dst) {
  f32x16 sum = splat16(0.f);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const f32x16 e = exp16(load16(x + j) * scale - shift);
    store16(dst + j, e);
    sum += e;
  }
  if (j < n) {
    const int rest = (int)(n - j);
    const f32x16 e = exp16(load16_partial(x + j, rest, -__builtin_inff()) * scale - shift);
    store16_partial(dst + j, e, rest);
    sum += e;
  }
  return reduce_sum16(sum);
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
