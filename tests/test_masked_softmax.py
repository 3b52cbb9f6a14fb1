"""Fused masked softmax forward and backward against the float64 reference."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_masked_softmax

from conftest import DEVICES, dtypes_for
from tolerance import assert_rule, torch_masked_softmax as torch_same_precision, torch_softmax_grad


def random_mask_kwargs(kind, b, lq, lk, device):
    k_lengths = torch.randint(0, lk + 1, (b,), device=device)
    k_lengths[0] = 0  # a sequence with no keys: fully masked rows
    # packed documents: sorted ids, the keys' tail padding (-1)
    q_seg = torch.randint(0, 3, (b, lq), device=device).sort(-1).values
    k_seg = torch.randint(0, 3, (b, lk), device=device).sort(-1).values
    k_seg[:, lk - lk // 8:] = -1
    return {
        "none": {},
        "causal": {"causal": True},
        "causal_br": {"causal": True, "align": "bottom_right"},
        "window": {"window": (3, 2)},
        "k_lengths": {"k_lengths": k_lengths},
        "key_mask": {"key_mask": torch.rand(b, lk, device=device) > 0.4},
        "causal_lengths_window": {"causal": True, "align": "bottom_right", "window": (5, None),
                                  "k_lengths": k_lengths},
        "segments_causal": {"segments": (q_seg, k_seg), "causal": True},
        "int_align_window": {"align": int(torch.randint(-lq, lk + 1, ())), "window": (6, 1), "k_lengths": k_lengths},
    }[kind]


MASK_KINDS = ["none", "causal", "causal_br", "window", "k_lengths", "key_mask", "causal_lengths_window",
              "segments_causal", "int_align_window"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("lq,lk", [(1, 1), (97, 97), (33, 1025), (5, 4500)])
def test_forward_mask_kinds(device, kind, lq, lk):
    b, h = 3, 2
    kw = random_mask_kwargs(kind, b, lq, lk, device)
    for dtype in dtypes_for(device):
        x = torch.randn(b, h, lq, lk, device=device).to(dtype) * 3
        got = ma.masked_softmax(x, scale=0.6, **kw)
        ref = reference_masked_softmax(x, scale=0.6, **kw)
        assert got.dtype == dtype and got.shape == x.shape
        assert_rule(got, ref, torch_same_precision(x, None, 0.6, **kw), f"{kind} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_shape", [(1, 1, 9, 23), (4, 1, 1, 23), (23,), (4, 3, 9, 23)])
@pytest.mark.parametrize("additive", [False, True])
def test_explicit_mask_broadcast(device, mask_shape, additive):
    x = torch.randn(4, 3, 9, 23, device=device)
    if additive:
        mask = torch.randn(mask_shape, device=device)
        mask[torch.rand(mask_shape, device=device) > 0.7] = float("-inf")
    else:
        mask = torch.rand(mask_shape, device=device) > 0.3
    for dtype in dtypes_for(device):
        xd = x.to(dtype)
        got = ma.masked_softmax(xd, mask, scale=1.3, causal=True)
        ref = reference_masked_softmax(xd, mask, scale=1.3, causal=True)
        assert_rule(got, ref, torch_same_precision(xd, mask, 1.3, causal=True), f"{mask_shape} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
def test_finite_additive_mask_like_tensorflow(device):
    x = torch.randn(2, 5, 6, device=device)
    mask = torch.zeros(5, 6, device=device)
    mask[:, 3:] = -1e9
    got = ma.masked_softmax(x, mask)
    assert torch.allclose(got, reference_masked_softmax(x, mask).float(), atol=2e-6)
    assert got[..., 3:].abs().max() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_scores_layouts(device):
    base = torch.randn(6, 40, 50, device=device)
    x2 = base[0, :, :33]  # 2-D, strided rows
    x3 = base.transpose(0, 1)[:, :5]  # 3-D, permuted leading dims
    for x, kw in ((x2, {"causal": True}), (x3, {"key_mask": torch.rand(40, 50, device=device) > 0.5})):
        got = ma.masked_softmax(x, **kw)
        assert got.is_contiguous() and got.shape == x.shape
        assert_rule(got, reference_masked_softmax(x, **kw), what="layout")
    xt = torch.randn(2, 3, 50, 40, device=device).transpose(-1, -2)  # key dim not contiguous
    assert_rule(ma.masked_softmax(xt, causal=True), reference_masked_softmax(xt, causal=True), what="transposed")


@pytest.mark.parametrize("device", DEVICES)
def test_long_rows(device):
    lk = 70000
    x = torch.randn(2, 3, lk, device=device) * 4
    k_lengths = torch.tensor([lk, 65537], device=device)
    got = ma.masked_softmax(x, k_lengths=k_lengths)
    ref = reference_masked_softmax(x, k_lengths=k_lengths)
    assert_rule(got, ref, torch_same_precision(x, None, 1.0, k_lengths=k_lengths), what="long rows")


@pytest.mark.parametrize("device", DEVICES)
def test_large_results_forward_and_backward(device):
    """Results past 16 MiB are allocated with huge-page advice on CPU (the memory the allocator
    takes fresh from the OS): values and gradients are the same as anywhere else, with a mask
    tensor, an odd row length and fully masked rows."""
    b, h, lq, lk = 2, 2, 1031, 1037  # 2 * 2 * 1031 * 1037 * 4 bytes > 16 MiB, rows of odd length
    x = torch.randn(b, h, lq, lk, device=device, requires_grad=True)
    mask = torch.rand(b, 1, lq, lk, device=device) > 0.3
    mask[:, :, 7] = False
    kw = {"causal": True, "k_lengths": torch.tensor([lk, 600], device=device)}
    got = ma.masked_softmax(x, mask, scale=0.9, **kw)
    x64 = x.detach().double().requires_grad_()
    ref = reference_masked_softmax(x64, mask, scale=0.9, **kw)
    same = torch_same_precision(x.detach(), mask, 0.9, **kw)
    assert_rule(got, ref, same, what="large forward")
    assert got[:, :, 7].abs().max() == 0
    g = torch.randn_like(got)
    got.backward(g)
    ref.backward(g.double())
    assert_rule(x.grad, x64.grad, torch_softmax_grad(same, g, 0.9), what="large backward")


@pytest.mark.parametrize("device", DEVICES)
def test_fully_masked_rows_are_zero_with_zero_grad(device):
    for dtype in dtypes_for(device):
        x = torch.randn(2, 2, 4, 8, device=device, dtype=dtype, requires_grad=True)
        key_mask = torch.ones(2, 8, dtype=torch.bool, device=device)
        key_mask[1] = False
        additive = torch.zeros(4, 8, device=device)
        additive[2] = float("-inf")
        y = ma.masked_softmax(x, additive, key_mask=key_mask)
        assert not torch.isnan(y).any()
        assert y[1].abs().max() == 0 and y[:, :, 2].abs().max() == 0
        y.backward(torch.randn_like(y))
        assert not torch.isnan(x.grad).any()
        assert x.grad[1].abs().max() == 0 and x.grad[:, :, 2].abs().max() == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["none", "causal_br", "key_mask", "causal_lengths_window"])
def test_backward_against_reference(device, kind):
    b, h, lq, lk = 3, 2, 19, 1030
    kw = random_mask_kwargs(kind, b, lq, lk, device)
    x = torch.randn(b, h, lq, lk, device=device)
    g = torch.randn(b, h, lq, lk, device=device)
    for dtype in dtypes_for(device):
        xd = x.to(dtype).clone().requires_grad_()
        ma.masked_softmax(xd, scale=0.5, **kw).backward(g.to(dtype))
        x64 = x.to(dtype).double().clone().requires_grad_()
        reference_masked_softmax(x64, scale=0.5, **kw).backward(g.to(dtype).double())
        same = torch_same_precision(x.to(dtype), None, 0.5, **kw)
        assert xd.grad.dtype == dtype
        assert_rule(xd.grad, x64.grad, torch_softmax_grad(same, g.to(dtype), 0.5), f"grad {kind} {dtype}")


def test_gradcheck_float64():
    x = torch.randn(2, 2, 5, 7, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(1, 1, 5, 7, dtype=torch.float64)
    for kw in ({"causal": True}, {"k_lengths": torch.tensor([3, 7]), "window": (1, 1)},
               {"key_mask": torch.rand(2, 7) > 0.3, "causal": True, "align": "bottom_right"}):
        assert torch.autograd.gradcheck(lambda t: ma.masked_softmax(t, mask, scale=0.7, **kw), (x,))


def test_opcheck():
    x = torch.randn(2, 3, 5, 9)
    args = (x, torch.rand(5, 9) > 0.2, 0.5, True, "bottom_right", 0, 2, None, torch.tensor([9, 4]),
            torch.rand(2, 9) > 0.3, None, None)
    torch.library.opcheck(torch.ops.maskattn.masked_softmax, args)
    seg = (torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, -1]]), torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]]))
    torch.library.opcheck(torch.ops.maskattn.masked_softmax,
                          (x, None, 0.5, True, "top_left", 4, None, None, None, None) + seg)
    p = torch.softmax(torch.randn(4, 9), -1)
    torch.library.opcheck(torch.ops.maskattn.masked_softmax_backward,
                          (torch.randn(4, 9), p, 0.5, False, "top_left", 0, None, None, None))
    pc = ma.masked_softmax(torch.randn(2, 3, 5, 9), causal=True, align="bottom_right", k_lengths=torch.tensor([9, 4]))
    torch.library.opcheck(torch.ops.maskattn.masked_softmax_backward,
                          (torch.randn(2, 3, 5, 9), pc, 0.5, True, "bottom_right", 0, 1, None, torch.tensor([9, 4])))


def test_compile_fullgraph_forward_backward():
    @torch.compile(fullgraph=True)
    def f(x, lengths):
        return (ma.masked_softmax(x, scale=0.3, causal=True, k_lengths=lengths) ** 2).sum()

    x = torch.randn(2, 3, 17, 17, requires_grad=True)
    lengths = torch.tensor([17, 5])
    f(x, lengths).backward()
    x64 = x.detach().double().requires_grad_()
    (reference_masked_softmax(x64, scale=0.3, causal=True, k_lengths=lengths) ** 2).sum().backward()
    assert_rule(x.grad, x64.grad, what="compiled grad")


def test_bad_inputs():
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(RuntimeError, match="scores"):
        ma.masked_softmax(torch.randn(5))
    with pytest.raises(RuntimeError, match="mask"):
        ma.masked_softmax(x, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="key_mask"):
        ma.masked_softmax(x, key_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="k_lengths"):
        ma.masked_softmax(x, k_lengths=torch.tensor([5, 6]))
    with pytest.raises(RuntimeError, match="k_lengths"):
        ma.masked_softmax(x, k_lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match="align"):
        ma.masked_softmax(x, causal=True, align="bottom")
    with pytest.raises(ValueError, match="window"):
        ma.masked_softmax(x, window=(1, -2))
    with pytest.raises(RuntimeError, match="scores"):
        ma.masked_softmax(torch.ones(2, 4, 5, dtype=torch.int64))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lk", [7, 16, 23, 300])
@pytest.mark.parametrize("scale", [-1.0, -0.05, -7.5])
def test_negative_scale(device, lk, scale):
    """Masked lanes of a partial vector must stay -inf after scaling by a negative number."""
    b, lq = 3, 5
    k_lengths = torch.randint(0, lk + 1, (b,), device=device)
    for kw in ({}, {"causal": True}, {"k_lengths": k_lengths}, {"key_mask": torch.rand(b, lk, device=device) > 0.3}):
        for dtype in dtypes_for(device):
            x = torch.randn(b, lq, lk, device=device).to(dtype)
            got = ma.masked_softmax(x, scale=scale, **kw)
            assert_rule(got, reference_masked_softmax(x, scale=scale, **kw),
                        torch_same_precision(x, None, scale, **kw), f"scale {scale} {kw} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [1e10, -1e10, 3e7, 1e30])
def test_extreme_scale_gives_no_nan(device, scale):
    """exp(max - max) must be exactly 1: no row may become 0/0 however large the logits."""
    for lk in (7, 33):
        x = torch.randn(64, lk, device=device)
        got = ma.masked_softmax(x, scale=scale)
        assert not torch.isnan(got).any()
        torch.testing.assert_close(got.sum(-1), torch.ones(64, device=device))
        # distinct scores at such scales: all the probability on the largest scaled score
        assert torch.equal(got.argmax(-1), (x * scale).argmax(-1))


@pytest.mark.parametrize("device", DEVICES)
def test_nan_score_is_never_silent(device):
    """As torch's softmax, a NaN score the masks keep shows up as NaN in its row (the max used to
    skip it, giving a finite row); rows without one are untouched."""
    for dtype in dtypes_for(device):
        x = torch.randn(4, 3, 20, device=device).to(dtype)
        x[1, 2, 5] = float("nan")
        x[2, 0, 19] = float("nan")  # in the partial vector of the row
        nan_rows = torch.isnan(x).any(-1)
        for kw in ({}, {"key_mask": torch.ones(4, 20, dtype=torch.bool, device=device)}, {"scale": -2.0}):
            got = ma.masked_softmax(x, **kw)
            assert torch.equal(torch.isnan(got).any(-1), nan_rows), f"{dtype} {kw}"
        # a NaN the mask removes is not seen, as with masked_fill before softmax
        got = ma.masked_softmax(x, k_lengths=torch.tensor([20, 20, 19, 20], device=device))
        assert torch.isnan(got[1, 2]).any() and not torch.isnan(got[2]).any()


@pytest.mark.parametrize("device", DEVICES)
def test_huge_scale_rounds_the_product_before_the_mask(device):
    """x * scale is rounded before an additive mask joins it, as in torch's `x * scale + mask`: at
    scale 1e20 integer logits that tie stay tied whatever a mask of ~1 adds (a fused multiply-add
    rounds once, and where 7 * 1e20 falls on a rounding midpoint the mask would pick a winner)."""
    x = torch.tensor([[7.0, 7.0, 3.0, -6.0], [8.0, 1.0, 8.0, 8.0]], device=device)
    mask = torch.tensor([0.873, -2.101, 0.5, 1.0], device=device)
    got = ma.masked_softmax(x, mask, scale=1e20)
    torch.testing.assert_close(got.cpu(), torch.tensor([[0.5, 0.5, 0.0, 0.0], [1 / 3, 0.0, 1 / 3, 1 / 3]]),
                               rtol=0, atol=1e-7)
    # fresh draws: small integers (many ties), random masks, huge scales
    for scale in (1e20, -3e19, 1e10):
        x = torch.randint(-8, 9, (6, 5, 40), device=device).float()
        mask = torch.randn(5, 40, device=device) * 2
        got = ma.masked_softmax(x, mask, scale=scale, causal=True)
        want = torch_same_precision(x, mask, scale, causal=True)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=f"scale {scale}")
