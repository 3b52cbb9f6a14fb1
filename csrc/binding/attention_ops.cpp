// Fused masked attention ops: argument checks, allocation, kernel call.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include "../kernels/attention.h"
#include "device_call.h"
#include "mask_args.h"
#include "mask_grad_args.h"
#include "ops.h"
#include "random_args.h"

namespace maskattn {

// Inner dimension contiguous, as every kernel loads rows of head_dim elements.
static at::Tensor rows_contiguous(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// Checks q, k, v and fills every shape, stride and pointer of the forward parameters.
static AttentionFwdParams attention_params(const char* op, const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 4, op, ": q must have shape (B, H, Lq, D), got ", q.sizes());
  TORCH_CHECK(k.dim() == 4, op, ": k must have shape (B, Hkv, Lk, D), got ", k.sizes());
  TORCH_CHECK(v.dim() == 4, op, ": v must have shape (B, Hkv, Lk, Dv), got ", v.sizes());
  TORCH_CHECK(k.device() == q.device(), op, ": k must be on ", q.device(), " like q, got ", k.device());
  TORCH_CHECK(v.device() == q.device(), op, ": v must be on ", q.device(), " like q, got ", v.device());
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), op, ": k dtype ", k.scalar_type(), " must equal q dtype ",
              q.scalar_type());
  TORCH_CHECK(v.scalar_type() == q.scalar_type(), op, ": v dtype ", v.scalar_type(), " must equal q dtype ",
              q.scalar_type());
  const ScalarKind kind = scalar_kind_of(q.scalar_type(), op, "q");
  TORCH_CHECK(kind != ScalarKind::Bool, op, ": q must be a float tensor, got bool");
  TORCH_CHECK(kind != ScalarKind::Float64 || q.is_cpu(), op, ": float64 q is supported on CPU only");
  TORCH_CHECK(k.size(0) == q.size(0), op, ": k batch (dim 0) must be ", q.size(0), " like q, got ", k.size(0));
  TORCH_CHECK(v.size(0) == q.size(0), op, ": v batch (dim 0) must be ", q.size(0), " like q, got ", v.size(0));
  TORCH_CHECK(v.size(1) == k.size(1), op, ": v heads (dim 1) must be ", k.size(1), " like k, got ", v.size(1));
  TORCH_CHECK(k.size(1) >= 1 && q.size(1) % k.size(1) == 0, op, ": q heads (", q.size(1),
              ") must be a multiple of k heads (", k.size(1), ") for grouped-query attention");
  TORCH_CHECK(v.size(2) == k.size(2), op, ": v length (dim 2) must be ", k.size(2), " like k, got ", v.size(2));
  TORCH_CHECK(k.size(3) == q.size(3), op, ": k head size (dim 3) must be ", q.size(3), " like q, got ",
              k.size(3));
  TORCH_CHECK(q.size(3) >= 1 && v.size(3) >= 1, op, ": head sizes must be >= 1");
  AttentionFwdParams p;
  p.dtype = kind;
  p.batch = q.size(0);
  p.heads = q.size(1);
  p.kv_heads = k.size(1);
  p.q_len = q.size(2);
  p.k_len = k.size(2);
  p.head_dim = q.size(3);
  p.v_head_dim = v.size(3);
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.q_stride_b = q.stride(0), p.q_stride_h = q.stride(1), p.q_stride_i = q.stride(2);
  p.k_stride_b = k.stride(0), p.k_stride_h = k.stride(1), p.k_stride_j = k.stride(2);
  p.v_stride_b = v.stride(0), p.v_stride_h = v.stride(1), p.v_stride_j = v.stride(2);
  p.scale = scale;
  return p;
}

