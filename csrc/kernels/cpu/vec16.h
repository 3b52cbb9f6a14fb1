// 16-lane float vectors (GCC/Clang vector extensions): one AVX-512 register, two AVX2 ones,
// without intrinsics, so the CPU kernels stay portable and torch-free.
#pragma once
#include <cstdint>
#include <cstring>

namespace maskattn {
namespace cpu {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store16(float* p, f32x16 v) { std::memcpy(p, &v, sizeof(v)); }
inline f32x16 splat16(float x) { return f32x16{} + x; }

// Loads n < 16 floats, filling the other lanes with `fill`.
inline f32x16 load16_partial(const float* p, int n, float fill) {
  alignas(64) float tmp[kLanes];
  for (int l = 0; l < kLanes; ++l) tmp[l] = l < n ? p[l] : fill;
  return load16(tmp);
}
inline void store16_partial(float* p, f32x16 v, int n) {
  alignas(64) float tmp[kLanes];
  store16(tmp, v);
  for (int l = 0; l < n; ++l) p[l] = tmp[l];
}

// Lane masks (all bits set where true) are computed in 8-lane halves, and selects are bit
// operations: GCC turns a 16-lane compare or `?:` into scalar code when registers hold 8 floats
// (AVX2); halves map to one vcmpps each there and still to plain compares with AVX-512.
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

inline i32x16 less16(f32x16 a, f32x16 b) {
  f32x8 x[2], y[2];
  std::memcpy(x, &a, sizeof(a));
  std::memcpy(y, &b, sizeof(b));
  const i32x8 m[2] = {x[0] < y[0], x[1] < y[1]};
  i32x16 out;
  std::memcpy(&out, m, sizeof(out));
  return out;
}
inline i32x16 is_nan16(f32x16 a) {
  f32x8 x[2];
  std::memcpy(x, &a, sizeof(a));
  const i32x8 m[2] = {x[0] != x[0], x[1] != x[1]};
  i32x16 out;
  std::memcpy(&out, m, sizeof(out));
  return out;
}
inline f32x16 select16(i32x16 mask, f32x16 a, f32x16 b) {
  return (f32x16)(((i32x16)a & mask) | ((i32x16)b & ~mask));
}

inline f32x16 max16(f32x16 a, f32x16 b) { return select16(less16(b, a), a, b); }
inline f32x16 min16(f32x16 a, f32x16 b) { return select16(less16(a, b), a, b); }

inline float reduce_max16(f32x16 v) {
  float m = v[0];
  for (int l = 1; l < kLanes; ++l) m = v[l] > m ? v[l] : m;
  return m;
}
inline float reduce_sum16(f32x16 v) {
  float s = 0.f;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// exp(x) to ~2 ulp for x in [-87, 88], 0 below (so exp(-inf) = 0), by 2^n * poly(r) with
// Cody-Waite reduction r = x - n ln2, |r| <= ln2 / 2.
inline f32x16 exp16(f32x16 x) {
  const f32x16 xc = min16(max16(x, splat16(-87.0f)), splat16(88.0f));
  const f32x16 magic = splat16(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const f32x16 n = (xc * 1.44269504088896341f + magic) - magic;
  f32x16 r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  f32x16 p = splat16(1.0f / 720.0f);
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i32x16 bits = (__builtin_convertvector(n, i32x16) + 127) << 23;
  const f32x16 result = p * (f32x16)bits;
  return select16(less16(x, splat16(-87.0f)), splat16(0.f), result);
}

inline float exp1(float x) { return exp16(splat16(x))[0]; }

}  // namespace cpu
}  // namespace maskattn
