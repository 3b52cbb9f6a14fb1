// Forward masked attention on tensor cores (float16 / bfloat16, sm_80+), FlashAttention-2 style.
//
// A block owns 128 query rows of one (batch, head); each of its 4 warps owns 32 rows, two row
// groups that share every K and V fragment a warp loads: twice the independent mma chains a warp
// has in flight per ldmatrix (FlashAttention-2's shape). At head size 256, and in the key-split
// kernel (few query rows: decoding), 64 rows and one group of 16 a warp. Key/value tiles stream
// through shared memory in two cp.async buffers (the next tile loads while this one
// is multiplied); S = Q K^T and O += P V run on mma.m16n8k16 with fp32 accumulators; the softmax
// is online, in base 2, in registers. Only key tiles MaskSpec can allow are visited; full tiles
// skip all mask arithmetic. Head sizes are padded to HD (64, 128 or 256) with zeros. With key
// splits (fwd_tc_key_splits), key_splits blocks share the key tiles of one query tile, each
// writing its unnormalised partial result to the workspace, merged by attention_fwd_merge_kernel.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_dropout.cuh"
#include "attention_tiles.h"
#include "attention_warp_mma.cuh"
#include "cuda_common.cuh"

namespace maskattn {
namespace attn {

template <int HD, bool kSplitKeys>
struct FwdTcConfig {
  static constexpr int kThreads = 128;
  // row groups of 16 a warp: at HD 256 two groups' o and s would not fit the registers; split
  // runs serve few query rows (decoding), where a second group would multiply padding
  static constexpr int kRowGroups = HD <= 128 && !kSplitKeys ? 2 : 1;
  static constexpr int kRows = 4 * 16 * kRowGroups;   // query rows per block
  static constexpr int kKeys = HD <= 128 ? 64 : 16;   // keys per tile; 16 at HD 256: 2 blocks per SM
  // Q fragments held across the key loop where they cost at most 64 registers (else read per tile)
  static constexpr bool kQInRegisters = kRowGroups * HD <= 128;
  static constexpr int kSmemElems = kRows * HD + 4 * kKeys * HD;  // Q, then K and V twice
  static constexpr int kSmemBytes = kSmemElems * 2;
};

// Online softmax step for one tile of base-2 scores: the running max m and sum l of the two rows
// a lane holds are updated, o is rescaled, and s becomes exp2(s - max).
template <int N_TILES, int O_TILES>
__device__ __forceinline__ void online_softmax(float (&s)[N_TILES][4], float (&o)[O_TILES][4], float (&m)[2],
                                               float (&l)[2]) {
#pragma unroll
  for (int rh = 0; rh < 2; ++rh) {
    float mx = m[rh];
#pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * rh], s[nt][2 * rh + 1]));
    // the 4 lanes of a quad hold the same row
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // nothing allowed yet: subtract 0 so exp2 sees -inf - 0, never -inf - -inf
    const float base = mx == -INFINITY ? 0.f : mx;
    const float alpha = fast_exp2(m[rh] - base);
    m[rh] = mx;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) {
      s[nt][2 * rh] = fast_exp2(s[nt][2 * rh] - base);
      s[nt][2 * rh + 1] = fast_exp2(s[nt][2 * rh + 1] - base);
      sum += s[nt][2 * rh] + s[nt][2 * rh + 1];
    }
    l[rh] = l[rh] * alpha + sum;  // per-lane partial sum; the quad adds them up at the end
#pragma unroll
    for (int ot = 0; ot < O_TILES; ++ot) {
      o[ot][2 * rh] *= alpha;
      o[ot][2 * rh + 1] *= alpha;
    }
  }
}

// Run `split` of `splits` near-equal runs of a span's tiles (empty when the span is shorter).
MA_HD TileSpan split_span(const TileSpan& span, uint32_t split, uint32_t splits) {
  const int64_t per = (span.count() + splits - 1) / splits;
  const int64_t first = span.first + split * per;
  return {first, first + per < span.end ? first + per : span.end};
}

// kSplitKeys: an instantiation of its own, so the kernel without splits keeps its registers
template <typename Elem, int HD, bool kSplitKeys>
__global__ void __launch_bounds__(FwdTcConfig<HD, kSplitKeys>::kThreads, 1)
    attention_fwd_tc_kernel(const AttentionFwdParams p, int64_t q_tiles, bool later_heavier, int key_splits_arg) {
  using Cfg = FwdTcConfig<HD, kSplitKeys>;
  constexpr int kKeyTiles = Cfg::kKeys / 8, kOutTiles = HD / 8, kSteps = HD / 16, kGroups = Cfg::kRowGroups;
  unsigned char* smem_raw = gpu::dynamic_smem;
  Elem* q_tile = reinterpret_cast<Elem*>(smem_raw);
  Elem* k_tiles = q_tile + Cfg::kRows * HD;           // [2][kKeys][HD]
  Elem* v_tiles = k_tiles + 2 * Cfg::kKeys * HD;      // [2][kKeys][HD]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const MaskSpec& mask = p.mask;

  const uint32_t key_splits = kSplitKeys ? (uint32_t)key_splits_arg : 1u;
  const TileTask task = tile_task(blockIdx.x / key_splits, p.batch, p.heads, q_tiles, later_heavier);
  const int64_t b = task.batch, h = task.head, kvh = kv_head_of(h, p.heads, p.kv_heads);
  const int64_t i0 = task.tile * Cfg::kRows;
  const int64_t k_valid = mask.k_len_of(b);
  const Elem* q_src = static_cast<const Elem*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  const Elem* k_src = static_cast<const Elem*>(p.k) + b * p.k_stride_b + kvh * p.k_stride_h;
  const Elem* v_src = static_cast<const Elem*>(p.v) + b * p.v_stride_b + kvh * p.v_stride_h;
  const int d = (int)p.head_dim, dv = (int)p.v_head_dim;

  const TileSpan span = split_span(key_tiles_for_rows(mask, b, i0, Cfg::kRows, Cfg::kKeys),
                                   blockIdx.x % key_splits, key_splits);
  auto load_kv = [&](int64_t t, int buf) {
    copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(k_tiles + buf * Cfg::kKeys * HD, k_src, p.k_stride_j,
                                                   t * Cfg::kKeys, k_valid, d);
    copy_tile_async<Cfg::kKeys, HD, Cfg::kThreads>(v_tiles + buf * Cfg::kKeys * HD, v_src, p.v_stride_j,
                                                   t * Cfg::kKeys, k_valid, dv);
  };
  copy_tile_async<Cfg::kRows, HD, Cfg::kThreads>(q_tile, q_src + i0 * p.q_stride_i, p.q_stride_i, 0,
                                                 mask.q_len_of(b) - i0, d);
  if (span.count() > 0) load_kv(span.first, 0);
  cp_async_commit();

  const int warp_row0 = warp * 16 * kGroups;  // group g: rows warp_row0 + 16 g ..
  // a lane's rows of group g and their key bands, formed where used: held across the key loop
  // they cost 12 registers a group, which the accumulators of two groups need (ptxas: spills)
  auto rows_of = [&](int g) { return LaneRows{i0 + warp_row0 + 16 * g + (lane >> 2)}; };
  float o[kGroups][kOutTiles][4];
  float m[kGroups][2], l[kGroups][2];
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    zero_fill(o[g]);
    m[g][0] = m[g][1] = -INFINITY;
    l[g][0] = l[g][1] = 0.f;
  }
  const float scale_log2 = (float)p.scale * kLog2e;
  const uint32_t q_smem = smem_address(q_tile);
  uint32_t q_frag[Cfg::kQInRegisters ? kSteps : 1][kGroups][4];

