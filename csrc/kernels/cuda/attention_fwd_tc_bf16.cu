// Launches of the tensor-core forward kernel for bfloat16 (its own file: the two element types
// compile in parallel).
#include "attention_fwd_tc_launch.cuh"

namespace maskattn {
namespace attn {

template void launch_fwd_tc<__nv_bfloat16>(const AttentionFwdParams&, int, const DeviceInfo&, cudaStream_t);

}  // namespace attn
}  // namespace maskattn
