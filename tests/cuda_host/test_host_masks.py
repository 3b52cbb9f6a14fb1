"""CUDA mask-construction kernels executed on the host: the materialised MaskSpec predicate in
every output form (vector stores and element tails), padding masks from ids, and the MLM token
selection, which must draw exactly what the CPU kernel draws from the same seed."""
import pytest
import torch

import maskattn as ma
from maskattn.reference import reference_attention_mask, to_mask_dtype

from .host_helpers import RunCudaKernelsOnHost, guarded, launched

MASK_DTYPES = [torch.bool, torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", MASK_DTYPES)
@pytest.mark.parametrize("lq,lk", [(13, 17), (9, 32), (1, 1)])
@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_attention_mask(on_host, dtype, lq, lk, align):
    b = 5
    for causal, window in [(False, None), (True, None), (True, (4, None)), (False, (2, 2))]:
        for key_mask in (None, torch.rand(b, lk) > 0.3):
            q_lengths = torch.randint(0, lq + 1, (b,))
            k_lengths = torch.randint(0, lk + 1, (b,))
            kw = dict(causal=causal, align=align, window=window, q_lengths=q_lengths, k_lengths=k_lengths,
                      key_mask=key_mask)
            got = ma.attention_mask(lq, lk, dtype=dtype, masked_value=-1e4, **kw)
            want = reference_attention_mask(lq, lk, dtype=dtype, masked_value=-1e4, **kw)
            assert got.dtype == dtype and torch.equal(got, want), f"{kw}"
    assert launched(on_host)[0].startswith("build_mask_kernel")


@pytest.mark.parametrize("dtype", MASK_DTYPES)
@pytest.mark.parametrize("offset", [0, 1])
def test_padding_mask_from_ids(on_host, dtype, offset):
    for shape in [(3, 37), (4, 16), (1, 1)]:
        ids = guarded(torch.randint(0, 6, (shape[0] * shape[1] + offset,)))[offset:].view(shape)
        got = ma.padding_mask_from_ids(ids, 3, dtype=dtype, masked_value=-1e9)
        assert torch.equal(got, to_mask_dtype(ids != 3, dtype, -1e9))
    assert launched(on_host)[0].startswith("padding_mask_from_ids_kernel")


@pytest.mark.parametrize("p", [0.0, 0.15, 1.0])
def test_random_token_mask_draws_as_the_cpu_kernel(host, p):
    ids = torch.randint(0, 50, (7, 301))
    seed = int(torch.randint(0, 2 ** 31, ()))
    torch.manual_seed(seed)
    with RunCudaKernelsOnHost():
        masked, selected = ma.random_token_mask(ids, 103, p, special_ids=[0, 1, 2])
    assert launched(host) == ["random_token_mask_kernel"]
    torch.manual_seed(seed)
    cpu_masked, cpu_selected = ma.random_token_mask(ids, 103, p, special_ids=[0, 1, 2])
    assert torch.equal(selected, cpu_selected) and torch.equal(masked, cpu_masked)
