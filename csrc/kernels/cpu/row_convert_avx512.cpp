// attention_rows.h's row conversions between fp32 and fp16 / bf16 in AVX-512 registers: 16 lanes
// a step, fp16 rounded by vcvtps2ph (the baseline emulates it in integer steps: ~25% of an fp16
// masked_softmax on Zen 4), bf16 by the baseline's integer steps. Bit for bit the baseline's
// roundings: to nearest even, subnormals kept; a NaN stays a NaN with its quiet bit set. Called
// only where cpu_isa.h found AVX-512.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw")

#include "cpu_kernels.h"
#include "row_convert_avx512.h"

namespace maskattn {
namespace cpu {

void store_row16_avx512(ScalarKind kind, const float* src, int64_t n, float mul, uint16_t* dst) {
  store_row16_steps_avx512(kind, src, n, mul, dst, Bf16IntegerStepsAvx512{});
}

void load_row16_avx512(ScalarKind kind, const uint16_t* src, int64_t n, float mul, float* dst) {
  const __m512 m = _mm512_set1_ps(mul);
  const bool bf16 = kind == ScalarKind::BFloat16;
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 live = live_lanes_avx512(n, c);
    const __m256i h = _mm256_maskz_loadu_epi16(live, src + c);
    _mm512_mask_storeu_ps(dst + c, live, _mm512_mul_ps(bf16 ? widen_bf16_avx512(h) : _mm512_cvtph_ps(h), m));
  }
}

}  // namespace cpu
}  // namespace maskattn

#pragma GCC pop_options
#pragma GCC diagnostic pop
