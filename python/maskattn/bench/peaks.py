"""Reference rates measured in the same run: copy bandwidth (torch clone), a large matmul and, on
the CPU, the fp32 FMA peak (independent FMAs at the selected path's vector width, every thread),
the ceiling no kernel passes: a ratio target above it is out of reach on that machine.

clone() allocates its output like the benchmarked ops do, so the percentages use it; copy_() into
a preallocated tensor is shown beside it because fresh pages can cost more than the copy itself.
A peak is the fastest of its repeats: one slow (noisy) copy would make ops look faster than copying.
"""
from typing import Dict, List, Tuple

import torch

from .timing import TimingPlan, fastest_ms


def peak_row_count(device: torch.device) -> int:
    return 4 if device.type == "cpu" else 3  # the FMA probe runs on the CPU only


def copy_rows(device: torch.device, plan: TimingPlan, quick: bool) -> List[dict]:
    """clone() and copy_() of a tensor much larger than the caches: bytes read + written per second."""
    mib = (128 if quick else 256) if device.type == "cpu" else 1024
    x = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(x)
    moved = 2 * x.numel() * x.element_size()
    rows = []
    for method, fn in (("torch clone", x.clone), ("torch copy_ (preallocated)", lambda: target.copy_(x))):
        ms = fastest_ms(fn, device, plan)
        rows.append({"family": "peak", "name": "copy bandwidth", "device": device.type, "dtype": "float32",
                     "shape": [x.numel()], "mode": "fwd", "method": method, "ours": False, "ms": ms,
                     "gb_s": moved / ms / 1e6, "error": None})
    return rows


def matmul_row(device: torch.device, plan: TimingPlan, quick: bool) -> dict:
    """A square matmul in the dtype the attention scenarios use, as the compute ceiling."""
    n, dtype = (2048, torch.float32) if device.type == "cpu" else (8192, torch.bfloat16)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    ms = fastest_ms(lambda: a @ b, device, plan)
    flops = 2.0 * n ** 3
    row = {"family": "peak", "name": "matmul", "device": device.type, "dtype": str(dtype).replace("torch.", ""),
           "shape": [n, n, n], "mode": "fwd", "method": f"torch matmul {n}^3", "ours": False, "ms": ms, "error": None}
    row.update({"gflop_s": flops / ms / 1e6} if device.type == "cpu" else {"tflop_s": flops / ms / 1e9})
    return row


def fma_peak_row(plan: TimingPlan) -> dict:
    """The CPU's fp32 FMA rate, every thread busy, at the vector width the kernels' path uses."""
    from .. import _C

    rounds = 2_000_000  # ~10-50 ms: long enough to ramp clocks, short enough to repeat
    flops = []
    ms = fastest_ms(lambda: flops.append(_C._fma_peak_run(rounds)), torch.device("cpu"), plan)
    isa = _C.build_info()["cpu_isa"]
    return {"family": "peak", "name": "fp32 FMA peak", "device": "cpu", "dtype": "float32", "shape": [rounds],
            "mode": "fwd", "method": f"maskattn FMA chains ({'zmm' if isa != 'avx2' else 'ymm'})", "ours": False,
            "ms": ms, "gflop_s": flops[-1] / ms / 1e6, "error": None}


def measure_peaks(device: torch.device, plan: TimingPlan, quick: bool) -> Tuple[Dict[str, float], List[dict]]:
    """Returns ({"copy_gb_s" (clone), "matmul_flop_s", on the CPU "fma_flop_s"}, the peak rows)."""
    clone_row, prealloc_row = copy_rows(device, plan, quick)
    mm_row = matmul_row(device, plan, quick)
    mm_flop_s = mm_row.get("gflop_s", 0.0) * 1e9 + mm_row.get("tflop_s", 0.0) * 1e12
    peaks, rows = {"copy_gb_s": clone_row["gb_s"], "matmul_flop_s": mm_flop_s}, [clone_row, prealloc_row, mm_row]
    if device.type == "cpu":
        fma_row = fma_peak_row(plan)
        peaks["fma_flop_s"] = fma_row["gflop_s"] * 1e9
        rows.append(fma_row)
    return peaks, rows
