"""The mask function: the form a transformers model's mask takes on its way to maskattn.

A model builds its mask once per forward (once per layer type) by calling the mask function
registered under its ``attn_implementation``, and hands the result to every layer's attention
function. transformers' ``sdpa`` mask function returns a ``(B, 1, Lq, Lk)`` bool tensor; ours
returns a :class:`CompactMask`: the keyword arguments of ``masked_attention`` (``causal`` with the
alignment the cache needs, ``window``, padding as ``key_mask`` or lengths, packed rows as
``segments``), so no ``Lq x Lk`` tensor is built.

The pattern comes from the mask function transformers composes (causal, bidirectional, sliding
window, packed sequences). A composition not recognised here (chunked attention, a model's own
``or_mask_function``/``and_mask_function``) is materialised by transformers' own ``sdpa_mask`` and
passed as an explicit mask: slower, never different.
"""
import warnings
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class CompactMask:
    """``masked_attention`` mask arguments for one forward, shared by the layers of one mask type."""

    kwargs: dict
    ndim = 4  # what transformers reads of a prepared mask, never 2 (a raw padding mask)

    def contiguous(self) -> "CompactMask":  # generate() calls it on masks it prepares (static caches)
        return self

    def __repr__(self) -> str:
        shown = {k: (tuple(v.shape) if isinstance(v, torch.Tensor) else v) for k, v in self.kwargs.items()}
        return f"CompactMask({shown})"


@dataclass(frozen=True)
class _Pattern:
    """What a transformers mask function allows, in maskattn's terms (window sides None = unbounded)."""

    causal: bool = False
    left: Optional[int] = None
    right: Optional[int] = None
    segments: Optional[torch.Tensor] = None
    needs_segments: bool = False  # position-remapped parts are exact only within one document


def _min(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return b if a is None else a if b is None else min(a, b)


def _both(a: Optional[_Pattern], b: Optional[_Pattern]) -> Optional[_Pattern]:
    if a is None or b is None or (a.segments is not None and b.segments is not None):
        return None
    return _Pattern(a.causal or b.causal, _min(a.left, b.left), _min(a.right, b.right),
                    a.segments if b.segments is None else b.segments, a.needs_segments or b.needs_segments)


def _closure(fn) -> dict:
    cells = getattr(fn, "__closure__", None) or ()
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in cells)))


def _pattern(fn, mu) -> Optional[_Pattern]:
    """The pattern of one of transformers' mask functions (``mu`` = transformers.masking_utils), or None."""
    if fn is mu.causal_mask_function:
        return _Pattern(causal=True)
    if fn is getattr(mu, "bidirectional_mask_function", None):
        return _Pattern()
    name, cells = getattr(fn, "__qualname__", ""), _closure(fn)
    if name == "and_masks.<locals>.and_mask":
        out = _Pattern()
        for part in cells.get("mask_functions", (None,)):
            out = _both(out, _pattern(part, mu))
        return out
    if name == "sliding_window_overlay.<locals>.inner_mask":  # kv > q - w
        return _Pattern(left=cells["sliding_window"] - 1)
    if name == "sliding_window_bidirectional_overlay.<locals>.inner_mask":  # |q - kv| <= w
        return _Pattern(left=cells["sliding_window"], right=cells["sliding_window"])
    if name == "packed_sequence_mask_function.<locals>.inner_mask":
        return _Pattern(segments=cells["packed_sequence_mask"])
    if name == "remap_positions_for_packed_sequence.<locals>.inner_mask":
        # positions and indices differ by a per-document constant, so differences agree within a document
        inner = _pattern(cells["mask_function"], mu)
        return None if inner is None else _Pattern(inner.causal, inner.left, inner.right, None, True)
    return None


def _key_mask(attention_mask: Optional[torch.Tensor], kv_length: int, kv_offset: int) -> Optional[torch.Tensor]:
    """The 2-D padding mask over this forward's keys (positions kv_offset .. kv_offset + kv_length)."""
    if attention_mask is None:
        return None
    keys = attention_mask[:, kv_offset:kv_offset + kv_length].bool()
    if keys.shape[1] < kv_length:  # a static cache's unwritten slots
        keys = torch.nn.functional.pad(keys, (0, kv_length - keys.shape[1]), value=False)
    return keys


def _padding(keys: Optional[torch.Tensor], same_positions: bool) -> dict:
    """Right padding of self-attention without a cache as lengths (padded query rows are skipped
    and give zeros, as transformers' FlashAttention path), any other padding as key_mask. Telling
    them apart reads the mask, done only where that costs no device sync (CPU)."""
    if keys is None:
        return {}
    if keys.device.type == "cpu":
        if bool(keys.all()):
            return {}
        lengths = keys.sum(-1)
        prefix = torch.arange(keys.shape[1], device=keys.device) < lengths[:, None]
        if same_positions and torch.equal(keys, prefix):
            return {"q_lengths": lengths, "k_lengths": lengths}
    return {"key_mask": keys}


def _align(offset: int, q_length: int, kv_length: int, args: dict):
    """Query i sits at key position i + offset."""
    if offset == 0:
        return "top_left"
    if offset == kv_length - q_length and "k_lengths" not in args:
        return "bottom_right"
    return offset


def _materialised(batch_size: int, kwargs: dict, why: str) -> torch.Tensor:
    from transformers import masking_utils as mu

    warnings.warn(f"maskattn: {why}; the mask is materialised as a (B, 1, Lq, Lk) tensor", stacklevel=3)
    kwargs = dict(kwargs, allow_is_causal_skip=False, allow_is_bidirectional_skip=False)
    return mu.sdpa_mask(batch_size=batch_size, **kwargs)


def compact_mask(batch_size: int, **kwargs):
    """transformers' mask interface: returns a :class:`CompactMask` (or, for a pattern not recognised,
    the materialised bool mask). transformers >= 5 gives ``q_length``/``q_offset``, earlier versions
    ``cache_position``."""
    from transformers import masking_utils as mu

    if isinstance(kwargs.get("attention_mask"), CompactMask):  # prepared by generate() before the forward
        return kwargs["attention_mask"]
    mask_function = kwargs.get("mask_function", mu.causal_mask_function)
    pattern = None if kwargs.get("use_vmap") else _pattern(mask_function, mu)
    if pattern is None or (pattern.needs_segments and pattern.segments is None):
        name = getattr(mask_function, "__qualname__", type(mask_function).__name__)
        return _materialised(batch_size, kwargs, f"mask pattern {name} has no compact form here")
    if "q_length" in kwargs:
        q_length, q_offset = kwargs["q_length"], kwargs.get("q_offset", 0)
    else:
        q_length, q_offset = kwargs["cache_position"].shape[0], kwargs["cache_position"][0]
    kv_length, kv_offset = kwargs["kv_length"], int(kwargs.get("kv_offset", 0))
    offset = int(q_offset) - kv_offset  # a static cache gives q_offset as a tensor: one read
    keys = _key_mask(kwargs.get("attention_mask"), kv_length, kv_offset)
    args = _padding(keys, same_positions=offset == 0 and q_length == kv_length)
    if pattern.segments is not None:
        args["segments"] = pattern.segments
    if pattern.causal:
        args["causal"] = True
    if pattern.left is not None or pattern.right is not None:
        args["window"] = (pattern.left, pattern.right)
    if pattern.causal or "window" in args:
        args["align"] = _align(offset, q_length, kv_length, args)
    return CompactMask(args)
