// Fused masked softmax ops: argument checks, allocation, kernel call.
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include "../kernels/masked_softmax.h"
#include "device_call.h"
#include "large_output.h"
#include "mask_args.h"
#include "mask_grad_args.h"
#include "ops.h"

namespace maskattn {

static ScalarKind float_kind(const at::Tensor& t, const char* op, const char* arg) {
  const ScalarKind k = scalar_kind_of(t.scalar_type(), op, arg);
  TORCH_CHECK(k != ScalarKind::Bool, op, ": ", arg, " must be a float tensor, got bool");
  TORCH_CHECK(k != ScalarKind::Float64 || t.is_cpu(), op, ": float64 ", arg, " is supported on CPU only");
  return k;
}

// Runs the forward of `op` from scores into probs (contiguous, scores' shape and dtype; probs may
// be scores itself on CPU, where each row is read before it is written).
static void masked_softmax_into(const char* op, const at::Tensor& scores, const OptTensor& mask, double scale,
                                bool causal, std::string_view align, int64_t align_offset, OptInt window_left,
                                OptInt window_right, const OptTensor& k_lengths, const OptTensor& key_mask,
                                const OptTensor& q_segments, const OptTensor& k_segments, const at::Tensor& probs) {
  TORCH_CHECK(scores.dim() >= 2 && scores.dim() <= 4, op,
              ": scores must have shape (Lq, Lk), (B, Lq, Lk) or (B, H, Lq, Lk), got ", scores.sizes());
  const ScalarKind kind = float_kind(scores, op, "scores");
  const int64_t d = scores.dim();
  const int64_t batch = d >= 3 ? scores.size(0) : 1;
  const int64_t heads = d == 4 ? scores.size(1) : 1;
  const int64_t q_len = scores.size(d - 2), k_len = scores.size(d - 1);
  const MaskArgs args = make_mask_args(mask, causal, align, align_offset, window_left, window_right, std::nullopt,
                                       k_lengths, key_mask, q_segments, k_segments);
  PreparedMask pm = prepare_mask(op, args, batch, heads, q_len, k_len, scores.sizes(), scores.device());
  if (probs.numel() == 0) return;
  // rows may be strided, keys must be contiguous for vector loads
  const at::Tensor x = scores.stride(-1) == 1 ? scores : scores.contiguous();
  MaskedSoftmaxParams p;
  p.dtype = kind;
  p.scores = x.data_ptr();
  p.probs = probs.data_ptr();
  p.batch = batch;
  p.heads = heads;
  p.q_len = q_len;
  p.k_len = k_len;
  p.stride_b = d >= 3 ? x.stride(0) : 0;
  p.stride_h = d == 4 ? x.stride(1) : 0;
  p.stride_i = x.stride(d - 2);
  p.scale = scale;
  p.mask = pm.spec;
  run_on_device(op, scores.device(), [&] { masked_softmax_fwd_cpu(p); },
                [&](void* stream) { masked_softmax_fwd_cuda(p, stream); });
}

at::Tensor masked_softmax_op(const at::Tensor& scores, const OptTensor& mask, double scale, bool causal,
                             std::string_view align, int64_t align_offset, OptInt window_left, OptInt window_right,
                             const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
                             const OptTensor& k_segments) {
  at::Tensor probs = empty_large_output(scores.sizes(), scores.options().memory_format(at::MemoryFormat::Contiguous));
  masked_softmax_into("maskattn.masked_softmax", scores, mask, scale, causal, align, align_offset, window_left,
                      window_right, k_lengths, key_mask, q_segments, k_segments, probs);
  return probs;
}

void masked_softmax_out_op(const at::Tensor& scores, const OptTensor& mask, double scale, bool causal,
                           std::string_view align, int64_t align_offset, OptInt window_left, OptInt window_right,
                           const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
                           const OptTensor& k_segments, at::Tensor& out) {
  const char* op = "maskattn.masked_softmax(out=)";
  TORCH_CHECK(out.sizes() == scores.sizes() && out.scalar_type() == scores.scalar_type() &&
                  out.device() == scores.device(),
              op, ": out must have scores' shape ", scores.sizes(), ", dtype ", scores.scalar_type(), " and device ",
              scores.device(), ", got ", out.sizes(), " ", out.scalar_type(), " on ", out.device());
  TORCH_CHECK(out.is_contiguous(), op, ": out must be contiguous");
  const bool in_place = out.is_same(scores) || (out.data_ptr() == scores.data_ptr() && scores.is_contiguous());
  if (!in_place) at::assert_no_overlap(out, scores);
  if (in_place && !scores.is_cpu()) {
    // the CUDA kernels may read a row after writing part of it: go through a fresh buffer
    out.copy_(masked_softmax_op(scores, mask, scale, causal, align, align_offset, window_left, window_right,
                                k_lengths, key_mask, q_segments, k_segments));
    return;
  }
  masked_softmax_into(op, scores, mask, scale, causal, align, align_offset, window_left, window_right, k_lengths,
                      key_mask, q_segments, k_segments, out);
}

std::tuple<at::Tensor, at::Tensor> masked_softmax_backward_op(const at::Tensor& grad, const at::Tensor& probs,
                                                              double scale, bool causal, std::string_view align,
                                                              int64_t align_offset, OptInt window_left,
                                                              OptInt window_right, const OptTensor& k_lengths,
                                                              const OptTensor& mask, bool mask_grad) {
  const char* op = "maskattn.masked_softmax_backward";
  TORCH_CHECK(grad.sizes() == probs.sizes(), op, ": grad shape ", grad.sizes(), " must equal probs shape ",
              probs.sizes());
  TORCH_CHECK(grad.device() == probs.device(), op, ": grad and probs must be on one device");
  const ScalarKind kind = float_kind(probs, op, "probs");
  TORCH_CHECK(grad.scalar_type() == probs.scalar_type(), op, ": grad dtype ", grad.scalar_type(),
              " must equal probs dtype ", probs.scalar_type());
  const at::Tensor g = grad.contiguous(), pr = probs.contiguous();
  at::Tensor out = empty_large_output(probs.sizes(), probs.options().memory_format(at::MemoryFormat::Contiguous));
  TORCH_CHECK(!mask_grad || mask.has_value(), op, ": mask_grad needs the additive mask");
  if (out.numel() == 0)
    return {out, mask_grad ? at::zeros_like(*mask, at::MemoryFormat::Contiguous) : at::empty({0}, probs.options())};
  MaskedSoftmaxBwdParams p;
  p.dtype = kind;
  p.grad = g.data_ptr();
  p.probs = pr.data_ptr();
  p.grad_scores = out.data_ptr();
  p.k_len = probs.size(-1);
  p.rows = probs.numel() / p.k_len;
  p.scale = scale;
  const int64_t d = probs.dim();
  TORCH_CHECK(d >= 2 && d <= 4, op, ": probs must have 2 to 4 dims, got ", probs.sizes());
  const int64_t batch = d >= 3 ? probs.size(0) : 1;
  p.heads = d == 4 ? probs.size(1) : 1;
  p.q_len = probs.size(d - 2);
  // the forward's explicit mask, if any, only narrows the keys read (its summary)
  const MaskArgs args = make_mask_args(mask, causal, align, align_offset, window_left, window_right, std::nullopt,
                                       k_lengths, std::nullopt, std::nullopt, std::nullopt);
  PreparedMask pm = prepare_mask(op, args, batch, p.heads, p.q_len, p.k_len, probs.sizes(), probs.device());
  p.mask = pm.spec;
  MaskGradBuffer dmask;
  if (mask_grad) {
    dmask = mask_grad_buffer(op, *mask, probs.sizes(), batch, p.heads, p.q_len, p.k_len, kind == ScalarKind::Float64);
    p.mask_grad = dmask.out;
  }
  run_on_device(op, probs.device(), [&] { masked_softmax_bwd_cpu(p); },
                [&](void* stream) { masked_softmax_bwd_cuda(p, stream); });
  return {out, mask_grad ? dmask.grad.to(mask->scalar_type()) : at::empty({0}, probs.options())};
}

}  // namespace maskattn
