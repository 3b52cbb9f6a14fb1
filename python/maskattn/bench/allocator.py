"""Keeps freed CPU memory in the process for the bench (glibc's mallopt).

torch's CPU allocator hands every large block back to the OS, so each op that allocates its
output pays for faulting fresh pages, often more than the op itself. Every method in the bench
allocates alike, so keeping freed memory makes the comparison one of kernels, not page faults.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> str:
    """Returns a line saying what was set (or why nothing was)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "CPU timings include the system handing out fresh memory to every call (no mallopt here)"
    ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    if not ok:
        return "CPU timings include the system handing out fresh memory to every call (mallopt refused)"
    return ("CPU timings reuse memory freed by earlier calls, as a long-running program does, so they "
            "measure the ops rather than the system handing out fresh memory (--fresh-pages: measure that too)")
