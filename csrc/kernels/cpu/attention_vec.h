// Horizontal reductions of a 16-lane vector as a tree of halving steps: 4 dependent operations
// instead of vec16.h's 16, which matters once per row of every score tile.
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

}  // namespace cpu
}  // namespace maskattn
