"""Which devices a command runs on, and what to call them in a report."""
import platform
from typing import List

import torch

DEVICE_CHOICES = ("cpu", "cuda", "all")


def resolve_devices(choice: str) -> List[torch.device]:
    """'all' (the default) is every available device; asking for CUDA without one gives no device."""
    has_cuda = torch.cuda.is_available()
    if choice == "cpu":
        return [torch.device("cpu")]
    if choice == "cuda":
        return [torch.device("cuda")] if has_cuda else []
    return [torch.device("cpu")] + ([torch.device("cuda")] if has_cuda else [])


def cpu_name() -> str:
    """The model name, with the family and model numbers: a virtual machine may report only
    "AMD EPYC", which does not tell one generation (and its vector units) from another."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip() and fields:  # the first processor's block is enough
                    break
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
    return fields["model name"]


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def torch_cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:
        return "unknown"


def run_metadata(device: torch.device, allocator: str) -> dict:
    """What every row and report records about where it ran: the CPU model, torch's thread count,
    the CPU path maskattn selected (cpu_isa.h) and the allocator setting of the run."""
    import maskattn

    info = maskattn.build_info()
    return {"cpu": cpu_name(), "threads": torch.get_num_threads(), "cpu_isa": info.get("cpu_isa"),
            "torch_cpu_capability": torch_cpu_capability(), "allocator": allocator}


def row_path(row: dict, cpu_kernels: dict) -> str:
    """The instructions a row's method ran: maskattn's kernel for its op and dtype, or torch's CPU
    capability for a baseline (CUDA rows: empty)."""
    if row.get("device") != "cpu":
        return ""
    # maskattn methods beside the one the ratios are taken against ("batched causal", "no dropout")
    # ran maskattn's kernels too
    if not (row.get("ours") or str(row.get("method", "")).startswith("maskattn")):
        return f"torch {row.get('torch_cpu_capability', '')}".strip()
    if row.get("family") == "decode":
        return cpu_kernels.get("attention decoding", "")
    if row.get("family") in ("attention", "packed", "models"):
        products = cpu_kernels.get(f"attention {row.get('dtype')} products", "")
        softmax = cpu_kernels.get("attention softmax tiles")
        return f"{products}; softmax tiles {softmax}" if softmax else products
    return cpu_kernels.get("masked_softmax, masking, conversions", "")


def annotate_rows(rows: list, device: torch.device, allocator: str) -> None:
    """Adds run_metadata and the path to every row of a device (in place)."""
    import maskattn

    meta = run_metadata(device, allocator)
    kernels = maskattn.build_info().get("cpu_kernels", {})
    for r in rows:
        r.update(meta)
        r["path"] = row_path(r, kernels)
