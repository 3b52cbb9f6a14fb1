"""What each timed call does, counted: bytes moved and floating-point operations.

Attention FLOPs per (batch, head): the forward does two matmuls of 2*D flops per (i, j) pair,
so 4*D per pair; the backward does five, counted as 2.5x the forward (FlashAttention's rule).
"""
from typing import Optional

import torch

BACKWARD_FACTOR = {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}


def allowed_pairs(q_len: int, k_len: int, *, causal: bool = False, align: str = "top_left",
                  window_left: Optional[int] = None, k_lengths: Optional[torch.Tensor] = None,
                  batch: int = 1) -> int:
    """Number of (b, i, j) with query i of sequence b allowed to see key j, summed over the batch."""
    i = torch.arange(q_len, dtype=torch.int64)
    lengths = k_lengths.tolist() if k_lengths is not None else [k_len] * batch
    total = 0
    for kl in lengths:
        # aligned position of query i: its own last key when causal
        p = i + (kl - q_len) if align == "bottom_right" else i
        hi = p.clamp(max=kl - 1) if causal else torch.full_like(i, kl - 1)
        lo = (p - window_left).clamp(min=0) if window_left is not None else torch.zeros_like(i)
        total += int((hi - lo + 1).clamp(min=0).sum())
    return total


def attention_flops_unmasked(heads: int, head_dim: int, pairs: int, mode: str) -> float:
    """FLOPs of the work a mask leaves: 4*D per allowed pair and head, times the backward factor."""
    return 4.0 * head_dim * heads * pairs * BACKWARD_FACTOR[mode]


def attention_flops_flash(batch: int, heads: int, q_len: int, k_len: int, head_dim: int, causal: bool,
                          mode: str) -> float:
    """FlashAttention's count: 4*B*H*Lq*Lk*D forward, halved when causal, backward 2.5x forward."""
    flops = 4.0 * batch * heads * q_len * k_len * head_dim
    return (flops / 2 if causal else flops) * BACKWARD_FACTOR[mode]


def softmax_bytes(numel: int, element_size: int, mode: str) -> int:
    """Forward: scores read + probs written. Forward+backward adds grad and probs read, grad written."""
    tensors = {"fwd": 2, "fwd+bwd": 5}[mode]
    return tensors * numel * element_size
