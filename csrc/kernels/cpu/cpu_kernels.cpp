#include "cpu_kernels.h"

#include <atomic>

namespace maskattn {
namespace cpu {

namespace {
std::atomic<bool> g_avx2_bf16_pairs{false};
}  // namespace

void use_avx2_bf16_pairs(bool on) { g_avx2_bf16_pairs.store(on, std::memory_order_relaxed); }

const CpuKernels& cpu_kernels() {
  // AVX2 widens bf16 to fp32 (faster there than multiplying k-pairs); the pairs kernel is kept so
  // the bf16 operand layouts of the AVX512-BF16 / AMX paths are exercised on any CPU
  // softmax steps of the attention tiles: the baseline's vectors, or AVX-512 registers
  // and their rounding to bf16: the baseline's, or vcvtne2ps2bf16
  // (and masked_softmax's exp pass, the decoding forward's P V accumulation, the 16-bit row conversions)
#define MASKATTN_VECTOR_ENTRIES_AVX2 \
  online_softmax_tile_avx2, probabilities_from_stats_avx2, nullptr, nullptr, nullptr, nullptr, decode_pv_avx2, \
      "avx2 registers", nullptr, nullptr
#define MASKATTN_VECTOR_ENTRIES_AVX512 \
  online_softmax_tile_avx512, probabilities_from_stats_avx512, "avx512f", nullptr, nullptr, row_exp_sum_avx512, \
      decode_pv_avx512, "avx512vl registers", store_row16_avx512, load_row16_avx512
#define MASKATTN_VECTOR_ENTRIES_AVX512_BF16                                                                \
  online_softmax_tile_avx512, probabilities_from_stats_avx512, "avx512f, bf16 rounding by vcvtne2ps2bf16", \
      round_rows_to_bf16_avx512bf16, round_pairs_over_rows_avx512bf16, row_exp_sum_avx512, decode_pv_avx512, \
      "avx512vl registers", store_row16_avx512bf16, load_row16_avx512
  static const CpuKernels avx2{CpuIsa::Avx2, gemm_f32_avx2, "avx2+fma", nullptr, nullptr, nullptr, nullptr,
                               MASKATTN_VECTOR_ENTRIES_AVX2};
  static const CpuKernels avx2_pairs{CpuIsa::Avx2, gemm_f32_avx2, "avx2+fma", gemm_bf16_avx2,
                                     "avx2 (bf16 pairs widened in registers)", nullptr, nullptr,
                                     MASKATTN_VECTOR_ENTRIES_AVX2};
  static const CpuKernels avx512{CpuIsa::Avx512, gemm_f32_avx512, "avx512f", nullptr, nullptr, nullptr, nullptr,
                                 MASKATTN_VECTOR_ENTRIES_AVX512};
  static const CpuKernels avx512bf16{CpuIsa::Avx512Bf16, gemm_f32_avx512, "avx512f", gemm_bf16_avx512,
                                     "avx512_bf16 (vdpbf16ps)", nullptr, nullptr,
                                     MASKATTN_VECTOR_ENTRIES_AVX512_BF16};
  static const CpuKernels amx{CpuIsa::Amx, gemm_f32_avx512, "avx512f", gemm_bf16_amx,
                              amx_emulated() ? "amx-bf16 (tdpbf16ps emulated in software: a test build)"
                                             : "amx-bf16 (tdpbf16ps)",
                              amx_tiles_begin, amx_tiles_end, MASKATTN_VECTOR_ENTRIES_AVX512_BF16};
#undef MASKATTN_VECTOR_ENTRIES_AVX2
#undef MASKATTN_VECTOR_ENTRIES_AVX512
#undef MASKATTN_VECTOR_ENTRIES_AVX512_BF16
  switch (selected_cpu_isa()) {
    case CpuIsa::Avx512: return avx512;
    case CpuIsa::Avx512Bf16: return avx512bf16;
    case CpuIsa::Amx: return amx;
    default: return g_avx2_bf16_pairs.load(std::memory_order_relaxed) ? avx2_pairs : avx2;
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
      {"attention bfloat16 products",
       k.gemm_bf16 ? std::string(k.gemm_bf16_isa) + " (decoding aside)" : "bf16 widened to fp32, " + f32},
      {"attention float16 products", "fp16 widened to fp32, " + f32},
      {"attention decoding", std::string("K and V rows streamed as stored, 16-bit widened in registers, ") +
                                 baseline_vectors() + ", P V accumulated in " + k.decode_pv_isa +
                                 " (over 8 query rows per kv head: " + f32 + ")"},
      {"attention softmax tiles", k.softmax_isa ? k.softmax_isa : baseline_vectors()},
      {"masked_softmax, masking, conversions",
       k.row_exp_sum ? std::string(baseline_vectors()) + "; exp pass and 16-bit row conversions avx512f"
                     : std::string(baseline_vectors())},
  };
}

}  // namespace cpu
}  // namespace maskattn
