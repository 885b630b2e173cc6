""":class:`SocketIO`: raw file I/O on a synack socket (what ``makefile`` buffers)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .synack_socket import SynackSocket


class SocketIO(io.RawIOBase):
    """Raw file I/O on a :class:`SynackSocket` (what ``makefile`` buffers)."""

    def __init__(self, sock: SynackSocket, mode: str) -> None:
        if mode not in ("r", "w", "rw"):
            raise ValueError(f"invalid mode: {mode!r}")
        super().__init__()
        self._sock: SynackSocket | None = sock
        self._mode = mode + "b"
        self._reading = "r" in mode
        self._writing = "w" in mode

    def _socket(self) -> SynackSocket:
        if self.closed or self._sock is None:
            raise ValueError("I/O operation on closed socket.")
        return self._sock

    def readinto(self, b: Any) -> int | None:
        sock = self._socket()
        if not self._reading:
            raise io.UnsupportedOperation("not readable")
        if sock._timed_out_io:
            raise OSError("cannot read from timed out object")
        try:
            return sock.recv_into(b)
        except TimeoutError:
            sock._timed_out_io = True
            raise
        except BlockingIOError:
            return None

    def write(self, b: Any) -> int | None:
        sock = self._socket()
        if not self._writing:
            raise io.UnsupportedOperation("not writable")
        try:
            return sock.send(b)
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        self._socket()
        return self._reading

    def writable(self) -> bool:
        self._socket()
        return self._writing

    def seekable(self) -> bool:
        self._socket()
        return False

    def fileno(self) -> int:
        return self._socket().fileno()

    @property
    def name(self) -> int:
        return self.fileno() if not self.closed else -1

    @property
    def mode(self) -> str:
        return self._mode

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock._decref_socketios()
