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
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
