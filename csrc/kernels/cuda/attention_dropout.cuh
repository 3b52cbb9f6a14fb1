// Attention dropout inside the CUDA attention kernels: keep factors of DropoutSpec
// (dropout_spec.h) for single elements and for a warp's mma accumulator fragment.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../dropout_spec.h"
#include "attention_fragments.h"

namespace maskattn {
namespace attn {

// `kept` where (b, h, i, j) survives the dropout, else 0.
__device__ __forceinline__ float dropout_factor(const DropoutSpec& d, int64_t b, int64_t h, int64_t i, int64_t j,
                                                float kept) {
  return d.keeps(b, h, i, j) ? kept : 0.f;
}

// Keep bits of a warp's accumulator tile (rows = queries row[0], row[1], cols = keys j0..):
// bit 4 nt + r for register r of n-tile nt. The draws run in a loop that is not unrolled, so
// the Philox rounds cost a few registers once instead of one inlined copy per element.
template <int N_TILES>
__device__ __forceinline__ uint32_t dropout_bits(const DropoutSpec& d, int64_t b, int64_t h, const int64_t (&row)[2],
                                                 int64_t j0, int lane) {
  static_assert(N_TILES * 4 <= 32, "one bit per register of the tile");
  uint32_t bits = 0;
#pragma unroll 1
  for (int t = 0; t < 2 * N_TILES; ++t) {
    const int nt = t >> 1, rh = t & 1;
    // registers 2 rh and 2 rh + 1 hold adjacent keys: one Philox call unless they straddle a group
    const uint64_t e = d.element(b, h, rh ? row[1] : row[0], j0 + nt * 8 + frag::acc_col(lane, 0));
    const Philox4 w = philox4x32(d.seed, d.offset, e / kDropoutGroup);
    const bool k0 = DropoutSpec::bits_of(w, e) >= d.threshold;
    const bool k1 = (e + 1) % kDropoutGroup != 0 ? DropoutSpec::bits_of(w, e + 1) >= d.threshold
                                                 : d.keeps_element(e + 1);
    bits |= (uint32_t)(k0 | (k1 << 1)) << (4 * nt + 2 * rh);
  }
  return bits;
}

// x[nt][r] *= kept where bit 4 nt + r of `bits` is set, else 0.
template <int N_TILES>
__device__ __forceinline__ void apply_dropout_bits(float (&x)[N_TILES][4], uint32_t bits, float kept) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) x[nt][r] = (bits >> (4 * nt + r)) & 1u ? x[nt][r] * kept : 0.f;
}

// Keep bits of a warp's tile in the transposed orientation of the dk/dv pass (rows = keys
// key[0], key[1], cols = queries i0..): bit 4 nt + r for register r of n-tile nt.
template <int N_TILES>
__device__ __forceinline__ uint32_t dropout_bits_by_key(const DropoutSpec& d, int64_t b, int64_t h, int64_t i0,
                                                        const int64_t (&key)[2], int lane) {
  static_assert(N_TILES * 4 <= 32, "one bit per register of the tile");
  uint32_t bits = 0;
#pragma unroll 1
  for (int t = 0; t < 4 * N_TILES; ++t) {
    const int nt = t >> 2, r = t & 3;  // register r: key[r / 2], query column acc_col(lane, r)
    const int64_t i = i0 + nt * 8 + frag::acc_col(lane, r);
    bits |= (uint32_t)d.keeps(b, h, i, (r >> 1) ? key[1] : key[0]) << t;
  }
  return bits;
}

}  // namespace attn
}  // namespace maskattn
