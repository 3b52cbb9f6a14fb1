"""Gradient of an additive float mask (masked_attention, masked_softmax, the MHA drop-in) against
SDPA's, the float64 references' and gradcheck, summed over the mask's broadcast dims."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import maskattn as ma
from maskattn._grads import reduce_to
from maskattn.reference import reference_allowed, reference_attention, reference_masked_softmax

from conftest import DEVICES, dtypes_for
from tolerance import max_err

NEG_INF = float("-inf")
B, H, LQ, LK = 2, 4, 37, 70
# full, shared over the batch (T5-style bias), over heads (HF's (B, 1, Lq, Lk)), key bias, 2-D,
# per-query (its gradient is 0 up to rounding: softmax ignores a row's shift), expanded view
MASK_SHAPES = [(B, H, LQ, LK), (1, H, LQ, LK), (B, 1, LQ, LK), (B, 1, 1, LK), (LQ, LK), (LK,), (B, H, LQ, 1)]


def random_mask(shape, device, dtype, neg_inf=True):
    m = torch.randn(shape, device=device)
    if neg_inf and shape[-1] > 1:
        m[torch.rand(shape, device=device) > 0.85] = NEG_INF
    return m.to(dtype).requires_grad_()


def qkv(device, dtype, hkv=2, lq=LQ, lk=LK, d=32):
    return [torch.randn(B, n, l, d, device=device).to(dtype).requires_grad_() for n, l in ((H, lq), (hkv, lk), (hkv, lk))]


def bound(ref, same, dtype):
    """Twice torch's own error in the input dtype, with a floor for nearly exact results: in the half
    dtypes two units of roundoff of the largest value (storing the result alone costs one)."""
    floor = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 2 * 2.0 ** -8}[dtype]
    return max(2 * max_err(same, ref), floor * max(1.0, ref.abs().max().item()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", MASK_SHAPES)
def test_attention_mask_grad_against_reference(device, shape):
    for dtype in dtypes_for(device):
        q, k, v = qkv(device, dtype)
        mask = random_mask(shape, device, dtype if dtype != torch.float16 else torch.float32)
        kw = {"causal": True, "align": "bottom_right", "k_lengths": torch.tensor([LK, 50], device=device)}
        out = ma.masked_attention(q, k, v, mask=mask, **kw)
        ref, ref_w, _ = reference_attention(q, k, v, mask=mask, **kw)
        same, _, _ = reference_attention(q, k, v, mask=mask, upcast=False, **kw)
        g = torch.randn_like(out)
        grads = torch.autograd.grad(out, (q, mask), g)
        ref_grads = torch.autograd.grad(ref, (q, mask), g.double())
        same_grads = torch.autograd.grad(same, (q, mask), g)
        gm, rm, sm = grads[1], ref_grads[1], same_grads[1]
        assert gm.shape == mask.shape and gm.dtype == mask.dtype
        # a flash backward takes delta = rowsum(dout * out) from the output rounded to its dtype: that
        # error e_i times P_ij lands in every dS_ij, and the mask's gradient sums them
        e = ((out.detach().double() - ref.detach()) * g.double()).sum(-1).abs()
        inherited = reduce_to(ref_w.detach() * e.unsqueeze(-1), mask.detach().double()).abs().max().item()
        assert max_err(gm, rm) <= bound(rm, sm, dtype) + inherited, f"mask grad {shape} {dtype}: {max_err(gm, rm):.3g}"
        # masked positions (-inf, outside the band, past k_lengths) get exactly 0
        assert (gm[torch.isinf(mask.detach())] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(B, H, LQ, LK), (1, H, LQ, LK), (B, 1, 1, LK), (LQ, LK)])
def test_attention_mask_grad_equals_sdpa(device, shape):
    """Against SDPA's math backend in float32 (mask gradient and q/k/v gradients)."""
    q, k, v = qkv(device, torch.float32, hkv=H)
    mask = random_mask(shape, device, torch.float32, neg_inf=False)
    out = ma.masked_attention(q, k, v, mask=mask)
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v, mask), g)
    theirs = torch.autograd.grad(ref, (q, k, v, mask), g)
    for name, o, t in zip(("dq", "dk", "dv", "dmask"), ours, theirs):
        assert (o - t).abs().max() <= 1e-5 * max(1.0, t.abs().max().item()), f"{name} {shape}"


@pytest.mark.parametrize("shape", [(2, 2, 5, 7), (1, 2, 5, 7), (2, 1, 1, 7), (5, 7), (7,)])
def test_attention_gradcheck_with_mask_input(shape):
    q = torch.randn(2, 2, 5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 7, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 7, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: ma.masked_attention(*t[:3], mask=t[3], causal=True), (q, k, v, mask))
    assert torch.autograd.gradcheck(lambda *t: ma.masked_attention(*t[:3], mask=t[3], return_weights=True)[1],
                                    (q, k, v, mask))
    seed = int(torch.randint(0, 2 ** 62, ()))
    assert torch.autograd.gradcheck(
        lambda *t: ma.masked_attention(*t[:3], mask=t[3], dropout_p=0.3, generator=torch.Generator().manual_seed(seed)),
        (q, k, v, mask))


