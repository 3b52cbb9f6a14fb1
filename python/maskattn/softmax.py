"""Fused scale + mask + softmax, forward and backward, any row length."""
from typing import Optional

import torch

from ._args import as_tensor, check_key_mask, check_scale, check_tensor, split_align, split_segments, split_window
from ._ops import call_op, ops


def masked_softmax(scores: torch.Tensor, mask: Optional[torch.Tensor] = None, *, scale: float = 1.0,
                   causal: bool = False, align: str = "top_left", window=None,
                   k_lengths: Optional[torch.Tensor] = None, key_mask: Optional[torch.Tensor] = None,
                   segments=None, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``softmax(scale * scores + mask)`` over the last dim in one pass, fp32 math inside.

    ``scores`` is ``(Lq, Lk)``, ``(B, Lq, Lk)`` or ``(B, H, Lq, Lk)``; the result has its shape and
    dtype. ``mask`` (bool, True = attend, or additive float) broadcasts to ``scores`` without a
    copy; ``causal``/``align``/``window``/``k_lengths`` ``(B,)``/``key_mask`` ``(B, Lk)`` are applied
    without being materialised, all combined with AND. ``segments`` (packed sequences: document ids
    ``(B, L)`` when ``Lq == Lk``, or a pair ``(q_segments, k_segments)``; negative ids are padding)
    restricts each row to keys of its own document; ``align`` may be an int offset ``o`` (aligned
    position ``p = i + o``). A row with no allowed key is all zeros (and gets zero gradient), never
    NaN; a NaN score makes its row NaN, as in torch. ``scale`` must be finite. ``k_lengths`` and
    ``key_mask`` may be given as lists. Differentiable in ``scores`` and in an additive float
    ``mask`` that requires grad (its gradient summed over the dims it broadcasts over, computed in
    the same pass as the scores' gradient), twice: double backward (``create_graph=True``) runs the
    backward as differentiable torch ops.

    ``out`` (contiguous, ``scores``' shape, dtype and device) receives the result instead of a new
    tensor, so a caller can reuse one ``L x L`` buffer; it may be ``scores`` itself (see
    ``masked_softmax_``). Like torch's ``out=`` functions it does not record autograd.
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
    scale = check_scale(scale, fn)
    k_lengths = as_tensor(k_lengths, "k_lengths", fn, scores.device)
    key_mask = as_tensor(key_mask, "key_mask", fn, scores.device)
    check_tensor(k_lengths, "k_lengths", fn)
    check_tensor(key_mask, "key_mask", fn)
    check_key_mask(key_mask, fn, scores.shape[-1] if scores.dim() else 0)
    args = (scores, mask, scale, bool(causal), align_name, align_offset, left, right, k_lengths, key_mask,
            q_seg, k_seg)
    if out is None:
        return call_op(ops.masked_softmax.default, (scores, mask), args)
    check_tensor(out, "out", fn)
    if torch.is_grad_enabled() and (scores.requires_grad or out.requires_grad):
        raise RuntimeError(f"maskattn.{fn}: out= does not support autograd (scores or out requires grad); "
                           "call it without out= to differentiate, or under torch.no_grad()")
    ops.masked_softmax_out(*args, out)
    return out


def masked_softmax_(scores: torch.Tensor, mask: Optional[torch.Tensor] = None, *, scale: float = 1.0,
                    causal: bool = False, align: str = "top_left", window=None,
                    k_lengths: Optional[torch.Tensor] = None, key_mask: Optional[torch.Tensor] = None,
                    segments=None) -> torch.Tensor:
    """In-place ``masked_softmax``: overwrites ``scores`` (contiguous) with the probabilities and
    returns it, so no ``L x L`` result is allocated. Not differentiable (as torch's in-place ops on
    a leaf that requires grad)."""
    if isinstance(scores, torch.Tensor) and not scores.is_contiguous():
        raise ValueError("maskattn.masked_softmax_: scores must be contiguous to be overwritten in place, got "
                         f"strides {tuple(scores.stride())}")
    return masked_softmax(scores, mask, scale=scale, causal=causal, align=align, window=window, k_lengths=k_lengths,
                          key_mask=key_mask, segments=segments, out=scores)
