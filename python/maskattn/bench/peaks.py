"""Reference rates measured in the same run: copy bandwidth (torch clone) and a large matmul.

clone() allocates its output like the benchmarked ops do, so the percentages use it; copy_() into
a preallocated tensor is shown beside it because fresh pages can cost more than the copy itself.
A peak is the fastest of its repeats: one slow (noisy) copy would make ops look faster than copying.
"""
from typing import Dict, List, Tuple

import torch

from .timing import TimingPlan, fastest_ms


PEAK_ROWS = 3


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


def measure_peaks(device: torch.device, plan: TimingPlan, quick: bool) -> Tuple[Dict[str, float], List[dict]]:
    """Returns ({"copy_gb_s" (clone), "matmul_flop_s"}, the PEAK_ROWS rows)."""
    clone_row, prealloc_row = copy_rows(device, plan, quick)
    mm_row = matmul_row(device, plan, quick)
    mm_flop_s = mm_row.get("gflop_s", 0.0) * 1e9 + mm_row.get("tflop_s", 0.0) * 1e12
    return {"copy_gb_s": clone_row["gb_s"], "matmul_flop_s": mm_flop_s}, [clone_row, prealloc_row, mm_row]
