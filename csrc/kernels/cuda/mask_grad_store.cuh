// The additive mask's gradient written by the CUDA backward kernels: dS stored where each mask
// element has one score element, added atomically where the mask broadcasts (so those sums are
// not bitwise reproducible from run to run).
#pragma once
#include <cstdint>

#include "../mask_grad.h"
#include "attention_fragments.h"

namespace maskattn {
namespace gpu {

// Adds dS of (b, h, i, j) into the mask's gradient.
__device__ __forceinline__ void add_mask_grad(const MaskGradOut& g, int64_t b, int64_t h, int64_t i, int64_t j,
                                              float ds) {
  if (ds == 0.f) return;  // the buffer starts at zero
  float* dst = static_cast<float*>(g.data) + g.offset(b, h, i, j);
  if (g.reduced)
    atomicAdd(dst, ds);
  else
    *dst = ds;
}

// The same for a warp's accumulator tile of dS (rows = queries row[0], row[1], cols = keys j0..).
template <int N_TILES>
__device__ __forceinline__ void add_mask_grad_fragment(const MaskGradOut& g, const float (&ds)[N_TILES][4], int64_t b,
                                                       int64_t h, const int64_t (&row)[2], int64_t j0, int64_t q_len,
                                                       int64_t k_len, int lane) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = row[r >> 1], j = j0 + nt * 8 + frag::acc_col(lane, r);
      if (i < q_len && j < k_len) add_mask_grad(g, b, h, i, j, ds[nt][r]);
    }
}

}  // namespace gpu
}  // namespace maskattn
