"""What a driver needs from a link, and a readiness doorbell links and sockets share.

A link carries whole raw IPv4 packets.  It exposes a real file descriptor
so an event loop can wait for it (``loop.add_reader(link.fileno(), ...)``),
reads in batches until the kernel says EAGAIN, and writes one packet at a
time.  Links never block: a packet that cannot be written at once is dropped
and counted, as a full transmit queue drops on a real interface; TCP
recovers it.

Counters live in ``link.stats`` (a :class:`collections.Counter`): the keys
every link keeps are ``rx_packets``, ``rx_bytes``, ``tx_packets`` and
``tx_bytes``; drops are counted under ``tx_drop_<reason>`` and
``rx_drop_<reason>``.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Protocol, runtime_checkable

__all__ = ["Doorbell", "Link", "LinkClosedError"]


class LinkClosedError(EOFError):
    """The far side of the link went away for good (peer end closed, device gone)."""


@runtime_checkable
class Link(Protocol):
    """A packet link.  ``max_segment_payload`` is None unless the link does
    segmentation offload (then one TCP segment handed to it may be that big)."""

    mtu: int
    max_segment_payload: int | None
    stats: Counter[str]

    def fileno(self) -> int:
        """A file descriptor that is readable when :meth:`read_batch` has packets."""
        ...

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Up to ``max_packets`` packets, without blocking; fewer (or none) means the
        link had no more (EAGAIN).  Raises :class:`LinkClosedError` once the link is
        gone for good."""
        ...

    def write(self, packet: bytes) -> None:
        """Transmit one packet without blocking (dropped and counted if it cannot go)."""
        ...

    def close(self) -> None:
        """Release the link; idempotent."""
        ...


class Doorbell:
    """A file descriptor that is readable exactly while the bell is rung.

    Level-triggered readiness for things that are not file descriptors
    themselves (packets held back by an impairment, data waiting in a
    synack connection): ``ring()`` makes :meth:`fileno` readable and
    ``clear()`` makes it not readable again.  Both are idempotent and cheap
    when the state does not change.  Uses an eventfd where the OS has one,
    else a pipe.  Not thread-safe: ring and clear from one thread.
    """

    __slots__ = ("_r", "_rung", "_w")

    def __init__(self) -> None:
        self._rung = False
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._r = self._w = fd
        else:  # pragma: no cover - non-Linux
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)

    def fileno(self) -> int:
        return self._r

    @property
    def rung(self) -> bool:
        return self._rung

    def ring(self) -> None:
        if not self._rung and self._w >= 0:
            self._rung = True
            os.write(self._w, (1).to_bytes(8, "little"))

    def clear(self) -> None:
        if self._rung and self._r >= 0:
            self._rung = False
            os.read(self._r, 8)  # rung means something is pending: this never blocks

    def set(self, on: bool) -> None:
        """Ring when ``on`` is true, clear otherwise."""
        if on:
            self.ring()
        else:
            self.clear()

    def close(self) -> None:
        if self._r >= 0:
            os.close(self._r)
            if self._w != self._r:
                os.close(self._w)
        self._r = self._w = -1
