// CUDA torch glue: current stream and Philox state (compiled only with the CUDA kernels).
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <mutex>

#include "../kernels/attention.h"
#include "cuda_support.h"

namespace maskattn {

bool built_with_cuda() { return true; }

void fail_without_cuda(const char* op) { TORCH_CHECK(false, op, ": CUDA is not available"); }

void* current_cuda_stream(const c10::Device& device) {
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
}

std::pair<uint64_t, uint64_t> cuda_philox_seed_offset(const std::optional<at::Generator>& gen,
                                                      const c10::Device& device, uint64_t increment) {
  auto* g = at::get_generator_or_default<at::CUDAGeneratorImpl>(
      gen, at::cuda::detail::getDefaultCUDAGenerator(device.index()));
  std::lock_guard<std::mutex> lock(g->mutex_);
  return g->philox_engine_inputs(increment);
}

std::string cuda_attention_path(const std::string& dtype, int64_t head_dim, int64_t v_head_dim, int64_t device) {
  const char* fn = "maskattn._C.cuda_attention_path";
  TORCH_CHECK(dtype == "float16" || dtype == "bfloat16" || dtype == "float32", fn,
              ": dtype must be 'float16', 'bfloat16' or 'float32', got '", dtype, "'");
  TORCH_CHECK(head_dim >= 1 && v_head_dim >= 1, fn, ": head sizes must be >= 1");
  const ScalarKind kind = dtype == "float16"    ? ScalarKind::Float16
                          : dtype == "bfloat16" ? ScalarKind::BFloat16
                                                : ScalarKind::Float32;
  c10::cuda::OptionalCUDAGuard guard;
  if (device >= 0) guard.set_index((c10::DeviceIndex)device);
  return masked_attention_cuda_path(kind, head_dim, v_head_dim);
}

}  // namespace maskattn
