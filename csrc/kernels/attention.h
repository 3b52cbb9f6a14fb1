// Torch-free entry points of the fused masked attention kernels (CPU and CUDA).
#pragma once
#include <cstdint>

#include "../dropout_spec.h"
#include "../mask_spec.h"
#include "mask_grad.h"

namespace maskattn {

// out = softmax(q k^T * scale + mask) v, flash-style. Query head h reads kv head
// h / (heads / kv_heads). q/k/v: element strides for batch, head and row; the last dim is
// contiguous. out (batch, heads, q_len, v_head_dim), lse (batch, heads, q_len) float32 and
// weights (batch, heads, q_len, k_len, optional) are contiguous and written by the kernel.
// Rows that attend to nothing: out 0, lse -inf, weights 0.
// row_stats (batch, heads, q_len, 2) float32: the row max m of the scores and the log of the row
// sum of exp(s - m), in the kernel's own exp base (natural on CPU, base 2 on CUDA), so that
// P = exp((s - m) - log_sum) stays exact where lse = m + log_sum rounds (a row whose keys all
// carry -1e9: fp32 lse is a multiple of 64 there). Written by the forward (m = -inf for rows that
// attend to nothing); read by the weights pass and the backward of the same device, which fall
// back to (lse, 0) when it is null.
// dropout: applied to the probabilities before they multiply v; weights and lse stay undropped.
struct AttentionFwdParams {
  ScalarKind dtype = ScalarKind::Float32;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  void* weights = nullptr;  // null unless the caller asked for the probabilities
  float* row_stats = nullptr;
  int64_t batch = 1, heads = 1, kv_heads = 1, q_len = 0, k_len = 0, head_dim = 0, v_head_dim = 0;
  int64_t q_stride_b = 0, q_stride_h = 0, q_stride_i = 0;
  int64_t k_stride_b = 0, k_stride_h = 0, k_stride_j = 0;
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_j = 0;
  double scale = 1.0;
  MaskSpec mask;
  DropoutSpec dropout;
  // CUDA: float32 scratch of attention_fwd_workspace_floats_cuda(p) elements for the partial results
  // of key splits (null: no split); the CPU kernels ignore it
  float* workspace_f32 = nullptr;
};

// Gradients from the saved row statistics, probabilities recomputed tile by tile.
// out, dout: contiguous (batch, heads, q_len, v_head_dim). dlse: contiguous float32
// (batch, heads, q_len) or null (gradient flowing into lse). dweights: contiguous
// (batch, heads, q_len, k_len) in dtype, or null (gradient flowing into the weights).
// dq (batch, heads, q_len, head_dim), dk (batch, kv_heads, k_len, head_dim),
// dv (batch, kv_heads, k_len, v_head_dim): contiguous, written (not accumulated) by the kernel.
// workspace_f32: zero-filled float32 scratch of attention_bwd_workspace_floats(p) elements; the CPU
// kernel also accepts null and then uses its own pooled scratch (no fresh pages per call).
// mask_grad: where the gradient of an additive explicit mask goes (not wanted: data null).
// With dropout, dS = P (dP' + dweights - delta) with dP' = keep / (1 - p) * dout v^T, and
// delta = rowsum(dout * out) stays exact because out already holds the dropped probabilities.
struct AttentionBwdParams {
  AttentionFwdParams fwd;  // inputs, shapes, strides, scale, mask; fwd.out = out, fwd.lse = lse
  const void* dout = nullptr;
  const float* dlse = nullptr;
  const void* dweights = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  float* workspace_f32 = nullptr;
  MaskGradOut mask_grad;
};

int64_t attention_bwd_workspace_floats_cpu(const AttentionBwdParams& p);
void masked_attention_fwd_cpu(const AttentionFwdParams& p);
void masked_attention_bwd_cpu(const AttentionBwdParams& p);

int64_t attention_bwd_workspace_floats_cuda(const AttentionBwdParams& p);
int64_t attention_fwd_workspace_floats_cuda(const AttentionFwdParams& p);
void masked_attention_fwd_cuda(const AttentionFwdParams& p, void* stream);
void masked_attention_bwd_cuda(const AttentionBwdParams& p, void* stream);
// Which CUDA kernels attention of this dtype and head sizes runs on the current device, for
// 16-byte aligned rows: "tensor_cores" or "simt" (the fp32-math fallback).
const char* masked_attention_cuda_path(ScalarKind dtype, int64_t head_dim, int64_t v_head_dim);

}  // namespace maskattn
