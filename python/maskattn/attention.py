"""Fused masked attention: softmax(q k^T * scale + mask) v, flash-style."""
import math
from typing import Optional

import torch

from ._args import check_tensor, split_align, split_segments, split_window
from ._ops import ops


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                     causal: bool = False, align: str = "top_left", window=None,
                     q_lengths: Optional[torch.Tensor] = None, k_lengths: Optional[torch.Tensor] = None,
                     key_mask: Optional[torch.Tensor] = None, segments=None, scale: Optional[float] = None,
                     return_weights: bool = False, return_lse: bool = False):
    """``softmax(q k^T * scale + mask) v`` with online softmax and no ``Lq x Lk`` buffer.

    q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)`` with ``H % Hkv == 0``
    (query head ``h`` uses kv head ``h // (H // Hkv)``); output ``(B, H, Lq, Dv)`` in q's dtype.
    ``scale`` defaults to ``1/sqrt(D)``. Masks (all combined with AND, True = may attend):
    explicit ``mask`` (bool or additive float, broadcastable to ``(B, H, Lq, Lk)``), ``causal``
    with ``align`` ("top_left": ``j <= i``; "bottom_right": ``j <= i + Lk - Lq`` per sequence),
    ``window=(left, right)``, ``q_lengths``/``k_lengths`` ``(B,)``, ``key_mask`` ``(B, Lk)`` and
    ``segments`` (packed sequences: an integer ``(B, L)`` tensor of document ids for
    self-attention, or a pair ``(q_segments (B, Lq), k_segments (B, Lk))``; query ``i`` attends key
    ``j`` only within one document, and a negative id is padding that attends nothing and is never
    attended; with ``causal=True`` this is per-document causal). ``align`` may also be an int ``o``:
    aligned position ``p = i + o``, the block of a larger attention matrix whose queries start at
    global position ``qs`` and keys at ``ks`` using ``o = qs - ks``. Implicit masks are never
    materialised and wholly masked tiles are skipped.

    Returns ``out``, or ``(out, weights)``, ``(out, lse)``, ``(out, weights, lse)``: weights
    ``(B, H, Lq, Lk)`` in q's dtype, lse ``(B, H, Lq)`` float32, the natural log-sum-exp of the
    scaled masked scores. A row that may attend to no key (padded query, all keys masked) gives
    output 0, weights 0, lse ``-inf`` and zero gradient, never NaN. Differentiable in q, k, v
    (and through ``lse`` and ``weights`` when returned).
    """
    fn = "masked_attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name, fn, dims=4)
    check_tensor(mask, "mask", fn)
    align_name, align_offset = split_align(align, fn)
    left, right = split_window(window, fn)
    q_seg, k_seg = split_segments(segments, fn)
    if isinstance(segments, torch.Tensor) and q.shape[2] != k.shape[2]:
        raise ValueError(f"maskattn.{fn}: one segments tensor describes self-attention (Lq == Lk), got Lq "
                         f"{q.shape[2]} and Lk {k.shape[2]}; pass segments=(q_segments, k_segments)")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    out, lse, weights = ops.masked_attention(q, k, v, mask, bool(causal), align_name, align_offset, left, right,
                                             q_lengths, k_lengths, key_mask, q_seg, k_seg, float(scale),
                                             bool(return_weights))
    if return_weights and return_lse:
        return out, weights, lse
    if return_weights:
        return out, weights
    if return_lse:
        return out, lse
    return out
