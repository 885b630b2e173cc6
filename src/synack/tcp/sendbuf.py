"""The send buffer: bytes the application queued that the peer has not yet
acknowledged (RFC 9293 §3.8.6, SND.UNA to the end of the queue).

Segments are cut from it without copying: a large ``bytes`` the application
sends is kept as it is (``bytes`` cannot change under us), and small writes
are packed into ``bytearray`` pieces that are never resized once closed, so
:meth:`SendBuffer.view` can hand out a ``memoryview`` of any range that lies
within one piece.  A range that straddles two pieces is joined (one copy of
at most a segment).  The open piece still taking small writes is copied
from, since it may grow.  Acknowledged bytes are dropped from the front.
"""

from __future__ import annotations

from bisect import bisect_right

__all__ = ["SendBuffer"]

_KEEP = 2048  # an immutable write at least this big is kept as it came
_PIECE = 65536  # the open piece for small writes closes at this size

Chunk = bytes | bytearray | memoryview


class SendBuffer:
    """A FIFO of bytes with zero-copy views of its ranges (offsets from the front)."""

    __slots__ = ("_base", "_chunks", "_end", "_first", "_starts", "_tail", "_tail_start")

    def __init__(self) -> None:
        # Absolute positions count every byte ever appended; ``_base`` is the first
        # byte still held.  Closed chunks are kept as views, so cutting a segment
        # from one is a single slice.
        self._base = 0
        self._end = 0
        self._chunks: list[memoryview] = []
        self._starts: list[int] = []  # absolute start of each closed chunk
        self._first = 0  # index of the first chunk still (partly) held
        self._tail: bytearray | None = None  # the open piece; its start is _tail_start
        self._tail_start = 0

    def __getstate__(self) -> dict[str, object]:
        """For copy and pickle (the fuzzer forks whole stacks): views become bytes."""
        state: dict[str, object] = {k: getattr(self, k) for k in self.__slots__}
        state["_chunks"] = [c.tobytes() for c in self._chunks]
        state["_starts"] = list(self._starts)
        state["_tail"] = None if self._tail is None else bytearray(self._tail)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._chunks = [memoryview(c) for c in self._chunks]

    def __len__(self) -> int:
        return self._end - self._base

    def __bool__(self) -> bool:
        return self._end > self._base

    def append(self, data: Chunk) -> None:
        """Add ``data`` at the end.  A large ``bytes`` (or read-only view of one) is
        kept by reference; anything mutable is copied, since the caller may change it."""
        n = len(data)
        if not n:
            return
        if n >= _KEEP and _immutable(data):
            self._close_tail()
            self._chunks.append(memoryview(data))
            self._starts.append(self._end)
            self._end += n
            self._tail_start = self._end
            return
        tail = self._tail
        if tail is None:
            tail = self._tail = bytearray()
            self._tail_start = self._end
        tail += data
        self._end += n
        if len(tail) >= _PIECE:
            self._close_tail()

    def _close_tail(self) -> None:
        tail = self._tail
        if tail:
            self._chunks.append(memoryview(tail))  # the view pins its size: never resized
            self._starts.append(self._tail_start)
        self._tail = None
        self._tail_start = self._end

    def view(self, off: int, n: int) -> bytes | memoryview:
        """``n`` bytes from ``off`` (relative to the front): a view when the range lies
        in one closed chunk, else a copy.  The buffer must hold them."""
        if n <= 0:
            return b""
        pos = self._base + off
        if pos < self._tail_start:
            starts = self._starts
            i = bisect_right(starts, pos, self._first) - 1
            chunk = self._chunks[i]
            a = pos - starts[i]
            if a + n <= len(chunk):
                return chunk[a : a + n]
        return self._gather(pos, pos + n)

    def _gather(self, pos: int, end: int) -> bytes:
        """Copy ``[pos, end)`` (absolute) out of however many chunks it spans."""
        pieces: list[Chunk] = []
        starts, chunks = self._starts, self._chunks
        i = bisect_right(starts, pos, self._first) - 1
        while pos < end:
            if pos >= self._tail_start:
                tail = self._tail
                assert tail is not None
                a = pos - self._tail_start
                pieces.append(tail[a : a + end - pos])
                break
            chunk = chunks[i]
            a = pos - starts[i]
            take = min(len(chunk) - a, end - pos)
            pieces.append(chunk[a : a + take])
            pos += take
            i += 1
        return b"".join(pieces)

    def drop(self, n: int) -> None:
        """Forget the first ``n`` bytes (acknowledged by the peer)."""
        base = self._base = self._base + n
        chunks, starts = self._chunks, self._starts
        i = self._first
        while i < len(chunks) and starts[i] + len(chunks[i]) <= base:
            chunks[i] = _EMPTY  # release the memory now (views handed out keep theirs)
            i += 1
        self._first = i
        if i > 32 and i * 2 > len(chunks):
            del chunks[:i], starts[:i]
            self._first = 0
        tail = self._tail
        if tail is not None and base > self._tail_start:
            del tail[: base - self._tail_start]  # the open piece is never viewed
            self._tail_start = base


_EMPTY = memoryview(b"")


def _immutable(data: Chunk) -> bool:
    """``bytes``, or a flat byte view of most of a ``bytes``: contents that cannot
    change, worth keeping by reference.  A view of a small part is not kept: it would
    hold the whole object alive (a writer looping on ``data[n:]`` would pin every
    remainder until acknowledged)."""
    if type(data) is bytes:
        return True
    return (
        isinstance(data, memoryview)
        and data.readonly
        and type(data.obj) is bytes
        and data.c_contiguous
        and data.itemsize == 1
        and 2 * data.nbytes >= len(data.obj)
    )
