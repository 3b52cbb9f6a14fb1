// Launches of the tensor-core dk/dv pass: float16 / bfloat16 x head buckets 64, 128, 256.
#include "attention_bwd_dkdv_tc.cuh"
#include "attention_launch.h"
#include "attention_rows.cuh"

namespace maskattn {
namespace attn {

template <typename Elem, int HD>
static void launch_dkdv_bucket(const AttentionBwdParams& p, const BwdRowStats& stats, const DeviceInfo& dev,
                               cudaStream_t stream) {
  using Cfg = DkdvTcConfig<HD>;
  static_assert(Cfg::kSmemBytes <= 99 * 1024, "must fit every sm_80+ GPU");
  const AttentionFwdParams& f = p.fwd;
  const int64_t k_tiles = ceil_div(f.k_len, Cfg::kKeys);
  auto* kernel = attention_bwd_dkdv_tc_kernel<Elem, HD>;
  allow_dynamic_smem(kernel, Cfg::kSmemBytes, dev, "attention_bwd_dkdv_tc_kernel");
  gpu::launch_kernel("attention_bwd_dkdv_tc_kernel", kernel,
                     grid_of(k_tiles * f.batch * f.kv_heads, "attention_bwd_dkdv_tc_kernel"), Cfg::kThreads,
                     Cfg::kSmemBytes, stream, p, stats.m2, stats.log_sum2, stats.delta,
                      k_tiles, later_key_tiles_heavier(f.mask));
}

template <typename Elem>
void launch_bwd_dkdv_tc(const AttentionBwdParams& p, const BwdRowStats& stats, int bucket, const DeviceInfo& dev,
                        cudaStream_t stream) {
  switch (bucket) {
    case 64: return launch_dkdv_bucket<Elem, 64>(p, stats, dev, stream);
    case 128: return launch_dkdv_bucket<Elem, 128>(p, stats, dev, stream);
    case 256: return launch_dkdv_bucket<Elem, 256>(p, stats, dev, stream);
    default: throw std::runtime_error("maskattn attention: no tensor-core backward for " + dims_text(p.fwd));
  }
}

template void launch_bwd_dkdv_tc<__half>(const AttentionBwdParams&, const BwdRowStats&, int, const DeviceInfo&,
                                         cudaStream_t);
template void launch_bwd_dkdv_tc<__nv_bfloat16>(const AttentionBwdParams&, const BwdRowStats&, int, const DeviceInfo&,
                                                cudaStream_t);

}  // namespace attn
}  // namespace maskattn
