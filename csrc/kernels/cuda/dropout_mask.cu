// CUDA keep mask of attention dropout: one thread per group of 8 elements (one Philox call).
#include "../dropout_mask.h"
#include "cuda_common.cuh"

namespace maskattn {
namespace {

__global__ void dropout_keep_mask_kernel(const DropoutSpec d, uint64_t n, uint8_t* keep) {
  const uint64_t groups = (n + kDropoutGroup - 1) / kDropoutGroup;
  for (uint64_t g = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (uint64_t)gridDim.x * blockDim.x) {
    const Philox4 w = philox4x32(d.seed, d.offset, g);
    for (uint64_t e = g * kDropoutGroup; e < (g + 1) * kDropoutGroup && e < n; ++e)
      keep[e] = DropoutSpec::bits_of(w, e) >= d.threshold ? 1 : 0;
  }
}

}  // namespace

void dropout_keep_mask_cuda(const DropoutSpec& d, int64_t batch, uint8_t* keep, void* stream) {
  const uint64_t n = (uint64_t)(batch * d.heads * d.q_len * d.k_len);
  if (n == 0) return;
  const int threads = 256;
  const unsigned int blocks = gpu::grid_blocks((int64_t)((n + kDropoutGroup - 1) / kDropoutGroup), threads);
  gpu::launch_kernel("dropout_keep_mask_kernel", dropout_keep_mask_kernel, blocks, threads, 0,
                     gpu::as_cuda_stream(stream), d, n, keep);
}

}  // namespace maskattn
