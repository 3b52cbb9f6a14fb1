// Forward masked softmax kernels: one row = softmax(scale * scores + additive) over the keys the
// MaskSpec allows, zeros elsewhere. Row tiers as in softmax_tiers.cuh.
#pragma once
#include <cmath>
#include <cstdint>

#include "../masked_softmax.h"
#include "cuda_common.cuh"
#include "softmax_reduce.cuh"
#include "softmax_tiers.cuh"

namespace maskattn {
namespace gpu {

// Per-launch facts worked out once on the host.
struct SoftmaxFwdPlan {
  int64_t rows;
  float scale;
  bool vec_in;       // every scores row starts 16-byte aligned
  bool vec_out;      // every probs row starts 16-byte aligned
  bool elementwise;  // key_mask or an explicit mask: consult the MaskSpec key by key
};

// Where row `row` (flattened b, h, i) lives and which keys its band keeps.
struct FwdRow {
  int64_t b, h, i;
  int64_t begin, end;  // key_range, clipped to the row
  int64_t in_offset, out_offset;
};

__device__ __forceinline__ FwdRow locate_fwd_row(const MaskedSoftmaxParams& p, int64_t row) {
  FwdRow r;
  r.i = row % p.q_len;
  const int64_t bh = row / p.q_len;
  r.h = bh % p.heads;
  r.b = bh / p.heads;
  const KeyRange band = p.mask.key_range(r.b, r.i);
  r.begin = band.begin;
  r.end = band.end < p.k_len ? band.end : p.k_len;  // never index past the stored row
  r.in_offset = r.b * p.stride_b + r.h * p.stride_h + r.i * p.stride_i;
  r.out_offset = row * p.k_len;
  return r;
}

// Raw scores of keys [j0, j0 + kV) -> logits: scale * s (+ additive), -inf where not allowed.
template <int kV>
__device__ __forceinline__ void to_logits(float (&v)[kV], int64_t j0, const FwdRow& r, const MaskSpec& mask,
                                          const SoftmaxFwdPlan& plan) {
  if (!plan.elementwise) {
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      const int64_t j = j0 + k;
      v[k] = j >= r.begin && j < r.end ? v[k] * plan.scale : -INFINITY;
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < kV; ++k) {
    const int64_t j = j0 + k;
    const bool ok = j >= r.begin && j < r.end && mask.allowed_in_range(r.b, r.h, r.i, j);
    // the product rounded before the mask joins it, as torch's x * scale + mask (a fused
    // multiply-add would let a mask of ~1 break ties that torch keeps at scales near 1e20)
    v[k] = ok ? __fadd_rn(__fmul_rn(v[k], plan.scale), mask.additive(r.b, r.h, r.i, j)) : -INFINITY;
  }
}

// Whole row held in registers: kKeys per thread, in 16-byte chunks strided by the row's threads.
template <typename T, int kKeys, typename Row>
__device__ __forceinline__ void softmax_fwd_row_in_registers(const MaskedSoftmaxParams& p, const SoftmaxFwdPlan& plan,
                                                             int64_t row, const Row& group) {
  constexpr int kV = Vec16<T>::kSize, kChunks = kKeys / kV;
  static_assert(kChunks * kV == kKeys, "keys per thread must be whole 16-byte vectors");
  const FwdRow r = locate_fwd_row(p, row);
  const T* in = static_cast<const T*>(p.scores) + r.in_offset;
  T* out = static_cast<T*>(p.probs) + r.out_offset;

  float x[kChunks][kV];
  float local_max = -INFINITY;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int64_t j0 = (int64_t)(c * group.size() + group.rank()) * kV;
    if (j0 < r.end && j0 + kV > r.begin) {  // chunks wholly outside the band are never read
      load_chunk(in, j0, p.k_len, plan.vec_in, x[c], 0.f);
      to_logits(x[c], j0, r, p.mask, plan);
    } else {
#pragma unroll
      for (int k = 0; k < kV; ++k) x[c][k] = -INFINITY;
    }
#pragma unroll
    for (int k = 0; k < kV; ++k) local_max = fmaxf(local_max, x[c][k]);
  }
  const float row_max = group.max(local_max);
  const bool row_empty = row_max == -INFINITY;  // guards exp(-inf - -inf): such rows are zeros

