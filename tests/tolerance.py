"""The tests' accuracy rule (FlashAttention's): in a half precision our error against the float64
reference may be at most twice the error of torch computing the same thing in that precision."""
import math

import torch

from maskattn.reference import reference_allowed

# absolute slack on top of the rule, for results that are nearly exact in both
SLACK = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-4, torch.bfloat16: 2e-3}


def max_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    if x.numel() == 0:
        return 0.0
    return (x.double() - ref.double()).abs().max().item()


# with relative=True, a floor relative to the largest reference value on top, for results whose size
# the inputs choose (extreme scales, long sums): float32 rounding of large terms, and in the half
# dtypes one unit in the last place of the largest value (a gradient of 22 in bfloat16 is 0.125
# from its neighbours, and the reference gradient is itself rounded to the input's dtype)
RELATIVE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}


# bits after the point of each half dtype's significand
HALF_MANTISSA_BITS = {torch.float16: 10, torch.bfloat16: 7}


def rounded_reference_ulp(ours: torch.Tensor, ref: torch.Tensor):
    """Where the reference itself was rounded to the result's half dtype (a gradient of a half
    input), it sits up to half a unit in the last place from the exact value and ours as far on
    the other side: two correctly rounded results one ulp apart. Per element; 0 otherwise."""
    bits = HALF_MANTISSA_BITS.get(ours.dtype)
    if bits is None or ref.dtype != ours.dtype:
        return 0.0
    _, exponent = torch.frexp(ref.double().abs())
    # ulp of a value m * 2**e (m in [0.5, 1)) is 2**(e - 1 - bits); subnormals keep the smallest
    smallest = torch.finfo(ours.dtype).smallest_normal * 2.0 ** -bits
    return torch.ldexp(torch.ones_like(exponent, dtype=torch.float64), exponent - 1 - bits).clamp_min(smallest)


def excess_err(x: torch.Tensor, ref: torch.Tensor, allowance) -> float:
    """The largest error left after each element's own rounding allowance."""
    if x.numel() == 0:
        return 0.0
    return ((x.double() - ref.double()).abs() - allowance).max().item()


def assert_rule(ours: torch.Tensor, ref64: torch.Tensor, torch_same_precision: torch.Tensor = None, what="",
                relative: bool = False, extra: float = 0.0):
    """`extra`: a further allowance the caller derives for a documented source of error."""
    assert not torch.isnan(ours).any(), f"{what}: NaN in output"
    slack = SLACK[ours.dtype] + extra
    if relative and ref64.numel():
        slack += RELATIVE.get(ours.dtype, 0.0) * max(1.0, ref64.abs().max().item())
    err = excess_err(ours, ref64, rounded_reference_ulp(ours, ref64))
    base = 0.0 if torch_same_precision is None else max_err(torch_same_precision, ref64)
    if base != base:  # torch itself gives NaN in this precision (-1e9 overflows float16): the slack alone
        base = 0.0
    if ours.dtype in (torch.float64, torch.float32):
        bound = max(slack, 2 * base)
    else:
        bound = 2 * base + slack
    assert err <= bound, (f"{what}: max error {err:.3g} (past each element's rounding allowance) > bound "
                          f"{bound:.3g} ({ours.dtype}; raw max error {max_err(ours, ref64):.3g})")


def torch_softmax_grad(probs: torch.Tensor, grad: torch.Tensor, scale: float) -> torch.Tensor:
    """torch's softmax backward as a user gets it: from the output saved in the op's dtype (float32
    math for the half dtypes), so the baseline carries the same rounded-output error ours does."""
    math_dtype = torch.float32 if probs.dtype in (torch.float16, torch.bfloat16) else probs.dtype
    p, g = probs.to(math_dtype), grad.to(math_dtype)
    return (scale * p * (g - (g * p).sum(-1, keepdim=True))).to(probs.dtype)


def torch_masked_softmax(x: torch.Tensor, mask, scale: float, **kw) -> torch.Tensor:
    """torch's own masked_fill + softmax, as a user writes it, in x's dtype (float32 math for the half
    dtypes, as torch's softmax does inside): the baseline of the rule for masked_softmax."""
    shape = x.shape
    b = shape[0] if x.dim() >= 3 else 1
    h = shape[1] if x.dim() == 4 else 1
    m4 = mask.expand(shape).reshape(b, h, shape[-2], shape[-1]) if mask is not None else None
    ok = reference_allowed(b, h, shape[-2], shape[-1], mask=m4, device=x.device, **kw).reshape(shape)
    math_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    s = x.to(math_dtype) * scale
    if mask is not None and mask.dtype != torch.bool:
        s = s + mask.to(math_dtype)
    return torch.nan_to_num(s.masked_fill(~ok, float("-inf")).softmax(-1), nan=0.0).to(x.dtype)


def delta_error(out, ref_out, dout, p, q, k, scale=None):
    """Bounds on the (dq, dk, dv) error a flash backward inherits from its delta = rowsum(dout * out):
    it reads out as stored (rounded to its dtype, as FlashAttention does), and sums in float32.
    That error times P is dS's, and dS feeds dq = scale dS k and dk = scale dS^T q (dv does not use
    delta). Rows with one kept key, where the exact dq and dk cancel to 0, show all of it."""
    if out.numel() == 0:
        return 0.0, 0.0, 0.0
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    terms = out.detach().double() * dout.double()
    rounding = ((out.detach().double() - ref_out.detach()) * dout.double()).sum(-1).abs()
    # sums of 16-lane partials and a tree over the lanes (the CPU and CUDA kernels' order), in
    # float32 (float64 for float64 inputs)
    depth = math.ceil(out.shape[-1] / 16) + 5
    unit = 2.0 ** -53 if out.dtype == torch.float64 else 2.0 ** -24
    e = rounding + depth * unit * terms.abs().sum(-1)
    ds = p.detach().double().nan_to_num() * e.unsqueeze(-1)
    group = q.shape[1] // k.shape[1]
    dq = abs(scale) * ds @ k.detach().double().abs().repeat_interleave(group, dim=1)
    dk = abs(scale) * ds.transpose(-1, -2) @ q.detach().double().abs()
    dk = dk.view(k.shape[0], k.shape[1], group, *dk.shape[2:]).sum(2)
    return dq.max().item() if dq.numel() else 0.0, dk.max().item() if dk.numel() else 0.0, 0.0
