"""Fused masked attention (forward, backward) against the float64 reference, torch's SDPA and
the op-registration checks. Inputs are fresh random tensors on every run."""
import pytest
import torch
import torch.nn.functional as F

import maskattn as ma
from maskattn.reference import reference_allowed, reference_attention

from conftest import DEVICES, dtypes_for
from tolerance import assert_rule, delta_error, max_err

NEG_INF = float("-inf")


def assert_accurate(ours, ref64, torch_same, what, extra=0.0):
    """The accuracy rule, plus `extra`: the error the flash backward's delta = rowsum(dout * out)
    brings in from the output rounded to its dtype, where torch's softmax backward cancels exactly
    (a row with a single key has dq = 0 exactly); in float32 the slack grows with the values' size."""
    if ours.dtype != torch.float32:
        return assert_rule(ours, ref64, torch_same, what, extra=extra)
    bound = max(2 * max_err(torch_same, ref64), 1e-5 * max(1.0, ref64.abs().max().item())) + extra
    assert not torch.isnan(ours).any(), f"{what}: NaN"
    assert max_err(ours, ref64) <= bound, f"{what}: max error {max_err(ours, ref64):.3g} > bound {bound:.3g}"


def qkv(b, h, hkv, lq, lk, d, dv, device, dtype, requires_grad=True):
    q = torch.randn(b, h, lq, d, device=device).to(dtype)
    k = torch.randn(b, hkv, lk, d, device=device).to(dtype)
    v = torch.randn(b, hkv, lk, dv, device=device).to(dtype)
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


def mask_kwargs(kind, b, h, lq, lk, device):
    """The mask arguments users combine, with random lengths (one sequence left at full length)."""
    q_lengths = torch.randint(0, lq + 1, (b,), device=device)
    k_lengths = torch.randint(0, lk + 1, (b,), device=device)
    q_lengths[0], k_lengths[0] = lq, lk
    # packed documents: sorted ids, the keys' tail padding (-1)
    q_seg = torch.randint(0, 3, (b, lq), device=device).sort(-1).values
    k_seg = torch.randint(0, 3, (b, lk), device=device).sort(-1).values
    k_seg[:, lk - lk // 8:] = -1
    additive = torch.randn(lq, lk, device=device)
    additive[torch.rand(lq, lk, device=device) > 0.8] = NEG_INF
    return {
        "none": {},
        "causal": {"causal": True},
        "causal_bottom_right": {"causal": True, "align": "bottom_right"},
        "causal_padding": {"causal": True, "q_lengths": q_lengths, "k_lengths": k_lengths},
        "causal_padding_bottom_right": {"causal": True, "align": "bottom_right", "q_lengths": q_lengths,
                                        "k_lengths": k_lengths},
        "window_padding": {"window": (7, 3), "q_lengths": q_lengths, "k_lengths": k_lengths},
        "window_left_bottom_right": {"window": (20, None), "align": "bottom_right", "k_lengths": k_lengths},
        "key_mask_causal": {"key_mask": torch.rand(b, lk, device=device) > 0.3, "causal": True},
        "bool_mask": {"mask": torch.rand(b, 1, lq, lk, device=device) > 0.4},
        "additive_mask_causal": {"mask": additive, "causal": True},
        "segments_causal": {"segments": (q_seg, k_seg), "causal": True},
        "int_align_window": {"align": int(torch.randint(-lq, lk + 1, ())), "window": (9, 2), "k_lengths": k_lengths},
    }[kind]


MASK_KINDS = ["none", "causal", "causal_bottom_right", "causal_padding", "causal_padding_bottom_right",
              "window_padding", "window_left_bottom_right", "key_mask_causal", "bool_mask", "additive_mask_causal",
              "segments_causal", "int_align_window"]


def check_against_reference(q, k, v, what, grads=True, **kw):
    """Output, weights, lse and (optionally) q/k/v gradients against the float64 reference, with
    torch's own computation in q's dtype as the baseline of the accuracy rule."""
    out, weights, lse = ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw)
    ref_out, ref_w, ref_lse = reference_attention(q, k, v, **kw)
    same_out, same_w, _ = reference_attention(q, k, v, upcast=False, **kw)
    assert out.dtype == q.dtype and weights.dtype == q.dtype and lse.dtype == torch.float32
    assert out.shape == (*q.shape[:-1], v.shape[-1]) and lse.shape == q.shape[:-1]
    # in float32 the flash accumulation's error grows with the head size as torch's does, each a few
    # ulp of the largest value: twice torch's can miss by one, so the relative floor as well
    fp32 = out.dtype == torch.float32
    assert_rule(out, ref_out, same_out, f"out {what}", relative=fp32)
    assert_rule(weights, ref_w, same_w, f"weights {what}", relative=fp32)
    assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse)), f"lse -inf rows {what}"
    live = torch.isfinite(ref_lse)
    assert ((lse - ref_lse)[live].abs() <= 2e-5 + 1e-5 * ref_lse[live].abs()).all(), f"lse {what}"
    if not grads:
        return
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), g)
    ref = torch.autograd.grad(ref_out, (q, k, v), g.double())
    same = torch.autograd.grad(same_out, (q, k, v), g)
    extras = delta_error(out, ref_out, g, ref_w, q, k, kw.get("scale"))
    for name, o, r, s, extra in zip("qkv", ours, ref, same, extras):
        assert o.dtype == q.dtype and o.shape == r.shape
        assert_accurate(o, r, s, f"d{name} {what}", extra)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("lq,lk", [(1, 1), (97, 97), (1, 257), (33, 1025), (257, 97)])
