"""Receiver-side SACK blocks (RFC 2018 §4) and duplicate reports (D-SACK, RFC 2883).

The first block names the most recently received out-of-order data, the next
ones the blocks reported recently after it, then any others, so a sender that
misses an ACK still learns about every hole within a few ACKs.  A duplicate
segment is reported once, as the first block (RFC 2883 §4), which tells the
sender a retransmission was spurious.
"""

from __future__ import annotations

from .reassembly import Reassembly


class SackGenerator:
    """Remembers what arrived recently and builds the blocks for the next ACK."""

    __slots__ = ("_dsack", "_recent")

    def __init__(self) -> None:
        self._recent: list[int] = []  # start positions of recently filled data, newest first
        self._dsack: tuple[int, int] | None = None

    def arrived(self, start: int) -> None:
        """Out-of-order data arrived at ``start`` (RFC 2018 §4 rule 1)."""
        recent = self._recent
        if start in recent:
            recent.remove(start)
        recent.insert(0, start)
        del recent[8:]

    @property
    def pending(self) -> bool:
        """A D-SACK waits to be reported."""
        return self._dsack is not None

    def duplicate(self, start: int, end: int) -> None:
        """A segment carried only data we already had (RFC 2883 §4)."""
        self._dsack = (start, end)

    def blocks(self, ooo: Reassembly, rcv_nxt: int, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` blocks as stream positions ``[left, right)``; clears the D-SACK."""
        out: list[tuple[int, int]] = []
        if self._dsack is not None:
            out.append(self._dsack)
            self._dsack = None
        ranges = ooo.ranges()
        if not ranges:
            self._recent.clear()
            return out[:limit]
        used: set[tuple[int, int]] = set()
        for pos in self._recent:
            for r in ranges:
                if r[0] <= pos < r[1] and r not in used:
                    used.add(r)
                    out.append(r)
                    break
        for r in reversed(ranges):
            if r not in used:
                out.append(r)
        self._recent = [p for p in self._recent if p >= rcv_nxt]
        return out[:limit]
