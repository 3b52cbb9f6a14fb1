// Launches of the tensor-core forward kernel for float16 (bfloat16: attention_fwd_tc_bf16.cu),
// and the entry points that only read shapes (key splits) or the compiled image.
#include "attention_fwd_tc_launch.cuh"

namespace maskattn {
namespace attn {

int fwd_tc_key_splits(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev) {
  switch (bucket) {
    case 64: return key_splits_of<64>(p, dev);
    case 128: return key_splits_of<128>(p, dev);
    case 256: return key_splits_of<256>(p, dev);
    default: return 0;
  }
}

template void launch_fwd_tc<__half>(const AttentionFwdParams&, int, const DeviceInfo&, cudaStream_t);

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
