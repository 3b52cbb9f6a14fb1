"""Counters of the ring for the bench: compute seconds, seconds waiting on transfers, bytes sent,
blocks computed and skipped. Off unless a ``collect()`` block is open; host wall-clock times, so
meaningful on CPU (on GPU they time kernel launches, not kernels)."""
import contextlib
from collections import Counter
from typing import Iterator, Optional

_current: Optional[Counter] = None


def add(key: str, value: float) -> None:
    if _current is not None:
        _current[key] += value


@contextlib.contextmanager
def collect() -> Iterator[Counter]:
    """``with collect() as c: ...`` fills ``c`` with the counters of the calls inside."""
    global _current
    previous, _current = _current, Counter()
    try:
        yield _current
    finally:
        _current = previous