def test_mask_kinds_forward_backward(device, kind, lq, lk):
    b, h, hkv = 2, 4, 2
    kw = mask_kwargs(kind, b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, device, dtype)
        check_against_reference(q, k, v, f"{kind} {lq}x{lk} {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_mask_kinds_one_head_per_kv_head(device, kind):
    """Without GQA a CPU query tile holds 64 rows of one head, so a partly masked key tile is
    multiplied in four row parts of 16, each over its own live keys (a diagonal tile: 16, 32, 48,
    64); 130 rows: two full tiles and a short one."""
    b, h, lq, lk = 2, 2, 130, 130
    kw = mask_kwargs(kind, b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, h, lq, lk, 64, 64, device, dtype)
        check_against_reference(q, k, v, f"{kind} one head per kv head {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d,dv", [(32, 32), (64, 64), (80, 80), (128, 128), (64, 32), (80, 128), (40, 24)])
def test_head_sizes_and_gqa(device, d, dv):
    b, h, hkv, lq, lk = 2, 6, 2, 257, 257
    kw = mask_kwargs("causal_padding", b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, d, dv, device, dtype)
        check_against_reference(q, k, v, f"d={d} dv={dv} {dtype}", scale=0.3, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("h,hkv,lq", [(12, 4, 97), (96, 1, 33), (8, 1, 1), (8, 8, 1)])
def test_gqa_groups_and_decoding(device, h, hkv, lq):
    b, lk = 2, 300
    kw = mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, 32, device, dtype)
        check_against_reference(q, k, v, f"h={h} hkv={hkv} lq={lq} {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("h,hkv,lq,d,dv", [(4, 4, 1, 128, 128), (32, 8, 1, 128, 128), (8, 1, 1, 64, 64),
                                           (4, 2, 3, 40, 24), (6, 1, 1, 48, 20), (12, 1, 1, 64, 64),
                                           (16, 1, 1, 36, 40), (4, 4, 2, 20, 8), (2, 1, 2, 8, 16),
                                           (5, 1, 1, 48, 48), (2, 1, 1, 64, 136)])
