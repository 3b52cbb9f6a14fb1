"""Where each rank's shard lies in the global sequence, and shard/unshard of a full tensor.

``contiguous`` splits the sequence in ``world`` pieces, rank ``r`` holding piece ``r``;
``zigzag`` splits it in ``2 * world`` chunks, rank ``r`` holding chunks ``r`` and
``2 * world - 1 - r`` (in that order), so that under a causal mask every rank has the same work.
Pieces follow ``torch.tensor_split``: the first ``L % n`` of ``n`` pieces are one longer.

world 2, L 8::

    contiguous   rank 0: 0 1 2 3          rank 1: 4 5 6 7
    zigzag       rank 0: 0 1 | 6 7        rank 1: 2 3 | 4 5
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

LAYOUTS = ("zigzag", "contiguous")

Piece = Tuple[int, int]  # (global start, length) of a contiguous run of positions


def check_layout(layout, fn: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"maskattn.{fn}: layout must be 'zigzag' or 'contiguous', got {layout!r}")
    return layout


def _split(length: int, parts: int) -> List[Piece]:
    base, extra = divmod(length, parts)
    pieces, start = [], 0
    for i in range(parts):
        n = base + (1 if i < extra else 0)
        pieces.append((start, n))
        start += n
    return pieces


def rank_pieces(length: int, world: int, rank: int, layout: str) -> List[Piece]:
    """The runs of global positions rank ``rank`` holds, in the order of its shard."""
    if layout == "contiguous":
        return [_split(length, world)[rank]]
    chunks = _split(length, 2 * world)
    return [chunks[rank], chunks[2 * world - 1 - rank]]


def shard_length(length: int, world: int, rank: int, layout: str) -> int:
    return sum(n for _, n in rank_pieces(length, world, rank, layout))


def _world_and_rank(group) -> Tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("maskattn.distributed: torch.distributed is not initialized; call "
                           "torch.distributed.init_process_group first (or run under torchrun)")
    return dist.get_world_size(group), dist.get_rank(group)


def shard(x: torch.Tensor, group: Optional[dist.ProcessGroup] = None, layout: str = "zigzag", *,
          dim: int = 2) -> torch.Tensor:
    """This rank's shard of the full tensor ``x`` along ``dim`` (the sequence, dim 2 of
    ``(B, H, L, D)``; ``dim=1`` for ``(B, L)`` ids). Every rank passes the same ``x``; differentiable."""
    check_layout(layout, "distributed.shard")
    world, rank = _world_and_rank(group)
    pieces = rank_pieces(x.shape[dim], world, rank, layout)
    return torch.cat([x.narrow(dim, start, n) for start, n in pieces], dim=dim)


def unshard(x: torch.Tensor, group: Optional[dist.ProcessGroup] = None, layout: str = "zigzag", *,
            dim: int = 2) -> torch.Tensor:
    """The full tensor from every rank's shard along ``dim`` (an all-gather; every rank gets it).
    Shards may differ in length by the layout's rule. Not differentiable."""
    check_layout(layout, "distributed.unshard")
    world, rank = _world_and_rank(group)
    x = x.contiguous()
    mine = torch.tensor([x.shape[dim]], dtype=torch.int64, device=x.device)
    lengths = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(lengths, mine, group=group)
    lengths = [int(n) for n in torch.cat(lengths).tolist()]
    total = sum(lengths)
    expected = [shard_length(total, world, r, layout) for r in range(world)]
    if lengths != expected:
        raise ValueError(f"maskattn.distributed.unshard: shard lengths {lengths} along dim {dim} are not the "
                         f"{layout} split of {total} positions (expected {expected})")
    # all_gather needs equal sizes: pad every shard to the longest
    longest = max(lengths)
    pad_shape = list(x.shape)
    pad_shape[dim] = longest - x.shape[dim]
    padded = torch.cat([x, x.new_zeros(pad_shape)], dim=dim)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    full_shape = list(x.shape)
    full_shape[dim] = total
    full = x.new_empty(full_shape)
    for r, part in enumerate(gathered):
        offset = 0
        for start, n in rank_pieces(total, world, r, layout):
            full.narrow(dim, start, n).copy_(part.narrow(dim, offset, n))
            offset += n
    return full
