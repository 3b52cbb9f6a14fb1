// Host stand-in for <cuda_fp16.h>: the half type as 16 bits of storage, and the conversions the
// kernels use, rounding to nearest even as the GPU's _rn conversions do (the compiler's _Float16
// conversion is IEEE round-to-nearest-even).
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"  // the qualifiers, as the CUDA headers bring them

struct __half {
  uint16_t bits;
};

struct __half2 {
  __half x;  // low 16 bits of the register
  __half y;
};

inline float __half2float(__half h) {
  _Float16 f;
  std::memcpy(&f, &h.bits, sizeof(f));
  return (float)f;
}

inline __half __float2half_rn(float x) {
  const _Float16 f = (_Float16)x;
  __half h;
  std::memcpy(&h.bits, &f, sizeof(f));
  return h;
}

inline __half __ushort_as_half(unsigned short bits) { return __half{bits}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half2 __floats2half2_rn(float lo, float hi) { return __half2{__float2half_rn(lo), __float2half_rn(hi)}; }
