"""maskattn: masked attention for PyTorch.

Mask construction, a fused masked softmax and fused masked attention with hand-written CPU
and CUDA kernels. Boolean masks: True = may attend. Causal alignment is always named.
"""
import torch

from . import _C, nn
from .attention import masked_attention
from .masks import attention_mask, causal_mask, padding_mask, padding_mask_from_ids, random_token_mask
from .segments import segments_from_lengths, segments_from_position_ids
from .softmax import masked_softmax

__version__ = _C.build_info()["version"]


def build_info() -> dict:
    """Version, torch version, compiled backends (cpu, cuda) and CUDA architectures."""
    info = dict(_C.build_info())
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    return info


__all__ = [
    "attention_mask", "build_info", "causal_mask", "masked_attention", "masked_softmax", "padding_mask",
    "nn", "padding_mask_from_ids", "random_token_mask", "segments_from_lengths", "segments_from_position_ids",
]
