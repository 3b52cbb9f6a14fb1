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


class _Recorder:
    """A torch-function or dispatch mode that records each function it sees and runs it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _record(self, func, args, kwargs):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


class _RecordFunctions(_Recorder, torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._record(func, args, kwargs)


class _RecordDispatch(_Recorder, torch.utils._python_dispatch.TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self._record(func, args, kwargs)


class _LoggedTensor(torch.Tensor):
    """A subclass with __torch_function__ (as tensor-parallel or quantised wrappers have)."""
    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


_OP_PAIRS = {"masked_attention": (torch.ops.maskattn.masked_attention.default,
                                  torch.ops.maskattn.masked_attention_backward.default),
             "masked_softmax": (torch.ops.maskattn.masked_softmax.default,
                                torch.ops.maskattn.masked_softmax_backward.default)}


def _call_seen_by(mode, op, q, k, v, mask):
    with mode:
        out = _calls(q, k, v, mask)[op]()
    assert _OP_PAIRS[op][0] in mode.seen
    return out


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
@pytest.mark.parametrize("needs_grad", [False, True])
def test_torch_function_modes_and_subclasses_see_the_op(op, needs_grad):
    """Eager calls take a typed entry that skips __torch_function__ only when nothing has one: a
    mode or a subclass that does still sees the op, with the same result and gradient (torch's
    autograd engine runs backward formulas with __torch_function__ off, before as now)."""
    q, k, v, mask = _inputs()
    want = _references(q, k, v, mask)[op]()
    torch.testing.assert_close(_call_seen_by(_RecordFunctions(), op, q, k, v, mask), want, rtol=1e-10, atol=1e-12)
    _LoggedTensor.seen.clear()
    logged = q.detach().as_subclass(_LoggedTensor).requires_grad_(needs_grad)
    out = _calls(logged, k, v, mask)[op]()
    assert _OP_PAIRS[op][0] in _LoggedTensor.seen
    torch.testing.assert_close(out.as_subclass(torch.Tensor), want, rtol=1e-10, atol=1e-12)
    if needs_grad:
        (grad,) = torch.autograd.grad(out.square().sum(), logged)
        q.requires_grad_()
        (want_grad,) = torch.autograd.grad(_references(q, k, v, mask)[op]().square().sum(), q)
        torch.testing.assert_close(grad.as_subclass(torch.Tensor), want_grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("op", ["masked_attention", "masked_softmax"])
def test_dispatch_modes_and_the_profiler_see_the_typed_entry(op):
    """The typed entry still goes through the dispatcher: dispatch modes (fake tensors, make_fx,
    functionalisation) and the profiler see the op and its backward."""
    forward_op, backward_op = _OP_PAIRS[op]
    q, k, v, mask = _inputs()
    plain = _calls(q, k, v, mask)[op]()
    assert torch.equal(_call_seen_by(_RecordDispatch(), op, q, k, v, mask), plain)
    q.requires_grad_()
    with torch.profiler.profile() as prof:
        _calls(q, k, v, mask)[op]().sum().backward()
    names = {event.name for event in prof.events()}
    assert {forward_op.name(), backward_op.name()} <= names, sorted(n for n in names if "maskattn" in n)


def test_a_tensor_that_escaped_a_finished_transform():
    """A tensor kept from inside torch.func.grad is a wrapper of a finished transform: the eager
    autograd path unwraps it (as autograd.Function.apply does), so gradients reach what it wraps."""
    saved = []

    def keep_intermediate(x):
        y = x * 2
        saved.append(y)
        return y.sum()

    x = torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    torch.func.grad(keep_intermediate)(x)
    (escaped,) = saved
    assert torch._C._functorch.is_functorch_wrapped_tensor(escaped)
    k = torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True)
    grads = []
    for attend in (lambda: ma.masked_attention(escaped, k, k, causal=True, k_lengths=K_LENGTHS),
                   lambda: reference_attention(escaped, k, k, causal=True, k_lengths=K_LENGTHS)[0]):
        grads.append(torch.autograd.grad(attend().square().sum(), (x, k), retain_graph=True))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
