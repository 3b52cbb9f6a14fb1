"""No op reads tensor values back to the host (a device sync on CUDA, a habit that becomes one) while
running: checked with torch's profiler on CPU, where a sync costs nothing and so hides easily."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import maskattn as ma

# ops that bring a tensor's value to Python or C++ host code
HOST_READS = {"aten::item", "aten::_local_scalar_dense", "aten::aminmax", "aten::tolist"}


def host_reads(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sorted({e.name for e in prof.events()} & HOST_READS)


def _attention_inputs(requires_grad=False):
    q, k, v = (torch.randn(2, 4, 33, 16, requires_grad=requires_grad) for _ in range(3))
    return q, k, v


def _softmax_backward(**kw):
    x = torch.randn(2, 3, 17, 33, requires_grad=True)
    y = ma.masked_softmax(x, scale=0.5, **kw)
    g = torch.randn_like(y)
    return lambda: torch.autograd.grad(y, x, g)


def _attention_backward(**kw):
    q, k, v = _attention_inputs(requires_grad=True)
    out = ma.masked_attention(q, k, v, **kw)
    g = torch.randn_like(out)
    return lambda: torch.autograd.grad(out, (q, k, v), g)


LENGTHS = torch.tensor([33, 20])
KEY_MASK = torch.rand(2, 33) > 0.3

WITHOUT_LENGTHS = {
    "causal_mask": lambda: ma.causal_mask(40, 50, window=(3, 0)),
    "attention_mask key_mask": lambda: ma.attention_mask(33, causal=True, key_mask=KEY_MASK),
    "padding_mask_from_ids": lambda: ma.padding_mask_from_ids(torch.randint(0, 3, (2, 33)), 0),
    "random_token_mask": lambda: ma.random_token_mask(torch.randint(0, 9, (2, 33)), 4, 0.2, special_ids=[0]),
    "masked_softmax": lambda: ma.masked_softmax(torch.randn(2, 3, 17, 33), causal=True, key_mask=KEY_MASK),
    "masked_attention": lambda: ma.masked_attention(*_attention_inputs(), causal=True, key_mask=KEY_MASK),
}

WITH_LENGTHS = {
    "attention_mask": lambda: ma.attention_mask(33, causal=True, q_lengths=LENGTHS, k_lengths=LENGTHS),
    "padding_mask with max_len": lambda: ma.padding_mask(LENGTHS, 33),
    "masked_softmax": lambda: ma.masked_softmax(torch.randn(2, 3, 17, 33), k_lengths=LENGTHS),
    "masked_attention": lambda: ma.masked_attention(*_attention_inputs(), q_lengths=LENGTHS, k_lengths=LENGTHS),
}


@pytest.mark.parametrize("name", sorted(WITHOUT_LENGTHS))
def test_ops_without_lengths_read_nothing_back(name):
    assert host_reads(WITHOUT_LENGTHS[name]) == []


def test_backward_without_lengths_reads_nothing_back():
    assert host_reads(_softmax_backward(causal=True, key_mask=KEY_MASK)) == []
    assert host_reads(_attention_backward(causal=True, key_mask=KEY_MASK)) == []


@pytest.mark.parametrize("name", sorted(WITH_LENGTHS))
def test_ops_with_lengths_read_nothing_back(name):
    assert host_reads(WITH_LENGTHS[name]) == []


@pytest.mark.parametrize("op", ["masked_softmax", "masked_attention"])
def test_backward_with_lengths_reads_nothing_back(op):
    backward = _softmax_backward(k_lengths=LENGTHS) if op == "masked_softmax" else _attention_backward(
        q_lengths=LENGTHS, k_lengths=LENGTHS)
    assert host_reads(backward) == []


def test_the_check_sees_a_host_read():
    """The profiler check itself works: an op that reads a value back is caught."""
    assert host_reads(lambda: ma.padding_mask(LENGTHS)) != []  # max_len defaults to lengths.max(): one read
