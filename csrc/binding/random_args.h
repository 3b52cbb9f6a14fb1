// Seeds of the counter-based random numbers (Philox) the ops draw: taken from a torch generator
// (or the default one of the device) so that the generator's state decides the result.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace maskattn {

// (seed, offset) for a call on `device`: on CPU a fresh 64-bit seed from the CPU generator (which
// advances it) and offset 0; on CUDA torch's Philox (seed, offset), the offset advanced by
// `increment` as torch's own random ops do. The generator must be of the device's type.
std::pair<uint64_t, uint64_t> philox_seed_offset(const char* op, const c10::Device& device,
                                                 const std::optional<at::Generator>& generator, uint64_t increment);

// (seed, offset) as the (2,) int64 CPU tensor an op returns for its backward, and back.
at::Tensor rng_state_tensor(uint64_t seed, uint64_t offset);
std::pair<uint64_t, uint64_t> rng_state_values(const char* op, const at::Tensor& state);

}  // namespace maskattn
