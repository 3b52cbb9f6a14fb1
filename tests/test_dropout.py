"""Attention dropout: the keep mask against its written rule, forward and backward against the
float64 reference given the mask the kernel drew, statistics of the draws, reproducibility from
the generator state, torch.compile. Fresh random inputs and seeds on every run."""
import math

import pytest
import torch

import maskattn as ma
from maskattn._debug import dropout_keep_mask
from maskattn.attention import attention_with_rng_state
from maskattn.reference import reference_attention, reference_dropout_keep

from conftest import DEVICES, dtypes_for
from tolerance import assert_rule, delta_error, max_err

ops = torch.ops.maskattn


def fresh_seed():
    return int(torch.randint(-2 ** 63, 2 ** 63 - 1, (), dtype=torch.int64))


def qkv(b, h, hkv, lq, lk, d, device, dtype):
    return [torch.randn(b, n, l, d, device=device).to(dtype).requires_grad_() for n, l in ((h, lq), (hkv, lk), (hkv, lk))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 3, 5, 13), (1, 1, 1, 1), (3, 2, 7, 64), (1, 4, 3, 100)])
def test_keep_mask_follows_the_written_rule(device, shape):
    """The debug op (the kernels' own generator) equals the rule implemented independently in
    Python, for any seed and offset; odd key counts put groups of 8 across rows."""
    for p in (0.1, 0.5, 0.97):
        seed, offset = fresh_seed(), int(torch.randint(0, 2 ** 62, ()))
        keep = ops.dropout_keep_mask(*shape, p, seed, offset, torch.device(device))
        assert keep.dtype == torch.bool and keep.shape == shape
        assert torch.equal(keep.cpu(), reference_dropout_keep(*shape, p, seed, offset)), f"p={p}"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_drop_the_same_positions():
    seed, offset = fresh_seed(), 4 * int(torch.randint(0, 2 ** 40, ()))
    cpu = ops.dropout_keep_mask(2, 5, 33, 77, 0.2, seed, offset, torch.device("cpu"))
    cuda = ops.dropout_keep_mask(2, 5, 33, 77, 0.2, seed, offset, torch.device("cuda"))
    assert torch.equal(cpu, cuda.cpu())


def dropout_case(q, k, v, p, generator=None, **kw):
    """(out, weights, lse, keep) of one call, keep being the mask the kernel drew."""
    out, weights, lse, rng = attention_with_rng_state(q, k, v, dropout_p=p, generator=generator,
                                                      return_weights=True, **kw)
    keep = dropout_keep_mask(rng, weights.shape, p, q.device)
    return out, weights, lse, keep


# floor of the gradients' error relative to their size, for what the bound below does not cover
GRAD_FLOOR = {torch.float32: 1e-5, torch.float16: 4 * 2.0 ** -10, torch.bfloat16: 4 * 2.0 ** -7}


def assert_grads_close(ours, ref, same, what, inherited=(0.0, 0.0, 0.0)):
    for name, o, r, s, extra in zip("qkv", ours, ref, same, inherited):
        if o.dtype == torch.float64:
            assert_rule(o, r, s, f"d{name} {what}")
            continue
        bound = max(2 * max_err(s, r) + (0 if o.dtype == torch.float32 else 2e-4),
                    GRAD_FLOOR[o.dtype] * max(1.0, r.abs().max().item())) + extra
        assert max_err(o, r) <= bound, f"d{name} {what}: {max_err(o, r):.3g} > {bound:.3g}"