@pytest.mark.parametrize("shape", [(1, H, LQ, LK), (B, 1, LQ, LK), (LK,)])
def test_broadcast_mask_grad_is_deterministic_for_any_thread_count(shape):
    """Summed by work items that own the mask's elements: bitwise equal across runs and threads."""
    q, k, v = qkv("cpu", torch.float32)
    mask = random_mask(shape, "cpu", torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in sorted({1, 2, threads}) * 2:
            torch.set_num_threads(n)
            out = ma.masked_attention(q, k, v, mask=mask, causal=True)
            results.append(torch.autograd.grad(out, mask, torch.ones_like(out))[0])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(B, H, LQ, LK), (1, H, LQ, LK), (B, 1, 1, LK), (LQ, LK), (LK,)])
def test_softmax_mask_grad_against_reference(device, shape):
    for dtype in dtypes_for(device):
        x = torch.randn(B, H, LQ, LK, device=device).to(dtype).requires_grad_()
        mask = random_mask(shape, device, dtype if dtype != torch.float16 else torch.float32)
        kw = {"scale": 0.7, "causal": True, "k_lengths": torch.tensor([LK, 40], device=device)}
        probs = ma.masked_softmax(x, mask, **kw)
        g = torch.randn_like(probs)
        gx, gm = torch.autograd.grad(probs, (x, mask), g)
        ref = reference_masked_softmax(x, mask, **kw)
        rx, rm = torch.autograd.grad(ref, (x, mask), g.double())
        ok = reference_allowed(B, H, LQ, LK, causal=True, k_lengths=kw["k_lengths"], device=device)
        same = torch.softmax((x * kw["scale"] + mask).masked_fill(~ok, NEG_INF), -1).nan_to_num(0.0)
        sx, sm = (t.nan_to_num(0.0) for t in torch.autograd.grad(same, (x, mask), g))  # torch: NaN in empty rows
        assert gm.shape == mask.shape and gm.dtype == mask.dtype
        assert max_err(gm, rm) <= bound(rm, sm, dtype), f"softmax mask grad {shape} {dtype}: {max_err(gm, rm):.3g}"
        assert max_err(gx, rx) <= bound(rx, sx, dtype), f"softmax scores grad {shape} {dtype}"


def test_softmax_gradcheck_with_mask_input():
    x = torch.randn(2, 2, 5, 7, dtype=torch.float64, requires_grad=True)
    for shape in [(2, 2, 5, 7), (1, 2, 5, 7), (2, 1, 1, 7), (7,)]:
        mask = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, m: ma.masked_softmax(a, m, scale=0.7, causal=True), (x, mask))


def test_softmax_backward_opcheck_with_mask_grad():
    p = torch.softmax(torch.randn(2, 3, 5, 9), -1)
    for mask in (torch.randn(2, 3, 5, 9), torch.randn(1, 3, 5, 9), torch.randn(9)):
        torch.library.opcheck(torch.ops.maskattn.masked_softmax_backward,
                              (torch.randn(2, 3, 5, 9), p, 0.5, True, "top_left", 0, None, None, None, mask, True))


@pytest.mark.parametrize("device", DEVICES)
def test_multihead_attention_float_masks_get_gradients(device):
    e, heads, n, lq, lk = 16, 4, 3, 7, 9
    theirs = torch.nn.MultiheadAttention(e, heads).to(device).double().eval()
    ours = ma.nn.MultiheadAttention(e, heads).to(device).double().eval()
    ours.load_state_dict(theirs.state_dict())
    x, y = torch.randn(lq, n, e, dtype=torch.float64, device=device), torch.randn(lk, n, e, dtype=torch.float64,
                                                                                   device=device)
    for attn_shape in ((lq, lk), (n * heads, lq, lk)):
        attn = torch.randn(attn_shape, dtype=torch.float64, device=device, requires_grad=True)
        kpm = torch.randn(n, lk, dtype=torch.float64, device=device, requires_grad=True)
        out, _ = ours(x, y, y, attn_mask=attn, key_padding_mask=kpm)
        ref, _ = theirs(x, y, y, attn_mask=attn, key_padding_mask=kpm)
        g = torch.randn_like(out)
        for o, r in zip(torch.autograd.grad(out, (attn, kpm), g), torch.autograd.grad(ref, (attn, kpm), g)):
            torch.testing.assert_close(o, r)
