"""Fused masked attention: softmax(q k^T * scale + mask) v, flash-style."""
import math
from typing import Optional

import torch

from ._args import (ALIGNMENTS, as_tensor, check_dropout, check_key_mask, check_scale, check_tensor, split_align,
                    split_segments, split_window)
from ._ops import call_op, ops


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                     causal: bool = False, align: str = "top_left", window=None,
                     q_lengths: Optional[torch.Tensor] = None, k_lengths: Optional[torch.Tensor] = None,
                     key_mask: Optional[torch.Tensor] = None, segments=None, scale: Optional[float] = None,
                     dropout_p: float = 0.0, generator: Optional[torch.Generator] = None,
                     return_weights: bool = False, return_lse: bool = False):
    """``softmax(q k^T * scale + mask) v`` with online softmax and no ``Lq x Lk`` buffer.

    q ``(B, H, Lq, D)``, k ``(B, Hkv, Lk, D)``, v ``(B, Hkv, Lk, Dv)`` with ``H % Hkv == 0``
    (query head ``h`` uses kv head ``h // (H // Hkv)``); output ``(B, H, Lq, Dv)`` in q's dtype.
    ``scale`` defaults to ``1/sqrt(D)`` and must be finite. Masks (all combined with AND, True = may attend):
    explicit ``mask`` (bool or additive float, broadcastable to ``(B, H, Lq, Lk)``), ``causal``
    with ``align`` ("top_left": ``j <= i``; "bottom_right": ``j <= i + Lk - Lq`` per sequence),
    ``window=(left, right)``, ``q_lengths``/``k_lengths`` ``(B,)``, ``key_mask`` ``(B, Lk)``
    (tensors, or lists) and ``segments`` (packed sequences: an integer ``(B, L)`` tensor of
    document ids for self-attention, or a pair ``(q_segments (B, Lq), k_segments (B, Lk))``; query
    ``i`` attends key ``j`` only within one document, and a negative id is padding that attends
    nothing and is never attended; with ``causal=True`` this is per-document causal). ``align`` may
    also be an int ``o``: aligned position ``p = i + o``, the block of a larger attention matrix
    whose queries start at global position ``qs`` and keys at ``ks`` using ``o = qs - ks``.
    Implicit masks are never materialised and wholly masked tiles are skipped.

    ``dropout_p``: attention dropout, as SDPA's (applied whenever ``dropout_p > 0``, so pass 0 at
    evaluation). Each probability is dropped with probability ``p`` and the kept ones are scaled
    by ``1/(1-p)``; the decisions are counter-based random numbers (Philox, ``p`` resolved to a
    multiple of ``2**-16``) of one ``(seed, offset)`` drawn from ``generator`` (or torch's default
    generator of q's device), keyed by ``(b, h, i, j)``: the backward regenerates them, the same
    generator state gives the same result on every call, and CPU and CUDA drop the same positions.
    Each call advances the generator (on CUDA its Philox offset, as torch's random ops do).

    Returns ``out``, or ``(out, weights)``, ``(out, lse)``, ``(out, weights, lse)``: weights
    ``(B, H, Lq, Lk)`` in q's dtype (the probabilities before dropout), lse ``(B, H, Lq)`` float32,
    the natural log-sum-exp of the scaled masked scores (dropout leaves it alone). A row that may
    attend to no key (padded query, all keys masked) gives output 0, weights 0, lse ``-inf`` and
    zero gradient, never NaN. A row whose keys all carry one large finite value (``-1e9``,
    ``finfo.min``) attends uniformly, as in torch. Differentiable in q, k, v, in an additive float
    ``mask`` that requires grad (its gradient summed over the dims it broadcasts over, fused into
    the backward: deterministic on CPU, atomic adds on CUDA where the mask broadcasts), and through
    ``lse`` and ``weights`` when returned; twice (without dropout): with ``create_graph=True`` the
    backward recomputes the weights ``(B, H, Lq, Lk)`` and runs as differentiable torch ops (memory
    quadratic in the length, as eager attention), so double backward (gradient penalties,
    Hessian-vector products) is exact; without it the fused backward kernel runs.
    """
    args = _op_args(q, k, v, mask, causal, align, window, q_lengths, k_lengths, key_mask, segments, scale, dropout_p,
                    generator, return_weights)
    if not (return_weights or return_lse):
        return call_op(ops.masked_attention.default, (q, k, v, mask), args, output_only=True)
    out, lse, weights, _, _ = call_op(ops.masked_attention.default, (q, k, v, mask), args)
    if return_weights and return_lse:
        return out, weights, lse
    if return_weights:
        return out, weights
    return out, lse


