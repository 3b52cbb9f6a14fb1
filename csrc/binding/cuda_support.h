// What the bindings need from CUDA torch, behind a header that compiles without it.
#pragma once
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace maskattn {

bool built_with_cuda();
// Current torch stream of `device` as a cudaStream_t (void* here); throws if CUDA was not built.
void* current_cuda_stream(const c10::Device& device);
// (seed, offset) reserved from torch's CUDA Philox state for `increment` draws per thread; without
// a generator, the default one of `device`.
std::pair<uint64_t, uint64_t> cuda_philox_seed_offset(const std::optional<at::Generator>& gen,
                                                      const c10::Device& device, uint64_t increment);
// Throws the error that says how to rebuild with CUDA.
[[noreturn]] void fail_without_cuda(const char* op);
// Which CUDA attention kernels ("tensor_cores" or "simt") run for `dtype` ("float16", "bfloat16",
// "float32") and these head sizes on CUDA device `device` (-1: the current one), rows aligned.
std::string cuda_attention_path(const std::string& dtype, int64_t head_dim, int64_t v_head_dim, int64_t device);

}  // namespace maskattn
