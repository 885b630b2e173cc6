"""The standard library's own servers and clients on synack sockets: ``socketserver``,
``http.server`` and ``http.client``."""

from __future__ import annotations

import http.client
import http.server
import socket as _socket
import socketserver
from collections.abc import Callable
from typing import Any

from .core import Address
from .host import SocketHost


# -------------------------------------------------- the standard library on synack
class SynackTCPServer(socketserver.TCPServer):
    """``socketserver.TCPServer`` whose listening socket is a synack socket.

    Everything else (``serve_forever``, request handlers, ``shutdown``) is
    the standard library's own code.
    """

    def __init__(
        self,
        server_address: Address,
        RequestHandlerClass: Callable[..., socketserver.BaseRequestHandler],
        bind_and_activate: bool = True,
        *,
        synack_host: SocketHost,
    ) -> None:
        self.synack_host = synack_host
        super().__init__(server_address, RequestHandlerClass, bind_and_activate=False)
        self.socket.close()  # the kernel socket TCPServer made; synack's replaces it
        self.socket = synack_host.socket(
            self.address_family,  # type: ignore[assignment]
            self.socket_type,
        )
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise


class SynackHTTPServer(SynackTCPServer, http.server.HTTPServer):
    """``http.server.HTTPServer`` on synack."""


class SynackThreadingHTTPServer(socketserver.ThreadingMixIn, SynackHTTPServer):
    """``http.server.ThreadingHTTPServer`` on synack: a thread per connection."""

    daemon_threads = True


class SynackHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` whose ``connect()`` opens a synack socket."""

    def __init__(
        self, host: str, port: int | None = None, *, synack_host: SocketHost, **kwargs: Any
    ) -> None:
        super().__init__(host, port, **kwargs)
        self.synack_host = synack_host

    def connect(self) -> None:
        """What ``HTTPConnection.connect`` does, on synack (no proxy tunnelling)."""
        sock = self.synack_host.create_connection(
            (self.host, self.port), self.timeout, getattr(self, "source_address", None)
        )
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.sock = sock
