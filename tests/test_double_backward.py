"""Double backward (create_graph=True): the backward runs as differentiable torch ops, checked by
gradgradcheck in float64 and against the float64 reference's second derivatives."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_attention, reference_masked_softmax

from conftest import DEVICES, dtypes_for

SOFTMAX_MASKS = [{}, {"causal": True, "k_lengths": torch.tensor([5, 2])},
                 {"key_mask": torch.tensor([[True, False, True, True, True]] * 2), "window": (1, 2),
                  "align": "bottom_right"}]
ATTENTION_MASKS = [{"causal": True}, {"k_lengths": torch.tensor([3, 5]), "window": (1, 1)},
                   {"key_mask": torch.tensor([[True, False, True, True, False]] * 2), "causal": True,
                    "align": "bottom_right", "q_lengths": torch.tensor([3, 1])},
                   {"mask": torch.randn(3, 5, dtype=torch.float64)}]

# second derivatives from the low-precision ops, relative to the largest float64 one
SECOND_ORDER_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 5e-2}


@pytest.mark.parametrize("kw", SOFTMAX_MASKS)
def test_masked_softmax_gradgradcheck(kw):
    x = torch.randn(2, 1, 3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(3, 5, dtype=torch.float64)
    fn = lambda t: ma.masked_softmax(t, mask, scale=-0.7, **kw)  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)
    # the plain backward (fused kernel) and the recorded one agree
    g = torch.randn(2, 1, 3, 5, dtype=torch.float64)
    fused, = torch.autograd.grad(fn(x), x, g)
    composite, = torch.autograd.grad(fn(x), x, g, create_graph=True)
    torch.testing.assert_close(fused, composite)


@pytest.mark.parametrize("kw", ATTENTION_MASKS)
def test_masked_attention_gradgradcheck(kw):
    q = torch.randn(2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 5, 2, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 5, 3, dtype=torch.float64, requires_grad=True)

    def fn(*t):  # lse is float32 (as in the forward): its gradient path is checked below
        return ma.masked_attention(*t, scale=0.8, return_weights=True, **kw)

    assert torch.autograd.gradgradcheck(fn, (q, k, v), fast_mode=True)
    g = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    fused = torch.autograd.grad(fn(q, k, v)[0], (q, k, v), g)
    composite = torch.autograd.grad(fn(q, k, v)[0], (q, k, v), g, create_graph=True)
    for a, b in zip(fused, composite):
        torch.testing.assert_close(a, b)


def _second_order(fn, inputs, g):
    """d/dinputs of sum(first-order gradients ** 2): a gradient-penalty style double backward."""
    out = fn(*inputs)
    grads = torch.autograd.grad(out, inputs, g.to(out.dtype) if isinstance(out, torch.Tensor) else g,
                                create_graph=True)
    penalty = sum((gr.float() ** 2).sum() for gr in grads)
    return torch.autograd.grad(penalty, inputs)


def _assert_close_relative(ours, ref, dtype, what):
    for o, r in zip(ours, ref):
        rel = ((o.double() - r).abs().max() / r.abs().max().clamp(min=1e-30)).item()
        assert rel < SECOND_ORDER_TOLERANCE[dtype], f"{what} {dtype}: relative error {rel:.3g}"


@pytest.mark.parametrize("device", DEVICES)
def test_masked_softmax_second_order_every_dtype(device):
    for dtype in dtypes_for(device):
        x = torch.randn(3, 6, 19, device=device).to(dtype)
        g = torch.randn(3, 6, 19, device=device)
        kw = {"scale": 0.8, "causal": True}
        ours = _second_order(lambda t: ma.masked_softmax(t, **kw), (x.clone().requires_grad_(),), g)
        ref = _second_order(lambda t: reference_masked_softmax(t, **kw), (x.double().requires_grad_(),), g)
        _assert_close_relative(ours, ref, dtype, "masked_softmax")


@pytest.mark.parametrize("device", DEVICES)
def test_masked_attention_second_order_every_dtype(device):
    lengths = torch.tensor([9, 4], device=device)
    kw = {"causal": True, "align": "bottom_right", "k_lengths": lengths, "scale": 0.5}
    for dtype in dtypes_for(device):
        base = [torch.randn(2, 4, 6, 8, device=device), torch.randn(2, 2, 9, 8, device=device),
                torch.randn(2, 2, 9, 5, device=device)]
        g = (torch.randn(2, 4, 6, 5, device=device), torch.randn(2, 4, 6, device=device))
        live = lambda lse: lse.masked_fill(torch.isinf(lse), 0).double()  # noqa: E731

        def ours_fn(*t):
            out, lse = ma.masked_attention(*t, return_lse=True, **kw)
            return out, live(lse)

        def ref_fn(*t):
            out, _, lse = reference_attention(*t, **kw)
            return out, live(lse)

        gd = lambda dt: (g[0].to(dt), g[1].double())  # noqa: E731
        ours = _second_order(ours_fn, [t.to(dtype).requires_grad_() for t in base], gd(dtype))
        ref = _second_order(ref_fn, [t.to(dtype).double().requires_grad_() for t in base], gd(torch.float64))
        _assert_close_relative(ours, ref, dtype, "masked_attention")
