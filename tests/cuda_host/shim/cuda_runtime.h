// Host stand-in for <cuda_runtime.h>: what the kernels and their launchers use from CUDA, so the
// same .cu sources compile with a host compiler and run on host_gpu.h's fibers. Found before any
// CUDA include directory (the host build puts this directory first and no CUDA one at all).
#pragma once
#include <math.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "host_gpu.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
// thread_local at block scope is implicitly static: one array per OS thread, which runs one block
// at a time, so every fiber (thread) of the block sees the same array; `extern __shared__`
// declarations become `extern thread_local`, defined once by the host GPU.
#define __shared__ thread_local

// ---- atomics: blocks run on several host threads at once, so these are real atomic adds ----
inline float atomicAdd(float* address, float value) { return std::atomic_ref<float>(*address).fetch_add(value); }
inline double atomicAdd(double* address, double value) { return std::atomic_ref<double>(*address).fetch_add(value); }

// ---- vector types and the built-in indices ----
struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return uint4{x, y, z, w}; }

struct alignas(16) longlong2 {
  long long x, y;
};

// Set by the host GPU each time it resumes a fiber.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// ---- intrinsics ----
#define __syncthreads() ::cuda_host::sync_block(__FILE__, __LINE__)

namespace cuda_host {
inline void combine_nothing(WarpSlots&, unsigned) {}

// Shuffles: each lane deposits its value, the mode's parameter and the width; the source lane of
// every lane follows CUDA's rules (subsections of `width` lanes; up/down past the subsection, and
// xor into a later subsection, return the lane's own value).
enum ShuffleMode : int { kShflIdx, kShflUp, kShflDown, kShflXor };
struct ShuffleIn {
  unsigned char value[8];
  int mode, param, width;
};

inline int shuffle_source(int lane, const ShuffleIn& in) {
  const int base = lane & ~(in.width - 1);
  switch (in.mode) {
    case kShflIdx: return base + (in.param & (in.width - 1));
    case kShflUp: return lane - in.param >= base ? lane - in.param : lane;
    case kShflDown: return lane + in.param < base + in.width ? lane + in.param : lane;
    default: {
      const int src = lane ^ in.param;
      return src < base + in.width ? src : lane;
    }
  }
}

inline void combine_shuffle(WarpSlots& s, unsigned mask) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!((mask >> lane) & 1u)) continue;
    ShuffleIn in;
    std::memcpy(&in, s.in[lane], sizeof(in));
    const int src = shuffle_source(lane, in);
    if (src < 0 || src > 31 || !((mask >> src) & 1u))
      fault("shuffle: lane %d reads lane %d, outside the mask 0x%08x", lane, src, mask);
    std::memcpy(s.out[lane], s.in[src], sizeof(in.value));
  }
}

template <typename T>
inline T shuffle(const char* op, unsigned mask, T value, int mode, int param, int width) {
  static_assert(sizeof(T) <= 8, "shuffles move up to 8 bytes");
  if (width < 1 || width > 32 || (width & (width - 1))) fault("%s: width %d is not a power of two <= 32", op, width);
  ShuffleIn in{};
  std::memcpy(in.value, &value, sizeof(T));
  in.mode = mode;
  in.param = param;
  in.width = width;
  unsigned char out[8];
  warp_collective(op, mask, &in, sizeof(in), out, sizeof(out), &combine_shuffle);
  T result;
  std::memcpy(&result, out, sizeof(T));
  return result;
}

// Votes: the ballot of the predicates of the mask's lanes, handed to each of them.
inline void combine_ballot(WarpSlots& s, unsigned mask) {
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane)
    if (((mask >> lane) & 1u) && s.in[lane][0]) ballot |= 1u << lane;
  for (int lane = 0; lane < 32; ++lane) std::memcpy(s.out[lane], &ballot, sizeof(ballot));
}

inline unsigned ballot(const char* op, unsigned mask, int predicate) {
  const unsigned char in = predicate != 0;
  unsigned out;
  warp_collective(op, mask, &in, 1, &out, sizeof(out), &combine_ballot);
  return out;
}
}  // namespace cuda_host

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  static const char op[] = "__syncwarp";
  cuda_host::warp_collective(op, mask, nullptr, 0, nullptr, 0, &cuda_host::combine_nothing);
}

