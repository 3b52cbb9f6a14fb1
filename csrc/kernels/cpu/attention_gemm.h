// Register-blocked fp32 tile products for the attention kernels: C (M x N) = A (M x K) * B (K x N).
//
// B is row-major with N a multiple of 16 (callers pad), so one k step loads N/16 vectors of B and
// broadcasts one A value per row: an MR x NV block of accumulators stays in registers for the
// whole k loop. A is read through (row, k) strides, so A = P or A = P^T need no transpose copy.
#pragma once
#include <cstdint>

#include "vec16.h"

namespace maskattn {
namespace cpu {

// How a product lands in C: overwrite, add, or add after scaling each row of C (online softmax).
enum class GemmInto { Overwrite, Accumulate, ScaleRowsAccumulate };

struct GemmA {
  const float* p;
  int64_t row_stride, k_stride;
};

// Keeps a loaded vector in a register: otherwise GCC folds the load of B into each of the MR
// FMAs that use it, and the block becomes load-bound (measured: up to 2x slower).
inline void keep_in_register(f32x16& v) {
#if defined(__GNUC__) && defined(__AVX512F__)
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

template <int MR, int NV>
inline void gemm_block(int64_t K, const float* a, int64_t a_row, int64_t a_k, const float* b, int64_t ldb, float* c,
                       int64_t ldc, GemmInto into, const float* row_scale) {
  // the block's products are summed on their own and then added to C: blocked summation keeps
  // long accumulations (dK, dV over thousands of query rows) as accurate as a tiled GEMM
  f32x16 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = splat16(0.f);
  const float* ar[MR];
  for (int r = 0; r < MR; ++r) ar[r] = a + r * a_row;
  for (int64_t k = 0; k < K; ++k) {
    f32x16 bv[NV];
    for (int v = 0; v < NV; ++v) {
      bv[v] = load16(b + k * ldb + v * kLanes);
      keep_in_register(bv[v]);
    }
    for (int r = 0; r < MR; ++r) {
      const f32x16 av = splat16(ar[r][k * a_k]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* cp = c + r * ldc + v * kLanes;
      if (into == GemmInto::Accumulate) acc[r][v] += load16(cp);
      if (into == GemmInto::ScaleRowsAccumulate) acc[r][v] += load16(cp) * row_scale[r];
      store16(cp, acc[r][v]);
    }
}

// Rows [0, m) of one column block of NV vectors, in row blocks of kGemmRows plus a remainder.
constexpr int kGemmRows = 4;

template <int NV>
inline void gemm_columns(int64_t m, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c, int64_t ldc,
                         GemmInto into, const float* row_scale) {
  int64_t r = 0;
  for (; r + kGemmRows <= m; r += kGemmRows)
    gemm_block<kGemmRows, NV>(K, a.p + r * a.row_stride, a.row_stride, a.k_stride, b, ldb, c + r * ldc, ldc, into,
                              row_scale ? row_scale + r : nullptr);
  const float* ap = a.p + r * a.row_stride;
  float* cp = c + r * ldc;
  const float* rs = row_scale ? row_scale + r : nullptr;
  switch (m - r) {
    case 3: gemm_block<3, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 2: gemm_block<2, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 1: gemm_block<1, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    default: break;
  }
}

// C[0:m, 0:n] (into) A[0:m, 0:K] * B[0:K, 0:n]; n a multiple of 16. Column blocks of up to 6
// vectors keep MR * NV <= 24 accumulators, within the 32 vector registers of AVX-512.
// row_scale (m floats) is read only for ScaleRowsAccumulate.
inline void gemm_tile(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                      int64_t ldc, GemmInto into, const float* row_scale = nullptr) {
  if (row_scale == nullptr && into == GemmInto::ScaleRowsAccumulate) into = GemmInto::Accumulate;
  int64_t nv = n / kLanes;
  int64_t col = 0;
  while (nv > 0) {
    // an even split of 7..12 vectors (e.g. 8 = 4 + 4) beats a full block plus a thin one
    const int64_t take = nv <= 6 ? nv : (nv <= 8 ? 4 : (nv <= 12 ? (nv + 1) / 2 : 6));
    const float* bp = b + col;
    float* cp = c + col;
    switch (take) {
      case 6: gemm_columns<6>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
      case 5: gemm_columns<5>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
      case 4: gemm_columns<4>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
      case 3: gemm_columns<3>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
      case 2: gemm_columns<2>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
      default: gemm_columns<1>(m, K, a, bp, ldb, cp, ldc, into, row_scale); break;
    }
    nv -= take;
    col += take * kLanes;
  }
}

}  // namespace cpu
}  // namespace maskattn
