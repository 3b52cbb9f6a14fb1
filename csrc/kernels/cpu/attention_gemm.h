// fp32 tile products of the attention kernels: C (M x N) = A (M x K) * B (K x N).
//
// B is row-major with N a multiple of 16 (callers pad). A is read through (row, k) strides, so
// A = P or A = P^T need no transpose copy. The register-blocked microkernel behind gemm_tile is
// chosen once per instruction set at run time (cpu_kernels.h): AVX2 or AVX-512.
#pragma once
#include <cstdint>

#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

// C[0:m, 0:n] (into) A[0:m, 0:K] * B[0:K, 0:n]; n a multiple of 16.
// row_scale (m floats) is read only for ScaleRowsAccumulate.
inline void gemm_tile(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                      int64_t ldc, GemmInto into, const float* row_scale = nullptr) {
  if (row_scale == nullptr && into == GemmInto::ScaleRowsAccumulate) into = GemmInto::Accumulate;
  cpu_kernels().gemm_f32(m, n, K, a, b, ldb, c, ldc, into, row_scale);
}

}  // namespace cpu
}  // namespace maskattn
