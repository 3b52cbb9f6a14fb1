// Which x86 instruction sets the CPU kernels use, decided at run time from what the CPU and the
// OS report (cpuid, xgetbv, Linux's AMX permission), never from the build machine.
//
// The package is compiled for a portable baseline (x86-64-v3: AVX2, FMA, F16C); wider paths live
// in leaf microkernels compiled with __attribute__((target)) and are called only when selected.
// MASKATTN_CPU_ISA=avx2|avx512|avx512bf16|amx picks a path (for tests and comparisons); a path the
// CPU lacks is refused with an error, never run.
#pragma once
#include <string>

namespace maskattn {
namespace cpu {

// Ordered: each level includes the ones before it.
//   Avx2        fp32 FMA on 8 lanes; fp16/bf16 widened to fp32
//   Avx512      fp32 FMA on 16 lanes; fp16/bf16 widened to fp32
//   Avx512Bf16  + bf16 products by vdpbf16ps (fp32 accumulation)
//   Amx         + bf16 products on AMX tiles (tdpbf16ps), fp16 ones too where AMX-FP16 exists
enum class CpuIsa : int { Avx2 = 0, Avx512 = 1, Avx512Bf16 = 2, Amx = 3 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512 = false;       // F, BW, DQ, VL and the OS saving zmm state
  bool avx512_bf16 = false;  // AVX512_BF16
  bool avx512_fp16 = false;  // AVX512_FP16 (reported only: its products accumulate in fp16)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16, OS tile state and Linux permission granted
  bool amx_fp16 = false;     // AMX-FP16 on top of amx_bf16
  std::string amx_status;    // why AMX is or is not usable (cpuid, XCR0, Linux's permission)
};

// What this CPU and OS support (detected once).
const CpuFeatures& cpu_features();
// The best path the CPU supports.
CpuIsa best_cpu_isa();
// The CPU and OS have the path's instructions and its bf16 product kernel, if it has one, passed
// its run-time self-check here (gemm_self_check.h).
bool cpu_supports(CpuIsa isa);
// The instructions alone (a path may have them and still be refused by its self-check).
bool cpu_hardware_supports(CpuIsa isa);
const char* cpu_isa_name(CpuIsa isa);
// Parses a path name; returns false for an unknown name.
bool parse_cpu_isa(const std::string& name, CpuIsa* isa);

// The path the kernels run: MASKATTN_CPU_ISA if set (read once), else best_cpu_isa().
CpuIsa selected_cpu_isa();
// Selects a path (tests, benchmarks). Returns an empty string, or why the path was refused.
std::string select_cpu_isa(const std::string& name);
// The error of an unusable MASKATTN_CPU_ISA (empty when it is unset or usable).
std::string cpu_isa_env_error();

}  // namespace cpu
}  // namespace maskattn
