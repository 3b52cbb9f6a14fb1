#include "attention_pack.h"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "attention_rows.h"
#include "parallel_grain.h"

namespace maskattn {
namespace cpu {

// 8 rows of 8 32-bit words (row r at src + r * ld words) written transposed: out[c * ldo + r].
static inline void transpose_words_8x8(const uint32_t* src, int64_t ld, uint32_t* out, int64_t ldo) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * ld)));
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * ldo), _mm256_castps_si256(t[i]));
}

// out[c * ldo + j] = rows[j * ld + c] for j < n, c < width (32-bit words): 8x8 blocks, scalar
// edges. Writes nothing past n: the caller zeroes it.
void transpose_words(const uint32_t* rows, int64_t ld, int64_t n, int64_t width, uint32_t* out, int64_t ldo) {
  const int64_t n8 = n / 8 * 8, width8 = width / 8 * 8;
  for (int64_t j = 0; j < n8; j += 8)
    for (int64_t c = 0; c < width8; c += 8) transpose_words_8x8(rows + j * ld + c, ld, out + c * ldo + j, ldo);
  for (int64_t c = 0; c < width; ++c)
    for (int64_t j = c < width8 ? n8 : 0; j < n; ++j) out[c * ldo + j] = rows[j * ld + c];
}

// Writes rows [0, n) of a (kBlockK x width) tile as its transpose (width x kBlockK), zero past n.
static void transpose_into(const float* rows, int64_t n, int64_t width, int64_t ld, float* out) {
  transpose_words(reinterpret_cast<const uint32_t*>(rows), ld, n, width, reinterpret_cast<uint32_t*>(out), kBlockK);
  for (int64_t c = 0; c < width; ++c) std::fill(out + c * kBlockK + n, out + (c + 1) * kBlockK, 0.f);
}

// Loads rows [0, n) of a tile as fp32 (kBlockK x width_pad), zero past n and past width.
static void load_tile_rows(ScalarKind kind, const void* src, int64_t offset, int64_t stride_j, int64_t n, int64_t width,
                           int64_t width_pad, float* out) {
  for (int64_t j = 0; j < n; ++j)
    load_row_f32(kind, src, offset + j * stride_j, width, 1.f, out + j * width_pad, width_pad);
  std::memset(out + n * width_pad, 0, sizeof(float) * (size_t)((kBlockK - n) * width_pad));
}

// Rows [0, n) of a bf16 K tile (d values each) as k-pairs of K^T: (d_pad32 / 2) x kBlockK x 2.
// A pair (K[j][c], K[j][c + 1]) is the 32-bit word c / 2 of row j: the layout is a transpose of words.
static void pair_k_tile(const uint16_t* src, int64_t stride_j, int64_t n, int64_t d, int64_t d_pad32, uint16_t* out) {
  std::memset(out, 0, sizeof(uint16_t) * (size_t)(d_pad32 * kBlockK));
  if (stride_j % 2 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {  // rows of whole words
    transpose_words(reinterpret_cast<const uint32_t*>(src), stride_j / 2, n, d / 2, reinterpret_cast<uint32_t*>(out),
                    kBlockK);
    if (d % 2 == 1)  // the last pair holds one value
      for (int64_t j = 0; j < n; ++j) out[((d / 2) * kBlockK + j) * 2] = src[j * stride_j + d - 1];
    return;
  }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < d; ++c) out[((c / 2) * kBlockK + j) * 2 + (c & 1)] = src[j * stride_j + c];
}

