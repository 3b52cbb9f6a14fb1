"""Argument normalisation shared by the public functions and the fake kernels."""
import math
import operator
from typing import Optional, Sequence, Tuple

import torch

ALIGNMENTS = ("top_left", "bottom_right")
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


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
        if side is not None and (not isinstance(side, int) or not 0 <= side <= INT64_MAX):
            raise ValueError(f"maskattn.{fn}: window {name} must be a non-negative int (at most 2**63 - 1) "
                             f"or None, got {side!r}")
    return left, right


def check_int(value, name: str, fn: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """An integer argument (int, numpy or 0-d tensor integer) in [low, high]: int64 by default, as
    the kernels take it."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"maskattn.{fn}: {name} must be an int, got {type(value).__name__}") from None
    if not low <= value <= high:
        raise ValueError(f"maskattn.{fn}: {name} must lie in [{low}, {high}], got {value}")
    return value


def check_scale(scale, fn: str) -> float:
    """A finite float scale: NaN or inf would turn every probability into NaN or 0/0."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"maskattn.{fn}: scale must be a float, got {type(scale).__name__}") from None
    if not math.isfinite(value):
        raise ValueError(f"maskattn.{fn}: scale must be finite, got {value}")
    return value


def as_tensor(t, name: str, fn: str, device) -> Optional[torch.Tensor]:
    """Lengths or key_mask given as a list (or tuple) become a tensor on `device`, as torch does."""
    if t is None or isinstance(t, torch.Tensor):
        return t
    if not isinstance(t, (list, tuple)):
        raise TypeError(f"maskattn.{fn}: {name} must be a torch.Tensor or a list, got {type(t).__name__}")
    try:
        out = torch.as_tensor(t, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"maskattn.{fn}: {name} could not be made a tensor: {exc}") from None
    return out.long() if out.numel() == 0 and out.dtype.is_floating_point else out  # [] -> no lengths


def check_key_mask(key_mask, fn: str, k_len: int) -> None:
    """key_mask is (B, k_len); said before the batch size is taken from it."""
    if key_mask is not None and key_mask.dim() != 2:
        raise ValueError(f"maskattn.{fn}: key_mask must have shape (B, {k_len}) (True = may attend), "
                         f"got {tuple(key_mask.shape)}")


def check_dropout(dropout_p, generator, fn: str) -> None:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"maskattn.{fn}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"maskattn.{fn}: generator must be a torch.Generator or None, got {type(generator).__name__}")


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
