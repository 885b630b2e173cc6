"""Local ports: ephemeral port choice (RFC 6056 §3.3.1 over RFC 6335 §6's dynamic
range, or a worker's share of it) and port numbers checked."""

from __future__ import annotations

import errno

from .base import StackBase


class PortsMixin(StackBase):
    """Port selection for :class:`~synack.stack.Stack`."""

    def _ephemeral_port(self, rip: bytes, rport: int, lip: bytes) -> int:
        """A random free port (RFC 6056 §3.3.1 simple randomisation) of
        :attr:`ephemeral_ports`."""
        ports = self.ephemeral_ports
        span = len(ports)
        start = self._rng.randrange(span)
        for i in range(span):
            p = ports[(start + i) % span]
            if (rip, rport, p, lip) not in self._conns and p not in self._listen_ports:
                return p
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port for this destination")

    def _free_listen_port(self) -> int:
        ports = self.ephemeral_ports
        span = len(ports)
        start = self._rng.randrange(span)
        used = {key[2] for key in self._conns}
        for i in range(span):
            p = ports[(start + i) % span]
            if p not in self._listen_ports and p not in used:
                return p
        raise OSError(errno.EADDRINUSE, "no free port to listen on")


def check_port(port: int) -> None:
    """A port number a user gave: an integer in 1..65535, ``ValueError`` otherwise."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
