"""Internals exposed for tests and debugging: the keep mask attention dropout drew."""
import torch

from ._ops import ops


def dropout_keep_mask(rng_state: torch.Tensor, shape, p: float, device) -> torch.Tensor:
    """Bool ``(B, H, Lq, Lk)``: True where attention dropout with probability ``p`` kept the
    probability, for the ``rng_state`` (seed, offset) a masked_attention call drew (see
    ``attention.attention_with_rng_state``), computed by the same code as the kernels of ``device``."""
    batch, heads, q_len, k_len = shape
    seed, offset = (int(x) for x in rng_state.tolist())
    return ops.dropout_keep_mask(batch, heads, q_len, k_len, float(p), seed, offset, torch.device(device))
