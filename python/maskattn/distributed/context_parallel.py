"""Ring attention over a torch.distributed process group: each rank keeps its queries, the key/value
shards go round the ring, and each rank merges its blocks' partial results through their lse.

Forward, on rank ``r`` at step ``s`` (``s = 0 .. world-1``): the key/value shard of rank
``r - s`` is in hand; its transfer to rank ``r + 1`` is posted first and runs while this rank
computes the blocks (its queries x those keys) that are not wholly masked, each one kernel call
with the block's integer alignment. Backward runs the same ring: dq stays home, and the dk/dv of
each shard travel one step behind its k/v (fp32 accumulators), arriving home after the last step.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

from . import _stats
from ._agree import agree
from ._block import block_backward, block_forward
from ._plan import Block, Plan
from ._ring import Ring

_KV_TAG, _GRAD_TAG = 0, 1


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pack(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """k and v of a shard in one flat buffer: one message per step."""
    return torch.cat([k.reshape(-1), v.reshape(-1)])


def _unpack(buf: torch.Tensor, plan: Plan, rank: int) -> Tuple[torch.Tensor, torch.Tensor]:
    b, hkv, d, dv = plan.kv_shape
    n = plan.shard_length(rank)
    split = b * hkv * n * d
    return buf[:split].view(b, hkv, n, d), buf[split:].view(b, hkv, n, dv)


def _merge(out: torch.Tensor, lse: torch.Tensor, o: torch.Tensor, l: torch.Tensor) -> None:
    """(out, lse) <- the softmax-weighted union of (out, lse) and (o, l), in place; rows with
    lse -inf on both sides stay 0 / -inf (no NaN from -inf - -inf)."""
    new = torch.logaddexp(lse, l)
    ref = torch.where(torch.isfinite(new), new, 0.0)
    out.mul_(torch.exp(lse - ref).unsqueeze(-1)).add_(o * torch.exp(l - ref).unsqueeze(-1))
    lse.copy_(new)


def _forward_blocks(q, k_src, v_src, blocks: List[Block], scale: float, out, lse, touched: set) -> None:
    """Computes this step's blocks and merges them into (out, lse)."""
    for blk in blocks:
        o, l = block_forward(q[:, :, blk.q_rows], k_src[:, :, blk.k_rows], v_src[:, :, blk.k_rows], blk.mask, scale)
        if blk.q_rows.start in touched:
            _merge(out[:, :, blk.q_rows], lse[:, :, blk.q_rows], o, l)
        else:  # the first block of these rows: a copy, no merge
            out[:, :, blk.q_rows] = o
            lse[:, :, blk.q_rows] = l
            touched.add(blk.q_rows.start)