def attention_with_rng_state(q, k, v, *, mask=None, causal=False, align="top_left", window=None, q_lengths=None,
                             k_lengths=None, key_mask=None, segments=None, scale=None, dropout_p=0.0,
                             generator=None, return_weights=False):
    """masked_attention's (out, weights, lse, rng_state): rng_state is the (2,) int64 (seed, offset)
    the dropout drew with, for maskattn._debug.dropout_keep_mask (weights empty unless asked for)."""
    args = _op_args(q, k, v, mask, causal, align, window, q_lengths, k_lengths, key_mask, segments, scale, dropout_p,
                    generator, return_weights)
    out, lse, weights, _, rng_state = call_op(ops.masked_attention.default, (q, k, v, mask), args)
    return out, weights, lse, rng_state


def _op_args(q, k, v, mask, causal, align, window, q_lengths, k_lengths, key_mask, segments, scale, dropout_p,
             generator, return_weights):
    """masked_attention's arguments checked and in the op's order (the common case, no window,
    segments or lengths with a named alignment, checked in ~1 us: a decoding step's kernel takes a
    few)."""
    fn = "masked_attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not (isinstance(t, torch.Tensor) and t.dim() == 4):
            check_tensor(t, name, fn, dims=4)
    check_tensor(mask, "mask", fn)
    if align.__class__ is str and align in ALIGNMENTS:
        align_name, align_offset = align, 0
    else:
        align_name, align_offset = split_align(align, fn)
    left, right = (None, None) if window is None else split_window(window, fn)
    q_seg, k_seg = (None, None) if segments is None else split_segments(segments, fn)
    if isinstance(segments, torch.Tensor) and q.shape[2] != k.shape[2]:
        raise ValueError(f"maskattn.{fn}: one segments tensor describes self-attention (Lq == Lk), got Lq "
                         f"{q.shape[2]} and Lk {k.shape[2]}; pass segments=(q_segments, k_segments)")
    if scale is None:
        if q.shape[-1] == 0:
            raise ValueError(f"maskattn.{fn}: q head size (dim 3) must be >= 1, got shape {tuple(q.shape)}")
        scale = 1.0 / math.sqrt(q.shape[-1])  # finite
    else:
        scale = check_scale(scale, fn)
    if q_lengths is not None or k_lengths is not None or key_mask is not None:
        q_lengths, k_lengths, key_mask = (as_tensor(t, name, fn, q.device) for name, t in
                                          (("q_lengths", q_lengths), ("k_lengths", k_lengths), ("key_mask", key_mask)))
        for name, t in (("q_lengths", q_lengths), ("k_lengths", k_lengths), ("key_mask", key_mask)):
            check_tensor(t, name, fn)
        check_key_mask(key_mask, fn, k.shape[2])
    if dropout_p.__class__ is not float or dropout_p != 0.0 or generator is not None:
        check_dropout(dropout_p, generator, fn)
    return (q, k, v, mask, bool(causal), align_name, align_offset, left, right, q_lengths, k_lengths, key_mask, q_seg,
            k_seg, scale, bool(return_weights), float(dropout_p), generator)
