"""Decoding against a KV cache: q of Lq = 1 (the next token) or 4 (a speculative draft, causal and
aligned to the cache's end) for every sequence of a batch, K and V (B, Hkv, L, D) with every head
(MHA) or grouped (GQA, 4 query heads a kv head), and a small model's step (batch 1, 12 heads of 64,
1024 cached tokens: the cache fits the CPU's caches, so the fixed costs of a call show). The cache
full, or ragged (lengths 50-100% of L): maskattn gets k_lengths, SDPA the (B, 1, Lq, L) bool mask a
user builds from them. Forward only, as serving runs it. Rates: the K and V bytes the lengths
leave, against the run's copy bandwidth (decoding reads each of them once)."""
from typing import List

import torch
import torch.nn.functional as F

import maskattn as ma
from maskattn.reference import reference_allowed

from .harness import Case, Method, timed_call

# (batch, query heads, kv heads, Lq, cache length, head dim)
PLANS = ((8, 32, 32, 1, 4096, 128), (8, 32, 8, 1, 4096, 128), (8, 32, 8, 4, 4096, 128), (1, 12, 12, 1, 1024, 64))
VARIANTS = ("full cache", "ragged cache")


def make_inputs(plan, variant: str, device: torch.device, dtype: torch.dtype):
    batch, heads, kv_heads, q_len, cache, dim = plan

    def build():
        q = torch.randn(batch, heads, q_len, dim, device=device).to(dtype)
        k, v = (torch.randn(batch, kv_heads, cache, dim, device=device).to(dtype) for _ in range(2))
        x = {"q": q, "k": k, "v": v, "k_lengths": None, "sdpa_mask": None}
        if variant == "ragged cache":
            x["k_lengths"] = torch.randint(cache // 2, cache + 1, (batch,), device=device)
        if variant == "ragged cache" or q_len > 1:
            x["sdpa_mask"] = reference_allowed(batch, 1, q_len, cache, causal=q_len > 1, align="bottom_right",
                                               k_lengths=x["k_lengths"], device=device).contiguous()
        return x

    return build


def methods(plan) -> List[Method]:
    batch, heads, kv_heads, q_len, cache, dim = plan
    draft = q_len > 1

    def ours(x):
        return timed_call(lambda: ma.masked_attention(x["q"], x["k"], x["v"], causal=draft, align="bottom_right",
                                                      k_lengths=x["k_lengths"]),
                          [x["q"], x["k"], x["v"]], "fwd")

    def sdpa(x):
        return timed_call(lambda: F.scaled_dot_product_attention(x["q"], x["k"], x["v"], attn_mask=x["sdpa_mask"],
                                                                 enable_gqa=heads != kv_heads),
                          [x["q"], x["k"], x["v"]], "fwd")

    return [Method("maskattn masked_attention", ours, ours=True), Method("sdpa", sdpa)]


def decode_case(plan, variant: str, device: torch.device, dtype: torch.dtype) -> Case:
    batch, heads, kv_heads, q_len, cache, dim = plan
    kind = "MHA" if heads == kv_heads else f"GQA {heads // kv_heads}"
    if batch == 1:
        kind += " batch 1"

    def work(x):
        keys = int(x["k_lengths"].sum()) if x["k_lengths"] is not None else batch * cache
        return {"bytes": 2.0 * keys * kv_heads * dim * x["k"].element_size()}

    return Case("decode", f"decode Lq={q_len} {kind} {variant}", device, dtype, plan, "fwd",
                make_inputs(plan, variant, device, dtype), methods(plan), work,
                extra={"seq_len": cache, "head_dim": dim})


def cases(device: torch.device, quick: bool) -> List[Case]:
    if quick:
        return [decode_case(PLANS[0], v, device, torch.bfloat16) for v in VARIANTS]
    dtypes = (torch.float32, torch.bfloat16, torch.float16) if device.type == "cpu" else (torch.bfloat16,
                                                                                          torch.float16)
    return [decode_case(p, v, device, dt) for dt in dtypes for p in PLANS for v in VARIANTS]
