"""Masked softmax, causal + random key lengths (50-100% of Lk), against torch on a prebuilt bool mask:
``scores.masked_fill(~mask, -inf).softmax(-1)``, forward and forward+backward. On CPU maskattn gets
the mask compactly, and also as the (B, 1, Lq, Lk) bool tensor torch gets and as its additive
float form; "out=" writes into a preallocated result."""
from typing import List

import torch

import maskattn as ma
from maskattn.reference import reference_allowed

from .harness import Case, Method, timed_call
from .work import softmax_bytes

CPU_SHAPE = (8, 12, 512, 512)
CUDA_TENSOR_BYTES = 256 * 2**20
CUDA_ROW_LENGTHS = (128, 512, 2048, 8192, 32768, 65536)


def cuda_shape(k_len: int, dtype: torch.dtype):
    """(B, H, Lq, Lk) of about CUDA_TENSOR_BYTES, with Lq = min(Lk, 1024) query rows per (b, h)."""
    numel = CUDA_TENSOR_BYTES // torch.empty(0, dtype=dtype).element_size()
    q_len = min(k_len, 1024)
    bh = max(1, numel // (q_len * k_len))
    batch = min(8, bh)
    return batch, bh // batch, q_len, k_len


MASK_FORMS = ("implicit", "bool mask", "float mask", "out=")


def softmax_case(shape, dtype: torch.dtype, mode: str, device: torch.device, form: str = "implicit") -> Case:
    batch, heads, q_len, k_len = shape
    # bottom_right keeps the last query row seeing every key when Lq < Lk (same as top_left when equal)
    align = "bottom_right"

    def make_inputs():
        k_lengths = torch.randint(k_len // 2, k_len + 1, (batch,), device=device)
        allowed = reference_allowed(batch, 1, q_len, k_len, causal=True, align=align, k_lengths=k_lengths,
                                    device=device).contiguous()
        scores = torch.randn(shape, dtype=dtype, device=device, requires_grad=mode != "fwd")
        x = {"scores": scores, "k_lengths": k_lengths, "masked_out": ~allowed, "allowed": allowed}
        if form == "float mask":
            x["additive"] = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))
        if form == "out=":
            x["out"] = torch.empty_like(scores)
        return x

    def ours(x):
        if form == "bool mask":
            call = lambda: ma.masked_softmax(x["scores"], x["allowed"])  # noqa: E731
        elif form == "float mask":
            call = lambda: ma.masked_softmax(x["scores"], x["additive"])  # noqa: E731
        elif form == "out=":
            call = lambda: ma.masked_softmax(x["scores"], causal=True, align=align, k_lengths=x["k_lengths"],  # noqa: E731
                                             out=x["out"])
        else:
            call = lambda: ma.masked_softmax(x["scores"], causal=True, align=align, k_lengths=x["k_lengths"])  # noqa: E731
        return timed_call(call, [x["scores"]], mode)

    def torch_baseline(x):
        return timed_call(lambda: x["scores"].masked_fill(x["masked_out"], float("-inf")).softmax(-1),
                          [x["scores"]], mode)

    numel = batch * heads * q_len * k_len
    elem = torch.empty(0, dtype=dtype).element_size()
    name = "masked_softmax causal+k_lengths" + ("" if form == "implicit" else f" {form}")
    return Case("softmax", name, device, dtype, shape, mode, make_inputs, [
        Method("maskattn masked_softmax", ours, ours=True),
        Method("torch masked_fill+softmax", torch_baseline),
    ], work={"bytes": softmax_bytes(numel, elem, mode)}, extra={"seq_len": k_len})


def cases(device: torch.device, quick: bool) -> List[Case]:
    if device.type == "cpu":
        forms = ("implicit", "bool mask") if quick else MASK_FORMS
        return [softmax_case(CPU_SHAPE, torch.float32, mode, device, form) for form in forms
                for mode in ("fwd", "fwd+bwd") if not (form == "out=" and mode != "fwd")]
    dtypes = (torch.bfloat16,) if quick else (torch.float16, torch.bfloat16, torch.float32)
    lengths = (512, 8192) if quick else CUDA_ROW_LENGTHS
    modes = ("fwd",) if quick else ("fwd", "fwd+bwd")
    return [softmax_case(cuda_shape(n, dt), dt, mode, device) for dt in dtypes for n in lengths for mode in modes]
