"""Counters of the ring for the bench: compute and transfer-wait times, bytes sent. Off unless a
``collect()`` block is open. Times are host wall clock (``*_s``) and this thread's CPU time
(``*_cpu_s``: the work done, whatever else shares the machine); meaningful on CPU (on GPU they
time kernel launches, not kernels)."""
import contextlib
import time
from collections import Counter
from typing import Iterator, Optional

_current: Optional[Counter] = None


def add(key: str, value: float) -> None:
    if _current is not None:
        _current[key] += value


@contextlib.contextmanager
def timed(key: str) -> Iterator[None]:
    """Adds the wall and CPU time of the block to ``key_s`` and ``key_cpu_s``."""
    if _current is None:
        yield
        return
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        add(f"{key}_s", time.perf_counter() - wall)
        add(f"{key}_cpu_s", time.thread_time() - cpu)


@contextlib.contextmanager
def collect() -> Iterator[Counter]:
    """``with collect() as c: ...`` fills ``c`` with the counters of the calls inside."""
    global _current
    previous, _current = _current, Counter()
    try:
        yield _current
    finally:
        _current = previous
