"""The plan of one call's ring: where every rank's shard lies, and the blocks each step computes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch.distributed as dist

from ._block import BlockMask, block_is_empty, block_mask
from ._layout import Piece


@dataclass(frozen=True)
class Block:
    q_rows: slice  # rows of the query shard
    k_rows: slice  # rows of the key shard
    mask: BlockMask


@dataclass
class Plan:
    group: Optional[dist.ProcessGroup]
    world: int
    rank: int
    causal: bool
    scale: float
    length: int  # global sequence length
    pieces: List[List[Piece]]  # per rank, the runs of global positions of its shard
    kv_shape: Tuple[int, int, int, int]  # (B, Hkv, D, Dv)
    k_limit: Optional[int]  # the largest k_lengths: keys from there on are masked in every sequence

    def shard_length(self, rank: int) -> int:
        return sum(n for _, n in self.pieces[rank % self.world])

    def kv_numel(self, rank: int) -> int:
        b, hkv, d, dv = self.kv_shape
        return b * hkv * self.shard_length(rank) * (d + dv)

    def blocks(self, q_rank: int, k_rank: int, k_lengths, segments) -> List[Block]:
        """The blocks of (this rank's queries) x (k_rank's keys) that are not wholly masked."""
        out = []
        q_off = 0
        for qp in self.pieces[q_rank]:
            k_off = 0
            for kp in self.pieces[k_rank]:
                if not block_is_empty(qp, kp, self.causal, self.k_limit):
                    out.append(Block(slice(q_off, q_off + qp[1]), slice(k_off, k_off + kp[1]),
                                     block_mask(qp, kp, self.causal, k_lengths, segments)))
                k_off += kp[1]
            q_off += qp[1]
        return out
