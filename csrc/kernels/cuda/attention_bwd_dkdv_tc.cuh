// Backward, dk/dv pass, on tensor cores (float16 / bfloat16, sm_80+).
//
// A block owns 64 keys of one (batch, kv head) and keeps K and V in shared memory. It walks every
// query head of the group and every query tile that may attend those keys (Q, dO and the row
// statistics double-buffered by cp.async) and works in the transposed orientation: with keys as
// mma rows, S^T = K Q^T and dP^T = V dO^T give P^T and dS^T, and dV += P^T dO, dK += dS^T Q
// accumulate in registers. Warp w owns keys 16*(w % 4).. and, at HD 256, half of the columns
// (w / 4). Fixed order, no atomics: deterministic.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_dropout.cuh"
#include "attention_tiles.h"
#include "attention_warp_mma.cuh"
#include "cuda_common.cuh"

namespace maskattn {
namespace attn {

template <int HD>
struct DkdvTcConfig {
  static constexpr int kColSplit = HD == 256 ? 2 : 1;  // keeps dK + dV at 128 registers a thread
  static constexpr int kThreads = 128 * kColSplit;
  static constexpr int kKeys = 64;                     // 4 warp rows of 16 keys
  static constexpr int kRows = HD <= 128 ? 32 : 16;  // query rows per step: S^T, dP^T stay small
  static constexpr int kCols = HD / kColSplit;         // dK / dV columns per warp
  static constexpr int kSmemElems = 2 * kKeys * HD + 4 * kRows * HD;  // K, V, then Q and dO twice
  static constexpr int kSmemBytes = kSmemElems * 2 + 6 * kRows * (int)sizeof(float);  // + m2, log_sum2, delta twice
};

// In the transposed orientation (mma rows = this warp's keys key[0], key[1]; columns = query rows
// i0..): S^T becomes P^T = exp2((S - m2) - log_sum2) and dP^T becomes dS^T = P (dP + dweights - delta).
// Partial tiles (kMasked) zero the probabilities MaskSpec refuses and add the additive mask.
// With dropout dP is dropped and scaled first, and so is P^T once dS^T used it (it feeds dV).
template <bool kMasked, typename Elem, int N_TILES>
__device__ __forceinline__ void probs_and_grads_by_key(float (&st)[N_TILES][4], float (&dpt)[N_TILES][4],
                                                       float scale_log2, const MaskSpec& mask, int64_t b, int64_t h,
                                                       int64_t i0, const int64_t (&key)[2], const float* m2,
                                                       const float* log_sum2, const float* delta,
                                                       uint32_t keep_bits, float kept_scale, const Elem* dweights_rows,
                                                       const AttentionFwdParams& f, int lane) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int col = nt * 8 + frag::acc_col(lane, c);
      const int64_t i = i0 + col;
      KeyRange band{0, 0};
      if constexpr (kMasked) band = mask.key_range(b, i);
#pragma unroll
      for (int rh = 0; rh < 2; ++rh) {
        const int r = 2 * rh + c;
        const int64_t j = key[rh];
        float v = st[nt][r] * scale_log2;
        bool ok = true;
        if constexpr (kMasked) {
          ok = j >= band.begin && j < band.end;
          if (ok && mask.has_elementwise()) {
            ok = mask.allowed_in_range(b, h, i, j);
            if (ok) v += mask.additive_log2(b, h, i, j);
          }
        }
        const float prob = ok ? fast_exp2((v - m2[col]) - log_sum2[col]) : 0.f;
        const float kept = f.dropout.enabled ? ((keep_bits >> (4 * nt + r)) & 1u ? kept_scale : 0.f) : 1.f;
        float grad = dpt[nt][r] * kept;
        if (dweights_rows != nullptr && i < f.q_len && j < f.k_len)
          grad += gpu::to_float(dweights_rows[i * f.k_len + j]);
        st[nt][r] = prob * kept;
        dpt[nt][r] = prob * (grad - delta[col]);
      }
    }
  }
}