def _backward_blocks(saved, dout, dlse, k_src, v_src, blocks: List[Block], scale: float, dq, dk_src, dv_src) -> None:
    """Adds this step's blocks' gradients into dq (home) and dk/dv of the shard in hand."""
    q, out, lse = saved
    for blk in blocks:
        rows, keys = blk.q_rows, blk.k_rows
        dq_b, dk_b, dv_b = block_backward(dout[:, :, rows], None if dlse is None else dlse[:, :, rows], q[:, :, rows],
                                          k_src[:, :, keys], v_src[:, :, keys], out[:, :, rows], lse[:, :, rows],
                                          blk.mask, scale)
        dq[:, :, rows] += dq_b
        dk_src[:, :, keys] += dk_b
        dv_src[:, :, keys] += dv_b


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: Plan, blocks: List[List[Block]]):
        acc = _accumulator_dtype(q.dtype)
        b, h, n, _ = q.shape
        out = torch.zeros(b, h, n, plan.kv_shape[3], dtype=acc, device=q.device)
        lse = torch.full((b, h, n), float("-inf"), dtype=acc, device=q.device)
        touched = set()
        ring = Ring(plan.group, plan.world, plan.rank)
        kv = _pack(k, v)
        for step in range(plan.world):
            src = (plan.rank - step) % plan.world
            # posted first: the next shard travels while this one is computed on
            transfer = ring.pass_on(kv, plan.kv_numel(src - 1), _KV_TAG, "kv") if step < plan.world - 1 else None
            with _stats.timed("compute"):
                _forward_blocks(q, *_unpack(kv, plan, src), blocks[src], plan.scale, out, lse, touched)
            if transfer is not None:
                kv = transfer.wait()
        out = out.to(q.dtype)
        ctx.plan, ctx.blocks = plan, blocks
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.set_materialize_grads(False)
        return out, lse.to(torch.float32)

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        plan, blocks = ctx.plan, ctx.blocks
        acc = _accumulator_dtype(q.dtype)
        dout = torch.zeros_like(out) if dout is None else dout.to(q.dtype)
        dq = torch.zeros(q.shape, dtype=acc, device=q.device)
        ring = Ring(plan.group, plan.world, plan.rank)
        kv = _pack(k, v)
        grads_in = None
        for step in range(plan.world):
            src = (plan.rank - step) % plan.world
            transfer = ring.pass_on(kv, plan.kv_numel(src - 1), _KV_TAG, "kv") if step < plan.world - 1 else None
            grads = torch.zeros(plan.kv_numel(src), dtype=acc, device=q.device)
            with _stats.timed("compute"):
                _backward_blocks((q, out, lse), dout, dlse, *_unpack(kv, plan, src), blocks[src], plan.scale, dq,
                                 *_unpack(grads, plan, src))
            if grads_in is not None:
                grads += grads_in.wait()
            # to the next rank, which adds its blocks next step; after the last step every
            # shard's gradient has met every rank's queries and arrives at its owner
            grads_in = ring.pass_on(grads, plan.kv_numel(src - 1), _GRAD_TAG, "grad")
            if transfer is not None:
                kv = transfer.wait()
        dk, dv = _unpack(grads_in.wait(), plan, plan.rank)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


def context_parallel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                               group: Optional[dist.ProcessGroup] = None, layout: str = "zigzag",
                               causal: bool = False, k_lengths: Optional[torch.Tensor] = None,
                               segments: Optional[torch.Tensor] = None, scale: Optional[float] = None,
                               return_lse: bool = False):
    """Masked attention over a sequence split across the ranks of ``group`` (default: the world).

    Each rank passes its shard (dim 2) of ``q (B, H, L, D)``, ``k (B, Hkv, L, D)``, ``v (B, Hkv, L, Dv)``
    as made by ``shard(x, group, layout)``: ``layout="zigzag"`` (the sequence in ``2 * world``
    chunks, rank ``r`` holding chunks ``r`` and ``2*world-1-r``: equal causal work on every rank)
    or ``"contiguous"``. Returns this rank's shard of the output of ``masked_attention`` over the
    whole sequence, and with ``return_lse`` its lse (float32, ``-inf`` for rows that attend nothing).
    Differentiable in q, k, v (and through lse).

    Masks are those of ``masked_attention`` on the whole sequence: ``causal`` (top-left),
    ``k_lengths (B,)`` global key lengths, ``segments (B, L)`` the document ids of the *whole*
    sequence (the same tensor on every rank; each rank slices what its blocks need). ``scale``
    defaults to ``1/sqrt(D)``. CPU tensors need a gloo group, CUDA tensors an nccl group.

    Cost: one small all-gather of shapes per call (a host sync on GPU) checks that every rank
    passed the same attention, so a disagreement raises the same error on every rank instead of a
    hang; then ``world - 1`` k/v transfers forward, each overlapped with a step's blocks.
    Blocks wholly masked by the causal mask (from offsets) or by ``k_lengths`` (from its largest
    value, read in that one gather) are never computed; blocks that ``segments`` mask wholly are
    left to the kernel, which skips their tiles: deciding them on the host would take per-block
    id ranges there, another device-to-host copy per call on GPU, to save only a call whose tiles
    are all skipped.
    """
    plan = agree(q, k, v, group, layout, causal, k_lengths, segments, scale)
    blocks = [plan.blocks(plan.rank, src, k_lengths, segments) for src in range(plan.world)]
    out, lse = _RingAttention.apply(q, k, v, plan, blocks)
    return (out, lse) if return_lse else out
