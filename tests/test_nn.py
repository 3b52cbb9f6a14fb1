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


def test_fallback_for_dropout_and_bias_kv():
    m = ma.nn.MultiheadAttention(8, 2, dropout=0.1, add_bias_kv=True)
    x = torch.randn(4, 2, 8)
    out, _ = m(x, x, x)
    assert m.last_path == "torch" and out.shape == (4, 2, 8)


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
