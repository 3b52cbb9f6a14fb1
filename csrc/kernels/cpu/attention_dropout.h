// Attention dropout on CPU probability rows: the keep decisions of DropoutSpec (dropout_spec.h)
// for a run of keys, drawn eight Philox counters at a time, and applied to fp32 rows.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../../dropout_spec.h"
#include "vec16.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace maskattn {
namespace cpu {

constexpr int kDrawLanes = 8;        // groups of one AVX2 draw, one per 32-bit lane
constexpr int kDrawStreams = 4;      // independent draws interleaved: a Philox round is a chain of
                                     // dependent multiplies, one draw alone waits on latency
constexpr int kDrawBatch = kDrawLanes * kDrawStreams;
constexpr int64_t kDropoutRowKeys = 64;  // keys per row of dropout_rows

// The 16-bit draws of groups group[k] (elements 8 group[k] .. + 7, DropoutSpec's order) into
// dst[k][0..8), for k < kDrawBatch.
inline void draw_groups(uint64_t seed, uint64_t offset, const uint64_t* group, uint16_t* const* dst) {
#if defined(__AVX2__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  constexpr int N = kDrawStreams;
  // lane l of stream s holds counter group[8 s + l]; products by the two Philox multipliers come
  // from the even and the odd lanes separately (vpmuludq), recombined into high and low words
  __m256i c0[N], c1[N], c2[N], c3[N];
  const __m256i halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // low words, then high words
  for (int st = 0; st < N; ++st) {
    const __m256i* g = reinterpret_cast<const __m256i*>(group + st * kDrawLanes);
    const __m256i a = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(g), halves);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(g + 1), halves);
    c0[st] = _mm256_permute2x128_si256(a, b, 0x20);
    c1[st] = _mm256_permute2x128_si256(a, b, 0x31);
    c2[st] = _mm256_set1_epi32((int)(uint32_t)offset);
    c3[st] = _mm256_set1_epi32((int)(uint32_t)(offset >> 32));
  }
  const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi32((int)k0), key1 = _mm256_set1_epi32((int)k1);
    for (int st = 0; st < N; ++st) {
      const __m256i pe0 = _mm256_mul_epu32(c0[st], m0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[st], 32), m0);
      const __m256i pe1 = _mm256_mul_epu32(c2[st], m1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[st], 32), m1);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
      const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
      const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
      c0[st] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[st]), key0);
      c2[st] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[st]), key1);
      c1[st] = lo1;
      c3[st] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int st = 0; st < N; ++st) {
    // 4 words x 8 counters -> 8 counters x 4 words: each group's 128 bits contiguous, which read
    // as 16-bit halves (little-endian) are its elements 0..7 in DropoutSpec's order
    const __m256i t0 = _mm256_unpacklo_epi32(c0[st], c1[st]), t1 = _mm256_unpackhi_epi32(c0[st], c1[st]);
    const __m256i t2 = _mm256_unpacklo_epi32(c2[st], c3[st]), t3 = _mm256_unpackhi_epi32(c2[st], c3[st]);
    const __m256i u[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                          _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};  // lanes l | l + 4
    uint16_t* const* d = dst + st * kDrawLanes;
    for (int l = 0; l < 4; ++l) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d[l]), _mm256_castsi256_si128(u[l]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d[l + 4]), _mm256_extracti128_si256(u[l], 1));
    }
  }
#else
  for (int k = 0; k < kDrawBatch; ++k) {
    const Philox4 w = philox4x32(seed, offset, group[k]);
    for (int e = 0; e < kDropoutGroup; ++e) dst[k][e] = (uint16_t)DropoutSpec::bits_of(w, e);
  }
#endif
}

typedef uint16_t bits16x8 __attribute__((vector_size(16)));
typedef int32_t i32x8_ __attribute__((vector_size(32)));

