// K and V in the fp32 layouts the tile products stream through, built once per call.
//
// Per (batch, kv head) and key tile of kBlockK keys:
//   k_t  (d  x kBlockK) K^T tile, the B operand of S = Q K^T
//   v_t  (dv x kBlockK) V^T tile, the B operand of dP = dO V^T        (backward)
//   k    (kBlockK x d_pad) K rows, the B operand of dQ = dS K          (backward)
//   v    (kBlockK x dv_pad) V rows, the B operand of O = P V           (forward)
// or, for the forward of bf16 inputs where the CPU multiplies bf16 (cpu_kernels.h gemm_bf16), the
// k-pair layouts of the same operands, bf16 copied bit for bit:
//   k_pairs (d_pad32 / 2 x kBlockK x 2)  K^T tile: pair row p holds (K[j][2p], K[j][2p + 1]) per key j
//   v_pairs (kBlockK / 2 x dv_pad x 2)   V tile: pair row p holds (V[2p][c], V[2p + 1][c]) per column c
// and for their backward also
//   v_t_pairs   (dv_pad32 / 2 x kBlockK x 2) V^T tile as k_pairs, the B operand of dP = dO V^T
//   k_row_pairs (kBlockK / 2 x d_pad x 2)    K tile as v_pairs, the B operand of dQ = dS K
// Keys past the tile's end are zero, so padded lanes never carry NaN into a product.
// Tiles starting at or past a sequence's k_len are never read and are left unpacked.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_layout.h"

namespace maskattn {
namespace cpu {

struct PackedKeys {
  FloatBuffer k_t, v_t, k, v;
  bool v_direct = false;  // fp32 V with dv % 16 == 0 is read in place
  bool pairs = false;     // k_pairs / v_pairs instead of k_t / v
  FloatBuffer k_pairs, v_pairs, v_t_pairs, k_row_pairs;
  int64_t d_pad32 = 0, dv_pad32 = 0;
  const float* v_src = nullptr;
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_j = 0;
  int64_t tiles_per_head = 0, d = 0, d_pad = 0, dv = 0, dv_pad = 0, kv_heads = 0;

  int64_t tile_index(int64_t b, int64_t hk, int64_t kt) const { return (b * kv_heads + hk) * tiles_per_head + kt; }
  const float* k_t_tile(int64_t b, int64_t hk, int64_t kt) const {
    return k_t.get() + tile_index(b, hk, kt) * d * kBlockK;
  }
  const float* v_t_tile(int64_t b, int64_t hk, int64_t kt) const {
    return v_t.get() + tile_index(b, hk, kt) * dv * kBlockK;
  }
  const float* k_rows(int64_t b, int64_t hk, int64_t kt) const {
    return k.get() + tile_index(b, hk, kt) * kBlockK * d_pad;
  }
  const uint16_t* k_pairs_tile(int64_t b, int64_t hk, int64_t kt) const {
    return reinterpret_cast<const uint16_t*>(k_pairs.get()) + tile_index(b, hk, kt) * d_pad32 * kBlockK;
  }
  const uint16_t* v_pairs_tile(int64_t b, int64_t hk, int64_t kt) const {
    return reinterpret_cast<const uint16_t*>(v_pairs.get()) + tile_index(b, hk, kt) * kBlockK * dv_pad;
  }
  const uint16_t* v_t_pairs_tile(int64_t b, int64_t hk, int64_t kt) const {
    return reinterpret_cast<const uint16_t*>(v_t_pairs.get()) + tile_index(b, hk, kt) * dv_pad32 * kBlockK;
  }
  const uint16_t* k_row_pairs_tile(int64_t b, int64_t hk, int64_t kt) const {
    return reinterpret_cast<const uint16_t*>(k_row_pairs.get()) + tile_index(b, hk, kt) * kBlockK * d_pad;
  }
  // V rows of a tile and their row stride.
  const float* v_rows(int64_t b, int64_t hk, int64_t kt, int64_t* ld) const {
    if (v_direct) {
      *ld = v_stride_j;
      return v_src + b * v_stride_b + hk * v_stride_h + kt * kBlockK * v_stride_j;
    }
    *ld = dv_pad;
    return v.get() + tile_index(b, hk, kt) * kBlockK * dv_pad;
  }
};

// forward: k_t and v (or, with pairs, k_pairs and v_pairs); backward: k_t, v_t and k (or k_pairs,
// v_t_pairs and k_row_pairs). Parallel over tiles.
PackedKeys pack_keys(const AttentionFwdParams& p, const AttentionGeometry& g, bool for_backward, bool pairs = false);

inline int64_t round_up32(int64_t n) { return (n + 31) / 32 * 32; }

// out[c * ldo + j] = rows[j * ld + c] for j < n, c < width, of 32-bit words (8x8 AVX2 blocks).
void transpose_words(const uint32_t* rows, int64_t ld, int64_t n, int64_t width, uint32_t* out, int64_t ldo);

}  // namespace cpu
}  // namespace maskattn
