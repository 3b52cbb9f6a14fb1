// CPU entry points of fused masked attention: float64 runs in double, every other dtype in fp32.
#include "../attention.h"
#include "attention_paths.h"
#include "cpu_kernels.h"

namespace maskattn {

int64_t attention_bwd_workspace_floats_cpu(const AttentionBwdParams& p) {
  return p.fwd.dtype == ScalarKind::Float64 ? 0 : cpu::attention_bwd_workspace_floats_f32_math(p);
}

namespace cpu {

bool uses_bf16_products(const AttentionFwdParams& p) {
  return p.dtype == ScalarKind::BFloat16 && cpu_kernels().gemm_bf16 != nullptr && !attention_fwd_decode_applies(p);
}

}  // namespace cpu

void masked_attention_fwd_cpu(const AttentionFwdParams& p) {
  if (p.dtype == ScalarKind::Float64) {
    cpu::attention_fwd_f64(p);
  } else {
    cpu::attention_fwd_f32_math(p);
  }
}

void masked_attention_bwd_cpu(const AttentionBwdParams& p) {
  if (p.fwd.dtype == ScalarKind::Float64) {
    cpu::attention_bwd_f64(p);
  } else {
    cpu::attention_bwd_f32_math(p);
  }
}

}  // namespace maskattn
