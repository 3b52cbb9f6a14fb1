// The fp32 accumulator operations of the AVX-512 tile products (fp32 and bf16 operands), for
// gemm_tile_body.h. Include inside an AVX-512 `#pragma GCC target` region only: the struct has
// internal linkage, so each including file keeps its own copy.
#pragma once
#include <immintrin.h>

namespace maskattn {
namespace cpu {
namespace {

struct Avx512Accumulators {
  using reg = __m512;
  static constexpr int kLanes = 16, kRows = 6, kMaxVecs = 4;
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg splat(float x) { return _mm512_set1_ps(x); }
  static inline reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static inline reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static inline reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
};

}  // namespace
}  // namespace cpu
}  // namespace maskattn
