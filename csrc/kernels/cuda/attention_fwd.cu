// Entry point of the CUDA masked attention forward: picks the tensor-core kernel where it applies
// and the SIMT kernel otherwise, then the optional weights.
#include "attention_launch.h"
#include "attention_rows.cuh"
#include "attention_simt_fwd.cuh"

namespace maskattn {
namespace attn {

template <typename Elem>
static void launch_fwd_simt(const AttentionFwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  auto floats = [&](int edge) { return SimtShape::of(edge, p.head_dim, p.v_head_dim).fwd_floats(); };
  const SimtShape shape = SimtShape::of(simt_edge(p, dev, floats, "attention_fwd_simt_kernel"), p.head_dim,
                                        p.v_head_dim);
  const int bytes = (int)(shape.fwd_floats() * sizeof(float));
  const int64_t q_tiles = ceil_div(p.q_len, shape.edge);
  auto* kernel = attention_fwd_simt_kernel<Elem>;
  allow_dynamic_smem(kernel, bytes, dev, "attention_fwd_simt_kernel");
  gpu::launch_kernel("attention_fwd_simt_kernel", kernel,
                     grid_of(q_tiles * p.batch * p.heads, "attention_fwd_simt_kernel"), kSimtThreads, bytes, stream, p,
                     shape, q_tiles, later_query_tiles_heavier(p.mask));
}

template <typename Elem>
static void launch_weights(const AttentionFwdParams& p, cudaStream_t stream) {
  const int64_t blocks = ceil_div(p.q_len, 16) * p.batch * p.heads;
  gpu::launch_kernel("attention_probs_kernel", attention_probs_kernel<Elem, false>,
                     grid_of(blocks, "attention_probs_kernel"), kRowsThreads, 0, stream, p, nullptr, nullptr);
}

template <typename Elem>
static void run_fwd(const AttentionFwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  const int bucket = tensor_core_bucket(p, dev);
  if constexpr (!std::is_same<Elem, float>::value) {
    if (bucket != 0) launch_fwd_tc<Elem>(p, bucket, dev, stream);
  }
  if (bucket == 0) launch_fwd_simt<Elem>(p, dev, stream);
  if (p.weights != nullptr && p.k_len > 0) launch_weights<Elem>(p, stream);  // reads the lse just written
}

}  // namespace attn

const char* masked_attention_cuda_path(ScalarKind dtype, int64_t head_dim, int64_t v_head_dim) {
  AttentionFwdParams p;  // one row of each: only the dtype and head sizes matter, rows are aligned
  p.dtype = dtype;
  p.head_dim = head_dim;
  p.v_head_dim = v_head_dim;
  p.q_len = p.k_len = 1;
  p.q_stride_i = head_dim;
  p.k_stride_j = head_dim;
  p.v_stride_j = v_head_dim;
  return attn::tensor_core_bucket(p, attn::current_device_info()) != 0 ? "tensor_cores" : "simt";
}

int64_t attention_fwd_workspace_floats_cuda(const AttentionFwdParams& p) {
  attn::check_attention_params(p);
  const attn::DeviceInfo dev = attn::current_device_info();
  const int bucket = attn::tensor_core_bucket(p, dev);
  if (bucket == 0 || p.batch * p.heads * p.q_len == 0) return 0;
  const int splits = attn::fwd_tc_key_splits(p, bucket, dev);
  return splits > 0 ? splits * p.batch * p.heads * p.q_len * attn::fwd_partial_floats(bucket) : 0;
}

void masked_attention_fwd_cuda(const AttentionFwdParams& p, void* stream) {
  attn::check_attention_params(p);
  if (p.batch * p.heads * p.q_len == 0) return;
  const attn::DeviceInfo dev = attn::current_device_info();
  const cudaStream_t s = gpu::as_cuda_stream(stream);
  switch (p.dtype) {
    case ScalarKind::Float16: return attn::run_fwd<__half>(p, dev, s);
    case ScalarKind::BFloat16: return attn::run_fwd<__nv_bfloat16>(p, dev, s);
    default: return attn::run_fwd<float>(p, dev, s);
  }
}

}  // namespace maskattn
