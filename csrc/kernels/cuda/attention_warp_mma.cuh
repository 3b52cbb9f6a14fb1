// Building blocks of the tensor-core attention kernels: async tile copies into swizzled shared
// memory, the two warp-level products every kernel is made of, and the masked base-2 scores.
// A warp owns 16 rows; fragments follow attention_fragments.h.
#pragma once
#include <cstdint>

#include "../../mask_spec.h"
#include "attention_fragments.h"
#include "attention_math.h"
#include "attention_mma.cuh"

namespace maskattn {
namespace attn {

// Rows [row0, row0 + ROWS) x cols [0, ROW_ELEMS) of a row-major global matrix (`stride`
// elements between rows) into a swizzled shared tile, in 16-byte cp.async chunks. Rows at or past
// valid_rows and columns at or past valid_cols (a multiple of 8) become zeros, never read.
template <int ROWS, int ROW_ELEMS, int THREADS, typename Elem>
__device__ __forceinline__ void copy_tile_async(Elem* tile, const Elem* src, int64_t stride, int64_t row0,
                                                int64_t valid_rows, int valid_cols) {
  constexpr int kChunksPerRow = ROW_ELEMS / 8;
  static_assert(THREADS % kChunksPerRow == 0 && ROWS % (THREADS / kChunksPerRow) == 0,
                "tile chunks must split evenly over the block");
  // a thread copies one column chunk of rows r_first, r_first + kRowStep, ...: one source pointer
  // stepped by a constant and 32-bit row tests, no 64-bit product or compare per chunk
  constexpr int kRowStep = THREADS / kChunksPerRow;
  const int r_first = (int)threadIdx.x / kChunksPerRow, col = ((int)threadIdx.x % kChunksPerRow) * 8;
  const int64_t rows_left = valid_rows - row0;
  const int rows = rows_left >= ROWS ? ROWS : (rows_left > 0 ? (int)rows_left : 0);
  const bool col_ok = col < valid_cols;
  const Elem* from = src + (row0 + r_first) * stride + col;  // formed, read only where the row exists
  const int64_t step = (int64_t)kRowStep * stride;
  const uint32_t base = smem_address(tile);
#pragma unroll
  for (int it = 0; it < ROWS / kRowStep; ++it) {
    const int r = r_first + it * kRowStep;
    const bool ok = col_ok && r < rows;
    cp_async_16(base + 2u * (uint32_t)frag::swizzled(r, col, ROW_ELEMS), ok ? from : src, ok);
    from += step;
  }
}

template <int N, int M>
__device__ __forceinline__ void zero_fill(float (&acc)[N][M]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int k = 0; k < M; ++k) acc[n][k] = 0.f;
}

// A operand of rows a_row0..a_row0+15, k-step ks, from a swizzled shared tile.
template <int ROW_ELEMS>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], uint32_t a_tile, int a_row0, int ks, int lane) {
  ldmatrix_x4(a, a_tile + 2u * (uint32_t)frag::swizzled(a_row0 + frag::ldm_row_major_row(lane),
                                                        ks * 16 + frag::ldm_row_major_col(lane), ROW_ELEMS));
}

// acc[m] (16 x 8*N_TILES) += A[m](16 x K) * B^T for k-step ks, for each of a warp's M_TILES row
// groups, B the rows 0..8*N_TILES-1 of a swizzled [N][K] shared tile (each row a B column): every
// B fragment loaded serves all M_TILES products (independent accumulators the pipe overlaps).
template <typename Elem, int ROW_ELEMS, int M_TILES, int N_TILES>
__device__ __forceinline__ void mma_abt_step_rows(float (&acc)[M_TILES][N_TILES][4], const uint32_t (&a)[M_TILES][4],
                                                  uint32_t b_tile, int ks, int lane) {
  static_assert(N_TILES % 2 == 0, "n-tiles come in pairs");
#pragma unroll
  for (int np = 0; np < N_TILES / 2; ++np) {
    uint32_t bf[4];
    ldmatrix_x4(bf, b_tile + 2u * (uint32_t)frag::swizzled(np * 16 + frag::ldm_n_major_row(lane),
                                                           ks * 16 + frag::ldm_n_major_col(lane), ROW_ELEMS));
#pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) {
      mma_16x8x16(acc[mt][2 * np], a[mt], bf[0], bf[1], Elem());
      mma_16x8x16(acc[mt][2 * np + 1], a[mt], bf[2], bf[3], Elem());
    }
  }
}

// One row group (16 rows) of mma_abt_step_rows.
template <typename Elem, int ROW_ELEMS, int N_TILES>
__device__ __forceinline__ void mma_abt_step(float (&acc)[N_TILES][4], const uint32_t (&a)[4], uint32_t b_tile,
                                             int ks, int lane) {
  // T[N] and T[1][N] have one layout: the single group is the first of one
  mma_abt_step_rows<Elem, ROW_ELEMS, 1, N_TILES>(reinterpret_cast<float(&)[1][N_TILES][4]>(acc),
                                                 reinterpret_cast<const uint32_t(&)[1][4]>(a), b_tile, ks, lane);
}

// acc[m] += A[m] * B^T over K = 16*K_STEPS, A[m] the rows a_row0 + 16 m.. of a shared tile. Steps
// of zero padding (head sizes below the bucket) are multiplied too: a run-time test put each
// ldmatrix and its mma in a branch of their own, so no load could be issued ahead (SASS of the
// forward: 40 branches and ~300 instructions a key tile; see bench/gpu/NOTES.md).
template <typename Elem, int ROW_ELEMS, int M_TILES, int N_TILES, int K_STEPS>
__device__ __forceinline__ void mma_abt_rows(float (&acc)[M_TILES][N_TILES][4], uint32_t a_tile, int a_row0,
                                             uint32_t b_tile, int lane) {
#pragma unroll
  for (int ks = 0; ks < K_STEPS; ++ks) {
    uint32_t a[M_TILES][4];
#pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) load_a_fragment<ROW_ELEMS>(a[mt], a_tile, a_row0 + 16 * mt, ks, lane);
    mma_abt_step_rows<Elem, ROW_ELEMS>(acc, a, b_tile, ks, lane);
  }
}