static void check_dropout_p(const char* op, double dropout_p) {
  TORCH_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, op, ": dropout_p must lie in [0, 1], got ", dropout_p);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> masked_attention_op(
    const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, const OptTensor& mask, bool causal,
    std::string_view align, int64_t align_offset, OptInt window_left, OptInt window_right,
    const OptTensor& q_lengths, const OptTensor& k_lengths, const OptTensor& key_mask, const OptTensor& q_segments,
    const OptTensor& k_segments, double scale, bool return_weights, double dropout_p,
    std::optional<at::Generator> generator) {
  const char* op = "maskattn.masked_attention";
  check_dropout_p(op, dropout_p);
  const at::Tensor q = rows_contiguous(q_in), k = rows_contiguous(k_in), v = rows_contiguous(v_in);
  AttentionFwdParams p = attention_params(op, q, k, v, scale);
  PreparedMask pm = prepare_mask(op, make_mask_args(mask, causal, align, align_offset, window_left, window_right,
                                                    q_lengths, k_lengths, key_mask, q_segments, k_segments),
                                 p.batch, p.heads, p.q_len, p.k_len, {p.batch, p.heads, p.q_len, p.k_len},
                                 q.device());
  p.mask = pm.spec;
  at::Tensor out = at::empty({p.batch, p.heads, p.q_len, p.v_head_dim}, q.options());
  at::Tensor lse = at::empty({p.batch, p.heads, p.q_len}, q.options().dtype(at::kFloat));
  at::Tensor weights = return_weights ? at::empty({p.batch, p.heads, p.q_len, p.k_len}, q.options())
                                      : at::empty({0}, q.options());
  at::Tensor row_stats = at::empty({p.batch, p.heads, p.q_len, 2}, q.options().dtype(at::kFloat));
  uint64_t seed = 0, offset = 0;
  if (dropout_p > 0.0) std::tie(seed, offset) = philox_seed_offset(op, q.device(), generator, 4);
  const at::Tensor rng_state = rng_state_tensor(seed, offset);  // for the backward, as SDPA's flash kernels
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.weights = return_weights ? weights.data_ptr() : nullptr;
  p.row_stats = row_stats.data_ptr<float>();
  p.dropout = make_dropout_spec(dropout_p, seed, offset, p.heads, p.q_len, p.k_len);
  if (out.numel() == 0 && lse.numel() == 0) return {out, lse, weights, row_stats, rng_state};
  at::Tensor workspace;  // CUDA: the partial results of key splits, when the kernels split the keys
  run_on_device(op, q.device(), [&] { masked_attention_fwd_cpu(p); },
                [&](void* stream) {
                  const int64_t floats = attention_fwd_workspace_floats_cuda(p);
                  if (floats > 0) {
                    workspace = at::empty({floats}, q.options().dtype(at::kFloat));
                    p.workspace_f32 = workspace.data_ptr<float>();
                  }
                  masked_attention_fwd_cuda(p, stream);
                });
  return {out, lse, weights, row_stats, rng_state};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> masked_attention_backward_op(
    const at::Tensor& dout_in, const OptTensor& dlse_in, const OptTensor& dweights_in, const at::Tensor& q_in,
    const at::Tensor& k_in, const at::Tensor& v_in, const at::Tensor& out_in, const at::Tensor& lse_in,
    const OptTensor& mask, bool causal, std::string_view align, int64_t align_offset, OptInt window_left,
    OptInt window_right, const OptTensor& q_lengths, const OptTensor& k_lengths, const OptTensor& key_mask,
    const OptTensor& q_segments, const OptTensor& k_segments, double scale, const OptTensor& row_stats_in,
    double dropout_p, const OptTensor& rng_state, bool mask_grad) {
  const char* op = "maskattn.masked_attention_backward";
  check_dropout_p(op, dropout_p);
  const at::Tensor q = rows_contiguous(q_in), k = rows_contiguous(k_in), v = rows_contiguous(v_in);
  AttentionBwdParams p;
  p.fwd = attention_params(op, q, k, v, scale);
  const AttentionFwdParams& f = p.fwd;
  PreparedMask pm = prepare_mask(op, make_mask_args(mask, causal, align, align_offset, window_left, window_right,
                                                    q_lengths, k_lengths, key_mask, q_segments, k_segments),
                                 f.batch, f.heads, f.q_len, f.k_len, {f.batch, f.heads, f.q_len, f.k_len},
                                 q.device());
  p.fwd.mask = pm.spec;
  const std::vector<int64_t> out_shape{f.batch, f.heads, f.q_len, f.v_head_dim};
  // every tensor the kernels read must be where q is: a CPU tensor handed to a CUDA kernel is an
  // illegal address, a CUDA tensor handed to the CPU kernel a crash
  auto check_device = [&](const at::Tensor& t, const char* arg) {
    TORCH_CHECK(t.device() == q.device(), op, ": ", arg, " must be on ", q.device(), " like q, got ", t.device());
  };
  check_device(dout_in, "dout");
  check_device(out_in, "out");
  check_device(lse_in, "lse");
  TORCH_CHECK(dout_in.sizes() == at::IntArrayRef(out_shape) && dout_in.scalar_type() == q.scalar_type(), op,
              ": dout must have shape ", at::IntArrayRef(out_shape), " and dtype ", q.scalar_type(), ", got ",
              dout_in.sizes(), " ", dout_in.scalar_type());
  TORCH_CHECK(out_in.sizes() == at::IntArrayRef(out_shape) && out_in.scalar_type() == q.scalar_type(), op,
              ": out must have shape ", at::IntArrayRef(out_shape), " and dtype ", q.scalar_type(), ", got ",
              out_in.sizes(), " ", out_in.scalar_type());
  TORCH_CHECK(lse_in.sizes() == at::IntArrayRef({f.batch, f.heads, f.q_len}) && lse_in.scalar_type() == at::kFloat,
              op, ": lse must be float32 of shape (", f.batch, ", ", f.heads, ", ", f.q_len, "), got ",
              lse_in.scalar_type(), " ", lse_in.sizes());
  const at::Tensor dout = dout_in.contiguous(), out = out_in.contiguous(), lse = lse_in.contiguous();
  at::Tensor row_stats;
  if (row_stats_in) {  // absent (a merged lse from several calls): the kernels use (lse, 0)
    TORCH_CHECK(row_stats_in->sizes() == at::IntArrayRef({f.batch, f.heads, f.q_len, 2}) &&
                    row_stats_in->scalar_type() == at::kFloat && row_stats_in->device() == q.device(),
                op, ": row_stats must be the float32 (", f.batch, ", ", f.heads, ", ", f.q_len,
                ", 2) tensor the forward returned");
    row_stats = row_stats_in->contiguous();
    p.fwd.row_stats = row_stats.data_ptr<float>();
  }
  if (dropout_p > 0.0) {
    TORCH_CHECK(rng_state.has_value(), op, ": dropout_p > 0 needs the rng_state the forward returned");
    const auto [seed, offset] = rng_state_values(op, *rng_state);
    p.fwd.dropout = make_dropout_spec(dropout_p, seed, offset, f.heads, f.q_len, f.k_len);
  }
  MaskGradBuffer dmask;
  if (mask_grad) {
    TORCH_CHECK(mask.has_value(), op, ": mask_grad needs the additive mask");
    dmask = mask_grad_buffer(op, *mask, {f.batch, f.heads, f.q_len, f.k_len}, f.batch, f.heads, f.q_len, f.k_len,
                             f.dtype == ScalarKind::Float64);
    p.mask_grad = dmask.out;
  }
  at::Tensor dlse, dweights;
  if (dlse_in) {
    check_device(*dlse_in, "dlse");
    TORCH_CHECK(dlse_in->sizes() == lse.sizes() && at::isFloatingType(dlse_in->scalar_type()), op,
                ": dlse must be a float tensor of shape ", lse.sizes(), ", got ", dlse_in->scalar_type(), " ",
                dlse_in->sizes());
    dlse = dlse_in->to(at::kFloat).contiguous();
    p.dlse = dlse.data_ptr<float>();
  }
  if (dweights_in && dweights_in->numel() > 0) {
    check_device(*dweights_in, "dweights");
    TORCH_CHECK(dweights_in->sizes() == at::IntArrayRef({f.batch, f.heads, f.q_len, f.k_len}) &&
                    at::isFloatingType(dweights_in->scalar_type()),
                op, ": dweights must be a float tensor of shape (", f.batch, ", ", f.heads, ", ", f.q_len, ", ",
                f.k_len, "), got ", dweights_in->scalar_type(), " ", dweights_in->sizes());
    dweights = dweights_in->to(q.scalar_type()).contiguous();
    p.dweights = dweights.data_ptr();
  }
  p.fwd.out = const_cast<void*>(out.data_ptr());
  p.fwd.lse = const_cast<float*>(lse.data_ptr<float>());
  p.dout = dout.data_ptr();
  at::Tensor dq = at::empty(q.sizes(), q.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor dk = at::empty(k.sizes(), k.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor dv = at::empty(v.sizes(), v.options().memory_format(at::MemoryFormat::Contiguous));
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  at::Tensor workspace;
  auto with_workspace = [&](int64_t floats) {
    workspace = at::zeros({floats > 0 ? floats : 1}, q.options().dtype(at::kFloat));
    p.workspace_f32 = workspace.data_ptr<float>();
  };
  run_on_device(
      op, q.device(),
      [&] {
        // float64 needs none; the fp32-math kernel zeroes pooled scratch of its own
        masked_attention_bwd_cpu(p);
      },
      [&](void* stream) {
        with_workspace(attention_bwd_workspace_floats_cuda(p));
        masked_attention_bwd_cuda(p, stream);
      });
  at::Tensor grad_mask = mask_grad ? dmask.grad.to(mask->scalar_type()) : at::empty({0}, q.options());
  return {dq, dk, dv, grad_mask};
}

}  // namespace maskattn