// keep[r * ld + c] = kept where element e0[r] + c survives the dropout, 0 where it is dropped,
// for rows r < rows (<= 64) and c < n (<= kDropoutRowKeys). The groups the rows need are drawn
// kDrawBatch at a time, whatever row they belong to: misaligned rows cost one group more, no more.
inline void dropout_rows(const DropoutSpec& d, const uint64_t* e0, int64_t rows, int64_t n, float kept, float* keep,
                         int64_t ld) {
  if (n <= 0) return;
  constexpr int64_t kRowBits = kDropoutRowKeys + 2 * kDropoutGroup;  // a row's groups, aligned
  alignas(32) uint16_t bits[64 * kRowBits];
  uint64_t group[kDrawBatch];
  uint16_t* dst[kDrawBatch];
  int queued = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (uint64_t g = e0[r] / kDropoutGroup; g <= (e0[r] + n - 1) / kDropoutGroup; ++g) {
      group[queued] = g;
      dst[queued++] = bits + r * kRowBits + (g - e0[r] / kDropoutGroup) * kDropoutGroup;
      if (queued == kDrawBatch) {
        draw_groups(d.seed, d.offset, group, dst);
        queued = 0;
      }
    }
  if (queued > 0) {
    alignas(32) uint16_t unused[kDropoutGroup];
    for (int k = queued; k < kDrawBatch; ++k) group[k] = 0, dst[k] = unused;
    draw_groups(d.seed, d.offset, group, dst);
  }
  // 8 lanes (one AVX2 register): wider generic compares are split into scalar code by GCC
  const i32x8_ below = i32x8_{} + ((int32_t)d.threshold - 1);  // bits > below, as AVX2 compares
  int32_t kept_word;
  std::memcpy(&kept_word, &kept, sizeof(kept_word));
  const i32x8_ kept_bits = i32x8_{} + kept_word;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* src = bits + r * kRowBits + e0[r] % kDropoutGroup;
    float* out = keep + r * ld;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      bits16x8 b;
      std::memcpy(&b, src + c, sizeof(b));
      const i32x8_ value = kept_bits & (__builtin_convertvector(b, i32x8_) > below);  // kept or +0.0
      std::memcpy(out + c, &value, sizeof(value));
    }
    for (; c < n; ++c) out[c] = src[c] >= d.threshold ? kept : 0.f;
  }
}

// keep[c] = kept where element e0 + c survives the dropout, 0 where it is dropped, for any n:
// the row cut into pieces of kDropoutRowKeys keys, drawn 64 pieces at a time.
inline void dropout_row(const DropoutSpec& d, uint64_t e0, int64_t n, float kept, float* keep) {
  constexpr int64_t kPieces = 64;
  uint64_t starts[kPieces];
  const int64_t whole = n / kDropoutRowKeys;
  for (int64_t p0 = 0; p0 < whole; p0 += kPieces) {
    const int64_t count = std::min(kPieces, whole - p0);
    for (int64_t k = 0; k < count; ++k) starts[k] = e0 + (uint64_t)((p0 + k) * kDropoutRowKeys);
    dropout_rows(d, starts, count, kDropoutRowKeys, kept, keep + p0 * kDropoutRowKeys, kDropoutRowKeys);
  }
  if (n % kDropoutRowKeys) {
    starts[0] = e0 + (uint64_t)(whole * kDropoutRowKeys);
    dropout_rows(d, starts, 1, n % kDropoutRowKeys, kept, keep + whole * kDropoutRowKeys, kDropoutRowKeys);
  }
}

// x[c] *= factor[c] for c < n.
inline void multiply_row(float* x, const float* factor, int64_t n) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) store16(x + c, load16(x + c) * load16(factor + c));
  for (; c < n; ++c) x[c] *= factor[c];
}

// Drops entries of rows i0 .. i0 + rows - 1 of (b, h) over keys j0 .. j0 + n - 1 in a tile of
// stride ld (entries kept are multiplied by `kept`); keep: scratch of rows x ld floats.
inline void dropout_tile(const DropoutSpec& d, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                         float kept, float* x, int64_t ld, float* keep) {
  uint64_t e0[64];
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t count = std::min<int64_t>(64, rows - r0);
    for (int64_t r = 0; r < count; ++r) e0[r] = d.element(b, h, i0 + r0 + r, j0);
    dropout_rows(d, e0, count, n, kept, keep, ld);
    for (int64_t r = 0; r < count; ++r) multiply_row(x + (r0 + r) * ld, keep + r * ld, n);
  }
}

}  // namespace cpu
}  // namespace maskattn