template <typename Elem, int HD>
__global__ void __launch_bounds__(DkdvTcConfig<HD>::kThreads, 1)
    attention_bwd_dkdv_tc_kernel(const AttentionBwdParams p, const float* m2_rows, const float* log_sum2_rows,
                                 const float* delta_rows, int64_t k_tiles, bool later_heavier) {
  using Cfg = DkdvTcConfig<HD>;
  constexpr int kRowTiles = Cfg::kRows / 8, kColTiles = Cfg::kCols / 8, kSteps = HD / 16;
  unsigned char* smem_raw = gpu::dynamic_smem;
  Elem* k_tile = reinterpret_cast<Elem*>(smem_raw);
  Elem* v_tile = k_tile + Cfg::kKeys * HD;
  Elem* q_tiles = v_tile + Cfg::kKeys * HD;            // [2][kRows][HD]
  Elem* do_tiles = q_tiles + 2 * Cfg::kRows * HD;      // [2][kRows][HD]
  float* m2_s = reinterpret_cast<float*>(smem_raw + Cfg::kSmemElems * 2);  // [2][kRows]
  float* log_sum2_s = m2_s + 2 * Cfg::kRows;                                // [2][kRows]
  float* delta_s = log_sum2_s + 2 * Cfg::kRows;                             // [2][kRows]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttentionFwdParams& f = p.fwd;
  const MaskSpec& mask = f.mask;

  const TileTask task = tile_task(blockIdx.x, f.batch, f.kv_heads, k_tiles, later_heavier);
  const int64_t b = task.batch, kvh = task.head, group = head_group_size(f.heads, f.kv_heads);
  const int64_t j0 = task.tile * Cfg::kKeys;
  const int d = (int)f.head_dim, dv = (int)f.v_head_dim;
  const TileSpan span = query_tiles_for_keys(mask, b, j0, Cfg::kKeys, Cfg::kRows);
  const int64_t q_steps = span.count(), steps = group * q_steps;  // (query head, query tile) pairs

  const int64_t k_rows_left = mask.k_len_of(b) - j0;
  copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(
      k_tile, static_cast<const Elem*>(f.k) + b * f.k_stride_b + kvh * f.k_stride_h + j0 * f.k_stride_j,
      f.k_stride_j, 0, k_rows_left, d);
  copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(
      v_tile, static_cast<const Elem*>(f.v) + b * f.v_stride_b + kvh * f.v_stride_h + j0 * f.v_stride_j,
      f.v_stride_j, 0, k_rows_left, dv);
  // steps run over (query head, query tile) pairs, tiles fastest; counters avoid 64-bit division
  int64_t cur_head = kvh * group, cur_tile = span.first, next_head = cur_head, next_tile = cur_tile;
  auto advance = [&](int64_t& head, int64_t& tile) {
    if (++tile == span.end) {
      tile = span.first;
      ++head;
    }
  };
  auto load_rows = [&](int64_t h, int64_t tile, int buf) {
    const int64_t i0 = tile * Cfg::kRows, row_base = (b * f.heads + h) * f.q_len;
    const int64_t rows_left = mask.q_len_of(b) - i0;
    copy_tile_async<Cfg::kRows, HD, Cfg::kThreads>(
        q_tiles + buf * Cfg::kRows * HD,
        static_cast<const Elem*>(f.q) + b * f.q_stride_b + h * f.q_stride_h + i0 * f.q_stride_i, f.q_stride_i, 0,
        rows_left, d);
    copy_tile_async<Cfg::kRows, HD, Cfg::kThreads>(do_tiles + buf * Cfg::kRows * HD,
                                                   static_cast<const Elem*>(p.dout) + (row_base + i0) * dv, dv, 0,
                                                   rows_left, dv);
    for (int r = threadIdx.x; r < Cfg::kRows; r += Cfg::kThreads) {
      const bool exists = i0 + r < f.q_len;
      m2_s[buf * Cfg::kRows + r] = exists ? m2_rows[row_base + i0 + r] : INFINITY;  // +inf: P = 0
      log_sum2_s[buf * Cfg::kRows + r] = exists ? log_sum2_rows[row_base + i0 + r] : 0.f;
      delta_s[buf * Cfg::kRows + r] = exists ? delta_rows[row_base + i0 + r] : 0.f;
    }
  };
  if (steps > 0) load_rows(next_head, next_tile, 0);
  advance(next_head, next_tile);
  cp_async_commit();

  const int key_group = warp & 3, col0 = (warp >> 2) * Cfg::kCols;
  const int64_t key[2] = {j0 + key_group * 16 + (lane >> 2), j0 + key_group * 16 + (lane >> 2) + 8};
  const float scale_log2 = (float)f.scale * kLog2e;
  const uint32_t k_smem = smem_address(k_tile), v_smem = smem_address(v_tile);
  float dk[kColTiles][4], dvacc[kColTiles][4];
  zero_fill(dk);
  zero_fill(dvacc);

  for (int64_t step = 0; step < steps; ++step) {
    const int buf = (int)(step & 1);
    cp_async_wait<0>();
    __syncthreads();  // step's rows visible to all; every warp is done with the other buffer
    if (step + 1 < steps) load_rows(next_head, next_tile, buf ^ 1);
    cp_async_commit();
    const int64_t h = cur_head, i0 = cur_tile * Cfg::kRows;
    advance(cur_head, cur_tile);
    advance(next_head, next_tile);
    const TileState state = mask.classify_tile(b, i0, i0 + Cfg::kRows, j0, j0 + Cfg::kKeys);
    if (state == TileState::Empty) continue;
    const uint32_t q_smem = smem_address(q_tiles + buf * Cfg::kRows * HD);
    const uint32_t do_smem = smem_address(do_tiles + buf * Cfg::kRows * HD);
    const float* m2 = m2_s + buf * Cfg::kRows;
    const float* log_sum2 = log_sum2_s + buf * Cfg::kRows;
    const float* delta = delta_s + buf * Cfg::kRows;
    const Elem* dweights_rows =
        p.dweights ? static_cast<const Elem*>(p.dweights) + (b * f.heads + h) * f.q_len * f.k_len : nullptr;

    float st[kRowTiles][4], dpt[kRowTiles][4];  // S^T and dP^T: rows = this warp's keys, cols = queries
    zero_fill(st);
    zero_fill(dpt);
    mma_abt<Elem, HD, kRowTiles, kSteps>(st, k_smem, key_group * 16, q_smem, lane);
    mma_abt<Elem, HD, kRowTiles, kSteps>(dpt, v_smem, key_group * 16, do_smem, lane);
    const uint32_t keep_bits = f.dropout.enabled ? dropout_bits_by_key<kRowTiles>(f.dropout, b, h, i0, key, lane) : 0u;
    const float kept_scale = (float)f.dropout.scale;
    if (state == TileState::Full)
      probs_and_grads_by_key<false>(st, dpt, scale_log2, mask, b, h, i0, key, m2, log_sum2, delta, keep_bits,
                                    kept_scale, dweights_rows, f, lane);
    else
      probs_and_grads_by_key<true>(st, dpt, scale_log2, mask, b, h, i0, key, m2, log_sum2, delta, keep_bits,
                                   kept_scale, dweights_rows, f, lane);
    mma_pb<Elem, HD>(dvacc, st, do_smem, col0, lane);  // dV += P^T dO
    mma_pb<Elem, HD>(dk, dpt, q_smem, col0, lane);      // dK += dS^T Q
  }
  cp_async_wait<0>();

  const float scale = (float)f.scale;
  const int64_t key_base = (b * f.kv_heads + kvh) * f.k_len;
#pragma unroll
  for (int rh = 0; rh < 2; ++rh) {
    if (key[rh] >= f.k_len) continue;
    Elem* dk_row = static_cast<Elem*>(p.dk) + (key_base + key[rh]) * d;
    Elem* dv_row = static_cast<Elem*>(p.dv) + (key_base + key[rh]) * dv;
#pragma unroll
    for (int ot = 0; ot < kColTiles; ++ot) {
      const int col = col0 + ot * 8 + frag::acc_col(lane, 0);
      if (col < d)
        *reinterpret_cast<uint32_t*>(dk_row + col) =
            pack2(dk[ot][2 * rh] * scale, dk[ot][2 * rh + 1] * scale, Elem());
      if (col < dv)
        *reinterpret_cast<uint32_t*>(dv_row + col) = pack2(dvacc[ot][2 * rh], dvacc[ot][2 * rh + 1], Elem());
    }
  }
}

}  // namespace attn
}  // namespace maskattn
