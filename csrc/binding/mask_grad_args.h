// The gradient buffer of an additive mask: allocated in the mask's own shape, viewed by the
// kernels through MaskGradOut's strides (zero along the dims the mask broadcasts over).
#pragma once
#include <ATen/core/Tensor.h>

#include "../kernels/mask_grad.h"

namespace maskattn {

struct MaskGradBuffer {
  at::Tensor grad;  // zeros in the mask's shape: float64 for float64 math, else float32
  MaskGradOut out;
};

// For `mask` broadcast to `mask_shape`, viewed as (batch, heads, q_len, k_len).
MaskGradBuffer mask_grad_buffer(const char* op, const at::Tensor& mask, at::IntArrayRef mask_shape, int64_t batch,
                                int64_t heads, int64_t q_len, int64_t k_len, bool float64_math);

}  // namespace maskattn
