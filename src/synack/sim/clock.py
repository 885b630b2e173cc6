"""Virtual clock and event queue for the simulated network.

Time is a ``float`` of virtual seconds that only moves forward.  Events sit in
a binary heap ordered by ``(time, insertion number)``, so events due at the
same instant run in the order they were scheduled and every run is
reproducible.

A heap entry is a four-item list ``[at, seq, fn, arg]``; the loop calls
``fn(now, arg)``.  Cancelling sets ``fn`` to ``None`` and the loop discards the
entry when it reaches the top (lazy deletion), without advancing the clock to
it.  The list form keeps the per-event cost to one small allocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

__all__ = ["Clock", "EventHandle", "SimulationLimit"]


class SimulationLimit(RuntimeError):
    """A run processed more events than its ``max_events`` budget (likely livelock)."""


def _call_user(now: float, callback: Callable[[float], None]) -> None:
    callback(now)


class EventHandle:
    """A scheduled callback that can be cancelled before it runs."""

    __slots__ = ("_entry",)

    def __init__(self, entry: list[Any]) -> None:
        self._entry = entry

    @property
    def when(self) -> float:
        """Virtual time at which the callback is due."""
        at: float = self._entry[0]
        return at

    @property
    def cancelled(self) -> bool:
        """True once cancelled or already run."""
        return self._entry[2] is None

    def cancel(self) -> None:
        """Prevent the callback from running; harmless if it already ran."""
        self._entry[2] = None


class Clock:
    """A virtual clock driving a deterministic event queue.

    ``hook``, when set, is called after every processed event (the network uses
    it to run application processes); it is read afresh on each iteration so it
    may be changed while running.
    """

    __slots__ = ("_heap", "_running", "_seq", "hook", "now")

    def __init__(self, start: float = 0.0) -> None:
        self.now: float = start
        self._heap: list[list[Any]] = []
        self._seq = 0
        self._running = False
        self.hook: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        """True while :meth:`run` is processing events."""
        return self._running

    def push(self, at: float, fn: Callable[[float, Any], None], arg: Any = None) -> list[Any]:
        """Schedule ``fn(now, arg)`` at ``at`` (a past time means now); return the raw entry.

        Internal fast path: cancel by setting ``entry[2] = None``.
        """
        if at < self.now:
            at = self.now
        self._seq += 1
        entry = [at, self._seq, fn, arg]
        heappush(self._heap, entry)
        return entry

    def schedule(self, at: float, callback: Callable[[float], None]) -> EventHandle:
        """Run ``callback(now)`` at virtual time ``at``; return a cancellable handle."""
        if not at >= self.now:  # also rejects NaN
            raise ValueError(f"cannot schedule at {at!r}: it is before now ({self.now!r})")
        return EventHandle(self.push(at, _call_user, callback))

    def call_later(self, delay: float, callback: Callable[[float], None]) -> EventHandle:
        """Run ``callback(now)`` after ``delay`` virtual seconds."""
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        return self.schedule(self.now + delay, callback)

    def next_time(self) -> float | None:
        """Time of the earliest live event, or ``None`` when the queue is empty."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heappop(heap)
        return heap[0][0] if heap else None

    def pending(self) -> int:
        """Number of live (not cancelled) events still queued."""
        return sum(1 for entry in self._heap if entry[2] is not None)

    def run(
        self,
        until: float | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        max_events: int = 10_000_000,
    ) -> float:
        """Process events in time order and return the time at which it stopped.

        Events due at or before ``until`` run; then the clock is set to
        ``until`` exactly, even if the queue ran dry earlier.  Without
        ``until`` it stops when no live event remains, leaving the clock at
        the last event's time.  ``stop()`` is checked before the first event
        and after every event; when it returns true the run ends at once,
        without advancing to ``until``.  Raises :class:`SimulationLimit` when
        more than ``max_events`` events would be processed.
        """
        if until is not None and not until >= self.now:
            raise ValueError(f"until={until!r} is before now ({self.now!r})")
        if self._running:
            raise RuntimeError("Clock.run is not re-entrant: called from inside an event")
        if stop is not None and stop():
            return self.now
        self._running = True
        try:
            return self._loop(until, stop, max_events)
        finally:
            self._running = False

    def _loop(self, until: float | None, stop: Callable[[], bool] | None, max_events: int) -> float:
        heap = self._heap
        pop = heappop
        limit = math.inf if until is None else until
        count = 0
        while heap:
            entry = heap[0]
            fn = entry[2]
            if fn is None:
                pop(heap)
                continue
            at = entry[0]
            if at > limit:
                break
            if count >= max_events:
                raise SimulationLimit(
                    f"more than {max_events} events processed by t={self.now:.9f}s "
                    f"without finishing (livelock?)"
                )
            pop(heap)
            entry[2] = None
            count += 1
            if at > self.now:
                self.now = at
            fn(self.now, entry[3])
            hook = self.hook
            if hook is not None:
                hook()
            if stop is not None and stop():
                return self.now
        if until is not None and until > self.now:
            self.now = until
        return self.now

    def __repr__(self) -> str:
        return f"Clock(now={self.now!r}, pending={self.pending()})"
