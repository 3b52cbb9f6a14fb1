// Host side shared by the attention launchers: device limits, the choice between the tensor-core
// and the SIMT kernels, dynamic shared memory, grid sizes, and the launchers' declarations.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "../attention.h"
#include "cuda_common.cuh"

namespace maskattn {
namespace attn {

struct BwdRowStats;

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("maskattn attention: ") + what + ": " + cudaGetErrorString(err));
}

// Architecture (major * 10 + minor) of the code the tensor-core kernels run as on the current
// device, 0 if none of their images loads there. It is the PTX (virtual) architecture they were
// compiled for, not the device's: built with TORCH_CUDA_ARCH_LIST=7.5+PTX, an H100 runs them JIT
// compiled from compute_75, where they trap. Defined with the kernels (attention_fwd_tc.cu).
int tensor_core_kernel_arch();

struct DeviceInfo {
  int index = 0;
  int major = 0;
  int max_smem = 0;                  // dynamic shared memory a block may opt into, bytes
  int sms = 0;                       // streaming multiprocessors
  bool tensor_core_kernels = false;  // sm_80+ and the tensor-core kernels were compiled for it
};

inline DeviceInfo current_device_info() {
  DeviceInfo info;
  cuda_check(cudaGetDevice(&info.index), "cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&info.major, cudaDevAttrComputeCapabilityMajor, info.index),
             "compute capability");
  cuda_check(cudaDeviceGetAttribute(&info.max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, info.index),
             "shared memory limit");
  cuda_check(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, info.index), "multiprocessor count");
  info.tensor_core_kernels = info.major >= 8 && tensor_core_kernel_arch() >= 80;
  return info;
}

// Dynamic shared memory each kernel has opted into on each device, shared by every host thread.
inline std::mutex& opted_smem_mutex() {
  static std::mutex m;
  return m;
}
// What a kernel holds on a device: its static shared memory (read once) and its dynamic opt-in.
struct SmemOptIn {
  int static_bytes = -1;
  int opted = 0;
};
inline SmemOptIn& smem_opt_in(const void* kernel, int device) {
  static std::map<std::pair<const void*, int>, SmemOptIn> kernels;
  return kernels[{kernel, device}];
}

// A block gets 48 KB of shared memory, its static __shared__ arrays included, unless the kernel
// opts in to more dynamic memory. The setting belongs to the kernel on a device, not to a call:
// it only grows, to the largest size used so far, under a lock, so no host thread's launch finds
// it lowered by another thread's smaller head size.
template <typename Kernel>
void allow_dynamic_smem(Kernel* kernel, int bytes, const DeviceInfo& dev, const char* name) {
  std::lock_guard<std::mutex> lock(opted_smem_mutex());
  SmemOptIn& held = smem_opt_in(reinterpret_cast<const void*>(kernel), dev.index);
  if (held.static_bytes < 0) {
    cudaFuncAttributes attr;
    cuda_check(cudaFuncGetAttributes(&attr, kernel), name);
    held.static_bytes = (int)attr.sharedSizeBytes;
  }
  if (bytes + held.static_bytes <= 48 * 1024 || bytes <= held.opted) return;
  if (bytes + held.static_bytes > dev.max_smem)
    throw std::runtime_error(std::string("maskattn attention: ") + name + " needs " +
                             std::to_string(bytes + held.static_bytes) + " bytes of shared memory, this GPU gives " +
                             std::to_string(dev.max_smem) + " a block");
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), name);
  held.opted = bytes;
}

inline unsigned int grid_of(int64_t blocks, const char* kernel) {
  if (blocks > INT32_MAX)
    throw std::runtime_error(std::string("maskattn attention: ") + kernel + " needs " + std::to_string(blocks) +
                             " blocks, more than a CUDA grid holds; split the batch");
  return (unsigned int)blocks;
}

inline std::string dims_text(const AttentionFwdParams& f) {
  return "head_dim " + std::to_string(f.head_dim) + ", v_head_dim " + std::to_string(f.v_head_dim);
}

