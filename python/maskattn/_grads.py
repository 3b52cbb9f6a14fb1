"""The backward formulas as differentiable torch ops, for double backward.

The fused backward kernels have no derivative of their own. When the backward is itself recorded
(``create_graph=True``: gradient penalties, Hessian-vector products), ``_ops`` computes the
gradients with these functions instead, so a second differentiation sees the exact function.
"""
import torch


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def reduce_to(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A gradient of the broadcast mask's shape summed back to the mask's own shape and dtype."""
    extra = grad.dim() - mask.dim()
    if extra > 0:
        grad = grad.sum(tuple(range(extra)))
    dims = tuple(d for d, n in enumerate(mask.shape) if n == 1 and grad.shape[d] != 1)
    if dims:
        grad = grad.sum(dims, keepdim=True)
    return grad.to(mask.dtype)


def softmax_backward(grad: torch.Tensor, probs: torch.Tensor, scale: float, mask=None):
    """(d scores, d mask) of ``softmax(scale * scores + mask)``: with ``x = p * (g - sum(g * p))``,
    d scores = ``scale * x`` and d mask = ``x`` summed to the mask's shape (None without a mask).
    Masked keys have ``p == 0``, so the mask needs no second look."""
    dt = _math_dtype(probs.dtype)
    g, p = grad.to(dt), probs.to(dt)
    x = p * (g - (g * p).sum(-1, keepdim=True))
    return (scale * x).to(probs.dtype), None if mask is None else reduce_to(x, mask)


def _group_sum(x: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """(B, H, L, D) gradients of the query heads -> (B, Hkv, L, D): a k/v head gets its group's sum."""
    b, h, n, d = x.shape
    return x.view(b, kv_heads, h // kv_heads, n, d).sum(2)


def attention_backward(dout, dlse, dweights, q, k, v, weights, scale: float, mask=None):
    """dq, dk, dv (and d mask, summed to an additive ``mask``'s shape, or None) of ``out = P v``, ``lse``, ``P = softmax(q k^T * scale + mask)`` from the weights P
    (which already hold every mask: masked keys and padded rows are 0):

        dv = P^T dout,  dP = dout v^T + dweights,  dS = P * (dP - rowsum(dP * P)) + dlse * P,
        dq = scale * dS k,  dk = scale * dS^T q.
    """
    dt = _math_dtype(q.dtype)
    hkv = k.shape[1]
    group = q.shape[1] // hkv
    qd = q.to(dt)
    kd = k.to(dt).repeat_interleave(group, dim=1)
    vd = v.to(dt).repeat_interleave(group, dim=1)
    p = weights.to(dt)
    dp = torch.zeros_like(p) if dout is None else dout.to(dt) @ vd.transpose(-1, -2)
    if dweights is not None and dweights.numel() > 0:
        dp = dp + dweights.to(dt)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    if dlse is not None:
        ds = ds + dlse.to(dt).unsqueeze(-1) * p
    dq = scale * (ds @ kd)
    dk = _group_sum(scale * (ds.transpose(-1, -2) @ qd), hkv)
    dv = torch.zeros_like(vd) if dout is None else p.transpose(-1, -2) @ dout.to(dt)
    dmask = None if mask is None else reduce_to(ds, mask)
    return dq.to(q.dtype), dk.to(k.dtype), _group_sum(dv, hkv).to(v.dtype), dmask