MASKS = {
    "causal_padding": lambda b, lq, lk, dev: {"causal": True, "align": "bottom_right",
                                              "k_lengths": torch.tensor([lk, max(lk // 2, 1)], device=dev)[:b],
                                              "q_lengths": torch.tensor([lq, max(lq - 3, 0)], device=dev)[:b]},
    "segments": lambda b, lq, lk, dev: {"segments": tuple(torch.sort(torch.randint(-1, 3, (b, n), device=dev), -1)[0]
                                                          for n in (lq, lk)), "causal": True, "align": "bottom_right"},
    "int_align_window": lambda b, lq, lk, dev: {"align": int(torch.randint(-5, 6, ())), "window": (9, 4)},
    "additive": lambda b, lq, lk, dev: {"mask": torch.randn(lq, lk, device=dev)},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", list(MASKS))
@pytest.mark.parametrize("h,hkv,lq,lk", [(4, 2, 70, 70), (8, 2, 1, 150), (6, 3, 2, 97), (2, 2, 129, 129)])
def test_forward_backward_against_reference(device, kind, h, hkv, lq, lk):
    """out = (dropout(P) / (1 - p)) v with the drawn mask, weights and lse undropped, gradients
    of q, k, v; tiled, decoding (GQA rows <= 16) and float64 paths."""
    b, p = 2, float(torch.empty(()).uniform_(0.05, 0.6))
    kw = MASKS[kind](b, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, device, dtype)
        out, weights, lse, keep = dropout_case(q, k, v, p, **kw)
        ref_out, ref_w, ref_lse = reference_attention(q, k, v, dropout_keep=keep, dropout_p=p, **kw)
        same_out, same_w, _ = reference_attention(q, k, v, dropout_keep=keep, dropout_p=p, upcast=False, **kw)
        what = f"{kind} {h}/{hkv} {lq}x{lk} {dtype} p={p:.2f}"
        # float32: the flash accumulation's few ulp of the largest value (times 1/(1-p) here), as in
        # test_attention, so the relative floor as well as twice torch's error
        fp32 = out.dtype == torch.float32
        assert_rule(out, ref_out, same_out, f"out {what}", relative=fp32)
        assert_rule(weights, ref_w, same_w, f"weights {what}", relative=fp32)
        live = torch.isfinite(ref_lse)
        assert torch.equal(live, torch.isfinite(lse)) and bool(((lse - ref_lse)[live].abs() <= 1e-4).all()), f"lse {what}"
        g = torch.randn_like(out)
        ours = torch.autograd.grad(out, (q, k, v), g)
        ref = torch.autograd.grad(ref_out, (q, k, v), g.double())
        same = torch.autograd.grad(same_out, (q, k, v), g)
        assert_grads_close(ours, ref, same, what, delta_error(out, ref_out, g, ref_w, q, k))


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_through_weights_and_lse_with_dropout(device):
    """dweights and dlse flow into the undropped softmax, dout through the dropped one."""
    p = 0.3
    for dtype in dtypes_for(device):
        q, k, v = qkv(2, 4, 2, 37, 75, 32, device, dtype)
        out, weights, lse, keep = dropout_case(q, k, v, p, causal=True)
        ref_out, ref_w, ref_lse = reference_attention(q, k, v, causal=True, dropout_keep=keep, dropout_p=p)
        same = reference_attention(q, k, v, causal=True, dropout_keep=keep, dropout_p=p, upcast=False)
        gs = [torch.randn_like(out), torch.randn_like(weights), torch.randn_like(lse)]

        def loss(o, w, l):
            return (o * gs[0].to(o.dtype)).sum() + (w * gs[1].to(w.dtype)).sum() + (l * gs[2]).sum()

        assert_grads_close(torch.autograd.grad(loss(out, weights, lse), (q, k, v)),
                           torch.autograd.grad(loss(ref_out, ref_w, ref_lse), (q, k, v)),
                           torch.autograd.grad(loss(*same), (q, k, v)), f"via weights and lse {dtype}")


@pytest.mark.parametrize("kw", [{"causal": True}, {"mask": torch.randn(5, 7, dtype=torch.float64)},
                                {"key_mask": torch.rand(2, 7) > 0.3, "q_lengths": torch.tensor([5, 3])}])
def test_gradcheck_float64(kw):
    """The same generator state on every call: the function gradcheck differentiates is fixed."""
    seed = fresh_seed()
    q = torch.randn(2, 2, 5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 7, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 7, 4, dtype=torch.float64, requires_grad=True)

    def f(*t):
        return ma.masked_attention(*t, dropout_p=0.4, generator=torch.Generator().manual_seed(seed),
                                   return_weights=True, return_lse=True, **kw)

    assert torch.autograd.gradcheck(lambda *t: f(*t)[0], (q, k, v))
    assert torch.autograd.gradcheck(lambda *t: f(*t)[:2], (q, k, v))


def within_sigmas(count, n, prob, sigmas=4.0):
    return abs(count - n * prob) <= sigmas * math.sqrt(n * prob * (1 - prob))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_draw_statistics(device, p):
    """Kept fraction within 4 standard deviations of 1 - p; pairs of heads, of rows, of adjacent
    keys (which share a Philox word) and of batches agree as often as independent draws would."""
    b, h, lq, lk = 2, 4, 64, 257
    keep = ops.dropout_keep_mask(b, h, lq, lk, p, fresh_seed(), 0, torch.device(device)).cpu()
    n = keep.numel()
    assert within_sigmas(keep.sum().item(), n, 1 - p), f"kept fraction {keep.float().mean():.4f}"
    both = (1 - p) ** 2
    for what, a, c in (("heads", keep[:, 0], keep[:, 1]), ("rows", keep[:, :, :-1], keep[:, :, 1:]),
                       ("adjacent keys", keep[..., :-1], keep[..., 1:]), ("batches", keep[0], keep[1]),
                       ("keys 4 apart", keep[..., :-4], keep[..., 4:])):
        assert within_sigmas((a & c).sum().item(), a.numel(), both), f"{what}: {(a & c).float().mean():.4f}"


@pytest.mark.parametrize("device", DEVICES)
def test_same_generator_state_same_result(device):
    q, k, v = qkv(2, 4, 2, 33, 40, 16, device, torch.float32)
    seed = int(torch.randint(0, 2 ** 62, ()))

    def run(generator=None):
        out = ma.masked_attention(q, k, v, causal=True, dropout_p=0.3, generator=generator)
        return (out,) + torch.autograd.grad(out, (q, k, v), torch.ones_like(out))

    gen = lambda: torch.Generator(device=device).manual_seed(seed)  # noqa: E731
    first, again = run(gen()), run(gen())
    assert all(torch.equal(a, c) for a, c in zip(first, again))
    torch.manual_seed(seed)
    default_first = run()
    torch.manual_seed(seed)
    assert all(torch.equal(a, c) for a, c in zip(default_first, run()))
    later = run()  # the default generator moved on
    other = run(torch.Generator(device=device).manual_seed(seed + 1))
    for different in (later, other):
        assert not torch.equal(first[0], different[0]) and not torch.equal(default_first[0], later[0])
    g = gen()
    assert not torch.equal(run(g)[0], run(g)[0]), "a call must advance its generator"


@pytest.mark.parametrize("device", DEVICES)
def test_edge_probabilities(device):
    q, k, v = qkv(2, 2, 2, 9, 11, 8, device, torch.float32)
    ref = ma.masked_attention(q, k, v, causal=True)
    out0 = ma.masked_attention(q, k, v, causal=True, dropout_p=0.0)
    assert torch.equal(out0, ref)
    out1, w1 = ma.masked_attention(q, k, v, causal=True, dropout_p=1.0, return_weights=True)
    assert out1.abs().max() == 0 and torch.allclose(w1.sum(-1), torch.ones_like(w1[..., 0]))
    g = torch.autograd.grad(out1.sum(), (q, k, v))
    assert all(torch.isfinite(t).all() and t.abs().max() == 0 for t in g)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="dropout_p"):
            ma.masked_attention(q, k, v, dropout_p=bad)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_with_dropout(device):
    @torch.compile(fullgraph=True)
    def f(q, k, v):
        return ma.masked_attention(q, k, v, causal=True, dropout_p=0.25)

    q, k, v = qkv(2, 4, 2, 17, 29, 16, device, torch.float32)
    seed = int(torch.randint(0, 2 ** 62, ()))
    torch.manual_seed(seed)
    out = f(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    torch.manual_seed(seed)
    eager = ma.masked_attention(q, k, v, causal=True, dropout_p=0.25)
    eager_grads = torch.autograd.grad(eager, (q, k, v), torch.ones_like(eager))
    assert torch.allclose(out, eager, atol=1e-6)
    for o, e in zip(grads, eager_grads):
        assert torch.allclose(o, e, atol=1e-5)
