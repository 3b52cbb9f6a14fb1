"""One block of the global attention matrix: its mask arguments, and the local kernel calls.

Every call into the kernels from ``maskattn.distributed`` is in this file (the op schemas may gain
arguments). A block is the queries of one run of global positions against the keys of another;
its mask is the global mask restricted to it: causal with the integer alignment ``qs - ks``,
``k_lengths`` shifted to the block, segment ids sliced to it.

Float64 blocks run in torch ops on the block's mask built by the kernels' mask builder, because
the kernels' float64 path keeps ``lse`` in float32 and its backward recomputes the softmax over the
block's own keys (ignoring the merged ``out``/``lse``): exact single-device results, but a ring
merge and a ring backward built on them would be off by float32 rounding and by the other blocks.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .. import masks
from ..attention import masked_attention
from .._ops import ops
from ._layout import Piece


@dataclass(frozen=True)
class BlockMask:
    causal: bool
    offset: int  # integer alignment: query i of the block sits at key position i + offset
    k_lengths: Optional[torch.Tensor]
    q_segments: Optional[torch.Tensor]
    k_segments: Optional[torch.Tensor]

    @property
    def segments(self):
        return None if self.q_segments is None else (self.q_segments, self.k_segments)


def block_is_empty(q_piece: Piece, k_piece: Piece, causal: bool, k_limit: Optional[int]) -> bool:
    """Wholly masked, from host-side numbers only: no queries or keys; under a causal mask every
    key after the block's last query; every key at or past ``k_limit`` (the largest k_lengths)."""
    (qs, qn), (ks, kn) = q_piece, k_piece
    return qn == 0 or kn == 0 or (causal and ks > qs + qn - 1) or (k_limit is not None and ks >= k_limit)


def block_mask(q_piece: Piece, k_piece: Piece, causal: bool, k_lengths: Optional[torch.Tensor],
               segments: Optional[torch.Tensor]) -> BlockMask:
    (qs, qn), (ks, kn) = q_piece, k_piece
    lengths = None if k_lengths is None else (k_lengths - ks).clamp(0, kn)
    q_seg = None if segments is None else segments[:, qs:qs + qn]
    k_seg = None if segments is None else segments[:, ks:ks + kn]
    return BlockMask(bool(causal), qs - ks, lengths, q_seg, k_seg)


def block_forward(q, k, v, m: BlockMask, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(out, lse) of one block; lse is float64 for float64 inputs, else float32."""
    if q.dtype == torch.float64:
        return _forward_f64(q, k, v, m, scale)
    return masked_attention(q, k, v, causal=m.causal, align=m.offset, k_lengths=m.k_lengths, segments=m.segments,
                            scale=scale, return_lse=True)


def block_backward(dout, dlse, q, k, v, out, lse, m: BlockMask, scale: float):
    """(dq, dk, dv) of one block, given the merged ``out`` and ``lse`` of its query rows (the
    flash-attention backward: P from the merged lse, D = rowsum(dout * out) - dlse)."""
    if q.dtype == torch.float64:
        return _backward_f64(dout, dlse, q, k, v, out, lse, m, scale)
    # no row statistics: P comes from the merged lse alone; the fourth output (a mask's gradient) is empty
    return ops.masked_attention_backward(dout, dlse, None, q, k, v, out, lse, None, m.causal, "top_left", m.offset,
                                         None, None, None, m.k_lengths, None, m.q_segments, m.k_segments, scale)[:3]


def _allowed(q, k, m: BlockMask) -> torch.Tensor:
    """(B, 1, Lq, Lk) bool from the kernels' mask builder: the mask semantics stay in one place."""
    return masks.attention_mask(q.shape[2], k.shape[2], causal=m.causal, align=m.offset, k_lengths=m.k_lengths,
                                segments=m.segments, batch=q.shape[0], device=q.device)


def _grouped(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.repeat_interleave(heads // t.shape[1], dim=1)


def _probabilities(q, k, m: BlockMask, scale: float, lse: Optional[torch.Tensor]):
    s = (q @ _grouped(k, q.shape[1]).transpose(-1, -2)) * scale
    s = s.masked_fill(~_allowed(q, k, m), float("-inf"))
    if lse is None:
        lse = torch.logsumexp(s, dim=-1)
    live = torch.isfinite(lse).unsqueeze(-1)
    p = torch.where(live, torch.exp(s - torch.where(live, lse.unsqueeze(-1), 0.0)), 0.0)
    return p, lse


def _forward_f64(q, k, v, m: BlockMask, scale: float):
    p, lse = _probabilities(q, k, m, scale, None)
    return p @ _grouped(v, q.shape[1]), lse


def _ungroup(t: torch.Tensor, kv_heads: int) -> torch.Tensor:
    b, h, n, d = t.shape
    return t.view(b, kv_heads, h // kv_heads, n, d).sum(dim=2)


def _backward_f64(dout, dlse, q, k, v, out, lse, m: BlockMask, scale: float):
    p, _ = _probabilities(q, k, m, scale, lse)
    delta = (dout * out).sum(dim=-1, keepdim=True)
    if dlse is not None:
        delta = delta - dlse.to(delta.dtype).unsqueeze(-1)
    ds = p * (dout @ _grouped(v, q.shape[1]).transpose(-1, -2) - delta) * scale
    dq = ds @ _grouped(k, q.shape[1])
    dk = _ungroup(ds.transpose(-1, -2) @ q, k.shape[1])
    dv = _ungroup(p.transpose(-1, -2) @ dout, k.shape[1])
    return dq, dk, dv
