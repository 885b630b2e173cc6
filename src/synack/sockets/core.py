"""The loop-side half of a synack socket (``_Core``): its connection's events, parked
operations, and the socket options that map to :class:`~synack.tcp.config.TcpConfig`."""

from __future__ import annotations

import concurrent.futures
import errno
import socket as _socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..aio.transport import error_from_errno
from ..links.base import Doorbell
from ..stack import Listener
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.events import ConnectionFailed, Event
from ..tcp.states import CAN_SEND, State
from ..wire.ipv4 import ip_to_str
from ..wire.ipv6 import is_mapped, map_v4, unmap

if TYPE_CHECKING:
    from .host import SocketHost


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
        "snd_buf",
        lambda v: min(max(v, _MIN_SNDBUF), _MAX_SNDBUF),
    ),
}
for _name, _field in (("TCP_KEEPIDLE", "keepalive_idle"), ("TCP_KEEPINTVL", "keepalive_interval")):
    if hasattr(_socket, _name):
        _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, getattr(_socket, _name))] = (_field, float)
if hasattr(_socket, "TCP_KEEPCNT"):
    _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, _socket.TCP_KEEPCNT)] = ("keepalive_count", int)
if hasattr(_socket, "TCP_CORK"):
    _CONFIG_OPTIONS[(_socket.IPPROTO_TCP, _socket.TCP_CORK)] = ("cork", bool)


# ------------------------------------------------------------------- loop-side half
def _complete(fut: concurrent.futures.Future[Any], ok: bool, value: Any) -> None:
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class _Waiter:
    __slots__ = ("attempt", "fut", "on_withdraw")

    def __init__(
        self,
        attempt: Callable[[], tuple[bool, Any]],
        fut: concurrent.futures.Future[Any],
        on_withdraw: Callable[[], None] | None,
    ) -> None:
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

    def __init__(
        self,
        sh: SocketHost,
        config: TcpConfig,
        conn: Connection | None = None,
        options: dict[tuple[int, int], Any] | None = None,
        family: int = _socket.AF_INET,
    ) -> None:
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
                self.error = ConnectionResetError(
                    errno.ECONNRESET, "connection reset before it was accepted"
                )
        self._refresh()

    # ------------------------------------------------------------ plumbing
    def connection_event(self, event: Event) -> None:
        if isinstance(event, ConnectionFailed):
            self.error = error_from_errno(event.errno, event.message)
        self._service()

    def on_listener_ready(self, listener: Listener) -> None:
        self._service()

    def start(
        self,
        fut: concurrent.futures.Future[Any],
        blocking: bool,
        op: Callable[..., tuple[bool, Any]],
        args: tuple[Any, ...],
        on_withdraw: Callable[[], None] | None = None,
    ) -> None:
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
                outcome = (False, BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"))
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
                raise OSError(
                    errno.ENETUNREACH,
                    "Network is unreachable (IPV6_V6ONLY socket, IPv4-mapped address)",
                )
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
            raise OSError(
                errno.EINVAL, "Invalid argument (IPv4-mapped address on an IPV6_V6ONLY socket)"
            )
        local = unmap(ip) if self.family == _socket.AF_INET6 else ip
        if local not in (bytes(4), bytes(16)) and local not in stack.addresses:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        taken = set(stack.info()["listeners"]) | {
            c.bound[1] for c in self.sh._cores if c.bound is not None
        }
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
        self.listener = self.driver.listen(
            self.bound[1], max(backlog, 1), on_ready=self.on_listener_ready, config=self.config
        )
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
        if (
            self.conn is not None
            and self.conn.state is State.CLOSED
            and not self.connecting
            and self.error is None
        ):
            self.driver.unregister(self.conn)  # an earlier attempt failed: start afresh
            self.conn = None
        if self.conn is None:
            ip = self.stack_ip(ip)
            local = self.bound[1] if self.bound is not None else None
            self.conn = self.driver.connect(
                ip, port, local_port=local, config=self.config, handler=self
            )
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
            chunk = st.view[st.off : st.off + room]
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
            return True, (
                self.name(conn.local_ip, conn.local_port),
                self.name(conn.remote_ip, conn.remote_port) if up else None,
            )
        if self.listener is not None:
            return True, (
                self.name(self.bound[0] if self.bound else self.wildcard(), self.listener.port),
                None,
            )
        if self.bound is not None:
            return True, (self.name(*self.bound), None)
        return True, (self.name(self.wildcard(), 0), None)

    def op_info(self, *, blocking: bool) -> tuple[bool, dict[str, Any]]:
        return True, (self.conn.info() if self.conn is not None else {})
