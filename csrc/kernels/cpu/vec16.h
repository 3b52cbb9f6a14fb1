// 16-lane float vectors for the CPU kernels, without intrinsics, so they stay portable and
// torch-free: two 8-lane GCC/Clang vector-extension halves, each one native AVX2 register (the
// package's baseline) and one AVX-512VL register where the baseline is wider.
//
// Halves, not one 64-byte vector extension: without AVX-512 GCC keeps a 64-byte vector in memory
// and turns its compares, selects and lane shuffles into scalar code and stack round trips
// (measured: 3-10x slower attention on AVX2). Halves keep every operation in registers.
#pragma once
#include <cstdint>
#include <cstring>
#ifdef __FMA__
#include <immintrin.h>
#endif

namespace maskattn {
namespace cpu {

typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
constexpr int kLanes = 16;

struct f32x16 {
  f32x8 lo, hi;
  float operator[](int l) const { return l < 8 ? lo[l] : hi[l - 8]; }
};
// Lane masks (all bits set where true) and integer lanes.
struct i32x16 {
  i32x8 lo, hi;
  int32_t operator[](int l) const { return l < 8 ? lo[l] : hi[l - 8]; }
};

inline f32x16 operator+(f32x16 a, f32x16 b) { return {a.lo + b.lo, a.hi + b.hi}; }
inline f32x16 operator-(f32x16 a, f32x16 b) { return {a.lo - b.lo, a.hi - b.hi}; }
inline f32x16 operator*(f32x16 a, f32x16 b) { return {a.lo * b.lo, a.hi * b.hi}; }
inline f32x16 operator/(f32x16 a, f32x16 b) { return {a.lo / b.lo, a.hi / b.hi}; }
inline f32x16 operator+(f32x16 a, float s) { return {a.lo + s, a.hi + s}; }
inline f32x16 operator-(f32x16 a, float s) { return {a.lo - s, a.hi - s}; }
inline f32x16 operator*(f32x16 a, float s) { return {a.lo * s, a.hi * s}; }
inline f32x16 operator/(f32x16 a, float s) { return {a.lo / s, a.hi / s}; }
inline f32x16 operator+(float s, f32x16 a) { return {s + a.lo, s + a.hi}; }
inline f32x16 operator-(float s, f32x16 a) { return {s - a.lo, s - a.hi}; }
inline f32x16 operator*(float s, f32x16 a) { return {s * a.lo, s * a.hi}; }
inline f32x16 operator-(f32x16 a) { return {-a.lo, -a.hi}; }
inline f32x16& operator+=(f32x16& a, f32x16 b) { return a = a + b; }
inline f32x16& operator-=(f32x16& a, f32x16 b) { return a = a - b; }
inline f32x16& operator*=(f32x16& a, f32x16 b) { return a = a * b; }
inline f32x16& operator*=(f32x16& a, float s) { return a = a * s; }

inline i32x16 operator&(i32x16 a, i32x16 b) { return {a.lo & b.lo, a.hi & b.hi}; }
inline i32x16 operator|(i32x16 a, i32x16 b) { return {a.lo | b.lo, a.hi | b.hi}; }
inline i32x16 operator~(i32x16 a) { return {~a.lo, ~a.hi}; }
inline i32x16 operator+(i32x16 a, int32_t s) { return {a.lo + s, a.hi + s}; }
inline i32x16 operator<<(i32x16 a, int s) { return {a.lo << s, a.hi << s}; }
inline i32x16& operator|=(i32x16& a, i32x16 b) { return a = a | b; }

// Bit casts and the float -> int conversion (rounding toward zero, as a C cast).
inline f32x16 as_f32x16(i32x16 a) { return {(f32x8)a.lo, (f32x8)a.hi}; }
inline i32x16 as_i32x16(f32x16 a) { return {(i32x8)a.lo, (i32x8)a.hi}; }
inline i32x16 to_i32x16(f32x16 a) { return {__builtin_convertvector(a.lo, i32x8), __builtin_convertvector(a.hi, i32x8)}; }

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v.lo, p, sizeof(v.lo));
  std::memcpy(&v.hi, p + 8, sizeof(v.hi));
  return v;
}
inline void store16(float* p, f32x16 v) {
  std::memcpy(p, &v.lo, sizeof(v.lo));
  std::memcpy(p + 8, &v.hi, sizeof(v.hi));
}
inline f32x16 splat16(float x) { return {f32x8{} + x, f32x8{} + x}; }
// x in every lane by one broadcast (f32x8{} + x also adds the zero: -0 becomes +0).
inline f32x8 splat8(float x) { return f32x8{x, x, x, x, x, x, x, x}; }

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

