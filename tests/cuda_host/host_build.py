"""Compiles the host execution of the CUDA kernels into a torch extension, once per checkout
(ninja rebuilds only what changed): every ``csrc/kernels/cuda/*.cu`` as it is, with ``shim/``
standing in for the CUDA headers, and every ``csrc/binding/*_ops.cpp`` with its kernel calls routed
to the CUDA entry points (``ext/route_ops_to_host.h``). No CUDA compiler, runtime or GPU is used."""
import glob
import os

import torch
import torch.utils.cpp_extension as cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CSRC = os.path.join(ROOT, "csrc")
NAME = "maskattn_cuda_host"
# -O1: the kernels' compile dominates the suite's time; -fno-strict-aliasing: the kernels pun
# 16-bit pairs through uint32 as nvcc allows; alignment and array-bounds checks report to the host
# GPU (shim/ubsan_handlers.cpp), as a GPU faults on a misaligned access
FLAGS = ["-O1", "-fno-strict-aliasing", "-Wno-unknown-pragmas", "-DMASKATTN_VERSION=\"host\"",
         "-fsanitize=alignment,bounds"]


def _unit(build_dir, name, lines):
    """A one-line translation unit that includes a product source; rewritten only when it changes,
    so ninja's timestamps stay valid."""
    path = os.path.join(build_dir, name)
    text = "".join(line + "\n" for line in lines)
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return path


def load(verbose: bool = False):
    build_dir = os.environ.get("MASKATTN_HOST_BUILD_DIR") or os.path.join(ROOT, "build", "cuda_host")
    os.makedirs(build_dir, exist_ok=True)
    sources = sorted(glob.glob(os.path.join(HERE, "shim", "*.cpp")) + glob.glob(os.path.join(HERE, "ext", "*.cpp")))
    for cu in sorted(glob.glob(os.path.join(CSRC, "kernels", "cuda", "*.cu"))):
        stem = os.path.splitext(os.path.basename(cu))[0]
        sources.append(_unit(build_dir, f"kernel_{stem}.cpp", [f'#include "{cu}"']))
    # every binding file but the registration, the Python module and the CUDA runtime glue, each
    # with its kernel calls routed to the CUDA entry points (files that pick no kernel are unchanged)
    skip = {"registration.cpp", "python_module.cpp", "cuda_support.cpp", "cuda_absent.cpp"}
    routed = [f for f in glob.glob(os.path.join(CSRC, "binding", "*.cpp")) if os.path.basename(f) not in skip]
    for ops in sorted(routed):
        stem = os.path.splitext(os.path.basename(ops))[0]
        sources.append(_unit(build_dir, f"binding_{stem}.cpp", ['#include "route_ops_to_host.h"', f'#include "{ops}"']))
    # a plain library: loading it registers torch.ops.maskattn_cuda_host
    cpp_extension.load(name=NAME, sources=sources, build_directory=build_dir, verbose=verbose,
                       extra_include_paths=[os.path.join(HERE, "shim"), os.path.join(HERE, "ext"), CSRC],
                       extra_cflags=FLAGS, is_python_module=False)
    return torch.ops.maskattn_cuda_host
