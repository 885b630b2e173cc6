""":class:`SocketHost`: a synack host on a loop thread, with socket-module entry points."""

from __future__ import annotations

import asyncio
import errno
import random
import socket as _socket
from collections.abc import Callable
from typing import Any

from ..aio.host import Host
from ..stack import EPHEMERAL_HIGH, EPHEMERAL_LOW
from .core import _DEFAULT_TIMEOUT, _V6ONLY, Address, _Core
from .loop import T, _LoopThread
from .synack_socket import SynackSocket


# -------------------------------------------------------------------- the host
class SocketHost:
    """A :class:`~synack.aio.host.Host` run by a background event-loop thread, with
    socket-module entry points.  Close it (or use ``with``) to stop the thread."""

    def __init__(self, runner: _LoopThread, host: Host) -> None:
        self._runner = runner
        self.host = host  # touch only on the loop thread (see call())
        self._cores: dict[_Core, None] = {}
        self._rng = random.Random()
        self._closed = False
        runner.retain()

    @classmethod
    def start(cls, build: Callable[[], Host]) -> SocketHost:
        """Run ``build()`` on a new loop thread (where it may use the running loop)."""
        runner = _LoopThread()
        runner.retain()
        try:
            host = runner.call(build)
            return cls(runner, host)
        finally:
            runner.release()

    @classmethod
    def tun(cls, name: str = "syn0", ip: str = "10.77.0.2", **options: Any) -> SocketHost:
        """:meth:`Host.tun` on a loop thread."""
        return cls.start(lambda: Host.tun(name, ip, **options))

    @classmethod
    def memory_pair(
        cls, ip_a: str = "10.0.0.1", ip_b: str = "10.0.0.2", **options: Any
    ) -> tuple[SocketHost, SocketHost]:
        """:meth:`Host.memory_pair` on one loop thread shared by both hosts."""
        runner = _LoopThread()
        runner.retain()
        try:
            a, b = runner.call(lambda: Host.memory_pair(ip_a, ip_b, **options))
            return cls(runner, a), cls(runner, b)
        finally:
            runner.release()

    @property
    def ip(self) -> str:
        return self.host.ip

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._runner.loop

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop thread (the only safe place to touch the
        stack, its connections or the driver) and return the result."""
        return self._runner.call(fn, *args)

    def _free_port(self, taken: set[int]) -> int:
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self._rng.randrange(span)
        for i in range(span):
            port = EPHEMERAL_LOW + (start + i) % span
            if port not in taken:
                return port
        raise OSError(errno.EADDRINUSE, "Address already in use (no free port)")

    # ---------------------------------------------------------- socket module
    def socket(
        self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0
    ) -> SynackSocket:
        if self._closed:
            raise OSError(errno.EBADF, "the synack host is closed")
        return SynackSocket(family, type, proto, host=self)

    def create_connection(
        self,
        address: Address,
        timeout: object = _DEFAULT_TIMEOUT,
        source_address: Address | None = None,
        *,
        all_errors: bool = False,
    ) -> SynackSocket:
        """As ``socket.create_connection`` (any non-number ``timeout`` means the default);
        an IPv6 literal makes an ``AF_INET6`` socket."""
        host = address[0] if isinstance(address, tuple) and address else ""
        six = isinstance(host, str) and ":" in host
        sock = self.socket(_socket.AF_INET6 if six else _socket.AF_INET)
        try:
            if timeout is None or isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    def create_server(
        self,
        address: Address,
        *,
        family: int = _socket.AF_INET,
        backlog: int | None = None,
        reuse_port: bool = False,
        dualstack_ipv6: bool = False,
    ) -> SynackSocket:
        """As ``socket.create_server``: bound and listening.  ``AF_INET6`` is IPv6 only
        unless ``dualstack_ipv6`` (the standard library sets ``IPV6_V6ONLY`` the same way)."""
        if dualstack_ipv6 and family != _socket.AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
        sock = self.socket(family)
        try:
            if family == _socket.AF_INET6:
                sock.setsockopt(*_V6ONLY, 0 if dualstack_ipv6 else 1)
            if reuse_port:
                sock.setsockopt(_socket.SOL_SOCKET, getattr(_socket, "SO_REUSEPORT", -1), 1)
            sock.bind(address)
            sock.listen(128 if backlog is None else backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Fail blocked calls, abort connections, stop the host (and the loop
        thread once no host uses it)."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            for core in list(self._cores):
                core.op_close(True, blocking=False)
            self.host.close_nowait()

        self._runner.call(shut)
        self._runner.release()

    def __enter__(self) -> SocketHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SocketHost {self.host.ip}{' closed' if self._closed else ''}>"