inline i32x16 less16(f32x16 a, f32x16 b) { return {a.lo < b.lo, a.hi < b.hi}; }
inline i32x16 is_nan16(f32x16 a) { return {a.lo != a.lo, a.hi != a.hi}; }
// mask ? a : b, lane by lane.
inline f32x16 select16(i32x16 mask, f32x16 a, f32x16 b) {
  return {mask.lo ? a.lo : b.lo, mask.hi ? a.hi : b.hi};
}

// (b < a ? a : b) and (a < b ? a : b): exactly vmaxps / vminps (the second operand where either is
// NaN or both are equal), one instruction where GCC would emit a compare and a blend
#ifdef __FMA__
inline f32x8 max8(f32x8 a, f32x8 b) { return (f32x8)_mm256_max_ps((__m256)a, (__m256)b); }
inline f32x8 min8(f32x8 a, f32x8 b) { return (f32x8)_mm256_min_ps((__m256)a, (__m256)b); }
#else
inline f32x8 max8(f32x8 a, f32x8 b) { return b < a ? a : b; }
inline f32x8 min8(f32x8 a, f32x8 b) { return a < b ? a : b; }
#endif
inline f32x16 max16(f32x16 a, f32x16 b) { return {max8(a.lo, b.lo), max8(a.hi, b.hi)}; }
inline f32x16 min16(f32x16 a, f32x16 b) { return {min8(a.lo, b.lo), min8(a.hi, b.hi)}; }
// 0 where mask is set, v elsewhere: one and-not rather than a blend
inline f32x16 zero_where16(i32x16 mask, f32x16 v) { return as_f32x16(~mask & as_i32x16(v)); }

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

// a * b + c rounded once where the baseline has FMA (x86-64-v3), whatever the optimisation level
// (GCC contracts a * b + c only from -O2): the AVX-512 twins of the routines below
// (softmax_tile_avx512.cpp) then give the same bits in every build.
inline f32x8 fma8(f32x8 a, f32x8 b, f32x8 c) {
#ifdef __FMA__
  return (f32x8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}
inline f32x16 fma16(f32x16 a, f32x16 b, f32x16 c) { return {fma8(a.lo, b.lo, c.lo), fma8(a.hi, b.hi, c.hi)}; }

// exp(r) on |r| <= ln2 / 2 as a polynomial in r, highest power first (Horner); every exp of the
// CPU kernels takes its coefficients from here.
constexpr int kExpPolyTerms = 7;
constexpr float kExpPoly[kExpPolyTerms] = {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f};

// exp(x) to ~2 ulp for x in [-87, 88], 0 below (so exp(-inf) = 0), by 2^n * poly(r) with
// Cody-Waite reduction r = x - n ln2, |r| <= ln2 / 2.
inline f32x16 exp16(f32x16 x) {
  const f32x16 xc = min16(max16(x, splat16(-87.0f)), splat16(88.0f));
  const f32x16 magic = splat16(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const f32x16 shifted = fma16(xc, splat16(1.44269504088896341f), magic);
  const f32x16 n = shifted - magic;
  f32x16 r = fma16(-n, splat16(0.693359375f), xc);
  r = fma16(-n, splat16(-2.12194440e-4f), r);
  f32x16 p = splat16(kExpPoly[0]);
  for (int i = 1; i < kExpPolyTerms; ++i) p = fma16(p, r, splat16(kExpPoly[i]));
  // the integer n sits in the low mantissa bits of `shifted` (1.5 * 2^23 + n, |n| <= 127): moved
  // into the exponent field directly, no float -> int conversion
  const i32x16 bits = (as_i32x16(shifted) + (127 - 0x4B400000)) << 23;
  const f32x16 result = p * as_f32x16(bits);
  return zero_where16(less16(x, splat16(-87.0f)), result);
}

inline float exp1(float x) { return exp16(splat16(x))[0]; }

}  // namespace cpu
}  // namespace maskattn
