// The probe kernels of probes.h, compiled like the real kernels: shim headers, host GPU, and the
// PTX functions of attention_mma.cuh.
#include "probes.h"

#include "kernels/cuda/attention_mma.cuh"
#include "kernels/cuda/cuda_common.cuh"

namespace probes {
namespace {

using maskattn::gpu::dynamic_smem;

template <typename... Params, typename... Args>
int run(void (*kernel)(Params...), unsigned threads, size_t smem, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(1);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = smem;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, args...);
  (void)cudaGetLastError();
  return err;
}

// 32 rows of 8 halves in shared memory; lane l hands ldmatrix the address of row row_of_lane[l].
__global__ void ldmatrix_kernel(const uint16_t* rows, const int32_t* row_of_lane, bool trans, uint32_t* regs) {
  const int lane = threadIdx.x;
  auto* smem = reinterpret_cast<uint16_t*>(dynamic_smem);
  for (int k = 0; k < 8; ++k) smem[lane * 8 + k] = rows[lane * 8 + k];
  __syncthreads();
  uint32_t r[4];
  const uint32_t addr = maskattn::attn::smem_address(smem + row_of_lane[lane] * 8);
  if (trans) maskattn::attn::ldmatrix_x4_trans(r, addr);
  else maskattn::attn::ldmatrix_x4(r, addr);
  for (int j = 0; j < 4; ++j) regs[lane * 4 + j] = r[j];
}

__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, const float* c, bool bf16, float* d) {
  const int lane = threadIdx.x;
  const uint32_t frag[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
  float acc[4] = {c[lane * 4], c[lane * 4 + 1], c[lane * 4 + 2], c[lane * 4 + 3]};
  if (bf16) maskattn::attn::mma_16x8x16(acc, frag, b[lane * 2], b[lane * 2 + 1], __nv_bfloat16());
  else maskattn::attn::mma_16x8x16(acc, frag, b[lane * 2], b[lane * 2 + 1], __half());
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = acc[i];
}

// Every shuffle of lane values 100 + lane (as double: 8 bytes move), and the votes of lane % 3 == 0.
__global__ void shuffle_kernel(int mode, int param, int width, double* out, uint32_t* votes) {
  const double v = 100.0 + threadIdx.x;
  switch (mode) {
    case 0: out[threadIdx.x] = __shfl_sync(0xffffffffu, v, param, width); break;
    case 1: out[threadIdx.x] = __shfl_up_sync(0xffffffffu, v, (unsigned)param, width); break;
    case 2: out[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, (unsigned)param, width); break;
    default: out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, param, width); break;
  }
  const int pred = threadIdx.x % 3 == 0;
  votes[threadIdx.x * 3] = __ballot_sync(0xffffffffu, pred);
  votes[threadIdx.x * 3 + 1] = __any_sync(0xffffffffu, pred);
  votes[threadIdx.x * 3 + 2] = __all_sync(0xffffffffu, pred);
}

// Each thread copies 8 halves into shared memory by cp.async and reads them back.
__global__ void cp_async_kernel(bool wait_before_reading, const uint16_t* src, uint16_t* out) {
  auto* smem = reinterpret_cast<uint16_t*>(dynamic_smem);
  const int t = threadIdx.x;
  maskattn::attn::cp_async_16(maskattn::attn::smem_address(smem + t * 8), src + t * 8, true);
  maskattn::attn::cp_async_commit();
  if (wait_before_reading) maskattn::attn::cp_async_wait<0>();
  for (int k = 0; k < 8; ++k) out[t * 8 + k] = smem[t * 8 + k];
  if (!wait_before_reading) maskattn::attn::cp_async_wait<0>();
}

__global__ void cp_async_in_flight_kernel(const uint16_t* src) {
  maskattn::attn::cp_async_16(maskattn::attn::smem_address(dynamic_smem + threadIdx.x * 16), src, true);
  maskattn::attn::cp_async_commit();
}

// Warp 1 writes, warp 0 reads, with or without a barrier between them.
__global__ void handoff_kernel(bool with_barrier, int32_t* out) {
  auto* smem = reinterpret_cast<int32_t*>(dynamic_smem);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (warp == 1) smem[lane] = 1000 + lane;
  if (with_barrier) __syncthreads();
  if (warp == 0) out[lane] = smem[lane];
}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void divergent_shuffle_kernel() {
  if (threadIdx.x < 16) (void)__shfl_xor_sync(0xffffffffu, 1.f, 1);
}

// A 16-byte vector load one float past a 16-byte boundary, as a GPU refuses it.
__global__ void misaligned_load_kernel(const float* data, float* out) {
  out[threadIdx.x] = reinterpret_cast<const uint4*>(data + 1)->x;
}

__global__ void collective_after_exit_kernel() {
  if (threadIdx.x == 5) return;
  __syncwarp();
}

}  // namespace

int ldmatrix_x4(const uint16_t* rows, const int32_t* row_of_lane, bool trans, uint32_t* regs) {
  return run(ldmatrix_kernel, 32, 32 * 16, rows, row_of_lane, trans, regs);
}
int mma_m16n8k16(const uint32_t* a, const uint32_t* b, const float* c, bool bf16, float* d) {
  return run(mma_kernel, 32, 0, a, b, c, bf16, d);
}
int shuffle(int mode, int param, int width, double* out, uint32_t* votes) {
  return run(shuffle_kernel, 32, 0, mode, param, width, out, votes);
}
int cp_async(bool wait_before_reading, uint16_t* out) {
  alignas(16) uint16_t src[64 * 8];
  for (int i = 0; i < 64 * 8; ++i) src[i] = (uint16_t)(i + 1);
  return run(cp_async_kernel, 64, 64 * 16, wait_before_reading, (const uint16_t*)src, out);
}
int cp_async_left_in_flight() {
  alignas(16) static const uint16_t src[8] = {};
  return run(cp_async_in_flight_kernel, 32, 32 * 16, (const uint16_t*)src);
}
int cross_warp_handoff(bool with_barrier, int32_t* out) { return run(handoff_kernel, 64, 128, with_barrier, out); }
int divergent_barrier() { return run(divergent_barrier_kernel, 64, 0); }
int divergent_shuffle() { return run(divergent_shuffle_kernel, 32, 0); }
int collective_after_exit() { return run(collective_after_exit_kernel, 32, 0); }
int misaligned_load() {
  alignas(16) static const float data[8] = {};
  static float out[32];
  return run(misaligned_load_kernel, 32, 0, (const float*)data, (float*)out);
}

void to_half_bits(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = __half_as_ushort(__float2half_rn(x[i]));
}
void to_bf16_bits(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

const char* error_text(int err) { return cudaGetErrorString((cudaError_t)err); }

}  // namespace probes