@pytest.mark.parametrize("kind", ["causal_padding_bottom_right", "key_mask_causal", "bool_mask"])
def test_decoding_shapes(device, h, hkv, lq, d, dv, kind):
    """Few query rows per kv head (1 to 16 stacked rows): scores by dot products (head sizes that are
    multiples of 8) or by the lane product, V streamed row by row (up to 8 rows, dv a multiple of 8:
    output rows in registers, in groups with one left over, or in L1 past 128 values) or by the tile
    product; K and V strided as a (B, L, H, D) cache is, lengths off every block size,
    keys in three chunks (merged partial results; random lengths leave some chunks wholly masked)."""
    b, lk = 2, 2500
    kw = mask_kwargs(kind, b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q = torch.randn(b, h, lq, d, device=device).to(dtype).requires_grad_()
        k = torch.randn(b, lk, hkv, d, device=device).to(dtype).transpose(1, 2).requires_grad_()
        v = torch.randn(b, lk, hkv, dv, device=device).to(dtype).transpose(1, 2).requires_grad_()
        check_against_reference(q, k, v, f"decode {kind} h={h} hkv={hkv} lq={lq} d={d} dv={dv} {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["causal_padding", "none"])
def test_long_sequences(device, kind):
    b, h, hkv, lq, lk = 1, 2, 1, 1025, 1025
    kw = mask_kwargs(kind, b, h, lq, lk, device)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, device, dtype)
        check_against_reference(q, k, v, f"long {kind} {dtype}", **kw)


def test_backward_deterministic_under_every_schedule():
    """One thread runs the fused dK/dV/dQ pass, two threads the split passes (fewer (batch, kv head)
    pairs than 4 per thread): both match the reference, and repeated runs are bitwise equal."""
    q, k, v = qkv(2, 4, 2, 150, 140, 32, 32, "cpu", torch.float32)
    kw = mask_kwargs("causal_padding", 2, 4, 150, 140, "cpu")
    threads = torch.get_num_threads()
    try:
        for n in sorted({1, 2, threads}):
            torch.set_num_threads(n)
            check_against_reference(q, k, v, f"{n} threads", **kw)
            out = ma.masked_attention(q, k, v, **kw)
            g = torch.randn_like(out)
            first = torch.autograd.grad(out, (q, k, v), g, retain_graph=True)
            second = torch.autograd.grad(out, (q, k, v), g)
            assert all(torch.equal(a, b) for a, b in zip(first, second))
    finally:
        torch.set_num_threads(threads)


def test_decoding_chunks_give_the_same_bits_on_any_thread_count():
    """The key chunks of the decoding forward are cut by the shapes and lengths alone: out, lse and
    weights are bitwise the same on 1, 2 and the default number of threads (batch 1, one kv head:
    one item, a long window; two items of different lengths under 1024 keys, cut smaller because
    they are few)."""
    for b, h, hkv, lk, dtype, kw in [
            (1, 4, 1, 3000, torch.bfloat16, {"k_lengths": torch.tensor([2900]), "align": "bottom_right",
                                             "window": (2200, 0)}),
            (2, 8, 1, 700, torch.float32, {"k_lengths": torch.tensor([700, 333])})]:
        check_chunked_decode(b, h, hkv, lk, dtype, kw)


def check_chunked_decode(b, h, hkv, lk, dtype, kw):
    q, k, v = qkv(b, h, hkv, 1, lk, 64, 64, "cpu", dtype, requires_grad=False)
    threads = torch.get_num_threads()
    try:
        runs = []
        for n in sorted({1, 2, threads}):
            torch.set_num_threads(n)
            runs.append(ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw))
    finally:
        torch.set_num_threads(threads)
    check_against_reference(q, k, v, f"chunked decode b={b} lk={lk} {dtype}", grads=False, **kw)
    assert all(torch.equal(x, y) for run in runs[1:] for x, y in zip(runs[0], run))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    b, h, hkv, lq, lk, d = 2, 4, 2, 70, 90, 32
    for dtype in dtypes_for(device):
        # (B, L, H, D) storage seen as (B, H, L, D); head dim sliced out of a wider buffer;
        # kv heads broadcast with a zero stride; v with a non-unit inner stride
        q = torch.randn(b, lq, h, d, device=device).to(dtype).transpose(1, 2).requires_grad_()
        k = torch.randn(b, hkv, lk, d + 16, device=device).to(dtype)[..., 8:8 + d].requires_grad_()
        v1 = torch.randn(b, 1, d, lk, device=device).to(dtype).transpose(-1, -2)
        v = v1.expand(b, hkv, lk, d).detach().requires_grad_()
        assert not q.is_contiguous() and not k.is_contiguous() and v.stride(-1) != 1
        kw = mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, device)
        check_against_reference(q, k, v, f"strided {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_shape", [(1, 1, 9, 23), (3, 1, 1, 23), (23,), (3, 4, 9, 23), (9, 1)])
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float32, torch.bfloat16])
def test_explicit_mask_broadcast(device, mask_shape, mask_dtype):
    if mask_dtype == torch.bool:
        mask = torch.rand(mask_shape, device=device) > 0.3
    else:
        mask = torch.randn(mask_shape, device=device)
        mask[torch.rand(mask_shape, device=device) > 0.7] = NEG_INF
        mask = mask.to(mask_dtype)
    key_mask = torch.rand(3, 23, device=device) > 0.2
    for dtype in dtypes_for(device):
        q, k, v = qkv(3, 4, 2, 9, 23, 16, 16, device, dtype)
        check_against_reference(q, k, v, f"{mask_shape} {dtype}", mask=mask, window=(None, 12))
        check_against_reference(q, k, v, f"{mask_shape} {dtype} key_mask", mask=mask, key_mask=key_mask)


