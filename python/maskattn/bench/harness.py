"""Cases, methods and the loop that times them into rows.

A Case is one workload (shape, dtype, mask, mode) with its inputs built once, outside the timing;
each Method turns those inputs into the call that is timed. A method that fails (refused inputs,
missing kernel, failed compile) becomes a row with its error, and the run goes on.
"""
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from .timing import TimingPlan, median_ms

MODES = ("fwd", "bwd", "fwd+bwd")


class Skip(Exception):
    """Raised by a method's builder when it should not run here (for example: would not fit memory)."""


@dataclass
class Method:
    name: str
    build: Callable[[dict], Callable[[], object]]  # case inputs -> the call to time
    ours: bool = False


@dataclass
class Case:
    family: str
    name: str
    device: torch.device
    dtype: torch.dtype
    shape: Sequence[int]
    mode: str
    make_inputs: Callable[[], dict]
    methods: List[Method]
    # "bytes", "tokens", or "flops_unmasked" (and "flops", FlashAttention's count, on CUDA); a callable gets
    # the inputs, for counts that depend on the random lengths
    work: Union[Dict[str, float], Callable[[dict], Dict[str, float]]]
    extra: dict = field(default_factory=dict)  # copied into each row: seq_len, head_dim, sweep


def timed_call(forward: Callable[[], torch.Tensor], leaves: Sequence[torch.Tensor], mode: str) -> Callable[[], object]:
    """The call to time for a mode. bwd: one forward now, then only the backward is timed."""
    if mode == "fwd":
        return forward
    out = forward()
    grad = torch.randn_like(out)
    if mode == "bwd":
        return lambda: torch.autograd.grad(out, leaves, grad, retain_graph=True)
    return lambda: torch.autograd.grad(forward(), leaves, grad)


def rates(work: Dict[str, float], ms: float, peaks: Dict[str, float], device: torch.device) -> dict:
    out = {}
    if "tokens" in work:
        out["tok_s"] = work["tokens"] / ms * 1e3
    if "bytes" in work:
        out["gb_s"] = work["bytes"] / ms / 1e6
        out["pct_copy"] = 100.0 * out["gb_s"] / peaks["copy_gb_s"]
    if device.type == "cuda" and "flops" in work:
        out["tflop_s"] = work["flops"] / ms / 1e9
        out["tflop_s_unmasked"] = work["flops_unmasked"] / ms / 1e9
        out["pct_matmul"] = 100.0 * out["tflop_s"] * 1e12 / peaks["matmul_flop_s"]
    elif "flops_unmasked" in work:
        out["gflop_s"] = work["flops_unmasked"] / ms / 1e6
        out["pct_matmul"] = 100.0 * out["gflop_s"] * 1e9 / peaks["matmul_flop_s"]
        if peaks.get("fma_flop_s"):
            out["pct_fma"] = 100.0 * out["gflop_s"] * 1e9 / peaks["fma_flop_s"]
    return out


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def base_row(case: Case, method: Method) -> dict:
    row = {"family": case.family, "name": case.name, "device": case.device.type,
           "dtype": str(case.dtype).replace("torch.", ""), "shape": list(case.shape), "mode": case.mode,
           "method": method.name, "ours": method.ours, "ms": None, "error": None}
    row.update(case.extra)
    return row


def run_method(case: Case, method: Method, inputs: dict, work: dict, peaks: dict, plan: TimingPlan) -> dict:
    row = base_row(case, method)
    caught: List[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # torch explains a refused SDPA backend in warnings: kept for the row's error, not printed
            warnings.simplefilter("always")
            fn = method.build(inputs)
            ms = median_ms(fn, case.device, plan)
        row["ms"] = ms
        row.update(rates(work, ms, peaks, case.device))
    except Skip as exc:
        row["error"] = f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001  (any failure of one method is reported, not fatal)
        reasons = [str(w.message).strip().splitlines()[0] for w in caught[:2] if str(w.message).strip()]
        row["error"] = short_error(exc) + "".join(f" | {r}" for r in reasons)[:300]
    finally:
        fn = None
        if case.device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def add_ratios(rows: List[dict]) -> None:
    """ratio = this method's time / maskattn's time in the same case (> 1: maskattn is faster)."""
    ours = next((r for r in rows if r["ours"] and r["ms"]), None)
    for r in rows:
        r["ratio"] = r["ms"] / ours["ms"] if ours and r["ms"] else None
    if ours:
        ours["ratios"] = {r["method"]: r["ratio"] for r in rows if not r["ours"] and r["ratio"] is not None}


def run_case(case: Case, peaks: dict, plan: TimingPlan, progress) -> List[dict]:
    try:
        inputs: Optional[dict] = case.make_inputs()
        work = case.work(inputs) if callable(case.work) else case.work
        setup_error = None
    except Exception as exc:  # noqa: BLE001
        inputs, work, setup_error = None, {}, short_error(exc)
    rows = []
    for method in case.methods:
        progress.show(f"{case.device.type} {case.name} {case.mode} {method.name}")
        if inputs is None:
            row = base_row(case, method)
            row["error"] = f"inputs: {setup_error}"
        else:
            row = run_method(case, method, inputs, work, peaks, plan)
        rows.append(row)
        progress.step(f"{case.device.type} {case.name} {case.mode} {method.name}")
    inputs = None
    add_ratios(rows)
    return rows
