"""Context-parallel attention on 2 and 4 local processes (gloo over loopback, 1 thread each) against
single-process masked_attention on the unsharded tensors: output, lse and the gradients of q, k, v
(through out and lse). Inputs are fresh random tensors on every run; many cases share one process
group because starting one costs seconds. Every wait is bounded (group timeout, join timeout)."""
import time

import pytest
import torch

import maskattn as ma
from maskattn.distributed import context_parallel_attention, shard, unshard
from maskattn.distributed._local import run_local

JOIN_TIMEOUT_S = 240
F64_BOUND = 1e-10
SUBGROUP_CASES = ("causal zigzag float64", "gqa causal zigzag float32")


def packed_ids(b, length):
    """(b, length) sorted document ids, a padded (-1) tail on some rows."""
    rows = []
    for _ in range(b):
        ids = torch.repeat_interleave(torch.arange(length), torch.randint(1, max(2, length // 3), (length,)))[:length]
        if torch.rand(()) < 0.7:
            ids[int(torch.randint(length // 2, length + 1, ())):] = -1
        rows.append(ids)
    return torch.stack(rows)


def case_specs(world):
    """(name, layout, B, H, Hkv, L, D, Dv, mask kwargs): L is never a multiple of 2 * world."""
    b, odd = 2, 10 * world + 3
    lengths = torch.randint(1, odd + 1, (b,))
    lengths[0] = 0  # a sequence with no keys: every row -inf / zero (the other keeps some)
    return [
        ("dense contiguous", "contiguous", b, 4, 4, odd, 16, 16, {}),
        ("dense zigzag", "zigzag", b, 4, 4, odd, 16, 16, {}),
        ("causal contiguous", "contiguous", b, 4, 4, odd, 16, 16, {"causal": True}),
        ("causal zigzag", "zigzag", b, 4, 4, odd, 16, 16, {"causal": True}),
        ("causal k_lengths zigzag", "zigzag", b, 4, 4, odd, 16, 16, {"causal": True, "k_lengths": lengths}),
        ("causal k_lengths contiguous", "contiguous", b, 4, 4, odd, 16, 16, {"causal": True, "k_lengths": lengths}),
        ("packed causal zigzag", "zigzag", b, 4, 4, odd, 16, 16, {"causal": True, "segments": packed_ids(b, odd)}),
        ("packed k_lengths contiguous", "contiguous", b, 2, 2, odd, 16, 16,
         {"segments": packed_ids(b, odd), "k_lengths": lengths, "scale": 0.3}),
        ("gqa causal zigzag", "zigzag", b, 6, 2, odd, 16, 8, {"causal": True}),
        ("shorter than the ranks", "zigzag", 1, 2, 1, world + 1, 8, 8, {"causal": True}),
    ]


def single_process(q, k, v, g, h, kw):
    """out, lse, dq, dk, dv of masked_attention on the whole sequence (loss through out and lse)."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out, lse = ma.masked_attention(q, k, v, return_lse=True, **kw)
    loss = (out * g.to(out.dtype)).sum() + (torch.where(torch.isfinite(lse), lse, 0.0) * h).sum()
    return [out.detach(), lse.detach(), *torch.autograd.grad(loss, (q, k, v))]


def build_cases(world):
    """Inputs, float64 references and per-quantity bounds, made in the parent for every dtype."""
    cases = []
    for name, layout, b, hq, hkv, length, d, dv, kw in case_specs(world):
        base = [torch.randn(b, hq, length, d), torch.randn(b, hkv, length, d), torch.randn(b, hkv, length, dv)]
        g, h = torch.randn(b, hq, length, dv), torch.randn(b, hq, length)
        ref = single_process(*(t.double() for t in base), g, h, kw)
        for dtype in (torch.float64, torch.float32):
            if dtype == torch.float64:
                bounds = [F64_BOUND] * 5
            else:
                same = single_process(*(t.float() for t in base), g, h, kw)
                bounds = [max(2 * (s.double() - r.double()).abs().max().item(), 1e-5 * max(1.0, r.abs().max().item()))
                          for s, r in zip(same, ref)]
            finite_lse = ref[1][torch.isfinite(ref[1])]
            lse_peak = max(1.0, finite_lse.abs().max().item() if finite_lse.numel() else 0.0)
            bounds[1] = (2.5e-7 if dtype == torch.float64 else 2e-5) * lse_peak
            cases.append({"name": f"{name} {str(dtype)[6:]}", "layout": layout, "kw": kw, "dtype": dtype,
                          "inputs": [t.to(dtype) for t in base], "g": g, "h": h, "ref": ref, "bounds": bounds})
    return cases


def max_err(ours, ref):
    if ours.numel() == 0:
        return 0.0
    inf_ok = torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    err = (ours.double() - ref.double())[finite].abs().max().item() if finite.any() else 0.0
    return err if inf_ok else float("inf")


def check_case(case, group=None):
    """The ring on this rank's shards of one case: its errors against the references."""
    layout, kw = case["layout"], case["kw"]
    q, k, v = (shard(t, group, layout).requires_grad_() for t in case["inputs"])
    out, lse = context_parallel_attention(q, k, v, group=group, layout=layout, return_lse=True, **kw)
    g, h = (shard(t, group, layout) for t in (case["g"], case["h"]))
    loss = (out * g.to(out.dtype)).sum() + (torch.where(torch.isfinite(lse), lse, 0.0) * h).sum()
    grads = torch.autograd.grad(loss, (q, k, v))
    assert out.dtype == q.dtype and lse.dtype == torch.float32 and all(gr.dtype == q.dtype for gr in grads)
    refs = [shard(r, group, layout) for r in case["ref"]]
    rows = [(what, max_err(o.detach(), r), bound)
            for what, o, r, bound in zip(("out", "lse", "dq", "dk", "dv"), [out, lse, *grads], refs, case["bounds"])]
    rows.append(("unshard(out)", max_err(unshard(out.detach(), group, layout), case["ref"][0]), case["bounds"][0]))
    plain = context_parallel_attention(q.detach(), k.detach(), v.detach(), group=group, layout=layout, **kw)
    rows.append(("out without lse", max_err(plain, out.detach()), 0.0))
    return rows


def ring_rank(cases, subgroup_cases):
    """Every case on the whole group, then ``subgroup_cases`` on two halves of it at once (ranks
    of a subgroup are not the global ranks the transfers address)."""
    report = {case["name"]: check_case(case) for case in cases}
    if subgroup_cases:
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        halves = [torch.distributed.new_group(list(range(parity, world, 2))) for parity in (0, 1)]
        for case in subgroup_cases:
            report[f"subgroup {case['name']}"] = check_case(case, halves[rank % 2])
    return report


@pytest.mark.parametrize("world", [2, 4])
def test_ring_matches_single_process(world):
    cases = build_cases(world)
    subgroup_cases = [c for c in build_cases(world // 2) if c["name"] in SUBGROUP_CASES] if world == 4 else []
    reports = run_local(ring_rank, world, (cases, subgroup_cases), group_timeout_s=60, join_timeout_s=JOIN_TIMEOUT_S)
    failures = [f"rank {r} {name}: {what} error {err:.3g} > {bound:.3g}"
                for r, report in enumerate(reports) for name, rows in report.items()
                for what, err, bound in rows if not err <= bound]
    assert not failures, "\n".join(failures)
    assert all(len(report) == len(cases) + len(subgroup_cases) for report in reports)


def disagreeing_rank(timeout_s):
    """Calls that ranks disagree on must raise on every rank before the group timeout, and leave
    the group usable."""
    rank = torch.distributed.get_rank()
    q = torch.randn(1, 2, 8, 16)
    seen = []

    def expect(error, text, *args, **kw):
        start = time.monotonic()
        with pytest.raises(error, match=text):
            context_parallel_attention(*args, **kw)
        seen.append((text, time.monotonic() - start))

    wrong_d = q[..., :8] if rank == 1 else q
    expect(ValueError, "head size differs across ranks", wrong_d, wrong_d, wrong_d)
    expect(ValueError, "causal differs across ranks", q, q, q, causal=rank == 0)
    wrong_len = q[:, :, :5] if rank == 0 else q
    expect(ValueError, "shard lengths .* are not the zigzag split", wrong_len, wrong_len, wrong_len)
    if rank == 1:
        expect(ValueError, "q must have 4 dims", q[0], q, q)
    else:
        expect(RuntimeError, r"rank\(s\) \[1\] of the group rejected", q, q, q)
    expect(ValueError, "k_lengths must lie in", q, q, q, k_lengths=torch.tensor([17]))
    out = context_parallel_attention(q, q, q, causal=True)  # the group is still in step
    assert out.shape == q.shape
    assert all(elapsed < timeout_s / 2 for _, elapsed in seen), seen
    return seen


def test_disagreeing_ranks_fail_cleanly():
    timeout_s = 30
    reports = run_local(disagreeing_rank, 2, (timeout_s,), group_timeout_s=timeout_s, join_timeout_s=120)
    assert all(len(r) == 5 for r in reports)


def absent_peer_rank(timeout_s):
    """Rank 1 never calls: rank 0 must fail at the group timeout, not hang."""
    if torch.distributed.get_rank() == 1:
        time.sleep(timeout_s + 1)
        return None
    start = time.monotonic()
    q = torch.randn(1, 1, 4, 8)
    with pytest.raises(RuntimeError):
        context_parallel_attention(q, q, q)
    return time.monotonic() - start


def test_absent_peer_times_out():
    timeout_s = 4
    elapsed = run_local(absent_peer_rank, 2, (timeout_s,), group_timeout_s=timeout_s, join_timeout_s=90)[0]
    assert timeout_s * 0.5 <= elapsed <= timeout_s + 10, elapsed
