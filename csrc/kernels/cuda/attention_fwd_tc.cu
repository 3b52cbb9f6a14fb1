// Launches of the tensor-core forward kernel: float16 / bfloat16 x head buckets 64, 128, 256.
#include "attention_fwd_tc.cuh"
#include "attention_launch.h"

namespace maskattn {
namespace attn {

template <typename Elem, int HD>
static void launch_fwd_tc_bucket(const AttentionFwdParams& p, cudaStream_t stream) {
  using Cfg = FwdTcConfig<HD>;
  static_assert(Cfg::kSmemBytes <= 99 * 1024, "must fit every sm_80+ GPU");
  const int64_t q_tiles = ceil_div(p.q_len, Cfg::kRows);
  auto* kernel = attention_fwd_tc_kernel<Elem, HD>;
  allow_dynamic_smem(kernel, Cfg::kSmemBytes, "attention_fwd_tc_kernel");
  kernel<<<grid_of(q_tiles * p.batch * p.heads, "attention_fwd_tc_kernel"), Cfg::kThreads, Cfg::kSmemBytes,
           stream>>>(p, q_tiles, later_query_tiles_heavier(p.mask));
  gpu::check_launch("attention_fwd_tc_kernel");
}

template <typename Elem>
void launch_fwd_tc(const AttentionFwdParams& p, int bucket, cudaStream_t stream) {
  switch (bucket) {
    case 64: return launch_fwd_tc_bucket<Elem, 64>(p, stream);
    case 128: return launch_fwd_tc_bucket<Elem, 128>(p, stream);
    case 256: return launch_fwd_tc_bucket<Elem, 256>(p, stream);
    default: throw std::runtime_error("maskattn attention: no tensor-core forward for " + dims_text(p));
  }
}

template void launch_fwd_tc<__half>(const AttentionFwdParams&, int, cudaStream_t);
template void launch_fwd_tc<__nv_bfloat16>(const AttentionFwdParams&, int, cudaStream_t);

}  // namespace attn
}  // namespace maskattn
