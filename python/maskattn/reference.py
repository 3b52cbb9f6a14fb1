"""Float64 torch references for every op, written from the contract with plain tensor ops
(independent of the kernels' MaskSpec), used by the tests and by ``python -m maskattn check``."""
from typing import Optional, Tuple

import torch


def reference_allowed(batch: int, heads: int, q_len: int, k_len: int, *, causal: bool = False,
                      align="top_left", window=None, q_lengths=None, k_lengths=None, key_mask=None,
                      segments=None, mask=None, device=None) -> torch.Tensor:
    """Bool (B, H, Lq, Lk): True where query i of (b, h) may attend key j (additive masks excluded)."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    i = torch.arange(q_len, device=dev).view(1, 1, q_len, 1)
    j = torch.arange(k_len, device=dev).view(1, 1, 1, k_len)
    ql = (q_lengths.to(dev, torch.int64) if q_lengths is not None
          else torch.full((batch,), q_len, dtype=torch.int64, device=dev)).view(batch, 1, 1, 1)
    kl = (k_lengths.to(dev, torch.int64) if k_lengths is not None
          else torch.full((batch,), k_len, dtype=torch.int64, device=dev)).view(batch, 1, 1, 1)
    ok = (i < ql) & (j < kl)
    if isinstance(align, int):
        p = i + align + torch.zeros_like(kl)
    else:
        p = i + (kl - ql) if align == "bottom_right" else i + torch.zeros_like(kl)
    left, right = window if window is not None else (None, None)
    if causal:
        right = 0 if right is None else min(right, 0)
    if left is not None:
        ok = ok & (j >= p - left)
    if right is not None:
        ok = ok & (j <= p + right)
    ok = ok.expand(batch, heads, q_len, k_len)
    if key_mask is not None:
        ok = ok & key_mask.to(dev).bool().view(key_mask.shape[0], 1, 1, k_len)
    if segments is not None:
        q_seg, k_seg = segments if isinstance(segments, (tuple, list)) else (segments, segments)
        qs = q_seg.to(dev, torch.int64).view(q_seg.shape[0], 1, q_len, 1)
        ks = k_seg.to(dev, torch.int64).view(k_seg.shape[0], 1, 1, k_len)
        ok = ok & (qs == ks) & (qs >= 0)
    if mask is not None and mask.dtype == torch.bool:
        ok = ok & mask.to(dev)
    return ok


def _additive(mask, device) -> Optional[torch.Tensor]:
    if mask is None or mask.dtype == torch.bool:
        return None
    return mask.to(device, torch.float64)


def reference_masked_softmax(scores: torch.Tensor, mask=None, *, scale: float = 1.0, causal: bool = False,
                             align="top_left", window=None, k_lengths=None, key_mask=None,
                             segments=None) -> torch.Tensor:
    """softmax(scale * scores + mask) in float64; rows with no allowed key are zeros."""
    shape = scores.shape
    x = scores.to(torch.float64)
    d = x.dim()
    b = shape[0] if d >= 3 else 1
    h = shape[1] if d == 4 else 1
    x4 = x.reshape(b, h, shape[-2], shape[-1])
    m4 = None
    if mask is not None:
        m4 = mask.expand(shape).reshape(b, h, shape[-2], shape[-1])
    ok = reference_allowed(b, h, shape[-2], shape[-1], causal=causal, align=align, window=window,
                           k_lengths=k_lengths, key_mask=key_mask, segments=segments, mask=m4, device=x.device)
    s = x4 * scale
    add = _additive(m4, x.device)
    if add is not None:
        s = s + add
    s = s.masked_fill(~ok, float("-inf"))
    row_max = s.amax(dim=-1, keepdim=True)
    live = torch.isfinite(row_max)
    e = torch.where(ok, torch.exp(s - torch.where(live, row_max, torch.zeros_like(row_max))), torch.zeros_like(s))
    denom = e.sum(dim=-1, keepdim=True)
    probs = torch.where(denom > 0, e / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(e))
    return probs.reshape(shape)


def reference_attention(q, k, v, *, mask=None, causal=False, align="top_left", window=None, q_lengths=None,
                        k_lengths=None, key_mask=None, segments=None, scale=None, upcast: bool = True
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, weights, lse) of masked attention; float64 when upcast, else in q's dtype (the
    "torch in the same precision" baseline of the tolerance rule). Differentiable in q, k, v."""
    dt = torch.float64 if upcast else q.dtype
    qd, kd, vd = q.to(dt), k.to(dt), v.to(dt)
    b, h, lq, d = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    group = h // hkv
    kd = kd.repeat_interleave(group, dim=1)
    vd = vd.repeat_interleave(group, dim=1)
    scale = d ** -0.5 if scale is None else scale
    m4 = mask.expand(b, h, lq, lk) if mask is not None else None
    ok = reference_allowed(b, h, lq, lk, causal=causal, align=align, window=window, q_lengths=q_lengths,
                           k_lengths=k_lengths, key_mask=key_mask, segments=segments, mask=m4, device=q.device)
    s = (qd @ kd.transpose(-1, -2)) * scale
    add = _additive(m4, q.device)
    if add is not None:
        s = s + add.to(dt)
    s = s.masked_fill(~ok, float("-inf"))
    lse = torch.logsumexp(s.to(torch.float64), dim=-1)
    row_max = s.amax(dim=-1, keepdim=True)
    live = torch.isfinite(row_max)
    e = torch.exp(s - torch.where(live, row_max, torch.zeros_like(row_max)))
    denom = e.sum(dim=-1, keepdim=True)
    w = torch.where(live, e / torch.where(live, denom, torch.ones_like(denom)), torch.zeros_like(e))
    out = w @ vd
    return out, w, lse.to(torch.float32)


def reference_attention_mask(q_len, k_len=None, *, causal=False, align="top_left", window=None, q_lengths=None,
                             k_lengths=None, key_mask=None, segments=None, batch=None, dtype=torch.bool, device=None,
                             masked_value=float("-inf")) -> torch.Tensor:
    """The combined (B, 1, Lq, Lk) mask, bool or additive."""
    k_len = q_len if k_len is None else k_len
    seg = list(segments) if isinstance(segments, (tuple, list)) else [segments]
    cands = [t.shape[0] for t in (q_lengths, k_lengths, key_mask, *seg) if t is not None and t.shape[0] != 1]
    b = batch if batch is not None else (cands[0] if cands else 1)
    ok = reference_allowed(b, 1, q_len, k_len, causal=causal, align=align, window=window, q_lengths=q_lengths,
                           k_lengths=k_lengths, key_mask=key_mask, segments=segments, device=device)
    return to_mask_dtype(ok, dtype, masked_value)


def to_mask_dtype(ok: torch.Tensor, dtype, masked_value=float("-inf")) -> torch.Tensor:
    if dtype == torch.bool:
        return ok
    return torch.where(ok, torch.zeros((), dtype=torch.float64, device=ok.device),
                       torch.full((), masked_value, dtype=torch.float64, device=ok.device)).to(dtype)
