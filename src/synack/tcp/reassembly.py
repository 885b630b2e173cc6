"""The out-of-order queue of a receiver (RFC 9293 §3.10.7.4, concept C14).

Positions are unbounded integers in the connection's stream space (the 32-bit
sequence number unwrapped), so nothing here needs modular arithmetic.  Blocks
are kept sorted, disjoint and non-adjacent; bytes already held are never
replaced, so a duplicate is recognised and costs nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

#: What an empty queue holds instead of three lists of its own (most connections
#: never see a segment out of order).  Never mutated: :meth:`Reassembly.add`
#: gives the queue its own lists before storing anything, and the other methods
#: only remove from a non-empty queue.
_EMPTY: list[Any] = []


class Reassembly:
    """Holds data that arrived ahead of a gap until the gap is filled."""

    __slots__ = ("_data", "_ends", "_starts", "nbytes")

    def __init__(self) -> None:
        self._starts: list[int] = _EMPTY
        self._ends: list[int] = _EMPTY
        self._data: list[bytearray] = _EMPTY
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        """Anything held?  (Hot paths read ``nbytes`` instead: no call.)"""
        return bool(self._starts)

    def add(self, start: int, data: bytes | memoryview) -> int:
        """Store ``data`` at ``start``; return how many of its bytes were new."""
        end = start + len(data)
        if end <= start:
            return 0
        if not self._starts:  # empty: take lists of its own (never fill the shared one)
            self._starts, self._ends, self._data = [], [], []
        starts, ends = self._starts, self._ends
        # Blocks that overlap or touch [start, end).
        lo = bisect.bisect_left(ends, start)
        hi = bisect.bisect_right(starts, end)
        if lo == hi:
            starts.insert(lo, start)
            ends.insert(lo, end)
            self._data.insert(lo, bytearray(data))
            self.nbytes += end - start
            return end - start
        if hi - lo == 1 and start >= starts[lo]:
            # The common case: data inside, or extending the end of, one held block.
            # Extend it in place: rebuilding would copy the whole block for every
            # segment that arrives behind a hole (quadratic for megabytes held).
            old_end = ends[lo]
            if end <= old_end:
                return 0
            self._data[lo] += data[old_end - start :]
            ends[lo] = end
            self.nbytes += end - old_end
            return end - old_end
        new_start = min(start, starts[lo])
        new_end = max(end, ends[hi - 1])
        merged = bytearray(new_end - new_start)
        merged[start - new_start : end - new_start] = data
        old = 0
        for i in range(lo, hi):
            s, blk = starts[i], self._data[i]
            merged[s - new_start : s - new_start + len(blk)] = blk  # held bytes win
            old += len(blk)
        added = (new_end - new_start) - old
        starts[lo:hi] = [new_start]
        ends[lo:hi] = [new_end]
        self._data[lo:hi] = [merged]
        self.nbytes += added
        return added

    def adds_block(self, start: int, end: int) -> bool:
        """Would storing ``[start, end)`` create a new block (touch no held one)?"""
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        return lo == hi

    def first_overlap(self, start: int, end: int) -> tuple[int, int] | None:
        """The first part of ``[start, end)`` already held, if any (for D-SACK)."""
        i = bisect.bisect_right(self._ends, start)
        if i < len(self._starts) and self._starts[i] < end:
            return max(start, self._starts[i]), min(end, self._ends[i])
        return None

    def pop_ready(self, nxt: int) -> bytes | None:
        """Remove and return the bytes from ``nxt`` on, if the first block reaches it."""
        if not self._starts or self._starts[0] > nxt:
            return None
        start, end = self._starts.pop(0), self._ends.pop(0)
        blk = self._data.pop(0)
        self.nbytes -= len(blk)
        if end <= nxt:
            return b""
        return bytes(blk[nxt - start :])

    def drop_below(self, nxt: int) -> None:
        """Forget everything that ends at or before ``nxt``."""
        while self._starts and self._ends[0] <= nxt:
            self._starts.pop(0)
            self._ends.pop(0)
            self.nbytes -= len(self._data.pop(0))

    def ranges(self) -> list[tuple[int, int]]:
        """The held ``[start, end)`` ranges, in order (the raw material of SACK blocks)."""
        return list(zip(self._starts, self._ends, strict=True))

    def block_at(self, pos: int) -> tuple[int, int] | None:
        """The held ``[start, end)`` block containing ``pos``, if any."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < self._ends[i]:
            return self._starts[i], self._ends[i]
        return None

    def ranges_descending(self) -> Iterator[tuple[int, int]]:
        """The held ranges from the highest down (SACK blocks after the recent ones,
        RFC 2018 §4), produced one at a time so a caller may stop early."""
        starts, ends = self._starts, self._ends
        for i in range(len(starts) - 1, -1, -1):
            yield starts[i], ends[i]

    @property
    def highest(self) -> int | None:
        """End of the last held block."""
        return self._ends[-1] if self._ends else None
