"""The CPU kernels' row conversions between float32 and float16 / bfloat16 (every output of an op in
a 16-bit dtype goes through them): bit for bit torch's rounding (to nearest even, overflow to inf,
subnormals), on fresh random bit patterns every run and on the edge cases, through both the
vector body and the tail of a row, on the baseline's 8-lane conversions and the AVX-512 ones (with
and without AVX512-BF16); the widening back is exact."""
import pytest
import torch

from maskattn import _C


def edge_cases(dtype):
    """Float32 values at every rounding boundary of dtype, and the special values."""
    info = torch.finfo(dtype)
    values = [0.0, float("inf"), info.max, info.tiny, info.smallest_normal, info.eps,
              2.0 ** -24, 2.0 ** -25, 2.0 ** -14, 65504.0, 65519.99, 65520.0, 65536.0, 1e-45, 1e-40,
              3.3895314e38, 3.4028235e38]
    base = torch.tensor(values, dtype=torch.float32)
    bits = base.view(torch.int32)
    # the neighbours of each value, and the halfway points between the values of dtype nearby
    near = torch.cat([bits + d for d in range(-3, 4)]).view(torch.float32)
    grid = torch.cat([base.to(dtype).to(torch.float32), near])
    up = grid.to(dtype).to(torch.float32)
    halfway = ((grid.double() + up.double()) / 2).float()
    every = torch.cat([grid, halfway, -grid, -halfway])
    nans = torch.tensor([0x7fc00000, 0x7f800001, 0x7fbfffff, 0x7f80ffff, 0xffc00000 - (1 << 32),
                         0xff800001 - (1 << 32), 0x7fffffff], dtype=torch.int64).to(torch.int32).view(torch.float32)
    return torch.cat([every[torch.isfinite(every) | torch.isinf(every)], nans])


def random_bits(n):
    return torch.randint(-2 ** 31, 2 ** 31, (n,), dtype=torch.int64).to(torch.int32).view(torch.float32)


SUPPORTED = _C.build_info()["cpu_isa_supported"]


@pytest.fixture(params=["avx2", "avx512", "avx512bf16"])
def conversion_path(request):
    """The baseline's 8-lane conversions (avx2), the AVX-512 row conversions (avx512), and those
    with bf16 rounded by vcvtneps2bf16 (avx512bf16, amx), subnormal floats by integer steps."""
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU does not support the {request.param} path; it runs on a CPU that has it")
    before = _C.build_info()["cpu_isa"]
    _C._set_cpu_isa(request.param)
    yield request.param
    _C._set_cpu_isa(before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("row", [1, 7, 8, 13, 16, 17, 64])
def test_row_rounding_matches_torch_bit_for_bit(dtype, row, conversion_path):
    x = torch.cat([edge_cases(dtype), random_bits(1 << 16),
                   torch.randn(1 << 14) * torch.logspace(-30, 30, 1 << 14)]).contiguous()
    rounded, widened = _C._round_floats(x.numpy().tobytes(), str(dtype).split(".")[1], row)
    ours = torch.frombuffer(bytearray(rounded), dtype=torch.int16)
    theirs = x.to(dtype).view(torch.int16)
    nan = torch.isnan(x)
    assert nan.sum() > 0 and (~nan).sum() > 1000
    mismatch = (ours != theirs) & ~nan
    assert not mismatch.any(), (
        f"{int(mismatch.sum())} of {x.numel()} differ, e.g. {x[mismatch][:4].tolist()} -> "
        f"{ours[mismatch][:4].tolist()} vs torch {theirs[mismatch][:4].tolist()}")
    assert torch.isnan(ours.view(dtype)[nan]).all(), "a NaN must stay NaN"
    # a NaN's top mantissa bit (quiet) is set, as the hardware's conversions do
    quiet = 0x0200 if dtype == torch.float16 else 0x0040
    assert ((ours[nan].to(torch.int32) & quiet) != 0).all()
    back = torch.frombuffer(bytearray(widened), dtype=torch.float32)
    assert torch.equal(back.view(torch.int32)[~nan], ours.view(dtype).to(torch.float32).view(torch.int32)[~nan])
    assert torch.isnan(back[nan]).all()
