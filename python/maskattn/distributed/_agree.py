"""Agreement across ranks before any transfer; its verdict is the plan of the ring.

Every rank checks its own arguments, then all ranks all-gather one small integer vector of facts
(shapes, dtype, layout, mask options, a checksum of ``k_lengths``/``segments``) and check the
table together: all ranks reach the same verdict, so a disagreement raises the same clear error
on every rank instead of leaving a peer blocked in a transfer of the wrong size. The gather is the
one host sync of a call; it also gives each rank's shard length, so shards of a sequence that
does not divide evenly are placed without the caller passing the global length, and the largest
``k_lengths``, so blocks of keys past every sequence's end are skipped at no further sync.
"""
from __future__ import annotations

import math
import struct
from typing import List, Sequence

import torch
import torch.distributed as dist

from .._args import check_lengths, check_tensor
from ._layout import LAYOUTS, check_layout, rank_pieces, shard_length
from ._plan import Plan

FN = "distributed.context_parallel_attention"
_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# facts every rank must share (by position in the gathered vector, after the rejection flag)
_SHARED = ("batch", "q heads", "kv heads", "head size", "v head size", "dtype", "device type", "layout", "causal",
           "scale", "k_lengths given", "segments length", "k_lengths min", "k_lengths max", "k_lengths checksum",
           "segments checksum", "segments weighted checksum")
_SHARD_LENGTH = 1 + len(_SHARED)


def _check_local(q, k, v, group, layout, k_lengths, segments) -> None:
    """This rank's own arguments (no communication)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name, FN, dims=4)
    check_layout(layout, FN)
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        raise ValueError(f"maskattn.{FN}: q, k, v must share one of float32, float16, bfloat16, "
                         f"float64, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"maskattn.{FN}: q, k, v must be on one device, got {q.device}, {k.device}, "
                         f"{v.device}")
    if not (q.shape[2] == k.shape[2] == v.shape[2]):
        raise ValueError(f"maskattn.{FN}: q, k, v must hold the same positions of the sequence (dim 2), "
                         f"got lengths {q.shape[2]}, {k.shape[2]}, {v.shape[2]}")
    if k.shape[0] != q.shape[0] or v.shape[:2] != k.shape[:2] or k.shape[3] != q.shape[3]:
        raise ValueError(f"maskattn.{FN}: shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v "
                         f"{tuple(v.shape)} do not fit (B, H, L, D), (B, Hkv, L, D), (B, Hkv, L, Dv)")
    if q.shape[1] % max(k.shape[1], 1) or k.shape[1] == 0:
        raise ValueError(f"maskattn.{FN}: q heads ({q.shape[1]}) must be a multiple of k heads "
                         f"({k.shape[1]})")
    backend = dist.get_backend(group)
    if backend in ("nccl", "gloo") and (backend == "nccl") != (q.device.type == "cuda"):
        raise ValueError(f"maskattn.{FN}: {q.device.type} tensors on a {backend} process group; use "
                         f"gloo for CPU tensors and nccl for CUDA tensors")
    check_lengths(k_lengths, "k_lengths", FN, q.shape[0], 0)
    if k_lengths is not None and k_lengths.device != q.device:
        raise ValueError(f"maskattn.{FN}: k_lengths must be on {q.device} like q, got {k_lengths.device}")
    if segments is not None:
        if not isinstance(segments, torch.Tensor):
            raise TypeError(f"maskattn.{FN}: segments must be the (B, L) integer ids of the whole "
                            f"sequence (self-attention), got {type(segments).__name__}")
        if segments.dim() != 2 or segments.shape[0] not in (1, q.shape[0]) or segments.dtype.is_floating_point \
                or segments.dtype == torch.bool or segments.device != q.device:
            raise ValueError(f"maskattn.{FN}: segments must be an integer tensor (B, L) of the whole "
                             f"sequence on {q.device}, got {tuple(segments.shape)} {segments.dtype} on "
                             f"{segments.device}")


def _meta_device(q, group) -> torch.device:
    backend = dist.get_backend(group)
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo" or not isinstance(q, torch.Tensor):
        return torch.device("cpu")
    return q.device


def _facts(q, k, v, layout, causal, k_lengths, segments, scale, device) -> torch.Tensor:
    """The shared facts, then the shard length; the checksums stay on the device (no sync here)."""
    scale_bits = struct.unpack("<q", struct.pack("<d", float(scale)))[0]
    static = [q.shape[0], q.shape[1], k.shape[1], q.shape[3], v.shape[3], _DTYPES.index(q.dtype),
              {"cpu": 0, "cuda": 1}.get(q.device.type, 2), LAYOUTS.index(layout), int(bool(causal)), scale_bits,
              int(k_lengths is not None), -1 if segments is None else segments.shape[1]]
    parts = [torch.tensor(static, dtype=torch.int64, device=device)]
    zeros3 = torch.zeros(3, dtype=torch.int64, device=device)
    if k_lengths is None or k_lengths.numel() == 0:
        parts.append(zeros3)
    else:
        kl = k_lengths.to(device, torch.int64)
        parts.append(torch.stack([kl.min(), kl.max(), kl.sum()]))
    if segments is None or segments.numel() == 0:
        parts.append(zeros3[:2])
    else:
        seg = segments.to(device, torch.int64)
        weights = torch.arange(1, seg.numel() + 1, dtype=torch.int64, device=device).view(seg.shape)
        parts.append(torch.stack([seg.sum(), (seg * weights).sum()]))
    parts.append(torch.tensor([q.shape[2]], dtype=torch.int64, device=device))
    return torch.cat(parts)


def _rows(table: torch.Tensor) -> List[List[int]]:
    return [[int(x) for x in row] for row in table.tolist()]


def agree(q, k, v, group, layout, causal, k_lengths, segments, scale) -> Plan:
    """Checks the call on every rank together and returns the plan; raises on every rank alike."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"maskattn.{FN}: torch.distributed is not initialized; call "
                           "torch.distributed.init_process_group first (or run under torchrun)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    device = _meta_device(q, group)
    error = None
    try:
        _check_local(q, k, v, group, layout, k_lengths, segments)
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        mine = torch.cat([torch.zeros(1, dtype=torch.int64, device=device),
                          _facts(q, k, v, layout, causal, k_lengths, segments, scale, device)])
    except Exception as exc:  # noqa: BLE001  (any local failure must still take part in the gather)
        error = exc
        mine = torch.zeros(1 + _SHARD_LENGTH, dtype=torch.int64, device=device)
        mine[0] = 1
    table = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(table, mine, group=group)
    rows = _rows(torch.stack(table).cpu())
    rejected = [r for r, row in enumerate(rows) if row[0]]
    if error is not None:
        raise error
    if rejected:
        raise RuntimeError(f"maskattn.{FN}: rank(s) {rejected} of the group rejected their arguments "
                           f"(see the error raised there); every rank stops before any transfer")
    _check_table(rows)
    lengths = [row[_SHARD_LENGTH] for row in rows]
    total = sum(lengths)
    expected = [shard_length(total, world, r, layout) for r in range(world)]
    if lengths != expected:
        raise ValueError(f"maskattn.{FN}: shard lengths {lengths} are not the {layout} split of a "
                         f"sequence of {total} (expected {expected}); split with maskattn.distributed.shard")
    _check_global_ranges(rows[0], total)
    k_limit = rows[0][1 + _SHARED.index("k_lengths max")] if k_lengths is not None else None
    return Plan(group, world, rank, bool(causal), float(scale), total,
                [rank_pieces(total, world, r, layout) for r in range(world)],
                (q.shape[0], k.shape[1], q.shape[3], v.shape[3]), k_limit)


