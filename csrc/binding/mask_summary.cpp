// The explicit mask's block summary (MaskSpec::mask_blocks), computed on the mask's device in one
// pass over the mask, asynchronously like any kernel: no host sync, no copy of the mask.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "../kernels/mask_summary.h"
#include "device_call.h"
#include "mask_args.h"

namespace maskattn {

void attach_mask_summary(const char* op, const at::Device& device, PreparedMask& out) {
  MaskSpec& s = out.spec;
  if (s.mask == nullptr || s.q_len == 0 || s.k_len == 0) return;
  MaskSummaryParams p;
  p.mask = s.mask;
  p.kind = s.mask_kind;
  // the mask's own extents: a broadcast (or size-1) dim has stride 0 and one index
  p.batch = s.mask_stride_b == 0 ? 1 : s.batch;
  p.heads = s.mask_stride_h == 0 ? 1 : s.heads;
  p.rows = s.mask_stride_i == 0 ? 1 : s.q_len;
  p.keys = s.mask_stride_j == 0 ? 1 : s.k_len;
  p.stride_b = s.mask_stride_b, p.stride_h = s.mask_stride_h, p.stride_i = s.mask_stride_i;
  p.stride_j = s.mask_stride_j;
  const int64_t rb = p.row_blocks(), kb = p.key_blocks();
  at::Tensor blocks = at::empty({p.batch, rb, kb}, at::TensorOptions().dtype(at::kByte).device(device));
  p.blocks = blocks.data_ptr<uint8_t>();
  run_on_device(op, device, [&] { mask_block_summary_cpu(p); },
                [&](void* stream) { mask_block_summary_cuda(p, stream); });
  out.keep_alive.push_back(blocks);
  s.mask_blocks = p.blocks;
  s.mask_blocks_stride_b = p.batch == 1 ? 0 : rb * kb;
  s.mask_blocks_stride_i = p.rows == 1 ? 0 : kb;
  s.mask_blocks_stride_j = p.keys == 1 ? 0 : 1;
}

}  // namespace maskattn
