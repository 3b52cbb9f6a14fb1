// Backward, dq pass, on tensor cores (float16 / bfloat16, sm_80+).
//
// A block owns 128 query rows of one (batch, head), 32 per warp in two row groups of 16 that
// share every K and V fragment the warp loads (64 rows, one group, at head sizes 64 and 256), and walks
// the key tiles those rows may attend (double-buffered cp.async, as the forward). Per tile it recomputes
// P = exp2((S - m2) - log_sum2), dP = dO V^T (dropped and scaled with dropout, + dweights),
// dS = P (dP - delta) and accumulates dQ += dS K in registers; dq is written once at the end, so
// the pass is deterministic without atomics. This pass also writes the additive mask's gradient.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_dropout.cuh"
#include "attention_tiles.h"
#include "attention_warp_mma.cuh"
#include "cuda_common.cuh"
#include "mask_grad_store.cuh"

namespace maskattn {
namespace attn {

template <int HD>
struct DqTcConfig {
  static constexpr int kThreads = 128;
  // 16-row groups a warp, as the forward's; at HD 64 the second group bought 8% fewer instructions
  // per mma for 10 spilled registers reloaded per tile (SASS, sm_90a), so one group there
  static constexpr int kRowGroups = HD == 128 ? 2 : 1;
  static constexpr int kRows = 4 * 16 * kRowGroups;      // query rows per block
  static constexpr int kKeys = HD <= 64 ? 64 : (HD <= 128 ? 32 : 16);  // keys per tile, fewer as dQ grows
  static constexpr int kSmemElems = 2 * kRows * HD + 4 * kKeys * HD;  // Q, dO, then K and V twice
  static constexpr int kSmemBytes = kSmemElems * 2;
};

// dS = P (dP + dweights - delta) over a warp's tile, in place of the masked base-2 scores s.
template <typename Elem, int N_TILES>
__device__ __forceinline__ void scores_to_grad(float (&s)[N_TILES][4], const float (&dp)[N_TILES][4],
                                               const float* m2, const float* log_sum2, const float* delta,
                                               const Elem* dweights_rows, const int64_t (&row)[2], int64_t j0,
                                               const AttentionFwdParams& f, int lane) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int rh = r >> 1;
      const float prob = fast_exp2((s[nt][r] - m2[8 * rh]) - log_sum2[8 * rh]);
      float grad = dp[nt][r];
      if (dweights_rows != nullptr) {
        const int64_t i = row[rh], j = j0 + nt * 8 + frag::acc_col(lane, r);
        if (i < f.q_len && j < f.k_len) grad += gpu::to_float(dweights_rows[i * f.k_len + j]);
      }
      s[nt][r] = prob * (grad - delta[8 * rh]);
    }
  }
}

