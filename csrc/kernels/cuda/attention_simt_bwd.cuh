// Backward masked attention without tensor cores (float32, and the fallback for float16 /
// bfloat16 where the tensor-core kernels do not apply); fp32 math, any head size.
// Same split as the tensor-core backward: a dq pass over query tiles and a dk/dv pass over key
// tiles, each accumulating in shared memory and writing once, so both are deterministic.
#pragma once
#include <cstdint>

#include "attention_dropout.cuh"
#include "attention_rows.cuh"
#include "attention_simt_fwd.cuh"
#include "mask_grad_store.cuh"

namespace maskattn {
namespace attn {

// P (dropped and scaled with dropout: the factor of dV) and dS of query row i (local r) and key j
// (local c) from rows already in shared memory. Full tiles skip the mask; refused pairs and rows
// that attend to nothing give P = dS = 0.
template <typename Elem>
__device__ __forceinline__ void simt_prob_and_grad(float& prob, float& grad, const AttentionBwdParams& p,
                                                   TileState state, int64_t b, int64_t h, int64_t i, int64_t j,
                                                   const float* q_row, const float* k_row, const float* do_row,
                                                   const float* v_row, float m2, float log_sum2, float delta,
                                                   const Elem* dweights) {
  const AttentionFwdParams& f = p.fwd;
  const MaskSpec& mask = f.mask;
  prob = 0.f;
  grad = 0.f;
  if (state == TileState::Partial && !mask.allowed(b, h, i, j)) return;
  const float scale_log2 = (float)f.scale * kLog2e;  // the forward's constant: P is the one lse normalised
  float s = dot_rows(q_row, k_row, (int)f.head_dim) * scale_log2;
  if (state == TileState::Partial) s += mask.additive_log2(b, h, i, j);
  prob = exp2f((s - m2) - log_sum2);  // m2 = +inf for rows that attend to nothing: exactly 0
  if (prob == 0.f) return;
  const float kept = f.dropout.enabled ? dropout_factor(f.dropout, b, h, i, j, (float)f.dropout.scale) : 1.f;
  float dp = dot_rows(do_row, v_row, (int)f.v_head_dim) * kept;
  if (dweights != nullptr && i < f.q_len && j < f.k_len)
    dp += gpu::to_float(dweights[((b * f.heads + h) * f.q_len + i) * f.k_len + j]);
  grad = prob * (dp - delta);
  prob *= kept;
}

// Row statistics of rows [i0, i0 + edge) of (b, h) into shared memory (+inf / 0 past q_len).
__device__ __forceinline__ void load_row_stats(float* m2_s, float* log_sum2_s, float* delta_s, BwdRowStats stats,
                                               int64_t row_base, int64_t i0, int64_t q_len, int edge) {
  for (int r = threadIdx.x; r < edge; r += blockDim.x) {
    const bool exists = i0 + r < q_len;
    m2_s[r] = exists ? stats.m2[row_base + i0 + r] : INFINITY;
    log_sum2_s[r] = exists ? stats.log_sum2[row_base + i0 + r] : 0.f;
    delta_s[r] = exists ? stats.delta[row_base + i0 + r] : 0.f;
  }
}

template <typename Elem>
__global__ void __launch_bounds__(kSimtThreads, 1)
    attention_bwd_dq_simt_kernel(const AttentionBwdParams p, BwdRowStats stats, SimtShape sh, int64_t q_tiles,
                                 bool later_heavier) {
  float* smem_f = reinterpret_cast<float*>(gpu::dynamic_smem);
  const int e = sh.edge, ld = sh.ld_qk, ldv = sh.ld_v, lds = e + 1;
  float* q_s = smem_f;
  float* dq_s = q_s + e * ld;
  float* k_s = dq_s + e * ld;
  float* do_s = k_s + e * ld;
  float* v_s = do_s + e * ldv;
  float* ds_s = v_s + e * ldv;
  float* m2_s = ds_s + e * lds;
  float* log_sum2_s = m2_s + e;
  float* delta_s = log_sum2_s + e;
  const AttentionFwdParams& f = p.fwd;
  const MaskSpec& mask = f.mask;
  const TileTask task = tile_task(blockIdx.x, f.batch, f.heads, q_tiles, later_heavier);
  const int64_t b = task.batch, h = task.head, kvh = kv_head_of(h, f.heads, f.kv_heads), i0 = task.tile * e;
  const int d = (int)f.head_dim, dv = (int)f.v_head_dim;
  const int64_t row_base = (b * f.heads + h) * f.q_len;
  const Elem* k = static_cast<const Elem*>(f.k) + b * f.k_stride_b + kvh * f.k_stride_h;
  const Elem* v = static_cast<const Elem*>(f.v) + b * f.v_stride_b + kvh * f.v_stride_h;
  const Elem* dweights = static_cast<const Elem*>(p.dweights);

  load_rows_f32(q_s, ld, static_cast<const Elem*>(f.q) + b * f.q_stride_b + h * f.q_stride_h, f.q_stride_i, i0,
                mask.q_len_of(b), e, d);
  load_rows_f32(do_s, ldv, static_cast<const Elem*>(p.dout) + row_base * dv, dv, i0, mask.q_len_of(b), e, dv);
  for (int x = threadIdx.x; x < e * d; x += kSimtThreads) dq_s[(x / d) * ld + x % d] = 0.f;
  load_row_stats(m2_s, log_sum2_s, delta_s, stats, row_base, i0, f.q_len, e);

  const TileSpan span = key_tiles_for_rows(mask, b, i0, e, e);
  for (int64_t t = span.first; t < span.end; ++t) {
    const int64_t j0 = t * e;
    const TileState state = mask.classify_tile(b, i0, i0 + e, j0, j0 + e);
    if (state == TileState::Empty) continue;
    __syncthreads();
    load_rows_f32(k_s, ld, k, f.k_stride_j, j0, mask.k_len_of(b), e, d);
    load_rows_f32(v_s, ldv, v, f.v_stride_j, j0, mask.k_len_of(b), e, dv);
    __syncthreads();
    for (int x = threadIdx.x; x < e * e; x += kSimtThreads) {
      const int r = x / e, c = x % e;
      float prob, grad;
      simt_prob_and_grad(prob, grad, p, state, b, h, i0 + r, j0 + c, q_s + r * ld, k_s + c * ld, do_s + r * ldv,
                         v_s + c * ldv, m2_s[r], log_sum2_s[r], delta_s[r], dweights);
      ds_s[r * lds + c] = grad;
      // this pass visits each (row, key) once: it writes the additive mask's gradient
      if (p.mask_grad.wanted() && i0 + r < f.q_len && j0 + c < f.k_len)
        gpu::add_mask_grad(p.mask_grad, b, h, i0 + r, j0 + c, grad);
    }
    __syncthreads();
    for (int x = threadIdx.x; x < e * d; x += kSimtThreads) {
      const int r = x / d, c = x % d;
      float acc = 0.f;
      for (int kk = 0; kk < e; ++kk) acc += ds_s[r * lds + kk] * k_s[kk * ld + c];
      dq_s[r * ld + c] += acc;
    }
  }
  __syncthreads();
  for (int x = threadIdx.x; x < e * d; x += kSimtThreads) {
    const int r = x / d, c = x % d;
    if (i0 + r < f.q_len)
      static_cast<Elem*>(p.dq)[(row_base + i0 + r) * d + c] =
          gpu::from_float<Elem>(dq_s[r * ld + c] * (float)f.scale);
  }
}

template <typename Elem>
__global__ void __launch_bounds__(kSimtThreads, 1)
    attention_bwd_dkdv_simt_kernel(const AttentionBwdParams p, BwdRowStats stats, SimtShape sh, int64_t k_tiles,
                                   bool later_heavier) {
  float* smem_f = reinterpret_cast<float*>(gpu::dynamic_smem);
  const int e = sh.edge, ld = sh.ld_qk, ldv = sh.ld_v, lds = e + 1;
  float* k_s = smem_f;
  float* dk_s = k_s + e * ld;
  float* q_s = dk_s + e * ld;
  float* v_s = q_s + e * ld;
  float* dv_s = v_s + e * ldv;
  float* do_s = dv_s + e * ldv;
  float* p_s = do_s + e * ldv;
  float* ds_s = p_s + e * lds;
  float* m2_s = ds_s + e * lds;
  float* log_sum2_s = m2_s + e;
  float* delta_s = log_sum2_s + e;
  const AttentionFwdParams& f = p.fwd;
  const MaskSpec& mask = f.mask;
  const TileTask task = tile_task(blockIdx.x, f.batch, f.kv_heads, k_tiles, later_heavier);
  const int64_t b = task.batch, kvh = task.head, group = head_group_size(f.heads, f.kv_heads), j0 = task.tile * e;
  const int d = (int)f.head_dim, dv = (int)f.v_head_dim;
  const Elem* dweights = static_cast<const Elem*>(p.dweights);

  load_rows_f32(k_s, ld, static_cast<const Elem*>(f.k) + b * f.k_stride_b + kvh * f.k_stride_h, f.k_stride_j, j0,
                mask.k_len_of(b), e, d);
  load_rows_f32(v_s, ldv, static_cast<const Elem*>(f.v) + b * f.v_stride_b + kvh * f.v_stride_h, f.v_stride_j, j0,
                mask.k_len_of(b), e, dv);
  for (int x = threadIdx.x; x < e * d; x += kSimtThreads) dk_s[(x / d) * ld + x % d] = 0.f;
  for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) dv_s[(x / dv) * ldv + x % dv] = 0.f;

