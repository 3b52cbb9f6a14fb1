// CUDA explicit-mask block summary: one thread per (batch, row block, key block) flag. Threads of
// a warp take consecutive key blocks, so each row of the mask is read in contiguous runs.
#include "../mask_summary.h"
#include "cuda_common.cuh"

namespace maskattn {
namespace {

using namespace gpu;

constexpr int kSummaryThreads = 256;

__global__ void __launch_bounds__(kSummaryThreads) mask_block_summary_kernel(const MaskSummaryParams p) {
  const int64_t rb = p.row_blocks(), kb = p.key_blocks(), flags = p.batch * rb * kb;
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < flags; t += step) {
    const int64_t jb = t % kb, ib = (t / kb) % rb, b = t / (kb * rb);
    const int64_t i0 = ib * kMaskBlock, i1 = i0 + kMaskBlock < p.rows ? i0 + kMaskBlock : p.rows;
    const int64_t j0 = jb * kMaskBlock, j1 = j0 + kMaskBlock < p.keys ? j0 + kMaskBlock : p.keys;
    bool any_head = false, full_heads = true;  // some head allows something; every head allows everything
    for (int64_t h = 0; h < p.heads; ++h) {
      bool any = false, full = true;
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) {
          const MaskElementFlags e =
              mask_element_flags(p.kind, p.mask, b * p.stride_b + h * p.stride_h + i * p.stride_i + j * p.stride_j);
          any |= e.any;
          full &= e.full;
        }
      any_head |= any;
      full_heads &= full;
    }
    p.blocks[t] = (uint8_t)((any_head ? kMaskBlockAny : 0) | (full_heads ? kMaskBlockFull : 0));
  }
}

}  // namespace

void mask_block_summary_cuda(const MaskSummaryParams& p, void* stream) {
  const int64_t flags = p.batch * p.row_blocks() * p.key_blocks();
  if (flags == 0) return;
  launch_kernel("mask_block_summary_kernel", mask_block_summary_kernel, grid_blocks(flags, kSummaryThreads),
                kSummaryThreads, 0, as_cuda_stream(stream), p);
}

}  // namespace maskattn
