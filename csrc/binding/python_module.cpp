// The _C Python module: importing it loads the op library; build_info() says what was compiled
// and which CPU paths run; _set_cpu_isa() switches the CPU path (tests, benchmarks).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/cpu/attention_rows.h"
#include "../kernels/cpu/bf16_tiles.h"
#include "../kernels/cpu/cpu_kernels.h"
#include "../kernels/cpu/fma_peak.h"
#include "../kernels/cpu/gemm_self_check.h"
#include "../kernels/cpu/scratch_pool.h"
#include "below_autograd_calls.h"
#include "cuda_support.h"

#ifndef MASKATTN_VERSION
#define MASKATTN_VERSION "unknown"
#endif
#ifndef MASKATTN_CUDA_ARCHS
#define MASKATTN_CUDA_ARCHS ""
#endif
#ifndef MASKATTN_CPU_ARCH
#define MASKATTN_CPU_ARCH ""
#endif

namespace py = pybind11;

// The selected CPU path, the paths this CPU supports and the instructions each kernel runs.
static py::dict cpu_info() {
  using namespace maskattn::cpu;
  py::dict info;
  info["cpu_isa"] = cpu_isa_name(selected_cpu_isa());
  info["cpu_isa_best"] = cpu_isa_name(best_cpu_isa());
  py::list supported;
  for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16, CpuIsa::Amx})
    if (cpu_supports(isa)) supported.append(cpu_isa_name(isa));
  info["cpu_isa_supported"] = supported;
  // the bf16 product paths this CPU has the instructions for, and their run-time self-checks
  py::dict checks;
  for (CpuIsa isa : {CpuIsa::Avx512Bf16, CpuIsa::Amx})
    if (cpu_hardware_supports(isa)) checks[cpu_isa_name(isa)] = cpu_supports(isa) ? "passed" : "failed";
  info["cpu_bf16_self_checks"] = checks;
  info["cpu_amx_emulated"] = amx_emulated();  // a test build: AMX tiles in software, never for speed
  info["cpu_amx"] = cpu_features().amx_status;
  py::dict kernels;
  for (const KernelPath& k : cpu_kernel_paths()) kernels[py::str(k.kernel)] = k.instructions;
  info["cpu_kernels"] = kernels;
  const std::string env_error = cpu_isa_env_error();
  if (!env_error.empty()) info["cpu_isa_error"] = env_error;
  return info;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "maskattn compiled kernels (ops are registered under torch.ops.maskattn)";
  maskattn::add_below_autograd_calls(m);
  m.def("build_info", []() {
    py::dict info;
    info["version"] = MASKATTN_VERSION;
    py::list backends;
    backends.append("cpu");
    if (maskattn::built_with_cuda()) backends.append("cuda");
    info["backends"] = backends;
    info["cuda_archs"] = maskattn::built_with_cuda() ? MASKATTN_CUDA_ARCHS : "";
    info["cpu_arch"] = MASKATTN_CPU_ARCH;
    for (auto item : cpu_info()) info[item.first] = item.second;
    return info;
  });
  m.def("cuda_attention_path", &maskattn::cuda_attention_path, py::arg("dtype"), py::arg("head_dim"),
        py::arg("v_head_dim"), py::arg("device") = -1,
        "Which CUDA attention kernels run for this dtype and these head sizes: 'tensor_cores' or 'simt' "
        "(float32 math, slower). Rows 16-byte aligned (contiguous q/k/v); device -1 is the current one.");
  m.def("_cpu_scratch_bytes", []() { return maskattn::cpu::pooled_scratch_bytes(); },
        "Bytes of CPU scratch kept in the pool between calls.");
  m.def("_trim_cpu_scratch", []() { return maskattn::cpu::trim_scratch(); },
        "Frees the pooled CPU scratch; returns the bytes freed.");
  m.def("_fma_peak_run", [](int64_t rounds) {
    if (rounds < 1) throw std::invalid_argument("maskattn: _fma_peak_run takes rounds >= 1");
    py::gil_scoped_release unlocked;
    return maskattn::cpu::fma_peak_run(rounds);
  }, py::arg("rounds"),
        "Bench: independent fp32 FMA chains on every thread at the selected path's vector width, `rounds` "
        "rounds each; returns the floating-point operations done (time it for the CPU's FMA peak).");
  m.def("_amx_emulated_tile_products", []() { return maskattn::cpu::amx_emulated_tile_products(); },
        "Tests: tile products the emulated AMX kernel executed (0 in a normal build).");
  m.def("_round_floats", [](const py::bytes& data, const std::string& kind, int64_t row) {
    using namespace maskattn;
    const std::string in = data;
    const ScalarKind k = kind == "float16" ? ScalarKind::Float16 : ScalarKind::BFloat16;
    if ((kind != "float16" && kind != "bfloat16") || in.size() % 4 != 0 || row < 1)
      throw std::invalid_argument("maskattn: _round_floats takes float32 bytes, float16 or bfloat16, row >= 1");
    const int64_t n = (int64_t)in.size() / 4;
    std::vector<float> src((size_t)n);
    std::memcpy(src.data(), in.data(), in.size());
    std::string out((size_t)n * 2, '\0');
    for (int64_t i = 0; i < n; i += row)  // in rows, so both the vector body and the tail run
      cpu::store_row(k, src.data() + i, std::min(row, n - i), 1.f, &out[0], i);
    std::vector<float> back((size_t)n);
    for (int64_t i = 0; i < n; i += row) cpu::load_row_f32(k, out.data(), i, std::min(row, n - i), 1.f, &back[i], std::min(row, n - i));
    return py::make_tuple(py::bytes(out), py::bytes(reinterpret_cast<const char*>(back.data()), back.size() * 4));
  }, "Tests: float32 bytes rounded to float16/bfloat16 by the CPU kernels' row stores (rows of `row` "
     "elements), and those widened back by their row loads.");
  m.def("_use_avx2_bf16_pairs", [](bool on) { maskattn::cpu::use_avx2_bf16_pairs(on); },
        "Tests: on the avx2 path, run bf16 attention through the k-pair operand layouts.");
  m.def("_bf16_self_check", [](const std::string& name) {
    using namespace maskattn::cpu;
    if (name == "avx2 pairs") return gemm_bf16_self_check(gemm_bf16_avx2);
    if (name == "planted fault")  // a kernel one unit off in one element: the check must refuse it
      return gemm_bf16_self_check([](const GemmBf16Args& g) {
        gemm_bf16_avx2(g);
        g.c[g.ldc + 1] += 1.f;
      });
    if (name == "planted rounding fault")  // a rounding one bit off in one element: refused too
      return bf16_rounding_self_check(
          [](const float* src, int64_t rows, int64_t cols, int64_t lds, uint16_t* dst, int64_t ldd) {
            round_rows_to_bf16(src, rows, cols, lds, dst, ldd);
            dst[ldd + 3] ^= 1u;
          },
          round_pairs_over_rows);
    CpuIsa isa;
    if (!parse_cpu_isa(name, &isa) || (isa != CpuIsa::Avx512Bf16 && isa != CpuIsa::Amx))
      throw std::invalid_argument(
          "maskattn: _bf16_self_check takes avx2 pairs, planted fault, planted rounding fault, avx512bf16 or amx");
    if (!cpu_hardware_supports(isa)) throw std::invalid_argument("maskattn: this CPU lacks the '" + name + "' path");
    if (isa == CpuIsa::Amx) return gemm_bf16_self_check(gemm_bf16_amx);
    return gemm_bf16_self_check(gemm_bf16_avx512) &&
           bf16_rounding_self_check(round_rows_to_bf16_avx512bf16, round_pairs_over_rows_avx512bf16);
  }, "Tests: runs a bf16 product kernel's run-time self-check now (avx2 pairs, planted fault, planted rounding "
     "fault, avx512bf16 with its rounding, amx).");
  m.def("_set_cpu_isa", [](const std::string& name) {
    const std::string error = maskattn::cpu::select_cpu_isa(name);
    if (!error.empty()) throw std::invalid_argument("maskattn: " + error);
  }, "Selects the CPU path (avx2, avx512, avx512bf16, amx); refuses one this CPU lacks.");
}
