"""Tiny event-driven applications that exercise connections.

They are what the demo, the labs and the tests run on top of a
:class:`~synack.stack.Stack`: an :class:`Endpoint` writes a payload as send
buffer space allows, reads everything that arrives, half-closes when it has
nothing more to send and closes once the peer has finished too.  A
:class:`Dispatcher` feeds a stack's events to the endpoints (and accepts
connections from listeners); in the simulator it runs as a process after
every event.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable

from ..stack import Listener, Stack
from ..tcp.connection import Connection
from ..tcp.events import (
    Closed,
    Connected,
    ConnectionFailed,
    DataReceived,
    EndOfStream,
    Event,
    SendSpace,
)
from ..tcp.states import State

#: Events after which an endpoint moves data (a tuple: no union built per event).
_MOVE_DATA = (DataReceived, EndOfStream, SendSpace)
#: States tested on every pump, as module names (State.X goes through EnumType's
#: __getattr__ hook, several times slower than a global).
_CLOSED = State.CLOSED
_MAY_SEND = (State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT)


class Endpoint:
    """Send ``payload``, receive until EOF, then close (C1, C5, C10-C13).

    ``read=False`` leaves received data unread (to fill the receive window,
    C4); ``close_when_done=False`` leaves the connection open after sending;
    ``send_after_eof=True`` answers only once the peer has finished sending
    (a request/response exchange that shows the half-close, C11).
    """

    def __init__(
        self,
        conn: Connection,
        payload: bytes = b"",
        *,
        read: bool = True,
        close_when_done: bool = True,
        keep_data: bool = True,
        send_after_eof: bool = False,
    ) -> None:
        self.conn = conn
        self._payload = memoryview(payload)
        self.sent = 0
        self.read = read
        self.close_when_done = close_when_done
        self.keep_data = keep_data
        self.send_after_eof = send_after_eof
        self.received = bytearray()
        self.received_count = 0
        self._hash = hashlib.sha256()
        self.eof = False
        self.connected = conn.state not in (State.SYN_SENT, State.SYN_RECEIVED)
        self.error: ConnectionFailed | None = None
        self.closed = False
        self.shut_down = False

    # -- event entry points
    def start(self, now: float) -> None:
        """Catch up with whatever happened before the endpoint was attached."""
        if self.conn.state is State.CLOSED:
            self.closed = True
            return
        self.pump(now)

    def on_event(self, ev: Event, now: float) -> None:
        if isinstance(ev, _MOVE_DATA):  # the common case first
            self.pump(now)
            return
        if isinstance(ev, Connected):
            self.connected = True
        elif isinstance(ev, ConnectionFailed):
            self.error = ev
        elif isinstance(ev, Closed):
            self.closed = True
            return
        else:
            return
        self.pump(now)

    def pump(self, now: float) -> None:
        """Move data both ways as far as the connection allows."""
        conn = self.conn
        if conn.state is _CLOSED:
            return
        if self.read and conn.readable:
            self.take(conn.recv())
        if conn.eof_received:
            self.eof = True
        if self.send_after_eof and not self.eof:
            return
        if self.sent < len(self._payload) and conn.state in _MAY_SEND:
            space = conn.send_space
            if space:
                self.sent += conn.send(self._payload[self.sent : self.sent + space])
        if self.sent == len(self._payload) and self.close_when_done and self.connected:
            if self.eof and self.read:
                conn.close(now)
            elif not self.shut_down:
                self.shut_down = True
                conn.shutdown(now)

    def take(self, data: bytes) -> None:
        self.received_count += len(data)
        self._hash.update(data)
        if self.keep_data:
            self.received += data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def done(self) -> bool:
        """Everything sent, EOF seen, and the connection is gone (or failed)."""
        return self.closed


class Dispatcher:
    """Routes a stack's events to endpoints; accepts from listeners with a factory."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.endpoints: dict[Connection, Endpoint] = {}
        self._factories: list[tuple[Listener, Callable[[Connection], Endpoint]]] = []
        self.unhandled: deque[Event] = deque(maxlen=1000)

    def add(self, endpoint: Endpoint, now: float = 0.0) -> Endpoint:
        self.endpoints[endpoint.conn] = endpoint
        endpoint.start(now)
        return endpoint

    def serve(self, listener: Listener, factory: Callable[[Connection], Endpoint]) -> None:
        """Wrap every connection accepted on ``listener`` with ``factory(conn)``."""
        self._factories.append((listener, factory))

    def __call__(self, now: float) -> None:
        for lst, factory in self._factories:
            if lst.accept_queue:
                while (conn := lst.accept()) is not None:
                    self.add(factory(conn), now)
        events = self.stack.pending_events
        while events:
            ev = events.popleft()
            ep = self.endpoints.get(ev.conn)
            if ep is not None:
                ep.on_event(ev, now)
            else:
                self.unhandled.append(ev)
