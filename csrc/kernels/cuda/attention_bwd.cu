// Entry points of the CUDA masked attention backward: row statistics into the workspace, then
// the dq and dk/dv passes on tensor cores where they apply, SIMT otherwise.
#include "attention_launch.h"
#include "attention_rows.cuh"
#include "attention_simt_bwd.cuh"

namespace maskattn {
namespace attn {

template <typename Elem>
static void launch_row_stats(const AttentionBwdParams& p, const BwdRowStats& stats, cudaStream_t stream) {
  const AttentionFwdParams& f = p.fwd;
  const int64_t rows = BwdRowStats::rows(f);
  gpu::launch_kernel("attention_bwd_rows_kernel", attention_bwd_rows_kernel<Elem>,
                     grid_of(ceil_div(rows, kRowsThreads / 32), "attention_bwd_rows_kernel"), kRowsThreads, 0, stream,
                     p, stats);
  if (p.dweights == nullptr || f.k_len == 0) return;
  // delta must also hold sum_j P dweights: dS = P (dP - sum_j P dP) with dP including dweights
  const int64_t blocks = ceil_div(f.q_len, 16) * f.batch * f.heads;
  gpu::launch_kernel("attention_probs_kernel", attention_probs_kernel<Elem, true>,
                     grid_of(blocks, "attention_probs_kernel"), kRowsThreads, 0, stream, f,
                     static_cast<const Elem*>(p.dweights), stats.delta);
}

template <typename Elem>
static void launch_bwd_simt(const AttentionBwdParams& p, const BwdRowStats& stats, const DeviceInfo& dev,
                            cudaStream_t stream) {
  const AttentionFwdParams& f = p.fwd;
  if (f.q_len > 0 && f.heads > 0) {
    auto floats = [&](int edge) { return SimtShape::of(edge, f.head_dim, f.v_head_dim).dq_floats(); };
    const SimtShape shape =
        SimtShape::of(simt_edge(f, dev, floats, "attention_bwd_dq_simt_kernel"), f.head_dim, f.v_head_dim);
    const int bytes = (int)(shape.dq_floats() * sizeof(float));
    const int64_t q_tiles = ceil_div(f.q_len, shape.edge);
    auto* kernel = attention_bwd_dq_simt_kernel<Elem>;
    allow_dynamic_smem(kernel, bytes, dev, "attention_bwd_dq_simt_kernel");
    gpu::launch_kernel("attention_bwd_dq_simt_kernel", kernel,
                       grid_of(q_tiles * f.batch * f.heads, "attention_bwd_dq_simt_kernel"), kSimtThreads, bytes,
                       stream, p, stats, shape, q_tiles, later_query_tiles_heavier(f.mask));
  }
  if (f.k_len > 0) {
    auto floats = [&](int edge) { return SimtShape::of(edge, f.head_dim, f.v_head_dim).dkdv_floats(); };
    const SimtShape shape =
        SimtShape::of(simt_edge(f, dev, floats, "attention_bwd_dkdv_simt_kernel"), f.head_dim, f.v_head_dim);
    const int bytes = (int)(shape.dkdv_floats() * sizeof(float));
    const int64_t k_tiles = ceil_div(f.k_len, shape.edge);
    auto* kernel = attention_bwd_dkdv_simt_kernel<Elem>;
    allow_dynamic_smem(kernel, bytes, dev, "attention_bwd_dkdv_simt_kernel");
    gpu::launch_kernel("attention_bwd_dkdv_simt_kernel", kernel,
                       grid_of(k_tiles * f.batch * f.kv_heads, "attention_bwd_dkdv_simt_kernel"), kSimtThreads, bytes,
                       stream, p, stats, shape, k_tiles, later_key_tiles_heavier(f.mask));
  }
}

template <typename Elem>
static void run_bwd(const AttentionBwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  const AttentionFwdParams& f = p.fwd;
  const BwdRowStats stats = BwdRowStats::in(p.workspace_f32, f);
  if (BwdRowStats::rows(f) > 0) launch_row_stats<Elem>(p, stats, stream);
  // dout is staged by cp.async like q: 16-byte aligned rows (v_head_dim is a multiple of 8 there)
  const int bucket = gpu::is_aligned16(p.dout) ? tensor_core_bucket(f, dev) : 0;
  if constexpr (!std::is_same<Elem, float>::value) {
    if (bucket != 0) {
      if (f.q_len > 0 && f.heads > 0) launch_bwd_dq_tc<Elem>(p, stats, bucket, dev, stream);
      if (f.k_len > 0) launch_bwd_dkdv_tc<Elem>(p, stats, bucket, dev, stream);
    }
  }
  if (bucket == 0) launch_bwd_simt<Elem>(p, stats, dev, stream);
}

}  // namespace attn

int64_t attention_bwd_workspace_floats_cuda(const AttentionBwdParams& p) {
  return 3 * attn::BwdRowStats::rows(p.fwd);  // m2, log_sum2 and delta per query row
}

void masked_attention_bwd_cuda(const AttentionBwdParams& p, void* stream) {
  const AttentionFwdParams& f = p.fwd;
  attn::check_attention_params(f);
  // heads == 0 still runs the dk/dv pass: no query head reads the kv heads, their gradients are 0
  if (f.batch * f.kv_heads == 0 || (f.q_len == 0 && f.k_len == 0)) return;
  if (attn::BwdRowStats::rows(f) > 0 && p.workspace_f32 == nullptr)
    throw std::runtime_error("maskattn attention: the backward needs its float32 workspace");
  const attn::DeviceInfo dev = attn::current_device_info();
  const cudaStream_t s = gpu::as_cuda_stream(stream);
  switch (f.dtype) {
    case ScalarKind::Float16: return attn::run_bwd<__half>(p, dev, s);
    case ScalarKind::BFloat16: return attn::run_bwd<__nv_bfloat16>(p, dev, s);
    default: return attn::run_bwd<float>(p, dev, s);
  }
}

}  // namespace maskattn
