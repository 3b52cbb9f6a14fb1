"""Launch-side behaviour only a GPU shows (skipped without one; tests/cuda_host checks the rest on
the host): lengths are validated without a host synchronisation, so CUDA graphs can capture the
ops, and a device named by type alone ("cuda") is the current device."""
import subprocess
import sys

import pytest
import torch

import maskattn as ma

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def qkv(dtype=torch.float16):
    return [torch.randn(2, 2, 64, 64, device="cuda", dtype=dtype) for _ in range(3)]


def test_lengths_cost_no_synchronisation():
    q, k, v = qkv()
    lengths = torch.tensor([64, 30], device="cuda", dtype=torch.int32)
    torch.cuda.set_sync_debug_mode("error")  # any device-to-host synchronisation raises
    try:
        ma.masked_attention(q, k, v, causal=True, q_lengths=lengths, k_lengths=lengths)
        ma.masked_softmax(q @ k.transpose(-1, -2), k_lengths=lengths)
        ma.attention_mask(64, causal=True, k_lengths=lengths, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_lengths_under_cuda_graph_capture():
    q, k, v = qkv()
    lengths = torch.tensor([64, 30], device="cuda")
    expect = ma.masked_attention(q, k, v, causal=True, k_lengths=lengths)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = ma.masked_attention(q, k, v, causal=True, k_lengths=lengths)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expect)


def test_out_of_range_lengths_fail_at_the_next_synchronisation():
    # a device-side assert ends the CUDA context: in a process of its own
    code = ("import torch, maskattn as ma\n"
            "q = torch.randn(2, 2, 8, 16, device='cuda')\n"
            "ma.masked_attention(q, q, q, k_lengths=torch.tensor([8, 9], device='cuda'))\n"
            "torch.cuda.synchronize()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "assert" in (run.stdout + run.stderr).lower()


def test_device_by_type_alone_is_the_current_device():
    lengths = torch.tensor([5, 3], device=torch.device("cuda", torch.cuda.current_device()))
    got = ma.attention_mask(6, causal=True, k_lengths=lengths, device="cuda")
    assert torch.equal(got.cpu(), ma.attention_mask(6, causal=True, k_lengths=lengths.cpu()))
