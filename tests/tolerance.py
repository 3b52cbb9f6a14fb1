"""The tests' accuracy rule (FlashAttention's): in a half precision our error against the float64
reference may be at most twice the error of torch computing the same thing in that precision."""
import torch

# absolute slack on top of the rule, for results that are nearly exact in both
SLACK = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-4, torch.bfloat16: 2e-3}


def max_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    if x.numel() == 0:
        return 0.0
    return (x.double() - ref.double()).abs().max().item()


# with relative=True, a floor relative to the largest reference value on top: for results whose
# size the inputs choose (extreme scales), where float32 rounding of a sum of large terms is the noise
RELATIVE = {torch.float64: 1e-10, torch.float32: 1e-5}


def assert_rule(ours: torch.Tensor, ref64: torch.Tensor, torch_same_precision: torch.Tensor = None, what="",
                relative: bool = False):
    assert not torch.isnan(ours).any(), f"{what}: NaN in output"
    slack = SLACK[ours.dtype]
    if relative and ref64.numel():
        slack += RELATIVE.get(ours.dtype, 0.0) * max(1.0, ref64.abs().max().item())
    err = max_err(ours, ref64)
    if torch_same_precision is None or ours.dtype in (torch.float64, torch.float32):
        bound = slack if torch_same_precision is None else max(slack, 2 * max_err(torch_same_precision, ref64))
    else:
        bound = 2 * max_err(torch_same_precision, ref64) + slack
    assert err <= bound, f"{what}: max error {err:.3g} > bound {bound:.3g} ({ours.dtype})"
