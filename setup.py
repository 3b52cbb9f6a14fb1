"""Build maskattn: CPU kernels always, CUDA kernels when torch has CUDA and nvcc is found.

MASKATTN_CUDA=0/1 overrides the CUDA decision, TORCH_CUDA_ARCH_LIST picks the GPU
architectures (default: the visible GPUs', or 8.0;9.0+PTX on a build host without one),
MASKATTN_CPU_ARCH sets the -march of the CPU kernels (default: x86-64-v3, i.e. AVX2 + FMA + F16C,
so a wheel runs on any such x86-64 CPU; AVX-512, AVX512-BF16 and AMX microkernels are compiled
with target attributes and chosen at run time), MASKATTN_SANITIZE=1 builds the CPU code with
AddressSanitizer and UBSan (.ci/sanitize), MASKATTN_EMULATE_AMX=1 runs the AMX kernel's tile
instructions in software so it executes on CPUs without AMX (a test build: .ci/sanitize uses it),
MASKATTN_DEBUG=1 keeps full debug info in the C++ objects (left out by default: see below).
Nothing is downloaded.
"""
import glob
import os
import shutil

from setuptools import find_packages, setup

import torch
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"


def cuda_decision():
    """The one place that decides whether CUDA kernels are built, and why."""
    forced = os.environ.get("MASKATTN_CUDA")
    nvcc = shutil.which("nvcc") or (CUDA_HOME and os.path.join(CUDA_HOME, "bin", "nvcc"))
    have_nvcc = bool(nvcc) and os.path.exists(nvcc)
    if forced == "0":
        return False, "MASKATTN_CUDA=0"
    if forced == "1":
        if torch.version.cuda is None:
            raise RuntimeError("MASKATTN_CUDA=1 but this torch has no CUDA (torch.version.cuda is None)")
        if not have_nvcc:
            raise RuntimeError("MASKATTN_CUDA=1 but nvcc was not found (set CUDA_HOME or PATH)")
        return True, "MASKATTN_CUDA=1"
    if torch.version.cuda is None:
        return False, "torch %s has no CUDA" % torch.__version__
    if not have_nvcc:
        return False, "nvcc not found"
    return True, "torch CUDA %s and nvcc found" % torch.version.cuda


DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def cuda_arch_list():
    """The GPU architectures to compile for, and where they come from. Left unset, torch would take
    the visible GPUs' and raise on a build host with CUDA but no GPU; the list is always resolved
    here, so what is printed is what torch compiles and build_info() reports."""
    given = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if given:
        return given, "TORCH_CUDA_ARCH_LIST"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return DEFAULT_CUDA_ARCHS, "no visible GPU, default"
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(count)})
    names = ["%d.%d" % c for c in caps]
    names[-1] += "+PTX"  # as torch does: newer GPUs can JIT the newest architecture's PTX
    return ";".join(names), "the visible GPUs"


def rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def main():
    with_cuda, reason = cuda_decision()
    cpu_arch = os.environ.get("MASKATTN_CPU_ARCH", "x86-64-v3")
    cxx_flags = ["-O3", "-fopenmp", "-DMASKATTN_VERSION=\"%s\"" % VERSION]
    # Python's own CFLAGS carry -g: 13 MB of debug info per binding object and a quarter of the
    # compile time, which a release build does not need (the later flag wins)
    cxx_flags.append("-g" if os.environ.get("MASKATTN_DEBUG") == "1" else "-g0")
    if cpu_arch:
        cxx_flags += ["-march=%s" % cpu_arch, "-DMASKATTN_CPU_ARCH=\"%s\"" % cpu_arch]
    nvcc_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo",
                  "-DMASKATTN_VERSION=\"%s\"" % VERSION]
    link_flags = ["-fopenmp"]
    if os.environ.get("MASKATTN_SANITIZE") == "1":
        # AddressSanitizer + UndefinedBehaviorSanitizer build for CI (.ci/sanitize): load it with libasan preloaded
        # -g1: line tables are all a sanitizer report needs, and a quarter faster to compile than -g
        sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g1"]
        cxx_flags += sanitizers + ["-O1"]
        link_flags += sanitizers
        print("maskattn build: MASKATTN_SANITIZE=1, CPU code built with %s" % " ".join(sanitizers))
    if os.environ.get("MASKATTN_EMULATE_AMX") == "1":
        cxx_flags.append("-DMASKATTN_EMULATE_AMX")
        print("maskattn build: MASKATTN_EMULATE_AMX=1, AMX tiles emulated in software (a test build, not for speed)")

    sources = rel(glob.glob(os.path.join(ROOT, "csrc/binding/*.cpp")))
    sources += rel(glob.glob(os.path.join(ROOT, "csrc/kernels/cpu/*.cpp")))
    cuda_only = "csrc/binding/cuda_support.cpp"
    no_cuda = "csrc/binding/cuda_absent.cpp"
    if with_cuda:
        sources = [s for s in sources if s != no_cuda]
        sources += rel(glob.glob(os.path.join(ROOT, "csrc/kernels/cuda/*.cu")))
        archs, archs_from = cuda_arch_list()
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs  # torch compiles exactly what is printed and recorded
        for flags in (cxx_flags, nvcc_flags):
            flags += ["-DMASKATTN_WITH_CUDA", "-DMASKATTN_CUDA_ARCHS=\"%s\"" % archs]
        archs = "%s (%s)" % (archs, archs_from)
        ext = CUDAExtension("maskattn._C", sources, extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
                            extra_link_args=link_flags)
    else:
        sources = [s for s in sources if s != cuda_only]
        archs = "-"
        ext = CppExtension("maskattn._C", sources, extra_compile_args={"cxx": cxx_flags},
                           extra_link_args=link_flags)

    print("maskattn build: cuda=%s (%s), cuda archs=%s, cpu -march=%s, torch %s, %d sources"
          % (with_cuda, reason, archs, cpu_arch or "(compiler default)", torch.__version__, len(sources)))

    setup(
        name="maskattn",
        version=VERSION,
        description="Masked attention for PyTorch: mask construction, fused masked softmax and fused attention",
        package_dir={"": "python"},
        packages=find_packages("python"),
        ext_modules=[ext],
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
        python_requires=">=3.9",
        install_requires=["torch>=2.11"],
        extras_require={"transformers": ["transformers>=4.53"]},
    )


if __name__ == "__main__":  # as pip and setup.py run it; the tests read the functions above
    main()