// Rows [0, n) of a bf16 V tile (dv values each) as k-pairs over keys: (kBlockK / 2) x dv_pad x 2:
// rows j and j + 1 interleaved element by element.
static void pair_v_tile(const uint16_t* src, int64_t stride_j, int64_t n, int64_t dv, int64_t dv_pad, uint16_t* out) {
  std::memset(out, 0, sizeof(uint16_t) * (size_t)(kBlockK * dv_pad));
  for (int64_t j = 0; j < n; j += 2) {
    const uint16_t* even = src + j * stride_j;
    const uint16_t* odd = j + 1 < n ? even + stride_j : nullptr;  // a last odd row pairs with zeros
    uint16_t* dst = out + (j / 2) * dv_pad * 2;
    int64_t c = 0;
    for (; c + 16 <= dv; c += 16) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(even + c));
      const __m256i b = odd ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(odd + c)) : _mm256_setzero_si256();
      const __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);  // per 128-bit half
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * c), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * c + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; c < dv; ++c) {
      dst[2 * c] = even[c];
      dst[2 * c + 1] = odd ? odd[c] : (uint16_t)0;
    }
  }
}

static PackedKeys pack_key_pairs(const AttentionFwdParams& p, const AttentionGeometry& g, bool for_backward) {
  PackedKeys pk;
  pk.tiles_per_head = g.k_tiles, pk.kv_heads = g.kv_heads;
  pk.d = g.d, pk.d_pad = g.d_pad, pk.dv = g.dv, pk.dv_pad = g.dv_pad;
  pk.pairs = true;
  pk.d_pad32 = round_up32(g.d), pk.dv_pad32 = round_up32(g.dv);
  const int64_t tiles = g.batch * g.kv_heads * g.k_tiles;
  // bf16 buffers in float units
  pk.k_pairs = FloatBuffer(tiles * pk.d_pad32 * kBlockK / 2);
  if (for_backward) {
    pk.v_t_pairs = FloatBuffer(tiles * pk.dv_pad32 * kBlockK / 2);
    pk.k_row_pairs = FloatBuffer(tiles * kBlockK * g.d_pad / 2);
  } else {
    pk.v_pairs = FloatBuffer(tiles * kBlockK * g.dv_pad / 2);
  }
  const uint16_t* k = static_cast<const uint16_t*>(p.k);
  const uint16_t* v = static_cast<const uint16_t*>(p.v);
  run_region(worth_parallel(tiles, tiles * kBlockK * (g.d + g.dv)), [&] {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t kt = t % g.k_tiles, bh = t / g.k_tiles, hk = bh % g.kv_heads, b = bh / g.kv_heads;
      const int64_t j0 = kt * kBlockK, n = g.live_keys_in(p.mask, b, kt);
      if (n == 0) continue;  // no query attends past the sequence's keys
      // tile t is tile_index(b, hk, kt)
      const uint16_t* k_tile = k + b * p.k_stride_b + hk * p.k_stride_h + j0 * p.k_stride_j;
      const uint16_t* v_tile = v + b * p.v_stride_b + hk * p.v_stride_h + j0 * p.v_stride_j;
      pair_k_tile(k_tile, p.k_stride_j, n, g.d, pk.d_pad32,
                  reinterpret_cast<uint16_t*>(pk.k_pairs.get()) + t * pk.d_pad32 * kBlockK);
      if (for_backward) {
        // V^T pairs over dv (B of dP = dO V^T) and K pairs over keys (B of dQ = dS K)
        pair_k_tile(v_tile, p.v_stride_j, n, g.dv, pk.dv_pad32,
                    reinterpret_cast<uint16_t*>(pk.v_t_pairs.get()) + t * pk.dv_pad32 * kBlockK);
        pair_v_tile(k_tile, p.k_stride_j, n, g.d, g.d_pad,
                    reinterpret_cast<uint16_t*>(pk.k_row_pairs.get()) + t * kBlockK * g.d_pad);
      } else {
        pair_v_tile(v_tile, p.v_stride_j, n, g.dv, g.dv_pad,
                    reinterpret_cast<uint16_t*>(pk.v_pairs.get()) + t * kBlockK * g.dv_pad);
      }
    }
  });
  return pk;
}

PackedKeys pack_keys(const AttentionFwdParams& p, const AttentionGeometry& g, bool for_backward, bool pairs) {
  if (pairs) return pack_key_pairs(p, g, for_backward);
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
  run_region(worth_parallel(tiles, tiles * kBlockK * (g.d + g.dv)), [&] {
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
  });
  return pk;
}

}  // namespace cpu
}  // namespace maskattn
