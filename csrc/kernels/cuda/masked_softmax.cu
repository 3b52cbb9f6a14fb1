// CUDA fused scale + mask + softmax, forward and backward: picks the row tier and the element
// type, checks alignment for 16-byte access, launches once per pass.
#include <stdexcept>
#include <string>

#include "../masked_softmax.h"
#include "cuda_common.cuh"
#include "softmax_bwd_rows.cuh"
#include "softmax_fwd_rows.cuh"
#include "softmax_tiers.cuh"

namespace maskattn {
namespace {

using namespace gpu;

template <typename T>
void launch_softmax_fwd(const MaskedSoftmaxParams& p, cudaStream_t stream) {
  const int64_t elem = sizeof(T);
  SoftmaxFwdPlan plan;
  plan.rows = p.batch * p.heads * p.q_len;
  plan.scale = (float)p.scale;
  plan.vec_in = is_aligned16(p.scores) && stride_keeps_alignment(p.batch, p.stride_b, elem) &&
                stride_keeps_alignment(p.heads, p.stride_h, elem) && stride_keeps_alignment(p.q_len, p.stride_i, elem);
  plan.vec_out = is_aligned16(p.probs) && (p.k_len * elem) % 16 == 0;
  plan.elementwise = p.mask.has_elementwise();
  if (plan.rows == 0 || p.k_len == 0) return;

  const RowLaunch launch = plan_row_launch(plan.rows, p.k_len);
  switch (launch.tier) {
    case RowTier::Warp:
      launch_kernel("softmax_fwd_warp_rows_kernel", softmax_fwd_warp_rows_kernel<T>, launch.blocks, launch.threads,
                    0, stream, p, plan);
      break;
    case RowTier::Block:
      launch_kernel("softmax_fwd_block_rows_kernel", softmax_fwd_block_rows_kernel<T>, launch.blocks, launch.threads,
                    0, stream, p, plan);
      break;
    case RowTier::Stream:
      launch_kernel("softmax_fwd_streamed_rows_kernel", softmax_fwd_streamed_rows_kernel<T>, launch.blocks,
                    launch.threads, 0, stream, p, plan);
      break;
  }
}

template <typename T>
void launch_softmax_bwd(const MaskedSoftmaxBwdParams& p, cudaStream_t stream) {
  SoftmaxBwdPlan plan;
  plan.scale = (float)p.scale;
  plan.vec_ok = is_aligned16(p.grad) && is_aligned16(p.probs) && is_aligned16(p.grad_scores) &&
                (p.k_len * (int64_t)sizeof(T)) % 16 == 0;
  if (p.rows == 0 || p.k_len == 0) return;

  const RowLaunch launch = plan_row_launch(p.rows, p.k_len);
  switch (launch.tier) {
    case RowTier::Warp:
      launch_kernel("softmax_bwd_warp_rows_kernel", softmax_bwd_warp_rows_kernel<T>, launch.blocks, launch.threads,
                    0, stream, p, plan);
      break;
    case RowTier::Block:
      launch_kernel("softmax_bwd_block_rows_kernel", softmax_bwd_block_rows_kernel<T>, launch.blocks, launch.threads,
                    0, stream, p, plan);
      break;
    case RowTier::Stream:
      launch_kernel("softmax_bwd_streamed_rows_kernel", softmax_bwd_streamed_rows_kernel<T>, launch.blocks,
                    launch.threads, 0, stream, p, plan);
      break;
  }
}

[[noreturn]] void unsupported_dtype(const char* op, ScalarKind kind) {
  throw std::runtime_error(std::string(op) + " (CUDA): dtype must be float32, float16 or bfloat16, got " +
                           (kind == ScalarKind::Float64 ? "float64 (supported on CPU only)" : "bool"));
}

}  // namespace

void masked_softmax_fwd_cuda(const MaskedSoftmaxParams& p, void* stream) {
  const cudaStream_t s = as_cuda_stream(stream);
  switch (p.dtype) {
    case ScalarKind::Float32: launch_softmax_fwd<float>(p, s); break;
    case ScalarKind::Float16: launch_softmax_fwd<__half>(p, s); break;
    case ScalarKind::BFloat16: launch_softmax_fwd<__nv_bfloat16>(p, s); break;
    default: unsupported_dtype("maskattn.masked_softmax", p.dtype);
  }
}

void masked_softmax_bwd_cuda(const MaskedSoftmaxBwdParams& p, void* stream) {
  const cudaStream_t s = as_cuda_stream(stream);
  switch (p.dtype) {
    case ScalarKind::Float32: launch_softmax_bwd<float>(p, s); break;
    case ScalarKind::Float16: launch_softmax_bwd<__half>(p, s); break;
    case ScalarKind::BFloat16: launch_softmax_bwd<__nv_bfloat16>(p, s); break;
    default: unsupported_dtype("maskattn.masked_softmax_backward", p.dtype);
  }
}

}  // namespace maskattn
