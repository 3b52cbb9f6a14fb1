"""Mask construction ops against the float64/plain-torch reference."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_attention_mask, to_mask_dtype

from conftest import DEVICES

ALIGNS = ["top_left", "bottom_right"]
WINDOWS = [None, (2, None), (None, 3), (3, 1), (0, 0)]
MASK_DTYPES = [torch.bool, torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("q_len,k_len", [(1, 1), (97, 97), (5, 9), (9, 5), (1025, 1030)])
@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("window", WINDOWS)
def test_causal_mask(device, q_len, k_len, align, window):
    got = ma.causal_mask(q_len, k_len, align=align, window=window, device=device)
    want = reference_attention_mask(q_len, k_len, causal=True, align=align, window=window, device=device)[0, 0]
    assert got.dtype == torch.bool and got.shape == (q_len, k_len)
    assert torch.equal(got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", MASK_DTYPES)
def test_causal_mask_additive(device, dtype):
    masked_value = -1e4 if dtype == torch.float16 else float("-inf")
    got = ma.causal_mask(7, 11, align="bottom_right", dtype=dtype, device=device, masked_value=masked_value)
    ok = reference_attention_mask(7, 11, causal=True, align="bottom_right", device=device)[0, 0]
    assert got.dtype == dtype
    assert torch.equal(got, to_mask_dtype(ok, dtype, masked_value))


def test_causal_mask_drawn():
    got = ma.causal_mask(3, 5, align="bottom_right").int().tolist()
    assert got == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert ma.causal_mask(3, 5, window=(1, 0)).int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0],
                                                                  [0, 1, 1, 0, 0]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", MASK_DTYPES)
@pytest.mark.parametrize("len_dtype", [torch.int32, torch.int64])
def test_padding_mask(device, dtype, len_dtype):
    b, max_len = 6, 37
    lengths = torch.randint(0, max_len + 1, (b,), device=device, dtype=len_dtype)
    got = ma.padding_mask(lengths, max_len, dtype=dtype)
    ok = torch.arange(max_len, device=device)[None, :] < lengths[:, None].long()
    assert torch.equal(got, to_mask_dtype(ok, dtype))
    assert ma.padding_mask(lengths).shape == (b, int(lengths.max()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32])
def test_padding_mask_from_ids(device, dtype):
    ids = torch.randint(0, 5, (4, 97), device=device)
    got = ma.padding_mask_from_ids(ids, pad_id=3, dtype=dtype, masked_value=-1e9)
    assert torch.equal(got, to_mask_dtype(ids != 3, dtype, -1e9))
    ids32 = ids.int()
    assert torch.equal(ma.padding_mask_from_ids(ids32, 3), ids32 != 3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("causal,window", [(False, None), (True, None), (True, (4, None)), (False, (2, 2))])
@pytest.mark.parametrize("with_key_mask", [False, True])
def test_attention_mask(device, align, causal, window, with_key_mask):
    b, lq, lk = 5, 13, 17
    q_lengths = torch.randint(0, lq + 1, (b,), device=device)
    k_lengths = torch.randint(0, lk + 1, (b,), device=device)
    key_mask = torch.rand(b, lk, device=device) > 0.3 if with_key_mask else None
    kw = dict(causal=causal, align=align, window=window, q_lengths=q_lengths, k_lengths=k_lengths,
              key_mask=key_mask)
    got = ma.attention_mask(lq, lk, **kw)
    want = reference_attention_mask(lq, lk, device=device, **kw)
    assert got.shape == (b, 1, lq, lk)
    assert torch.equal(got, want)
    # padded query rows are all False
    for bi in range(b):
        assert not got[bi, 0, int(q_lengths[bi]):].any()
    add = ma.attention_mask(lq, lk, dtype=torch.bfloat16, **kw)
    assert torch.equal(add, to_mask_dtype(want, torch.bfloat16))


def test_attention_mask_batch_and_device_defaults():
    m = ma.attention_mask(4, causal=True, batch=3)
    assert m.shape == (3, 1, 4, 4) and m.device.type == "cpu"
    assert torch.equal(m[2, 0], torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.mark.parametrize("device", DEVICES)
def test_random_token_mask(device):
    ids = torch.randint(0, 50, (16, 512), device=device)
    specials = [0, 1, 2]
    g1 = torch.Generator(device=device).manual_seed(1234)
    g2 = torch.Generator(device=device).manual_seed(1234)
    masked, sel = ma.random_token_mask(ids, 103, 0.15, special_ids=specials, generator=g1)
    masked2, sel2 = ma.random_token_mask(ids, 103, 0.15, special_ids=specials, generator=g2)
    assert torch.equal(sel, sel2) and torch.equal(masked, masked2)
    again, sel3 = ma.random_token_mask(ids, 103, 0.15, special_ids=specials, generator=g1)
    assert not torch.equal(sel, sel3), "the generator must advance between calls"
    special = (ids == 0) | (ids == 1) | (ids == 2)
    assert not (sel & special).any()
    assert torch.equal(masked, torch.where(sel, torch.full_like(ids, 103), ids))
    rate = sel[~special].float().mean().item()
    assert abs(rate - 0.15) < 0.02
    assert masked.dtype == ids.dtype and sel.dtype == torch.bool


@pytest.mark.parametrize("device", DEVICES)
def test_random_token_mask_extremes(device):
    ids = torch.randint(0, 9, (3, 40), device=device, dtype=torch.int32)
    _, none = ma.random_token_mask(ids, 99, 0.0)
    assert not none.any()
    masked, every = ma.random_token_mask(ids, 99, 1.0, special_ids=[0])
    assert torch.equal(every, ids != 0) and masked.dtype == torch.int32


def test_mask_errors():
    with pytest.raises(ValueError, match="align"):
        ma.causal_mask(4, align="left")
    with pytest.raises(ValueError, match="window"):
        ma.causal_mask(4, window=(-1, 0))
    with pytest.raises(RuntimeError, match="k_lengths"):
        ma.attention_mask(4, 4, k_lengths=torch.tensor([5]))
    with pytest.raises(RuntimeError, match="q_lengths"):
        ma.attention_mask(4, 4, q_lengths=torch.tensor([-1]))
    with pytest.raises(ValueError, match="k_lengths"):
        ma.attention_mask(4, 4, k_lengths=torch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="key_mask"):
        ma.attention_mask(4, 4, key_mask=torch.ones(1, 4))
    with pytest.raises(RuntimeError, match="key_mask"):
        ma.attention_mask(4, 4, key_mask=torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="dtype"):
        ma.causal_mask(4, dtype=torch.int32)
    with pytest.raises(ValueError, match="ids"):
        ma.padding_mask_from_ids(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="p must"):
        ma.random_token_mask(torch.zeros(2, 3, dtype=torch.long), 1, p=1.5)


def test_mask_ops_opcheck():
    lengths = torch.tensor([3, 0, 5])
    torch.library.opcheck(torch.ops.maskattn.attention_mask,
                          (5, 6, True, "bottom_right", 0, 2, None, lengths, lengths, None, None, None, 3,
                           torch.float32, torch.device("cpu"), float("-inf")))
    seg = torch.tensor([[0, 0, 1, 1, -1, 2]])
    torch.library.opcheck(torch.ops.maskattn.attention_mask,
                          (6, 6, True, "top_left", -1, None, None, None, None, None, seg, seg, 1, torch.bool,
                           torch.device("cpu"), float("-inf")))
    torch.library.opcheck(torch.ops.maskattn.padding_mask_from_ids, (torch.randint(0, 3, (2, 7)), 0, torch.bool, 0.0))


def test_masks_compile_fullgraph():
    @torch.compile(fullgraph=True)
    def build(ids, lengths):
        pad = ma.padding_mask_from_ids(ids, 0)
        dec = ma.attention_mask(ids.shape[1], causal=True, k_lengths=lengths)
        return dec & pad[:, None, None, :]

    ids = torch.randint(0, 4, (3, 9))
    lengths = torch.tensor([9, 4, 0])
    got = build(ids, lengths)
    want = reference_attention_mask(9, causal=True, k_lengths=lengths) & (ids != 0)[:, None, None, :]
    assert torch.equal(got, want)
