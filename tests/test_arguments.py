"""Bad or unusual arguments: one clear error naming the argument (never a schema dump, a Python
internals error or a silent wrong value), and the argument forms torch users pass (lists)."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_attention_mask, reference_masked_softmax

NON_FINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("scale", NON_FINITE)
def test_non_finite_scale_is_refused(scale):
    with pytest.raises(ValueError, match="scale"):
        ma.masked_softmax(torch.randn(2, 7), scale=scale)
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="scale"):
        ma.masked_attention(q, q, q, scale=scale)


def test_zero_head_size_with_default_scale():
    q = torch.randn(1, 1, 3, 0)
    with pytest.raises(ValueError, match="head size"):
        ma.masked_attention(q, q, torch.randn(1, 1, 3, 4))


@pytest.mark.parametrize("dtype,bad", [(torch.int8, 1000), (torch.int8, -129), (torch.uint8, 256),
                                       (torch.uint8, -1), (torch.int16, 2 ** 15), (torch.int32, 2 ** 31)])
def test_mask_id_must_fit_the_ids_dtype(dtype, bad):
    ids = torch.full((2, 3), 5, dtype=dtype)
    with pytest.raises(RuntimeError, match="mask_id"):
        ma.random_token_mask(ids, mask_id=bad, p=1.0)
    masked, selected = ma.random_token_mask(ids, mask_id=torch.iinfo(dtype).max, p=1.0)
    assert selected.all() and (masked == torch.iinfo(dtype).max).all() and masked.dtype == dtype


@pytest.mark.parametrize("call,arg", [
    (lambda: ma.causal_mask(4, window=(2 ** 63, 0)), "window left"),
    (lambda: ma.attention_mask(4, window=(0, 2 ** 64)), "window right"),
    (lambda: ma.padding_mask_from_ids(torch.zeros(2, 3, dtype=torch.long), 2 ** 64), "pad_id"),
    (lambda: ma.random_token_mask(torch.zeros(2, 3, dtype=torch.long), 2 ** 63), "mask_id"),
    (lambda: ma.random_token_mask(torch.zeros(2, 3, dtype=torch.long), 1, special_ids=[-2 ** 63 - 1]),
     "special_ids"),
    (lambda: ma.causal_mask(2 ** 63), "q_len"),
    (lambda: ma.attention_mask(4, 2 ** 70), "k_len"),
])
def test_ints_beyond_int64_are_named(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_padding_mask_names_its_own_argument():
    for lengths in ([3, -1], torch.tensor([3, -1]), torch.tensor([3, 5])):
        with pytest.raises(ValueError, match=r"maskattn\.padding_mask: lengths"):
            ma.padding_mask(lengths, 4)


def test_lists_are_accepted_where_tensors_are():
    assert torch.equal(ma.padding_mask([3, 1], 4), ma.padding_mask(torch.tensor([3, 1]), 4))
    assert ma.padding_mask([]).shape == (0, 0)
    got = ma.attention_mask(5, causal=True, q_lengths=[5, 2], k_lengths=[4, 5], key_mask=[[True] * 5, [False] + [True] * 4])
    want = reference_attention_mask(5, causal=True, q_lengths=torch.tensor([5, 2]), k_lengths=torch.tensor([4, 5]),
                                    key_mask=torch.tensor([[True] * 5, [False] + [True] * 4]))
    assert torch.equal(got, want)
    x = torch.randn(2, 3, 5)
    got = ma.masked_softmax(x, k_lengths=[3, 5], key_mask=[[True, False, True, True, True]] * 2)
    want = reference_masked_softmax(x, k_lengths=torch.tensor([3, 5]),
                                    key_mask=torch.tensor([[True, False, True, True, True]] * 2))
    assert (got - want).abs().max() < 1e-6
    q = torch.randn(2, 2, 3, 4)
    out = ma.masked_attention(q, q, q, q_lengths=[3, 1], k_lengths=[2, 3], key_mask=[[True, True, False]] * 2)
    ref = ma.masked_attention(q, q, q, q_lengths=torch.tensor([3, 1]), k_lengths=torch.tensor([2, 3]),
                              key_mask=torch.tensor([[True, True, False]] * 2))
    assert torch.equal(out, ref)
    with pytest.raises(TypeError, match="k_lengths"):
        ma.masked_softmax(x, k_lengths="3")


def test_empty_batch_is_accepted_by_every_builder():
    assert ma.attention_mask(4, batch=0).shape == (0, 1, 4, 4)
    assert ma.attention_mask(4, 3, causal=True, k_lengths=torch.empty(0, dtype=torch.long)).shape == (0, 1, 4, 3)
    assert ma.padding_mask(torch.empty(0, dtype=torch.long), 5).shape == (0, 5)
    with pytest.raises(ValueError, match="batch"):
        ma.attention_mask(4, batch=-1)


@pytest.mark.parametrize("call", [
    lambda km: ma.attention_mask(4, key_mask=km),
    lambda km: ma.masked_softmax(torch.randn(2, 3, 4), key_mask=km),
    lambda km: ma.masked_attention(*(torch.randn(2, 1, 3, 4),) * 3, key_mask=km),
])
def test_one_dim_key_mask_reports_the_expected_shape(call):
    with pytest.raises(ValueError, match=r"key_mask must have shape \(B, [34]\).*got \(4,\)"):
        call(torch.ones(4, dtype=torch.bool))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a torch without CUDA devices")
def test_cuda_device_without_cuda_is_one_sentence():
    for call in (lambda: ma.causal_mask(4, device="cuda"), lambda: ma.attention_mask(4, device="cuda:0")):
        with pytest.raises(RuntimeError, match="maskattn") as info:
            call()
        assert len(str(info.value).splitlines()) == 1, str(info.value)
