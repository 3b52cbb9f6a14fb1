"""``python -m maskattn check``: every public op against its float64 reference on fresh random inputs.

Tolerances: bool and additive masks and token masks must match exactly. Float results follow
FlashAttention's rule: max |ours - float64| <= 2 * max |torch - float64| + slack, where "torch" is the
same computation done by torch in the op's dtype and slack is twice the rounding noise of the
reference in that dtype; float32 and float64 also get a relative floor (1e-5, 1e-10) times
max(1, max |reference|). An op that raises is a failed row; the run goes on.
"""
import argparse
import os
from dataclasses import dataclass
from typing import Callable, List, Tuple

import torch

import maskattn as ma
from maskattn.bench.devices import DEVICE_CHOICES, device_name, resolve_devices
from maskattn.bench.table import format_table
from maskattn.reference import (reference_allowed, reference_attention, reference_attention_mask,
                                reference_masked_softmax, to_mask_dtype)

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
RELATIVE_FLOOR = {torch.float64: 1e-10, torch.float32: 1e-5}


@dataclass
class Result:
    op: str
    device: str
    dtype: str
    case: str
    error: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.note.startswith("error") and self.error <= self.tolerance


# ---------------------------------------------------------------- errors and tolerances

def max_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| in float64; equal infinities count 0, NaN or a lone infinity count inf."""
    a, b = ours.detach().to(torch.float64), ref.detach().to(torch.float64)
    if a.shape != b.shape:
        return float("inf")
    diff = torch.where(a == b, torch.zeros_like(a), (a - b).abs())
    diff = torch.nan_to_num(diff, nan=float("inf"))
    return float(diff.max()) if diff.numel() else 0.0


def tolerance(ref: torch.Tensor, same_precision: torch.Tensor, dtype: torch.dtype) -> float:
    finite = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref)).to(torch.float64)
    r = finite.to(dtype)
    slack = 2 * float(((r + 0.3 - 0.3).to(torch.float64) - r.to(torch.float64)).abs().max()) if r.numel() else 0.0
    scale = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
    return 2 * max_error(same_precision, ref) + slack + RELATIVE_FLOOR.get(dtype, 0.0) * scale


def worst_of(named: List[Tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]], dtype) -> Tuple[float, float, str]:
    """(error, tolerance, name) of the tensor nearest to (or furthest past) its tolerance."""
    scored = []
    for name, ours, ref, same in named:
        err, tol = max_error(ours, ref), tolerance(ref, same, dtype)
        scored.append((err / tol if tol > 0 else (0.0 if err == 0 else float("inf")), err, tol, name))
    _, err, tol, name = max(scored, key=lambda s: s[0])
    return err, tol, name


def exact(ours: torch.Tensor, expected: torch.Tensor) -> Tuple[float, float, str]:
    """Mismatching elements (shape or dtype mismatch: inf); tolerance 0."""
    if ours.shape != expected.shape or ours.dtype != expected.dtype:
        return float("inf"), 0.0, f"got {tuple(ours.shape)} {ours.dtype}"
    return float((ours != expected).sum()), 0.0, ""


# ---------------------------------------------------------------- mask construction

def mask_checks(device) -> List[Tuple[str, str, Callable]]:
    """(op, case, fn(dtype) -> (error, tolerance, note)) for the mask builders, exact equality."""
    def lengths(*v):
        return torch.tensor(v, device=device)

    def causal(q, k, align, window=None, mv=float("-inf")):
        def fn(dtype):
            ours = ma.causal_mask(q, k, align=align, window=window, dtype=dtype, device=device, masked_value=mv)
            ok = reference_allowed(1, 1, q, k, causal=True, align=align, window=window, device=device)[0, 0]
            return exact(ours, to_mask_dtype(ok, dtype, mv))
        return fn

    def padding(lens, max_len):
        def fn(dtype):
            lens_t = lengths(*lens)
            ours = ma.padding_mask(lens_t, max_len, dtype=dtype)
            n = max_len if max_len is not None else max(lens)
            ok = reference_allowed(len(lens), 1, 1, n, k_lengths=lens_t, device=device)[:, 0, 0, :]
            return exact(ours, to_mask_dtype(ok, dtype))
        return fn

    def from_ids(dtype):
        ids = torch.randint(0, 4, (3, 29), device=device)
        return exact(ma.padding_mask_from_ids(ids, 0, dtype=dtype), to_mask_dtype(ids != 0, dtype))

    def packed_mask(dtype):
        seg = ma.segments_from_lengths(lengths(7, 0, 12), 23)
        ours = ma.attention_mask(23, dtype=dtype, segments=seg, causal=True)
        return exact(ours, reference_attention_mask(23, dtype=dtype, segments=seg, causal=True, device=device))

    def combined(q, k, **kw):
        def fn(dtype):
            args = {key: (lengths(*v) if key.endswith("lengths") else v) for key, v in kw.items()}
            if args.get("key_mask") == "random":
                args["key_mask"] = torch.rand(3, k, device=device) < 0.7
            ours = ma.attention_mask(q, k, dtype=dtype, device=device, **args)
            return exact(ours, reference_attention_mask(q, k, dtype=dtype, device=device, **args))
        return fn

    return [
        ("causal_mask", "top_left 37x37", causal(37, 37, "top_left")),
        ("causal_mask", "top_left 17x45", causal(17, 45, "top_left")),
        ("causal_mask", "bottom_right 17x45", causal(17, 45, "bottom_right")),
        ("causal_mask", "bottom_right 45x17", causal(45, 17, "bottom_right")),
        ("causal_mask", "window (5,2) top_left", causal(40, 40, "top_left", (5, 2))),
        ("causal_mask", "window (3,None) bottom_right", causal(20, 33, "bottom_right", (3, None))),
        ("causal_mask", "masked_value=-1e9", causal(33, 33, "top_left", None, -1e9)),
        ("padding_mask", "lengths [5,0,9]", padding((5, 0, 9), None)),
        ("padding_mask", "max_len=12", padding((5, 0, 9), 12)),
        ("padding_mask_from_ids", "pad_id=0", from_ids),
        ("attention_mask", "causal q_lengths+k_lengths", combined(
            21, 21, causal=True, q_lengths=(21, 9, 0), k_lengths=(21, 14, 3))),
        ("attention_mask", "bottom_right per-sequence lengths", combined(
            12, 30, causal=True, align="bottom_right", q_lengths=(12, 5, 1), k_lengths=(30, 17, 8))),
        ("attention_mask", "causal+key_mask", combined(25, 25, causal=True, key_mask="random")),
        ("attention_mask", "window (4,1)+k_lengths", combined(26, 26, window=(4, 1), k_lengths=(26, 10, 0))),
        ("attention_mask", "k_lengths only 7x19", combined(7, 19, k_lengths=(19, 4, 11))),
        ("attention_mask", "causal batch=3", combined(16, 16, causal=True, batch=3)),
        ("attention_mask", "packed segments causal", packed_mask),
        ("causal_mask", "integer align -5", causal(20, 30, -5)),
    ]


def token_mask_checks(device) -> List[Tuple[str, str, Callable]]:
    specials, mask_id = (0, 1, 2), 3

    def ids_tensor():
        return torch.randint(0, 50, (64, 1024), device=device)

    def seeded(seed):
        return torch.Generator(device=device).manual_seed(seed)

    def reproducible(_):
        ids = ids_tensor()
        a = ma.random_token_mask(ids, mask_id, 0.15, special_ids=specials, generator=seeded(1234))
        b = ma.random_token_mask(ids, mask_id, 0.15, special_ids=specials, generator=seeded(1234))
        return float((a[0] != b[0]).sum() + (a[1] != b[1]).sum()), 0.0, ""

    def advances(_):
        gen, ids = seeded(99), ids_tensor()
        a = ma.random_token_mask(ids, mask_id, 0.15, generator=gen)[1]
        b = ma.random_token_mask(ids, mask_id, 0.15, generator=gen)[1]
        return (0.0 if bool((a != b).any()) else 1.0), 0.0, "1 = two calls drew the same"

    def rate(p):
        def fn(_):
            ids = ids_tensor()
            sel = ma.random_token_mask(ids, mask_id, p, special_ids=specials, generator=seeded(7))[1]
            eligible = ~torch.isin(ids, torch.tensor(specials, device=device))
            n = int(eligible.sum())
            measured = float((sel & eligible).sum()) / n
            return abs(measured - p), 5 * (p * (1 - p) / n) ** 0.5, f"rate {measured:.4f}, 5 sigma"
        return fn

    def specials_untouched(_):
        ids = ids_tensor()
        sel = ma.random_token_mask(ids, mask_id, 0.9, special_ids=specials, generator=seeded(5))[1]
        return float((sel & torch.isin(ids, torch.tensor(specials, device=device))).sum()), 0.0, ""

    def written(_):
        ids = ids_tensor()
        masked, sel = ma.random_token_mask(ids, mask_id, 0.3, special_ids=specials, generator=seeded(11))
        return exact(masked, torch.where(sel, torch.full_like(ids, mask_id), ids))

    return [
        ("random_token_mask", "same seed, same result", reproducible),
        ("random_token_mask", "generator advances", advances),
        ("random_token_mask", "rate near p=0.15", rate(0.15)),
        ("random_token_mask", "rate near p=0.5", rate(0.5)),
        ("random_token_mask", "special ids never selected", specials_untouched),
        ("random_token_mask", "mask_id written where selected", written),
    ]


def random_packed_segments(batch: int, length: int, device) -> torch.Tensor:
    """(batch, length) document ids of a random packing, padding (-1) at the end of each row."""
    docs = torch.randint(0, length // 4 + 1, (batch, 4), device=device)
    return ma.segments_from_lengths(docs, length)


# ---------------------------------------------------------------- masked softmax

def softmax_same_precision(scores, mask=None, scale=1.0, causal=False, align="top_left", window=None,
                           k_lengths=None, key_mask=None, segments=None):
    """torch's own softmax in the scores' dtype; rows with no allowed key give zeros."""
    shape, d = scores.shape, scores.dim()
    b, h = (shape[0] if d >= 3 else 1), (shape[1] if d == 4 else 1)
    m4 = mask.expand(shape).reshape(b, h, shape[-2], shape[-1]) if mask is not None else None
    ok = reference_allowed(b, h, shape[-2], shape[-1], causal=causal, align=align, window=window,
                           k_lengths=k_lengths, key_mask=key_mask, segments=segments, mask=m4, device=scores.device)
    s = scores.reshape(b, h, shape[-2], shape[-1]) * scale
    if m4 is not None and m4.dtype != torch.bool:
        s = s + m4.to(s.dtype)
    ok = ok & (s > float("-inf"))
    live = ok.any(-1, keepdim=True)
    s = s.masked_fill(~ok, float("-inf")).masked_fill(~live, 0.0)
    return (s.softmax(-1) * ok).reshape(shape)


def softmax_cases(device) -> List[Tuple[str, Tuple[int, ...], Callable]]:
    """(case, scores shape, kwargs(dtype) -> dict)."""
    def t(*v):
        return torch.tensor(v, device=device)

    def key_mask(batch, k_len, dead_row=False):
        km = torch.rand(batch, k_len, device=device) < 0.6
        if dead_row:
            km[0] = False
        return km

    def packed(batch, length):
        return random_packed_segments(batch, length, device)

    def additive(dtype):
        m = torch.randn(33, 47, device=device)
        m[torch.rand(33, 47, device=device) < 0.3] = float("-inf")
        return m.to(dtype)

    return [
        ("no mask", (2, 3, 33, 47), lambda dt: {}),
        ("scale=0.125", (2, 3, 33, 47), lambda dt: {"scale": 0.125}),
        ("causal top_left", (2, 3, 40, 40), lambda dt: {"causal": True}),
        ("causal bottom_right", (2, 3, 17, 45), lambda dt: {"causal": True, "align": "bottom_right"}),
        ("window (4,2)", (2, 3, 40, 40), lambda dt: {"window": (4, 2)}),
        ("causal+k_lengths", (2, 3, 33, 45), lambda dt: {"causal": True, "k_lengths": t(45, 12)}),
        ("key_mask", (3, 2, 20, 37), lambda dt: {"key_mask": key_mask(3, 37)}),
        ("bool mask (B,1,Lq,Lk)", (2, 3, 33, 47),
         lambda dt: {"mask": torch.rand(2, 1, 33, 47, device=device) < 0.8}),
        ("additive mask (Lq,Lk)", (2, 3, 33, 47), lambda dt: {"mask": additive(dt)}),
        ("fully masked rows", (3, 2, 20, 37),
         lambda dt: {"k_lengths": t(37, 0, 5), "key_mask": key_mask(3, 37, dead_row=True)}),
        ("3d scores causal", (4, 33, 47), lambda dt: {"causal": True, "align": "bottom_right"}),
        ("long rows 3000+k_lengths", (2, 2, 4, 3000), lambda dt: {"k_lengths": t(2500, 3000)}),
        ("packed segments causal", (2, 3, 40, 40), lambda dt: {"segments": packed(2, 40), "causal": True}),
        ("integer align 7 window (5,0)", (2, 3, 20, 40), lambda dt: {"align": 7, "window": (5, 0)}),
    ]


def softmax_check(shape, kwargs_of, device, backward: bool) -> Callable:
    def fn(dtype):
        kw = kwargs_of(dtype)
        x = (torch.randn(shape, device=device) * 2).to(dtype)
        if not backward:
            ours = ma.masked_softmax(x, **kw)
            ref = reference_masked_softmax(x, **kw)
            err, tol, _ = worst_of([("probs", ours, ref, softmax_same_precision(x, **kw))], dtype)
            return err, tol, ""
        grad = torch.randn(shape, device=device).to(dtype)
        grads = []
        for dt, func in ((dtype, ma.masked_softmax), (torch.float64, reference_masked_softmax),
                         (dtype, softmax_same_precision)):
            leaf = x.detach().to(dt).requires_grad_()
            grads.append(torch.autograd.grad(func(leaf, **kw), leaf, grad.to(dt))[0])
        err, tol, _ = worst_of([("dscores", *grads)], dtype)
        return err, tol, ""
    return fn


# ---------------------------------------------------------------- masked attention

def attention_cases(device) -> List[Tuple[str, Tuple[int, ...], Callable]]:
    """(case, (B, H, Hkv, Lq, Lk, D, Dv), kwargs() -> dict)."""
    def t(*v):
        return torch.tensor(v, device=device)

    def early_keys_masked():
        km = torch.ones(2, 40, dtype=torch.bool, device=device)
        km[:, :4] = False  # with causal, queries 0..3 see no key
        return {"causal": True, "key_mask": km}

    def packed(batch, length):
        return random_packed_segments(batch, length, device)

    def additive(dt):
        m = torch.randn(37, 45, device=device)
        m[torch.rand(37, 45, device=device) < 0.3] = float("-inf")
        return {"mask": m.to(dt)}

    return [
        ("dense", (2, 3, 3, 37, 45, 32, 32), lambda dt: {}),
        ("causal top_left", (2, 3, 3, 40, 40, 32, 32), lambda dt: {"causal": True}),
        ("causal bottom_right", (2, 3, 3, 17, 45, 32, 32), lambda dt: {"causal": True, "align": "bottom_right"}),
        ("window (8,0) causal band", (2, 3, 3, 50, 50, 32, 32), lambda dt: {"causal": True, "window": (8, 0)}),
        ("window (5,3)", (2, 3, 3, 40, 40, 32, 32), lambda dt: {"window": (5, 3)}),
        ("q_lengths+k_lengths (k_len 0)", (2, 3, 3, 37, 45, 32, 32),
         lambda dt: {"q_lengths": t(37, 20), "k_lengths": t(45, 0)}),
        ("key_mask", (2, 3, 3, 37, 45, 32, 32), lambda dt: {"key_mask": torch.rand(2, 45, device=device) < 0.7}),
        ("bool mask (B,1,Lq,Lk)", (2, 3, 3, 37, 45, 32, 32),
         lambda dt: {"mask": torch.rand(2, 1, 37, 45, device=device) < 0.8}),
        ("additive mask (Lq,Lk)", (2, 3, 3, 37, 45, 32, 32), additive),
        ("GQA H=4 Hkv=2 causal", (2, 4, 2, 33, 33, 32, 32), lambda dt: {"causal": True}),
        ("Dv=24 != D=32", (2, 3, 3, 37, 45, 32, 24), lambda dt: {"causal": True, "align": "bottom_right"}),
        ("fully masked rows (causal+key_mask)", (2, 3, 3, 40, 40, 32, 32), lambda dt: early_keys_masked()),
        ("D=128 L=300 causal+k_lengths", (2, 2, 1, 300, 300, 128, 128),
         lambda dt: {"causal": True, "k_lengths": t(300, 170)}),
        ("packed segments causal", (2, 4, 2, 150, 150, 32, 32), lambda dt: {"segments": packed(2, 150), "causal": True}),
        ("integer align -20 causal (a block)", (2, 3, 3, 64, 100, 32, 32), lambda dt: {"align": -20, "causal": True}),
    ]


def attention_check(dims, kwargs_of, device, backward: bool) -> Callable:
    b, h, hkv, lq, lk, d, dv = dims

    def fn(dtype):
        kw = kwargs_of(dtype)
        q = torch.randn(b, h, lq, d, device=device).to(dtype)
        k = torch.randn(b, hkv, lk, d, device=device).to(dtype)
        v = torch.randn(b, hkv, lk, dv, device=device).to(dtype)
        if not backward:
            out, lse = ma.masked_attention(q, k, v, return_lse=True, **kw)
            ref_out, _, ref_lse = reference_attention(q, k, v, **kw)
            same_out, _, same_lse = reference_attention(q, k, v, upcast=False, **kw)
            return worst_of([("out", out, ref_out, same_out), ("lse", lse, ref_lse, same_lse)], dtype)
        dout = torch.randn(b, h, lq, dv, device=device).to(dtype)
        grads = []
        for dt, func in ((dtype, lambda *a: ma.masked_attention(*a, **kw)),
                         (torch.float64, lambda *a: reference_attention(*a, **kw)[0]),
                         (dtype, lambda *a: reference_attention(*a, upcast=False, **kw)[0])):
            leaves = [x.detach().to(dt).requires_grad_() for x in (q, k, v)]
            grads.append(torch.autograd.grad(func(*leaves), leaves, dout.to(dt)))
        return worst_of([(name, grads[0][i], grads[1][i], grads[2][i]) for i, name in enumerate(("dq", "dk", "dv"))],
                        dtype)
    return fn


# ---------------------------------------------------------------- running

def dtypes_for(device, with_bool: bool):
    floats = FLOAT_DTYPES + ((torch.float64,) if device.type == "cpu" else ())
    return ((torch.bool,) if with_bool else ()) + floats


def all_checks(device):
    """(op, case, dtypes, fn(dtype) -> (error, tolerance, note))."""
    checks = [(op, case, dtypes_for(device, True), fn) for op, case, fn in mask_checks(device)]
    checks += [(op, case, (torch.int64,), fn) for op, case, fn in token_mask_checks(device)]
    for backward in (False, True):
        suffix = "bwd" if backward else "fwd"
        checks += [(f"masked_softmax {suffix}", case, dtypes_for(device, False),
                    softmax_check(shape, kw, device, backward)) for case, shape, kw in softmax_cases(device)]
        checks += [(f"masked_attention {suffix}", case, dtypes_for(device, False),
                    attention_check(dims, kw, device, backward)) for case, dims, kw in attention_cases(device)]
    return checks


def run_one(op, case, device, dtype, fn) -> Result:
    name = str(dtype).replace("torch.", "")
    try:
        err, tol, note = fn(dtype)
    except Exception as exc:  # noqa: BLE001  (a failing op is a failed row, not the end of the run)
        lines = str(exc).strip().splitlines()
        return Result(op, device.type, name, case, float("inf"), 0.0,
                      f"error {type(exc).__name__}: {lines[0] if lines else ''}"[:90])
    return Result(op, device.type, name, case, err, tol, note)


def format_number(x: float) -> str:
    if x == float("inf"):
        return "inf"
    if x == 0:
        return "0"
    return f"{int(x)}" if x == int(x) and x < 1e6 and x >= 1 else f"{x:.2e}"


def print_results(results: List[Result]) -> None:
    rows = [[r.op, r.device, r.dtype, r.case, format_number(r.error), format_number(r.tolerance),
             "PASS" if r.passed else "FAIL", r.note] for r in results]
    print(format_table(["op", "device", "dtype", "case", "max error", "tolerance", "result", "note"], rows))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="all",
                        help="where to check (default: every available device)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random inputs (default: fresh)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    devices = resolve_devices(args.device)
    if not devices:
        print("maskattn check: CUDA is not available; nothing to check (skipped)")
        return 0
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"# maskattn {ma.__version__}, torch {torch.__version__}, seed {seed} (rerun with --seed {seed})")
    results: List[Result] = []
    for device in devices:
        print(f"# {device.type}: {device_name(device)}", flush=True)
        torch.manual_seed(seed)
        for op, case, dtypes, fn in all_checks(device):
            results += [run_one(op, case, device, dt, fn) for dt in dtypes]
    print_results(results)
    failed = sum(not r.passed for r in results)
    print(f"check: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
