"""The application-side socket object, :class:`SynackSocket` (``socket.socket``'s API)."""

from __future__ import annotations

import concurrent.futures
import errno
import io
import socket as _socket
import struct
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ..wire.ipv4 import ip_to_bytes
from .core import (
    _CONFIG_OPTIONS,
    _EAI_ADDRFAMILY,
    _LINGER,
    _MAX_RCVBUF,
    _MIN_RCVBUF,
    _RECORDED,
    _V6ONLY,
    Address,
    _Core,
    _Send,
)
from .io import SocketIO
from .loop import T

if TYPE_CHECKING:
    from .host import SocketHost


# ------------------------------------------------------------------ the socket
class SynackSocket:
    """A TCP socket on a :class:`SocketHost` (see the package docstring).

    Create with :meth:`SocketHost.socket`, ``create_connection`` or
    ``create_server``; ``accept`` returns more.  ``AF_INET`` and ``AF_INET6``
    ``SOCK_STREAM`` sockets exist.
    """

    def __init__(
        self,
        family: int = _socket.AF_INET,
        type: int = _socket.SOCK_STREAM,
        proto: int = 0,
        *,
        host: SocketHost,
        _core: _Core | None = None,
    ) -> None:
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            raise OSError(errno.EAFNOSUPPORT, "synack sockets are AF_INET or AF_INET6 only")
        flags = getattr(_socket, "SOCK_NONBLOCK", 0) | getattr(_socket, "SOCK_CLOEXEC", 0)
        if type & ~flags != _socket.SOCK_STREAM or proto not in (0, _socket.IPPROTO_TCP):
            raise OSError(errno.EPROTONOSUPPORT, "synack sockets are SOCK_STREAM (TCP) only")
        self._host = host
        self._core = (
            _core
            if _core is not None
            else host.call(_Core, host, host.host.stack.config, None, None, family)
        )
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
    def _op(
        self,
        op: Callable[..., tuple[bool, T]],
        *args: Any,
        on_withdraw: Callable[[], None] | None = None,
    ) -> T:
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
        if not (
            isinstance(address, tuple) and (2 <= len(address) <= 4 if six else len(address) == 2)
        ):
            raise TypeError(
                f"AF_INET{'6' if six else ''} address must be a tuple (host, port"
                f"{'[, flowinfo[, scope_id]]' if six else ''}), got {address!r}"
            )
        h, port = address[:2]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if h == "" or h == ("::" if six else "0.0.0.0"):
            return bytes(16 if six else 4), port
        try:
            ip = ip_to_bytes(h)
        except (ValueError, TypeError, OSError):
            raise _socket.gaierror(
                _socket.EAI_NONAME, f"{h!r} is not an IP address (synack resolves no names)"
            ) from None
        if len(ip) != (16 if six else 4):
            hint = (
                f"; on an AF_INET6 socket write it ::ffff:{h}"
                if six
                else "; use an AF_INET6 socket for IPv6"
            )
            raise _socket.gaierror(
                _EAI_ADDRFAMILY, f"Address family for hostname not supported: {h!r}{hint}"
            )
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
                self._host._runner.post(
                    core.start, concurrent.futures.Future(), True, core.op_close, (False,)
                )
            except OSError:
                return

    # ------------------------------------------------------------------ data
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read what is there (waiting for something if blocking).  A read stops short of
        the last urgent byte the peer marked, so :meth:`sockatmark` can find it; that
        byte is then read in line.  ``MSG_OOB`` is EINVAL: SO_OOBINLINE is always on."""
        if flags & _socket.MSG_OOB:
            raise OSError(
                errno.EINVAL,
                "Invalid argument (SO_OOBINLINE: urgent data is read in line, RFC 6093)",
            )
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
        view[: len(data)] = data
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

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
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
        text = io.TextIOWrapper(
            cast(io.BufferedReader, buffer), io.text_encoding(encoding), errors, newline
        )
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

    def setsockopt(
        self, level: int, optname: int, value: int | bytes | None, optlen: int | None = None
    ) -> None:
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
                raise OSError(
                    errno.EINVAL, "SO_LINGER takes struct linger: struct.pack('ii', onoff, seconds)"
                )
            self._core.options[key] = _LINGER.unpack(bytes(value[: _LINGER.size]))
        elif key in _RECORDED:
            self._core.options[key] = _as_int(value)
        elif key == (_socket.SOL_SOCKET, _socket.SO_OOBINLINE):
            if not _as_int(value):
                raise OSError(
                    errno.EINVAL,
                    "SO_OOBINLINE cannot be turned off: synack "
                    "delivers urgent data in line only (RFC 6093)",
                )
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
        what = (
            "listening"
            if core.listener is not None
            else core.conn.state.value
            if core.conn is not None
            else "unconnected"
        )
        return f"<SynackSocket fd={self.fileno()} {what}{' closed' if self._closed else ''}>"


socket = SynackSocket


def _send_flags(flags: int) -> bool:
    """Whether send flags ask for urgent data (MSG_OOB); others are not supported."""
    if flags & ~_socket.MSG_OOB:
        raise OSError(
            errno.EOPNOTSUPP, "send flags other than MSG_OOB are not supported by synack sockets"
        )
    return bool(flags)


def _as_int(value: int | bytes) -> int:
    if isinstance(value, int):
        return value
    return int(struct.unpack("i", bytes(value[:4]).ljust(4, b"\0"))[0])
