"""The attention calls to profile with Nsight Compute (ncu), once each, in this order: a decoding
step (bf16, 8 sequences x 32 heads, one query, 4096 cached keys), then the bench's causal forward
and its backward (bf16, 2x16x8192x128). ncu picks the kernels by name; this script only runs them.
Usage: python bench/gpu/profile_cases.py"""
import torch

import maskattn as ma


def main():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    qd = torch.randn(8, 32, 1, 128, device=dev, dtype=torch.bfloat16)
    kd, vd = (torch.randn(8, 32, 4096, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    ma.masked_attention(qd, kd, vd, causal=True, align="bottom_right")
    q, k, v = (torch.randn(2, 16, 8192, 128, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out = ma.masked_attention(q, k, v, causal=True)
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    print("profile cases ran")


if __name__ == "__main__":
    main()
