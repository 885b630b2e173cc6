"""Blocking, socket-module-like API on synack, for code written against ``socket``.

::

    a, b = SocketHost.memory_pair("10.0.0.1", "10.0.0.2")
    srv = b.create_server(("", 8080))
    cli = a.create_connection(("10.0.0.2", 8080), timeout=5)
    conn, addr = srv.accept()
    cli.sendall(b"hello"); conn.recv(5)

A :class:`SocketHost` runs a :class:`synack.aio.host.Host` (stack, link, asyncio
driver) on an event loop in a background thread that owns it.  Each
:class:`SynackSocket` has two halves: the object the application holds, and
a loop-side half (``_Core``) registered with the driver for its
connection's events.  Every operation crosses to the loop with
``loop.call_soon_threadsafe`` and is carried out there against the
connection; one that cannot finish yet (``recv`` with nothing to read,
``sendall`` into a full send buffer, ``accept`` with an empty queue,
``connect`` before the SYN-ACK) is parked and retried on the connection's
next event.  The application thread waits on a ``concurrent.futures``
future with the socket's timeout; on timeout the operation is withdrawn on
the loop (unless it finished meanwhile, in which case its result is used),
so nothing is lost.  Data stays in the connection until the application
reads it, so the receive window is true flow control (C4).

``fileno()`` is a real descriptor (an eventfd) that the loop keeps readable
exactly while ``recv``/``accept`` would not block (data, EOF, an error, or a
queued connection), so ``select``, ``selectors`` and ``socketserver`` work
unmodified.  It never signals writability separately: it always polls
writable.

Errors are the stdlib's: ``ConnectionRefusedError``, ``ConnectionResetError``,
``BrokenPipeError`` (send after shutdown or reset), ``TimeoutError`` (the
socket timeout, or TCP giving up), ``BlockingIOError`` (non-blocking
operation that would block; ``EINPROGRESS`` for a non-blocking connect),
``OSError(ENOTCONN)``...  Options map to the connection's
:class:`~synack.tcp.config.TcpConfig`: ``TCP_NODELAY``, ``SO_KEEPALIVE``,
``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT``, ``SO_SNDBUF`` and
``SO_RCVBUF`` (reported as set, not doubled as Linux does; set it before
``connect``/``listen`` for the window scale to follow).  Set on a listening
socket they are inherited by accepted ones.  ``SO_LINGER`` on with time 0
makes ``close()`` abort with RST; ``SO_ERROR`` reads and clears the pending
error; ``SO_REUSEADDR``/``SO_REUSEPORT`` are recorded (binding never
conflicts with TIME-WAIT connections here).  ``SO_KEEPALIVE`` turned on
after the connection is established applies to the next connections only
(the core arms keepalive when a connection is established).

``AF_INET6`` sockets take IPv6 literals (brackets allowed) and give
``(host, port, flowinfo, scope_id)`` names.  ``IPV6_V6ONLY`` is off by default
(Linux's ``net.ipv6.bindv6only=0``) and settable before ``bind``: an ``AF_INET6``
listener on ``::`` then takes IPv4 connections too, and names their peers by
IPv4-mapped addresses ``::ffff:a.b.c.d`` (RFC 3493 §3.7, RFC 4291 §2.5.5.2);
``connect`` to a mapped address opens an IPv4 connection.  An ``AF_INET``
socket is IPv4 only, as on Linux.

At the end, adapters run the standard library's own servers and clients on
synack: :class:`SynackTCPServer` (``socketserver``), :class:`SynackHTTPServer`
(``http.server``) and :class:`SynackHTTPConnection` (``http.client``).
"""

from __future__ import annotations

from .adapters import (
    SynackHTTPConnection,
    SynackHTTPServer,
    SynackTCPServer,
    SynackThreadingHTTPServer,
)
from .host import SocketHost
from .io import SocketIO
from .synack_socket import SynackSocket, socket

__all__ = [
    "SocketHost",
    "SocketIO",
    "SynackHTTPConnection",
    "SynackHTTPServer",
    "SynackSocket",
    "SynackTCPServer",
    "SynackThreadingHTTPServer",
    "socket",
]
