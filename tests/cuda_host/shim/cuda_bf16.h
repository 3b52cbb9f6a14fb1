// Host stand-in for <cuda_bf16.h>: bfloat16 as 16 bits of storage, and the conversions the kernels
// use, rounding to nearest even as the GPU's _rn conversions do.
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"  // the qualifiers, as the CUDA headers bring them

struct __nv_bfloat16 {
  uint16_t bits;
};

struct __nv_bfloat162 {
  __nv_bfloat16 x;  // low 16 bits of the register
  __nv_bfloat16 y;
};

inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = (uint32_t)b.bits << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fff};  // the GPU's canonical NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round half to even on the 16 bits that are dropped
  return __nv_bfloat16{(uint16_t)(u >> 16)};
}

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
