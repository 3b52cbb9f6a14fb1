// Included before a binding's *_ops.cpp in the host execution: the op checks its arguments,
// allocates and prepares the MaskSpec exactly as it does for a GPU, then runs the CUDA kernel
// entry point on its CPU tensors instead of choosing the kernels by device.
#pragma once
#include <c10/util/Exception.h>

#include "binding/device_call.h"

namespace maskattn {

template <typename CpuFn, typename CudaFn>
void run_cuda_kernels_on_host(const char* op, const c10::Device& device, CpuFn&&, CudaFn&& cuda) {
  TORCH_CHECK(device.is_cpu(), op, ": the host execution of the CUDA kernels takes CPU tensors, got ", device);
  cuda(nullptr);  // the default stream
}

}  // namespace maskattn

#define run_on_device run_cuda_kernels_on_host
