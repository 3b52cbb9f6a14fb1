// Philox4x32-10 draws on AVX2: 8 counters per register, four interleaved streams (philox_draw.h).
// The baseline every x86-64-v3 build has; a build without AVX2 gets the scalar generator.
#include "philox_draw.h"

#include "../../dropout_spec.h"
#include "../../philox.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace maskattn {
namespace cpu {
namespace {
constexpr int kDrawLanes = 8;    // counters per AVX2 register, one per 32-bit lane
constexpr int kDrawStreams = 4;  // independent draws interleaved: a round waits on its multiplies
static_assert(kDrawLanes * kDrawStreams == kDrawBatch, "one call draws kDrawBatch counters");
}  // namespace

void draw_groups_avx2(uint64_t seed, uint64_t offset, const uint64_t* group, uint16_t* const* dst) {
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

}  // namespace cpu
}  // namespace maskattn
