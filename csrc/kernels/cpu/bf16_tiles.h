// fp32 tiles rounded (to nearest even) into the two bf16 operand layouts of gemm_bf16
// (cpu_kernels.h): plain rows (an A operand), or k-pairs over rows (a B operand whose depth runs
// over the tile's rows). 8 columns at a time in vector registers.
#pragma once
#include <algorithm>
#include <cstdint>

#include "convert16.h"
#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

typedef uint16_t u16x16 __attribute__((vector_size(32)));

// dst row r = bf16(src row r) for columns [0, cols), zero in [cols, ldd); cols a multiple of 8.
inline void round_rows_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * lds;
    uint16_t* y = dst + r * ldd;
    for (int64_t c = 0; c < cols; c += 8) store_u16x8(y + c, float_to_bf16x8(load8(x + c)));
    std::fill(y + cols, y + ldd, (uint16_t)0);
  }
}

// Rows [0, rows) of src (cols columns, a multiple of 8) as k-pairs over rows: pair row p of dst
// (ldd elements apart) holds (src[2p][c], src[2p + 1][c]) at 2c, 2c + 1. Pair rows up to
// round_up(rows, 32) / 2 are written; rows past `rows` count as zero.
inline void round_pairs_over_rows(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                  int64_t ldd) {
  const int64_t pair_rows = (rows + 31) / 32 * 16;
  for (int64_t p = 0; p < pair_rows; ++p) {
    const int64_t r = 2 * p;
    uint16_t* y = dst + p * ldd;
    if (r >= rows) {
      std::fill(y, y + 2 * cols, (uint16_t)0);
      continue;
    }
    const float* even = src + r * lds;
    const float* odd = r + 1 < rows ? even + lds : nullptr;
    for (int64_t c = 0; c < cols; c += 8) {
      const u16x8 a = float_to_bf16x8(load8(even + c));
      const u16x8 b = odd ? float_to_bf16x8(load8(odd + c)) : u16x8{};
      const u16x16 ab = __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
      std::memcpy(y + 2 * c, &ab, sizeof(ab));
    }
  }
}

// The selected path's rounding of probabilities and dS (cpu_kernels.h), or the ones above.
inline void round_tile_rows_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                    int64_t ldd) {
  const RoundTileFn f = cpu_kernels().round_rows_to_bf16;
  f ? f(src, rows, cols, lds, dst, ldd) : round_rows_to_bf16(src, rows, cols, lds, dst, ldd);
}
inline void round_tile_pairs_over_rows(const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst,
                                       int64_t ldd) {
  const RoundTileFn f = cpu_kernels().round_pairs_over_rows;
  f ? f(src, rows, cols, lds, dst, ldd) : round_pairs_over_rows(src, rows, cols, lds, dst, ldd);
}

}  // namespace cpu
}  // namespace maskattn
