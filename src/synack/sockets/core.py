"""Blocking, socket-module-like API on synack, for code written against ``socket``.

::

    a, b = SocketHost.memory_pair("10.0.0.1", "10.0.0.2")
    srv = b.create_server(("", 8080))
    cli = a.create_connection(("10.0.0.2", 8080), timeout=5)
    conn, addr = srv.accept()
    cli.sendall(b"hello"); conn.recv(5)

A :class:`SocketHost` runs a :class:`synack.host.Host` (stack, link, asyncio
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

import asyncio
import concurrent.futures
import errno
import http.client
import http.server
import io
import random
import socket as _socket
import socketserver
import struct
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .aio.transport import error_from_errno
from .host import Host
from .links.base import Doorbell
from .stack import EPHEMERAL_HIGH, EPHEMERAL_LOW, Listener
from .tcp.config import TcpConfig
from .tcp.connection import Connection
from .tcp.events import ConnectionFailed, Event
from .tcp.states import CAN_SEND, State
from .wire.ipv4 import ip_to_bytes, ip_to_str
from .wire.ipv6 import is_mapped, map_v4, unmap

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

T = TypeVar("T")
_DEFAULT_TIMEOUT = object()  # "the socket default", like socket._GLOBAL_DEFAULT_TIMEOUT
Address = tuple[Any, ...]  # (host, port), or (host, port, flowinfo, scope_id) for AF_INET6
_V6ONLY = (getattr(_socket, "IPPROTO_IPV6", 41), getattr(_socket, "IPV6_V6ONLY", 26))
_EAI_ADDRFAMILY = getattr(_socket, "EAI_ADDRFAMILY", _socket.EAI_FAMILY)

_LINGER = struct.Struct("ii")
_MIN_RCVBUF, _MAX_RCVBUF = 2304, 65535 << 14  # Linux's minimum; RFC 7323's maximum
_MIN_SNDBUF, _MAX_SNDBUF = 4608, 1 << 31
_RECORDED = {
    (_socket.SOL_SOCKET, _socket.SO_REUSEADDR),
    (_socket.SOL_SOCKET, getattr(_socket, "SO_REUSEPORT", -1)),
    (_socket.SOL_SOCKET, _socket.SO_LINGER),
}
#: (level, option) -> (TcpConfig field, conversion from the option's int value)
_CONFIG_OPTIONS: dict[tuple[int, int], tuple[str, Callable[[int], object]]] = {
    (_socket.IPPROTO_TCP, _socket.TCP_NODELAY): ("nodelay", bool),
    (_socket.SOL_SOCKET, _socket.SO_KEEPALIVE): ("keepalive", bool),
    (_socket.SOL_SOCKET, _socket.SO_SNDBUF): (
        "snd_buf", lambda v: min(max(v, _MIN_SNDBUF), _MAX_SNDBUF)),
}
for _name, _field in (("TCP_KEEPIDLE", "keepalive_idle"), ("TCP_KEEPINTVL", "keepalive_interval")):
    if hasattr(_socket, _name):
        _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, getattr(_socket, _name))] = (_field, float)
if hasattr(_socket, "TCP_KEEPCNT"):
    _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT)] = ("keepalive_count", int)
if hasattr(_socket, "TCP_CORK"):
    _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, _socket.TCP_CORK)] = ("cork", bool)


# --------------------------------------------------------------------- loop thread
class _LoopThread:
    """An asyncio loop running forever in a daemon thread, shared by reference count."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._users = 0
        self._lock = threading.Lock()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="synack-loop", daemon=True)
        self.thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon, without waiting."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed
            raise OSError(errno.EBADF, "the synack host is closed") from None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop and return its result (or raise its exception)."""
        if self.in_loop_thread():
            return fn(*args)
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.post(run)
        return fut.result()

    def retain(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            if not self.in_loop_thread():  # from inside, the loop ends after this callback
                self.thread.join()


# ------------------------------------------------------------------- loop-side half
def _complete(fut: concurrent.futures.Future[Any], ok: bool, value: Any) -> None:
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class _Waiter:
    __slots__ = ("attempt", "fut", "on_withdraw")

    def __init__(self, attempt: Callable[[], tuple[bool, Any]],
                 fut: concurrent.futures.Future[Any],
                 on_withdraw: Callable[[], None] | None) -> None:
        self.attempt = attempt
        self.fut = fut
        self.on_withdraw = on_withdraw


class _Send:
    """Progress of one send/sendall: the caller's buffer and how much went in."""

    __slots__ = ("all", "off", "urgent", "view")

    def __init__(self, view: memoryview, all_: bool, urgent: bool = False) -> None:
        self.view = view
        self.off = 0
        self.all = all_
        self.urgent = urgent  # MSG_OOB: the write's last byte ends the urgent data


