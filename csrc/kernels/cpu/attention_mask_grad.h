// Gradient of an additive mask on CPU: score-gradient tiles added into the mask's gradient, and
// the split of the work that keeps those sums race-free and deterministic.
//
// A mask with its own element for every (batch, head, query, key) has one writer per element
// whatever the schedule. A mask that broadcasts over a coordinate (batch, heads, keys) gathers
// sums from work items that differ in it, so those items are merged: one item then loops over
// that coordinate itself, each mask element has exactly one owner, and its additions come in a
// fixed order for any number of threads (no per-thread copies of the mask, no atomics).
#pragma once
#include <cstdint>

#include "../mask_grad.h"

namespace maskattn {
namespace cpu {

// g[b, h, i0 + r, j0 + c] += ds[r * ld + c] for r < rows, c < n; T is the gradient's element type.
template <typename T, typename S>
inline void add_mask_grad_tile(const MaskGradOut& g, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0,
                               int64_t n, const S* ds, int64_t ld) {
  T* base = static_cast<T*>(g.data);
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = base + g.offset(b, h, i0 + r, j0);
    const S* src = ds + r * ld;
    if (g.stride_j == 1) {
      for (int64_t c = 0; c < n; ++c) dst[c] += (T)src[c];
    } else {
      for (int64_t c = 0; c < n; ++c) dst[c * g.stride_j] += (T)src[c];
    }
  }
}

// Work items over up to three coordinates (e.g. batch, kv head, key tile), each either split (one
// item per value) or merged (one item covers every value) when the mask gradient broadcasts over
// it. Item n covers the coordinate values for_each hands out, always in the same order.
struct OwnedItems {
  int64_t size[3];   // values of each coordinate
  bool split[3];     // one item per value

  int64_t extent(int k) const { return split[k] ? size[k] : 1; }
  int64_t count() const { return extent(0) * extent(1) * extent(2); }

  template <typename Fn>
  void for_each(int64_t item, Fn&& fn) const {
    const int64_t c2 = item % extent(2), c1 = (item / extent(2)) % extent(1), c0 = item / (extent(2) * extent(1));
    for (int64_t a = split[0] ? c0 : 0; a < (split[0] ? c0 + 1 : size[0]); ++a)
      for (int64_t m = split[1] ? c1 : 0; m < (split[1] ? c1 + 1 : size[1]); ++m)
        for (int64_t z = split[2] ? c2 : 0; z < (split[2] ? c2 + 1 : size[2]); ++z) fn(a, m, z);
  }
};

// Items over (coordinate 0, 1, 2) whose strides in the mask gradient are stride0..2: a
// coordinate stays split unless a reduced gradient broadcasts over it (stride 0, more than one value).
inline OwnedItems owned_items(const MaskGradOut& g, int64_t size0, int64_t stride0, int64_t size1, int64_t stride1,
                              int64_t size2, int64_t stride2) {
  const bool merge = g.wanted() && g.reduced;
  return OwnedItems{{size0, size1, size2},
                    {!merge || stride0 != 0 || size0 <= 1, !merge || stride1 != 0 || size1 <= 1,
                     !merge || stride2 != 0 || size2 <= 1}};
}

}  // namespace cpu
}  // namespace maskattn
