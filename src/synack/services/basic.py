"""The classic test services: echo (RFC 862), discard (RFC 863), chargen (RFC 864).

Each is a handler for :class:`~synack.services.runner.ServiceRunner` over
asyncio streams:

* **echo** sends back every byte it receives.  On the peer's FIN it finishes
  echoing what arrived (every write is drained before the next read), then
  closes: the peer sees its data come back and then our FIN.  It never reads
  ahead of what it can send, so a peer that does not read stops us reading
  too, and flow control closes its window (C4).
* **discard** reads and drops everything, keeping a count (and a SHA-256 when
  the runner asks for one) so a sender can check what arrived.  Its input goes
  straight from the transport to the count (:func:`~.runner.tap_input`), as a
  bare ``asyncio.Protocol`` would take it.
* **chargen** sends the RFC 864 pattern: lines of 72 printable ASCII
  characters (codes 32-126, 95 of them), each starting one character later
  than the line before, ended by CR LF; the pattern repeats every 95 lines.
  It sends ``nbytes`` bytes and closes, or, without a limit, until the peer
  goes away.  What the peer sends is read and dropped (so the window stays
  open and a reset is noticed).  The peer's FIN alone does not stop it: a
  half-closed peer may still be reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from .runner import ConnectionRecord, ServiceRunner, tap_input

__all__ = [
    "CHARGEN_LINE",
    "chargen",
    "chargen_bytes",
    "chargen_cycle",
    "discard",
    "echo",
]

READ_SIZE = 1 << 18
#: Bytes chargen hands to the transport per write (as ``make bench``'s agent does).
CHARGEN_CHUNK = 1 << 18
CHARGEN_LINE = 72
_PRINTABLE = bytes(range(32, 127))  # the 95 printable ASCII characters


def chargen_cycle() -> bytes:
    """One period of the chargen stream: 95 lines of 72 characters plus CR LF."""
    n = len(_PRINTABLE)
    lines = []
    for i in range(n):
        lines.append(bytes(_PRINTABLE[(i + j) % n] for j in range(CHARGEN_LINE)) + b"\r\n")
    return b"".join(lines)


_CYCLE = chargen_cycle()


def chargen_bytes(offset: int, n: int) -> bytes:
    """``n`` bytes of the chargen stream starting at byte ``offset``."""
    if offset < 0 or n < 0:
        raise ValueError("offset and n must be >= 0")
    period = len(_CYCLE)
    start = offset % period
    reps = (start + n) // period + 1
    return (_CYCLE * reps)[start : start + n]


async def echo(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    record: ConnectionRecord,
    runner: ServiceRunner,
) -> None:
    """RFC 862: send back every byte; on the peer's FIN finish echoing, then close."""
    record.idle = True  # a graceful stop may interrupt us anywhere: data queued still goes
    while data := await reader.read(READ_SIZE):
        record.received(data)
        writer.write(data)
        record.bytes_out += len(data)
        await writer.drain()


async def discard(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    record: ConnectionRecord,
    runner: ServiceRunner,
) -> None:
    """RFC 863: read and drop everything until the peer's FIN, then close."""
    record.idle = True
    await tap_input(reader, writer, record.received)
    while data := await reader.read(READ_SIZE):
        record.received(data)


def chargen(nbytes: int | None = None, *, chunk: int = CHARGEN_CHUNK) -> ChargenHandler:
    """An RFC 864 handler that sends ``nbytes`` bytes and closes (None: until the peer
    goes away)."""
    if nbytes is not None and nbytes < 0:
        raise ValueError("nbytes must be >= 0")
    return ChargenHandler(nbytes, chunk)


class ChargenHandler:
    """See :func:`chargen`."""

    def __init__(self, nbytes: int | None, chunk: int) -> None:
        self.nbytes = nbytes
        self.chunk = max(1, chunk)
        period = len(_CYCLE)
        self._buf = memoryview(_CYCLE * (self.chunk // period + 2))

    def __call__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        runner: ServiceRunner,
    ) -> Awaitable[None]:
        return self._run(reader, writer, record)

    async def _run(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: ConnectionRecord
    ) -> None:
        record.idle = True
        await tap_input(reader, writer, record.received)
        sink = asyncio.ensure_future(self._drop_input(reader, record))
        try:
            period = len(_CYCLE)
            buf = self._buf
            sent = 0
            limit = self.nbytes
            while limit is None or sent < limit:
                if sink.done() and not sink.cancelled() and (exc := sink.exception()):
                    raise exc
                n = self.chunk if limit is None else min(self.chunk, limit - sent)
                start = sent % period
                writer.write(buf[start : start + n])  # a view: the transport copies once
                sent += n
                record.bytes_out += n
                await writer.drain()
        finally:
            if not sink.done():
                sink.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await sink

    @staticmethod
    async def _drop_input(reader: asyncio.StreamReader, record: ConnectionRecord) -> None:
        while data := await reader.read(READ_SIZE):
            record.received(data)
