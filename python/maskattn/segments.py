"""Packed sequences: document ids (``segments=``) from document lengths or from position ids.

Several documents packed into one row of length ``L``::

    lengths [3, 2], total 6       ->  segments  0 0 0 1 1 -1
    position_ids 0 1 2 0 1 0      ->  segments  0 0 0 1 1 2

A negative id marks padding: it attends nothing and is never attended.
"""
from typing import Optional

import torch

from ._args import check_tensor


def segments_from_lengths(lengths, total: Optional[int] = None) -> torch.Tensor:
    """Document ids ``(B, total)`` int64 from document lengths.

    ``lengths`` is ``(n_docs,)`` for one packed row or ``(B, n_docs)`` (zeros for unused slots).
    Row ``b`` holds document ``d`` at positions ``sum(lengths[b, :d]) .. + lengths[b, d]``; the rest
    of the row is padding (id -1). ``total`` defaults to the longest row (one device sync);
    rows longer than ``total`` are an error.
    """
    fn = "segments_from_lengths"
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    check_tensor(lengths, "lengths", fn)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"maskattn.{fn}: lengths must be an integer tensor, got {lengths.dtype}")
    if lengths.dim() not in (1, 2):
        raise ValueError(f"maskattn.{fn}: lengths must have shape (n_docs,) or (B, n_docs), got "
                         f"{tuple(lengths.shape)}")
    rows = lengths.view(1, -1) if lengths.dim() == 1 else lengths
    rows = rows.to(torch.int64)
    if rows.numel() and bool((rows < 0).any()):
        raise ValueError(f"maskattn.{fn}: lengths must be >= 0")
    row_totals = rows.sum(dim=1)
    longest = int(row_totals.max()) if rows.numel() else 0
    if total is None:
        total = longest
    elif longest > total:
        raise ValueError(f"maskattn.{fn}: documents of a row add up to {longest}, more than total={total}")
    ends = rows.cumsum(dim=1)  # (B, n_docs): position where each document ends
    pos = torch.arange(total, device=rows.device).view(1, total)
    # a position's document is the number of documents that end at or before it
    ids = torch.searchsorted(ends, pos.expand(rows.shape[0], total).contiguous(), right=True)
    return torch.where(pos < row_totals.view(-1, 1), ids, torch.full_like(ids, -1))


def segments_from_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Document ids ``(B, L)`` int64 from position ids that restart at 0 for each document (the
    Hugging Face packing convention); the first position of a row always starts a document.
    No device sync."""
    fn = "segments_from_position_ids"
    check_tensor(position_ids, "position_ids", fn)
    if position_ids.dim() == 1:
        position_ids = position_ids.view(1, -1)
    if position_ids.dim() != 2:
        raise ValueError(f"maskattn.{fn}: position_ids must have shape (B, L), got {tuple(position_ids.shape)}")
    if position_ids.dtype.is_floating_point or position_ids.dtype.is_complex or position_ids.dtype == torch.bool:
        raise ValueError(f"maskattn.{fn}: position_ids must be an integer tensor, got {position_ids.dtype}")
    starts = position_ids == 0
    starts[:, :1] = True
    return starts.to(torch.int64).cumsum(dim=1) - 1
