"""The launch side of the CUDA kernels, executed on the host: which path a device and a build pick,
the shared-memory opt-in, the path query, and the argument checks and edge cases of the backward."""
import pytest
import torch

import maskattn as ma

from .host_helpers import launched


def qkv(b, h, hkv, lq, lk, d, dv, dtype=torch.float32):
    return (torch.randn(b, h, lq, d).to(dtype), torch.randn(b, hkv, lk, d).to(dtype),
            torch.randn(b, hkv, lk, dv).to(dtype))


def test_shared_memory_opt_in_only_grows(on_host):
    """A kernel's opt-in belongs to the kernel on a device, shared by every host thread: a smaller
    head size later must not lower it (a concurrent launch of the larger one would then fail)."""
    kernel = "maskattn::attn::attention_fwd_simt_kernel<float>"
    for d, expect in ((256, 136192), (128, 136192), (96, 136192)):
        ma.masked_attention(*qkv(1, 1, 1, 40, 40, d, d), causal=True)
        assert on_host.opted_in_smem(kernel) == expect, d


@pytest.mark.parametrize("dtype,d,dv", [("float16", 64, 64), ("bfloat16", 256, 136), ("float16", 36, 64),
                                        ("bfloat16", 264, 64), ("float32", 64, 64), ("float16", 128, 20)])
@pytest.mark.parametrize("device", [(9, 90), (8, 80), (9, 75), (7, 75)])
def test_path_query_names_the_kernels_that_run(on_host, dtype, d, dv, device):
    major, arch = device
    on_host.set_device(major, 0, 232448 if major >= 8 else 65536, arch)
    path = on_host.attention_path(dtype, d, dv)
    ma.masked_attention(*qkv(1, 2, 1, 20, 30, d, dv, getattr(torch, dtype)))
    ran_tc = any("_tc_kernel" in n for n in launched(on_host))
    assert path == ("tensor_cores" if ran_tc else "simt")
    assert ran_tc == (dtype != "float32" and d % 8 == 0 and dv % 8 == 0 and max(d, dv) <= 256 and arch >= 80)


def test_path_query_without_cuda_says_so():
    if ma.build_info()["backends"] == ["cpu"]:
        with pytest.raises(RuntimeError, match="CUDA"):
            ma._C.cuda_attention_path("float16", 64, 64)
    else:
        assert ma._C.cuda_attention_path("float32", 64, 64) == "simt"


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_no_query_heads_gives_zero_kv_gradients(on_host, dtype):
    q, k, v = qkv(2, 0, 1, 5, 7, 16, 8, dtype)
    out = torch.empty(2, 0, 5, 8, dtype=dtype)
    lse = torch.empty(2, 0, 5)
    dq, dk, dv, _ = torch.ops.maskattn.masked_attention_backward(out, None, None, q, k, v, out, lse, None, False,
                                                              "top_left", 0, None, None, None, None, None, None, None, 1.0)
    assert dq.shape == q.shape and (dk == 0).all() and (dv == 0).all()


@pytest.mark.parametrize("arg", ["dout", "out", "lse", "dlse", "dweights"])
def test_backward_checks_device_and_dtype_of_every_input(host, arg):
    """Direct callers of the backward get a named error, not a CPU pointer in a CUDA kernel (here:
    a meta tensor among CPU ones, through the host execution's twin of the op)."""
    q, k, v = qkv(2, 2, 1, 5, 7, 16, 8)
    args = {"dout": torch.randn(2, 2, 5, 8), "out": torch.randn(2, 2, 5, 8), "lse": torch.randn(2, 2, 5),
            "dlse": torch.randn(2, 2, 5), "dweights": torch.randn(2, 2, 5, 7)}
    call = lambda a: host.masked_attention_backward(a["dout"], a["dlse"], a["dweights"], q, k, v, a["out"], a["lse"],
                                                    None, False, "top_left", 0, None, None, None, None, None, None, None, 1.0,
                                                    None, 0.0, None, False)
    call(args)
    with pytest.raises(RuntimeError, match=f"{arg} must be on cpu"):
        call({**args, arg: args[arg].to("meta")})
    wrong = args[arg].to(torch.int32) if arg != "lse" else args[arg].double()
    with pytest.raises(RuntimeError, match=arg):
        call({**args, arg: wrong})
