"""Context-parallel attention on local CPU ranks against one process:
``python -m maskattn.bench.context_parallel [--world 2] [--shape 1,8,8192,64] [--repeats 2] [--json PATH]``.

Every process (the single-process baseline too) runs 1 torch thread. Per layout and pass (forward;
backward) it reports, per rank:
  speedup = single-process wall time / this rank's wall time
  balance = this rank's compute CPU time / (single-process CPU time / world)   (1.0: an even split)
  kv wait / alone: time waiting on k/v transfers / the same transfers with nothing to compute,
  hidden = 1 - wait / alone                                                    (1.0: all hidden)
  grad wait / alone: the same for the backward's dk/dv (its last hop home is exposed by design)
CPU time (of the rank's compute thread) measures work whatever else runs on the machine; wall
times and waits depend on it: each repeat starts behind a barrier and the best (least wall time)
of the repeats is kept, the machine being shared.
"""
import argparse
import json
import time
from typing import Dict, List

import torch
import torch.distributed as dist

from ..attention import masked_attention
from ..distributed import context_parallel_attention
from ..distributed import _stats
from ..distributed._local import run_local
from ..distributed._ring import Ring
from .allocator import keep_freed_memory

LAYOUTS = ("zigzag", "contiguous")


def _inputs(shape, length):
    b, h, _, d = shape
    return [torch.randn(b, h, length, d, requires_grad=True) for _ in range(3)]


def _best(fn, repeats: int):
    """(the run with the least wall time among ``repeats``, with its counters; the last result)."""
    best, result = None, None
    for _ in range(repeats):
        if dist.is_initialized():
            dist.barrier()  # ranks start together: one rank's wait is not the other's start-up
        with _stats.collect() as counters:
            start, cpu = time.perf_counter(), time.process_time()
            result = fn()
            wall = time.perf_counter() - start
        row = {"wall_s": wall, "cpu_s": time.process_time() - cpu, **counters}
        if best is None or wall < best["wall_s"]:
            best = row
    return best, result


def _time_passes(attend, shape, length: int, repeats: int) -> Dict[str, dict]:
    """Best forward and backward of ``attend(q, k, v)`` on ``length`` positions, after a warm-up on
    short inputs (code paths, connections; a full-size warm-up would double a long run)."""
    warm = _inputs(shape, min(length, 256))
    attend(*warm).sum().backward()
    q, k, v = _inputs(shape, length)
    fwd, out = _best(lambda: attend(q, k, v), repeats)
    grad = torch.randn_like(out)
    bwd, _ = _best(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True), repeats)
    return {"fwd": fwd, "bwd": bwd}


def single_process(shape, causal: bool, repeats: int) -> Dict[str, float]:
    keep_freed_memory()
    passes = _time_passes(lambda q, k, v: masked_attention(q, k, v, causal=causal), shape, shape[2], repeats)
    return {mode: {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]} for mode, r in passes.items()}


def _transfer_alone(numel: int, repeats: int) -> float:
    ring = Ring(None, dist.get_world_size(), dist.get_rank())
    buf = torch.randn(numel)
    return _best(lambda: ring.pass_on(buf, numel, 7, "alone").wait(), max(repeats, 5))[0]["wall_s"]


def ring_rank(shape, causal: bool, layout: str, repeats: int) -> Dict[str, Dict[str, float]]:
    keep_freed_memory()
    world = dist.get_world_size()
    b, h, length, d = shape
    n = length // world  # the bench keeps L a multiple of 2 * world: equal shards
    passes = _time_passes(lambda q, k, v: context_parallel_attention(q, k, v, layout=layout, causal=causal),
                          shape, n, repeats)
    return {**passes, "transfer_s": _transfer_alone(2 * b * h * n * d, repeats)}


def measure(shape, causal: bool, world: int, repeats: int) -> List[dict]:
    print("# single process ...", flush=True)
    single = run_local(single_process, 1, (shape, causal, repeats), join_timeout_s=3600)[0]
    rows = []
    for layout in LAYOUTS:
        print(f"# {world} ranks, {layout} ...", flush=True)
        ranks = run_local(ring_rank, world, (shape, causal, layout, repeats), join_timeout_s=3600)
        for rank, result in enumerate(ranks):
            for mode in ("fwd", "bwd"):
                rows.append(_row(shape, causal, world, layout, rank, mode, single[mode], result[mode],
                                 result["transfer_s"]))
    return rows


def _row(shape, causal, world, layout, rank, mode, single, r, transfer_s) -> dict:
    # forward: world-1 k/v transfers; backward: those, and world of the fp32 gradients (the last
    # hop home exposed by construction)
    kv_alone = transfer_s * (world - 1)
    grad_alone = transfer_s * world if mode == "bwd" else 0.0
    return {
        "family": "context_parallel", "device": "cpu", "dtype": "float32", "shape": list(shape), "causal": causal,
        "world": world, "threads_per_rank": 1, "layout": layout, "rank": rank, "mode": mode,
        "single_s": single["wall_s"], "single_cpu_s": single["cpu_s"], "wall_s": r["wall_s"],
        "compute_cpu_s": r["compute_cpu_s"], "balance": r["compute_cpu_s"] / (single["cpu_s"] / world),
        "speedup": single["wall_s"] / r["wall_s"],
        "wait_kv_s": r.get("wait_kv_s", 0.0), "kv_alone_s": kv_alone,
        "hidden_kv": 1.0 - min(1.0, r.get("wait_kv_s", 0.0) / max(kv_alone, 1e-12)),
        "wait_grad_s": r.get("wait_grad_s", 0.0), "grad_alone_s": grad_alone,
        "bytes_sent": int(r.get("bytes_kv", 0) + r.get("bytes_grad", 0)),
    }


def render(rows: List[dict]) -> str:
    head = (f"{'layout':>10} {'rank':>4} {'mode':>4} {'single s':>8} {'wall s':>7} {'speedup':>7} {'cpu s':>7} "
            f"{'balance':>7} {'kv wait/alone ms':>16} {'hidden':>6} {'grad wait/alone ms':>18} {'MB sent':>7}")
    lines = [head]
    for r in rows:
        grad = f"{r['wait_grad_s'] * 1e3:.1f}/{r['grad_alone_s'] * 1e3:.1f}" if r["mode"] == "bwd" else "-"
        lines.append(f"{r['layout']:>10} {r['rank']:>4} {r['mode']:>4} {r['single_s']:8.2f} {r['wall_s']:7.2f} "
                     f"{r['speedup']:7.2f} {r['compute_cpu_s']:7.2f} {r['balance']:7.2f} "
                     f"{r['wait_kv_s'] * 1e3:>7.1f}/{r['kv_alone_s'] * 1e3:<8.1f} {r['hidden_kv']:6.2f} "
                     f"{grad:>18} {r['bytes_sent'] / 1e6:7.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskattn.bench.context_parallel", description=__doc__)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--shape", default="1,8,8192,64", help="B,H,L,D of the whole sequence")
    parser.add_argument("--dense", action="store_true", help="no causal mask (default: causal)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")
    args = parser.parse_args(argv)
    shape = tuple(int(x) for x in args.shape.split(","))
    if len(shape) != 4 or shape[2] % (2 * args.world):
        raise SystemExit("--shape must be B,H,L,D with L a multiple of 2 * world")
    rows = measure(shape, not args.dense, args.world, args.repeats)
    print(f"# cpu, torch {torch.__version__}, {args.world} ranks x 1 thread, shape {shape}, "
          f"{'dense' if args.dense else 'causal'} float32, best of {args.repeats}")
    print(render(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
