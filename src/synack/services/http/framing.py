"""HTTP/1.1 framing shared by the server and the client: h11 over asyncio streams.

h11 (the sans-IO HTTP/1.1 library under httpcore and httpx) parses every message
that arrives, requests and responses (RFC 9112), and writes the client's request;
this module only moves bytes between it and a stream: :func:`next_event` reads
until h11 has an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h11

from ... import __version__

__all__ = ["MAX_HEAD", "READ_CHUNK", "SERVER_NAME", "Event", "next_event"]

SERVER_NAME = f"synack/{__version__}"
#: The largest request or response head (request line, header fields) accepted.
MAX_HEAD = 1 << 16
#: Bytes asked of the stream per read.
READ_CHUNK = 1 << 18

Event = (
    h11.Request
    | h11.InformationalResponse
    | h11.Response
    | h11.Data
    | h11.EndOfMessage
    | h11.ConnectionClosed
)


async def next_event(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    on_bytes: Callable[[bytes], bytes] | None = None,
    *,
    read_first: bool = False,
) -> Event:
    """The next event h11 finds on ``reader``, reading as much as it needs.

    ``on_bytes(data)`` sees every piece read (empty at the end of the stream) and
    returns what to give h11.  ``read_first``: h11 holds nothing yet, so read before
    asking it.  Raises ``h11.RemoteProtocolError`` for a broken message.
    """
    while True:
        if read_first:
            read_first = False
        else:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                if event is h11.PAUSED:  # a message is in: nothing more until the next one
                    raise h11.RemoteProtocolError("more data before the response was sent")
                return event  # type: ignore[return-value]
        data = await reader.read(READ_CHUNK)
        if on_bytes is not None:
            data = on_bytes(data)
            if data == b"" and not reader.at_eof():
                continue
        conn.receive_data(data)