class _Core:
    """The loop-thread half of a socket.  Every method runs on the loop."""

    def __init__(self, sh: SocketHost, config: TcpConfig, conn: Connection | None = None,
                 options: dict[tuple[int, int], Any] | None = None,
                 family: int = _socket.AF_INET) -> None:
        self.sh = sh
        self.family = family
        self.driver = sh.host.driver
        self.config = config
        self.options: dict[tuple[int, int], Any] = dict(options or {})
        self.conn = conn
        self.listener: Listener | None = None
        self.bound: tuple[bytes, int] | None = None  # the socket's address (16 bytes in AF_INET6)
        self.bell = Doorbell()
        self.error: OSError | None = None
        self.closed = False
        self.shut_rd = False
        self.shut_wr = False
        self.connecting = False
        self.waiters: list[_Waiter] = []
        sh._cores[self] = None
        if conn is not None:
            self.driver.register(conn, self)
            if conn.state is State.CLOSED:
                self.error = ConnectionResetError(errno.ECONNRESET,
                                                  "connection reset before it was accepted")
        self._refresh()

    # ------------------------------------------------------------ plumbing
    def connection_event(self, event: Event) -> None:
        if isinstance(event, ConnectionFailed):
            self.error = error_from_errno(event.errno, event.message)
        self._service()

    def on_listener_ready(self, listener: Listener) -> None:
        self._service()

    def start(self, fut: concurrent.futures.Future[Any], blocking: bool,
              op: Callable[..., tuple[bool, Any]], args: tuple[Any, ...],
              on_withdraw: Callable[[], None] | None = None) -> None:
        """Try ``op(*args, blocking=...)``; park it if it cannot finish and may block."""
        if self.closed:
            fut.set_exception(OSError(errno.EBADF, "Bad file descriptor"))
            return
        outcome: tuple[bool, Any]
        try:
            done, value = op(*args, blocking=blocking)
        except Exception as exc:
            outcome = (False, exc)
        else:
            if done:
                outcome = (True, value)
            elif blocking:
                self.waiters.append(_Waiter(lambda: op(*args, blocking=True), fut, on_withdraw))
                self._refresh()
                return
            else:
                outcome = (False, BlockingIOError(errno.EAGAIN,
                                                  "Resource temporarily unavailable"))
        self._refresh()
        _complete(fut, *outcome)

    def withdraw(self, fut: concurrent.futures.Future[Any]) -> None:
        """The caller timed out: drop its parked operation unless it already finished."""
        for w in self.waiters:
            if w.fut is fut:
                self.waiters.remove(w)
                if w.on_withdraw is not None:
                    w.on_withdraw()
                self._refresh()
                fut.set_exception(TimeoutError("timed out"))
                return

    def _service(self) -> None:
        """Retry parked operations (in order) and update readiness.

        Readiness is updated before any caller is released, so a thread that
        returns from ``recv`` never sees the descriptor it just drained as readable.
        """
        finished: list[tuple[concurrent.futures.Future[Any], bool, Any]] = []
        for w in list(self.waiters):
            try:
                done, value = w.attempt()
            except Exception as exc:
                self.waiters.remove(w)
                finished.append((w.fut, False, exc))
                continue
            if done:
                self.waiters.remove(w)
                finished.append((w.fut, True, value))
        conn = self.conn
        if self.shut_rd and conn is not None and conn.readable:
            conn.recv()  # shut for reading: discard, keep the window open
            self.driver.kick()
        self._refresh()
        for fut, ok, value in finished:
            _complete(fut, ok, value)

    def _readable(self) -> bool:
        if self.closed:
            return False
        if self.error is not None:
            return True
        if self.listener is not None:
            return bool(self.listener.accept_queue)
        c = self.conn
        if c is None or c.state is State.SYN_SENT or c.state is State.SYN_RECEIVED:
            return False
        return self.shut_rd or c.readable > 0 or c.eof_received or c.state is State.CLOSED

    def _refresh(self) -> None:
        if not self.closed:
            self.bell.set(self._readable())

    def _take_error(self) -> OSError:
        err = self.error
        assert err is not None
        self.error = None
        return err

    def _connected(self) -> Connection:
        if self.conn is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self.conn

    # ---------------------------------------------------------------- ops
    # ------------------------------------------------------- addresses, both families
    @property
    def v6only(self) -> bool:
        return bool(self.options.get(_V6ONLY, 0))

    def wildcard(self) -> bytes:
        return bytes(16 if self.family == _socket.AF_INET6 else 4)

    def stack_ip(self, ip: bytes) -> bytes:
        """A socket address as the stack knows it: a mapped one is the IPv4 address
        inside (RFC 3493 §3.7), refused on an ``IPV6_V6ONLY`` socket."""
        if self.family == _socket.AF_INET6 and is_mapped(ip):
            if self.v6only:
                raise OSError(errno.ENETUNREACH, "Network is unreachable (IPV6_V6ONLY socket, "
                              "IPv4-mapped address)")
            return unmap(ip)
        return ip

    def name(self, ip: bytes, port: int) -> Address:
        """A socket name: ``(host, port)`` for AF_INET; for AF_INET6
        ``(host, port, flowinfo, scope_id)`` with IPv4 peers mapped (``::ffff:a.b.c.d``)."""
        if self.family != _socket.AF_INET6:
            return (ip_to_str(ip), port)
        return (ip_to_str(map_v4(ip) if len(ip) == 4 else ip), port, 0, 0)

    def listen_families(self) -> tuple[int, ...]:
        """Which families a listener of this socket takes (RFC 3493 §5.3)."""
        if self.family != _socket.AF_INET6:
            return (4,)
        ip = self.bound[0] if self.bound is not None else self.wildcard()
        if is_mapped(ip):
            return (4,)
        if ip == bytes(16) and not self.v6only:
            return (4, 6)
        return (6,)

    # ---------------------------------------------------------------- ops
    def op_bind(self, ip: bytes, port: int, *, blocking: bool) -> tuple[bool, Address]:
        if self.bound is not None or self.conn is not None or self.listener is not None:
            raise OSError(errno.EINVAL, "Invalid argument (already bound)")
        stack = self.sh.host.stack
        if self.family == _socket.AF_INET6 and is_mapped(ip) and self.v6only:
            raise OSError(errno.EINVAL, "Invalid argument (IPv4-mapped address on an "
                          "IPV6_V6ONLY socket)")
        local = unmap(ip) if self.family == _socket.AF_INET6 else ip
        if local not in (bytes(4), bytes(16)) and local not in stack.addresses:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        taken = set(stack.info()["listeners"]) | {c.bound[1] for c in self.sh._cores
                                                  if c.bound is not None}
        if port == 0:
            port = self.sh._free_port(taken)
        elif port in taken:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self.bound = (ip, port)
        return True, self.name(unmap(ip) if len(ip) == 16 else ip, port)

    def op_listen(self, backlog: int, *, blocking: bool) -> tuple[bool, int]:
        if self.conn is not None:
            raise OSError(errno.EINVAL, "Invalid argument (socket is connected)")
        if self.listener is not None:
            return True, self.listener.port
        if self.bound is None:
            self.op_bind(self.wildcard(), 0, blocking=blocking)
        assert self.bound is not None
        self.listener = self.driver.listen(self.bound[1], max(backlog, 1),
                                           on_ready=self.on_listener_ready, config=self.config)
        self.listener.families = self.listen_families()
        return True, self.listener.port

    def op_accept(self, *, blocking: bool) -> tuple[bool, _Core | None]:
        lst = self.listener
        if lst is None:
            raise OSError(errno.EINVAL, "Invalid argument (socket is not listening)")
        conn = lst.accept()
        if conn is None:
            return False, None
        return True, _Core(self.sh, conn.config, conn, self.options, self.family)

    def op_connect(self, ip: bytes, port: int, *, blocking: bool) -> tuple[bool, None]:
        if self.listener is not None:
            raise OSError(errno.EINVAL, "Invalid argument (socket is listening)")
        if (self.conn is not None and self.conn.state is State.CLOSED and not self.connecting
                and self.error is None):
            self.driver.unregister(self.conn)  # an earlier attempt failed: start afresh
            self.conn = None
        if self.conn is None:
            ip = self.stack_ip(ip)
            local = self.bound[1] if self.bound is not None else None
            self.conn = self.driver.connect(ip, port, local_port=local, config=self.config,
                                            handler=self)
            self.connecting = True
            if not blocking:
                raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            return False, None
        if not self.connecting:
            if self.error is not None:
                raise self._take_error()
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        done = self.connect_wait(blocking=blocking)
        if not done[0] and not blocking:
            raise BlockingIOError(errno.EALREADY, "Operation already in progress")
        return done

    def connect_wait(self, *, blocking: bool) -> tuple[bool, None]:
        conn = self._connected()
        if self.error is not None:
            self.connecting = False
            raise self._take_error()
        if conn.state is State.SYN_SENT or conn.state is State.SYN_RECEIVED:
            return False, None
        self.connecting = False
        if conn.state is State.CLOSED:
            raise ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")
        return True, None

    def abandon_connect(self) -> None:
        """A blocking connect timed out: give the attempt up (no SYN-ACK means no RST)."""
        conn = self.conn
        if conn is not None and self.connecting:
            conn.abort(self.driver.now(), why="connect timed out")
            self.driver.unregister(conn)
            self.driver.kick()
            self.conn = None
            self.connecting = False

    def op_recv(self, n: int, *, blocking: bool) -> tuple[bool, bytes]:
        if self.shut_rd or n == 0:
            return True, b""
        conn = self._connected()
        if conn.readable:
            urgent = conn.urgent_remaining
            if urgent > 1:
                n = min(n, urgent - 1)  # stop at the urgent byte (Linux tcp_recvmsg)
            data = conn.recv(n)
            self.driver.kick()  # reading may open the window (C4)
            return True, data
        if self.error is not None:
            raise self._take_error()
        if conn.eof_received or conn.state is State.CLOSED:
            return True, b""
        return False, b""

    def op_send(self, st: _Send, *, blocking: bool) -> tuple[bool, int]:
        conn = self._connected()
        if self.error is not None:
            raise self._take_error()
        if self.shut_wr or conn.state not in CAN_SEND:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        room = conn.send_space
        if room and st.off < len(st.view):
            chunk = st.view[st.off:st.off + room]
            # MSG_OOB marks the end of what this call queues: the last chunk of sendall.
            urgent = st.urgent and (not st.all or st.off + len(chunk) == len(st.view))
            n = conn.send(chunk, urgent=urgent)
            st.off += n
            if n:
                self.driver.kick()
        if st.off == len(st.view) or (not st.all and st.off):
            return True, st.off
        return False, st.off

    def op_shutdown(self, how: int, *, blocking: bool) -> tuple[bool, None]:
        conn = self._connected()
        if conn.state is State.CLOSED:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
            self.shut_rd = True
        if how in (_socket.SHUT_WR, _socket.SHUT_RDWR) and not self.shut_wr:
            self.shut_wr = True
            conn.shutdown(self.driver.now())
            self.driver.kick()
        self._service()
        return True, None

    def op_close(self, abort: bool, *, blocking: bool) -> tuple[bool, None]:
        if self.closed:
            return True, None
        self.closed = True
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w.fut.set_exception(OSError(errno.EBADF, "Bad file descriptor"))
        if self.listener is not None:
            self.driver.stop_listening(self.listener)
        conn = self.conn
        if conn is not None:
            if abort:
                conn.abort(self.driver.now(), why="SO_LINGER 0: close sends RST")
            else:
                conn.close(self.driver.now())
            self.driver.unregister(conn)
            self.driver.kick()
        self.bell.close()
        self.sh._cores.pop(self, None)
        return True, None

    def op_configure(self, changes: dict[str, Any], *, blocking: bool) -> tuple[bool, None]:
        self.config = self.config.replace(**changes)
        if self.conn is not None:
            new = self.conn.config.replace(**changes)
            if "cork" in changes or changes.get("nodelay"):
                self.conn.configure(new)  # clearing TCP_CORK sends what it held
                if changes.get("nodelay"):
                    self.conn.push()  # as Linux, TCP_NODELAY pushes pending data
            else:
                self.conn.config = new
            self.driver.kick()
        if self.listener is not None:
            self.listener.config = self.listener.config.replace(**changes)
        return True, None

    def op_set_v6only(self, on: bool, *, blocking: bool) -> tuple[bool, None]:
        """IPV6_V6ONLY; only before bind or connect, as Linux (``do_ipv6_setsockopt``)."""
        if self.bound is not None or self.conn is not None or self.listener is not None:
            raise OSError(errno.EINVAL, "Invalid argument (IPV6_V6ONLY after bind or connect)")
        self.options[_V6ONLY] = int(on)
        return True, None

    def op_atmark(self, *, blocking: bool) -> tuple[bool, bool]:
        conn = self.conn
        return True, conn is not None and conn.urgent_remaining == 1

    def op_so_error(self, *, blocking: bool) -> tuple[bool, int]:
        err = self.error
        self.error = None
        self._refresh()
        return True, (err.errno or 0) if err is not None else 0

    def op_names(self, *, blocking: bool) -> tuple[bool, tuple[Address | None, Address | None]]:
        conn = self.conn
        if conn is not None:
            up = conn.state not in (State.SYN_SENT, State.SYN_RECEIVED, State.CLOSED)
            return True, (self.name(conn.local_ip, conn.local_port),
                          self.name(conn.remote_ip, conn.remote_port) if up else None)
        if self.listener is not None:
            return True, (self.name(self.bound[0] if self.bound else self.wildcard(),
                                    self.listener.port), None)
        if self.bound is not None:
            return True, (self.name(*self.bound), None)
        return True, (self.name(self.wildcard(), 0), None)

    def op_info(self, *, blocking: bool) -> tuple[bool, dict[str, Any]]:
        return True, (self.conn.info() if self.conn is not None else {})


