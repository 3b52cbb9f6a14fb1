// Launches of the tensor-core forward kernel: float16 / bfloat16 x head buckets 64, 128, 256.
#include "attention_fwd_tc.cuh"
#include "attention_launch.h"

namespace maskattn {
namespace attn {

template <typename Elem, int HD>
static void launch_fwd_tc_bucket(const AttentionFwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  using Cfg = FwdTcConfig<HD>;
  static_assert(Cfg::kSmemBytes <= 99 * 1024, "must fit every sm_80+ GPU");
  const int64_t q_tiles = ceil_div(p.q_len, Cfg::kRows);
  auto* kernel = attention_fwd_tc_kernel<Elem, HD>;
  allow_dynamic_smem(kernel, Cfg::kSmemBytes, dev, "attention_fwd_tc_kernel");
  gpu::launch_kernel("attention_fwd_tc_kernel", kernel, grid_of(q_tiles * p.batch * p.heads, "attention_fwd_tc_kernel"),
                     Cfg::kThreads, Cfg::kSmemBytes, stream, p, q_tiles, later_query_tiles_heavier(p.mask));
}

template <typename Elem>
void launch_fwd_tc(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev, cudaStream_t stream) {
  switch (bucket) {
    case 64: return launch_fwd_tc_bucket<Elem, 64>(p, dev, stream);
    case 128: return launch_fwd_tc_bucket<Elem, 128>(p, dev, stream);
    case 256: return launch_fwd_tc_bucket<Elem, 256>(p, dev, stream);
    default: throw std::runtime_error("maskattn attention: no tensor-core forward for " + dims_text(p));
  }
}

template void launch_fwd_tc<__half>(const AttentionFwdParams&, int, const DeviceInfo&, cudaStream_t);
template void launch_fwd_tc<__nv_bfloat16>(const AttentionFwdParams&, int, const DeviceInfo&, cudaStream_t);

int tensor_core_kernel_arch() {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, attention_fwd_tc_kernel<__half, 64>) != cudaSuccess) {
    (void)cudaGetLastError();  // no image for this device: the launch of any kernel will say so
    return 0;
  }
  return attr.ptxVersion;
}

}  // namespace attn
}  // namespace maskattn
