"""The ring: each rank sends a flat buffer to the next rank and receives one from the previous,
with ``torch.distributed.batch_isend_irecv``, so the transfer runs while the caller computes."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist

from . import _stats


class Transfer:
    """One exchange in flight; ``wait()`` returns the received buffer."""

    def __init__(self, works: List, received: torch.Tensor, label: str):
        self._works, self._received, self._label = works, received, label

    def wait(self) -> torch.Tensor:
        with _stats.timed(f"wait_{self._label}"):
            for work in self._works:
                work.wait()
        return self._received


class Ring:
    def __init__(self, group: Optional[dist.ProcessGroup], world: int, rank: int):
        self.group, self.world, self.rank = group, world, rank
        # global ranks of the neighbours: P2POp takes global ranks even with a subgroup
        self.next = self._global((rank + 1) % world)
        self.prev = self._global((rank - 1) % world)

    def _global(self, group_rank: int) -> int:
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    def pass_on(self, send: torch.Tensor, recv_numel: int, tag: int, label: str) -> Transfer:
        """Sends ``send`` to the next rank, receives ``recv_numel`` elements (same dtype) from the
        previous one. Both ends know the sizes, so an empty buffer is simply not sent. ``label``
        names the transfer in the bench's counters."""
        if self.world == 1:
            return Transfer([], send, label)
        received = torch.empty(recv_numel, dtype=send.dtype, device=send.device)
        ops = []
        if send.numel():
            ops.append(dist.P2POp(dist.isend, send, self.next, self.group, tag))
        if recv_numel:
            ops.append(dist.P2POp(dist.irecv, received, self.prev, self.group, tag))
        works = dist.batch_isend_irecv(ops) if ops else []
        _stats.add(f"bytes_{label}", send.numel() * send.element_size())
        return Transfer(works, received, label)
