"""Modules built on the fused kernels."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._debug import dropout_keep_mask
from .attention import attention_with_rng_state


def _to_cpu(x):
    """A tensor, or a pair of them (segments), on the CPU (differentiably); anything else as is."""
    if isinstance(x, (tuple, list)):
        return type(x)(_to_cpu(t) for t in x)
    return x.cpu() if isinstance(x, Tensor) else x


class MultiheadAttention(torch.nn.MultiheadAttention):
    """Drop-in for ``torch.nn.MultiheadAttention`` running on maskattn's fused attention.

    Same constructor, parameters, ``state_dict`` keys, forward arguments and outputs, and the same
    mask conventions as torch's module (this is the one place in maskattn where a boolean
    ``key_padding_mask``/``attn_mask`` means True = *not* allowed; float masks are additive).
    Masks are passed to the kernel compactly: ``key_padding_mask`` as a key mask, a 2-D
    ``attn_mask`` broadcast over the batch without copies, ``is_causal`` as the causal flag.
    ``is_causal=True`` also works without ``attn_mask`` (torch requires one).

    Every argument of torch's module runs on the fused kernel (``self.last_path`` is always
    ``"fused"``): attention dropout while training (maskattn's counter-based dropout, so the
    dropped positions differ from torch's for one seed; the returned weights are, as torch's,
    the dropped and rescaled probabilities), ``add_bias_kv`` and ``add_zero_attn`` (one more key
    and value each, appended after the sequence and visible to every query, masks padded as torch
    pads them; with those keys ``is_causal`` means the causal mask over the original keys, as
    torch computes it when it needs the weights or has a ``key_padding_mask``). Float masks that
    require grad get their gradient. float64 works on every device, as torch's module: on a GPU
    its attention runs on the CPU kernels (the GPU kernels take float32, float16 and bfloat16).

    One keyword beyond torch's: ``segments`` (packed sequences), document ids ``(N, L)`` for
    self-attention or a pair ``(q_segments (N, L), k_segments (N, S))`` (1-D for unbatched input),
    negative ids padding, so a query attends only keys of its own document (with ``is_causal``:
    per-document causal), without an ``L x S`` mask.
    """

    last_path: str = "fused"

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True, attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False, *, segments=None) -> Tuple[Tensor, Optional[Tensor]]:
        self.last_path = "fused"
        unbatched = self._check_inputs(query, key, value, key_padding_mask, attn_mask)
        inputs_shared = (query is key, key is value)  # before the transposes below make new tensors
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
            segments = self._batch_segments(segments)
        elif self.batch_first:  # as torch, batch_first concerns batched (3-D) inputs only
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        tgt_len, bsz, embed = query.shape
        src_len = key.shape[0]
        if embed != self.embed_dim:
            raise ValueError(f"maskattn.nn.MultiheadAttention: query embed dim must be {self.embed_dim}, got {embed}")
        q, k, v = self._project(query, key, value, *inputs_shared)
        extra = int(self.bias_k is not None) + int(self.add_zero_attn)
        if extra:
            if segments is not None:
                raise ValueError("maskattn.nn.MultiheadAttention: segments cannot be combined with add_bias_kv or "
                                 "add_zero_attn (their extra key is seen by every query, in no one document)")
            k, v = self._append_keys(k, v, bsz)
            key_padding_mask, attn_mask = self._pad_masks(key_padding_mask, attn_mask, is_causal, tgt_len, src_len,
                                                          extra, query.device)
            is_causal, src_len = False, src_len + extra
        heads, head_dim = self.num_heads, self.head_dim
        # (L, N, E) -> (N, heads, L, head_dim): views, no copies
        q = q.view(tgt_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        k = k.view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        v = v.view(src_len, bsz, heads, head_dim).permute(1, 2, 0, 3)
        key_mask, mask = self._masks(key_padding_mask, attn_mask, bsz, tgt_len, src_len, query.dtype)
        dropout_p = self.dropout if self.training else 0.0
        home = q.device
        if q.dtype == torch.float64 and home.type != "cpu":  # torch's module takes float64 anywhere; our kernels on CPU
            q, k, v, mask, key_mask, segments = (_to_cpu(x) for x in (q, k, v, mask, key_mask, segments))
        out, weights, _, rng_state = attention_with_rng_state(q, k, v, mask=mask, key_mask=key_mask, causal=is_causal,
                                                              segments=segments, dropout_p=dropout_p,
                                                              return_weights=need_weights)
        if not need_weights:
            weights = None
        elif dropout_p > 0.0:  # torch returns the weights its dropout left, rescaled
            keep = dropout_keep_mask(rng_state, weights.shape, dropout_p, weights.device)
            weights = weights * keep / (1.0 - dropout_p) if dropout_p < 1.0 else torch.zeros_like(weights)
        out, weights = (None if x is None else x.to(home) for x in (out, weights))
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
    def _batch_segments(segments):
        """Unbatched input's 1-D document ids (or pair of them) as a batch of one."""
        if isinstance(segments, Tensor):
            return segments.unsqueeze(0) if segments.dim() == 1 else segments
        if isinstance(segments, (tuple, list)):
            return tuple(s.unsqueeze(0) if isinstance(s, Tensor) and s.dim() == 1 else s for s in segments)
        return segments

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

    def _project(self, query: Tensor, key: Tensor, value: Tensor, query_is_key: bool, key_is_value: bool):
        e = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            # inputs that are one tensor take one product, as in torch's module: q, k, v are views of
            # it (the backward then writes the packed weight's gradient whole, not three zero-filled
            # copies of it for three slices)
            if query_is_key and key_is_value:
                return F.linear(query, w, b).chunk(3, dim=-1)
            if key_is_value:
                bkv = None if b is None else b[e:]
                return (F.linear(query, w[:e], bq),) + F.linear(key, w[e:], bkv).chunk(2, dim=-1)
            return F.linear(query, w[:e], bq), F.linear(key, w[e:2 * e], bk), F.linear(value, w[2 * e:], bv)
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def _append_keys(self, k: Tensor, v: Tensor, bsz: int):
        """(S, N, E) keys and values with bias_k / bias_v, then a zero key and value, appended."""
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(1, bsz, -1)])
            v = torch.cat([v, self.bias_v.expand(1, bsz, -1)])
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(1, bsz, k.shape[-1])])
            v = torch.cat([v, v.new_zeros(1, bsz, v.shape[-1])])
        return k, v

    @staticmethod
    def _pad_masks(key_padding_mask, attn_mask, is_causal, tgt_len, src_len, extra, device):
        """Masks over the appended keys, which every query may attend (torch pads with 0 / False);
        is_causal without attn_mask becomes the causal mask over the original keys."""
        if is_causal and attn_mask is None:
            attn_mask = torch.ones(tgt_len, src_len, dtype=torch.bool, device=device).triu(1)
        pad = (lambda m: None if m is None else F.pad(m, (0, extra)))
        return pad(key_padding_mask), pad(attn_mask)

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
