"""``asyncio.Transport`` over one synack connection.

:class:`SynackTransport` behaves like the selector transport asyncio uses
for TCP sockets, so unmodified Protocol-based code (and asyncio streams)
run on it:

* ``write`` hands bytes to the connection's send buffer; what does not fit
  waits in the transport's own buffer, whose size is what
  ``get_write_buffer_size`` reports and what the high/low watermarks apply
  to (``pause_writing``/``resume_writing`` on the protocol);
* ``pause_reading`` stops taking data out of the connection: its receive
  buffer fills and the advertised window closes (true flow control, C4);
  ``resume_reading`` reads again, which reopens the window;
* ``write_eof`` sends FIN after the queued data (half-close, C10);
  ``close`` does the same and stops reading, and ``connection_lost(None)``
  follows once the last byte is in the connection (the connection finishes
  the FIN exchange and TIME-WAIT on its own, as the kernel does);
  ``abort`` sends RST;
* the peer's FIN is ``eof_received``; if that returns a false value the
  transport closes itself, as asyncio's does;
* a connection that fails reaches ``connection_lost`` with the stdlib
  exception for its errno: :class:`ConnectionResetError`,
  :class:`TimeoutError`, :class:`ConnectionRefusedError`, or
  ``OSError(EHOSTUNREACH)`` and friends for ICMP errors (C22).

Protocol callbacks run on the loop from the driver's processing pass, like
asyncio's from a reader callback; an exception in one is reported to the
loop's exception handler and aborts the connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..tcp.connection import Connection
from ..tcp.events import Closed, Connected, ConnectionFailed, Event
from ..tcp.states import CAN_SEND, State
from ..wire.ipv4 import ip_to_str

if TYPE_CHECKING:
    from .driver import Driver
    from .streams import Server

__all__ = ["SynackTransport", "error_from_errno"]

logger = logging.getLogger("synack.aio")

_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5  # as asyncio.constants
_DEFAULT_HIGH = 64 * 1024


def error_from_errno(err: int, message: str | None = None) -> OSError:
    """The stdlib exception for ``err``: ``OSError`` picks the subclass itself
    (ECONNRESET -> ConnectionResetError, ETIMEDOUT -> TimeoutError, ...)."""
    return OSError(err, message or errno.errorcode.get(err, str(err)))


class SynackTransport(asyncio.Transport):
    """A transport for one connection.  Made by :mod:`synack.aio.streams`;
    see the module docstring for the behaviour."""

    def __init__(
        self,
        driver: Driver,
        conn: Connection,
        protocol: asyncio.BaseProtocol | None,
        *,
        protocol_factory: Callable[[], asyncio.BaseProtocol] | None = None,
        waiter: asyncio.Future[None] | None = None,
        server: Server | None = None,
    ) -> None:
        extra = {
            "peername": (ip_to_str(conn.remote_ip), conn.remote_port),
            "sockname": (ip_to_str(conn.local_ip), conn.local_port),
            "socket": None,
            "synack_connection": conn,
            "synack_driver": driver,
        }
        super().__init__(extra)
        self._driver = driver
        self._loop = driver.loop
        self._conn = conn
        self._protocol: asyncio.BaseProtocol | None = protocol
        self._factory = protocol_factory
        self._waiter = waiter
        self._server = server
        self._buffer = bytearray()
        self._high = _DEFAULT_HIGH
        self._low = _DEFAULT_HIGH // 4
        self._protocol_paused = False
        self._paused = False  # reading paused
        self._closing = False
        self._eof = False  # write_eof() called
        self._fin_queued = False  # the connection was told to send FIN
        self._eof_delivered = False
        self._made = False  # connection_made() has been called
        self._make_scheduled = False
        self._conn_lost = 0
        self._failure: OSError | None = None
        self._lost_called = False
        if server is not None:
            server._attach(self)
        driver.register(conn, self)
        if conn.state is not State.SYN_SENT:  # an accepted connection: it is up already
            self._schedule_make()

    # ------------------------------------------------------------- events in
    def connection_event(self, event: Event) -> None:
        """The driver's entry point (see :class:`synack.aio.driver.ConnectionHandler`)."""
        if isinstance(event, ConnectionFailed):
            self._failure = error_from_errno(event.errno, event.message)
        elif isinstance(event, Closed):
            self._on_closed()
        elif isinstance(event, Connected):
            self._schedule_make()
        elif self._made and not self._conn_lost:
            self._pump()

    def _schedule_make(self) -> None:
        if not self._make_scheduled:
            self._make_scheduled = True
            self._loop.call_soon(self._make)

    def _make(self) -> None:
        if self._conn_lost:
            return
        if self._protocol is None:
            assert self._factory is not None
            try:
                self._protocol = self._factory()
            except Exception as exc:
                self._fail_waiter(exc)
                self._force_close(None)
                return
        self._made = True
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._fatal_error(exc, "protocol.connection_made() failed")
            self._fail_waiter(exc)
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._pump()
        if self._conn.state is State.CLOSED and not self._conn_lost:
            # Reset or timed out while it waited in the accept queue.
            self._force_close(
                self._failure
                or ConnectionResetError(errno.ECONNRESET, "connection reset before it was accepted")
            )

    def _fail_waiter(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _on_closed(self) -> None:
        """The connection reached CLOSED (the driver has unregistered us)."""
        if not self._made:
            self._fail_waiter(
                self._failure
                or ConnectionAbortedError(
                    errno.ECONNABORTED, "connection closed before it was established"
                )
            )
            self._conn_lost += 1
            if self._server is not None:
                self._server._detach(self)
                self._server = None
            return
        if self._conn_lost:
            return
        if not self._closing and not self._paused:
            self._pump_read()  # what arrived before a reset is still delivered
        exc = self._failure
        if exc is None and self._driver.closing:
            exc = ConnectionAbortedError(errno.ECONNABORTED, "the synack driver was closed")
        self._force_close(exc)

    # ------------------------------------------------------------- data flow
    def _pump(self) -> None:
        self._pump_write()
        if not self._conn_lost:
            self._pump_read()

    def _pump_read(self) -> None:
        conn = self._conn
        protocol = self._protocol
        assert protocol is not None
        while not self._paused and not self._closing and conn.readable:
            data = conn.recv()
            self._driver.kick()  # a window update may be due (C4)
            try:
                protocol.data_received(data)  # type: ignore[attr-defined]
            except Exception as exc:
                self._fatal_error(exc, "protocol.data_received() failed")
                return
        if (
            not self._paused
            and not self._closing
            and not self._eof_delivered
            and conn.eof_received
            and not conn.readable
        ):
            self._eof_delivered = True
            try:
                keep_open = protocol.eof_received()  # type: ignore[attr-defined]
            except Exception as exc:
                self._fatal_error(exc, "protocol.eof_received() failed")
                return
            if not keep_open:
                self.close()

    def _can_send(self) -> bool:
        return self._conn.state in CAN_SEND and not self._fin_queued

    def _pump_write(self) -> None:
        buf = self._buffer
        if buf and self._can_send():
            with memoryview(buf) as view:
                n = self._conn.send(view)
            if n:
                del buf[:n]
                self._driver.kick()
            self._maybe_resume_protocol()
        if not buf:
            if self._closing:
                self._finish_close()
            elif self._eof and not self._fin_queued:
                self._queue_fin()

    def _queue_fin(self) -> None:
        self._fin_queued = True
        self._conn.shutdown(self._driver.now())
        self._driver.kick()

    # ------------------------------------------------------- WriteTransport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("synack transport: write() on a lost connection")
            self._conn_lost += 1
            return
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if not self._buffer and self._can_send():
            n = self._conn.send(view)
            if n:
                self._driver.kick()
            if n == len(view):
                return
            view = view[n:]
        self._buffer += view
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer and not self._conn_lost:
            self._queue_fin()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        """Bytes the connection has not taken yet (its own send buffer is not counted)."""
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _DEFAULT_HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if len(self._buffer) <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()  # type: ignore[union-attr]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.pause_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._buffer) <= self._low:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()  # type: ignore[union-attr]
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {
                        "message": "protocol.resume_writing() failed",
                        "exception": exc,
                        "transport": self,
                        "protocol": self._protocol,
                    }
                )

    # -------------------------------------------------------- ReadTransport
    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        """Stop reading: the connection's buffer fills and its window closes."""
        if not self.is_reading():
            return
        self._paused = True

    def resume_reading(self) -> None:
        """Read again (soon, not from inside this call); the window reopens."""
        if self._closing or not self._paused:
            return
        self._paused = False
        self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        if self._made and not self._conn_lost:
            self._pump_read()

    # ----------------------------------------------------- BaseTransport
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Graceful close: FIN after the queued data, then ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer and not self._conn_lost:
            self._finish_close()

    def _finish_close(self) -> None:
        if self._conn_lost:
            return
        self._conn_lost += 1
        self._conn.close(self._driver.now())
        self._driver.kick()
        self._driver.unregister(self._conn)
        self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Abortive close: RST now, queued data discarded (C19, C23)."""
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._conn_lost:
            return
        self._buffer.clear()
        self._closing = True
        self._conn_lost += 1
        if self._conn.state is not State.CLOSED:
            self._conn.abort(self._driver.now())
            self._driver.kick()
        self._driver.unregister(self._conn)
        self._loop.call_soon(self._call_connection_lost, exc)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler(
            {
                "message": f"synack transport: {message}",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            }
        )
        self._force_close(exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        if self._lost_called:
            return
        self._lost_called = True
        try:
            if self._made and self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)

    # ------------------------------------------------------------ inspection
    @property
    def connection(self) -> Connection:
        return self._conn

    def __repr__(self) -> str:
        state = "closed" if self._conn_lost else "closing" if self._closing else "open"
        return (
            f"<SynackTransport {self._conn.name} {state} "
            f"tcp={self._conn.state.value} buffered={len(self._buffer)}>"
        )
