"""Argument normalisation shared by the public functions and the fake kernels."""
from typing import Optional, Sequence, Tuple

import torch

ALIGNMENTS = ("top_left", "bottom_right")


def check_align(align, fn: str):
    if isinstance(align, int) and not isinstance(align, bool):
        return align
    if align not in ALIGNMENTS:
        raise ValueError(f"maskattn.{fn}: align must be 'top_left', 'bottom_right' or an int offset, got {align!r}")
    return align


def split_align(align, fn: str) -> Tuple[str, int]:
    """align -> (named alignment, integer offset): an int o is top_left shifted by o (p = i + o)."""
    check_align(align, fn)
    if isinstance(align, int):
        if not -(2 ** 62) <= align <= 2 ** 62:
            raise ValueError(f"maskattn.{fn}: align offset must lie in [-2**62, 2**62], got {align}")
        return "top_left", int(align)
    return align, 0


def split_segments(segments, fn: str) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """segments -> (q_segments, k_segments): one (B, L) tensor serves both (self-attention)."""
    if segments is None:
        return None, None
    if isinstance(segments, (tuple, list)) and len(segments) == 2 and all(
            isinstance(s, torch.Tensor) for s in segments):
        q_seg, k_seg = segments
    elif isinstance(segments, torch.Tensor):
        q_seg = k_seg = segments
    else:
        raise TypeError(f"maskattn.{fn}: segments must be an integer tensor (B, L) or a pair "
                        f"(q_segments, k_segments), got {type(segments).__name__}")
    for name, t in (("q_segments", q_seg), ("k_segments", k_seg)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"maskattn.{fn}: {name} must be an integer tensor of document ids, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"maskattn.{fn}: {name} must have shape (B, L), got {tuple(t.shape)}")
    return q_seg, k_seg


def split_window(window: Optional[Sequence[Optional[int]]], fn: str) -> Tuple[Optional[int], Optional[int]]:
    """window=(left, right) -> (left, right); None on a side (or window=None) is unbounded."""
    if window is None:
        return None, None
    if isinstance(window, int) or len(window) != 2:
        raise ValueError(f"maskattn.{fn}: window must be a pair (left, right) of ints or None, got {window!r}")
    left, right = window
    for name, side in (("left", left), ("right", right)):
        if side is not None and (not isinstance(side, int) or side < 0):
            raise ValueError(f"maskattn.{fn}: window {name} must be a non-negative int or None, got {side!r}")
    return left, right


def check_tensor(t, name: str, fn: str, dims: Optional[int] = None) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"maskattn.{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if dims is not None and t.dim() != dims:
        raise ValueError(f"maskattn.{fn}: {name} must have {dims} dims, got shape {tuple(t.shape)}")


def check_lengths(t, name: str, fn: str, batch: int, limit: int) -> None:
    """Shape and dtype checks that need no device sync (the kernels check the value range)."""
    if t is None:
        return
    check_tensor(t, name, fn, dims=1)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"maskattn.{fn}: {name} must be an integer tensor (int32 or int64), got {t.dtype}")
    if t.shape[0] != batch:
        raise ValueError(f"maskattn.{fn}: {name} must have shape ({batch},), got {tuple(t.shape)}")