@pytest.mark.parametrize("device", DEVICES)
def test_fully_masked_rows(device):
    b, h, lq, lk = 3, 2, 6, 70
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, 1, lq, lk, 16, 8, device, dtype)
        key_mask = torch.ones(b, lk, dtype=torch.bool, device=device)
        key_mask[1] = False  # sequence 1 may attend nothing
        additive = torch.zeros(lq, lk, device=device)
        additive[2] = NEG_INF  # row 2 of every sequence is masked by the explicit mask
        q_lengths = torch.tensor([lq, lq, 4], device=device)  # rows 4, 5 of sequence 2 are padding
        kw = {"mask": additive, "key_mask": key_mask, "q_lengths": q_lengths}
        out, w, lse = ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw)
        dead = ~reference_allowed(b, h, lq, lk, key_mask=key_mask, q_lengths=q_lengths, device=device).any(-1)
        dead[:, :, 2] = True
        for t in (out, w, lse):
            assert not torch.isnan(t).any()
        assert out[dead].abs().max() == 0 and w[dead].abs().max() == 0
        assert (lse[dead] == NEG_INF).all() and torch.isfinite(lse[~dead]).all()
        loss = (out * torch.randn_like(out)).sum() + (w * torch.randn_like(w)).sum()
        loss = loss + (lse.masked_fill(dead, 0) * torch.randn_like(lse)).sum()
        dq, dk, dv = torch.autograd.grad(loss, (q, k, v))
        for t in (dq, dk, dv):
            assert torch.isfinite(t).all()
        assert dq[dead].abs().max() == 0 and dq[1].abs().max() == 0
        assert dk[1].abs().max() == 0 and dv[1].abs().max() == 0
        # no key at all: zero-length keys everywhere
        q0, k0, v0 = qkv(2, 2, 1, 5, 4, 8, 8, device, dtype)
        out0, lse0 = ma.masked_attention(q0, k0, v0, k_lengths=torch.zeros(2, dtype=torch.int32, device=device),
                                         return_lse=True)
        assert out0.abs().max() == 0 and (lse0 == NEG_INF).all()
        out0.sum().backward()
        assert q0.grad.abs().max() == 0 and k0.grad.abs().max() == 0 and v0.grad.abs().max() == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lq", [70, 3])
