"""Fixtures of the host execution: the compiled ops (``host``), and ``on_host``, under which every
``torch.ops.maskattn`` op (so the public API, autograd included) runs the CUDA kernels on CPU
tensors."""
import pytest

import maskattn  # noqa: F401  (registers torch.ops.maskattn, whose calls are redirected)

from . import host_build
from .host_helpers import RunCudaKernelsOnHost


@pytest.fixture(scope="session")
def host():
    return host_build.load()


@pytest.fixture
def on_host(host):
    """The modelled device is reset (an H100) and the launch log emptied for each test."""
    host.set_device(9, 0, 232448, 90)
    host.take_launch_log()
    with RunCudaKernelsOnHost():
        yield host
