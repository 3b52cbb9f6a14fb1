"""Fused scale + mask + softmax, forward and backward, any row length."""
from typing import Optional

import torch

from ._args import check_tensor, split_align, split_segments, split_window
from ._ops import ops


def masked_softmax(scores: torch.Tensor, mask: Optional[torch.Tensor] = None, *, scale: float = 1.0,
                   causal: bool = False, align: str = "top_left", window=None,
                   k_lengths: Optional[torch.Tensor] = None, key_mask: Optional[torch.Tensor] = None,
                   segments=None) -> torch.Tensor:
    """``softmax(scale * scores + mask)`` over the last dim in one pass, fp32 math inside.

    ``scores`` is ``(Lq, Lk)``, ``(B, Lq, Lk)`` or ``(B, H, Lq, Lk)``; the result has its shape and
    dtype. ``mask`` (bool, True = attend, or additive float) broadcasts to ``scores`` without a
    copy; ``causal``/``align``/``window``/``k_lengths`` ``(B,)``/``key_mask`` ``(B, Lk)`` are applied
    without being materialised, all combined with AND. ``segments`` (packed sequences: document ids
    ``(B, L)`` when ``Lq == Lk``, or a pair ``(q_segments, k_segments)``; negative ids are padding)
    restricts each row to keys of its own document; ``align`` may be an int offset ``o`` (aligned
    position ``p = i + o``). A row with no allowed key is all zeros
    (and gets zero gradient), never NaN. Differentiable in ``scores``.
    """
    fn = "masked_softmax"
    check_tensor(scores, "scores", fn)
    check_tensor(mask, "mask", fn)
    align_name, align_offset = split_align(align, fn)
    left, right = split_window(window, fn)
    q_seg, k_seg = split_segments(segments, fn)
    if isinstance(segments, torch.Tensor) and scores.dim() >= 2 and scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"maskattn.{fn}: one segments tensor describes self-attention (Lq == Lk), got scores "
                         f"of shape {tuple(scores.shape)}; pass segments=(q_segments, k_segments)")
    return ops.masked_softmax(scores, mask, float(scale), bool(causal), align_name, align_offset, left, right,
                              k_lengths, key_mask, q_seg, k_seg)
