"""Mask construction: look-ahead, padding, combined decoder masks and MLM token masking.

Boolean masks use True = may attend (as SDPA). A float ``dtype`` returns the additive form:
0 where attending, ``masked_value`` (default -inf) where masked.
"""
from typing import Optional, Sequence, Tuple

import torch

from ._args import check_lengths, check_tensor, split_align, split_segments, split_window
from ._ops import ops


def _device_of(device, *tensors):
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if t is not None:
            return t.device
    return torch.empty(0).device  # torch's default device


def causal_mask(q_len: int, k_len: Optional[int] = None, *, align: str = "top_left", window=None,
                dtype: torch.dtype = torch.bool, device=None, masked_value: float = float("-inf")) -> torch.Tensor:
    """Look-ahead mask ``(q_len, k_len)``: query ``i`` may see key ``j`` iff ``j <= p`` (and
    ``j >= p - left`` with ``window=(left, right)``), ``p = i`` (top_left) or ``i + k_len - q_len``
    (bottom_right). ``k_len`` defaults to ``q_len``.

    q_len=3, k_len=5::

        top_left      bottom_right   window=(1, 0), top_left
        1 0 0 0 0     1 1 1 0 0      1 0 0 0 0
        1 1 0 0 0     1 1 1 1 0      1 1 0 0 0
        1 1 1 0 0     1 1 1 1 1      0 1 1 0 0
    """
    align_name, align_offset = split_align(align, "causal_mask")
    left, right = split_window(window, "causal_mask")
    k_len = q_len if k_len is None else k_len
    m = ops.attention_mask(q_len, k_len, True, align_name, align_offset, left, right, None, None, None, None, None, 1,
                           dtype, _device_of(device), float(masked_value))
    return m[0, 0]


def padding_mask(lengths: torch.Tensor, max_len: Optional[int] = None, *, dtype: torch.dtype = torch.bool,
                 masked_value: float = float("-inf")) -> torch.Tensor:
    """``(B, max_len)`` mask, True on positions ``< lengths[b]`` (right padding).

    lengths=[3, 1], max_len=4::

        1 1 1 0
        1 0 0 0

    ``max_len`` defaults to ``lengths.max()`` (one device sync).
    """
    check_tensor(lengths, "lengths", "padding_mask", dims=1)
    batch = lengths.shape[0]
    check_lengths(lengths, "lengths", "padding_mask", batch, 0)
    if max_len is None:
        max_len = int(lengths.max()) if batch > 0 else 0
    if batch == 0:
        return torch.empty((0, max_len), dtype=dtype, device=lengths.device)
    m = ops.attention_mask(1, max_len, False, "top_left", 0, None, None, None, lengths, None, None, None, batch,
                           dtype, lengths.device, float(masked_value))
    return m.view(batch, max_len)


def padding_mask_from_ids(ids: torch.Tensor, pad_id: int = 0, *, dtype: torch.dtype = torch.bool,
                          masked_value: float = float("-inf")) -> torch.Tensor:
    """``(B, L)`` mask, True where ``ids != pad_id`` (any padding side)."""
    check_tensor(ids, "ids", "padding_mask_from_ids", dims=2)
    return ops.padding_mask_from_ids(ids, int(pad_id), dtype, float(masked_value))


def attention_mask(q_len: int, k_len: Optional[int] = None, *, causal: bool = False, align: str = "top_left",
                   window=None, q_lengths: Optional[torch.Tensor] = None, k_lengths: Optional[torch.Tensor] = None,
                   key_mask: Optional[torch.Tensor] = None, segments=None, batch: Optional[int] = None,
                   dtype: torch.dtype = torch.bool, device=None, masked_value: float = float("-inf")) -> torch.Tensor:
    """The combined decoder mask ``(B, 1, q_len, k_len)``: causal/window AND key padding AND
    ``key_mask`` AND ``segments`` (document ids, see ``masked_attention``); rows of padded queries
    (``i >= q_lengths[b]``) are all False. ``B`` comes from the lengths, ``key_mask``, ``segments``
    or ``batch`` (1 if none). With bottom_right, each sequence aligns its own last query with its
    own last key; an int ``align`` o aligns query ``i`` at ``p = i + o``.

    causal, q_len=k_len=4, k_lengths=[3], q_lengths=[3]::

        1 0 0 0
        1 1 0 0
        1 1 1 0
        0 0 0 0

    This materialises the mask; ``masked_attention`` takes the same arguments and never does.
    """
    fn = "attention_mask"
    align_name, align_offset = split_align(align, fn)
    left, right = split_window(window, fn)
    k_len = q_len if k_len is None else k_len
    for name, t in (("q_lengths", q_lengths), ("k_lengths", k_lengths), ("key_mask", key_mask)):
        check_tensor(t, name, fn)
    q_seg, k_seg = split_segments(segments, fn)
    if isinstance(segments, torch.Tensor) and q_len != k_len:
        raise ValueError(f"maskattn.{fn}: one segments tensor describes self-attention (q_len == k_len), got "
                         f"{q_len} and {k_len}; pass segments=(q_segments, k_segments)")
    candidates = [t.shape[0] for t in (q_lengths, k_lengths, key_mask, q_seg, k_seg)
                  if t is not None and t.dim() >= 1 and t.shape[0] != 1]
    b = batch if batch is not None else (candidates[0] if candidates else 1)
    check_lengths(q_lengths, "q_lengths", fn, b, q_len)
    check_lengths(k_lengths, "k_lengths", fn, b, k_len)
    dev = _device_of(device, q_lengths, k_lengths, key_mask, q_seg)
    return ops.attention_mask(q_len, k_len, bool(causal), align_name, align_offset, left, right, q_lengths,
                              k_lengths, key_mask, q_seg, k_seg, b, dtype, dev, float(masked_value))


def random_token_mask(ids: torch.Tensor, mask_id: int, p: float = 0.15, *, special_ids: Sequence[int] = (),
                      generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Masked-language-model masking: each position whose id is not in ``special_ids`` is selected
    with probability ``p`` and gets ``mask_id``. Returns ``(masked_ids, selected)``, ``selected``
    bool ``(B, L)``. Draws from ``generator`` (or torch's default one for ``ids``' device): the
    same seed gives the same result, and each call advances the generator.
    """
    check_tensor(ids, "ids", "random_token_mask", dims=2)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"maskattn.random_token_mask: p must lie in [0, 1], got {p}")
    return ops.random_token_mask(ids, int(mask_id), float(p), [int(s) for s in special_ids], generator)
