"""CUDA attention, bfloat16, B*L = 16k tokens, H*D = 2048: maskattn against SDPA with each backend it
offers and its default choice, compiled FlexAttention and naive torch (matmul, masked_fill, softmax,
matmul). TFLOP/s as FlashAttention counts it, plus a rate over the unmasked work only."""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F

import maskattn as ma
from maskattn.reference import reference_allowed

from .flex import block_mask, flex_method_call
from .harness import Case, Method, Skip, timed_call
from .work import allowed_pairs, attention_flops_flash, attention_flops_unmasked

TOKENS = 16384
MODEL_DIM = 2048  # H * D, as FlashAttention's benchmark
SWEEP_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
WINDOW = (1023, 0)
SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def shape_for(seq: int, dim: int):
    return TOKENS // seq, MODEL_DIM // dim, seq, dim


def _fits(nbytes: float, what: str) -> None:
    free, _total = torch.cuda.mem_get_info()
    if nbytes > 0.8 * free:
        raise Skip(f"{what} needs ~{nbytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")


def _score_bytes(shape, element_size: int, tensors: int, mode: str) -> float:
    batch, heads, seq, _ = shape
    return batch * heads * seq * seq * element_size * tensors * (1 if mode == "fwd" else 2)


def make_inputs(shape, variant: str, mode: str, device: torch.device):
    batch, heads, seq, dim = shape

    def build():
        grad = mode != "fwd"
        q, k, v = (torch.randn(shape, dtype=torch.bfloat16, device=device, requires_grad=grad) for _ in range(3))
        k_lengths = (torch.randint(seq // 2, seq + 1, (batch,), device=device)
                     if variant == "causal+k_lengths" else None)
        window_left = WINDOW[0] if variant == "causal window" else None
        allowed = None
        if variant != "causal":
            allowed = reference_allowed(batch, 1, seq, seq, causal=True, window=(window_left, 0),
                                        k_lengths=k_lengths, device=device).contiguous()
        else:
            allowed = reference_allowed(1, 1, seq, seq, causal=True, device=device)[0, 0].contiguous()
        return {"q": q, "k": k, "v": v, "k_lengths": k_lengths, "window_left": window_left,
                "allowed": allowed, "masked_out": ~allowed,
                "block_mask": block_mask(batch, seq, seq, device, window_left=window_left, k_lengths=k_lengths)}

    return build


def methods(shape, variant: str, mode: str) -> List[Method]:
    causal_only = variant == "causal"

    def leaves(x):
        return [x["q"], x["k"], x["v"]]

    def ours(x):
        window = (x["window_left"], 0) if x["window_left"] is not None else None
        return timed_call(lambda: ma.masked_attention(x["q"], x["k"], x["v"], causal=True, window=window,
                                                      k_lengths=x["k_lengths"]), leaves(x), mode)

    def sdpa(backend: Optional[str]):
        def build(x):
            kwargs = {"is_causal": True} if causal_only else {"attn_mask": x["allowed"]}
            if backend == "MATH":  # math upcasts half types to float32 and materialises the scores
                _fits(_score_bytes(shape, 4, 3, mode), "sdpa math")
            if backend is None:
                return timed_call(lambda: F.scaled_dot_product_attention(x["q"], x["k"], x["v"], **kwargs),
                                  leaves(x), mode)
            from torch.nn.attention import SDPBackend, sdpa_kernel
            chosen = getattr(SDPBackend, backend, None)
            if chosen is None:
                raise Skip(f"this torch has no SDPBackend.{backend}")

            def call():
                with sdpa_kernel(chosen):
                    return F.scaled_dot_product_attention(x["q"], x["k"], x["v"], **kwargs)
            return timed_call(call, leaves(x), mode)
        return build

    def flex(x):
        return timed_call(flex_method_call(x["q"], x["k"], x["v"], x["block_mask"]), leaves(x), mode)

    def naive(x):
        _fits(_score_bytes(shape, 2, 3, mode), "naive torch")
        scale = 1.0 / math.sqrt(shape[-1])

        def call():
            scores = (x["q"] @ x["k"].transpose(-1, -2)) * scale
            return scores.masked_fill(x["masked_out"], float("-inf")).softmax(-1) @ x["v"]
        return timed_call(call, leaves(x), mode)

    out = [Method("maskattn masked_attention", ours, ours=True), Method("sdpa default", sdpa(None))]
    out += [Method(f"sdpa {name.split('_')[0].lower()}", sdpa(name)) for name in SDPA_BACKENDS]
    out += [Method("flex_attention compiled", flex), Method("naive torch", naive)]
    return out


def attention_case(seq: int, dim: int, variant: str, mode: str, device: torch.device, sweep: Optional[str]) -> Case:
    shape = shape_for(seq, dim)
    batch, heads, _, _ = shape

    def work(x):
        pairs = allowed_pairs(seq, seq, causal=True, window_left=x["window_left"], k_lengths=x["k_lengths"],
                              batch=batch)
        return {"flops": attention_flops_flash(batch, heads, seq, seq, dim, True, mode),
                "flops_unmasked": attention_flops_unmasked(heads, dim, pairs, mode)}

    # which kernels ours runs (tensor cores, or the slower fp32-math SIMT path), so a slow row is explained
    extra = {"seq_len": seq, "head_dim": dim,
             "maskattn_path": ma._C.cuda_attention_path("bfloat16", dim, dim, device.index if device.index is not None
                                                        else -1)}
    if sweep:
        extra["sweep"] = sweep
    return Case("attention", f"attention {variant}", device, torch.bfloat16, shape, mode,
                make_inputs(shape, variant, mode, device), methods(shape, variant, mode), work, extra)


def cases(device: torch.device, quick: bool) -> List[Case]:
    dims = (128,) if quick else (64, 128)
    lengths = (2048, 8192) if quick else SWEEP_LENGTHS
    padded_lengths = (8192,) if quick else (2048, 8192)
    out = [attention_case(n, d, "causal", "fwd", device, f"fwd causal D={d}") for d in dims for n in lengths]
    out += [attention_case(n, 128, "causal+k_lengths", "fwd", device, None) for n in padded_lengths]
    out.append(attention_case(16384, 128, "causal window", "fwd", device, None))
    out += [attention_case(n, 128, v, "bwd", device, None)
            for v in ("causal", "causal+k_lengths") for n in padded_lengths]
    return out
