"""Every CUDA kernel family once, at small odd sizes, for compute-sanitizer (memcheck, racecheck,
synccheck, initcheck) on a GPU machine: mask build, masked softmax forward and backward (short and
long rows, explicit masks), attention forward and backward on the tensor-core path (float16,
bfloat16, head sizes 64/128/256, GQA, Dv != D) and the float32 path, fully masked rows, dropout,
segments, windows. Each result is checked against the float64 reference, so a case that runs clean
under the sanitizer but computes garbage still fails. Usage: python bench/gpu/kernel_cases.py [cuda|cpu]
(cpu: the same cases on the CPU kernels, to check this script without a GPU)."""
import sys

import torch

import maskattn as ma
from maskattn.reference import reference_attention, reference_masked_softmax


def close(ours, ref, what, tol):
    err = (ours.double() - ref.double()).abs().max().item() if ours.numel() else 0.0
    scale = max(1.0, ref.double().abs().max().item()) if ref.numel() else 1.0
    if not err <= tol * scale:  # NaN fails too
        raise AssertionError(f"{what}: max error {err:.3g} > {tol * scale:.3g}")


TOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}


def mask_cases(dev):
    lengths = torch.tensor([5, 0, 37], device=dev)
    for dtype in (torch.bool, torch.float32, torch.float16):
        ma.attention_mask(37, 53, causal=True, align="bottom_right", k_lengths=lengths, batch=3, dtype=dtype,
                          device=dev)
        ma.causal_mask(100, 10, window=(4, 0), dtype=dtype, device=dev)
    ma.padding_mask(lengths, 41)
    return "mask build: attention_mask, causal_mask (band past the keys), padding_mask"


def softmax_cases(dev):
    done = []
    for cols in (7, 129, 1000, 5000):
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(2, 3, 9, cols, device=dev).to(dtype).requires_grad_()
            kl = torch.tensor([cols, cols // 3], device=dev)
            bool_mask = torch.rand(2, 1, 9, cols, device=dev) > 0.3
            for kw in ({"causal": True, "k_lengths": kl}, {"mask": bool_mask}, {"window": (3, 2)}):
                kw = dict(kw)
                mask = kw.pop("mask", None)
                y = ma.masked_softmax(x, mask, scale=0.7, **kw)
                ref = reference_masked_softmax(x, mask, scale=0.7, **kw)
                close(y, ref, f"softmax {cols} {dtype} {sorted(kw)}", TOL[dtype])
                g = torch.randn_like(y)
                gx, = torch.autograd.grad(y, x, g)
                rx, = torch.autograd.grad(ref, x, g.double())
                close(gx, rx, f"softmax grad {cols} {dtype} {sorted(kw)}", 4 * TOL[dtype])
        done.append(cols)
    return f"masked softmax fwd/bwd, rows of {done}"


def attention_case(dev, dtype, b, h, hkv, lq, lk, d, dv, **kw):
    q = torch.randn(b, h, lq, d, device=dev).to(dtype).requires_grad_()
    k = torch.randn(b, hkv, lk, d, device=dev).to(dtype).requires_grad_()
    v = torch.randn(b, hkv, lk, dv, device=dev).to(dtype).requires_grad_()
    out, lse = ma.masked_attention(q, k, v, return_lse=True, **kw)
    ref, _, _ = reference_attention(q, k, v, **kw)
    what = f"attention {dtype} {h}/{hkv} {lq}x{lk} d={d} dv={dv} {sorted(kw)}"
    close(out, ref, what, TOL[dtype])
    g = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), g)
    refs = torch.autograd.grad(ref, (q, k, v), g.double())
    for name, o, r in zip("qkv", ours, refs):
        close(o, r, f"d{name} {what}", 4 * TOL[dtype])


def attention_cases(dev):
    b = 2
    kl = torch.tensor([77, 0], device=dev)  # a batch whose keys are all padding: fully masked rows
    ql = torch.tensor([45, 12], device=dev)
    count = 0
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for d, dv in ((64, 64), (128, 128), (256, 256), (80, 48)):
            attention_case(dev, dtype, b, 4, 2, 45, 77, d, dv, causal=True, align="bottom_right", k_lengths=kl)
            count += 1
        attention_case(dev, dtype, b, 4, 4, 33, 33, 64, 64, mask=torch.rand(b, 1, 33, 33, device=dev) > 0.4)
        attention_case(dev, dtype, b, 4, 1, 1, 130, 64, 64, causal=True, align="bottom_right")  # decoding rows
        # a decoding step over a long cache: the tensor-core forward splits the keys across blocks
        attention_case(dev, dtype, b, 4, 2, 1, 1500, 128, 128, causal=True, align="bottom_right",
                       k_lengths=torch.tensor([1500, 301], device=dev))
        attention_case(dev, dtype, b, 2, 2, 70, 70, 64, 64, window=(9, 4), q_lengths=ql.clamp(max=70))
        segs = torch.sort(torch.randint(0, 3, (b, 61), device=dev), -1)[0]
        attention_case(dev, dtype, b, 2, 2, 61, 61, 64, 64, segments=segs, causal=True)
        attention_case(dev, dtype, b, 2, 2, 61, 61, 64, 64, mask=torch.randn(61, 61, device=dev))
        count += 6
    # dropout: runs (kernels and the generator) with the keep mask regenerated in the backward
    q, k, v = (torch.randn(2, 4, 50, 64, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out = ma.masked_attention(q, k, v, causal=True, dropout_p=0.2)
    torch.autograd.grad(out, (q, k, v), torch.randn_like(out))
    return f"attention fwd/bwd: {count} cases (tensor-core f16/bf16, fp32 path, GQA, decoding, masks), dropout"


def main():
    dev = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cuda")
    print(f"seed {torch.seed()}")  # fresh inputs every run, the seed printed to repeat one
    for family in (mask_cases, softmax_cases, attention_cases):
        print(f"ok  {family(dev)}", flush=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    print("all kernel cases passed")


if __name__ == "__main__":
    main()
