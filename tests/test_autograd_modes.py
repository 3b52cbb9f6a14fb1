"""What autograd records for each call: nothing when no input needs a gradient (the ops then run
below the autograd key), the registered backward when one does, and a clear error for forward-mode
AD, which the ops have no formula for (its tangent would otherwise be dropped silently)."""
import pytest
import torch
import torch.autograd.forward_ad as fwAD

import maskattn as ma
from maskattn.reference import reference_attention, reference_masked_softmax

K_LENGTHS = torch.tensor([0, 4])  # batch 0: every row masked out


def _inputs(dtype=torch.float64):
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=dtype) for _ in range(3))
    return q, k, v, torch.randn(5, 5, dtype=dtype)


def _calls(q, k, v, mask):
    return {"masked_attention": lambda: ma.masked_attention(q, k, v, mask=mask, causal=True, k_lengths=K_LENGTHS),
            "masked_softmax": lambda: ma.masked_softmax(q[..., :5], mask, causal=True, k_lengths=K_LENGTHS)}


def _references(q, k, v, mask):
    return {"masked_attention": lambda: reference_attention(q, k, v, mask=mask, causal=True, k_lengths=K_LENGTHS)[0],
            "masked_softmax": lambda: reference_masked_softmax(q[..., :5], mask, causal=True, k_lengths=K_LENGTHS)}


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
def test_no_graph_without_inputs_that_need_gradients(op):
    q, k, v, mask = _inputs()
    out = _calls(q, k, v, mask)[op]()
    assert out.grad_fn is None and not out.requires_grad
    torch.testing.assert_close(out, _references(q, k, v, mask)[op](), rtol=1e-10, atol=1e-12)
    assert torch.equal(out[0], torch.zeros_like(out[0]))  # masked-out rows: zeros, never NaN
    q.requires_grad_()
    mask.requires_grad_()
    with torch.no_grad():
        out = _calls(q, k, v, mask)[op]()
    assert out.grad_fn is None and not out.requires_grad
    with torch.inference_mode():
        out = _calls(q.detach(), k, v, mask.detach())[op]()
    assert out.is_inference()


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
@pytest.mark.parametrize("needs_grad", ["q", "mask"])
def test_graph_when_one_input_needs_a_gradient(op, needs_grad):
    q, k, v, mask = _inputs()
    (q if needs_grad == "q" else mask).requires_grad_()
    out = _calls(q, k, v, mask)[op]()
    assert out.requires_grad and out.grad_fn is not None
    wrt = q if needs_grad == "q" else mask
    (grad,) = torch.autograd.grad(out.square().sum(), wrt)
    (want,) = torch.autograd.grad(_references(q, k, v, mask)[op]().square().sum(), wrt)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, want, rtol=1e-9, atol=1e-11)
    # the same call without the fast path's decision: torch.library's autograd kernel
    with torch.no_grad():
        assert torch.equal(out.detach(), _calls(q.detach(), k, v, mask.detach())[op]())


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
def test_forward_mode_ad_is_refused(op):
    q, k, v, mask = _inputs()
    tangent = torch.randn_like(q)
    with pytest.raises(NotImplementedError, match="forward-mode AD"):
        torch.func.jvp(lambda x: _calls(x, k, v, mask)[op](), (q,), (tangent,))
    with fwAD.dual_level():
        dual = fwAD.make_dual(q, tangent)
        with pytest.raises(NotImplementedError, match="forward-mode AD"):
            _calls(dual, k, v, mask)[op]()
        # a dual level without dual inputs is no obstacle
        assert torch.equal(_calls(q, k, v, mask)[op](), _calls(q, k, v, mask)[op]())