  for (int64_t t = span.first; t < span.end; ++t) {
    const int buf = (int)((t - span.first) & 1);
    cp_async_wait<0>();
    __syncthreads();  // tile t visible to all; every warp is done with the other buffer
    if constexpr (Cfg::kQInRegisters) {
      if (t == span.first) {
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
          for (int g = 0; g < kGroups; ++g) load_a_fragment<HD>(q_frag[ks][g], q_smem, warp_row0 + 16 * g, ks, lane);
      }
    }
    if (t + 1 < span.end) load_kv(t + 1, buf ^ 1);
    cp_async_commit();

    const TileState state = mask.classify_tile(b, i0, i0 + Cfg::kRows, t * Cfg::kKeys, (t + 1) * Cfg::kKeys);
    if (state == TileState::Empty) continue;
    const uint32_t k_smem = smem_address(k_tiles + buf * Cfg::kKeys * HD);
    const uint32_t v_smem = smem_address(v_tiles + buf * Cfg::kKeys * HD);

    // every k-step, zero padding past d included (see mma_abt)
    float s[kGroups][kKeyTiles][4];
#pragma unroll
    for (int g = 0; g < kGroups; ++g) zero_fill(s[g]);
    if constexpr (Cfg::kQInRegisters) {
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks) mma_abt_step_rows<Elem, HD>(s, q_frag[ks], k_smem, ks, lane);
    } else {
      mma_abt_rows<Elem, HD, kGroups, kKeyTiles, kSteps>(s, q_smem, warp_row0, k_smem, lane);
    }
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      if (state == TileState::Full) {
        scale_scores_log2(s[g], scale_log2);
      } else {
        const LaneRows rows = rows_of(g);
        const KeyRange band[2] = {mask.key_range(b, rows.row[0]), mask.key_range(b, rows.row[1])};
        scores_to_log2<true>(s[g], scale_log2, mask, b, h, rows.row, band, t * Cfg::kKeys, lane);
      }
      online_softmax(s[g], o[g], m[g], l[g]);
      // dropped after the sums: lse, row statistics and weights stay undropped
      if (p.dropout.enabled)
        apply_dropout_bits(s[g], dropout_bits<kKeyTiles>(p.dropout, b, h, rows_of(g).row, t * Cfg::kKeys, lane),
                           1.f);
    }
    mma_pb_rows<Elem, HD>(o, s, v_smem, 0, lane);
  }
  cp_async_wait<0>();  // nothing may stay in flight when the block exits

  const int64_t row_base = (b * p.heads + h) * p.q_len;
