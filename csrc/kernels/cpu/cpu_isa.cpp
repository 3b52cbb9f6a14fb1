#include "cpu_isa.h"
#include "cpu_kernels.h"
#include "gemm_self_check.h"

#include <cpuid.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace maskattn {
namespace cpu {
namespace {

struct CpuidRegs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned sub) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = CpuidRegs{};
  return r;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XCR0: which register states the OS saves on a context switch (xgetbv needs OSXSAVE).
uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

// Linux grants AMX tile data per process on request (arch_prctl ARCH_REQ_XCOMP_PERM). Returns an
// empty string when granted, else why not (kept for build_info: a refusal is otherwise silent).
std::string request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    const int err = errno;
    std::string why = std::string("Linux refused the AMX tile permission (arch_prctl: ") + std::strerror(err) + ")";
    if (err == EBUSY) why += ": a thread's alternate signal stack is too small for the tile state";
    return why;
  }
  unsigned long granted = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &granted) != 0 || !((granted >> kXfeatureXtiledata) & 1ul))
    return "Linux did not report the AMX tile permission as granted";
  return "";
#else
  return "AMX tile permission is requested on Linux only";
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  const CpuidRegs l0 = cpuid(0, 0);
  if (l0.a < 7) return f;
  const CpuidRegs l1 = cpuid(1, 0), l7 = cpuid(7, 0), l7s1 = cpuid(7, 1);
  const bool osxsave = bit(l1.c, 27);
  const uint64_t xcr = osxsave ? xcr0() : 0;
  const bool os_ymm = (xcr & 0x6) == 0x6;     // SSE and AVX state
  const bool os_zmm = (xcr & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_tile = (xcr & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
  f.fma = os_ymm && bit(l1.c, 12);
  f.f16c = os_ymm && bit(l1.c, 29);
  f.avx2 = os_ymm && bit(l1.c, 28) && bit(l7.b, 5);
  f.avx512 = f.avx2 && os_zmm && bit(l7.b, 16) && bit(l7.b, 17) && bit(l7.b, 30) && bit(l7.b, 31);
  f.avx512_bf16 = f.avx512 && bit(l7s1.a, 5);
  f.avx512_fp16 = f.avx512 && bit(l7.d, 23);
  const bool amx_hw = f.avx512 && bit(l7.d, 24) && bit(l7.d, 22);  // AMX-TILE, AMX-BF16
  if (!amx_hw) {
    f.amx_status = "no AMX-TILE/AMX-BF16 (with AVX-512) on this CPU";
  } else if (!os_tile) {
    f.amx_status = "the OS does not enable the AMX tile state (XCR0)";
  } else {
    const std::string refused = request_amx_permission();
    f.amx_bf16 = refused.empty();
    f.amx_status = f.amx_bf16 ? "tiles granted" : refused;
  }
  f.amx_fp16 = f.amx_bf16 && bit(l7s1.a, 21);
  if (amx_emulated()) {
    // test build: software tiles (amx_emulation.h) beside the AVX512-BF16 code the AMX path also runs
    f.amx_bf16 = f.avx512_bf16;
    f.amx_fp16 = false;
    f.amx_status = f.amx_bf16 ? "emulated in software (a test build)" : "emulated build, but no AVX512-BF16 here";
  }
  return f;
}

std::atomic<int> g_selected{-1};
std::once_flag g_env_once;
std::string g_env_error;

void read_env_once() {
  std::call_once(g_env_once, [] {
    const char* env = std::getenv("MASKATTN_CPU_ISA");
    int chosen = (int)best_cpu_isa();
    if (env != nullptr && env[0] != '\0') {
      CpuIsa isa;
      if (!parse_cpu_isa(env, &isa)) {
        g_env_error = std::string("MASKATTN_CPU_ISA='") + env + "' is not one of avx2, avx512, avx512bf16, amx";
      } else if (!cpu_supports(isa)) {
        g_env_error = std::string("MASKATTN_CPU_ISA='") + env + "' asks for a path this CPU (or OS) does not support; " +
                      "the best it supports is '" + cpu_isa_name(best_cpu_isa()) + "'";
      } else {
        chosen = (int)isa;
      }
    }
    int unset = -1;
    g_selected.compare_exchange_strong(unset, chosen);
  });
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool cpu_hardware_supports(CpuIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case CpuIsa::Avx2: return f.avx2 && f.fma && f.f16c;
    case CpuIsa::Avx512: return f.avx512 && f.fma && f.f16c;
    case CpuIsa::Avx512Bf16: return cpu_hardware_supports(CpuIsa::Avx512) && f.avx512_bf16;
    case CpuIsa::Amx: return cpu_hardware_supports(CpuIsa::Avx512) && f.amx_bf16;
  }
  return false;
}

bool cpu_supports(CpuIsa isa) {
  if (!cpu_hardware_supports(isa)) return false;
  // each bf16 product kernel (and its rounding, on AVX512-BF16) is proven once, on first need, and
  // only where the CPU can run it
  switch (isa) {
    case CpuIsa::Avx512Bf16: {
      static const bool passed = gemm_bf16_self_check(gemm_bf16_avx512) &&
                                 bf16_rounding_self_check(round_rows_to_bf16_avx512bf16, round_pairs_over_rows_avx512bf16);
      return passed;
    }
    case CpuIsa::Amx: {
      static const bool passed = cpu_supports(CpuIsa::Avx512Bf16) && gemm_bf16_self_check(gemm_bf16_amx);
      return passed;
    }
    default: return true;  // no bf16 product kernel of its own
  }
}

CpuIsa best_cpu_isa() {
  for (CpuIsa isa : {CpuIsa::Amx, CpuIsa::Avx512Bf16, CpuIsa::Avx512})
    if (cpu_supports(isa)) return isa;
  return CpuIsa::Avx2;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx512Bf16: return "avx512bf16";
    case CpuIsa::Amx: return "amx";
  }
  return "unknown";
}

bool parse_cpu_isa(const std::string& name, CpuIsa* isa) {
  for (CpuIsa i : {CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16, CpuIsa::Amx})
    if (name == cpu_isa_name(i)) {
      *isa = i;
      return true;
    }
  return false;
}

CpuIsa selected_cpu_isa() {
  int s = g_selected.load(std::memory_order_acquire);
  if (s < 0) {
    read_env_once();
    s = g_selected.load(std::memory_order_acquire);
  }
  return (CpuIsa)s;
}

std::string select_cpu_isa(const std::string& name) {
  read_env_once();
  CpuIsa isa;
  if (!parse_cpu_isa(name, &isa)) return "unknown CPU path '" + name + "' (expected avx2, avx512, avx512bf16 or amx)";
  if (cpu_hardware_supports(isa) && !cpu_supports(isa))
    return "the '" + name + "' path failed its run-time self-check on this CPU (a bf16 product differed from the "
           "scalar reference) and is not used; the best path that passed is '" + cpu_isa_name(best_cpu_isa()) + "'";
  if (!cpu_supports(isa))
    return "this CPU (or OS) does not support the '" + name + "' path; the best it supports is '" +
           cpu_isa_name(best_cpu_isa()) + "'";
  g_selected.store((int)isa, std::memory_order_release);
  return "";
}

std::string cpu_isa_env_error() {
  read_env_once();
  return g_env_error;
}

}  // namespace cpu
}  // namespace maskattn
