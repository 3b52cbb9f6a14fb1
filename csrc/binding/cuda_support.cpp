// CUDA torch glue: current stream and Philox state (compiled only with the CUDA kernels).
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <mutex>

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

}  // namespace maskattn