def test_garbage_in_padding_is_never_read(device, lq):
    """NaN past q_lengths / k_lengths (an uninitialised KV cache) changes nothing."""
    b, h, lk = 2, 2, 150
    q_lengths, k_lengths = torch.tensor([lq, lq // 2], device=device), torch.tensor([150, 81], device=device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, 1, lq, lk, 32, 32, device, dtype, requires_grad=False)
        clean = [t.clone().requires_grad_() for t in (q, k, v)]
        q[1, :, lq // 2:] = float("nan")
        k[1, :, 81:] = float("nan")
        v[1, :, 81:] = float("nan")
        dirty = [t.requires_grad_() for t in (q, k, v)]
        kw = {"q_lengths": q_lengths, "k_lengths": k_lengths, "causal": True, "align": "bottom_right"}
        outs = [ma.masked_attention(*t, **kw) for t in (clean, dirty)]
        assert torch.equal(outs[0], outs[1])
        g = torch.randn_like(outs[0])
        grads = [torch.autograd.grad(o, t, g) for o, t in zip(outs, (clean, dirty))]
        for gc, gd in zip(*grads):
            assert torch.equal(gc, gd)


@pytest.mark.parametrize("device", DEVICES)
def test_return_signatures(device):
    q, k, v = qkv(2, 2, 2, 5, 6, 8, 8, device, torch.float32, requires_grad=False)
    assert isinstance(ma.masked_attention(q, k, v), torch.Tensor)
    out, w = ma.masked_attention(q, k, v, return_weights=True)
    assert w.shape == (2, 2, 5, 6)
    out, lse = ma.masked_attention(q, k, v, return_lse=True)
    assert lse.shape == (2, 2, 5) and lse.dtype == torch.float32
    out2, w2, lse2 = ma.masked_attention(q, k, v, return_weights=True, return_lse=True)
    assert torch.equal(out, out2) and torch.equal(w, w2) and torch.equal(lse, lse2)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 5, device=device), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_through_weights_and_lse(device):
    b, h, hkv, lq, lk = 2, 4, 2, 37, 75
    kw = mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, device)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, 48, device, dtype)
        out, w, lse = ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw)
        ref_out, ref_w, ref_lse = reference_attention(q, k, v, **kw)
        same_out, same_w, same_lse = reference_attention(q, k, v, upcast=False, **kw)
        gs = [torch.randn_like(out), torch.randn_like(w), torch.randn_like(lse)]

        def loss(o, ww, ll):
            ll = ll.masked_fill(torch.isinf(ref_lse), 0)
            return (o * gs[0].to(o.dtype)).sum() + (ww * gs[1].to(ww.dtype)).sum() + (ll * gs[2]).sum()

        ours = torch.autograd.grad(loss(out, w, lse), (q, k, v))
        ref = torch.autograd.grad(loss(ref_out, ref_w, ref_lse), (q, k, v))
        same = torch.autograd.grad(loss(same_out, same_w, same_lse), (q, k, v))
        for name, o, r, s in zip("qkv", ours, ref, same):
            assert_accurate(o, r, s, f"d{name} via weights and lse {dtype}")


@pytest.mark.parametrize("kw", [{"causal": True}, {"k_lengths": torch.tensor([3, 7]), "window": (1, 1)},
                                {"key_mask": torch.rand(2, 7) > 0.3, "causal": True, "align": "bottom_right",
                                 "q_lengths": torch.tensor([5, 2])},
                                {"mask": torch.randn(5, 7, dtype=torch.float64)}])
