#include "cpu_kernels.h"

namespace maskattn {
namespace cpu {

const CpuKernels& cpu_kernels() {
  static const CpuKernels avx2{CpuIsa::Avx2, gemm_f32_avx2, "avx2+fma"};
  static const CpuKernels avx512{CpuIsa::Avx512, gemm_f32_avx512, "avx512f"};
  static const CpuKernels avx512bf16{CpuIsa::Avx512Bf16, gemm_f32_avx512, "avx512f"};
  static const CpuKernels amx{CpuIsa::Amx, gemm_f32_avx512, "avx512f"};
  switch (selected_cpu_isa()) {
    case CpuIsa::Avx512: return avx512;
    case CpuIsa::Avx512Bf16: return avx512bf16;
    case CpuIsa::Amx: return amx;
    default: return avx2;
  }
}

// Vector width of the code compiled for the baseline (-march): softmax, masking, conversions.
static const char* baseline_vectors() {
#if defined(__AVX512F__)
  return "avx512f (baseline -march)";
#elif defined(__AVX2__)
  return "avx2+fma (baseline -march)";
#else
  return "sse2 (baseline -march)";
#endif
}

std::vector<KernelPath> cpu_kernel_paths() {
  const CpuKernels& k = cpu_kernels();
  const std::string f32 = k.gemm_f32_isa;
  return {
      {"attention float32 products", f32},
      {"attention bfloat16 products", "bf16 widened to fp32, " + f32},
      {"attention float16 products", "fp16 widened to fp32, " + f32},
      {"softmax, masking, conversions", baseline_vectors()},
  };
}

}  // namespace cpu
}  // namespace maskattn
