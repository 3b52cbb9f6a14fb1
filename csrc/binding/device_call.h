// Runs the CPU or the CUDA kernel for tensors on `device`, with that device current.
#pragma once
#include <c10/core/DeviceGuard.h>

#include "../kernels/cpu/cpu_isa.h"
#include "cuda_support.h"

namespace maskattn {

template <typename CpuFn, typename CudaFn>
void run_on_device(const char* op, const c10::Device& device, CpuFn&& cpu, CudaFn&& cuda) {
  if (device.is_cpu()) {
    const std::string isa_error = cpu::cpu_isa_env_error();
    TORCH_CHECK(isa_error.empty(), op, ": ", isa_error);
    cpu();
    return;
  }
  TORCH_CHECK(device.is_cuda(), op, ": unsupported device ", device, " (maskattn runs on CPU and CUDA)");
#ifdef MASKATTN_WITH_CUDA
  c10::DeviceGuard guard(device);
  cuda(current_cuda_stream(device));
#else
  (void)cuda;
  fail_without_cuda(op);
#endif
}

}  // namespace maskattn
