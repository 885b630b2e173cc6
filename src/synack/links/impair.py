"""Impairment on real links: loss, delay, jitter, duplication, reordering, corruption.

:class:`ImpairedLink` wraps any :class:`~synack.links.base.Link` and applies
the simulated network's model (:class:`synack.sim.path.PathConfig`) to the
packets going out (``outbound``: stack -> wire) and coming in (``inbound``:
wire -> stack), in real time on an asyncio loop.  There is no ``tc netem``
on the machines this runs on, and this way the impairment sits exactly at
synack's edge, whatever the link.

Per packet and direction the decisions are, in order (as in the simulator):

1. loss (probability ``loss``);
2. the bottleneck, if ``rate_bps`` is set: packets are serialised FIFO at
   that rate; with ``queue_bytes`` a packet that would overfill the queue is
   dropped (drop-tail), and with ``ecn_mark`` an ECN-capable packet that finds
   more than ``ecn_threshold_bytes`` queued is marked CE instead;
3. propagation ``delay`` plus uniform +/- ``jitter``, clamped so that the
   direction stays first-in first-out;
4. corruption: 1-3 bit flips placed so the IPv4 or TCP checksum always
   catches them (:func:`synack.sim.path.flip_bits`);
5. reordering: the packet is held back ``reorder_delay`` more, and later
   packets overtake it;
6. duplication: a second copy, 0..delay/10 later.

Held packets wait in one heap per direction behind a single ``loop.call_at``
re-armed at the earliest release time.  Inbound packets are pulled from the
inner link by a reader of the wrapper's own, and handed to the driver through
a :class:`~synack.links.base.Doorbell` (the wrapper's :meth:`fileno`) that is
readable while released packets wait.  Randomness comes from one seeded
``random.Random`` and is drawn only for enabled impairments.  What was done
is counted in :attr:`ImpairedLink.stats` as ``<dir>_<what>`` with ``dir``
``out`` or ``in`` and ``what`` one of ``packets``, ``lost``, ``queue_dropped``,
``ecn_marked``, ``corrupted``, ``reordered``, ``duplicated``, ``delayed`` and
``delivered``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable

from ..sim.path import PathConfig, flip_bits, mark_ce
from .base import Doorbell, Link, LinkClosedError

__all__ = ["ImpairedLink"]

_PULL_CAP = 256  # inbound packets taken from the inner link per wake-up


class _Direction:
    """The running state of one impaired direction."""

    __slots__ = (
        "_backlog",
        "_busy_until",
        "_counter",
        "_deliver",
        "_heap",
        "_last_arrival",
        "_loop",
        "_queue",
        "_rng",
        "_timer",
        "_timer_at",
        "cfg",
        "name",
        "stats",
    )

    def __init__(
        self,
        name: str,
        cfg: PathConfig,
        rng: random.Random,
        deliver: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop,
        stats: Counter[str],
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.stats = stats
        self._rng = rng
        self._deliver = deliver
        self._loop = loop
        self._heap: list[tuple[float, int, bytes]] = []
        self._counter = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_arrival = float("-inf")
        self._busy_until = float("-inf")
        self._queue: deque[tuple[float, int]] = deque()  # (departure, size) in the bottleneck
        self._backlog = 0

    @property
    def held(self) -> int:
        """Packets waiting for their release time."""
        return len(self._heap)

    def push(self, packet: bytes, now: float) -> None:
        """Decide the fate of one packet entering this direction at ``now``."""
        cfg = self.cfg
        rng = self._rng
        st = self.stats
        name = self.name
        st[name + "_packets"] += 1
        if cfg.loss and rng.random() < cfg.loss:
            st[name + "_lost"] += 1
            return
        depart = now
        if cfg.rate_bps is not None:
            size = len(packet)
            queue = self._queue
            while queue and queue[0][0] <= now:
                self._backlog -= queue.popleft()[1]
            if cfg.queue_bytes is not None and self._backlog + size > cfg.queue_bytes:
                st[name + "_queue_dropped"] += 1
                return
            if (
                cfg.ecn_mark
                and self._backlog > cfg.ecn_threshold_bytes
                and len(packet) >= 20
                and packet[0] >> 4 == 4
                and 0 < packet[1] & 3 < 3
            ):
                packet = mark_ce(packet)
                st[name + "_ecn_marked"] += 1
            depart = max(now, self._busy_until) + size * 8 / cfg.rate_bps
            self._busy_until = depart
            queue.append((depart, size))
            self._backlog += size
        at = depart + cfg.delay
        if cfg.jitter:
            at = max(at + rng.uniform(-cfg.jitter, cfg.jitter), depart)
        at = max(at, self._last_arrival)
        if cfg.corrupt and rng.random() < cfg.corrupt:
            packet = flip_bits(packet, rng)
            st[name + "_corrupted"] += 1
        if cfg.reorder and rng.random() < cfg.reorder:
            at += cfg.reorder_delay
            st[name + "_reordered"] += 1
        else:
            self._last_arrival = at
        self._schedule(at, packet, now)
        if cfg.duplicate and rng.random() < cfg.duplicate:
            st[name + "_duplicated"] += 1
            self._schedule(
                at + (rng.uniform(0.0, cfg.delay / 10) if cfg.delay else 0.0), packet, now
            )
        if self._heap and self._heap[0][0] <= now:
            self._release(now)
        else:
            self._arm()

    def _schedule(self, at: float, packet: bytes, now: float) -> None:
        if at > now:
            self.stats[self.name + "_delayed"] += 1
        heapq.heappush(self._heap, (at, next(self._counter), packet))

    def _release(self, now: float) -> None:
        heap = self._heap
        deliver = self._deliver
        n = 0
        while heap and heap[0][0] <= now:
            deliver(heapq.heappop(heap)[2])
            n += 1
        self.stats[self.name + "_delivered"] += n
        self._arm()

    def _arm(self) -> None:
        at = self._heap[0][0] if self._heap else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer, at)

    def _on_timer(self, at: float) -> None:
        self._timer = None
        self._timer_at = None
        self._release(max(self._loop.time(), at))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        self._heap.clear()


class ImpairedLink:
    """``inner`` with impairments applied; itself a :class:`~synack.links.base.Link`.

    ``outbound`` and ``inbound`` are the impairments of each direction
    (``None``: that direction passes untouched and costs nothing).  Needs the
    asyncio loop the link is used on: ``loop`` or the running one.
    """

    def __init__(
        self,
        inner: Link,
        *,
        outbound: PathConfig | None = None,
        inbound: PathConfig | None = None,
        seed: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        for what, cfg in (("outbound", outbound), ("inbound", inbound)):
            if cfg is not None and not isinstance(cfg, PathConfig):
                raise TypeError(f"{what} must be a PathConfig or None, got {cfg!r}")
        self.inner = inner
        self.loop = loop or asyncio.get_running_loop()
        self.mtu = inner.mtu
        self.max_segment_payload = inner.max_segment_payload
        self.stats: Counter[str] = Counter()
        self.rng = random.Random(seed)
        self._closed = False
        self._inner_error: LinkClosedError | None = None
        self._out: _Direction | None = None
        self._in: _Direction | None = None
        if outbound is not None:
            self._out = _Direction(
                "out", outbound, self.rng, self._write_inner, self.loop, self.stats
            )
        self._ready: deque[bytes] = deque()
        self._bell: Doorbell | None = None
        if inbound is not None:
            self._in = _Direction("in", inbound, self.rng, self._arrive, self.loop, self.stats)
            self._bell = Doorbell()
            self.loop.add_reader(inner.fileno(), self._pull)

    @property
    def outbound(self) -> PathConfig | None:
        return self._out.cfg if self._out is not None else None

    @property
    def inbound(self) -> PathConfig | None:
        return self._in.cfg if self._in is not None else None

    @property
    def held(self) -> int:
        """Packets currently held back (delayed) in either direction."""
        return sum(d.held for d in (self._out, self._in) if d is not None)

    # ---------------------------------------------------------------- outbound
    def write(self, packet: bytes) -> None:
        if self._closed:
            self.stats["tx_drop_closed"] += 1
            return
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += len(packet)
        if self._out is None:
            self.inner.write(packet)
        else:
            self._out.push(packet, self.loop.time())

    def _write_inner(self, packet: bytes) -> None:
        if not self._closed:
            self.inner.write(packet)

    # ----------------------------------------------------------------- inbound
    def fileno(self) -> int:
        return self._bell.fileno() if self._bell is not None else self.inner.fileno()

    def _pull(self) -> None:
        """Reader on the inner link: run arriving packets through the inbound model."""
        assert self._in is not None
        now = self.loop.time()
        taken = 0
        while taken < _PULL_CAP:
            try:
                batch = self.inner.read_batch(64)
            except LinkClosedError as exc:
                self._inner_error = exc
                self.loop.remove_reader(self.inner.fileno())
                assert self._bell is not None
                self._bell.ring()
                return
            for pkt in batch:
                self._in.push(pkt, now)
            taken += len(batch)
            if len(batch) < 64:
                break

    def _arrive(self, packet: bytes) -> None:
        self._ready.append(packet)
        assert self._bell is not None
        self._bell.ring()

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        if self._in is None:
            out = self.inner.read_batch(max_packets)
        else:
            ready = self._ready
            n = min(max_packets, len(ready))
            out = [ready.popleft() for _ in range(n)]
            if not ready:
                assert self._bell is not None
                if self._inner_error is not None and not out:
                    raise self._inner_error
                if self._inner_error is None:
                    self._bell.clear()
        if out:
            self.stats["rx_packets"] += len(out)
            self.stats["rx_bytes"] += sum(map(len, out))
        return out

    # ------------------------------------------------------------------- close
    def close(self) -> None:
        """Drop held packets, stop the timers and the reader, close the inner link."""
        if self._closed:
            return
        self._closed = True
        for d in (self._out, self._in):
            if d is not None:
                d.close()
        if self._bell is not None:
            if self._inner_error is None and not self.loop.is_closed():
                self.loop.remove_reader(self.inner.fileno())
            self._bell.close()
        self._ready.clear()
        self.inner.close()

    def __repr__(self) -> str:
        return f"<ImpairedLink {self.inner!r} outbound={self.outbound} inbound={self.inbound}>"
