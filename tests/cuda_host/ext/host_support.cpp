// What the bindings take from CUDA torch and from the CPU kernels, as the host execution has it:
// the stream is null, Philox seeds come from the CPU generator (offset 0, as the CPU op draws
// them), and the CPU kernels are never called (the ops run the CUDA entry points).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <c10/util/Exception.h>

#include <mutex>

#include "binding/cuda_support.h"
#include "kernels/attention.h"
#include "kernels/mask_build.h"
#include "kernels/masked_softmax.h"

namespace maskattn {

bool built_with_cuda() { return true; }

void fail_without_cuda(const char* op) { TORCH_CHECK(false, op, ": not available in the host execution"); }

void* current_cuda_stream(const c10::Device&) { return nullptr; }

std::pair<uint64_t, uint64_t> cuda_philox_seed_offset(const std::optional<at::Generator>& gen, const c10::Device&,
                                                      uint64_t) {
  auto* g = at::get_generator_or_default<at::CPUGeneratorImpl>(gen, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(g->mutex_);
  return {g->random64(), 0};
}

std::string cuda_attention_path(const std::string& dtype, int64_t head_dim, int64_t v_head_dim, int64_t) {
  const ScalarKind kind = dtype == "float16" ? ScalarKind::Float16
                          : dtype == "bfloat16" ? ScalarKind::BFloat16
                                                : ScalarKind::Float32;
  return masked_attention_cuda_path(kind, head_dim, v_head_dim);
}

[[noreturn]] static void no_cpu_kernels(const char* fn) {
  TORCH_CHECK(false, fn, " is not part of the host execution of the CUDA kernels");
}
int64_t attention_bwd_workspace_floats_cpu(const AttentionBwdParams&) { no_cpu_kernels(__func__); }
void masked_attention_fwd_cpu(const AttentionFwdParams&) { no_cpu_kernels(__func__); }
void masked_attention_bwd_cpu(const AttentionBwdParams&) { no_cpu_kernels(__func__); }
void masked_softmax_fwd_cpu(const MaskedSoftmaxParams&) { no_cpu_kernels(__func__); }
void masked_softmax_bwd_cpu(const MaskedSoftmaxBwdParams&) { no_cpu_kernels(__func__); }
void build_mask_cpu(const MaskBuildParams&) { no_cpu_kernels(__func__); }
void padding_mask_from_ids_cpu(const IdsMaskParams&) { no_cpu_kernels(__func__); }
void random_token_mask_cpu(const TokenMaskParams&) { no_cpu_kernels(__func__); }

}  // namespace maskattn
