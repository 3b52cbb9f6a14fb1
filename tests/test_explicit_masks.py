"""Explicit masks of every broadcast pattern and dtype, built from blocks that are wholly False,
wholly True (or additive 0), additive but allowed, and mixed, so the kernels' per-block summary
(skip empty tiles, no mask work on full ones) meets every case, against the float64 reference."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_masked_softmax

from conftest import DEVICES, dtypes_for
from test_attention import check_against_reference, qkv
from test_masked_softmax import torch_same_precision
from tolerance import assert_rule, torch_softmax_grad

NEG_INF = float("-inf")
BLOCK = 16  # the summary's block; the masks' blocks are offset from it on purpose
PATTERNS = {
    "(B,1,L,L)": lambda b, h, lq, lk: (b, 1, lq, lk),
    "(1,1,L,L)": lambda b, h, lq, lk: (1, 1, lq, lk),
    "(B,1,1,L)": lambda b, h, lq, lk: (b, 1, 1, lk),
    "(L,L)": lambda b, h, lq, lk: (lq, lk),
    "(B,H,L,L)": lambda b, h, lq, lk: (b, h, lq, lk),
    "(L,1)": lambda b, h, lq, lk: (lq, 1),
}
# every pattern with bool and float32 masks, every mask dtype with the commonest pattern
COMBOS = ([(pattern, dt) for pattern in PATTERNS for dt in (torch.bool, torch.float32)] +
          [("(B,1,L,L)", dt) for dt in (torch.float16, torch.bfloat16, torch.float64)])


def block_mask(shape, dtype, device, offset=5):
    """A mask whose (offset) blocks are drawn from: masked, allowed, allowed with a nonzero
    additive value, and mixed; the last dims are cut at odd sizes."""
    lq, lk = shape[-2], shape[-1]
    lead = shape[:-2]
    kind = torch.randint(0, 4, (*lead, (lq + offset) // BLOCK + 1, (lk + offset) // BLOCK + 1), device=device)
    kind = kind.repeat_interleave(BLOCK, -2).repeat_interleave(BLOCK, -1)[..., offset:offset + lq, offset:offset + lk]
    mixed = torch.rand(shape, device=device) > 0.5
    allowed = (kind == 1) | (kind == 2) | ((kind == 3) & mixed)
    if dtype == torch.bool:
        return allowed
    value = torch.where(kind == 2, torch.randn(shape, device=device), torch.zeros(shape, device=device))
    value = torch.where(kind == 3, torch.randn(shape, device=device), value)
    return value.masked_fill(~allowed, NEG_INF).to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pattern,mask_dtype", COMBOS)
def test_masked_softmax_block_masks(device, pattern, mask_dtype):
    b, h, lq, lk = 3, 2, 70, 100
    if mask_dtype == torch.float64 and device != "cpu":
        mask_dtype = torch.float32
    mask = block_mask(PATTERNS[pattern](b, h, lq, lk), mask_dtype, device)
    x = torch.randn(b, h, lq, lk, device=device) * 2
    g = torch.randn(b, h, lq, lk, device=device)
    for dtype in dtypes_for(device):
        for kw in ({}, {"causal": True, "k_lengths": torch.randint(1, lk + 1, (b,), device=device)}):
            what = f"{pattern} {mask_dtype} {dtype} {sorted(kw)}"
            xd = x.to(dtype).clone().requires_grad_()
            got = ma.masked_softmax(xd, mask, scale=0.7, **kw)
            x64 = x.to(dtype).double().clone().requires_grad_()
            ref = reference_masked_softmax(x64, mask, scale=0.7, **kw)
            same = torch_same_precision(x.to(dtype), mask, 0.7, **kw)
            assert_rule(got, ref, same, what)
            got.backward(g.to(dtype))
            ref.backward(g.to(dtype).double())
            assert_rule(xd.grad, x64.grad, torch_softmax_grad(same, g.to(dtype), 0.7), f"grad {what}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pattern,mask_dtype", COMBOS)
def test_attention_block_masks(device, pattern, mask_dtype):
    b, h, hkv, lq, lk = 2, 4, 2, 150, 210  # several 64-row / 64-key tiles, none aligned to the blocks
    if mask_dtype == torch.float64:
        mask_dtype = torch.float32 if device != "cpu" else mask_dtype
    mask = block_mask(PATTERNS[pattern](b, h, lq, lk), mask_dtype, device, offset=9)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, 32, device, dtype)
        check_against_reference(q, k, v, f"{pattern} {mask_dtype} {dtype}", mask=mask)
        check_against_reference(q, k, v, f"{pattern} {mask_dtype} {dtype} causal", mask=mask, causal=True,
                                q_lengths=torch.tensor([lq, lq - 37], device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_whole_tiles_masked_or_allowed(device):
    """Tiles wholly False are skipped (zeros where a row attends nothing), wholly True tiles take
    the unmasked path, and a mask that allows everything equals no mask."""
    b, h, lq, lk = 2, 2, 128, 192
    mask = torch.zeros(b, 1, lq, lk, dtype=torch.bool, device=device)
    mask[0, :, :64, 64:128] = True   # one whole tile allowed, the rest of batch 0's first rows masked
    mask[1, :, 64:, :] = True        # batch 1: the second row tile sees everything
    q, k, v = qkv(b, h, h, lq, lk, 32, 32, device, torch.float32)
    check_against_reference(q, k, v, "whole tiles", mask=mask)
    out = ma.masked_attention(q, k, v, mask=mask)
    assert (out[0, :, 64:] == 0).all() and (out[1, :, :64] == 0).all()
    ones = torch.ones(lq, lk, dtype=torch.bool, device=device)
    zeros = torch.zeros(lq, lk, device=device)
    plain = ma.masked_attention(q, k, v)
    assert torch.equal(ma.masked_attention(q, k, v, mask=ones), plain)
    assert torch.equal(ma.masked_attention(q, k, v, mask=zeros), plain)
    x = torch.randn(b, h, lq, lk, device=device)
    assert torch.equal(ma.masked_softmax(x, ones), ma.masked_softmax(x))
