"""Float64 torch references for every op, written from the contract with plain tensor ops
(independent of the kernels' MaskSpec), used by the tests and by ``python -m maskattn check``."""
import math
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


def _row_max(s: torch.Tensor) -> torch.Tensor:
    """max over the last dim, -inf for rows with no element (amax refuses an empty dim)."""
    return torch.cat([s, s.new_full(s.shape[:-1] + (1,), float("-inf"))], dim=-1).amax(dim=-1, keepdim=True)


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
    # softmax is unchanged by a constant per row: x less its row max, then scaled, keeps a mask's
    # values visible at huge scales (at 1e20, x * scale swamps a mask of 1 even in float64)
    shift = _row_max(x4.detach().masked_fill(~ok, float("-inf")))
    s = (x4 - torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))) * scale
    add = _additive(m4, x.device)
    if add is not None:
        s = s + add
    s = s.masked_fill(~ok, float("-inf"))
    row_max = _row_max(s)
    live = torch.isfinite(row_max)
    e = torch.where(ok, torch.exp(s - torch.where(live, row_max, torch.zeros_like(row_max))), torch.zeros_like(s))
    denom = e.sum(dim=-1, keepdim=True)
    probs = torch.where(denom > 0, e / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(e))
    return probs.reshape(shape)


def reference_attention(q, k, v, *, mask=None, causal=False, align="top_left", window=None, q_lengths=None,
                        k_lengths=None, key_mask=None, segments=None, scale=None, dropout_keep=None,
                        dropout_p: float = 0.0, scores_dtype=None, upcast: bool = True
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, weights, lse) of masked attention; float64 when upcast, else in q's dtype (the
    "torch in the same precision" baseline of the tolerance rule). Differentiable in q, k, v and
    an additive mask. dropout_keep (bool (B, H, Lq, Lk), the positions a kernel kept) applies
    dropout p to the probabilities that multiply v; weights stay undropped. scores_dtype rounds
    the scaled masked scores to the precision a kernel holds them in (float32 for every dtype
    but float64), where that precision decides the result (keys that all carry -1e9)."""
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
    if scores_dtype is not None:
        # as a kernel: the scaled product and the mask each held in scores_dtype, added there once
        # (with a mask of 1e7 one rounding of the sum moves a score by 0.5: the order decides it)
        s = s.to(scores_dtype).to(dt)
        add = None if add is None else add.to(scores_dtype).to(dt)
    if add is not None:
        s = s + add.to(dt)
    s = s.masked_fill(~ok, float("-inf"))
    if scores_dtype is not None:
        s = s.to(scores_dtype).to(dt)
    lse = torch.logsumexp(s.to(torch.float64), dim=-1)
    row_max = _row_max(s)
    live = torch.isfinite(row_max)
    e = torch.exp(s - torch.where(live, row_max, torch.zeros_like(row_max)))
    denom = e.sum(dim=-1, keepdim=True)
    w = torch.where(live, e / torch.where(live, denom, torch.ones_like(denom)), torch.zeros_like(e))
    dropped = w if dropout_keep is None else w * dropout_keep.to(dt) * (1.0 / (1.0 - dropout_p))
    out = dropped @ vd
    return out, w, lse.to(torch.float32)


def _philox4x32(seed: int, offset: int, counter: torch.Tensor):
    """The four words of Philox4x32-10 for counters (counter, offset) under key seed, in int64
    arithmetic that never overflows (products split into 16-bit halves)."""
    m32 = 0xFFFFFFFF

    def mulhilo(m: int, c: torch.Tensor):
        t_lo, t_hi = m * (c & 0xFFFF), m * (c >> 16)
        x = t_lo + ((t_hi & 0xFFFF) << 16)
        return (t_hi >> 16) + (x >> 32), x & m32

    c0, c1 = counter & m32, counter >> 32
    c2 = torch.full_like(counter, offset & m32)
    c3 = torch.full_like(counter, (offset >> 32) & m32)
    k0, k1 = seed & m32, (seed >> 32) & m32
    for _ in range(10):
        hi0, lo0 = mulhilo(0xD2511F53, c0)
        hi1, lo1 = mulhilo(0xCD9E8D57, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + 0x9E3779B9) & m32, (k1 + 0xBB67AE85) & m32
    return c0, c1, c2, c3


def reference_dropout_keep(batch: int, heads: int, q_len: int, k_len: int, p: float, seed: int, offset: int,
                           device=None) -> torch.Tensor:
    """Bool (B, H, Lq, Lk): the keep decisions of attention dropout, written from the rule in the
    docs (element e = ((b H + h) Lq + i) Lk + j draws the 16 bits (e % 8) of Philox4x32-10 at
    counter (e // 8, offset) under key seed, and is kept iff they are >= round(p * 65536))."""
    n = batch * heads * q_len * k_len
    e = torch.arange(n, dtype=torch.int64, device=device)
    words = torch.stack(_philox4x32(seed & (2 ** 64 - 1), offset & (2 ** 64 - 1), e // 8), -1)
    k = e % 8
    word = words.gather(-1, (k // 2).unsqueeze(-1)).squeeze(-1)
    bits = torch.where(k % 2 == 1, word >> 16, word & 0xFFFF)
    return (bits >= math.floor(p * 65536 + 0.5)).view(batch, heads, q_len, k_len)


def reference_attention_mask(q_len, k_len=None, *, causal=False, align="top_left", window=None, q_lengths=None,
                             k_lengths=None, key_mask=None, segments=None, batch=None, dtype=torch.bool, device=None,
                             masked_value=float("-inf")) -> torch.Tensor:
    """The combined (B, 1, Lq, Lk) mask, bool or additive."""
    k_len = q_len if k_len is None else k_len
    seg = list(segments) if isinstance(segments, (tuple, list)) else [segments]
    if device is None:  # as maskattn.attention_mask: on the device of the tensors given
        device = next((t.device for t in (q_lengths, k_lengths, key_mask, *seg) if isinstance(t, torch.Tensor)), None)
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
