// Shared pieces of the fp32-math backward: operands converted once, and the step on one
// (query tile, key tile) pair that every schedule runs.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_layout.h"
#include "attention_pack.h"
#include "attention_row_parts.h"
#include "attention_schedule.h"

namespace maskattn {
namespace cpu {

// Per (batch, head, query row), in fp32:
//   q     (d_pad)  scale * q, the A operand of S and the B operand of dK
//   dout  (dv_pad) the A operand of dP and the B operand of dV
//   delta          rowsum(dout * out) - dlse + rowsum(P * dweights): dS = P (dP + dweights - delta)
// or, where bf16 inputs are multiplied as bf16 (pairs; q unscaled: the scale goes on the products),
//   q16, dout16 (d_pad32, dv_pad32 bf16 a row; 32 rows more past the last) the A operands of S, dP
//   q16_t, dout16_t per query tile (d_pad32, dv_pad32 rows of kBlockQ bf16, zero past the tile's
//   rows) q^T and dO^T: the A operands of dK^T = q^T dS and dV^T = dO^T P
struct BackwardOperands {
  FloatBuffer q, dout, delta;
  bool pairs = false;
  int64_t d_pad32 = 0, dv_pad32 = 0;
  FloatBuffer q16, dout16, q16_t, dout16_t;
  const float* q_row(const AttentionGeometry& g, int64_t row) const { return q.get() + row * g.d_pad; }
  const float* dout_row(const AttentionGeometry& g, int64_t row) const { return dout.get() + row * g.dv_pad; }
  const uint16_t* q16_row(int64_t row) const { return reinterpret_cast<const uint16_t*>(q16.get()) + row * d_pad32; }
  const uint16_t* dout16_row(int64_t row) const {
    return reinterpret_cast<const uint16_t*>(dout16.get()) + row * dv_pad32;
  }
  // tile: (b * heads + h) * q_tiles + qt
  const uint16_t* q16_t_tile(int64_t tile) const {
    return reinterpret_cast<const uint16_t*>(q16_t.get()) + tile * d_pad32 * kBlockQ;
  }
  const uint16_t* dout16_t_tile(int64_t tile) const {
    return reinterpret_cast<const uint16_t*>(dout16_t.get()) + tile * dv_pad32 * kBlockQ;
  }
};

// Converts q and dout and computes delta, parallel over (batch, head, query tile).
BackwardOperands prepare_backward(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                                  const std::vector<TileSpan>& key_spans);

// Per-thread scratch of the pair step; with pairs also P and dS as bf16 k-pairs over rows (B of
// dV^T, dK^T), dS as bf16 rows (A of dQ), and dV^T, dK^T accumulated per key tile.
struct BackwardScratch {
  FloatBuffer s, ds, bias, dk, dv, keep, p_pairs, ds_pairs, ds16, dk_t, dv_t;
  BackwardScratch(const AttentionGeometry& g, bool pairs)
      : s(kBlockQ * kBlockK),
        ds(kBlockQ * kBlockK),
        bias(2 * kBlockK),
        dk(kBlockK * g.d_pad),
        dv(kBlockK * g.dv_pad),
        keep(kBlockQ * kBlockK),
        p_pairs(pairs ? kBlockQ * kBlockK / 2 : 1),
        ds_pairs(pairs ? kBlockQ * kBlockK / 2 : 1),
        ds16(pairs ? kBlockQ * kBlockK / 2 : 1),
        dk_t(pairs ? g.d * kBlockK : 1),
        dv_t(pairs ? g.dv * kBlockK : 1) {}
  uint16_t* bf16(const FloatBuffer& b) const { return reinterpret_cast<uint16_t*>(b.get()); }
};

// Scores of query tile qt (rows of (b, h)) against key tile kt, masked, turned into probabilities
// with the saved lse. Leaves P (rows x round_up16(keys)) in s; used by every backward pass. With row
// parts (t.parts > 0) each part's scores are multiplied over its live columns only, the rest -inf.
void recompute_probabilities(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                             const BackwardOperands& ops, int64_t b, int64_t h, int64_t qt, int64_t kt,
                             TileState state, const TileColumns& t, float* s, float* bias);

}  // namespace cpu
}  // namespace maskattn
