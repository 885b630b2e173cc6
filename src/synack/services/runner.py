"""Running stream services: per-connection records, counters, graceful shutdown.

A *service* is an ``async def handle(reader, writer, record, runner)`` over
the standard ``asyncio.StreamReader``/``StreamWriter`` (so it runs on synack
or, in tests, on the kernel's own asyncio streams).  :class:`ServiceRunner`
turns one into the ``client_connected_cb`` that ``start_server`` wants,
keeps a :class:`ConnectionRecord` per connection (bytes each way, a SHA-256
of what arrived, errors, the synack connection for its counters) and knows
how to stop them all gracefully:

* :meth:`ServiceRunner.stop` marks the runner as stopping and cancels every
  handler that sits at an *idle point* (``record.idle``: reading in echo or
  discard, between requests in HTTP).  A handler that is busy (in the middle
  of an HTTP response) finishes it and then notices ``runner.stopping``;
* the runner then closes each connection *lingering*: FIN after the queued
  data (``write_eof``), then it reads and drops whatever the peer still
  sends until the peer's FIN, and closes.  Nothing unread is left behind, so
  the close is a FIN exchange, not a reset;
* :meth:`ServiceRunner.wait_idle` waits for every handler to finish, up to a
  deadline; :meth:`ServiceRunner.abort_all` resets what is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..tcp.connection import Connection

__all__ = [
    "ConnectionRecord",
    "Handler",
    "ServiceRunner",
    "linger_close",
    "peer_of",
    "synack_connection",
    "tap_input",
]

_ids = itertools.count(1)


@dataclass(eq=False)
class ConnectionRecord:
    """What one served connection did."""

    peer: tuple[str, int]
    sock: tuple[str, int]
    started: float = field(default_factory=time.monotonic)
    id: int = field(default_factory=lambda: next(_ids))
    bytes_in: int = 0
    bytes_out: int = 0
    hash_in: Any = None  # a hashlib object while the service hashes what arrives
    ended: float | None = None
    error: str | None = None
    reset: bool = False
    requests: int = 0
    idle: bool = False
    conn: Connection | None = None

    def received(self, data: bytes | bytearray | memoryview) -> None:
        self.bytes_in += len(data)
        if self.hash_in is not None:
            self.hash_in.update(data)

    @property
    def sha256_in(self) -> str | None:
        return self.hash_in.hexdigest() if self.hash_in is not None else None

    @property
    def retransmits(self) -> int:
        return int(self.conn.stats["retransmits"]) if self.conn is not None else 0

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def describe(self) -> str:
        """One log line for a finished connection."""
        host = str(self.peer[0])
        peer = f"[{host}]:{self.peer[1]}" if ":" in host else f"{host}:{self.peer[1]}"
        text = (
            f"connection {self.id} from {peer} closed after {self.duration:.2f}s: "
            f"{self.bytes_in} bytes in"
        )
        if self.hash_in is not None:
            text += f" (sha256 {self.sha256_in})"
        text += f", {self.bytes_out} bytes out"
        if self.requests:
            text += f", {self.requests} request{'s' if self.requests != 1 else ''}"
        if self.conn is not None:
            text += f", {self.retransmits} retransmissions"
        if self.error:
            text += f"; {self.error}"
        return text


class Handler(Protocol):
    """A service: handles one connection until it is done."""

    def __call__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        runner: ServiceRunner,
    ) -> Awaitable[None]: ...


def peer_of(writer: asyncio.StreamWriter, name: str) -> tuple[str, int]:
    value = writer.get_extra_info(name)
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return ("?", 0)


def synack_connection(writer: asyncio.StreamWriter) -> Connection | None:
    """The synack connection under a stream writer (None on kernel sockets)."""
    conn = writer.get_extra_info("synack_connection")
    return conn  # type: ignore[no-any-return]


async def linger_close(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    grace: float,
    record: ConnectionRecord | None = None,
) -> bool:
    """Half-close, drop what the peer still sends until its FIN, close.

    Returns False (and aborts the connection) if the peer did not finish
    within ``grace`` seconds.
    """
    transport = writer.transport
    if transport.is_closing():
        return True
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(grace):
            while data := await reader.read(1 << 16):
                if record is not None:
                    record.bytes_in += len(data)
    except TimeoutError:
        transport.abort()
        return False
    except (ConnectionError, OSError):
        transport.abort()
        return False
    writer.close()
    return True


class _InputTap(asyncio.Protocol):
    """Stands in for a stream's protocol: hands each piece of incoming data to
    ``on_data`` instead of the reader's buffer and passes everything else on (EOF,
    loss, write flow control), so the reader still sees the peer's FIN or a reset."""

    def __init__(self, inner: asyncio.BaseProtocol, on_data: Callable[[bytes], None]) -> None:
        self.inner = inner
        self.data_received = on_data  # type: ignore[method-assign,assignment]

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[attr-defined,no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


async def tap_input(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_data: Callable[[bytes], None]
) -> bool:
    """Send what arrives on this connection straight to ``on_data`` from now on,
    instead of through ``reader`` (for a service that only counts or drops its input:
    no buffer to fill and slice, no task wake-up per read).

    What the reader holds already goes to ``on_data`` first, in order; afterwards
    ``reader`` yields only the end of the stream (``b""`` at the peer's FIN, or the
    error), so a loop reading it until then works unchanged.  False (nothing changed)
    when the reader or the transport cannot be tapped."""
    buffered = getattr(reader, "_buffer", None)  # the stdlib StreamReader's buffer
    transport = writer.transport
    inner = transport.get_protocol()
    if not isinstance(buffered, bytearray) or isinstance(inner, _InputTap):
        return False
    if buffered:
        # Non-empty: read() returns at once, without yielding to the loop, so nothing
        # can arrive in between; it also resumes a transport the reader had paused.
        on_data(await reader.read(len(buffered)))
    transport.set_protocol(_InputTap(inner, on_data))
    return True


class ServiceRunner:
    """Runs ``handler`` for every connection a server accepts (see the module docstring).

    ``hash_input``: keep a SHA-256 of each connection's incoming bytes.
    ``on_close(record)`` is called when a connection is done (for logging).
    ``ids`` numbers the records (default: one count for the process); the workers of
    ``serve --workers N`` take interleaved numbers so that their log lines differ.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        grace: float = 5.0,
        hash_input: bool = False,
        on_close: Callable[[ConnectionRecord], None] | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        self.name = name
        self._ids = ids
        self.handler = handler
        self.grace = grace
        self.hash_input = hash_input
        self.on_close = on_close
        self.stopping = False
        self.records: list[ConnectionRecord] = []
        self.active: dict[ConnectionRecord, asyncio.Task[Any]] = {}
        self._idle_event = asyncio.Event()
        self._idle_event.set()

    # --------------------------------------------------------------- serving
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = ConnectionRecord(peer_of(writer, "peername"), peer_of(writer, "sockname"))
        if self._ids is not None:
            record.id = next(self._ids)
        record.conn = synack_connection(writer)
        if self.hash_input:
            record.hash_in = hashlib.sha256()
        task = asyncio.current_task()
        assert task is not None
        self.records.append(record)
        self.active[record] = task
        self._idle_event.clear()
        try:
            if self.stopping:
                await linger_close(reader, writer, self.grace, record)
                return
            await self._serve(reader, writer, record, task)
        except asyncio.CancelledError:
            writer.transport.abort()  # abort_all(), or the loop going away
            record.error = record.error or "aborted"
            raise
        finally:
            record.ended = time.monotonic()
            del self.active[record]
            if not self.active:
                self._idle_event.set()
            if self.on_close is not None:
                self.on_close(record)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        task: asyncio.Task[Any],
    ) -> None:
        try:
            await self.handler(reader, writer, record, self)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            task.uncancel()  # our own stop(): shut this connection down politely
            record.idle = False
            await linger_close(reader, writer, self.grace, record)
            return
        except ConnectionResetError as exc:
            record.reset = True
            record.error = f"reset by the peer ({exc.strerror or exc})"
            writer.transport.abort()
            return
        except (ConnectionError, TimeoutError, OSError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            writer.transport.abort()
            return
        except Exception as exc:  # a bug in a service must not take the server down
            record.error = f"internal error: {type(exc).__name__}: {exc}"
            writer.transport.abort()
            return
        if self.stopping and not writer.transport.is_closing():
            await linger_close(reader, writer, self.grace, record)
        elif not writer.transport.is_closing():
            writer.close()

    # -------------------------------------------------------------- stopping
    def stop(self) -> None:
        """Begin a graceful shutdown (see the module docstring)."""
        self.stopping = True
        for record, task in list(self.active.items()):
            if record.idle and not task.done():
                task.cancel()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no handler is running; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle_event.wait()
        except TimeoutError:
            return False
        return True

    def abort_all(self) -> None:
        """Cancel every handler still running (their connections are reset)."""
        self.stopping = False  # a cancel now means abort, not linger
        for task in list(self.active.values()):
            task.cancel()

    # ---------------------------------------------------------------- totals
    def totals(self) -> dict[str, int]:
        recs = self.records
        return {
            "connections": len(recs),
            "active": len(self.active),
            "bytes_in": sum(r.bytes_in for r in recs),
            "bytes_out": sum(r.bytes_out for r in recs),
            "retransmits": sum(r.retransmits for r in recs),
            "requests": sum(r.requests for r in recs),
            "resets": sum(1 for r in recs if r.reset),
            "errors": sum(1 for r in recs if r.error and not r.reset),
        }
