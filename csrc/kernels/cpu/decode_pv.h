// O += P V for the decoding forward (attention_forward_decode.cpp): at most 8 query rows a kv
// head, V rows read as stored (fp32, bf16, fp16) and widened in registers. Included by the
// per-path entries only (decode_pv_avx2.cpp, decode_pv_avx512.cpp), after their target pragma and
// with MASKATTN_DECODE_PV_NS naming the path: everything here has internal linkage in a namespace of
// the path's name, so each path keeps its own instructions (and names them).
//
// Where a whole output row fits the path's accumulator registers, groups of rows are held in
// registers across keys (a store and reload per key chains each key's FMAs to the previous
// key's store). V is always read in address order, each row whole: reading it in column strips
// streamed it from memory at ~0.7x the rate (Zen 4, 1 thread), even with software prefetch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "convert16.h"
#include "vec16.h"
#include "widen_rows.h"

#ifndef MASKATTN_DECODE_PV_NS
#error "define MASKATTN_DECODE_PV_NS (the path's namespace) before including decode_pv.h"
#endif

namespace maskattn {
namespace cpu {
namespace MASKATTN_DECODE_PV_NS {
namespace {

constexpr int64_t kPvKeyBlock = 16;  // keys whose V rows (8 KB at most) stay in L1 for every group of rows

// G rows of out (W vectors each, the whole row) += p[r][j] v_j over keys [j0, j1), in registers.
template <int G, int W, class Rows>
inline void accumulate_pv_group(int64_t j0, int64_t j1, const float* p, int64_t ldp, Rows v, int64_t ldv, float* out,
                                int64_t ldo) {
  f32x8 acc[G][W];
  for (int r = 0; r < G; ++r)
    for (int w = 0; w < W; ++w) acc[r][w] = load8(out + r * ldo + 8 * w);
  for (int64_t j = j0; j < j1; ++j) {
    f32x8 x[W];
    for (int w = 0; w < W; ++w) x[w] = v.load(j * ldv + 8 * w);  // widened once for the group
    for (int r = 0; r < G; ++r) {
      const f32x8 pj = splat8(p[r * ldp + j]);
      for (int w = 0; w < W; ++w) acc[r][w] = fma8(pj, x[w], acc[r][w]);
    }
  }
  for (int r = 0; r < G; ++r)
    for (int w = 0; w < W; ++w) store8(out + r * ldo + 8 * w, acc[r][w]);
}

// Rows in groups of G = kAccumulators / W held in registers (then one by one), key block by key
// block when there is more than one group, so each block's V rows come from memory once.
template <int kAccumulators, int W, class Rows>
inline void accumulate_pv_in_registers(int64_t rows, int64_t n, const float* p, int64_t ldp, Rows v, int64_t ldv,
                                       float* out, int64_t ldo) {
  constexpr int G = kAccumulators / W;
  const int64_t block = rows <= G ? n : kPvKeyBlock;
  for (int64_t j0 = 0; j0 < n; j0 += block) {
    const int64_t j1 = std::min(n, j0 + block);
    int64_t r = 0;
    for (; r + G <= rows; r += G) accumulate_pv_group<G, W>(j0, j1, p + r * ldp, ldp, v, ldv, out + r * ldo, ldo);
    for (; r < rows; ++r) accumulate_pv_group<1, W>(j0, j1, p + r * ldp, ldp, v, ldv, out + r * ldo, ldo);
  }
}

// Rows too long for the registers: each output row stays in L1, reloaded and stored per key.
template <class Rows>
inline void accumulate_pv_in_l1(int64_t rows, int64_t n, const float* p, int64_t ldp, Rows v, int64_t ldv, int64_t dv,
                                float* out, int64_t ldo) {
  f32x8 pj[8];
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t r = 0; r < rows; ++r) pj[r] = splat8(p[r * ldp + j]);
    for (int64_t c = 0; c < dv; c += 8) {
      const f32x8 x = v.load(j * ldv + c);  // widened once for every row
      for (int64_t r = 0; r < rows; ++r) store8(out + r * ldo + c, fma8(pj[r], x, load8(out + r * ldo + c)));
    }
  }
}

// The row length in vectors as a compile-time W (up to kAccumulators), or false.
template <int kAccumulators, int W = 1, class F>
inline bool with_row_vectors(int64_t vectors, F&& f) {
  if constexpr (W > kAccumulators) {
    return false;
  } else {
    if (vectors == W) {
      f(std::integral_constant<int, W>{});
      return true;
    }
    return with_row_vectors<kAccumulators, W + 1>(vectors, f);
  }
}

// out[r] = alpha[r] * out[r] + sum over j < n of p[r][j] v_j for r < rows <= 8; dv a multiple of
// 8. The FMAs are a key-by-key update's, in key order, whatever the grouping or the path: the
// sums are the same bits on every path.
template <int kAccumulators>
inline void decode_pv_with(const DecodePvArgs& a) {
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.dv; c += 8) store8(a.out + r * a.ldo + c, load8(a.out + r * a.ldo + c) * a.alpha[r]);
  with_rows_of(a.v_kind, a.v, a.v_offset, [&](auto v) {
    const bool done = with_row_vectors<kAccumulators>(a.dv / 8, [&](auto w) {
      accumulate_pv_in_registers<kAccumulators, decltype(w)::value>(a.rows, a.n, a.p, a.ldp, v, a.ldv, a.out, a.ldo);
    });
    if (!done) accumulate_pv_in_l1(a.rows, a.n, a.p, a.ldp, v, a.ldv, a.dv, a.out, a.ldo);
  });
}

}  // namespace
}  // namespace MASKATTN_DECODE_PV_NS
}  // namespace cpu
}  // namespace maskattn
