// The register-blocked fp32 tile product, written once over a vector type V and compiled once per
// instruction set: gemm_f32_<isa>.cpp includes it under `#pragma GCC target(...)`.
//
// Everything here has internal linkage (anonymous namespace), so each instruction set's copy stays
// its own: the linker can never merge an AVX-512 instantiation into a baseline caller. It uses
// only V's intrinsics and plain integer arithmetic, no library code.
//
// V provides: reg, kLanes, kRows (MR), kMaxVecs (widest column block), zero, load, store,
// broadcast, fma, add, mul.
#pragma once

namespace maskattn {
namespace cpu {
namespace {

// An MR x NV block of C: MR rows, NV vectors of columns. The block's products are summed in
// registers and then added to C, so long accumulations (dK, dV over thousands of query rows) keep
// the accuracy of a blocked summation.
template <class V, int MR, int NV>
inline void gemm_block(int64_t K, const float* a, int64_t a_row, int64_t a_k, const float* b, int64_t ldb, float* c,
                       int64_t ldc, GemmInto into, const float* row_scale) {
  typename V::reg acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int64_t k = 0; k < K; ++k) {
    typename V::reg bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * V::kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename V::reg av = V::broadcast(a + r * a_row);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
    }
    a += a_k;
    b += ldb;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* cp = c + r * ldc + v * V::kLanes;
      if (into == GemmInto::Accumulate) acc[r][v] = V::add(acc[r][v], V::load(cp));
      if (into == GemmInto::ScaleRowsAccumulate)
        acc[r][v] = V::fma(V::load(cp), V::broadcast(row_scale + r), acc[r][v]);
      V::store(cp, acc[r][v]);
    }
}

// Rows [0, m) of one column block of NV vectors: blocks of V::kRows rows, then the remainder.
template <class V, int NV>
inline void gemm_columns(int64_t m, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c, int64_t ldc,
                         GemmInto into, const float* row_scale) {
  constexpr int MR = V::kRows;
  int64_t r = 0;
  for (; r + MR <= m; r += MR)
    gemm_block<V, MR, NV>(K, a.p + r * a.row_stride, a.row_stride, a.k_stride, b, ldb, c + r * ldc, ldc, into,
                          row_scale ? row_scale + r : nullptr);
  const float* ap = a.p + r * a.row_stride;
  float* cp = c + r * ldc;
  const float* rs = row_scale ? row_scale + r : nullptr;
  switch (m - r) {
    case 7: if constexpr (MR > 7) gemm_block<V, 7, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 6: if constexpr (MR > 6) gemm_block<V, 6, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 5: if constexpr (MR > 5) gemm_block<V, 5, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 4: if constexpr (MR > 4) gemm_block<V, 4, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 3: gemm_block<V, 3, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 2: gemm_block<V, 2, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    case 1: gemm_block<V, 1, NV>(K, ap, a.row_stride, a.k_stride, b, ldb, cp, ldc, into, rs); break;
    default: break;
  }
}

// Column blocks of at most V::kMaxVecs vectors, split evenly (e.g. 6 = 3 + 3, not 4 + 2).
template <class V>
inline void gemm_f32_tile(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                          int64_t ldc, GemmInto into, const float* row_scale) {
  constexpr int64_t kMax = V::kMaxVecs;
  int64_t nv = n / V::kLanes;
  int64_t col = 0;
  while (nv > 0) {
    const int64_t blocks = (nv + kMax - 1) / kMax;
    const int64_t take = (nv + blocks - 1) / blocks;
    switch (take) {
      case 4: if constexpr (kMax >= 4) gemm_columns<V, 4>(m, K, a, b + col, ldb, c + col, ldc, into, row_scale); break;
      case 3: if constexpr (kMax >= 3) gemm_columns<V, 3>(m, K, a, b + col, ldb, c + col, ldc, into, row_scale); break;
      case 2: if constexpr (kMax >= 2) gemm_columns<V, 2>(m, K, a, b + col, ldb, c + col, ldc, into, row_scale); break;
      default: gemm_columns<V, 1>(m, K, a, b + col, ldb, c + col, ldc, into, row_scale); break;
    }
    nv -= take;
    col += take * V::kLanes;
  }
}

}  // namespace
}  // namespace cpu
}  // namespace maskattn
