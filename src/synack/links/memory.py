"""An in-process link pair: two ends joined by a ``SOCK_SEQPACKET`` socket pair.

Each ``send`` on a sequenced-packet socket is delivered as one whole message,
so a packet never merges with or splits into another, and each end has a
real file descriptor an event loop can wait on.  Two synack stacks can talk
through it in one process (or one event loop) without root, which is what
the asyncio and socket API tests run on.

The kernel queue between the ends is sized generously; a packet that still
does not fit is dropped and counted (``tx_drop_full``), as a full transmit
queue would.  Packets larger than the link MTU are refused the same way
(``tx_drop_oversize``): a stack configured with this link's ``mtu`` never
produces one.
"""

from __future__ import annotations

import socket
from collections import Counter

from .base import LinkClosedError

__all__ = ["MemoryLink", "memory_pair"]

_BUFFER = 4 << 20  # bytes of kernel queue requested per direction


class MemoryLink:
    """One end of a :func:`memory_pair`."""

    def __init__(self, sock: socket.socket, mtu: int, name: str) -> None:
        self._sock = sock
        self.mtu = mtu
        self.max_segment_payload: int | None = None
        self.name = name
        self.stats: Counter[str] = Counter()
        self._closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Whole packets until EAGAIN or ``max_packets``."""
        out: list[bytes] = []
        recv = self._sock.recv
        size = self.mtu  # write() never lets a bigger packet in
        while len(out) < max_packets:
            try:
                pkt = recv(size)
            except BlockingIOError:
                break
            if not pkt:  # a zero-length read on a sequenced-packet socket: the peer is gone
                if out:
                    break
                raise LinkClosedError(f"memory link {self.name}: the other end was closed")
            out.append(pkt)
        if out:
            self.stats["rx_packets"] += len(out)
            self.stats["rx_bytes"] += sum(map(len, out))
        return out

    def write(self, packet: bytes) -> None:
        n = len(packet)
        if n == 0 or n > self.mtu:
            self.stats["tx_drop_oversize" if n else "tx_drop_empty"] += 1
            return
        try:
            self._sock.send(packet)
        except BlockingIOError:
            self.stats["tx_drop_full"] += 1
            return
        except (BrokenPipeError, ConnectionResetError):
            self.stats["tx_drop_peer_closed"] += 1
            return
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += n

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<MemoryLink {self.name} mtu={self.mtu}{' closed' if self._closed else ''}>"


def memory_pair(
    mtu: int = 1500, *, names: tuple[str, str] = ("a", "b")
) -> tuple[MemoryLink, MemoryLink]:
    """Two connected link ends; what one writes, the other reads."""
    if not 68 <= mtu <= 65535:
        raise ValueError(f"mtu must be in 68..65535, got {mtu}")
    s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (s1, s2):
        s.setblocking(False)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            s.setsockopt(socket.SOL_SOCKET, opt, _BUFFER)  # the kernel clamps to its maximum
    return MemoryLink(s1, mtu, names[0]), MemoryLink(s2, mtu, names[1])