// Shapes, dtype and grouping every CUDA attention kernel relies on.
inline void check_attention_params(const AttentionFwdParams& f) {
  if (f.dtype != ScalarKind::Float32 && f.dtype != ScalarKind::Float16 && f.dtype != ScalarKind::BFloat16)
    throw std::runtime_error("maskattn attention: CUDA kernels take float32, float16 or bfloat16 q/k/v");
  if (f.head_dim < 1 || f.v_head_dim < 1)
    throw std::runtime_error("maskattn attention: " + dims_text(f) + " must both be >= 1");
  if (f.kv_heads < 1 || f.heads % f.kv_heads != 0)
    throw std::runtime_error("maskattn attention: heads (" + std::to_string(f.heads) +
                             ") must be a multiple of kv_heads (" + std::to_string(f.kv_heads) + ")");
}

// Head-size bucket (64, 128, 256) of the tensor-core kernels, 0 where they do not apply: dtype
// float16 / bfloat16, sm_80+ (device and compiled kernels), head sizes multiples of 8 up to 256,
// q/k/v rows 16-byte aligned.
inline int tensor_core_bucket(const AttentionFwdParams& f, const DeviceInfo& dev) {
  if (f.dtype != ScalarKind::Float16 && f.dtype != ScalarKind::BFloat16) return 0;
  if (!dev.tensor_core_kernels || f.head_dim % 8 != 0 || f.v_head_dim % 8 != 0) return 0;
  const int64_t widest = std::max(f.head_dim, f.v_head_dim);
  if (widest > 256) return 0;
  using gpu::stride_keeps_alignment;
  const bool aligned = gpu::is_aligned16(f.q) && gpu::is_aligned16(f.k) && gpu::is_aligned16(f.v) &&
                       stride_keeps_alignment(f.batch, f.q_stride_b, 2) &&
                       stride_keeps_alignment(f.heads, f.q_stride_h, 2) &&
                       stride_keeps_alignment(f.q_len, f.q_stride_i, 2) &&
                       stride_keeps_alignment(f.batch, f.k_stride_b, 2) &&
                       stride_keeps_alignment(f.kv_heads, f.k_stride_h, 2) &&
                       stride_keeps_alignment(f.k_len, f.k_stride_j, 2) &&
                       stride_keeps_alignment(f.batch, f.v_stride_b, 2) &&
                       stride_keeps_alignment(f.kv_heads, f.v_stride_h, 2) &&
                       stride_keeps_alignment(f.k_len, f.v_stride_j, 2);
  if (!aligned) return 0;
  return widest <= 64 ? 64 : (widest <= 128 ? 128 : 256);
}

// Largest SIMT tile edge (32, 16, 8) whose shared arrays, floats_of(edge) floats, fit the device.
template <typename FloatsOf>
int simt_edge(const AttentionFwdParams& f, const DeviceInfo& dev, FloatsOf floats_of, const char* kernel) {
  for (int edge = 32; edge >= 8; edge /= 2)
    if (floats_of(edge) * (int64_t)sizeof(float) <= dev.max_smem) return edge;
  throw std::runtime_error(std::string("maskattn attention: ") + kernel + ": " + dims_text(f) +
                           " need more shared memory than this GPU has (" + std::to_string(dev.max_smem) +
                           " bytes); the CUDA kernels support head sizes up to about " +
                           std::to_string(dev.max_smem / (4 * 8 * 3 * 2)) + " each");
}

// Key splits of the tensor-core forward (0: the whole-row kernel, no workspace): when its blocks
// fill less than one wave of the GPU (a batch of one with few heads), or the query rows are few
// (decoding), the split kernel's smaller query blocks run, each block's key tiles cut into runs of
// at least 256 keys (n >= 1), each run a block of its own, merged after (flash-decoding).
int fwd_tc_key_splits(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev);

// Tensor-core launchers, one translation unit per pass so the builds run in parallel.
template <typename Elem>
void launch_fwd_tc(const AttentionFwdParams& p, int bucket, const DeviceInfo& dev, cudaStream_t stream);
template <typename Elem>
void launch_bwd_dq_tc(const AttentionBwdParams& p, const BwdRowStats& stats, int bucket, const DeviceInfo& dev,
                      cudaStream_t stream);
template <typename Elem>
void launch_bwd_dkdv_tc(const AttentionBwdParams& p, const BwdRowStats& stats, int bucket, const DeviceInfo& dev,
                        cudaStream_t stream);

}  // namespace attn
}  // namespace maskattn
