"""Receiver-side SACK blocks (RFC 2018 §4) and duplicate reports (D-SACK, RFC 2883).

The first block names the most recently received out-of-order data, the next
ones the blocks reported recently after it, then any others, so a sender that
misses an ACK still learns about every hole within a few ACKs.  A duplicate
segment is reported once, as the first block (RFC 2883 §4), which tells the
sender a retransmission was spurious.
"""

from __future__ import annotations

from .reassembly import Reassembly

#: The recency list of a receiver that has seen nothing out of order (most never
#: do); shared and never mutated: :meth:`SackGenerator.arrived` makes a new list.
_NONE_RECENT: list[int] = []


class SackGenerator:
    """Remembers what arrived recently and builds the blocks for the next ACK."""

    __slots__ = ("_dsack", "_recent")

    def __init__(self) -> None:
        # Start positions of recently filled data, newest first.
        self._recent: list[int] = _NONE_RECENT
        self._dsack: tuple[int, int] | None = None

    def arrived(self, start: int) -> None:
        """Out-of-order data arrived at ``start`` (RFC 2018 §4 rule 1)."""
        recent = self._recent
        if recent is _NONE_RECENT:
            recent = self._recent = []
        if start in recent:
            recent.remove(start)
        recent.insert(0, start)
        del recent[8:]

    @property
    def pending(self) -> bool:
        """A D-SACK waits to be reported."""
        return self._dsack is not None

    def reset(self) -> None:
        """Forget the pending D-SACK and the recency order (nothing more will arrive)."""
        self._dsack = None
        self._recent = _NONE_RECENT

    def duplicate(self, start: int, end: int) -> None:
        """A segment carried only data we already had (RFC 2883 §4)."""
        self._dsack = (start, end)

    def blocks(self, ooo: Reassembly, rcv_nxt: int, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` blocks as stream positions ``[left, right)``; clears the D-SACK."""
        out: list[tuple[int, int]] = []
        if self._dsack is not None:
            out.append(self._dsack)
            self._dsack = None
        if not ooo:
            self._recent = _NONE_RECENT
            return out[:limit]
        # Only ``limit`` blocks are sent, so with thousands of holes held (a big
        # window after a burst of losses) look up the few recent ones and take the
        # rest from the top: O(limit * log holes) per ACK, not O(holes).
        used: set[tuple[int, int]] = set()
        for pos in self._recent:
            r = ooo.block_at(pos)
            if r is not None and r not in used:
                used.add(r)
                out.append(r)
        if len(out) < limit:
            for r in ooo.ranges_descending():
                if r not in used:
                    out.append(r)
                    if len(out) >= limit:
                        break
        self._recent = [p for p in self._recent if p >= rcv_nxt]
        return out[:limit]
