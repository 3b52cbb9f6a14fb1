"""Build maskattn: CPU kernels always, CUDA kernels when torch has CUDA and nvcc is found.

MASKATTN_CUDA=0/1 overrides the CUDA decision, TORCH_CUDA_ARCH_LIST picks the GPU
architectures, MASKATTN_CPU_ARCH sets the -march of the CPU kernels (default: native,
since the package is built on the machine that runs it). Nothing is downloaded.
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


def rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


with_cuda, reason = cuda_decision()
cpu_arch = os.environ.get("MASKATTN_CPU_ARCH", "native")
cxx_flags = ["-O3", "-fopenmp", "-DMASKATTN_VERSION=\"%s\"" % VERSION]
if cpu_arch:
    cxx_flags.append("-march=%s" % cpu_arch)
nvcc_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo",
              "-DMASKATTN_VERSION=\"%s\"" % VERSION]

sources = rel(glob.glob(os.path.join(ROOT, "csrc/binding/*.cpp")))
sources += rel(glob.glob(os.path.join(ROOT, "csrc/kernels/cpu/*.cpp")))
cuda_only = "csrc/binding/cuda_support.cpp"
no_cuda = "csrc/binding/cuda_absent.cpp"
if with_cuda:
    sources = [s for s in sources if s != no_cuda]
    sources += rel(glob.glob(os.path.join(ROOT, "csrc/kernels/cuda/*.cu")))
    cxx_flags.append("-DMASKATTN_WITH_CUDA")
    nvcc_flags.append("-DMASKATTN_WITH_CUDA")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "(torch default)")
    ext = CUDAExtension("maskattn._C", sources, extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
                        extra_link_args=["-fopenmp"])
else:
    sources = [s for s in sources if s != cuda_only]
    archs = "-"
    ext = CppExtension("maskattn._C", sources, extra_compile_args={"cxx": cxx_flags},
                       extra_link_args=["-fopenmp"])

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
