"""Rows whose allowed keys all carry one large finite additive value (-1e9 as TensorFlow writes
masks, finfo.min as Hugging Face's eager masks): uniform weights over those keys and the
matching gradients, as the math in the kernels' float32 scores gives; partial rows too."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import maskattn as ma
from maskattn.reference import reference_attention

from conftest import DEVICES, dtypes_for
from tolerance import max_err


def large_mask(value, lq, lk, device, dtype):
    """Additive (lq, lk) mask: row 1 all `value`, row 2 `value` from key 3 on, the last row
    `value` on every other key; the rest small and random."""
    m = (torch.randn(lq, lk, device=device) * 0.1).to(dtype)
    m[1] = value
    m[2, 3:] = value
    m[-1, ::2] = value
    return m


VALUES = {"-1e9": lambda dtype: -1e9, "finfo.min": lambda dtype: torch.finfo(dtype).min}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("lq,lk", [(6, 9), (70, 131), (3, 1)])
def test_against_reference_in_the_kernels_precision(device, value, lq, lk):
    """Against the float64 reference whose scores are rounded to the kernels' float32 (float64
    itself exactly), out, weights and gradients; whole masked rows have weights 1 / Lk."""
    for dtype in dtypes_for(device):
        mask_dtype = torch.float32 if dtype == torch.float16 and value == "-1e9" else dtype
        mask = large_mask(VALUES[value](mask_dtype), lq, lk, device, mask_dtype)
        q, k, v = (torch.randn(2, 2, n, 16, device=device).to(dtype).requires_grad_() for n in (lq, lk, lk))
        out, w = ma.masked_attention(q, k, v, mask=mask, return_weights=True)
        scores = None if dtype == torch.float64 else torch.float32
        ref_out, ref_w, _ = reference_attention(q, k, v, mask=mask, scores_dtype=scores)
        tol = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype]
        assert max_err(out, ref_out) <= tol * max(1.0, ref_out.abs().max().item()), f"out {value} {dtype}"
        assert max_err(w, ref_w) <= tol, f"weights {value} {dtype}"
        if lq > 1 and dtype != torch.float64 and mask_dtype != torch.float16:
            assert torch.allclose(w[:, :, 1].double(), torch.full_like(w[:, :, 1].double(), 1 / lk), atol=tol)
        g = torch.randn_like(out)
        ours = torch.autograd.grad(out, (q, k, v), g)
        ref = torch.autograd.grad(ref_out, (q, k, v), g.double())
        for name, o, r in zip("qkv", ours, ref):
            assert max_err(o, r) <= 2 * tol * max(1.0, r.abs().max().item()), f"d{name} {value} {dtype}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("value", list(VALUES))
def test_equals_sdpa_math_in_float32(device, value):
    """SDPA's math backend (torch's flash CPU kernel rebuilds P from a float32 lse the same way
    this package used to, and is off there)."""
    lq, lk = 33, 47
    mask = large_mask(VALUES[value](torch.float32), lq, lk, device, torch.float32).requires_grad_()
    q, k, v = (torch.randn(2, 3, n, 32, device=device, requires_grad=True) for n in (lq, lk, lk))
    out, w = ma.masked_attention(q, k, v, mask=mask, return_weights=True)
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref_w = torch.softmax(q @ k.transpose(-1, -2) * 32 ** -0.5 + mask, -1)
    assert (out - ref).abs().max() <= 2e-5 and (w - ref_w).abs().max() <= 2e-6
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v, mask), g)
    theirs = torch.autograd.grad(ref, (q, k, v, mask), g)
    for name, o, t in zip(("dq", "dk", "dv", "dmask"), ours, theirs):
        assert (o - t).abs().max() <= 2e-5 * max(1.0, t.abs().max().item()), f"{name} {value}"


@pytest.mark.parametrize("device", DEVICES)
def test_backward_from_a_plain_lse_still_works(device):
    """Without the forward's row statistics (a merged lse from several calls), the backward
    takes P from lse as before: ordinary masks give the same gradients."""
    q, k, v = (torch.randn(2, 2, n, 16, device=device) for n in (20, 30, 30))
    out, lse, _, stats, _ = torch.ops.maskattn.masked_attention(q, k, v, None, True, "top_left", 0, None, None, None,
                                                                None, None, None, None, 0.25, False)
    g = torch.randn_like(out)
    args = (g, None, None, q, k, v, out, lse, None, True, "top_left", 0, None, None, None, None, None, None, None, 0.25)
    with_stats = torch.ops.maskattn.masked_attention_backward(*args, stats)
    plain = torch.ops.maskattn.masked_attention_backward(*args)
    for a, b in zip(with_stats[:3], plain[:3]):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max().item())