#pragma unroll
  for (int half = 0; half < 2 * kGroups; ++half) {  // rows lane/4 and lane/4 + 8 of each group
    const int g = half >> 1, rh = half & 1;
    const int64_t i = rows_of(g).row[rh];
    float total = l[g][rh];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    if constexpr (kSplitKeys) {  // this run's share, unnormalised: the merge kernel finishes the row
      if (i >= p.q_len) continue;
      // (the run's index read again here: one register fewer across the key loop)
      const int64_t run = blockIdx.x % key_splits;
      float* part = p.workspace_f32 + (run * p.batch * p.heads * p.q_len + row_base + i) * fwd_partial_floats(HD);
      if ((lane & 3) == 0) {
        part[HD] = m[g][rh];
        part[HD + 1] = total;
      }
#pragma unroll
      for (int ot = 0; ot < kOutTiles; ++ot) {
        const int col = ot * 8 + frag::acc_col(lane, 0);
        if (col < dv) {
          part[col] = o[g][ot][2 * rh];
          part[col + 1] = o[g][ot][2 * rh + 1];
        }
      }
      continue;
    }
    // l == 0 exactly when no key was allowed: zeros and -inf, never 0/0
    const float inv = total > 0.f ? (float)p.dropout.scale / total : 0.f;
    if (i >= p.q_len) continue;
    if ((lane & 3) == 0) {
      const float log_sum2 = log2f(total);
      p.lse[row_base + i] = total > 0.f ? (m[g][rh] + log_sum2) * kLn2 : -INFINITY;
      p.row_stats[2 * (row_base + i)] = total > 0.f ? m[g][rh] : -INFINITY;  // base 2, as the backward reads them
      p.row_stats[2 * (row_base + i) + 1] = total > 0.f ? log_sum2 : 0.f;
    }
    Elem* out_row = static_cast<Elem*>(p.out) + (row_base + i) * dv;
#pragma unroll
    for (int ot = 0; ot < kOutTiles; ++ot) {
      const int col = ot * 8 + frag::acc_col(lane, 0);
      if (col < dv)
        *reinterpret_cast<uint32_t*>(out_row + col) =
            pack2(o[g][ot][2 * rh] * inv, o[g][ot][2 * rh + 1] * inv, Elem());
    }
  }
}

// Finishes rows whose keys ran in key_splits blocks: the runs' maxima m_s and sums l_s (base 2)
// and unnormalised outputs o_s merge as M = max m_s, l = sum l_s 2^(m_s - M), out = sum o_s
// 2^(m_s - M) / l. One warp a row, lane s holding run s (key_splits <= 32).
template <typename Elem, int HD>
__global__ void __launch_bounds__(128) attention_fwd_merge_kernel(const AttentionFwdParams p, int key_splits) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = p.batch * p.heads * p.q_len;
  const int64_t r = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
  if (r >= rows) return;
  constexpr int kStride = (int)fwd_partial_floats(HD);
  const float* parts = p.workspace_f32 + r * kStride;
  const int64_t split_step = rows * kStride;
  const float m_s = lane < key_splits ? parts[lane * split_step + HD] : -INFINITY;
  float mx = m_s;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  // runs that allowed no key weigh 0; a row no run allowed keeps total 0 (zeros and -inf)
  const float w = m_s == -INFINITY ? 0.f : fast_exp2(m_s - mx);
  float total = lane < key_splits ? w * parts[lane * split_step + HD + 1] : 0.f;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
  const float inv = total > 0.f ? (float)p.dropout.scale / total : 0.f;
  const int dv = (int)p.v_head_dim;
  Elem* out_row = static_cast<Elem*>(p.out) + r * dv;
  for (int col0 = 0; col0 < dv; col0 += 32) {  // every lane through each step: the shuffles need all 32
    const int col = col0 + lane;
    float acc = 0.f;
    for (int s = 0; s < key_splits; ++s) {
      const float w_s = __shfl_sync(0xffffffffu, w, s);
      if (col < dv) acc += w_s * parts[s * split_step + col];
    }
    if (col < dv) out_row[col] = gpu::from_float<Elem>(acc * inv);
  }
  if (lane == 0) {
    const float log_sum2 = log2f(total);
    p.lse[r] = total > 0.f ? (mx + log_sum2) * kLn2 : -INFINITY;
    p.row_stats[2 * r] = total > 0.f ? mx : -INFINITY;  // base 2, as the backward reads them
    p.row_stats[2 * r + 1] = total > 0.f ? log_sum2 : 0.f;
  }
}

}  // namespace attn
}  // namespace maskattn