// One row group (16 rows) of mma_abt_rows.
template <typename Elem, int ROW_ELEMS, int N_TILES, int K_STEPS>
__device__ __forceinline__ void mma_abt(float (&acc)[N_TILES][4], uint32_t a_tile, int a_row0, uint32_t b_tile,
                                        int lane) {
  mma_abt_rows<Elem, ROW_ELEMS, 1, N_TILES, K_STEPS>(reinterpret_cast<float(&)[1][N_TILES][4]>(acc), a_tile,
                                                     a_row0, b_tile, lane);
}

// acc[m] (16 x 8*N_TILES) += P[m] * B where P[m] (16 x 8*K_TILES, accumulator layout, fp32) is
// rounded to Elem and B is rows 0..8*K_TILES-1, cols col0.. of a swizzled [K][N] shared tile,
// read transposed; each B fragment serves all M_TILES row groups. Columns of zero padding are
// multiplied too, as in mma_abt_rows.
template <typename Elem, int ROW_ELEMS, int M_TILES, int K_TILES, int N_TILES>
__device__ __forceinline__ void mma_pb_rows(float (&acc)[M_TILES][N_TILES][4], const float (&p)[M_TILES][K_TILES][4],
                                            uint32_t b_tile, int col0, int lane) {
  static_assert(K_TILES % 2 == 0 && N_TILES % 2 == 0, "tiles come in pairs");
#pragma unroll
  for (int kk = 0; kk < K_TILES / 2; ++kk) {
    // accumulator tiles 2kk and 2kk+1 are exactly the A fragment of k-step kk
    uint32_t a[M_TILES][4];
#pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) {
      a[mt][0] = pack2(p[mt][2 * kk][0], p[mt][2 * kk][1], Elem());
      a[mt][1] = pack2(p[mt][2 * kk][2], p[mt][2 * kk][3], Elem());
      a[mt][2] = pack2(p[mt][2 * kk + 1][0], p[mt][2 * kk + 1][1], Elem());
      a[mt][3] = pack2(p[mt][2 * kk + 1][2], p[mt][2 * kk + 1][3], Elem());
    }
#pragma unroll
    for (int np = 0; np < N_TILES / 2; ++np) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b_tile + 2u * (uint32_t)frag::swizzled(kk * 16 + frag::ldm_row_major_row(lane),
                                                                   col0 + np * 16 + frag::ldm_row_major_col(lane),
                                                                   ROW_ELEMS));
#pragma unroll
      for (int mt = 0; mt < M_TILES; ++mt) {
        mma_16x8x16(acc[mt][2 * np], a[mt], bf[0], bf[1], Elem());
        mma_16x8x16(acc[mt][2 * np + 1], a[mt], bf[2], bf[3], Elem());
      }
    }
  }
}

// One row group (16 rows) of mma_pb_rows.
template <typename Elem, int ROW_ELEMS, int K_TILES, int N_TILES>
__device__ __forceinline__ void mma_pb(float (&acc)[N_TILES][4], const float (&p)[K_TILES][4], uint32_t b_tile,
                                       int col0, int lane) {
  mma_pb_rows<Elem, ROW_ELEMS, 1, K_TILES, N_TILES>(reinterpret_cast<float(&)[1][N_TILES][4]>(acc),
                                                    reinterpret_cast<const float(&)[1][K_TILES][4]>(p), b_tile,
                                                    col0, lane);
}

// The two rows a lane holds in a 16-row group: lane/4 and lane/4 + 8 from the group's first row.
struct LaneRows {
  int64_t row[2];
  __device__ __forceinline__ explicit LaneRows(int64_t first) : row{first, first + 8} {}
};

// Scores of a full tile (no mask arithmetic) into the base-2 domain.
template <int N_TILES>
__device__ __forceinline__ void scale_scores_log2(float (&s)[N_TILES][4], float scale_log2) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) s[nt][r] *= scale_log2;
}

// Raw scores of a warp's rows (row[0] for lane/4, row[1] for lane/4 + 8) against keys j0.. into
// the base-2 domain. Partial tiles (kMasked) set keys outside a row's band, or refused
// element-wise, to -inf and add the additive mask; full tiles need no mask arithmetic.
template <bool kMasked, int N_TILES>
__device__ __forceinline__ void scores_to_log2(float (&s)[N_TILES][4], float scale_log2, const MaskSpec& m,
                                               int64_t b, int64_t h, const int64_t (&row)[2],
                                               const KeyRange (&band)[2], int64_t j0, int lane) {
#pragma unroll
  for (int nt = 0; nt < N_TILES; ++nt) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      float v = s[nt][r] * scale_log2;
      if constexpr (kMasked) {
        const int rh = r >> 1;
        const int64_t j = j0 + nt * 8 + frag::acc_col(lane, r);
        bool ok = j >= band[rh].begin && j < band[rh].end;
        if (ok && m.has_elementwise()) {
          ok = m.allowed_in_range(b, h, row[rh], j);
          if (ok) v += m.additive_log2(b, h, row[rh], j);
        }
        v = ok ? v : -INFINITY;
      }
      s[nt][r] = v;
    }
  }
}

}  // namespace attn
}  // namespace maskattn
