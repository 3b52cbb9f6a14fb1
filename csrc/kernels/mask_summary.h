// Torch-free entry points of the explicit-mask block summary (CPU and CUDA): one pass over the
// mask, honouring its broadcast strides, producing the MaskSpec::mask_blocks flags.
#pragma once
#include <cstdint>

#include "../mask_spec.h"

namespace maskattn {

// The mask element [b, h, i, j] is at mask + b * stride_b + h * stride_h + i * stride_i +
// j * stride_j over its own extents (batch, heads, rows, keys): 1 on a broadcast dim (stride 0).
// blocks: contiguous (batch, ceil(rows / kMaskBlock), ceil(keys / kMaskBlock)) flags, heads
// combined (kMaskBlockAny if any head allows an element, kMaskBlockFull if all allow all with 0).
struct MaskSummaryParams {
  const void* mask = nullptr;
  ScalarKind kind = ScalarKind::Bool;
  int64_t batch = 1, heads = 1, rows = 1, keys = 1;
  int64_t stride_b = 0, stride_h = 0, stride_i = 0, stride_j = 0;
  uint8_t* blocks = nullptr;

  MA_HD int64_t row_blocks() const { return (rows + kMaskBlock - 1) / kMaskBlock; }
  MA_HD int64_t key_blocks() const { return (keys + kMaskBlock - 1) / kMaskBlock; }
};

// (allowed, allowed with additive 0) of the mask element at `offset`: bool True, or an additive
// value that is not -inf (and is +-0). Bits are compared for 16-bit floats: no conversion needed.
struct MaskElementFlags {
  bool any, full;
};
MA_HD MaskElementFlags mask_element_flags(ScalarKind kind, const void* mask, int64_t offset) {
  switch (kind) {
    case ScalarKind::Bool: {
      const bool v = static_cast<const uint8_t*>(mask)[offset] != 0;
      return {v, v};
    }
    case ScalarKind::Float32: {
      const float v = static_cast<const float*>(mask)[offset];
      return {v != -__builtin_inff(), v == 0.f};
    }
    case ScalarKind::Float64: {
      const double v = static_cast<const double*>(mask)[offset];
      return {v != -__builtin_inf(), v == 0.0};
    }
    case ScalarKind::Float16: {
      const uint16_t v = static_cast<const uint16_t*>(mask)[offset];
      return {v != 0xfc00u, (v & 0x7fffu) == 0};
    }
    case ScalarKind::BFloat16: {
      const uint16_t v = static_cast<const uint16_t*>(mask)[offset];
      return {v != 0xff80u, (v & 0x7fffu) == 0};
    }
  }
  return {true, false};
}

void mask_block_summary_cpu(const MaskSummaryParams& p);
void mask_block_summary_cuda(const MaskSummaryParams& p, void* stream);

}  // namespace maskattn
