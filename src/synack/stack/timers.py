"""The stack's timers: one heap of per-connection deadlines for any number of
connections; stale entries are skipped (and compacted away), so the cost per event
does not grow with the number of connections."""

from __future__ import annotations

import heapq

from ..tcp.connection import Connection
from .base import StackBase


class TimersMixin(StackBase):
    """The timer heap of :class:`~synack.stack.Stack`."""

    def _schedule(self, conn: Connection, t: float | None) -> None:
        old = self._deadline.get(conn)
        if old is not None:
            if old[0] == t:
                return
            old[2] = None
            self._stale += 1
        if t is None:
            self._deadline.pop(conn, None)
        else:
            entry = [t, next(self._counter), conn]
            self._deadline[conn] = entry
            heapq.heappush(self._heap, entry)
        if self._stale > len(self._deadline) + 64:
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop stale heap entries: a deadline that moved or a connection that is gone
        would otherwise stay until its old time comes, which an adversary can make far
        away (keepalive: 2 h).  Amortised O(1): it runs after as many stale entries as
        live ones."""
        self._heap = [e for e in self._heap if e[2] is not None]
        heapq.heapify(self._heap)
        self._stale = 0

    def next_timer(self) -> float | None:
        """Earliest deadline of any connection."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        """Fire the timers of every connection whose deadline has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, conn = heapq.heappop(heap)
            if conn is None:
                self._stale -= 1
                continue
            del self._deadline[conn]
            conn.handle_timer(now)
            self._dirty[conn] = None
            lst = self._embryonic.get(conn)
            if lst is not None:
                self._settle_embryonic(conn, lst)