  const TileSpan span = query_tiles_for_keys(mask, b, j0, e, e);
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const int64_t row_base = (b * f.heads + h) * f.q_len;
    for (int64_t t = span.first; t < span.end; ++t) {
      const int64_t i0 = t * e;
      const TileState state = mask.classify_tile(b, i0, i0 + e, j0, j0 + e);
      if (state == TileState::Empty) continue;
      __syncthreads();
      load_rows_f32(q_s, ld, static_cast<const Elem*>(f.q) + b * f.q_stride_b + h * f.q_stride_h, f.q_stride_i,
                    i0, mask.q_len_of(b), e, d);
      load_rows_f32(do_s, ldv, static_cast<const Elem*>(p.dout) + row_base * dv, dv, i0, mask.q_len_of(b), e, dv);
      load_row_stats(m2_s, log_sum2_s, delta_s, stats, row_base, i0, f.q_len, e);
      __syncthreads();
      for (int x = threadIdx.x; x < e * e; x += kSimtThreads) {
        const int r = x / e, c = x % e;
        float prob, grad;
        simt_prob_and_grad(prob, grad, p, state, b, h, i0 + r, j0 + c, q_s + r * ld, k_s + c * ld,
                           do_s + r * ldv, v_s + c * ldv, m2_s[r], log_sum2_s[r], delta_s[r], dweights);
        p_s[r * lds + c] = prob;
        ds_s[r * lds + c] = grad;
      }
      __syncthreads();
      // each (key, column) belongs to one thread for the whole kernel: no races, fixed order
      for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) {
        const int c = x / dv, col = x % dv;
        float acc = 0.f;
        for (int r = 0; r < e; ++r) acc += p_s[r * lds + c] * do_s[r * ldv + col];
        dv_s[c * ldv + col] += acc;
      }
      for (int x = threadIdx.x; x < e * d; x += kSimtThreads) {
        const int c = x / d, col = x % d;
        float acc = 0.f;
        for (int r = 0; r < e; ++r) acc += ds_s[r * lds + c] * q_s[r * ld + col];
        dk_s[c * ld + col] += acc;
      }
    }
  }
  __syncthreads();
  const int64_t key_base = (b * f.kv_heads + kvh) * f.k_len;
  for (int x = threadIdx.x; x < e * d; x += kSimtThreads) {
    const int c = x / d, col = x % d;
    if (j0 + c < f.k_len)
      static_cast<Elem*>(p.dk)[(key_base + j0 + c) * d + col] =
          gpu::from_float<Elem>(dk_s[c * ld + col] * (float)f.scale);
  }
  for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) {
    const int c = x / dv, col = x % dv;
    if (j0 + c < f.k_len)
      static_cast<Elem*>(p.dv)[(key_base + j0 + c) * dv + col] = gpu::from_float<Elem>(dv_s[c * ldv + col]);
  }
}

}  // namespace attn
}  // namespace maskattn
