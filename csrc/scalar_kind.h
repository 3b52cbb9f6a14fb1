// Element types as the torch-free kernels see them, and portable 16-bit float conversions.
#pragma once
#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace maskattn {

enum class ScalarKind : int32_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Float64 = 3, Bool = 4 };

// IEEE binary16 -> float by bit manipulation, so host code needs no CUDA header.
MA_HD float half_bits_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;  // signed zero
  } else {
    // subnormal half: renormalise into a float
    int shift = 0;
    while ((man & 0x400u) == 0) { man <<= 1; ++shift; }
    man &= 0x3ffu;
    bits = sign | ((uint32_t)(113 - shift) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

// float -> IEEE binary16, round to nearest even, overflow to inf.
MA_HD uint16_t float_to_half_bits(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof(x));
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {
    // result is subnormal or zero: align the mantissa (with its hidden bit) and round
    if (abs < 0x33000000u) return (uint16_t)sign;
    uint32_t e = abs >> 23;
    uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;  // value / 2^-24 == m * 2^(e - 126)
    uint32_t half_man = m >> (shift);
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_man & 1u))) ++half_man;
    return (uint16_t)(sign | half_man);
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);  // round to nearest even at bit 13
  return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

MA_HD float bf16_bits_to_float(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

MA_HD uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof(x));
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // keep nan quiet
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return (uint16_t)(x >> 16);
}

}  // namespace maskattn
