"""Mask construction: maskattn's mask builders against torch's tril and arange comparisons."""
from typing import List

import torch

import maskattn as ma

from .harness import Case, Method


def _tril(n: int, device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def _arange_causal(n: int, device) -> torch.Tensor:
    pos = torch.arange(n, device=device)
    return pos.view(n, 1) >= pos.view(1, n)


def _arange_causal_padded(n: int, k_lengths: torch.Tensor) -> torch.Tensor:
    pos = torch.arange(n, device=k_lengths.device)
    causal = pos.view(1, 1, n, 1) >= pos.view(1, 1, 1, n)
    return causal & (pos.view(1, 1, 1, n) < k_lengths.view(-1, 1, 1, 1))


def causal_case(n: int, device: torch.device) -> Case:
    return Case("masks", "causal_mask", device, torch.bool, (n, n), "fwd", make_inputs=dict, methods=[
        Method("maskattn causal_mask", lambda _: lambda: ma.causal_mask(n, device=device), ours=True),
        Method("torch ones().tril()", lambda _: lambda: _tril(n, device)),
        Method("torch arange i>=j", lambda _: lambda: _arange_causal(n, device)),
    ], work={"bytes": n * n})


def padded_case(batch: int, n: int, device: torch.device) -> Case:
    def make_inputs():
        return {"k_lengths": torch.randint(n // 2, n + 1, (batch,), device=device)}

    return Case("masks", "attention_mask causal+k_lengths", device, torch.bool, (batch, 1, n, n), "fwd",
                make_inputs=make_inputs, methods=[
                    Method("maskattn attention_mask",
                           lambda x: lambda: ma.attention_mask(n, causal=True, k_lengths=x["k_lengths"]), ours=True),
                    Method("torch arange i>=j & j<len", lambda x: lambda: _arange_causal_padded(n, x["k_lengths"])),
                ], work={"bytes": batch * n * n})


def cases(device: torch.device, quick: bool) -> List[Case]:
    if device.type == "cuda":
        sizes, padded = ([4096, 16384], [(8, 4096)]) if quick else ([4096, 16384, 32768], [(8, 4096), (4, 16384)])
    else:
        sizes, padded = ([1024, 4096], [(8, 1024)]) if quick else ([1024, 4096, 8192], [(8, 1024), (8, 4096)])
    return [causal_case(n, device) for n in sizes] + [padded_case(b, n, device) for b, n in padded]
