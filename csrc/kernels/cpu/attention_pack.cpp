#include "attention_pack.h"

#include <cstring>

#include "attention_rows.h"

namespace maskattn {
namespace cpu {

// Writes rows [0, n) of a (kBlockK x width) tile as its transpose (width x kBlockK), zero past n.
static void transpose_into(const float* rows, int64_t n, int64_t width, int64_t ld, float* out) {
  for (int64_t c = 0; c < width; ++c) {
    float* col = out + c * kBlockK;
    for (int64_t j = 0; j < n; ++j) col[j] = rows[j * ld + c];
    for (int64_t j = n; j < kBlockK; ++j) col[j] = 0.f;
  }
}

// Loads rows [0, n) of a tile as fp32 (kBlockK x width_pad), zero past n and past width.
static void load_tile_rows(ScalarKind kind, const void* src, int64_t offset, int64_t stride_j, int64_t n, int64_t width,
                           int64_t width_pad, float* out) {
  for (int64_t j = 0; j < n; ++j)
    load_row_f32(kind, src, offset + j * stride_j, width, 1.f, out + j * width_pad, width_pad);
  std::memset(out + n * width_pad, 0, sizeof(float) * (size_t)((kBlockK - n) * width_pad));
}

// Rows [0, n) of a bf16 K tile (d values each) as k-pairs of K^T: (d_pad32 / 2) x kBlockK x 2.
static void pair_k_tile(const uint16_t* src, int64_t stride_j, int64_t n, int64_t d, int64_t d_pad32, uint16_t* out) {
  std::memset(out, 0, sizeof(uint16_t) * (size_t)(d_pad32 * kBlockK));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) out[((c / 2) * kBlockK + j) * 2 + (c & 1)] = src[j * stride_j + c];
}

// Rows [0, n) of a bf16 V tile (dv values each) as k-pairs over keys: (kBlockK / 2) x dv_pad x 2.
static void pair_v_tile(const uint16_t* src, int64_t stride_j, int64_t n, int64_t dv, int64_t dv_pad, uint16_t* out) {
  std::memset(out, 0, sizeof(uint16_t) * (size_t)(kBlockK * dv_pad));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < dv; ++c) out[((j / 2) * dv_pad + c) * 2 + (j & 1)] = src[j * stride_j + c];
}

static PackedKeys pack_key_pairs(const AttentionFwdParams& p, const AttentionGeometry& g) {
  PackedKeys pk;
  pk.tiles_per_head = g.k_tiles, pk.kv_heads = g.kv_heads;
  pk.d = g.d, pk.d_pad = g.d_pad, pk.dv = g.dv, pk.dv_pad = g.dv_pad;
  pk.pairs = true;
  pk.d_pad32 = round_up32(g.d);
  const int64_t tiles = g.batch * g.kv_heads * g.k_tiles;
  // bf16 buffers in float units
  pk.k_pairs = FloatBuffer(tiles * pk.d_pad32 * kBlockK / 2);
  pk.v_pairs = FloatBuffer(tiles * kBlockK * g.dv_pad / 2);
  const uint16_t* k = static_cast<const uint16_t*>(p.k);
  const uint16_t* v = static_cast<const uint16_t*>(p.v);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t kt = t % g.k_tiles, bh = t / g.k_tiles, hk = bh % g.kv_heads, b = bh / g.kv_heads;
    const int64_t j0 = kt * kBlockK, n = g.live_keys_in(p.mask, b, kt);
    if (n == 0) continue;  // no query attends past the sequence's keys
    // tile t is tile_index(b, hk, kt)
    pair_k_tile(k + b * p.k_stride_b + hk * p.k_stride_h + j0 * p.k_stride_j, p.k_stride_j, n, g.d, pk.d_pad32,
                reinterpret_cast<uint16_t*>(pk.k_pairs.get()) + t * pk.d_pad32 * kBlockK);
    pair_v_tile(v + b * p.v_stride_b + hk * p.v_stride_h + j0 * p.v_stride_j, p.v_stride_j, n, g.dv, g.dv_pad,
                reinterpret_cast<uint16_t*>(pk.v_pairs.get()) + t * kBlockK * g.dv_pad);
  }
  return pk;
}

PackedKeys pack_keys(const AttentionFwdParams& p, const AttentionGeometry& g, bool for_backward, bool pairs) {
  if (pairs) return pack_key_pairs(p, g);
  PackedKeys pk;
  pk.tiles_per_head = g.k_tiles, pk.kv_heads = g.kv_heads;
  pk.d = g.d, pk.d_pad = g.d_pad, pk.dv = g.dv, pk.dv_pad = g.dv_pad;
  const int64_t tiles = g.batch * g.kv_heads * g.k_tiles;
  pk.k_t = FloatBuffer(tiles * g.d * kBlockK);
  pk.v_direct = !for_backward && p.dtype == ScalarKind::Float32 && g.dv % kLanes == 0;
  if (pk.v_direct) {
    pk.v_src = static_cast<const float*>(p.v);
    pk.v_stride_b = p.v_stride_b, pk.v_stride_h = p.v_stride_h, pk.v_stride_j = p.v_stride_j;
  } else if (!for_backward) {
    pk.v = FloatBuffer(tiles * kBlockK * g.dv_pad);
  }
  if (for_backward) {
    pk.v_t = FloatBuffer(tiles * g.dv * kBlockK);
    pk.k = FloatBuffer(tiles * kBlockK * g.d_pad);
  }
#pragma omp parallel
  {
    // fp32 rows of one tile, the staging area of the transposes
    FloatBuffer k_stage(kBlockK * g.d_pad), v_stage(kBlockK * g.dv_pad);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t kt = t % g.k_tiles, bh = t / g.k_tiles, hk = bh % g.kv_heads, b = bh / g.kv_heads;
      const int64_t j0 = kt * kBlockK, n = g.live_keys_in(p.mask, b, kt);
      if (n == 0) continue;  // no query attends past the sequence's keys
      float* kr = for_backward ? pk.k.get() + t * kBlockK * g.d_pad : k_stage.get();
      load_tile_rows(p.dtype, p.k, b * p.k_stride_b + hk * p.k_stride_h + j0 * p.k_stride_j, p.k_stride_j, n, g.d,
                     g.d_pad, kr);
      transpose_into(kr, n, g.d, g.d_pad, pk.k_t.get() + t * g.d * kBlockK);
      if (pk.v_direct) continue;
      float* vr = for_backward ? v_stage.get() : pk.v.get() + t * kBlockK * g.dv_pad;
      load_tile_rows(p.dtype, p.v, b * p.v_stride_b + hk * p.v_stride_h + j0 * p.v_stride_j, p.v_stride_j, n, g.dv,
                     g.dv_pad, vr);
      if (for_backward) transpose_into(vr, n, g.dv, g.dv_pad, pk.v_t.get() + t * g.dv * kBlockK);
    }
  }
  return pk;
}

}  // namespace cpu
}  // namespace maskattn
