"""Modules built on the fused kernels."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .attention import masked_attention


class MultiheadAttention(torch.nn.MultiheadAttention):
    """Drop-in for ``torch.nn.MultiheadAttention`` running on maskattn's fused attention.

    Same constructor, parameters, ``state_dict`` keys, forward arguments and outputs, and the same
    mask conventions as torch's module (this is the one place in maskattn where a boolean
    ``key_padding_mask``/``attn_mask`` means True = *not* allowed; float masks are additive).
    Masks are passed to the kernel compactly: ``key_padding_mask`` as a key mask, a 2-D
    ``attn_mask`` broadcast over the batch without copies, ``is_causal`` as the causal flag.
    ``is_causal=True`` also works without ``attn_mask`` (torch requires one).

    Falls back to torch's implementation (``self.last_path == "torch"``) where the fused kernel
    does not apply: attention dropout while training, ``add_bias_kv`` and ``add_zero_attn``.
    """

    last_path: str = "fused"

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True, attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        dropout_active = self.dropout > 0.0 and self.training
        if dropout_active or self.bias_k is not None or self.add_zero_attn:
            self.last_path = "torch"
            if is_causal and attn_mask is None:
                seq = 1 if self.batch_first and query.dim() == 3 else 0
                attn_mask = torch.ones(query.shape[seq], key.shape[seq], dtype=torch.bool,
                                       device=query.device).triu(1)
            return super().forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                   average_attn_weights, is_causal)
        self.last_path = "fused"
        unbatched = self._check_inputs(query, key, value, key_padding_mask, attn_mask)
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:  # as torch, batch_first concerns batched (3-D) inputs only
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        tgt_len, bsz, embed = query.shape
        src_len = key.shape[0]
        if embed != self.embed_dim:
            raise ValueError(f"maskattn.nn.MultiheadAttention: query embed dim must be {self.embed_dim}, got {embed}")
        q, k, v = self._project(query, key, value)
        heads, head_dim = self.num_heads, self.head_dim
        # (L, N, E) -> (N, heads, L, head_dim): views, no copies
        q = q.view(tgt_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        k = k.view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        v = v.view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        key_mask, mask = self._masks(key_padding_mask, attn_mask, bsz, tgt_len, src_len, query.dtype)
        result = masked_attention(q, k, v, mask=mask, key_mask=key_mask, causal=is_causal,
                                  return_weights=need_weights)
        out, weights = result if need_weights else (result, None)
        out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        if self.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if unbatched:
            out = out.squeeze(1)
            weights = weights.squeeze(0) if weights is not None else None
        return out, weights

    @staticmethod
    def _check_inputs(query, key, value, key_padding_mask, attn_mask) -> bool:
        """torch's shape and dtype rules, with errors naming the argument; True for unbatched input."""
        name = "maskattn.nn.MultiheadAttention"
        if query.dim() not in (2, 3):
            raise ValueError(f"{name}: query must be 2-D (L, E) unbatched or 3-D batched, got shape "
                             f"{tuple(query.shape)}")
        for arg, t in (("key", key), ("value", value)):
            if t.dim() != query.dim():
                raise ValueError(f"{name}: {arg} must be {query.dim()}-D like query, got shape {tuple(t.shape)}")
        for arg, m in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
            if m is not None and m.dtype != torch.bool and not m.dtype.is_floating_point:
                raise ValueError(f"{name}: {arg} must be bool (True = masked) or float (added to the scores), "
                                 f"got {m.dtype}")
        unbatched = query.dim() == 2
        if key_padding_mask is not None and key_padding_mask.dim() != (1 if unbatched else 2):
            raise ValueError(f"{name}: key_padding_mask must be {'1-D (S,)' if unbatched else '2-D (N, S)'} "
                             f"for {'unbatched' if unbatched else 'batched'} query, got shape "
                             f"{tuple(key_padding_mask.shape)}")
        return unbatched

    def _project(self, query: Tensor, key: Tensor, value: Tensor):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            return F.linear(query, w[:e], bq), F.linear(key, w[e:2 * e], bk), F.linear(value, w[2 * e:], bv)
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def _masks(self, key_padding_mask, attn_mask, bsz, tgt_len, src_len, dtype):
        """torch's polarity (True = masked) -> maskattn's: a key mask and one explicit mask."""
        name = "maskattn.nn.MultiheadAttention"
        key_mask, mask = None, None
        if key_padding_mask is not None:
            if key_padding_mask.shape != (bsz, src_len):
                raise ValueError(f"{name}: key_padding_mask must have shape ({bsz}, {src_len}), "
                                 f"got {tuple(key_padding_mask.shape)}")
            if key_padding_mask.dtype == torch.bool:
                key_mask = ~key_padding_mask
            else:
                mask = key_padding_mask.to(dtype).view(bsz, 1, 1, src_len)
        if attn_mask is not None:
            if attn_mask.dim() == 2:
                if attn_mask.shape != (tgt_len, src_len):
                    raise ValueError(f"{name}: 2-D attn_mask must have shape ({tgt_len}, {src_len}), "
                                     f"got {tuple(attn_mask.shape)}")
                am = attn_mask.view(1, 1, tgt_len, src_len)
            elif attn_mask.dim() == 3 and attn_mask.shape == (bsz * self.num_heads, tgt_len, src_len):
                am = attn_mask.view(bsz, self.num_heads, tgt_len, src_len)
            else:
                raise ValueError(f"{name}: attn_mask must have shape ({tgt_len}, {src_len}) or "
                                 f"({bsz * self.num_heads}, {tgt_len}, {src_len}), got {tuple(attn_mask.shape)}")
            am = ~am if am.dtype == torch.bool else am.to(dtype)
            if mask is None:
                mask = am
            elif am.dtype == torch.bool:
                mask = torch.where(am, mask, torch.full((), float("-inf"), dtype=dtype, device=mask.device))
            else:
                mask = mask + am
        return key_mask, mask
