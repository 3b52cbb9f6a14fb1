// The instruction-set-specific microkernels of the CPU kernels, as one table per path.
//
// Everything else (tile loops, online softmax, masking) is one copy compiled for the baseline;
// only the entries of this table differ between paths. cpu_kernels() returns the table of the
// path selected at run time (cpu_isa.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpu_isa.h"

namespace maskattn {
namespace cpu {

// How a product lands in C: overwrite, add, or add after scaling each row of C (online softmax).
enum class GemmInto { Overwrite, Accumulate, ScaleRowsAccumulate };

struct GemmA {
  const float* p;
  int64_t row_stride, k_stride;
};

// C[0:m, 0:n] (into) A[0:m, 0:K] * B[0:K, 0:n] in fp32; n a multiple of 16; row_scale (m floats)
// is read only for ScaleRowsAccumulate.
using GemmF32Fn = void (*)(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                           int64_t ldc, GemmInto into, const float* row_scale);

struct CpuKernels {
  CpuIsa isa;
  GemmF32Fn gemm_f32;
  const char* gemm_f32_isa;  // the instructions gemm_f32 runs, for build_info and the bench
};

// The table of the selected path.
const CpuKernels& cpu_kernels();

// Which instructions each CPU kernel runs on the selected path (build_info, the bench).
struct KernelPath {
  std::string kernel, instructions;
};
std::vector<KernelPath> cpu_kernel_paths();

// Per-path entries (defined in gemm_f32_<isa>.cpp; call only where the CPU supports the path).
void gemm_f32_avx2(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                   int64_t ldc, GemmInto into, const float* row_scale);
void gemm_f32_avx512(int64_t m, int64_t n, int64_t K, const GemmA& a, const float* b, int64_t ldb, float* c,
                     int64_t ldc, GemmInto into, const float* row_scale);

}  // namespace cpu
}  // namespace maskattn