def test_gradcheck_float64(kw):
    q = torch.randn(2, 2, 5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 7, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: ma.masked_attention(*t, scale=0.8, **kw), (q, k, v))
    assert torch.autograd.gradcheck(lambda *t: ma.masked_attention(*t, return_weights=True, **kw), (q, k, v))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    q, k, v = qkv(2, 4, 2, 5, 9, 8, 16, device, torch.float32)
    mask = torch.rand(5, 9, device=device) > 0.2
    q_seg = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]], device=device)
    k_seg = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 2, 2, 2, -1]], device=device)
    args = (q, k, v, mask, True, "bottom_right", 0, 3, None, torch.tensor([5, 2], device=device),
            torch.tensor([9, 4], device=device), torch.rand(2, 9, device=device) > 0.3, q_seg, k_seg, 0.4, True)
    torch.library.opcheck(torch.ops.maskattn.masked_attention, args)
    torch.library.opcheck(torch.ops.maskattn.masked_attention, (q, k, v, None, False, "top_left", -2, None, None,
                                                                None, None, None, None, None, 0.5, False))
    out, lse, w, stats, rng = torch.ops.maskattn.masked_attention(*args)
    bwd_args = (torch.randn_like(out), torch.randn_like(lse), torch.randn_like(w), q.detach(), k.detach(),
                v.detach(), out.detach(), lse.detach()) + args[3:15]
    torch.library.opcheck(torch.ops.maskattn.masked_attention_backward, bwd_args)
    torch.library.opcheck(torch.ops.maskattn.masked_attention_backward, bwd_args + (stats, 0.0, None, False))
    # dropout replayed from the forward's rng_state; the gradient of an additive mask
    drop = torch.ops.maskattn.masked_attention(*args[:16], 0.3, None)
    torch.library.opcheck(torch.ops.maskattn.masked_attention_backward, bwd_args + (drop[3], 0.3, drop[4], False))
    add_args = (bwd_args[:8] + (torch.randn(4, 5, 9, device=device),) + bwd_args[9:] + (stats, 0.0, None, True))
    torch.library.opcheck(torch.ops.maskattn.masked_attention_backward, add_args)
    torch.library.opcheck(torch.ops.maskattn.dropout_keep_mask, (2, 3, 5, 7, 0.4, 12345, 8, torch.device(device)))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_forward_backward(device):
    @torch.compile(fullgraph=True)
    def f(q, k, v, lengths):
        out, lse = ma.masked_attention(q, k, v, causal=True, k_lengths=lengths, align="bottom_right",
                                       return_lse=True)
        return (out ** 2).sum() + lse.clamp(min=-10).sum()

    q, k, v = qkv(2, 4, 2, 17, 29, 16, 16, device, torch.float32)
    lengths = torch.tensor([29, 20], device=device)
    loss = f(q, k, v, lengths)
    grads = torch.autograd.grad(loss, (q, k, v))
    ref_out, _, ref_lse = reference_attention(q, k, v, causal=True, k_lengths=lengths, align="bottom_right")
    ref_loss = (ref_out ** 2).sum() + ref_lse.clamp(min=-10).sum()
    ref_grads = torch.autograd.grad(ref_loss, (q, k, v))
    assert abs(loss.item() - ref_loss.item()) <= 1e-4 * abs(ref_loss.item())
    for name, o, r in zip("qkv", grads, ref_grads):
        assert (o.double() - r).abs().max() <= 1e-4, f"compiled d{name}"


