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

constexpr int64_t kDropoutSpan = 8 * kDropoutGroup;  // elements drawn by one philox_groups8 call

// The 16-bit draws of elements 8 * g0 .. 8 * g0 + 63 (groups g0 .. g0 + 7) into bits[0..64).
inline void philox_groups8(uint64_t seed, uint64_t offset, uint64_t g0, uint16_t* bits) {
#if defined(__AVX2__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // the eight counters in the eight 32-bit lanes; products by the two Philox multipliers come
  // from the even and the odd lanes separately (vpmuludq), recombined into high and low words
  alignas(32) uint32_t lo[8], hi[8];
  for (int l = 0; l < 8; ++l) lo[l] = (uint32_t)(g0 + l), hi[l] = (uint32_t)((g0 + l) >> 32);
  __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
  __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
  __m256i c2 = _mm256_set1_epi32((int)(uint32_t)offset), c3 = _mm256_set1_epi32((int)(uint32_t)(offset >> 32));
  const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i pe0 = _mm256_mul_epu32(c0, m0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
    const __m256i pe1 = _mm256_mul_epu32(c2, m1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
    const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
    const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
    const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
    const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
    c1 = lo1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // 4 words x 8 counters -> 8 counters x 4 words: each group's 128 bits contiguous, which read
  // as 16-bit halves (little-endian) are its elements 0..7 in DropoutSpec's order
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
  __m256i* out = reinterpret_cast<__m256i*>(bits);
  _mm256_storeu_si256(out + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
  _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
  _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
  _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
#else
  for (int l = 0; l < 8; ++l) {
    const Philox4 w = philox4x32(seed, offset, g0 + l);
    for (int k = 0; k < kDropoutGroup; ++k) bits[l * kDropoutGroup + k] = (uint16_t)DropoutSpec::bits_of(w, k);
  }
#endif
}

typedef uint16_t bits16x8 __attribute__((vector_size(16)));
typedef int32_t i32x8_ __attribute__((vector_size(32)));

// keep[c] = kept where element e0 + c survives the dropout, 0 where it is dropped (c < n).
inline void dropout_row(const DropoutSpec& d, uint64_t e0, int64_t n, float kept, float* keep) {
  alignas(32) uint16_t bits[kDropoutSpan];
  // 8 lanes (one AVX2 register): wider generic compares are split into scalar code by GCC
  const i32x8_ below = i32x8_{} + ((int32_t)d.threshold - 1);  // bits > below, as AVX2 compares
  int32_t kept_word;
  std::memcpy(&kept_word, &kept, sizeof(kept_word));
  const i32x8_ kept_bits = i32x8_{} + kept_word;
  for (int64_t c0 = 0; c0 < n;) {
    const uint64_t e = e0 + (uint64_t)c0;
    const int64_t skip = (int64_t)(e % kDropoutGroup);  // the first group may start before e
    philox_groups8(d.seed, d.offset, e / kDropoutGroup, bits);
    const int64_t m = std::min(n - c0, kDropoutSpan - skip);
    int64_t c = 0;
    for (; c + 8 <= m; c += 8) {
      bits16x8 b;
      std::memcpy(&b, bits + skip + c, sizeof(b));
      const i32x8_ value = kept_bits & (__builtin_convertvector(b, i32x8_) > below);  // kept or +0.0
      std::memcpy(keep + c0 + c, &value, sizeof(value));
    }
    for (; c < m; ++c) keep[c0 + c] = bits[skip + c] >= d.threshold ? kept : 0.f;
    c0 += m;
  }
}

// x[c] *= factor[c] for c < n.
inline void multiply_row(float* x, const float* factor, int64_t n) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) store16(x + c, load16(x + c) * load16(factor + c));
  for (; c < n; ++c) x[c] *= factor[c];
}

// Drops entries of rows i0 .. i0 + rows - 1 of (b, h) over keys j0 .. j0 + n - 1 in a tile of
// stride ld (entries kept are multiplied by `kept`); keep: scratch of n floats.
inline void dropout_tile(const DropoutSpec& d, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                         float kept, float* x, int64_t ld, float* keep) {
  for (int64_t r = 0; r < rows; ++r) {
    dropout_row(d, d.element(b, h, i0 + r, j0), n, kept, keep);
    multiply_row(x + r * ld, keep, n);
  }
}

}  // namespace cpu
}  // namespace maskattn
