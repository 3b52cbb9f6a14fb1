"""Runs a function on ``world`` local processes joined in a gloo group over loopback (the tests and
the bench). The parent hosts the rendezvous store on a free port, so no port is guessed; every
wait is bounded: the group's timeout inside the ranks, ``join_timeout_s`` in the parent."""
import os
import sys
import time
from datetime import timedelta
from typing import Any, Callable, List, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank_main(rank: int, world: int, port: int, threads: int, group_timeout_s: float, fn: Callable,
               args: Sequence, results) -> None:
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    torch.set_num_threads(threads)
    timeout = timedelta(seconds=group_timeout_s)
    store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
    try:
        value = fn(*args)
        try:
            dist.barrier()  # no rank tears down its connections while a peer still uses them
        except RuntimeError:
            pass  # a group that fn left broken (a test of timeouts): the barrier timed out, nothing to wait for
        results.put((rank, value))
    finally:
        dist.destroy_process_group()


def run_local(fn: Callable, world: int, args: Sequence = (), *, threads: int = 1, group_timeout_s: float = 60.0,
              join_timeout_s: float = 300.0) -> List[Any]:
    """``fn(*args)`` on each of ``world`` ranks (1 torch thread each by default); returns the ranks'
    return values by rank. A rank's exception is raised here with its traceback; a run past
    ``join_timeout_s`` is killed and raises ``TimeoutError``."""
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=group_timeout_s))
    procs = mp.start_processes(_rank_main, args=(world, store.port, threads, group_timeout_s, fn, args, results),
                               nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + join_timeout_s
    got = {}
    try:
        while not procs.join(timeout=0.2):
            while not results.empty():
                rank, value = results.get()
                got[rank] = value
            if time.monotonic() > deadline:
                raise TimeoutError(f"maskattn.distributed: {world} local ranks still running after {join_timeout_s} s")
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.kill()
    while not results.empty():
        rank, value = results.get()
        got[rank] = value
    return [got.get(r) for r in range(world)]
