"""Device parametrisation: every test runs on CPU, and on CUDA where a GPU is present."""
import pytest
import torch

CUDA = pytest.param("cuda", marks=[pytest.mark.cuda,
                                   pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")])
DEVICES = ["cpu", CUDA]


def dtypes_for(device):
    base = [torch.float32, torch.float16, torch.bfloat16]
    return base + [torch.float64] if device == "cpu" else base


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