def _check_table(rows: Sequence[Sequence[int]]) -> None:
    for i, name in enumerate(_SHARED, start=1):
        values = [row[i] for row in rows]
        if len(set(values)) > 1:
            shown = values if name not in ("scale", "dtype", "layout", "device type") else _decoded(name, values)
            raise ValueError(f"maskattn.{FN}: {name} differs across ranks: {shown} (by rank); every "
                             f"rank must pass its shard of the same attention")


def _decoded(name: str, values: List[int]):
    if name == "scale":
        return [struct.unpack("<d", struct.pack("<q", x))[0] for x in values]
    if name == "dtype":
        return [str(_DTYPES[x]) for x in values]
    if name == "layout":
        return [LAYOUTS[x] for x in values]
    return [{0: "cpu", 1: "cuda"}.get(x, "other") for x in values]


def _check_global_ranges(row: Sequence[int], total: int) -> None:
    seg_len = row[1 + _SHARED.index("segments length")]
    if seg_len not in (-1, total):
        raise ValueError(f"maskattn.{FN}: segments must hold the ids of the whole sequence, shape "
                         f"(B, {total}), got length {seg_len}")
    if row[1 + _SHARED.index("k_lengths given")]:
        lo, hi = row[1 + _SHARED.index("k_lengths min")], row[1 + _SHARED.index("k_lengths max")]
        if lo < 0 or hi > total:
            raise ValueError(f"maskattn.{FN}: k_lengths must lie in [0, {total}] (the whole sequence), "
                             f"got values in [{lo}, {hi}]")
