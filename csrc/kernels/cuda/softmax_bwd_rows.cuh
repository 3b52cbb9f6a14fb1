// Backward masked softmax kernels: grad_scores = scale * probs * (grad - dot(grad, probs)) per
// contiguous row. Masked keys have probs == 0 and so get zero gradient without the mask. The
// additive mask's gradient, probs * (grad - dot), is written in the same pass when asked for.
#pragma once
#include <cstdint>

#include "../masked_softmax.h"
#include "cuda_common.cuh"
#include "mask_grad_store.cuh"
#include "softmax_reduce.cuh"
#include "softmax_tiers.cuh"

namespace maskattn {
namespace gpu {

struct SoftmaxBwdPlan {
  float scale;
  bool vec_ok;  // grad, probs and grad_scores rows all start 16-byte aligned
};

// Adds probs * (grad - dot) of keys j0 .. j0 + kV - 1 of `row` into the mask's gradient.
template <int kV>
__device__ __forceinline__ void add_row_mask_grad(const MaskedSoftmaxBwdParams& p, int64_t row, int64_t j0,
                                                  const float (&g)[kV], const float (&y)[kV], float dot) {
  const int64_t i = row % p.q_len, h = (row / p.q_len) % p.heads, b = row / (p.q_len * p.heads);
#pragma unroll
  for (int k = 0; k < kV; ++k)
    if (j0 + k < p.k_len) add_mask_grad(p.mask_grad, b, h, i, j0 + k, (g[k] - dot) * y[k]);
}

template <typename T, int kKeys, typename Row>
__device__ __forceinline__ void softmax_bwd_row_in_registers(const MaskedSoftmaxBwdParams& p,
                                                             const SoftmaxBwdPlan& plan, int64_t row,
                                                             const Row& group) {
  constexpr int kV = Vec16<T>::kSize, kChunks = kKeys / kV;
  static_assert(kChunks * kV == kKeys, "keys per thread must be whole 16-byte vectors");
  const int64_t offset = row * p.k_len;
  const T* grad = static_cast<const T*>(p.grad) + offset;
  const T* probs = static_cast<const T*>(p.probs) + offset;
  T* out = static_cast<T*>(p.grad_scores) + offset;

  float g[kChunks][kV], y[kChunks][kV];
  float local_dot = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int64_t j0 = (int64_t)(c * group.size() + group.rank()) * kV;
    if (j0 < p.k_len) {
      load_chunk(grad, j0, p.k_len, plan.vec_ok, g[c], 0.f);
      load_chunk(probs, j0, p.k_len, plan.vec_ok, y[c], 0.f);
    } else {
#pragma unroll
      for (int k = 0; k < kV; ++k) g[c][k] = y[c][k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < kV; ++k) local_dot += g[c][k] * y[c][k];
  }
  const float dot = group.sum(local_dot);

#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int64_t j0 = (int64_t)(c * group.size() + group.rank()) * kV;
    if (j0 >= p.k_len) continue;
    if (p.mask_grad.wanted()) add_row_mask_grad<kV>(p, row, j0, g[c], y[c], dot);
#pragma unroll
    for (int k = 0; k < kV; ++k) g[c][k] = (g[c][k] - dot) * y[c][k] * plan.scale;
    store_chunk(out, j0, p.k_len, plan.vec_ok, g[c]);
  }
}

// Row too long for registers: a dot pass, then re-read and write.
template <typename T>
__device__ __forceinline__ void softmax_bwd_row_streamed(const MaskedSoftmaxBwdParams& p, const SoftmaxBwdPlan& plan,
                                                         int64_t row, float* scratch) {
  constexpr int kV = Vec16<T>::kSize;
  const int64_t offset = row * p.k_len;
  const T* grad = static_cast<const T*>(p.grad) + offset;
  const T* probs = static_cast<const T*>(p.probs) + offset;
  T* out = static_cast<T*>(p.grad_scores) + offset;

  float local_dot = 0.f;
  for (int64_t v = threadIdx.x; v * kV < p.k_len; v += blockDim.x) {
    float g[kV], y[kV];
    load_chunk(grad, v * kV, p.k_len, plan.vec_ok, g, 0.f);
    load_chunk(probs, v * kV, p.k_len, plan.vec_ok, y, 0.f);
#pragma unroll
    for (int k = 0; k < kV; ++k) local_dot += g[k] * y[k];
  }
  const float dot = block_reduce(local_dot, SumOp(), scratch);

  for (int64_t v = threadIdx.x; v * kV < p.k_len; v += blockDim.x) {
    float g[kV], y[kV];
    load_chunk(grad, v * kV, p.k_len, plan.vec_ok, g, 0.f);
    load_chunk(probs, v * kV, p.k_len, plan.vec_ok, y, 0.f);
    if (p.mask_grad.wanted()) add_row_mask_grad<kV>(p, row, v * kV, g, y, dot);
#pragma unroll
    for (int k = 0; k < kV; ++k) g[k] = (g[k] - dot) * y[k] * plan.scale;
    store_chunk(out, v * kV, p.k_len, plan.vec_ok, g);
  }
}

template <typename T>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    softmax_bwd_warp_rows_kernel(const MaskedSoftmaxBwdParams p, const SoftmaxBwdPlan plan) {
  const int64_t step = (int64_t)gridDim.x * kWarpRowsPerBlock;
  for (int64_t row = (int64_t)blockIdx.x * kWarpRowsPerBlock + (threadIdx.x >> 5); row < p.rows; row += step)
    softmax_bwd_row_in_registers<T, kWarpRowKeysPerLane>(p, plan, row, WarpRow());
}

template <typename T>
__global__ void __launch_bounds__(kBlockRowMaxThreads)
    softmax_bwd_block_rows_kernel(const MaskedSoftmaxBwdParams p, const SoftmaxBwdPlan plan) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x)
    softmax_bwd_row_in_registers<T, kBlockRowKeysPerThread>(p, plan, row, BlockRow{scratch});
}

template <typename T>
__global__ void __launch_bounds__(kStreamThreads, 1)
    softmax_bwd_streamed_rows_kernel(const MaskedSoftmaxBwdParams p, const SoftmaxBwdPlan plan) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) softmax_bwd_row_streamed<T>(p, plan, row, scratch);
}

}  // namespace gpu
}  // namespace maskattn
