"""setup.py's choice of GPU architectures: kept when given, the visible GPUs' otherwise, and a
default on a CUDA build host that has no GPU (where torch's own detection raises)."""
import os
import runpy

import pytest
import torch

SETUP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


@pytest.fixture
def cuda_arch_list(monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    return runpy.run_path(SETUP, run_name="setup_functions")["cuda_arch_list"]  # defines, builds nothing


def test_given_list_is_kept(monkeypatch, cuda_arch_list):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "7.5+PTX")
    assert cuda_arch_list() == ("7.5+PTX", "TORCH_CUDA_ARCH_LIST")


def test_no_visible_gpu_gets_the_default(monkeypatch, cuda_arch_list):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cuda_arch_list() == ("8.0;9.0+PTX", "no visible GPU, default")


def test_visible_gpus_newest_with_ptx(monkeypatch, cuda_arch_list):
    caps = [(9, 0), (8, 6), (10, 0), (9, 0)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(caps))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: caps[i])
    assert cuda_arch_list() == ("8.6;9.0;10.0+PTX", "the visible GPUs")
