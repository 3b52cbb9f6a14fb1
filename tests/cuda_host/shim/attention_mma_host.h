// Host execution of attention_mma.cuh's PTX (mma.sync m16n8k16, ldmatrix .x4 with and without
// .trans, cp.async with zero fill and its groups, ex2.approx): the same functions, as warp
// collectives of host_gpu.h built from the PTX ISA's fragment tables (host_ptx.cpp).
// attention_mma.cuh includes this header instead of its inline PTX when no CUDA compiler runs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "host_gpu.h"

namespace cuda_host {
void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool bf16);
void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr, bool trans);
}  // namespace cuda_host

namespace maskattn {
namespace attn {

inline void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, __half) {
  cuda_host::mma_m16n8k16(d, a, b0, b1, false);
}
inline void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, __nv_bfloat16) {
  cuda_host::mma_m16n8k16(d, a, b0, b1, true);
}

inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) { cuda_host::ldmatrix_x4(r, addr, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) { cuda_host::ldmatrix_x4(r, addr, true); }

inline void cp_async_16(uint32_t dst, const void* src, bool valid) { cuda_host::cp_async_16(dst, src, valid ? 16 : 0); }
inline void cp_async_commit() { cuda_host::cp_async_commit(); }
template <int kPending>
inline void cp_async_wait() {
  cuda_host::cp_async_wait(kPending);
}

// ex2.approx.ftz.f32: subnormal inputs and results flush to zero.
inline float fast_exp2(float x) {
  if (std::fabs(x) < FLT_MIN) x = 0.f;
  const float y = std::exp2(x);
  return y < FLT_MIN ? 0.f : y;
}

}  // namespace attn
}  // namespace maskattn
