"""CPU attention (B, H, L, D): dense, causal and causal + random key lengths (50-100% of L), the last
given to maskattn compactly and, as "mask", as the same (B, 1, L, L) bool tensor SDPA gets; float32
forward and forward+backward, bfloat16 forward and forward+backward, float16 forward; against SDPA (is_causal or the bool
mask) and, for causal, compiled FlexAttention; dense float32 with attention dropout 0.1, against the same call
without dropout (the cost of the draws) and SDPA's dropout. Rates count only the work the mask leaves
(work.attention_flops_unmasked)."""
from typing import List

import torch
import torch.nn.functional as F

import maskattn as ma
from maskattn.reference import reference_allowed

from .flex import block_mask, flex_method_call
from .harness import Case, Method, timed_call
from .work import allowed_pairs, attention_flops_unmasked

SHAPES = ((8, 12, 512, 64), (2, 12, 2048, 64))
VARIANTS = ("dense", "causal", "causal+k_lengths", "causal+k_lengths mask", "dense+dropout")
HALF_DTYPES = (torch.bfloat16, torch.float16)
DROPOUT_P = 0.1


def make_inputs(shape, variant: str, mode: str, device: torch.device, with_flex: bool, dtype=torch.float32):
    batch, heads, seq, dim = shape

    def build():
        grad = mode != "fwd"
        q, k, v = (torch.randn(shape, device=device).to(dtype).requires_grad_(grad) for _ in range(3))
        x = {"q": q, "k": k, "v": v, "k_lengths": None, "sdpa_mask": None}
        if variant.startswith("causal+k_lengths"):
            x["k_lengths"] = torch.randint(seq // 2, seq + 1, (batch,), device=device)
            x["sdpa_mask"] = reference_allowed(batch, 1, seq, seq, causal=True, k_lengths=x["k_lengths"],
                                               device=device).contiguous()
        if with_flex:
            x["block_mask"] = block_mask(batch, seq, seq, device, k_lengths=x["k_lengths"])
        return x

    return build


def methods(variant: str, mode: str, with_flex: bool) -> List[Method]:
    causal = variant.startswith("causal")
    dropout_p = DROPOUT_P if variant.endswith("dropout") else 0.0

    def ours_with(p):
        def build(x):
            if variant == "causal+k_lengths mask":  # the very tensor SDPA gets
                return timed_call(lambda: ma.masked_attention(x["q"], x["k"], x["v"], mask=x["sdpa_mask"]),
                                  [x["q"], x["k"], x["v"]], mode)
            return timed_call(lambda: ma.masked_attention(x["q"], x["k"], x["v"], causal=causal,
                                                          k_lengths=x["k_lengths"], dropout_p=p),
                              [x["q"], x["k"], x["v"]], mode)
        return build

    ours = ours_with(dropout_p)

    def sdpa(x):
        kwargs = {"attn_mask": x["sdpa_mask"]} if x["sdpa_mask"] is not None else {"is_causal": causal}
        return timed_call(lambda: F.scaled_dot_product_attention(x["q"], x["k"], x["v"], dropout_p=dropout_p,
                                                                 **kwargs),
                          [x["q"], x["k"], x["v"]], mode)

    def flex(x):
        return timed_call(flex_method_call(x["q"], x["k"], x["v"], x["block_mask"]), [x["q"], x["k"], x["v"]], mode)

    sdpa_name = {"dense": "sdpa", "causal": "sdpa is_causal"}.get(variant, "sdpa bool mask")
    if dropout_p > 0:
        # the same call without dropout, timed in the same run: the ratio is the cost of dropout
        return [Method(f"maskattn masked_attention dropout {dropout_p}", ours, ours=True),
                Method("maskattn masked_attention no dropout", ours_with(0.0)),
                Method(f"sdpa dropout {dropout_p}", sdpa)]
    out = [Method("maskattn masked_attention", ours, ours=True), Method(sdpa_name, sdpa)]
    if with_flex:
        out.append(Method("flex_attention compiled", flex))
    return out


def attention_case(shape, variant: str, mode: str, device: torch.device, quick: bool, dtype=torch.float32) -> Case:
    batch, heads, seq, dim = shape
    # compiling takes seconds per variant
    with_flex = variant == "causal" and not quick and dtype == torch.float32

    def work(x):
        pairs = allowed_pairs(seq, seq, causal=variant.startswith("causal"), k_lengths=x["k_lengths"], batch=batch)
        return {"flops_unmasked": attention_flops_unmasked(heads, dim, pairs, mode)}

    return Case("attention", f"attention {variant}", device, dtype, shape, mode,
                make_inputs(shape, variant, mode, device, with_flex, dtype), methods(variant, mode, with_flex), work,
                extra={"seq_len": seq, "head_dim": dim})


def cases(device: torch.device, quick: bool) -> List[Case]:
    f32 = torch.float32
    if quick:
        plan = [(SHAPES[0], v, "fwd", f32) for v in VARIANTS[:4]] + [(SHAPES[0], v, "fwd+bwd", f32)
                                                                     for v in ("causal", "dense+dropout")]
        plan += [(SHAPES[0], "causal", "fwd", torch.bfloat16)]
    else:
        plan = [(s, v, m, f32) for s in SHAPES for m in ("fwd", "fwd+bwd") for v in VARIANTS]
        plan += [(s, v, "fwd", dt) for dt in HALF_DTYPES for s in SHAPES for v in VARIANTS[:3]]
        plan += [(s, v, "fwd+bwd", torch.bfloat16) for s in SHAPES for v in VARIANTS[:3]]
    return [attention_case(s, v, m, device, quick, dt) for s, v, m, dt in plan]
