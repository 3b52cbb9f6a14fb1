"""Masked softmax, causal + random key lengths (50-100% of Lk), against torch on a prebuilt bool mask:
``scores.masked_fill(~mask, -inf).softmax(-1)``, forward and forward+backward."""
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


def softmax_case(shape, dtype: torch.dtype, mode: str, device: torch.device) -> Case:
    batch, heads, q_len, k_len = shape
    # bottom_right keeps the last query row seeing every key when Lq < Lk (same as top_left when equal)
    align = "bottom_right"

    def make_inputs():
        k_lengths = torch.randint(k_len // 2, k_len + 1, (batch,), device=device)
        allowed = reference_allowed(batch, 1, q_len, k_len, causal=True, align=align, k_lengths=k_lengths,
                                    device=device).contiguous()
        scores = torch.randn(shape, dtype=dtype, device=device, requires_grad=mode != "fwd")
        return {"scores": scores, "k_lengths": k_lengths, "masked_out": ~allowed}

    def ours(x):
        return timed_call(lambda: ma.masked_softmax(x["scores"], causal=True, align=align, k_lengths=x["k_lengths"]),
                          [x["scores"]], mode)

    def torch_baseline(x):
        return timed_call(lambda: x["scores"].masked_fill(x["masked_out"], float("-inf")).softmax(-1),
                          [x["scores"]], mode)

    numel = batch * heads * q_len * k_len
    elem = torch.empty(0, dtype=dtype).element_size()
    return Case("softmax", "masked_softmax causal+k_lengths", device, dtype, shape, mode, make_inputs, [
        Method("maskattn masked_softmax", ours, ours=True),
        Method("torch masked_fill+softmax", torch_baseline),
    ], work={"bytes": softmax_bytes(numel, elem, mode)}, extra={"seq_len": k_len})


def cases(device: torch.device, quick: bool) -> List[Case]:
    if device.type == "cpu":
        return [softmax_case(CPU_SHAPE, torch.float32, mode, device) for mode in ("fwd", "fwd+bwd")]
    dtypes = (torch.bfloat16,) if quick else (torch.float16, torch.bfloat16, torch.float32)
    lengths = (512, 8192) if quick else CUDA_ROW_LENGTHS
    modes = ("fwd",) if quick else ("fwd", "fwd+bwd")
    return [softmax_case(cuda_shape(n, dt), dt, mode, device) for dt in dtypes for n in lengths for mode in modes]
