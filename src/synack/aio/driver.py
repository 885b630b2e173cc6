"""The asyncio driver: one link, one stack, one event loop.

The driver is deliberately thin: the protocol lives in the sans-IO core
(docs/design.md, CONTRIBUTING.md "The layers").
It does four things, always in this order:

1. when the link's descriptor is readable, read batches of packets until
   the link reports EAGAIN (at most ``max_packets_per_wakeup`` per wake-up,
   so one busy link cannot starve the loop) and feed each to
   :meth:`Stack.receive_packet` with the loop's clock;
2. hand every event the stack reports to the handler registered for its
   connection (a transport, or a socket's loop-side half), and connections
   that reached a listener's accept queue to that listener's callback;
3. write everything :meth:`Stack.packets_to_send` returns to the link;
4. re-arm its single ``loop.call_at`` at :meth:`Stack.next_timer`, touching
   the timer handle only when the deadline actually changes.

Application calls (a transport's ``write``, ``close``...) change a
connection and then call :meth:`Driver.kick`, which schedules one coalesced
processing pass with ``loop.call_soon``; calls made while the driver is
already processing (from inside a protocol callback) cost nothing extra,
because the pass in progress flushes them.

Time is ``loop.time()``, kept non-decreasing; a timer callback uses its own
deadline if the loop runs it a hair early, so it never spins.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from ..links.base import Link, LinkClosedError
from ..stack import Listener, Stack
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.events import Closed, Event

__all__ = ["ConnectionHandler", "Driver"]

logger = logging.getLogger("synack.aio")

_MAX_ROUNDS = 64  # processing rounds per pass before yielding to the loop


class ConnectionHandler(Protocol):
    """Whatever owns a connection on the driver's side (a transport, a socket)."""

    def connection_event(self, event: Event) -> None:
        """Called on the loop for every event of the connection, in order."""
        ...


AcceptCallback = Callable[[Listener], None]


