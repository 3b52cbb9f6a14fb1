// Launches of the tensor-core forward kernel: float16 / bfloat16 x head buckets 64, 128, 256.
#include "attention_fwd_tc.cuh"
#include "attention_launch.h"

namespace maskattn {
namespace attn {

constexpr int kMaxKeySplits = 32;       // the merge kernel holds one run a lane
constexpr int64_t kMinKeysPerSplit = 256;  // a run streams at least this many keys

template <int HD>
static int key_splits_of(const AttentionFwdParams& p, const DeviceInfo& dev) {
  using Cfg = FwdTcConfig<HD>;
  const int64_t blocks = ceil_div(p.q_len, Cfg::kRows) * p.batch * p.heads;
  if (blocks <= 0 || dev.sms <= 0 || blocks >= dev.sms) return 1;
  // from the shapes and the GPU only, never the lengths' values: the workspace is sized on the host
  const int64_t runs_by_keys = ceil_div(p.k_len, Cfg::kKeys) / ceil_div(kMinKeysPerSplit, Cfg::kKeys);
  const int64_t runs_by_sms = dev.sms / blocks;
  return (int)std::max<int64_t>(1, std::min<int64_t>({runs_by_keys, runs_by_sms, (int64_t)kMaxKeySplits}));
}

int fwd_tc_key_splits(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev) {
  switch (bucket) {
    case 64: return key_splits_of<64>(p, dev);
    case 128: return key_splits_of<128>(p, dev);
    case 256: return key_splits_of<256>(p, dev);
    default: return 1;
  }
}

template <typename Elem, int HD>
static void launch_fwd_tc_bucket(const AttentionFwdParams& p, const DeviceInfo& dev, cudaStream_t stream) {
  using Cfg = FwdTcConfig<HD>;
  static_assert(Cfg::kSmemBytes <= 99 * 1024, "must fit every sm_80+ GPU");
  const int64_t q_tiles = ceil_div(p.q_len, Cfg::kRows);
  // the caller sized the workspace with the same rule; without one the keys are not split
  const int splits = p.workspace_f32 != nullptr ? key_splits_of<HD>(p, dev) : 1;
  auto* kernel = splits > 1 ? attention_fwd_tc_kernel<Elem, HD, true> : attention_fwd_tc_kernel<Elem, HD, false>;
  allow_dynamic_smem(kernel, Cfg::kSmemBytes, dev, "attention_fwd_tc_kernel");
  gpu::launch_kernel("attention_fwd_tc_kernel", kernel,
                     grid_of(q_tiles * p.batch * p.heads * splits, "attention_fwd_tc_kernel"), Cfg::kThreads,
                     Cfg::kSmemBytes, stream, p, q_tiles, later_query_tiles_heavier(p.mask), splits);
  if (splits > 1)
    gpu::launch_kernel("attention_fwd_merge_kernel", attention_fwd_merge_kernel<Elem, HD>,
                       grid_of(ceil_div(p.batch * p.heads * p.q_len, 4), "attention_fwd_merge_kernel"), 128, 0,
                       stream, p, splits);
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
  if (cudaFuncGetAttributes(&attr, attention_fwd_tc_kernel<__half, 64, false>) != cudaSuccess) {
    (void)cudaGetLastError();  // no image for this device: the launch of any kernel will say so
    return 0;
  }
  return attr.ptxVersion;
}

}  // namespace attn
}  // namespace maskattn
