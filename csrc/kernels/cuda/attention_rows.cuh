// Row-level helper kernels of the attention ops (any dtype, any head size):
//   * attention_bwd_rows_kernel: the per-row statistics the backward passes read;
//   * attention_probs_kernel: probabilities recomputed from q, k and the row statistics, either
//     written out (the optional weights of the forward) or dotted with dweights into delta (backward).
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_math.h"
#include "attention_tiles.h"
#include "cuda_common.cuh"

namespace maskattn {
namespace attn {

constexpr int kRowsThreads = 256;

// Workspace of the backward: m2, log_sum2 then delta, one float per (batch, head, query row) each.
// P = exp2((s2 - m2) - log_sum2) with s2 the base-2 scores: the subtraction of m2 first keeps it
// exact where the row max itself is huge (keys that all carry -1e9).
struct BwdRowStats {
  float* m2;        // row max in base 2; +inf for rows that attend to nothing, so every P is 0
  float* log_sum2;  // log2 of the row sum of exp2(s2 - m2)
  float* delta;     // rowsum(dout * out) - dlse (+ sum_j P dweights when dweights are given)
  __host__ __device__ static int64_t rows(const AttentionFwdParams& f) { return f.batch * f.heads * f.q_len; }
  static BwdRowStats in(float* workspace, const AttentionFwdParams& f) {
    return {workspace, workspace + rows(f), workspace + 2 * rows(f)};
  }
};

// (m2, log_sum2) of a row from the forward's row statistics (base 2 on CUDA), or from a caller's
// lse alone (lse * log2(e), 0) where none were given. m2 = -inf: the row attends to nothing.
__device__ __forceinline__ void row_stats2(const AttentionFwdParams& f, int64_t row, float& m2, float& log_sum2) {
  if (f.row_stats != nullptr) {
    m2 = f.row_stats[2 * row];
    log_sum2 = f.row_stats[2 * row + 1];
  } else {
    m2 = f.lse[row] * kLog2e;
    log_sum2 = 0.f;
  }
}

// One warp per row: delta = dout . out - dlse, and the row statistics in base 2. Padded rows
// (i >= q_len_of(b)) and rows that attended to nothing get m2 = +inf and delta = 0: all their
// gradients are 0.
template <typename Elem>
__global__ void __launch_bounds__(kRowsThreads, 1)
    attention_bwd_rows_kernel(const AttentionBwdParams p, BwdRowStats stats) {
  const AttentionFwdParams& f = p.fwd;
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * (kRowsThreads / 32) + (threadIdx.x >> 5);
  if (row >= BwdRowStats::rows(f)) return;
  const Elem* out = static_cast<const Elem*>(f.out) + row * f.v_head_dim;
  const Elem* dout = static_cast<const Elem*>(p.dout) + row * f.v_head_dim;
  float dot = 0.f;
  for (int64_t c = lane; c < f.v_head_dim; c += 32) dot += gpu::to_float(out[c]) * gpu::to_float(dout[c]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
  if (lane != 0) return;
  const int64_t b = row / (f.heads * f.q_len), i = row % f.q_len;
  float m2, log_sum2;
  row_stats2(f, row, m2, log_sum2);
  const bool attends = i < f.mask.q_len_of(b) && m2 != -INFINITY;
  stats.m2[row] = attends ? m2 : INFINITY;
  stats.log_sum2[row] = attends ? log_sum2 : 0.f;
  stats.delta[row] = attends ? dot - (p.dlse ? p.dlse[row] : 0.f) : 0.f;
}

// Block = 16 query rows x 16 keys of one (batch, head), head dims streamed through shared memory
// 64 at a time. kDotDweights false: weights[b, h, i, j] = P over every key (zeros where masked).
// kDotDweights true: delta[row] += sum_j P dweights over the keys the rows may attend; one thread
// per row adds, in a fixed order, so the result is deterministic.
template <typename Elem, bool kDotDweights>
__global__ void __launch_bounds__(kRowsThreads, 1)
    attention_probs_kernel(const AttentionFwdParams f, const Elem* dweights, float* delta) {
  constexpr int kEdge = 16, kChunk = 64;
  __shared__ float q_s[kEdge][kChunk + 1];
  __shared__ float k_s[kEdge][kChunk + 1];
  const int r = threadIdx.x / kEdge, c = threadIdx.x % kEdge;
  const int64_t q_tiles = ceil_div(f.q_len, kEdge);
  const TileTask task = tile_task(blockIdx.x, f.batch, f.heads, q_tiles, false);
  const int64_t b = task.batch, h = task.head, kvh = kv_head_of(h, f.heads, f.kv_heads);
  const int64_t i0 = task.tile * kEdge, i = i0 + r;
  const int64_t row = (b * f.heads + h) * f.q_len + i;
  const MaskSpec& mask = f.mask;
  const Elem* q = static_cast<const Elem*>(f.q) + b * f.q_stride_b + h * f.q_stride_h;
  const Elem* k = static_cast<const Elem*>(f.k) + b * f.k_stride_b + kvh * f.k_stride_h;
  float m2 = -INFINITY, log_sum2 = 0.f;
  if (i < f.q_len) row_stats2(f, row, m2, log_sum2);
  const float scale_log2 = (float)f.scale * kLog2e;
  const TileSpan span = kDotDweights ? key_tiles_for_rows(mask, b, i0, kEdge, kEdge)
                                     : TileSpan{0, ceil_div(f.k_len, kEdge)};
  float acc = 0.f;
  for (int64_t t = span.first; t < span.end; ++t) {
    const int64_t j0 = t * kEdge, j = j0 + c;
    const TileState state = mask.classify_tile(b, i0, i0 + kEdge, j0, j0 + kEdge);
    float prob = 0.f;
    if (state != TileState::Empty) {  // uniform over the block: the barriers below are safe
      float s = 0.f;
      for (int64_t d0 = 0; d0 < f.head_dim; d0 += kChunk) {
        __syncthreads();
        for (int x = threadIdx.x; x < kEdge * kChunk; x += kRowsThreads) {
          const int rr = x / kChunk, dd = x % kChunk;
          const bool in_d = d0 + dd < f.head_dim;
          q_s[rr][dd] = in_d && i0 + rr < f.q_len ? gpu::to_float(q[(i0 + rr) * f.q_stride_i + d0 + dd]) : 0.f;
          k_s[rr][dd] = in_d && j0 + rr < f.k_len ? gpu::to_float(k[(j0 + rr) * f.k_stride_j + d0 + dd]) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int dd = 0; dd < kChunk; ++dd) s += q_s[r][dd] * k_s[c][dd];
      }
      // m2 == -inf: the row attends to nothing and exp2 would see -inf - -inf; base-2 scores
      // rounded as the forward's, so s2 - m2 is exact where both are huge
      if (i < f.q_len && j < f.k_len && m2 != -INFINITY && mask.allowed(b, h, i, j))
        prob = exp2f((s * scale_log2 + mask.additive_log2(b, h, i, j) - m2) - log_sum2);
    }
    if constexpr (kDotDweights) {
      if (prob != 0.f) acc += prob * gpu::to_float(dweights[row * f.k_len + j]);
    } else if (i < f.q_len && j < f.k_len) {
      static_cast<Elem*>(f.weights)[row * f.k_len + j] = gpu::from_float<Elem>(prob);
    }
  }
  if constexpr (kDotDweights) {
    // the 16 threads of a row are 16 adjacent lanes of one warp
#pragma unroll
    for (int off = kEdge / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (c == 0 && i < f.q_len && i < mask.q_len_of(b) && m2 != -INFINITY) delta[row] += acc;
  }
}

}  // namespace attn
}  // namespace maskattn
