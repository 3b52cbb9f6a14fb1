"""maskattn.nn.MultiheadAttention as a drop-in for torch.nn.MultiheadAttention."""
import pytest
import torch

import maskattn as ma

from conftest import DEVICES


def twin_modules(device, **kw):
    theirs = torch.nn.MultiheadAttention(**kw).to(device).double()
    ours = ma.nn.MultiheadAttention(**kw).to(device).double()
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours.eval(), theirs.eval()


def inputs(batch_first, n, lq, lk, e, kdim, vdim, device):
    shape = (lambda l, d: (n, l, d)) if batch_first else (lambda l, d: (l, n, d))
    return (torch.randn(shape(lq, e), dtype=torch.float64, device=device),
            torch.randn(shape(lk, kdim), dtype=torch.float64, device=device),
            torch.randn(shape(lk, vdim), dtype=torch.float64, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kdim_vdim", [(None, None), (12, 20)])
@pytest.mark.parametrize("masks", ["none", "kpm_bool", "kpm_float", "attn_bool_2d", "attn_float_3d", "both"])
@pytest.mark.parametrize("average", [True, False])
def test_matches_torch(device, batch_first, kdim_vdim, masks, average):
    e, heads, n, lq, lk = 16, 4, 3, 7, 9
    kdim, vdim = kdim_vdim
    ours, theirs = twin_modules(device, embed_dim=e, num_heads=heads, batch_first=batch_first, kdim=kdim, vdim=vdim)
    q, k, v = inputs(batch_first, n, lq, lk, e, kdim or e, vdim or e, device)
    kpm = attn = None
    if masks in ("kpm_bool", "both"):
        kpm = torch.rand(n, lk, device=device) < 0.3
        kpm[:, 0] = False  # keep one key per row: torch gives NaN for fully masked rows
    if masks == "kpm_float":
        kpm = torch.randn(n, lk, dtype=torch.float64, device=device)
    if masks in ("attn_bool_2d", "both"):
        attn = torch.ones(lq, lk, dtype=torch.bool, device=device).triu(1)
    if masks == "attn_float_3d":
        attn = torch.randn(n * heads, lq, lk, dtype=torch.float64, device=device)
    out, w = ours(q, k, v, key_padding_mask=kpm, attn_mask=attn, average_attn_weights=average)
    ref, rw = theirs(q, k, v, key_padding_mask=kpm, attn_mask=attn, average_attn_weights=average)
    assert ours.last_path == "fused"
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, rw)


@pytest.mark.parametrize("device", DEVICES)
def test_causal_unbatched_no_weights_and_grad(device):
    ours, theirs = twin_modules(device, embed_dim=8, num_heads=2)
    q = torch.randn(5, 8, dtype=torch.float64, device=device, requires_grad=True)
    causal = torch.ones(5, 5, dtype=torch.bool, device=device).triu(1)
    out, w = ours(q, q, q, need_weights=False, attn_mask=causal, is_causal=True)
    ref, _ = theirs(q, q, q, need_weights=False, attn_mask=causal, is_causal=True)
    assert w is None and out.shape == (5, 8)
    torch.testing.assert_close(out, ref)
    g, = torch.autograd.grad(out.sum(), q)
    gr, = torch.autograd.grad(ref.sum(), q)
    torch.testing.assert_close(g, gr)
    alone, _ = ours(q, q, q, need_weights=False, is_causal=True)  # torch would demand attn_mask here
    torch.testing.assert_close(alone, ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sharing", ["self", "key is value", "none"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_shared_inputs_match_torch_with_parameter_grads(device, sharing, batch_first):
    """One input tensor for query, key and value (or for key and value) takes one packed projection,
    as in torch's module; outputs and every gradient (inputs, packed weight and bias) match torch's."""
    ours, theirs = twin_modules(device, embed_dim=12, num_heads=3, batch_first=batch_first)
    x, y, z = (t.requires_grad_() for t in inputs(batch_first, 3, 6, 6, 12, 12, 12, device))
    q, k, v = {"self": (x, x, x), "key is value": (x, y, y), "none": (x, y, z)}[sharing]
    kpm = torch.zeros(3, 6, dtype=torch.bool, device=device)
    kpm[1, 4:] = True
    weight = torch.randn_like(x)
    grads = []
    for module in (ours, theirs):
        out, _ = module(q, k, v, key_padding_mask=kpm, need_weights=False)
        wrt = (x, y, z, module.in_proj_weight, module.in_proj_bias, module.out_proj.weight)
        grads.append((out, torch.autograd.grad((out * weight).sum(), wrt, allow_unused=True)))
    (out, got), (ref, want) = grads
    torch.testing.assert_close(out, ref)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias_kv,zero_attn", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("masks", ["none", "kpm_bool", "attn_bool_2d", "float_both", "causal"])
def test_bias_kv_and_zero_attn_match_torch(device, bias_kv, zero_attn, masks):
    """The appended key/value columns run on the fused kernel and match torch's module."""
    e, heads, n, lq, lk = 16, 4, 3, 7, 9
    ours, theirs = twin_modules(device, embed_dim=e, num_heads=heads, add_bias_kv=bias_kv, add_zero_attn=zero_attn)
    with torch.no_grad():
        for p in (theirs.bias_k, theirs.bias_v, ours.bias_k, ours.bias_v):
            if p is not None:
                p.normal_()
    ours.load_state_dict(theirs.state_dict())
    q, k, v = inputs(False, n, lq, lk, e, e, e, device)
    kw = {}
    if masks == "kpm_bool":
        kw["key_padding_mask"] = torch.rand(n, lk, device=device) < 0.3
    if masks == "attn_bool_2d":
        kw["attn_mask"] = torch.rand(lq, lk, device=device) < 0.3
    if masks == "float_both":
        kw["attn_mask"] = torch.randn(n * heads, lq, lk, dtype=torch.float64, device=device)
        kw["key_padding_mask"] = torch.randn(n, lk, dtype=torch.float64, device=device)
    if masks == "causal":
        k = v = q  # self-attention
        kw = {"attn_mask": torch.ones(lq, lq, dtype=torch.bool, device=device).triu(1), "is_causal": True}
    q.requires_grad_()
    out, w = ours(q, k, v, average_attn_weights=False, **kw)
    ref, rw = theirs(q, k, v, average_attn_weights=False, **kw)
    assert ours.last_path == "fused" and w.shape[-1] == (k.shape[0] + bias_kv + zero_attn)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, rw)
    g = torch.randn_like(out)
    ours_grads = torch.autograd.grad(out, [q] + [p for p in (ours.bias_k, ours.in_proj_weight) if p is not None], g)
    ref_grads = torch.autograd.grad(ref, [q] + [p for p in (theirs.bias_k, theirs.in_proj_weight) if p is not None], g)
    for a, b in zip(ours_grads, ref_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("need_weights", [True, False])
def test_training_dropout_runs_fused(device, need_weights):
    """In training the module drops on the fused kernel: the returned weights are torch's kind
    (dropped and rescaled) and the output is exactly those weights applied to the projected values;
    p = 0 or eval mode give torch's module's results."""
    e, heads, n, lq, lk, p = 16, 4, 3, 40, 50, 0.25
    ours, theirs = twin_modules(device, embed_dim=e, num_heads=heads, dropout=p, add_bias_kv=True)
    ours.train()
    q, k, v = inputs(False, n, lq, lk, e, e, e, device)
    kpm = torch.rand(n, lk, device=device) < 0.2
    out, w = ours(q, k, v, key_padding_mask=kpm, need_weights=need_weights, average_attn_weights=False)
    assert ours.last_path == "fused" and out.shape == (lq, n, e)
    if need_weights:
        kept = w > 0
        allowed = ~torch.nn.functional.pad(kpm, (0, 1)).view(n, 1, 1, lk + 1).expand_as(w)
        frac = kept[allowed].double().mean().item()
        assert abs(frac - (1 - p)) < 0.05, f"kept fraction {frac}"
        # out = out_proj(concat_heads(W_dropped @ V)) with the values projected and extended as torch does
        vv = torch.nn.functional.linear(v, ours.in_proj_weight[2 * e:], ours.in_proj_bias[2 * e:])
        vv = torch.cat([vv, ours.bias_v.expand(1, n, e)]).view(lk + 1, n, heads, e // heads).permute(1, 2, 0, 3)
        manual = (w @ vv).permute(2, 0, 1, 3).reshape(lq, n, e)
        manual = torch.nn.functional.linear(manual, ours.out_proj.weight, ours.out_proj.bias)
        torch.testing.assert_close(out, manual)
    ours.eval()
    out_eval, w_eval = ours(q, k, v, key_padding_mask=kpm)
    ref, rw = theirs(q, k, v, key_padding_mask=kpm)
    torch.testing.assert_close(out_eval, ref)
    torch.testing.assert_close(w_eval, rw)


def test_fully_padded_sequence_gives_zeros_not_nan():
    m = ma.nn.MultiheadAttention(8, 2, batch_first=True, bias=False)
    x = torch.randn(2, 3, 8)
    kpm = torch.tensor([[False, False, True], [True, True, True]])
    out, w = m(x, x, x, key_padding_mask=kpm)
    assert not torch.isnan(out).any() and out[1].abs().max() == 0 and w[1].abs().max() == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lq,lk", [(5, 5), (4, 7)])
@pytest.mark.parametrize("masks", ["none", "kpm", "attn_3d"])
def test_unbatched_input_ignores_batch_first_as_torch(device, batch_first, lq, lk, masks):
    e, heads = 8, 2
    ours, theirs = twin_modules(device, embed_dim=e, num_heads=heads, batch_first=batch_first)
    q = torch.randn(lq, e, dtype=torch.float64, device=device)
    k = torch.randn(lk, e, dtype=torch.float64, device=device)
    kpm = attn = None
    if masks == "kpm":
        kpm = torch.rand(lk, device=device) < 0.3
        kpm[0] = False
    if masks == "attn_3d":
        attn = torch.randn(heads, lq, lk, dtype=torch.float64, device=device)
    for average in (True, False):
        out, w = ours(q, k, k, key_padding_mask=kpm, attn_mask=attn, average_attn_weights=average)
        ref, rw = theirs(q, k, k, key_padding_mask=kpm, attn_mask=attn, average_attn_weights=average)
        assert out.shape == ref.shape and w.shape == rw.shape
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(w, rw)


@pytest.mark.parametrize("arg", ["key_padding_mask", "attn_mask"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_integer_masks_are_refused_as_torch(arg, dtype):
    ours, theirs = twin_modules("cpu", embed_dim=8, num_heads=2)
    x = torch.randn(4, 3, 8, dtype=torch.float64)
    mask = {"key_padding_mask": torch.zeros(3, 4, dtype=dtype), "attn_mask": torch.zeros(4, 4, dtype=dtype)}[arg]
    with pytest.raises(Exception):
        theirs(x, x, x, **{arg: mask})
    with pytest.raises(ValueError, match=arg):
        ours(x, x, x, **{arg: mask})


def test_bad_input_shapes_are_named():
    m = ma.nn.MultiheadAttention(8, 2)
    x4 = torch.randn(2, 3, 4, 8)
    with pytest.raises(ValueError, match="query must be 2-D"):
        m(x4, x4, x4)
    x3 = torch.randn(4, 3, 8)
    with pytest.raises(ValueError, match="key must be 3-D"):
        m(x3, x3[0], x3)
    with pytest.raises(ValueError, match="key_padding_mask must be 1-D"):
        m(x3[:, 0], x3[:, 0], x3[:, 0], key_padding_mask=torch.zeros(1, 4, dtype=torch.bool))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
def test_segments_match_torch_with_the_block_diagonal_mask(device, causal, unbatched):
    """Packed documents (negative id = padding) against torch's module given the same rule as an
    (L, L) / (N*heads, L, L) bool mask, True = masked; padding rows attend nothing (0 in both)."""
    ours, ref = twin_modules(device, embed_dim=16, num_heads=2, batch_first=True)
    n, length, e = (1 if unbatched else 3), 29, ref.embed_dim
    x = torch.randn(n, length, e, dtype=torch.float64, device=device)
    lengths = torch.randint(1, 5, (n, 6), device=device)  # at most 24 of 29: a padded tail
    seg = ma.segments_from_lengths(lengths, total=length)
    allowed = seg.unsqueeze(-1) == seg.unsqueeze(-2)
    allowed &= (seg >= 0).unsqueeze(-1)
    if causal:
        allowed &= torch.ones(length, length, dtype=torch.bool, device=device).tril()
    # torch gives NaN to rows that attend nothing: let them see key 0 there and zero them after
    dead = ~allowed.any(-1)
    torch_mask = ~(allowed | (dead.unsqueeze(-1) & (torch.arange(length, device=device) == 0)))
    torch_mask = torch_mask.repeat_interleave(ref.num_heads, dim=0)
    xs, segs = (x[0], seg[0]) if unbatched else (x, seg)
    got, got_w = ours(xs, xs, xs, segments=segs, is_causal=causal, attn_mask=None)
    want, want_w = ref(xs, xs, xs, attn_mask=torch_mask[0] if unbatched else torch_mask)
    live = ~dead[0] if unbatched else ~dead
    assert torch.allclose(got[live], want[live], atol=2e-5, rtol=1e-4)
    assert (got_w[dead[0] if unbatched else dead] == 0).all()  # the padded tail (at least 5 rows)
    assert torch.allclose(got_w[live], want_w[live], atol=2e-6)


def test_segments_refused_with_extra_keys():
    mha = ma.nn.MultiheadAttention(16, 2, add_zero_attn=True)
    x = torch.randn(5, 1, 16)
    with pytest.raises(ValueError, match="segments cannot be combined"):
        mha(x, x, x, segments=torch.zeros(1, 5, dtype=torch.long))
