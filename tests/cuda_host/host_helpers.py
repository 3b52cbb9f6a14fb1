"""What the host-execution tests share: the dispatch mode that sends torch.ops.maskattn calls to
the host execution, NaN-guarded inputs, and the launch log."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode


class RunCudaKernelsOnHost(TorchDispatchMode):
    """Sends each torch.ops.maskattn call to its twin in torch.ops.maskattn_cuda_host. Memory the
    op allocates and the kernels must write starts as NaN."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        namespace, _, name = func._schema.name.partition("::")
        if namespace != "maskattn":
            return func(*args, **(kwargs or {}))
        deterministic = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)  # at::empty fills with NaN: unwritten outputs show
        try:
            return getattr(torch.ops.maskattn_cuda_host, name)(*with_defaults(func, args, kwargs))
        finally:
            torch.use_deterministic_algorithms(deterministic)


def with_defaults(func, args, kwargs):
    """Every argument in schema order: the dispatcher drops trailing ones left at their default,
    and the host twins' schemas (inferred from the C++ functions) have no defaults."""
    kwargs = dict(kwargs or {})
    full = list(args)
    for arg in func._schema.arguments[len(args):]:
        full.append(kwargs.pop(arg.name) if arg.name in kwargs else arg.default_value)
    return full


def launched(host):
    """Kernels launched since the last call, without namespaces: ["attention_fwd_tc_kernel<__half, 64>", ...]."""
    return [line.split("::")[-1] for line in host.take_launch_log().splitlines() if line]


def guarded(t: torch.Tensor, pad: int = 256) -> torch.Tensor:
    """A contiguous copy of t inside a buffer whose other elements are NaN (True for bool, -1 for
    integers): a kernel reading past t's end or before its start brings NaN into its results.
    `pad` elements keep the copy's start 16-byte aligned for every element size."""
    fill = float("nan") if t.dtype.is_floating_point else (True if t.dtype == torch.bool else -1)
    buf = torch.full((t.numel() + 2 * pad,), fill, dtype=t.dtype)
    view = buf[pad:pad + t.numel()].view(t.shape)
    view.copy_(t)
    return view
