#include "random_args.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <mutex>

#include "cuda_support.h"

namespace maskattn {

std::pair<uint64_t, uint64_t> philox_seed_offset(const char* op, const c10::Device& device,
                                                 const std::optional<at::Generator>& generator, uint64_t increment) {
  if (device.is_cpu()) {
    TORCH_CHECK(!generator || generator->device().is_cpu(), op,
                ": generator must be a CPU generator for CPU tensors, got one on ", generator->device());
    auto* g = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
    std::lock_guard<std::mutex> lock(g->mutex_);
    return {g->random64(), 0};  // advances the generator: the next call draws afresh
  }
  TORCH_CHECK(device.is_cuda(), op, ": unsupported device ", device, " (maskattn runs on CPU and CUDA)");
  if (!built_with_cuda()) fail_without_cuda(op);
  TORCH_CHECK(!generator || generator->device().is_cuda(), op,
              ": generator must be a CUDA generator for CUDA tensors, got one on ", generator->device());
  return cuda_philox_seed_offset(generator, device, increment);
}

at::Tensor rng_state_tensor(uint64_t seed, uint64_t offset) {
  at::Tensor t = at::empty({2}, at::TensorOptions().dtype(at::kLong));
  t.data_ptr<int64_t>()[0] = (int64_t)seed;
  t.data_ptr<int64_t>()[1] = (int64_t)offset;
  return t;
}

std::pair<uint64_t, uint64_t> rng_state_values(const char* op, const at::Tensor& state) {
  TORCH_CHECK(state.scalar_type() == at::kLong && state.numel() == 2, op,
              ": rng_state must be the (2,) int64 tensor (seed, offset) the forward returned, got ",
              state.scalar_type(), " of shape ", state.sizes());
  const at::Tensor s = state.cpu().contiguous();
  return {(uint64_t)s.data_ptr<int64_t>()[0], (uint64_t)s.data_ptr<int64_t>()[1]};
}

}  // namespace maskattn
