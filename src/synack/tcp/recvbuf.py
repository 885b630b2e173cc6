"""The receive buffer: in-order bytes waiting for the application (RFC 9293 §3.8.6.2).

Appending never copies a large payload and never moves what is already
buffered: large segments (the 64 KB ones a TUN device with offloads hands
over) are kept as the views they arrived in, and small ones are packed into
bounded ``bytearray`` pieces, so a peer sending tiny segments cannot make
the per-segment bookkeeping outweigh the bytes.  :meth:`RecvBuffer.take`
joins what the application asks for in one copy.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RecvBuffer"]

_KEEP_VIEW = 4096  # payloads at least this big are kept as they came, uncopied
_PIECE = 65536  # a packing piece for small payloads grows to at most this size


class RecvBuffer:
    """A FIFO of bytes with O(1) append and one copy per :meth:`take`."""

    __slots__ = ("_chunks", "_len", "_tail")

    def __init__(self) -> None:
        # Made on first use: an idle connection's empty buffer costs no deque (~600 B).
        self._chunks: deque[bytes | bytearray | memoryview] | None = None
        self._len = 0
        self._tail: bytearray | None = None  # the packing piece still open for appends

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` at the end; the buffer may keep a reference to it."""
        n = len(data)
        if not n:
            return
        self._len += n
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = deque()
        if n >= _KEEP_VIEW:
            if isinstance(data, bytearray) or (isinstance(data, memoryview) and not data.readonly):
                data = bytes(data)  # the caller may change it later: keep a copy
            chunks.append(data)
            self._tail = None
            return
        tail = self._tail
        if tail is None or len(tail) + n > _PIECE:
            tail = self._tail = bytearray(data)
            chunks.append(tail)
        else:
            tail += data

    def take(self, max_bytes: int = -1) -> bytes:
        """Remove and return the first ``max_bytes`` bytes (all of them if negative)."""
        chunks = self._chunks
        if chunks is None or not max_bytes:
            return b""
        if max_bytes < 0 or max_bytes >= self._len:
            data = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._len = 0
            self._tail = None
            return data
        out: list[bytes | bytearray | memoryview] = []
        need = max_bytes
        while need:
            first = chunks[0]
            if len(first) <= need:
                out.append(chunks.popleft())
                need -= len(first)
                if first is self._tail:
                    self._tail = None
            else:
                view = memoryview(first)
                out.append(view[:need])
                chunks[0] = view[need:]  # the rest stays, uncopied
                if first is self._tail:
                    self._tail = None  # a view of it is now in the queue: append no more
                need = 0
        self._len -= max_bytes
        return b"".join(out)
