// Counter-based Philox4x32-10 (Salmon et al., SC'11): the same draw on CPU and GPU for a
// (seed, offset, index) triple, so a seed reproduces a result on either device.
#pragma once
#include <cstdint>

#include "host_device.h"

namespace maskattn {

MA_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = (uint64_t)a * (uint64_t)b;
  hi = (uint32_t)(p >> 32);
  lo = (uint32_t)p;
}

// The four 32-bit words of Philox4x32-10 for counter (index, offset) under key seed.
struct Philox4 {
  uint32_t word[4];
};

MA_HD Philox4 philox4x32(uint64_t seed, uint64_t offset, uint64_t index) {
  uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
  uint32_t c2 = (uint32_t)offset, c3 = (uint32_t)(offset >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;  // Weyl key schedule
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// First 32-bit output of Philox4x32-10 for counter (index, offset) under key seed.
MA_HD uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t index) {
  return philox4x32(seed, offset, index).word[0];
}

// Uniform float in [0, 1) with 24 random bits.
MA_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  return (float)(philox_u32(seed, offset, index) >> 8) * (1.0f / 16777216.0f);
}

}  // namespace maskattn