  float local_sum = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c)
#pragma unroll
    for (int k = 0; k < kV; ++k) {
      x[c][k] = row_empty ? 0.f : expf(x[c][k] - row_max);
      local_sum += x[c][k];
    }
  const float row_sum = group.sum(local_sum);
  const float inv_sum = row_sum > 0.f ? 1.f / row_sum : 0.f;

#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int64_t j0 = (int64_t)(c * group.size() + group.rank()) * kV;
    if (j0 >= p.k_len) continue;
#pragma unroll
    for (int k = 0; k < kV; ++k) x[c][k] *= inv_sum;
    store_chunk(out, j0, p.k_len, plan.vec_out, x[c]);
  }
}

// Row too long for registers: online (max, sum) over the band, then re-read, normalise, write.
template <typename T>
__device__ __forceinline__ void softmax_fwd_row_streamed(const MaskedSoftmaxParams& p, const SoftmaxFwdPlan& plan,
                                                         int64_t row, float* scratch) {
  constexpr int kV = Vec16<T>::kSize;
  const FwdRow r = locate_fwd_row(p, row);
  const T* in = static_cast<const T*>(p.scores) + r.in_offset;
  T* out = static_cast<T*>(p.probs) + r.out_offset;

  MaxSum acc{-INFINITY, 0.f};
  for (int64_t v = r.begin / kV + threadIdx.x; v * kV < r.end; v += blockDim.x) {
    float x[kV];
    load_chunk(in, v * kV, p.k_len, plan.vec_in, x, 0.f);
    to_logits(x, v * kV, r, p.mask, plan);
    float chunk_max = -INFINITY;
#pragma unroll
    for (int k = 0; k < kV; ++k) chunk_max = fmaxf(chunk_max, x[k]);
    if (chunk_max == -INFINITY) continue;  // nothing allowed here: keep acc free of NaN
    const float new_max = fmaxf(acc.max, chunk_max);
    float chunk_sum = 0.f;
#pragma unroll
    for (int k = 0; k < kV; ++k) chunk_sum += expf(x[k] - new_max);
    acc.sum = acc.sum * expf(acc.max - new_max) + chunk_sum;
    acc.max = new_max;
  }
  const MaxSum total = block_reduce(acc, scratch);
  const bool row_empty = total.max == -INFINITY;
  const float inv_sum = total.sum > 0.f ? 1.f / total.sum : 0.f;

  for (int64_t v = threadIdx.x; v * kV < p.k_len; v += blockDim.x) {
    const int64_t j0 = v * kV;
    float x[kV];
    if (!row_empty && j0 < r.end && j0 + kV > r.begin) {
      load_chunk(in, j0, p.k_len, plan.vec_in, x, 0.f);
      to_logits(x, j0, r, p.mask, plan);
#pragma unroll
      for (int k = 0; k < kV; ++k) x[k] = expf(x[k] - total.max) * inv_sum;
    } else {
#pragma unroll
      for (int k = 0; k < kV; ++k) x[k] = 0.f;
    }
    store_chunk(out, j0, p.k_len, plan.vec_out, x);
  }
}

template <typename T>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    softmax_fwd_warp_rows_kernel(const MaskedSoftmaxParams p, const SoftmaxFwdPlan plan) {
  const int64_t step = (int64_t)gridDim.x * kWarpRowsPerBlock;
  for (int64_t row = (int64_t)blockIdx.x * kWarpRowsPerBlock + (threadIdx.x >> 5); row < plan.rows; row += step)
    softmax_fwd_row_in_registers<T, kWarpRowKeysPerLane>(p, plan, row, WarpRow());
}

template <typename T>
__global__ void __launch_bounds__(kBlockRowMaxThreads)
    softmax_fwd_block_rows_kernel(const MaskedSoftmaxParams p, const SoftmaxFwdPlan plan) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < plan.rows; row += gridDim.x)
    softmax_fwd_row_in_registers<T, kBlockRowKeysPerThread>(p, plan, row, BlockRow{scratch});
}

template <typename T>
__global__ void __launch_bounds__(kStreamThreads, 1)
    softmax_fwd_streamed_rows_kernel(const MaskedSoftmaxParams p, const SoftmaxFwdPlan plan) {
  __shared__ float scratch[64];
  for (int64_t row = blockIdx.x; row < plan.rows; row += gridDim.x)
    softmax_fwd_row_streamed<T>(p, plan, row, scratch);
}

}  // namespace gpu
}  // namespace maskattn
