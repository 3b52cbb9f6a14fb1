// K and V in the fp32 layouts the tile products stream through, built once per call.
//
// Per (batch, kv head) and key tile of kBlockK keys:
//   k_t  (d  x kBlockK) K^T tile, the B operand of S = Q K^T
//   v_t  (dv x kBlockK) V^T tile, the B operand of dP = dO V^T        (backward)
//   k    (kBlockK x d_pad) K rows, the B operand of dQ = dS K          (backward)
//   v    (kBlockK x dv_pad) V rows, the B operand of O = P V           (forward)
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

// forward: k_t and v; backward: k_t, v_t and k. Parallel over tiles.
PackedKeys pack_keys(const AttentionFwdParams& p, const AttentionGeometry& g, bool for_backward);

}  // namespace cpu
}  // namespace maskattn
