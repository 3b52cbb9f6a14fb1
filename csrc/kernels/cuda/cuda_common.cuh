// Host and device helpers every CUDA kernel file shares: the launch, grid sizing, alignment,
// the dynamic shared memory, and 16-byte vector access of float / half / bfloat16 rows with
// float math inside.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace maskattn {
namespace gpu {

// The block's dynamic shared memory, sized at launch; kernels lay their arrays out in it.
extern __shared__ __align__(128) unsigned char dynamic_smem[];

inline cudaStream_t as_cuda_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Launches `kernel` on grid x block threads with `smem_bytes` of dynamic shared memory. A launch
// error surfaces here, named after the kernel, instead of at a later synchronisation. Through
// the runtime API rather than <<<>>>, so a host compiler reads the launchers too.
template <typename... Params, typename... Args>
void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  const cudaError_t last = cudaGetLastError();  // also clears the error the failed launch recorded
  if (err == cudaSuccess) err = last;
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("maskattn: CUDA kernel ") + name + " failed to launch: " +
                             cudaGetErrorString(err));
}

// Blocks for `items` work items at `items_per_block` each; kernels loop, so the grid is capped.
inline unsigned int grid_blocks(int64_t items, int64_t items_per_block) {
  const int64_t kMaxBlocks = int64_t(1) << 30;
  const int64_t blocks = (items + items_per_block - 1) / items_per_block;
  return (unsigned int)(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

inline bool is_aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// A stride only matters for alignment when its dimension has more than one index.
inline bool stride_keeps_alignment(int64_t size, int64_t stride_elems, int64_t elem_bytes) {
  return size <= 1 || (stride_elems * elem_bytes) % 16 == 0;
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// 16-bit element <-> its bit pattern, so vectors are packed with shifts rather than pointer casts.
__device__ __forceinline__ float bits_to_float(uint32_t bits, __half) {
  return __half2float(__ushort_as_half((unsigned short)bits));
}
__device__ __forceinline__ float bits_to_float(uint32_t bits, __nv_bfloat16) { return __uint_as_float(bits << 16); }
__device__ __forceinline__ uint32_t float_to_bits(float x, __half) { return __half_as_ushort(__float2half_rn(x)); }
__device__ __forceinline__ uint32_t float_to_bits(float x, __nv_bfloat16) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

// One 16-byte vector of T as floats: 4 float32 or 8 half/bfloat16 (low half of a word first).
template <typename T>
struct Vec16 {
  static constexpr int kSize = 16 / (int)sizeof(T);

  static __device__ __forceinline__ void unpack(const uint4& raw, float (&v)[kSize]) {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = bits_to_float(w[k] & 0xffffu, T());
      v[2 * k + 1] = bits_to_float(w[k] >> 16, T());
    }
  }

  static __device__ __forceinline__ uint4 pack(const float (&v)[kSize]) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = float_to_bits(v[2 * k], T()) | (float_to_bits(v[2 * k + 1], T()) << 16);
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
};

template <>
struct Vec16<float> {
  static constexpr int kSize = 4;

  static __device__ __forceinline__ void unpack(const uint4& raw, float (&v)[kSize]) {
    v[0] = __uint_as_float(raw.x);
    v[1] = __uint_as_float(raw.y);
    v[2] = __uint_as_float(raw.z);
    v[3] = __uint_as_float(raw.w);
  }

  static __device__ __forceinline__ uint4 pack(const float (&v)[kSize]) {
    return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
  }
};

// Elements [j0, j0 + kSize) of a row of `len`: one 16-byte load when the row is 16-byte aligned
// (`vec_ok`) and the vector lies inside it, element by element otherwise; `fill` past the end.
template <typename T>
__device__ __forceinline__ void load_chunk(const T* row, int64_t j0, int64_t len, bool vec_ok,
                                           float (&v)[Vec16<T>::kSize], float fill) {
  constexpr int kV = Vec16<T>::kSize;
  if (vec_ok && j0 + kV <= len) {
    Vec16<T>::unpack(*reinterpret_cast<const uint4*>(row + j0), v);
    return;
  }
#pragma unroll
  for (int k = 0; k < kV; ++k) v[k] = j0 + k < len ? to_float(row[j0 + k]) : fill;
}

// Stores the elements of [j0, j0 + kSize) that lie inside the row, as load_chunk reads them.
template <typename T>
__device__ __forceinline__ void store_chunk(T* row, int64_t j0, int64_t len, bool vec_ok,
                                            const float (&v)[Vec16<T>::kSize]) {
  constexpr int kV = Vec16<T>::kSize;
  if (vec_ok && j0 + kV <= len) {
    *reinterpret_cast<uint4*>(row + j0) = Vec16<T>::pack(v);
    return;
  }
#pragma unroll
  for (int k = 0; k < kV; ++k)
    if (j0 + k < len) row[j0 + k] = from_float<T>(v[k]);
}

}  // namespace gpu
}  // namespace maskattn
