"""links.heap: an offloaded TUN link keeps glibc's heap instead of trimming it after
every batch of 64 KB reads (the IPv6 bulk slowdown of issue #17)."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from helpers import ROOT

SRC = ROOT / "src"

_CHECK = r"""
import ctypes, sys
from synack.links.heap import keep_heap
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_heap() and keep_heap()  # once per process, the same answer after
packets = [bytearray(65536) for _ in range(40)]  # a batch of 64 KB reads
joined = bytes(3 << 20)                           # and their join for the reader
del packets, joined
print(libc.mallinfo2().keepcost)  # free bytes left at the top of the heap
"""


def _glibc_with_mallinfo2() -> bool:
    libc = ctypes.CDLL(None)
    return hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallinfo2")


@pytest.mark.skipif(
    platform.system() != "Linux" or not _glibc_with_mallinfo2(),
    reason="glibc (2.33+, mallinfo2) only: elsewhere keep_heap changes nothing",
)
def test_a_freed_batch_stays_in_the_heap_only_when_kept() -> None:
    def keepcost(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _CHECK, mode],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONPATH=str(SRC)),
        )
        return int(out.stdout)

    # By default glibc trims the top of the heap back to the kernel when a batch is
    # freed; kept, the 3 MB join's memory stays for the next batch.
    assert keepcost("default") < 1 << 20
    assert keepcost("keep") >= 3 << 20
