// Temporary: replaced by the CPU attention kernels.
#include <stdexcept>

#include "../attention.h"

namespace maskattn {
int64_t attention_bwd_workspace_floats_cpu(const AttentionBwdParams&) { return 0; }
void masked_attention_fwd_cpu(const AttentionFwdParams&) { throw std::runtime_error("not yet"); }
void masked_attention_bwd_cpu(const AttentionBwdParams&) { throw std::runtime_error("not yet"); }
}  // namespace maskattn