# ------------------------------------------------------------------ the socket
class SynackSocket:
    """A TCP socket on a :class:`SocketHost` (see the module docstring).

    Create with :meth:`SocketHost.socket`, ``create_connection`` or
    ``create_server``; ``accept`` returns more.  ``AF_INET`` and ``AF_INET6``
    ``SOCK_STREAM`` sockets exist.
    """

    def __init__(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM,
                 proto: int = 0, *, host: SocketHost, _core: _Core | None = None) -> None:
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            raise OSError(errno.EAFNOSUPPORT, "synack sockets are AF_INET or AF_INET6 only")
        flags = getattr(_socket, "SOCK_NONBLOCK", 0) | getattr(_socket, "SOCK_CLOEXEC", 0)
        if type & ~flags != _socket.SOCK_STREAM or proto not in (0, _socket.IPPROTO_TCP):
            raise OSError(errno.EPROTONOSUPPORT, "synack sockets are SOCK_STREAM (TCP) only")
        self._host = host
        self._core = _core if _core is not None else host.call(
            _Core, host, host.host.stack.config, None, None, family)
        self._fd = self._core.bell.fileno()
        self._timeout: float | None = _socket.getdefaulttimeout()
        if type & getattr(_socket, "SOCK_NONBLOCK", 0):
            self._timeout = 0.0
        self._closed = False
        self._io_refs = 0
        self._timed_out_io = False

    @property
    def family(self) -> int:
        return self._core.family

    @property
    def type(self) -> int:
        return _socket.SOCK_STREAM

    @property
    def proto(self) -> int:
        return _socket.IPPROTO_TCP

    # -------------------------------------------------------------- plumbing
    def _op(self, op: Callable[..., tuple[bool, T]], *args: Any,
            on_withdraw: Callable[[], None] | None = None) -> T:
        if self._core.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        host = self._host
        if host._runner.in_loop_thread():
            raise RuntimeError("synack sockets block: do not use them on the synack loop thread")
        blocking = self._timeout != 0.0
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        host._runner.post(self._core.start, fut, blocking, op, args, on_withdraw)
        if not blocking:
            return fut.result()  # the loop answers at once: it never parks these
        try:
            return fut.result(self._timeout)
        except TimeoutError:
            if fut.done():
                raise
            host.call(self._core.withdraw, fut)
            return fut.result()

    def _check_address(self, address: object) -> tuple[bytes, int]:
        """The socket address of ``address``: 4 bytes for AF_INET, 16 for AF_INET6
        (a ``[bracketed]`` literal is fine; flowinfo and scope_id are ignored)."""
        six = self._core.family == _socket.AF_INET6
        if not (isinstance(address, tuple) and (2 <= len(address) <= 4 if six
                                                else len(address) == 2)):
            raise TypeError(f"AF_INET{'6' if six else ''} address must be a tuple (host, port"
                            f"{'[, flowinfo[, scope_id]]' if six else ''}), got {address!r}")
        h, port = address[:2]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if h == "" or h == ("::" if six else "0.0.0.0"):
            return bytes(16 if six else 4), port
        try:
            ip = ip_to_bytes(h)
        except (ValueError, TypeError, OSError):
            raise _socket.gaierror(_socket.EAI_NONAME,
                                   f"{h!r} is not an IP address (synack resolves no names)"
                                   ) from None
        if len(ip) != (16 if six else 4):
            hint = (f"; on an AF_INET6 socket write it ::ffff:{h}" if six else
                    "; use an AF_INET6 socket for IPv6")
            raise _socket.gaierror(_EAI_ADDRFAMILY,
                                   f"Address family for hostname not supported: {h!r}{hint}")
        return ip, port

    # -------------------------------------------------------------- lifecycle
    def bind(self, address: Address) -> None:
        ip, port = self._check_address(address)
        self._op(self._core.op_bind, ip, port)

    def listen(self, backlog: int = 128) -> None:
        self._op(self._core.op_listen, backlog)

    def accept(self) -> tuple[SynackSocket, Address]:
        """The next established connection, as ``(socket, (ip, port))``."""
        core = self._op(self._core.op_accept)
        assert core is not None
        sock = SynackSocket(host=self._host, _core=core)
        conn = core.conn
        assert conn is not None
        return sock, core.name(conn.remote_ip, conn.remote_port)

    def connect(self, address: Address) -> None:
        ip, port = self._check_address(address)
        self._op(self._core.op_connect, ip, port, on_withdraw=self._core.abandon_connect)

    def connect_ex(self, address: Address) -> int:
        """Like :meth:`connect` but returns an errno (0 on success) instead of raising."""
        try:
            self.connect(address)
        except TimeoutError as exc:
            return exc.errno or errno.EAGAIN
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def shutdown(self, how: int) -> None:
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise OSError(errno.EINVAL, "Invalid argument")
        self._op(self._core.op_shutdown, how)

    def close(self) -> None:
        """Close; the descriptor goes once every :meth:`makefile` file is closed too.

        Graceful (FIN after queued data, the connection finishes on its own)
        unless SO_LINGER is on with time 0, which aborts with RST; unread
        received data also turns it into RST (C23), as on Linux.
        """
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        core = self._core
        if core.closed:
            return
        linger = core.options.get((_socket.SOL_SOCKET, _socket.SO_LINGER))
        abort = linger is not None and linger[0] != 0 and linger[1] == 0
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self._host._runner.post(core.start, fut, True, core.op_close, (abort,))
        except OSError:  # the host is gone, and the connection with it
            return
        if not self._host._runner.in_loop_thread():
            fut.exception()  # wait; closing an already closed socket is not an error

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._real_close()

    def __enter__(self) -> SynackSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            core = self._core
            try:
                self._host._runner.post(core.start, concurrent.futures.Future(), True,
                                        core.op_close, (False,))
            except OSError:
                return

    # ------------------------------------------------------------------ data
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read what is there (waiting for something if blocking).  A read stops short of
        the last urgent byte the peer marked, so :meth:`sockatmark` can find it; that
        byte is then read in line.  ``MSG_OOB`` is EINVAL: SO_OOBINLINE is always on."""
        if flags & _socket.MSG_OOB:
            raise OSError(errno.EINVAL, "Invalid argument (SO_OOBINLINE: urgent data is "
                          "read in line, RFC 6093)")
        if flags:
            raise OSError(errno.EOPNOTSUPP, "recv flags are not supported by synack sockets")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._op(self._core.op_recv, bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        n = len(view) if nbytes == 0 else nbytes
        if n < 0 or n > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = self.recv(n, flags)
        view[:len(data)] = data
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        """Queue what fits in the send buffer now (waiting for some room if blocking).
        ``MSG_OOB`` makes the last byte queued the last urgent byte (RFC 9293 §3.8.5)."""
        urgent = _send_flags(flags)
        view = memoryview(data).cast("B")
        if not view:
            return 0
        return self._op(self._core.op_send, _Send(view, False, urgent))

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Queue all of ``data``; the timeout bounds the whole call.  ``MSG_OOB`` as for
        :meth:`send`: the last byte of ``data`` is the last urgent byte."""
        urgent = _send_flags(flags)
        view = memoryview(data).cast("B")
        if view:
            self._op(self._core.op_send, _Send(view, True, urgent))

    def sockatmark(self) -> bool:
        """True when the next byte :meth:`recv` returns is the last urgent byte the peer
        marked (POSIX ``sockatmark()``, SIOCATMARK; with SO_OOBINLINE, as here, the
        byte is read in line)."""
        return self._op(self._core.op_atmark)

    def makefile(self, mode: str = "r", buffering: int | None = None, *,
                 encoding: str | None = None, errors: str | None = None,
                 newline: str | None = None) -> Any:
        """A file object on the socket, as ``socket.socket.makefile``."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        self._io_refs += 1
        size = io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        if size == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: io.BufferedIOBase
        if reading and writing:
            buffer = io.BufferedRWPair(raw, raw, size)
        elif reading:
            buffer = io.BufferedReader(raw, size)
        else:
            buffer = io.BufferedWriter(raw, size)
        if binary:
            return buffer
        text = io.TextIOWrapper(cast(io.BufferedReader, buffer), io.text_encoding(encoding),
                                errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text

    # ------------------------------------------------------------- settings
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def setsockopt(self, level: int, optname: int, value: int | bytes | None,
                   optlen: int | None = None) -> None:
        key = (level, optname)
        if value is None:
            raise TypeError("setsockopt with a None value is not supported")
        if key in _CONFIG_OPTIONS:
            field, convert = _CONFIG_OPTIONS[key]
            self._configure(**{field: convert(_as_int(value))})
        elif key == (_socket.SOL_SOCKET, _socket.SO_RCVBUF):
            top = _MAX_RCVBUF if self._core.config.window_scaling else 65535
            self._configure(rcv_buf=min(max(_as_int(value), _MIN_RCVBUF), top))
        elif key == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            if not isinstance(value, bytes | bytearray) or len(value) < _LINGER.size:
                raise OSError(errno.EINVAL, "SO_LINGER takes struct linger: "
                              "struct.pack('ii', onoff, seconds)")
            self._core.options[key] = _LINGER.unpack(bytes(value[:_LINGER.size]))
        elif key in _RECORDED:
            self._core.options[key] = _as_int(value)
        elif key == (_socket.SOL_SOCKET, _socket.SO_OOBINLINE):
            if not _as_int(value):
                raise OSError(errno.EINVAL, "SO_OOBINLINE cannot be turned off: synack "
                              "delivers urgent data in line only (RFC 6093)")
        elif key == _V6ONLY and self._core.family == _socket.AF_INET6:
            self._op(self._core.op_set_v6only, bool(_as_int(value)))
        else:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        key = (level, optname)
        core = self._core
        value: int | tuple[int, int]
        if key == (_socket.SOL_SOCKET, _socket.SO_ERROR):
            value = self._op(core.op_so_error)
        elif key in _CONFIG_OPTIONS:
            value = int(getattr(core.config, _CONFIG_OPTIONS[key][0]))
        elif key == (_socket.SOL_SOCKET, _socket.SO_RCVBUF):
            value = core.config.rcv_buf
        elif key == (_socket.SOL_SOCKET, _socket.SO_TYPE):
            value = _socket.SOCK_STREAM
        elif key == (_socket.SOL_SOCKET, _socket.SO_OOBINLINE):
            value = 1
        elif key == (_socket.SOL_SOCKET, _socket.SO_ACCEPTCONN):
            value = int(core.listener is not None)
        elif key == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            value = core.options.get(key, (0, 0))
        elif key in _RECORDED:
            value = core.options.get(key, 0)
        elif key == _V6ONLY and core.family == _socket.AF_INET6:
            value = int(core.v6only)
        else:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        if buflen is None:
            return value[0] if isinstance(value, tuple) else value
        raw = _LINGER.pack(*value) if isinstance(value, tuple) else struct.pack("i", value)
        return raw[:buflen].ljust(buflen, b"\0")

    def _configure(self, **changes: Any) -> None:
        self._op(self._core.op_configure, changes)

    # ---------------------------------------------------------- inspection
    def fileno(self) -> int:
        """A descriptor readable while recv/accept would not block (-1 once closed)."""
        return -1 if self._closed and self._io_refs <= 0 else self._fd

    def getsockname(self) -> Address:
        return cast(Address, self._op(self._core.op_names)[0])

    def getpeername(self) -> Address:
        peer = self._op(self._core.op_names)[1]
        if peer is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return peer

    def tcp_info(self) -> dict[str, Any]:
        """The connection's :meth:`~synack.tcp.connection.Connection.info` snapshot."""
        return self._op(self._core.op_info)

    @property
    def synack_host(self) -> SocketHost:
        return self._host

    def __repr__(self) -> str:
        core = self._core
        what = ("listening" if core.listener is not None else
                core.conn.state.value if core.conn is not None else "unconnected")
        return f"<SynackSocket fd={self.fileno()} {what}{' closed' if self._closed else ''}>"


