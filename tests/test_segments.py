"""Packed sequences (segments=) and integer alignment, in every op, against the float64 reference.
Inputs are fresh random tensors on every run; segment layouts are random too (sorted packs with
padding, and unsorted ids that defeat tile skipping but must stay correct)."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_attention, reference_attention_mask, reference_masked_softmax

from conftest import DEVICES, dtypes_for
from test_attention import check_against_reference, qkv
from test_masked_softmax import torch_same_precision
from tolerance import assert_rule, torch_softmax_grad


def packed_ids(b, length, device, pad=True):
    """(b, length) sorted document ids of random lengths, the tail of some rows padding (-1)."""
    rows = []
    for _ in range(b):
        docs = torch.randint(1, max(2, length // 3), (length,))
        ids = torch.repeat_interleave(torch.arange(length), docs)[:length]
        if pad and torch.rand(()) < 0.7:
            ids[torch.randint(length // 2, length + 1, ()).item():] = -1
        rows.append(ids)
    return torch.stack(rows).to(device)


def unsorted_ids(b, length, device):
    return torch.randint(-1, 3, (b, length), device=device)


def segment_cases(b, lq, lk, device):
    same = packed_ids(b, lq, device) if lq == lk else None
    cases = {
        "pair_packed": {"segments": (packed_ids(b, lq, device), packed_ids(b, lk, device))},
        "pair_unsorted_causal": {"segments": (unsorted_ids(b, lq, device), unsorted_ids(b, lk, device)),
                                 "causal": True, "align": "bottom_right"},
        "pair_broadcast_window": {"segments": (packed_ids(1, lq, device), packed_ids(1, lk, device)),
                                  "window": (9, 4), "align": 5},
        "align_int_causal": {"causal": True, "align": int(torch.randint(-lq, lk + 1, ()))},
        "align_int_window_lengths": {"window": (17, 3), "align": int(torch.randint(-lq, lk + 1, ())),
                                     "k_lengths": torch.randint(0, lk + 1, (b,), device=device)},
    }
    if same is not None:
        cases["self_packed_causal"] = {"segments": same, "causal": True}
        cases["self_packed_key_mask"] = {"segments": same, "key_mask": torch.rand(b, lk, device=device) > 0.2}
    return cases


CASE_NAMES = ["pair_packed", "pair_unsorted_causal", "pair_broadcast_window", "align_int_causal",
              "align_int_window_lengths", "self_packed_causal", "self_packed_key_mask"]


SHAPES = [(1, 1), (150, 150), (1, 300), (33, 200), (257, 97)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case,lq,lk", [(c, lq, lk) for c in CASE_NAMES for lq, lk in SHAPES
                                        if lq == lk or not c.startswith("self")])  # one tensor: Lq == Lk
def test_attention(device, case, lq, lk):
    b, h, hkv = 2, 4, 2
    kw = segment_cases(b, lq, lk, device)[case]
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, 48, device, dtype)
        check_against_reference(q, k, v, f"{case} {lq}x{lk} {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("h,hkv,lq", [(8, 1, 1), (12, 4, 3), (6, 6, 1)])
def test_decoding_and_gqa(device, h, hkv, lq):
    """Few query rows per kv head (the decoding path) with packed keys and an integer alignment."""
    b, lk = 3, 230
    kw = {"segments": (packed_ids(b, lq, device, pad=False), packed_ids(b, lk, device)), "causal": True,
          "align": lk - lq}
    kw["segments"][0].fill_(0)
    for dtype in dtypes_for(device):
        q, k, v = qkv(b, h, hkv, lq, lk, 32, 32, device, dtype)
        check_against_reference(q, k, v, f"decode h={h} hkv={hkv} lq={lq} {dtype}", **kw)


@pytest.mark.parametrize("device", DEVICES)
def test_packed_equals_batched(device):
    """Documents packed in one row give what the same documents give as a padded batch."""
    lengths = [70, 1, 129, 64]
    total, d, h = sum(lengths) + 13, 32, 3
    seg = ma.segments_from_lengths(torch.tensor(lengths), total).to(device)
    q, k, v = qkv(1, h, h, total, total, d, d, device, torch.float32)
    packed = ma.masked_attention(q, k, v, segments=seg, causal=True)
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        alone = ma.masked_attention(q[:, :, sl], k[:, :, sl], v[:, :, sl], causal=True)
        assert (packed[:, :, sl] - alone).abs().max() <= 2e-6
        start += n
    assert packed[:, :, start:].abs().max() == 0  # padding rows attend nothing


@pytest.mark.parametrize("device", DEVICES)
def test_block_of_larger_matrix(device):
    """A block (queries from qs, keys from ks) with align = qs - ks equals that block of causal
    attention over the whole sequence, merged by lse: the rule context parallelism relies on."""
    L, d = 300, 32
    q, k, v = qkv(2, 2, 2, L, L, d, d, device, torch.float32, requires_grad=False)
    full, full_lse = ma.masked_attention(q, k, v, causal=True, return_lse=True)
    qs, qe = 120, 220
    outs, lses = [], []
    for ks, ke in ((0, 100), (100, 180), (180, 300)):
        o, lse = ma.masked_attention(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke], causal=True, align=qs - ks,
                                     return_lse=True)
        outs.append(o)
        lses.append(lse)
    lse = torch.logsumexp(torch.stack(lses), 0)
    out = sum(o * torch.exp(l - lse).nan_to_num(0.0).unsqueeze(-1) for o, l in zip(outs, lses))
    assert (lse - full_lse[:, :, qs:qe]).abs().max() <= 1e-5 * full_lse.abs().max()
    assert (out - full[:, :, qs:qe]).abs().max() <= 2e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_masked_softmax(device, case):
    b, h, lq, lk = 3, 2, 40, 40 if case.startswith("self") else 71
    kw = segment_cases(b, lq, lk, device)[case]
    kw.pop("q_lengths", None)
    x = torch.randn(b, h, lq, lk, device=device) * 3
    g = torch.randn_like(x)
    for dtype in dtypes_for(device):
        xd = x.to(dtype).detach().clone().requires_grad_()
        got = ma.masked_softmax(xd, scale=0.7, **kw)
        ref = reference_masked_softmax(xd.detach(), scale=0.7, **kw)
        assert_rule(got, ref, torch_same_precision(xd.detach(), None, 0.7, **kw), f"{case} {dtype}")
        got.backward(g.to(dtype))
        x64 = xd.detach().double().requires_grad_()
        reference_masked_softmax(x64, scale=0.7, **kw).backward(g.double().to(dtype).double())
        # torch's softmax backward as a user gets it: from its output saved in the input's dtype
        same = torch_softmax_grad(torch_same_precision(xd.detach(), None, 0.7, **kw), g.to(dtype), 0.7)
        assert_rule(xd.grad, x64.grad, same, f"grad {case} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32])
def test_attention_mask(device, case, dtype):
    b, lq = 3, 37
    lk = lq if case.startswith("self") else 45
    kw = segment_cases(b, lq, lk, device)[case]
    got = ma.attention_mask(lq, lk, dtype=dtype, **kw)
    want = reference_attention_mask(lq, lk, dtype=dtype, **kw)
    assert got.shape == want.shape and torch.equal(got, want)


def test_segment_helpers():
    seg = ma.segments_from_lengths([3, 2], 6)
    assert seg.tolist() == [[0, 0, 0, 1, 1, -1]]
    seg = ma.segments_from_lengths(torch.tensor([[2, 0, 1], [1, 1, 1]]))
    assert seg.tolist() == [[0, 0, 2], [0, 1, 2]]
    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [3, 4, 0, 1, 2, 3]])
    assert ma.segments_from_position_ids(pos).tolist() == [[0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1]]
    with pytest.raises(ValueError, match="total"):
        ma.segments_from_lengths([3, 4], 6)
    with pytest.raises(ValueError, match="lengths"):
        ma.segments_from_lengths([3.0, 4.0])


def test_gradcheck_float64():
    q = torch.randn(2, 2, 6, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 1, 6, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 1, 6, 4, dtype=torch.float64, requires_grad=True)
    seg = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 1, 1, 2, 2, 2]])
    for kw in ({"segments": seg, "causal": True}, {"align": -2, "causal": True, "segments": seg}):
        assert torch.autograd.gradcheck(lambda *t: ma.masked_attention(*t, **kw), (q, k, v))


def test_compile_fullgraph():
    @torch.compile(fullgraph=True)
    def f(q, k, v, seg):
        return ma.masked_attention(q, k, v, segments=seg, causal=True, align=0).sum()

    q, k, v = qkv(2, 2, 1, 40, 40, 16, 16, "cpu", torch.float32)
    seg = ma.segments_from_lengths(torch.tensor([[10, 30], [25, 10]]), 40)
    loss = f(q, k, v, seg)
    loss.backward()
    ref_out, _, _ = reference_attention(q, k, v, segments=seg, causal=True)
    assert abs(loss.item() - ref_out.sum().item()) <= 1e-4 * max(1.0, abs(ref_out.sum().item()))


def test_bad_segments():
    q, k, v = qkv(2, 2, 2, 5, 6, 8, 8, "cpu", torch.float32, requires_grad=False)
    with pytest.raises(ValueError, match="Lq == Lk"):
        ma.masked_attention(q, k, v, segments=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(RuntimeError, match="k_segments"):
        ma.masked_attention(q, k, v, segments=(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5).long()))
    with pytest.raises(ValueError, match="k_segments"):
        ma.masked_attention(q, k, v, segments=(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 6)))
    with pytest.raises(RuntimeError, match="q_segments"):
        ma.masked_attention(q, k, v, segments=(torch.zeros(3, 5, dtype=torch.long), torch.zeros(2, 6).long()))
    with pytest.raises(ValueError, match="align"):
        ma.masked_attention(q, k, v, align=1.5)
