// Forward masked attention without tensor cores: the float32 path, and the fallback for
// float16 / bfloat16 where the tensor-core kernels do not apply (GPUs before sm_80, head sizes
// that are not multiples of 8 or above 256, rows not 16-byte aligned). fp32 math throughout.
//
// A block owns `edge` query rows of one (batch, head); square tiles of scores live in shared
// memory, the output accumulator too, so any head size works. Same tile skipping, Full/Partial
// split and launch order as the tensor-core kernels.
#pragma once
#include <cstdint>

#include "../attention.h"
#include "attention_dropout.cuh"
#include "attention_math.h"
#include "attention_tiles.h"
#include "cuda_common.cuh"

namespace maskattn {
namespace attn {

constexpr int kSimtThreads = 256;

// Tile edge (rows and keys per tile) and the padded float row lengths of the shared arrays:
// odd lengths put the rows a warp reads in distinct banks.
struct SimtShape {
  int edge;
  int ld_qk;  // head_dim | 1
  int ld_v;   // v_head_dim | 1
  static SimtShape of(int edge, int64_t d, int64_t dv) { return {edge, (int)(d | 1), (int)(dv | 1)}; }
  // Shared floats of each kernel, in the order the kernels lay their arrays out.
  int64_t fwd_floats() const { return (int64_t)edge * (2 * ld_qk + 2 * ld_v + edge + 1 + 3); }
  int64_t dq_floats() const { return (int64_t)edge * (3 * ld_qk + 2 * ld_v + edge + 1 + 3); }
  int64_t dkdv_floats() const { return (int64_t)edge * (3 * ld_qk + 3 * ld_v + 2 * (edge + 1) + 3); }
};

__device__ __forceinline__ float dot_rows(const float* a, const float* b, int n) {
  float s = 0.f;
  for (int k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

// Rows [row0, row0 + edge) x cols [0, cols) of a row-major global matrix into a shared array of
// row length ld; rows at or past valid_rows become zeros.
template <typename Elem>
__device__ __forceinline__ void load_rows_f32(float* dst, int ld, const Elem* src, int64_t stride, int64_t row0,
                                              int64_t valid_rows, int edge, int cols) {
  for (int x = threadIdx.x; x < edge * cols; x += blockDim.x) {
    const int r = x / cols, c = x % cols;
    dst[r * ld + c] = row0 + r < valid_rows ? gpu::to_float(src[(row0 + r) * stride + c]) : 0.f;
  }
}

template <typename Elem>
__global__ void __launch_bounds__(kSimtThreads, 1)
    attention_fwd_simt_kernel(const AttentionFwdParams p, SimtShape sh, int64_t q_tiles, bool later_heavier) {
  float* smem_f = reinterpret_cast<float*>(gpu::dynamic_smem);
  const int e = sh.edge, ld = sh.ld_qk, ldv = sh.ld_v, lds = e + 1;
  float* q_s = smem_f;           // [e][ld]
  float* k_s = q_s + e * ld;     // [e][ld]
  float* v_s = k_s + e * ld;     // [e][ldv]
  float* o_s = v_s + e * ldv;    // [e][ldv]
  float* s_s = o_s + e * ldv;    // [e][lds] scores, then probabilities
  float* m_s = s_s + e * lds;    // running max (base 2)
  float* l_s = m_s + e;          // running sum
  float* alpha_s = l_s + e;      // this tile's rescale factor
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = kSimtThreads / 32;
  const MaskSpec& mask = p.mask;
  const TileTask task = tile_task(blockIdx.x, p.batch, p.heads, q_tiles, later_heavier);
  const int64_t b = task.batch, h = task.head, kvh = kv_head_of(h, p.heads, p.kv_heads), i0 = task.tile * e;
  const int d = (int)p.head_dim, dv = (int)p.v_head_dim;
  const float scale_log2 = (float)p.scale * kLog2e;
  const Elem* q = static_cast<const Elem*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  const Elem* k = static_cast<const Elem*>(p.k) + b * p.k_stride_b + kvh * p.k_stride_h;
  const Elem* v = static_cast<const Elem*>(p.v) + b * p.v_stride_b + kvh * p.v_stride_h;

  load_rows_f32(q_s, ld, q, p.q_stride_i, i0, mask.q_len_of(b), e, d);
  for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) o_s[(x / dv) * ldv + x % dv] = 0.f;
  for (int r = threadIdx.x; r < e; r += kSimtThreads) m_s[r] = -INFINITY, l_s[r] = 0.f;

  const TileSpan span = key_tiles_for_rows(mask, b, i0, e, e);
  for (int64_t t = span.first; t < span.end; ++t) {
    const int64_t j0 = t * e;
    const TileState state = mask.classify_tile(b, i0, i0 + e, j0, j0 + e);
    if (state == TileState::Empty) continue;
    __syncthreads();  // the previous tile is fully consumed
    load_rows_f32(k_s, ld, k, p.k_stride_j, j0, mask.k_len_of(b), e, d);
    load_rows_f32(v_s, ldv, v, p.v_stride_j, j0, mask.k_len_of(b), e, dv);
    __syncthreads();
    for (int x = threadIdx.x; x < e * e; x += kSimtThreads) {
      const int r = x / e, c = x % e;
      // scaled after the dot product, as the backward and the weights recompute it: the saved lse
      // then normalises exactly the scores they see
      float s = dot_rows(q_s + r * ld, k_s + c * ld, d) * scale_log2;
      if (state == TileState::Partial) {
        const int64_t i = i0 + r, j = j0 + c;
        s = mask.allowed(b, h, i, j) ? s + mask.additive_log2(b, h, i, j) : -INFINITY;
      }
      s_s[r * lds + c] = s;
    }
    __syncthreads();
    for (int r = warp; r < e; r += warps) {  // online softmax, one warp per row (edge <= 32)
      const float s = lane < e ? s_s[r * lds + lane] : -INFINITY;
      float mx = s;
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_old = m_s[r], m_new = fmaxf(m_old, mx);
      const float base = m_new == -INFINITY ? 0.f : m_new;  // never -inf - -inf
      const float prob = lane < e ? exp2f(s - base) : 0.f;
      float sum = prob;
      for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      // dropped after the sum: lse, row statistics and weights stay undropped
      if (lane < e)
        s_s[r * lds + lane] = p.dropout.enabled ? prob * dropout_factor(p.dropout, b, h, i0 + r, j0 + lane, 1.f) : prob;
      __syncwarp();  // every lane has read m_s[r] before lane 0 replaces it
      if (lane == 0) {
        const float alpha = exp2f(m_old - base);
        alpha_s[r] = alpha;
        m_s[r] = m_new;
        l_s[r] = l_s[r] * alpha + sum;
      }
    }
    __syncthreads();
    for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) {
      const int r = x / dv, c = x % dv;
      float acc = o_s[r * ldv + c] * alpha_s[r];
      for (int kk = 0; kk < e; ++kk) acc += s_s[r * lds + kk] * v_s[kk * ldv + c];
      o_s[r * ldv + c] = acc;
    }
  }
  __syncthreads();

  const int64_t row_base = (b * p.heads + h) * p.q_len;
  for (int x = threadIdx.x; x < e * dv; x += kSimtThreads) {
    const int r = x / dv, c = x % dv;
    const float l = l_s[r];
    if (i0 + r < p.q_len)
      static_cast<Elem*>(p.out)[(row_base + i0 + r) * dv + c] =
          gpu::from_float<Elem>(l > 0.f ? o_s[r * ldv + c] * (float)p.dropout.scale / l : 0.f);
  }
  for (int r = threadIdx.x; r < e; r += kSimtThreads) {
    const float l = l_s[r];
    if (i0 + r >= p.q_len) continue;
    p.lse[row_base + i0 + r] = l > 0.f ? m_s[r] * kLn2 + logf(l) : -INFINITY;
    p.row_stats[2 * (row_base + i0 + r)] = l > 0.f ? m_s[r] : -INFINITY;  // base 2, as the backward reads them
    p.row_stats[2 * (row_base + i0 + r) + 1] = l > 0.f ? log2f(l) : 0.f;
  }
}

}  // namespace attn
}  // namespace maskattn
