// Philox4x32-10 draws on AVX-512F: 16 counters per register, two interleaved streams
// (philox_draw.h). Per round and register: four vpmuludq, four masked pair swaps that sort the
// 64-bit products into high and low words, two three-way XORs (vpternlogd). Called only where
// cpu_isa.h found AVX-512 (and the OS saving its state).
// GCC 12's AVX-512 integer intrinsics pass _mm512_undefined_epi32() as their merge source and
// warn that it is uninitialised (GCC bug 105593, fixed in 13): not ours, silenced here only
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "philox_draw.h"

#pragma GCC push_options
#pragma GCC target("avx512f")

namespace maskattn {
namespace cpu {
namespace {
constexpr int kLanes32 = 16;  // counters per register, one per 32-bit lane
constexpr int kStreams = 2;   // independent draws interleaved: a round waits on its multiplies
static_assert(kLanes32 * kStreams == kDrawBatch, "one call draws kDrawBatch counters");
constexpr int kXor3 = 0x96;   // vpternlogd truth table of a ^ b ^ c

// Where words of even lanes and of odd lanes were multiplied apart (vpmuludq reads the even
// ones): the high and the low 32-bit halves of each lane's product, back in lane order.
inline void split_products(__m512i even, __m512i odd, __m512i* hi, __m512i* lo) {
  *hi = _mm512_mask_shuffle_epi32(odd, (__mmask16)0x5555, even, _MM_PERM_CDAB);
  *lo = _mm512_mask_shuffle_epi32(even, (__mmask16)0xAAAA, odd, _MM_PERM_CDAB);
}

// Counter group's 128 bits (words c0..c3 of one lane) to dst; block j of u holds counter 4 j + l.
template <int J>
inline void store_block(__m512i u, uint16_t* dst) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_extracti32x4_epi32(u, J));
}
}  // namespace

void draw_groups_avx512(uint64_t seed, uint64_t offset, const uint64_t* group, uint16_t* const* dst) {
  constexpr int N = kStreams;
  __m512i c0[N], c1[N], c2[N], c3[N];
  const __m512i low_words = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i high_words = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int st = 0; st < N; ++st) {
    const __m512i a = _mm512_loadu_si512(group + st * kLanes32);
    const __m512i b = _mm512_loadu_si512(group + st * kLanes32 + 8);
    c0[st] = _mm512_permutex2var_epi32(a, low_words, b);
    c1[st] = _mm512_permutex2var_epi32(a, high_words, b);
    c2[st] = _mm512_set1_epi32((int)(uint32_t)offset);
    c3[st] = _mm512_set1_epi32((int)(uint32_t)(offset >> 32));
  }
  const __m512i m0 = _mm512_set1_epi32((int)0xD2511F53u), m1 = _mm512_set1_epi32((int)0xCD9E8D57u);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i key0 = _mm512_set1_epi32((int)k0), key1 = _mm512_set1_epi32((int)k1);
    for (int st = 0; st < N; ++st) {
      __m512i hi0, lo0, hi1, lo1;
      split_products(_mm512_mul_epu32(c0[st], m0), _mm512_mul_epu32(_mm512_srli_epi64(c0[st], 32), m0), &hi0, &lo0);
      split_products(_mm512_mul_epu32(c2[st], m1), _mm512_mul_epu32(_mm512_srli_epi64(c2[st], 32), m1), &hi1, &lo1);
      c0[st] = _mm512_ternarylogic_epi32(hi1, c1[st], key0, kXor3);
      c2[st] = _mm512_ternarylogic_epi32(hi0, c3[st], key1, kXor3);
      c1[st] = lo1;
      c3[st] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int st = 0; st < N; ++st) {
    // 4 words x 16 counters -> 16 counters x 4 words: each group's 128 bits contiguous, which read
    // as 16-bit halves (little-endian) are its elements 0..7 in DropoutSpec's order
    const __m512i t0 = _mm512_unpacklo_epi32(c0[st], c1[st]), t1 = _mm512_unpackhi_epi32(c0[st], c1[st]);
    const __m512i t2 = _mm512_unpacklo_epi32(c2[st], c3[st]), t3 = _mm512_unpackhi_epi32(c2[st], c3[st]);
    const __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                          _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    uint16_t* const* d = dst + st * kLanes32;
    for (int l = 0; l < 4; ++l) {
      store_block<0>(u[l], d[l]);
      store_block<1>(u[l], d[4 + l]);
      store_block<2>(u[l], d[8 + l]);
      store_block<3>(u[l], d[12 + l]);
    }
  }
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
#pragma GCC diagnostic pop
