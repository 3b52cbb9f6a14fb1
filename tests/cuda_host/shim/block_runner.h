// Inside the host GPU (host_gpu.cpp runs blocks, host_launch.cpp runs launches): one block of a
// launch as fibers on the calling OS thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda_runtime.h"

namespace cuda_host {

struct BlockLaunch {
  dim3 grid, block;
  size_t smem_bytes = 0;
  void (*body)(void*) = nullptr;  // runs the kernel as the thread the indices name
  void* ctx = nullptr;
};

// Runs block `index` (x fastest) of `launch` on this OS thread, its schedule drawn from `seed`;
// returns "" or why it failed.
std::string run_block(const BlockLaunch& launch, uint64_t index, uint64_t seed);
// Whether this OS thread is running a kernel's thread right now.
bool in_kernel();

}  // namespace cuda_host
