// The AVX-512 row stores with bf16 rounded by vcvtneps2bf16 (one instruction for 16 floats where
// the integer steps take eleven; ~15% of a bf16 masked_softmax on Zen 4). That instruction reads
// denormal floats (below 1.2e-38) as zero, so a step holding one rounds by the integer steps:
// bit for bit the baseline's rounding everywhere. Called only where cpu_isa.h found AVX512_BF16.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512bf16")

#include "cpu_kernels.h"
#include "row_convert_avx512.h"

namespace maskattn {
namespace cpu {
namespace {

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

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
#pragma GCC diagnostic pop
