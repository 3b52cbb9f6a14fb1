"""CUDA masked softmax kernels, forward and backward, executed on the host against the float64
reference with the accuracy rule of tests/test_masked_softmax.py, on every row tier (a warp per
row up to 256 keys, a block per row up to 16384, streamed beyond), with vector and element-wise
loads and stores, and every mask kind."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_masked_softmax

from test_masked_softmax import MASK_KINDS, random_mask_kwargs, torch_same_precision
from tolerance import assert_rule, torch_softmax_grad

from .host_helpers import guarded, launched

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TIER = {"warp": (9, 200), "block": (3, 4500), "streamed": (2, 16400)}  # (q_len, k_len)


def tier_of(names, direction):
    tiers = {n.split("_rows_kernel")[0].split(f"softmax_{direction}_")[-1] for n in names
             if n.startswith(f"softmax_{direction}_")}
    assert len(tiers) == 1, names
    return tiers.pop()


def check_forward_backward(x, what, mask=None, scale=0.6, **kw):
    got = ma.masked_softmax(x, mask, scale=scale, **kw)
    ref = reference_masked_softmax(x.detach(), mask, scale=scale, **kw)
    assert got.dtype == x.dtype and got.shape == x.shape
    assert_rule(got, ref, torch_same_precision(x.detach(), mask, scale, **kw), f"forward {what}")
    g = torch.randn_like(got)
    (ours,) = torch.autograd.grad(got, x, g)
    x64 = x.detach().double().requires_grad_()
    (ref_grad,) = torch.autograd.grad(reference_masked_softmax(x64, mask, scale=scale, **kw), x64, g.double())
    same = torch_softmax_grad(torch_same_precision(x.detach(), mask, scale, **kw), g, scale)
    assert_rule(ours, ref_grad, same, f"backward {what}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tier", TIER)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_every_tier_and_mask_kind(on_host, dtype, tier, kind):
    b, h = 2, 2
    lq, lk = TIER[tier]
    kw = random_mask_kwargs(kind, b, lq, lk, "cpu")
    x = (guarded(torch.randn(b, h, lq, lk).to(dtype)) * 3).detach().requires_grad_()
    check_forward_backward(x, f"{tier} {kind} {dtype}", **kw)
    names = launched(on_host)
    assert tier_of(names, "fwd") == tier and tier_of(names, "bwd") == tier


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lk", [23, 200, 1001, 16384, 16385])
@pytest.mark.parametrize("layout", ["rows off alignment", "aligned rows, ragged length"])
def test_vector_and_element_paths(on_host, dtype, lk, layout):
    """Rows that start off 16-byte alignment are read element by element; aligned rows of a length
    that is no whole number of vectors are read by vectors but written (contiguous probabilities)
    element by element at the row ends."""
    if layout == "rows off alignment":
        x = guarded(torch.randn(2, 3, lk + 1).to(dtype))[..., 1:]
    else:
        x = guarded(torch.randn(2, 3, (lk + 7) // 8 * 8).to(dtype))[..., :lk]
    x = x.detach().requires_grad_()
    check_forward_backward(x, f"{layout} {lk} {dtype}", causal=True, align="bottom_right")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", [(1, 1, 9, 23), (4, 1, 1, 23), (23,), (4, 3, 9, 23)])
@pytest.mark.parametrize("additive", [False, True])
def test_explicit_masks(on_host, dtype, mask_shape, additive):
    if additive:
        mask = torch.randn(mask_shape)
        mask[torch.rand(mask_shape) > 0.7] = float("-inf")
    else:
        mask = torch.rand(mask_shape) > 0.3
    x = guarded(torch.randn(4, 3, 9, 23).to(dtype)).requires_grad_()
    check_forward_backward(x, f"{mask_shape} {dtype}", mask=guarded(mask), scale=1.3, causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_rows_are_zero_with_zero_grad(on_host, dtype):
    x = guarded(torch.randn(2, 2, 4, 8).to(dtype)).requires_grad_()
    key_mask = torch.ones(2, 8, dtype=torch.bool)
    key_mask[1] = False
    additive = torch.zeros(4, 8)
    additive[2] = float("-inf")
    y = ma.masked_softmax(x, additive, key_mask=key_mask)
    assert not torch.isnan(y).any()
    assert y[1].abs().max() == 0 and y[:, :, 2].abs().max() == 0
    (g,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert not torch.isnan(g).any()


def test_huge_scale_rounds_the_product_before_the_mask(on_host):
    """The CUDA forward rounds x * scale before the additive mask joins it (__fmul_rn, __fadd_rn), as
    torch does: tied logits at scale 1e20 stay tied (the CPU test of the same name, on the kernels)."""
    from test_masked_softmax import test_huge_scale_rounds_the_product_before_the_mask as same_checks
    same_checks("cpu")
    assert any(n.startswith("softmax_fwd_") for n in launched(on_host))
