// Torch-free entry points of the fused scale + mask + softmax kernels (CPU and CUDA).
#pragma once
#include <cstdint>

#include "../mask_spec.h"
#include "mask_grad.h"

namespace maskattn {

// probs[b, h, i, :] = softmax(scale * scores[b, h, i, :] + mask) over k_len keys, fp32 math
// (fp64 for Float64). scores: element strides for b, h, i; the key dimension is contiguous.
// probs: contiguous (batch, heads, q_len, k_len). Rows with no allowed key become zeros.
struct MaskedSoftmaxParams {
  ScalarKind dtype = ScalarKind::Float32;
  const void* scores = nullptr;
  void* probs = nullptr;
  int64_t batch = 1, heads = 1, q_len = 0, k_len = 0;
  int64_t stride_b = 0, stride_h = 0, stride_i = 0;
  double scale = 1.0;
  MaskSpec mask;
};

// grad_scores = scale * probs * (grad - sum(grad * probs)) row by row; all three contiguous,
// rows x k_len, row r = ((b * heads + h) * q_len + i). Masked entries have probs == 0, so they get
// zero gradient whatever the kernel does; `mask` (the band: causal, window, k_lengths, and the
// forward's explicit mask with its block summary) only lets a kernel skip reading keys outside
// live_key_range(b, i). mask_grad (optional) receives probs * (grad - sum(grad * probs)), the
// gradient of an additive mask, in the same pass.
struct MaskedSoftmaxBwdParams {
  ScalarKind dtype = ScalarKind::Float32;
  const void* grad = nullptr;
  const void* probs = nullptr;
  void* grad_scores = nullptr;
  int64_t rows = 0, k_len = 0;
  int64_t heads = 1, q_len = 1;
  double scale = 1.0;
  MaskSpec mask;
  MaskGradOut mask_grad;
};

void masked_softmax_fwd_cpu(const MaskedSoftmaxParams& p);
void masked_softmax_bwd_cpu(const MaskedSoftmaxBwdParams& p);

void masked_softmax_fwd_cuda(const MaskedSoftmaxParams& p, void* stream);
void masked_softmax_bwd_cuda(const MaskedSoftmaxBwdParams& p, void* stream);

}  // namespace maskattn