@pytest.mark.parametrize("device", DEVICES)
def test_equals_sdpa(device):
    b, h, hkv, lq, lk, d = 2, 6, 3, 65, 65, 32
    q, k, v = qkv(b, h, hkv, lq, lk, d, d, device, torch.float32)
    bool_mask = torch.rand(b, 1, lq, lk, device=device) > 0.5
    bool_mask[..., 0] = True  # every row keeps a key: SDPA defines no result for empty rows
    add_mask = torch.randn(1, h, lq, lk, device=device)
    cases = [({"causal": True}, {"is_causal": True}),
             ({"mask": bool_mask, "scale": 0.3}, {"attn_mask": bool_mask, "scale": 0.3}),
             ({"mask": add_mask}, {"attn_mask": add_mask}),
             ({}, {})]
    for ours_kw, sdpa_kw in cases:
        out = ma.masked_attention(q, k, v, **ours_kw)
        ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **sdpa_kw)
        assert (out - ref).abs().max() <= 2e-5, f"forward {ours_kw.keys()}"
        g = torch.randn_like(out)
        ours = torch.autograd.grad(out, (q, k, v), g)
        theirs = torch.autograd.grad(ref, (q, k, v), g)
        for name, o, t in zip("qkv", ours, theirs):
            assert (o - t).abs().max() <= 1e-4 * max(1.0, t.abs().max().item()), f"d{name} {ours_kw.keys()}"


@pytest.mark.parametrize("device", DEVICES)
def test_merging_key_shards_by_lse(device):
    b, h, lq, lk, split = 2, 3, 40, 100, 37
    q, k, v = qkv(b, h, h, lq, lk, 32, 32, device, torch.float32, requires_grad=False)
    key_mask = torch.rand(b, lk, device=device) > 0.3
    out, lse = ma.masked_attention(q, k, v, key_mask=key_mask, return_lse=True)
    o1, l1 = ma.masked_attention(q, k[:, :, :split], v[:, :, :split], key_mask=key_mask[:, :split], return_lse=True)
    o2, l2 = ma.masked_attention(q, k[:, :, split:], v[:, :, split:], key_mask=key_mask[:, split:], return_lse=True)
    merged_lse = torch.logaddexp(l1, l2)
    w1 = torch.exp(l1 - merged_lse).nan_to_num(0.0).unsqueeze(-1)
    w2 = torch.exp(l2 - merged_lse).nan_to_num(0.0).unsqueeze(-1)
    assert (merged_lse - lse).abs().max() <= 1e-5 * max(1.0, lse.abs().max().item())
    assert (o1 * w1 + o2 * w2 - out).abs().max() <= 2e-6


def test_bad_inputs():
    q, k, v = qkv(2, 4, 2, 5, 6, 8, 8, "cpu", torch.float32, requires_grad=False)
    with pytest.raises((ValueError, RuntimeError), match="q"):
        ma.masked_attention(q[0], k, v)
    with pytest.raises(RuntimeError, match="multiple of k heads"):
        ma.masked_attention(q[:, :3], k, v)
    with pytest.raises(RuntimeError, match="head size"):
        ma.masked_attention(q, k[..., :4], v)
    with pytest.raises(RuntimeError, match="v length"):
        ma.masked_attention(q, k, v[:, :, :5])
    with pytest.raises(RuntimeError, match="k dtype"):
        ma.masked_attention(q, k.double(), v)
    with pytest.raises(RuntimeError, match="k_lengths"):
        ma.masked_attention(q, k, v, k_lengths=torch.tensor([6, 7]))
    with pytest.raises(RuntimeError, match="q_lengths"):
        ma.masked_attention(q, k, v, q_lengths=torch.tensor([-1, 3]))
    with pytest.raises((ValueError, RuntimeError), match="k_lengths"):
        ma.masked_attention(q, k, v, k_lengths=torch.tensor([2.0, 3.0]))
    with pytest.raises(RuntimeError, match="key_mask"):
        ma.masked_attention(q, k, v, key_mask=torch.ones(2, 6))
    with pytest.raises(RuntimeError, match="key_mask"):
        ma.masked_attention(q, k, v, key_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="mask"):
        ma.masked_attention(q, k, v, mask=torch.ones(3, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="align"):
        ma.masked_attention(q, k, v, causal=True, align="bottom")
    with pytest.raises(ValueError, match="window"):
        ma.masked_attention(q, k, v, window=(-1, 0))
    with pytest.raises(ValueError, match="window"):
        ma.masked_attention(q, k, v, window=3)
