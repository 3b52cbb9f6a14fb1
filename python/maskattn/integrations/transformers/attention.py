"""The attention function transformers calls in every attention layer.

transformers gives ``(B, H, Lq, D)`` queries and ``(B, Hkv, Lk, D)`` keys/values (grouped-query
attention is passed as is, no ``repeat_kv``) and expects ``(B, Lq, H, Dv)`` back. The mask is
what the registered mask function returned (a :class:`CompactMask`), a user's 4-D mask (bool or
additive float, passed through), or None.
"""
from typing import Optional

import torch

from ...attention import masked_attention
from .masks import CompactMask



def _refuse_unsupported(module: torch.nn.Module, kwargs: dict) -> None:
    """Model features maskattn does not compute raise here, rather than giving a different model."""
    model = type(module).__name__
    if kwargs.get("softcap") is not None:
        raise NotImplementedError(f"maskattn attention: {model} uses attention logit soft-capping (softcap="
                                  f"{kwargs['softcap']}, e.g. config.attn_logit_softcapping), which maskattn does "
                                  "not compute; use attn_implementation='eager'")
    if kwargs.get("s_aux") is not None or getattr(module, "sinks", None) is not None:
        raise NotImplementedError(f"maskattn attention: {model} uses attention sinks (learned per-head logits, "
                                  "s_aux), which maskattn does not compute; use attn_implementation='eager'")
    if kwargs.get("cache") is not None:
        raise NotImplementedError("maskattn attention: a paged cache (continuous batching) is not supported")


def _mask_args(attention_mask, query: torch.Tensor, module: torch.nn.Module, is_causal: Optional[bool]) -> dict:
    if isinstance(attention_mask, CompactMask):
        return dict(attention_mask.kwargs)
    if attention_mask is None:  # no mask built: the module's causality, as sdpa's is_causal (top-left)
        causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
        return {"causal": bool(causal) and query.shape[2] > 1}
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4:
        return {"mask": attention_mask}
    raise ValueError(f"maskattn attention: attention_mask must be the mask built by the model (registered mask "
                     f"function) or a 4-D (B, 1 or H, Lq, Lk) tensor, got {type(attention_mask).__name__} "
                     f"{tuple(getattr(attention_mask, 'shape', ()))}")


def _add_position_bias(args: dict, bias: torch.Tensor) -> None:
    """A relative-position bias (T5-style) is an additive mask, combined with an explicit one."""
    mask = args.get("mask")
    if mask is None:
        args["mask"] = bias
    elif mask.dtype == torch.bool:
        args["mask"] = bias.masked_fill(~mask, float("-inf"))
    else:
        args["mask"] = bias + mask


def _packed_segments(kwargs: dict, query: torch.Tensor, key: torch.Tensor):
    """FlashAttention-style packing (``cu_seq_lens_q/k``: cumulative document lengths of one flattened row)."""
    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if cu_q is None and cu_k is None:
        return None
    if query.shape[0] != 1:
        raise ValueError(f"maskattn attention: cu_seq_lens_q/k describe one flattened row (batch 1), got batch "
                         f"{query.shape[0]}")
    from ... import segments_from_lengths

    cu_k = cu_q if cu_k is None else cu_k
    cu_q = cu_k if cu_q is None else cu_q
    q_seg = segments_from_lengths(cu_q.diff(), total=query.shape[2])
    k_seg = segments_from_lengths(cu_k.diff(), total=key.shape[2])
    return q_seg if query.shape[2] == key.shape[2] and torch.equal(cu_q, cu_k) else (q_seg, k_seg)


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask, dropout: float = 0.0, scaling: Optional[float] = None,
                      is_causal: Optional[bool] = None, **kwargs):
    """transformers' attention interface: ``(out (B, Lq, H, Dv), weights or None)``."""
    _refuse_unsupported(module, kwargs)
    args = _mask_args(attention_mask, query, module, is_causal)
    if kwargs.get("position_bias") is not None:
        _add_position_bias(args, kwargs["position_bias"])
    if "segments" not in args:
        segments = _packed_segments(kwargs, query, key)
        if segments is not None:
            args["segments"] = segments
    if dropout:
        args["dropout_p"] = float(dropout)  # the fused dropout, as transformers passes it in training
    want_weights = bool(kwargs.get("output_attentions"))
    result = masked_attention(query, key, value, scale=scaling, return_weights=want_weights, **args)
    out, weights = result if want_weights else (result, None)
    return out.transpose(1, 2).contiguous(), weights
