// Horizontal reductions: of one 16-lane vector as a tree of halving steps (4 dependent operations
// instead of vec16.h's 16, once per row of every score tile), and of 16 vectors at once.
#pragma once
#include "vec16.h"

namespace maskattn {
namespace cpu {

typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));

inline f32x8 low8(f32x16 v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
inline f32x8 high8(f32x16 v) { return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15); }
inline f32x4 low4(f32x8 v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
inline f32x4 high4(f32x8 v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }

inline float tree_max16(f32x16 v) {
  const f32x8 a = low8(v) > high8(v) ? low8(v) : high8(v);
  const f32x4 b = low4(a) > high4(a) ? low4(a) : high4(a);
  const f32x4 c = __builtin_shufflevector(b, b, 2, 3, 0, 1);
  const f32x4 d = b > c ? b : c;
  return d[0] > d[1] ? d[0] : d[1];
}

inline float tree_sum16(f32x16 v) {
  const f32x8 a = low8(v) + high8(v);
  const f32x4 b = low4(a) + high4(a);
  const f32x4 c = b + __builtin_shufflevector(b, b, 2, 3, 0, 1);
  return c[0] + c[1];
}

// Lane j of the result is the sum of the lanes of v[j]: 15 shuffle-and-add steps for 16 sums.
// Each step pairs the halves of two vectors; after four the lanes come out in bit-reversed order,
// which reading the inputs in bit-reversed order undoes.
inline f32x16 sum_lanes_of_16(const f32x16* v) {
  constexpr int kRev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  f32x16 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = __builtin_shufflevector(v[kRev[2 * i]], v[kRev[2 * i + 1]], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                   22, 23) +
           __builtin_shufflevector(v[kRev[2 * i]], v[kRev[2 * i + 1]], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                   29, 30, 31);
  for (int i = 0; i < 4; ++i)
    b[i] = __builtin_shufflevector(a[2 * i], a[2 * i + 1], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
           __builtin_shufflevector(a[2 * i], a[2 * i + 1], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int i = 0; i < 2; ++i)
    c[i] = __builtin_shufflevector(b[2 * i], b[2 * i + 1], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
           __builtin_shufflevector(b[2 * i], b[2 * i + 1], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  return __builtin_shufflevector(c[0], c[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
         __builtin_shufflevector(c[0], c[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

}  // namespace cpu
}  // namespace maskattn