socket = SynackSocket


def _send_flags(flags: int) -> bool:
    """Whether send flags ask for urgent data (MSG_OOB); others are not supported."""
    if flags & ~_socket.MSG_OOB:
        raise OSError(errno.EOPNOTSUPP, "send flags other than MSG_OOB are not supported "
                      "by synack sockets")
    return bool(flags)


def _as_int(value: int | bytes) -> int:
    if isinstance(value, int):
        return value
    return int(struct.unpack("i", bytes(value[:4]).ljust(4, b"\0"))[0])


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


# -------------------------------------------------------------------- the host
class SocketHost:
    """A :class:`~synack.host.Host` run by a background event-loop thread, with
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
    def memory_pair(cls, ip_a: str = "10.0.0.1", ip_b: str = "10.0.0.2",
                    **options: Any) -> tuple[SocketHost, SocketHost]:
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
    def socket(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM,
               proto: int = 0) -> SynackSocket:
        if self._closed:
            raise OSError(errno.EBADF, "the synack host is closed")
        return SynackSocket(family, type, proto, host=self)

    def create_connection(self, address: Address, timeout: object = _DEFAULT_TIMEOUT,
                          source_address: Address | None = None, *,
                          all_errors: bool = False) -> SynackSocket:
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

    def create_server(self, address: Address, *, family: int = _socket.AF_INET,
                      backlog: int | None = None, reuse_port: bool = False,
                      dualstack_ipv6: bool = False) -> SynackSocket:
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


# -------------------------------------------------- the standard library on synack
class SynackTCPServer(socketserver.TCPServer):
    """``socketserver.TCPServer`` whose listening socket is a synack socket.

    Everything else (``serve_forever``, request handlers, ``shutdown``) is
    the standard library's own code.
    """

    def __init__(self, server_address: Address,
                 RequestHandlerClass: Callable[..., socketserver.BaseRequestHandler],
                 bind_and_activate: bool = True, *, synack_host: SocketHost) -> None:
        self.synack_host = synack_host
        super().__init__(server_address, RequestHandlerClass, bind_and_activate=False)
        self.socket.close()  # the kernel socket TCPServer made; synack's replaces it
        self.socket = synack_host.socket(self.address_family,  # type: ignore[assignment]
                                         self.socket_type)
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

    def __init__(self, host: str, port: int | None = None, *, synack_host: SocketHost,
                 **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.synack_host = synack_host

    def connect(self) -> None:
        """What ``HTTPConnection.connect`` does, on synack (no proxy tunnelling)."""
        sock = self.synack_host.create_connection(
            (self.host, self.port), self.timeout, getattr(self, "source_address", None))
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.sock = sock
