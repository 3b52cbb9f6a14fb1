// Row reductions of the softmax kernels: a row is owned by one warp or by one whole block, and
// every thread of the owner receives the reduced value.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

namespace maskattn {
namespace gpu {

constexpr unsigned int kFullWarp = 0xffffffffu;

struct MaxOp {
  static constexpr float kIdentity = -INFINITY;
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

struct SumOp {
  static constexpr float kIdentity = 0.f;
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int lane_mask = 16; lane_mask > 0; lane_mask >>= 1) v = op(v, __shfl_xor_sync(kFullWarp, v, lane_mask));
  return v;
}

// Whole-block reduction through one float per warp; blockDim.x must be a multiple of 32.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, Op op, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // the previous reduction may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  // every warp folds the partials itself: no second broadcast round
  return warp_reduce(lane < warps ? scratch[lane] : Op::kIdentity, op);
}

// Running softmax denominator: sum of exp(x - max) over the keys seen so far.
struct MaxSum {
  float max;
  float sum;
};

// Merges two partial denominators; two empty ones (max -inf) stay empty instead of giving NaN.
__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.f};
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__device__ __forceinline__ MaxSum warp_reduce(MaxSum v) {
#pragma unroll
  for (int lane_mask = 16; lane_mask > 0; lane_mask >>= 1) {
    const MaxSum other{__shfl_xor_sync(kFullWarp, v.max, lane_mask), __shfl_xor_sync(kFullWarp, v.sum, lane_mask)};
    v = merge(v, other);
  }
  return v;
}

// scratch holds 64 floats: one (max, sum) pair per warp.
__device__ __forceinline__ MaxSum block_reduce(MaxSum v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v);
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = v.max;
    scratch[32 + warp] = v.sum;
  }
  __syncthreads();
  const MaxSum partial = lane < warps ? MaxSum{scratch[lane], scratch[32 + lane]} : MaxSum{-INFINITY, 0.f};
  return warp_reduce(partial);
}

// A row owned by one warp: lanes are the row's threads.
struct WarpRow {
  __device__ __forceinline__ int rank() const { return threadIdx.x & 31; }
  __device__ __forceinline__ int size() const { return 32; }
  __device__ __forceinline__ float max(float v) const { return warp_reduce(v, MaxOp()); }
  __device__ __forceinline__ float sum(float v) const { return warp_reduce(v, SumOp()); }
};

// A row owned by the whole block; `scratch` is 32 floats of shared memory.
struct BlockRow {
  float* scratch;
  __device__ __forceinline__ int rank() const { return threadIdx.x; }
  __device__ __forceinline__ int size() const { return blockDim.x; }
  __device__ __forceinline__ float max(float v) const { return block_reduce(v, MaxOp(), scratch); }
  __device__ __forceinline__ float sum(float v) const { return block_reduce(v, SumOp(), scratch); }
};

}  // namespace gpu
}  // namespace maskattn
