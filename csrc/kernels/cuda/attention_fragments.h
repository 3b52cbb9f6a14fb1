// Where the tensor-core attention kernels find each element: mma.m16n8k16 accumulator
// coordinates, the per-lane row addresses handed to ldmatrix.x4, and the shared-memory swizzle.
// Plain integer maps (no CUDA types), so they can be checked on the host against the PTX layouts.
#pragma once
#include "../../host_device.h"

namespace maskattn {
namespace frag {

// Accumulator of one 16x8 mma tile: register r (0..3) of `lane` holds (acc_row, acc_col).
// Rows are lane/4 and lane/4 + 8; each lane holds two adjacent columns.
MA_HD int acc_row(int lane, int r) { return (lane >> 2) + ((r >> 1) << 3); }
MA_HD int acc_col(int lane, int r) { return ((lane & 3) << 1) + (r & 1); }

// ldmatrix.x4 over a 16x16 block with its four 8x8 matrices ordered (rows 0-7, cols 0-7),
// (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15): lanes 8m..8m+7 name
// the rows of matrix m. Non-transposed this is an A operand (rows = M, cols = K); transposed
// (.trans) over a row-major [K][N] block it is the B operands of two n-tiles (cols 0-7, 8-15).
MA_HD int ldm_row_major_row(int lane) { return (lane & 7) + (((lane >> 3) & 1) << 3); }
MA_HD int ldm_row_major_col(int lane) { return (lane >> 4) << 3; }

// ldmatrix.x4 over a 16x16 block of a row-major [N][K] tile with matrices ordered (rows 0-7,
// cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 0-7), (rows 8-15, cols 8-15): registers
// 0,1 are the B operand (K x N, "col") of the n-tile of rows 0-7, registers 2,3 that of rows 8-15.
MA_HD int ldm_n_major_row(int lane) { return (lane & 7) + ((lane >> 4) << 3); }
MA_HD int ldm_n_major_col(int lane) { return ((lane >> 3) & 1) << 3; }

// Element offset of (row, col) in a shared tile of rows of `row_elems` 16-bit elements
// (a multiple of 64). Each row's 16-byte chunks are XOR-permuted by the row's low 3 bits, so the
// 8 rows one ldmatrix phase reads (same logical chunk) fall in 8 different bank groups.
MA_HD int swizzled(int row, int col, int row_elems) {
  return row * row_elems + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

}  // namespace frag
}  // namespace maskattn
