// Horizontal reductions: of one 16-lane vector as a tree of halving steps (4 dependent operations
// instead of vec16.h's 16, once per row of every score tile), and of 8 vectors at once.
#pragma once
#include "vec16.h"

namespace maskattn {
namespace cpu {

typedef float f32x4 __attribute__((vector_size(16)));

inline f32x4 low4(f32x8 v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
inline f32x4 high4(f32x8 v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }

inline float tree_max16(f32x16 v) {
  const f32x8 a = v.lo > v.hi ? v.lo : v.hi;
  const f32x4 b = low4(a) > high4(a) ? low4(a) : high4(a);
  const f32x4 c = __builtin_shufflevector(b, b, 2, 3, 0, 1);
  const f32x4 d = b > c ? b : c;
  return d[0] > d[1] ? d[0] : d[1];
}

inline float tree_sum16(f32x16 v) {
  const f32x8 a = v.lo + v.hi;
  const f32x4 b = low4(a) + high4(a);
  const f32x4 c = b + __builtin_shufflevector(b, b, 2, 3, 0, 1);
  return c[0] + c[1];
}

// Lane j of the result is the sum of the lanes of v[j]: three steps of shuffle-and-add, each
// pairing halves of two vectors; after them the lanes come out in bit-reversed order, which
// reading the inputs in that order undoes.
inline f32x8 sum_lanes_of_8(const f32x8* v) {
  constexpr int kRev[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  f32x8 t[4], u[2];
  for (int i = 0; i < 4; ++i) {
    const f32x8 a = v[kRev[2 * i]], b = v[kRev[2 * i + 1]];
    t[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
  }
  for (int i = 0; i < 2; ++i)
    u[i] = __builtin_shufflevector(t[2 * i], t[2 * i + 1], 0, 1, 8, 9, 4, 5, 12, 13) +
           __builtin_shufflevector(t[2 * i], t[2 * i + 1], 2, 3, 10, 11, 6, 7, 14, 15);
  return __builtin_shufflevector(u[0], u[1], 0, 8, 2, 10, 4, 12, 6, 14) +
         __builtin_shufflevector(u[0], u[1], 1, 9, 3, 11, 5, 13, 7, 15);
}

}  // namespace cpu
}  // namespace maskattn