template <typename T>
inline T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  static const char op[] = "__shfl_sync";
  return cuda_host::shuffle(op, mask, value, cuda_host::kShflIdx, src_lane, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  static const char op[] = "__shfl_up_sync";
  return cuda_host::shuffle(op, mask, value, cuda_host::kShflUp, (int)delta, width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  static const char op[] = "__shfl_down_sync";
  return cuda_host::shuffle(op, mask, value, cuda_host::kShflDown, (int)delta, width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  static const char op[] = "__shfl_xor_sync";
  return cuda_host::shuffle(op, mask, value, cuda_host::kShflXor, lane_mask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  static const char op[] = "__ballot_sync";
  return cuda_host::ballot(op, mask, predicate);
}
inline int __any_sync(unsigned mask, int predicate) {
  static const char op[] = "__any_sync";
  return cuda_host::ballot(op, mask, predicate) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  static const char op[] = "__all_sync";
  return cuda_host::ballot(op, mask, predicate) == mask;
}

[[noreturn]] inline void __trap() { cuda_host::fault("__trap()"); }

inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Rounded as the device rounds them, never contracted into a fused multiply-add by the host compiler.
inline float __fmul_rn(float a, float b) {
  float r = a * b;
  __asm__("" : "+x"(r));
  return r;
}
inline float __fadd_rn(float a, float b) {
  float r = a + b;
  __asm__("" : "+x"(r));
  return r;
}

inline size_t __cvta_generic_to_shared(const void* p) { return cuda_host::shared_address(p); }

// ---- runtime API ----
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorLaunchFailure = 719,
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

typedef struct CUstream_st* cudaStream_t;

struct cudaFuncAttributes {
  size_t sharedSizeBytes, constSizeBytes, localSizeBytes;
  int maxThreadsPerBlock, numRegs, ptxVersion, binaryVersion, cacheModeCA, maxDynamicSharedSizeBytes;
};

struct cudaLaunchAttribute;
typedef struct cudaLaunchConfig_st {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned int numAttrs;
} cudaLaunchConfig_t;

inline cudaError_t cudaGetLastError() { return (cudaError_t)cuda_host::take_last_error(); }
inline const char* cudaGetErrorString(cudaError_t err) { return cuda_host::error_string(err); }

inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int /*device*/) {
  const cuda_host::DeviceModel& d = cuda_host::device_model();
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = d.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = d.minor; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = d.max_smem_optin; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = d.sms; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return (cudaError_t)cuda_host::set_func_max_dynamic_smem(reinterpret_cast<const void*>(entry), value);
}

template <class T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
  const cuda_host::DeviceModel& d = cuda_host::device_model();
  *attr = cudaFuncAttributes{};
  attr->maxThreadsPerBlock = 1024;
  attr->ptxVersion = d.kernel_ptx_arch;
  attr->binaryVersion = d.major * 10 + d.minor;
  attr->sharedSizeBytes = (size_t)d.static_smem;
  attr->maxDynamicSharedSizeBytes = cuda_host::func_max_dynamic_smem(reinterpret_cast<const void*>(entry));
  return cudaSuccess;
}

// As CUDA's: the arguments are converted to the kernel's parameter types once, at the launch;
// every thread then calls the kernel with its own copies of them.
template <typename... ExpTypes, typename... ActTypes>
inline cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(ExpTypes...),
                                      ActTypes&&... args) {
  struct Call {
    void (*kernel)(ExpTypes...);
    std::tuple<std::decay_t<ExpTypes>...> params;
    static void run(void* self) {
      Call* call = static_cast<Call*>(self);
      std::apply(call->kernel, call->params);
    }
  };
  Call call{kernel, std::tuple<std::decay_t<ExpTypes>...>(std::forward<ActTypes>(args)...)};
  return (cudaError_t)cuda_host::launch(reinterpret_cast<const void*>(kernel), config->gridDim, config->blockDim,
                                        config->dynamicSmemBytes, &Call::run, &call);
}
