// Shared pieces of the fp32-math backward: operands converted once, and the step on one
// (query tile, key tile) pair that every schedule runs.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_layout.h"
#include "attention_pack.h"
#include "attention_schedule.h"

namespace maskattn {
namespace cpu {

// Per (batch, head, query row), in fp32:
//   q     (d_pad)  scale * q, the A operand of S and the B operand of dK
//   dout  (dv_pad) the A operand of dP and the B operand of dV
//   delta          rowsum(dout * out) - dlse + rowsum(P * dweights): dS = P (dP + dweights - delta)
struct BackwardOperands {
  FloatBuffer q, dout, delta;
  const float* q_row(const AttentionGeometry& g, int64_t row) const { return q.get() + row * g.d_pad; }
  const float* dout_row(const AttentionGeometry& g, int64_t row) const { return dout.get() + row * g.dv_pad; }
};

// Converts q and dout and computes delta, parallel over (batch, head, query tile).
BackwardOperands prepare_backward(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                                  const std::vector<TileSpan>& key_spans);

// Per-thread scratch of the pair step.
struct BackwardScratch {
  FloatBuffer s, ds, bias, dk, dv, keep;
  explicit BackwardScratch(const AttentionGeometry& g)
      : s(kBlockQ * kBlockK),
        ds(kBlockQ * kBlockK),
        bias(2 * kBlockK),
        dk(kBlockK * g.d_pad),
        dv(kBlockK * g.dv_pad),
        keep(kBlockQ * kBlockK) {}
};

// Scores of query tile qt (rows of (b, h)) against key tile kt, masked, turned into probabilities
// with the saved lse. Leaves P (rows x round_up16(keys)) in s; used by every backward pass.
void recompute_probabilities(const AttentionBwdParams& bp, const AttentionGeometry& g, const PackedKeys& keys,
                             const float* q_tile, int64_t b, int64_t h, int64_t qt, int64_t kt, TileState state,
                             float* s, float* bias);

}  // namespace cpu
}  // namespace maskattn
