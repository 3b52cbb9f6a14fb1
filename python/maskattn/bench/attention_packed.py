"""Packed sequences: documents packed into one row with ``segments=`` (per-document causal), against
SDPA given the block-diagonal causal mask as a bool tensor (what a user of SDPA must build), and
against maskattn on the same documents as a batch. Both devices, the device's own dtype."""
from typing import List

import torch
import torch.nn.functional as F

import maskattn as ma

from .harness import Case, Method, timed_call
from .work import attention_flops_unmasked

# (documents, document length, heads, head dim)
CPU_PLANS = ((8, 1024, 12, 64),)
CUDA_PLANS = ((8, 1024, 16, 128), (16, 2048, 16, 128))


def make_inputs(docs: int, length: int, heads: int, dim: int, mode: str, device, dtype):
    def build():
        total = docs * length
        grad = mode != "fwd"
        q, k, v = (torch.randn(1, heads, total, dim, device=device, dtype=dtype, requires_grad=grad)
                   for _ in range(3))
        segments = ma.segments_from_lengths(torch.full((docs,), length), total).to(device)
        # the same documents as a batch: (docs, heads, length, dim) copies, outside the timing
        batched = [t.detach().view(heads, docs, length, dim).transpose(0, 1).contiguous().requires_grad_(grad)
                   for t in (q, k, v)]
        block_causal = ma.attention_mask(total, segments=segments, causal=True, device=device)
        return {"q": q, "k": k, "v": v, "segments": segments, "batched": batched, "sdpa_mask": block_causal}

    return build


def methods(mode: str) -> List[Method]:
    def packed(x):
        return timed_call(lambda: ma.masked_attention(x["q"], x["k"], x["v"], segments=x["segments"], causal=True),
                          [x["q"], x["k"], x["v"]], mode)

    def batched(x):
        q, k, v = x["batched"]
        return timed_call(lambda: ma.masked_attention(q, k, v, causal=True), [q, k, v], mode)

    def sdpa(x):
        return timed_call(lambda: F.scaled_dot_product_attention(x["q"], x["k"], x["v"], attn_mask=x["sdpa_mask"]),
                          [x["q"], x["k"], x["v"]], mode)

    return [Method("maskattn segments (packed)", packed, ours=True),
            Method("maskattn batched causal", batched),
            Method("sdpa block-diagonal bool mask", sdpa)]


def packed_case(plan, mode: str, device: torch.device) -> Case:
    docs, length, heads, dim = plan
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pairs = docs * length * (length + 1) // 2
    return Case("packed", f"packed {docs}x{length} causal", device, dtype, (1, heads, docs * length, dim), mode,
                make_inputs(docs, length, heads, dim, mode, device, dtype), methods(mode),
                {"flops_unmasked": attention_flops_unmasked(heads, dim, pairs, mode)},
                extra={"seq_len": docs * length, "head_dim": dim, "documents": docs})


def cases(device: torch.device, quick: bool) -> List[Case]:
    plans = CUDA_PLANS if device.type == "cuda" else CPU_PLANS
    modes = ("fwd",) if quick else ("fwd", "fwd+bwd")
    return [packed_case(p, m, device) for p in plans[:1 if quick else None] for m in modes]
