"""Keeping glibc's heap for a process that moves 64 KB packets.

With offloads a TUN link reads packets of up to 64 KB, and the receive path
joins several of them for the application: a few hundred KB allocated and
freed per batch.  glibc's ``malloc`` serves allocations above its mmap
threshold (128 KiB at first, then raised to the largest mmapped chunk freed so
far) with fresh ``mmap`` regions, and gives the top of the heap back to the
kernel whenever more than its trim threshold (twice the mmap threshold) is
free there (``malloc_trim`` in ``free``, ``mallopt(3)``).  A batch freed at
once can cross that line, so the next batch's reads and joins land on pages
the kernel must fault in and zero again: measured on IPv6 bulk transfers
(kernel -> synack over TUN with TSO6) at about 100,000 page faults a second
and a third less throughput, while IPv4 transfers, whose batches had raised
the thresholds higher, did not trim.  Fixed thresholds (``mallopt``, which
also turns the dynamic adjustment off) keep the heap: the process keeps up to
:data:`TRIM_THRESHOLD` of free memory instead of returning it.

Only glibc has ``mallopt`` with these parameters; elsewhere nothing is
changed and :func:`keep_heap` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_heap"]

M_TRIM_THRESHOLD: Final = -1  # <malloc.h>
M_MMAP_THRESHOLD: Final = -3
#: Allocations up to this size come from the heap (a batch of reads joined).
MMAP_THRESHOLD: Final = 4 << 20
#: Free memory at the top of the heap kept rather than given back.
TRIM_THRESHOLD: Final = 16 << 20

_done: bool | None = None


def keep_heap() -> bool:
    """Set the thresholds once per process; whether they are set (False without
    glibc's ``mallopt``)."""
    global _done
    if _done is None:
        _done = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
            return False
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        _done = bool(
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    return _done
