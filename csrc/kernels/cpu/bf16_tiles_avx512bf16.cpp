// bf16_tiles.h's roundings on AVX512-BF16: vcvtne2ps2bf16 rounds 32 floats to nearest even in one
// instruction (it treats denormal floats, below 1.2e-38, as zero: the baseline rounds them
// exactly; no probability or dS that small moves a product). And the rows stored in bf16
// (attention_rows.h) by vcvtneps2bf16, where a step holding a denormal float rounds by the integer
// steps instead: bit for bit the baseline (one instruction for 16 floats where those take eleven;
// ~15% of a bf16 masked_softmax on Zen 4). Called only where cpu_isa.h found AVX512_BF16.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "cpu_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512bf16")

#include "row_convert_avx512.h"

namespace maskattn {
namespace cpu {
namespace {

// 16 floats rounded to 16 bf16 (256 bits).
inline __m256i round16_avx512bf16(const float* x) { return (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x)); }

struct Bf16UnitAvx512Bf16 {
  __m256i operator()(__m512 x) const {
    const __m512i magnitude = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    // denormal: magnitude in [1, 0x7fffff]
    const __mmask16 denormal =
        _mm512_cmplt_epu32_mask(_mm512_sub_epi32(magnitude, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fffff));
    if (denormal != 0) return bf16_by_integer_steps_avx512(x);
    return (__m256i)_mm512_cvtneps_pbh(x);
  }
};

}  // namespace

void store_row16_avx512bf16(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst) {
  store_row16_steps_avx512(kind, src, n, mul, dst, Bf16UnitAvx512Bf16{});
}

void round_rows_to_bf16_avx512bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                   int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * lds;
    uint16_t* y = dst + r * ldd;
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      const __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + c + 16), _mm512_loadu_ps(x + c));
      _mm512_storeu_si512(y + c, (__m512i)both);
    }
    if (c < cols) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + c), round16_avx512bf16(x + c));
    for (c = cols; c < ldd; ++c) y[c] = 0;
  }
}

void round_pairs_over_rows_avx512bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                      int64_t ldd) {
  // word l of the output takes lane l / 2 of the even row (l even) or of the odd row (l odd)
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  const int64_t pair_rows = (rows + 31) / 32 * 16;
  for (int64_t p = 0; p < pair_rows; ++p) {
    const int64_t r = 2 * p;
    uint16_t* y = dst + p * ldd;
    if (r >= rows) {
      for (int64_t c = 0; c < 2 * cols; ++c) y[c] = 0;
      continue;
    }
    const float* even = src + r * lds;
    const float* odd = r + 1 < rows ? even + lds : nullptr;
    for (int64_t c = 0; c < cols; c += 16) {
      const __m512 b = odd ? _mm512_loadu_ps(odd + c) : _mm512_setzero_ps();
      const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, _mm512_loadu_ps(even + c));  // even in 0-15, odd in 16-31
      _mm512_storeu_si512(y + 2 * c, _mm512_permutexvar_epi16(interleave, both));
    }
  }
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
#pragma GCC diagnostic pop