template <typename Elem, int HD>
__global__ void __launch_bounds__(DqTcConfig<HD>::kThreads, 1)
    attention_bwd_dq_tc_kernel(const AttentionBwdParams p, const float* m2_rows, const float* log_sum2_rows,
                               const float* delta_rows, int64_t q_tiles, bool later_heavier) {
  using Cfg = DqTcConfig<HD>;
  constexpr int kKeyTiles = Cfg::kKeys / 8, kOutTiles = HD / 8, kSteps = HD / 16, kGroups = Cfg::kRowGroups;
  unsigned char* smem_raw = gpu::dynamic_smem;
  Elem* q_tile = reinterpret_cast<Elem*>(smem_raw);
  Elem* do_tile = q_tile + Cfg::kRows * HD;
  Elem* k_tiles = do_tile + Cfg::kRows * HD;       // [2][kKeys][HD]
  Elem* v_tiles = k_tiles + 2 * Cfg::kKeys * HD;   // [2][kKeys][HD]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttentionFwdParams& f = p.fwd;
  const MaskSpec& mask = f.mask;

  const TileTask task = tile_task(blockIdx.x, f.batch, f.heads, q_tiles, later_heavier);
  const int64_t b = task.batch, h = task.head, kvh = kv_head_of(h, f.heads, f.kv_heads);
  const int64_t i0 = task.tile * Cfg::kRows;
  const int64_t k_valid = mask.k_len_of(b), rows_left = mask.q_len_of(b) - i0;
  const int64_t row_base = (b * f.heads + h) * f.q_len;  // first row of (b, h) in contiguous outputs
  const Elem* q_src = static_cast<const Elem*>(f.q) + b * f.q_stride_b + h * f.q_stride_h + i0 * f.q_stride_i;
  const Elem* do_src = static_cast<const Elem*>(p.dout) + (row_base + i0) * f.v_head_dim;
  const Elem* k_src = static_cast<const Elem*>(f.k) + b * f.k_stride_b + kvh * f.k_stride_h;
  const Elem* v_src = static_cast<const Elem*>(f.v) + b * f.v_stride_b + kvh * f.v_stride_h;
  const Elem* dweights_rows =
      p.dweights ? static_cast<const Elem*>(p.dweights) + row_base * f.k_len : nullptr;
  const int d = (int)f.head_dim, dv = (int)f.v_head_dim;

  const TileSpan span = key_tiles_for_rows(mask, b, i0, Cfg::kRows, Cfg::kKeys);
  auto load_kv = [&](int64_t t, int buf) {
    copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(k_tiles + buf * Cfg::kKeys * HD, k_src, f.k_stride_j,
                                                   t * Cfg::kKeys, k_valid, d);
    copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(v_tiles + buf * Cfg::kKeys * HD, v_src, f.v_stride_j,
                                                   t * Cfg::kKeys, k_valid, dv);
  };
  copy_tile_async<Cfg::kRows, HD, Cfg::kThreads>(q_tile, q_src, f.q_stride_i, 0, rows_left, d);
  copy_tile_async<Cfg::kRows, HD, Cfg::kThreads>(do_tile, do_src, f.v_head_dim, 0, rows_left, dv);
  if (span.count() > 0) load_kv(span.first, 0);
  cp_async_commit();

  const int warp_row0 = warp * 16 * kGroups;  // group g: rows warp_row0 + 16 g ..
  // a lane's rows of group g (lane/4 and lane/4 + 8 of the group), formed where used
  auto row_in_tile = [&](int g) { return warp_row0 + 16 * g + (lane >> 2); };
  auto rows_of = [&](int g) { return LaneRows{i0 + row_in_tile(g)}; };
  // the row statistics wait in shared memory, read once per tile: fewer registers held for the
  // whole kernel (+inf for m2 past q_len: probabilities 0)
  __shared__ float m2_s[Cfg::kRows], log_sum2_s[Cfg::kRows], delta_s[Cfg::kRows];
  for (int r = threadIdx.x; r < Cfg::kRows; r += Cfg::kThreads) {  // visible after the loop's barrier
    const bool exists = i0 + r < f.q_len;
    m2_s[r] = exists ? m2_rows[row_base + i0 + r] : INFINITY;
    log_sum2_s[r] = exists ? log_sum2_rows[row_base + i0 + r] : 0.f;
    delta_s[r] = exists ? delta_rows[row_base + i0 + r] : 0.f;
  }
  const float scale_log2 = (float)f.scale * kLog2e;
  const uint32_t q_smem = smem_address(q_tile), do_smem = smem_address(do_tile);

  float dq[kGroups][kOutTiles][4];
#pragma unroll
  for (int g = 0; g < kGroups; ++g) zero_fill(dq[g]);
  for (int64_t t = span.first; t < span.end; ++t) {
    const int buf = (int)((t - span.first) & 1);
    cp_async_wait<0>();
    __syncthreads();  // tile t visible to all; every warp is done with the other buffer
    if (t + 1 < span.end) load_kv(t + 1, buf ^ 1);
    cp_async_commit();

    const TileState state = mask.classify_tile(b, i0, i0 + Cfg::kRows, t * Cfg::kKeys, (t + 1) * Cfg::kKeys);
    if (state == TileState::Empty) continue;
    const uint32_t k_smem = smem_address(k_tiles + buf * Cfg::kKeys * HD);
    const uint32_t v_smem = smem_address(v_tiles + buf * Cfg::kKeys * HD);
    float s[kGroups][kKeyTiles][4], dp[kGroups][kKeyTiles][4];
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      zero_fill(s[g]);
      zero_fill(dp[g]);
    }
    mma_abt_rows<Elem, HD, kGroups, kKeyTiles, kSteps>(s, q_smem, warp_row0, k_smem, lane);
    mma_abt_rows<Elem, HD, kGroups, kKeyTiles, kSteps>(dp, do_smem, warp_row0, v_smem, lane);
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const LaneRows rows = rows_of(g);
      if (state == TileState::Full) {
        scale_scores_log2(s[g], scale_log2);
      } else {
        const KeyRange band[2] = {mask.key_range(b, rows.row[0]), mask.key_range(b, rows.row[1])};
        scores_to_log2<true>(s[g], scale_log2, mask, b, h, rows.row, band, t * Cfg::kKeys, lane);
      }
      if (f.dropout.enabled)  // dP' = keep / (1 - p) dO V^T; P itself stays undropped in dS = P (dP' - delta)
        apply_dropout_bits(dp[g], dropout_bits<kKeyTiles>(f.dropout, b, h, rows.row, t * Cfg::kKeys, lane),
                           (float)f.dropout.scale);
      // the statistics of the group's rows: [0] for lane/4, [8] for lane/4 + 8
      const int r0 = row_in_tile(g);
      scores_to_grad(s[g], dp[g], m2_s + r0, log_sum2_s + r0, delta_s + r0, dweights_rows, rows.row,
                     t * Cfg::kKeys, f, lane);
      if (p.mask_grad.wanted())
        gpu::add_mask_grad_fragment(p.mask_grad, s[g], b, h, rows.row, t * Cfg::kKeys, f.q_len, f.k_len, lane);
    }
    mma_pb_rows<Elem, HD>(dq, s, k_smem, 0, lane);  // K read transposed: [key][d] is the B of dS K
  }
  cp_async_wait<0>();

  const float scale = (float)f.scale;
#pragma unroll
  for (int half = 0; half < 2 * kGroups; ++half) {  // rows lane/4 and lane/4 + 8 of each group
    const int g = half >> 1, rh = half & 1;
    const int64_t i = rows_of(g).row[rh];
    if (i >= f.q_len) continue;
    Elem* dq_row = static_cast<Elem*>(p.dq) + (row_base + i) * d;
#pragma unroll
    for (int ot = 0; ot < kOutTiles; ++ot) {
      const int col = ot * 8 + frag::acc_col(lane, 0);
      if (col < d)
        *reinterpret_cast<uint32_t*>(dq_row + col) =
            pack2(dq[g][ot][2 * rh] * scale, dq[g][ot][2 * rh + 1] * scale, Elem());
    }
  }
}

}  // namespace attn
}  // namespace maskattn
