"""What autograd records for each call: nothing when no input needs a gradient (the ops then run
below the autograd key), the registered backward's formulas when one does (in eager mode through
an autograd.Function of their own, which torch.func transforms compose with), and a clear error
for forward-mode AD, which the ops have no formula for (its tangent would otherwise be dropped
silently)."""
import math
import warnings

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


def _op_directly(op, q, k, v, mask):
    """The compiled op called as torch.ops.maskattn.*: its registered autograd kernel."""
    if op == "masked_attention":
        return torch.ops.maskattn.masked_attention(q, k, v, mask, True, "top_left", 0, None, None, None, K_LENGTHS,
                                                   None, None, None, 1 / math.sqrt(8), False)[0]
    return torch.ops.maskattn.masked_softmax(q[..., :5], mask, 1.0, True, "top_left", 0, None, None, K_LENGTHS,
                                             None, None, None)


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eager_autograd_matches_the_registered_kernel(op, dtype):
    q, k, v, mask = _inputs(dtype)
    for t in (q, k, v, mask):
        t.requires_grad_()
    out, direct = _calls(q, k, v, mask)[op](), _op_directly(op, q, k, v, mask)
    assert torch.equal(out, direct)
    weight = torch.randn_like(out)
    wrt = (q, k, v, mask) if op == "masked_attention" else (q, mask)
    grads = torch.autograd.grad((out * weight).sum(), wrt)
    direct_grads = torch.autograd.grad((direct * weight).sum(), wrt)
    for got, want in zip(grads, direct_grads):
        assert torch.equal(got, want)
    # against float64 torch, rows of batch 0 masked out: zero gradients there
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v, mask)]
    reference = _references(*leaves)[op]()
    want_grads = torch.autograd.grad((reference * weight.double()).sum(), leaves if len(wrt) == 4 else leaves[::3])
    for got, want in zip(grads, want_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4 if dtype == torch.float32 else 1e-9,
                                   atol=1e-5 if dtype == torch.float32 else 1e-11)
    assert torch.equal(grads[0][0], torch.zeros_like(grads[0][0]))


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
def test_torch_func_transforms(op):
    q, k, v, mask = _inputs()
    weight = torch.randn(5, 8 if op == "masked_attention" else 5, dtype=torch.float64)

    def loss(fn):
        return lambda x: (fn(x) * weight).square().sum()

    ours = loss(lambda x: _calls(x, k, v, mask)[op]())
    ref = loss(lambda x: _references(x, k, v, mask)[op]())
    torch.testing.assert_close(torch.func.grad(ours)(q), torch.func.grad(ref)(q), rtol=1e-9, atol=1e-11)
    cotangent = torch.randn_like(_calls(q, k, v, mask)[op]())
    (got,) = torch.func.vjp(lambda x: _calls(x, k, v, mask)[op](), q)[1](cotangent)
    (want,) = torch.func.vjp(lambda x: _references(x, k, v, mask)[op](), q)[1](cotangent)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    row = (1, 2, 3)  # one output row of batch 1 (batch 0 attends nothing)
    got = torch.func.jacrev(lambda x: _calls(x, k, v, mask)[op]()[row])(q)
    want = torch.func.jacrev(lambda x: _references(x, k, v, mask)[op]()[row])(q)
    assert got.abs().sum() > 0
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    stacked = torch.stack([q, torch.randn_like(q)])
    with warnings.catch_warnings():  # torch's per-sample fallback for the op says it is slow
        warnings.simplefilter("ignore", UserWarning)
        got = torch.func.vmap(torch.func.grad(ours))(stacked)
    torch.testing.assert_close(got, torch.func.vmap(torch.func.grad(ref))(stacked), rtol=1e-9, atol=1e-11)


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


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_gives_the_same_gradients(op, reentrant):
    """torch.utils.checkpoint recomputes the call in the backward (saved-tensor hooks or a
    re-entrant backward): the gradients are those of the plain call, bit for bit."""
    q, k, v, mask = _inputs(torch.float32)
    q.requires_grad_()
    mask.requires_grad_()
    weight = torch.randn_like(_calls(q, k, v, mask)[op]())

    def loss(x, m):
        return (_calls(x, k, v, m)[op]() * weight).sum()

    def grads(total):  # .backward(): the re-entrant checkpoint refuses autograd.grad
        q.grad = mask.grad = None
        total.backward()
        return q.grad, mask.grad

    plain = grads(loss(q, mask))
    recomputed = grads(torch.utils.checkpoint.checkpoint(loss, q, mask, use_reentrant=reentrant))
    for got, want in zip(recomputed, plain):
        assert want.abs().sum() > 0
        assert torch.equal(got, want)
