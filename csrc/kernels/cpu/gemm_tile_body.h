// The register-blocked tile product, written once over a vector type V and compiled once per
// instruction set: gemm_*_<isa>.cpp include it under `#pragma GCC target(...)`.
//
// Everything here has internal linkage (anonymous namespace), so each instruction set's copy stays
// its own: the linker can never merge an AVX-512 instantiation into a baseline caller. It uses
// only V's intrinsics and plain integer arithmetic, no library code.
//
// V provides the operand types AElem / BElem, kKStep (k values per step: 1 for fp32, 2 for bf16
// pairs), kLanes (fp32 columns per accumulator), kBStride (B elements between column vectors),
// kRows (MR), kMaxVecs (widest column block), and: zero, load, store, add, mul, fma on the fp32
// accumulators; load_b, broadcast_a, dot (acc += a * b over one k step) on the operands.
#pragma once

namespace maskattn {
namespace cpu {
namespace {

// An MR x NV block of C: MR rows, NV vectors of columns. The block's products are summed in
// registers and then added to C, so long accumulations (dK, dV over thousands of query rows) keep
// the accuracy of a blocked summation. A row r, step k: a + r * a_row + k * a_k (k counted in
// elements); B step k: b + (k / kKStep) * ldb.
template <class V, int MR, int NV>
inline void gemm_block(int64_t K, const typename V::AElem* a, int64_t a_row, int64_t a_k,
                       const typename V::BElem* b, int64_t ldb, float* c, int64_t ldc, GemmInto into,
                       const float* row_scale, float alpha) {
  typename V::reg acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int64_t k = 0; k < K; k += V::kKStep) {
    typename V::BVec bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = V::load_b(b + v * V::kBStride);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename V::AVec av = V::broadcast_a(a + r * a_row);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::dot(av, bv[v], acc[r][v]);
    }
    a += V::kKStep * a_k;
    b += ldb;
  }
  const typename V::reg scale = V::splat(alpha);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* cp = c + r * ldc + v * V::kLanes;
      if (alpha != 1.f) acc[r][v] = V::mul(acc[r][v], scale);
      if (into == GemmInto::Accumulate) acc[r][v] = V::add(acc[r][v], V::load(cp));
      if (into == GemmInto::ScaleRowsAccumulate) acc[r][v] = V::fma(V::load(cp), V::splat(row_scale[r]), acc[r][v]);
      V::store(cp, acc[r][v]);
    }
}

// Rows [0, m) of one column block of NV vectors: blocks of V::kRows rows, then the remainder.
template <class V, int NV>
inline void gemm_columns(int64_t m, int64_t K, const typename V::AElem* a, int64_t a_row, int64_t a_k,
                         const typename V::BElem* b, int64_t ldb, float* c, int64_t ldc, GemmInto into,
                         const float* row_scale, float alpha) {
  constexpr int MR = V::kRows;
  int64_t r = 0;
  for (; r + MR <= m; r += MR)
    gemm_block<V, MR, NV>(K, a + r * a_row, a_row, a_k, b, ldb, c + r * ldc, ldc, into,
                          row_scale ? row_scale + r : nullptr, alpha);
  const auto* ap = a + r * a_row;
  float* cp = c + r * ldc;
  const float* rs = row_scale ? row_scale + r : nullptr;
  switch (m - r) {
    case 7: if constexpr (MR > 7) gemm_block<V, 7, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 6: if constexpr (MR > 6) gemm_block<V, 6, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 5: if constexpr (MR > 5) gemm_block<V, 5, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 4: if constexpr (MR > 4) gemm_block<V, 4, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 3: gemm_block<V, 3, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 2: gemm_block<V, 2, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    case 1: gemm_block<V, 1, NV>(K, ap, a_row, a_k, b, ldb, cp, ldc, into, rs, alpha); break;
    default: break;
  }
}

// C[0:m, 0:n] (into) alpha * A * B; n a multiple of V::kLanes. Column blocks of at most
// V::kMaxVecs vectors, split evenly (e.g. 6 = 3 + 3, not 4 + 2).
template <class V>
inline void gemm_tile_blocked(int64_t m, int64_t n, int64_t K, const typename V::AElem* a, int64_t a_row,
                              int64_t a_k, const typename V::BElem* b, int64_t ldb, float* c, int64_t ldc,
                              GemmInto into, const float* row_scale, float alpha) {
  constexpr int64_t kMax = V::kMaxVecs;
  int64_t nv = n / V::kLanes;
  int64_t col = 0;
  while (nv > 0) {
    const int64_t blocks = (nv + kMax - 1) / kMax;
    const int64_t take = (nv + blocks - 1) / blocks;
    const auto* bp = b + col / V::kLanes * V::kBStride;
    switch (take) {
      case 4: if constexpr (kMax >= 4) gemm_columns<V, 4>(m, K, a, a_row, a_k, bp, ldb, c + col, ldc, into, row_scale, alpha); break;
      case 3: if constexpr (kMax >= 3) gemm_columns<V, 3>(m, K, a, a_row, a_k, bp, ldb, c + col, ldc, into, row_scale, alpha); break;
      case 2: if constexpr (kMax >= 2) gemm_columns<V, 2>(m, K, a, a_row, a_k, bp, ldb, c + col, ldc, into, row_scale, alpha); break;
      default: gemm_columns<V, 1>(m, K, a, a_row, a_k, bp, ldb, c + col, ldc, into, row_scale, alpha); break;
    }
    nv -= take;
    col += take * V::kLanes;
  }
}

}  // namespace
}  // namespace cpu
}  // namespace maskattn