class Driver:
    """Runs ``stack`` over ``link`` on an asyncio loop (the running one by default)."""

    def __init__(
        self,
        stack: Stack,
        link: Link,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_packets_per_wakeup: int = 256,
    ) -> None:
        if max_packets_per_wakeup < 1:
            raise ValueError("max_packets_per_wakeup must be at least 1")
        self.stack = stack
        self.link = link
        self.loop = loop or asyncio.get_running_loop()
        self.max_packets_per_wakeup = max_packets_per_wakeup
        self.stats: Counter[str] = Counter()
        self.link_error: BaseException | None = None
        self.closing = False
        self.closed = False
        self._handlers: dict[Connection, ConnectionHandler] = {}
        self._listeners: dict[Listener, AcceptCallback] = {}
        self._busy = False
        self._kick: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._now = self.loop.time()
        self._rng = random.Random()
        self._fd = link.fileno()
        self.loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    # ---------------------------------------------------------------- clock
    def now(self) -> float:
        """The loop's clock, never going backwards."""
        t = self.loop.time()
        if t > self._now:
            self._now = t
        return self._now

    @property
    def timer_deadline(self) -> float | None:
        """When the driver's one timer fires next (None: none armed)."""
        return self._timer_at

    # ---------------------------------------------------------- registration
    def register(self, conn: Connection, handler: ConnectionHandler) -> None:
        """Send ``conn``'s events to ``handler`` (until its Closed event, or unregister)."""
        self._handlers[conn] = handler

    def unregister(self, conn: Connection) -> None:
        self._handlers.pop(conn, None)

    def handler(self, conn: Connection) -> ConnectionHandler | None:
        return self._handlers.get(conn)

    def connect(
        self,
        remote: str | bytes,
        port: int,
        *,
        local_port: int | None = None,
        config: TcpConfig | None = None,
        handler: ConnectionHandler | None = None,
    ) -> Connection:
        """Active open; the SYN goes out on the next pass.  Raises like Stack.connect."""
        self._check_open()
        conn = self.stack.connect(
            remote, port, now=self.now(), local_port=local_port, config=config
        )
        if handler is not None:
            self._handlers[conn] = handler
        self.kick()
        return conn

    def listen(
        self,
        port: int,
        backlog: int = 128,
        *,
        on_ready: AcceptCallback,
        config: TcpConfig | None = None,
    ) -> Listener:
        """Passive open on ``port`` (0 picks a free port from the dynamic range).

        ``on_ready(listener)`` is called after every processing pass in which the
        listener's accept queue is not empty; it may take connections with
        ``listener.accept()`` or leave them queued (the backlog then applies).
        """
        self._check_open()
        if port == 0:
            lst = self._listen_ephemeral(backlog, config)
        else:
            lst = self.stack.listen(port, backlog, config=config)
        self._listeners[lst] = on_ready
        return lst

    def _listen_ephemeral(self, backlog: int, config: TcpConfig | None) -> Listener:
        taken = set(self.stack.info()["listeners"])
        ports = self.stack.ephemeral_ports
        span = len(ports)
        start = self._rng.randrange(span)
        for i in range(span):
            port = ports[(start + i) % span]
            if port not in taken:
                return self.stack.listen(port, backlog, config=config)
        raise OSError(errno.EADDRINUSE, "no free port left in the dynamic range")

    def stop_listening(self, listener: Listener) -> None:
        """Close ``listener``; connections it never handed out are reset."""
        self._listeners.pop(listener, None)
        listener.close()
        self.kick()

    # ------------------------------------------------------------ processing
    def kick(self) -> None:
        """Schedule one processing pass soon (coalesced; free while processing)."""
        if self._busy or self._kick is not None or self.closed:
            return
        self._kick = self.loop.call_soon(self._on_kick)

    def _on_kick(self) -> None:
        self._kick = None
        self.stats["wakeups_kick"] += 1
        self._process(self.now())

    def _on_readable(self) -> None:
        link = self.link
        receive = self.stack.receive_packet
        cap = self.max_packets_per_wakeup
        total = 0
        self.stats["wakeups_read"] += 1
        try:
            while total < cap:
                want = min(64, cap - total)
                # The time of this read, not of the wake-up: a packet read after a batch
                # was processed may have arrived after the wake-up, and stamped with it
                # its ACK would give an RTT too short by the processing time (256
                # packets of ACK processing on a busy host: ~17 ms of a 50 ms path,
                # which BBR's min-RTT filter then keeps).
                now = self.now()
                try:
                    batch = link.read_batch(want)
                except (LinkClosedError, OSError) as exc:
                    self._link_failed(exc)
                    break
                for pkt in batch:
                    receive(pkt, now)
                total += len(batch)
                if len(batch) < want:
                    break
        finally:
            self.stats["packets_in"] += total
            if total > self.stats["max_batch"]:
                self.stats["max_batch"] = total
            self._process(self.now())

    def _on_timer(self, at: float) -> None:
        self._timer = None
        self._timer_at = None
        self.stats["wakeups_timer"] += 1
        now = max(self.now(), at)
        self._now = now
        self.stack.handle_timer(now)
        self._process(now)

    def _process(self, now: float) -> None:
        """Accept, dispatch events, flush packets; repeat until quiet; re-arm the timer."""
        if self._busy:
            return
        self._busy = True
        try:
            stack = self.stack
            write = self.link.write
            # A link that can gather (TUN: writev) gets data packets as (headers,
            # payload view), so payload bytes are never copied into a joined packet.
            writev = getattr(self.link, "write_vector", None)
            for _ in range(_MAX_ROUNDS):
                progressed = self._accept_ready()
                while (ev := stack.next_event()) is not None:
                    self._dispatch(ev)
                    progressed = True
                if writev is not None:
                    vectors = stack.packet_vectors(now)
                    for vec in vectors:
                        if isinstance(vec, bytes):
                            write(vec)
                        else:
                            writev(vec)
                    self.stats["packets_out"] += len(vectors)
                else:
                    packets = stack.packets_to_send(now)
                    for pkt in packets:
                        write(pkt)
                    self.stats["packets_out"] += len(packets)
                if not progressed:
                    break
            else:  # still busy after many rounds: finish in a later pass
                self._busy = False
                self.kick()
        except BaseException:
            # A handler raised (a bug there, reported by the loop): what is left of
            # the events and packets goes out in the next pass, not never.
            self._busy = False
            self.kick()
            raise
        finally:
            self._busy = False
            self._arm_timer()

    def _accept_ready(self) -> bool:
        progressed = False
        for lst, callback in list(self._listeners.items()):
            n = len(lst.accept_queue)
            if n:
                callback(lst)
                progressed = progressed or len(lst.accept_queue) < n
        return progressed

    def _dispatch(self, ev: Event) -> None:
        self.stats["events"] += 1
        handler = self._handlers.get(ev.conn)
        if handler is None:
            self.stats["events_unhandled"] += 1
            return
        if isinstance(ev, Closed):
            del self._handlers[ev.conn]
        handler.connection_event(ev)

    def _arm_timer(self) -> None:
        at = self.stack.next_timer() if not self.closed else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer, at)
            self.stats["timer_rearms"] += 1

    def _link_failed(self, exc: BaseException) -> None:
        """The link is gone: stop reading it; connections will time out as on a dead wire."""
        self.link_error = exc
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)
        if isinstance(exc, LinkClosedError):  # an orderly end (the other side closed)
            logger.info("synack driver: %s", exc)
            return
        self.loop.call_exception_handler(
            {
                "message": f"synack driver: link {self.link!r} failed; no more packets will arrive",
                "exception": exc,
            }
        )

    def _check_open(self) -> None:
        if self.closing or self.closed:
            raise RuntimeError("the synack driver is closed")

    # ----------------------------------------------------------------- close
    def close(self) -> None:
        """Abort every connection (RST to the peers), stop listening, stop all I/O.

        Handlers see the connections close (transports report
        ConnectionAbortedError).  The link itself is left open: its owner closes it.
        """
        if self.closed or self.closing:
            return
        self.closing = True
        try:
            for lst in list(self._listeners):
                self.stop_listening(lst)
            for conn in self.stack.connections:
                conn.abort(self.now(), why="driver closed")
            self._process(self.now())
        finally:
            self.closed = True
            self._handlers.clear()
            if self._reading:
                self._reading = False
                self.loop.remove_reader(self._fd)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = None
            if self._kick is not None:
                self._kick.cancel()
                self._kick = None

    def __repr__(self) -> str:
        return (
            f"<Driver {self.stack.address!r} link={self.link!r} "
            f"connections={len(self.stack.connections)}>"
        )
