"""The packetdrill system-call layer on synack's sockets, in virtual time.

Scripts speak POSIX: ``socket`` returns file descriptor 3, ``read`` blocks
until data arrives, ``write`` after ``shutdown(SHUT_WR)`` fails with EPIPE.
This module gives those calls their Linux meaning on top of
:class:`synack.stack.Stack` and :class:`synack.tcp.connection.Connection`,
without threads: every call is an :class:`Op` whose :meth:`Op.attempt`
either finishes (returns the result, or raises :class:`SyscallError` with an
errno) or says it would block (returns None).  The runner re-attempts a
blocked call whenever the stack has done something, in virtual time.

Socket options map onto TcpConfig fields; an option (or flag) the core
cannot express raises :class:`Unsupported` naming what is missing.
"""

from __future__ import annotations

import errno

from ..tcp.states import SYNCHRONIZED, State
from .stack_sockets import NO_MORE_DATA, Socket, StackSyscallsBase
from .syscalls import (
    SYMBOLS,
    Mismatch,
    Op,
    SyscallError,
    Unsupported,
    pattern,
)
from .syscalls import Now as _Now


class StackSyscalls(StackSyscallsBase):
    """File descriptors, socket options and blocking semantics over one :class:`Stack`."""

    def socket(self, domain: int | None, type_: int, protocol: int, wanted_fd: int | None) -> Op:
        def run() -> int:
            if domain not in (None, SYMBOLS["AF_INET"], SYMBOLS["AF_INET6"]):
                raise SyscallError(errno.EAFNOSUPPORT)
            base_type = type_ & 0xF
            if base_type != SYMBOLS["SOCK_STREAM"]:
                raise SyscallError(
                    errno.ESOCKTNOSUPPORT if base_type != 2 else errno.EPROTONOSUPPORT,
                    "synack only has TCP (SOCK_STREAM) sockets",
                )
            if protocol not in (0, SYMBOLS["IPPROTO_TCP"]):
                raise SyscallError(errno.EPROTONOSUPPORT)
            fd = self._new_fd(wanted_fd)
            self.fds[fd] = Socket(fd, nonblocking=bool(type_ & SYMBOLS["SOCK_NONBLOCK"]))
            return fd

        return _Now(run)

    def bind(self, fd: int, port: int | None) -> Op:
        def run() -> int:
            s = self.sock(fd)
            if s.port is not None or s.conn is not None:
                raise SyscallError(errno.EINVAL, "socket already bound")
            s.port = port or self.bind_port
            return 0

        return _Now(run)

    def listen(self, fd: int, backlog: int) -> Op:
        def run() -> int:
            s = self.sock(fd)
            if s.conn is not None:
                raise SyscallError(errno.EINVAL)
            if s.listener is not None:
                s.listener.backlog = max(backlog, 1)
                return 0
            port = s.port or self.bind_port
            s.port = port
            # An AF_INET6 socket with IPV6_V6ONLY set takes IPv6 only (RFC 3493 §5.3).
            v6only = s.options.get((SYMBOLS["IPPROTO_IPV6"], SYMBOLS["IPV6_V6ONLY"]), 0)
            try:
                s.listener = self.stack.listen(
                    port,
                    max(backlog, 1),
                    config=self.config_for(s),
                    families=(6,) if v6only else (4, 6),
                )
            except OSError as exc:
                raise SyscallError(exc.errno or errno.EADDRINUSE, str(exc)) from None
            return 0

        return _Now(run)

    def accept(self, fd: int, wanted_fd: int | None) -> Op:
        self.sock(fd)
        layer = self

        class _Accept:
            def attempt(self) -> int | None:
                s = layer.sock(fd)
                lst = s.listener
                if lst is None or lst.closed:
                    raise SyscallError(errno.EINVAL, "accept on a socket that is not listening")
                conn = lst.accept()
                if conn is None:
                    if s.nonblocking:
                        raise SyscallError(errno.EAGAIN)
                    return None
                new_fd = layer._new_fd(wanted_fd)
                ns = Socket(
                    new_fd,
                    port=s.port,
                    conn=conn,
                    overrides=dict(s.overrides),
                    user_mss=s.user_mss,
                    sndbuf=s.sndbuf,
                    rcvbuf=s.rcvbuf,
                    options=dict(s.options),
                )
                layer.fds[new_fd] = ns
                layer.by_conn[conn] = ns
                layer.current = conn
                return new_fd

        return _Accept()

    def connect(self, fd: int, port: int | None) -> Op:
        layer = self

        class _Connect:
            started = False

            def attempt(self) -> int | None:
                s = layer.sock(fd)
                if not self.started:
                    self.started = True
                    if s.listener is not None:
                        raise SyscallError(errno.EINVAL)
                    if s.conn is not None:
                        if s.conn.state in SYNCHRONIZED:
                            raise SyscallError(errno.EISCONN)
                        if s.conn.state is State.SYN_SENT:
                            if s.nonblocking:
                                raise SyscallError(errno.EALREADY)
                            return self.poll(s)
                        layer._take_error(s)
                        raise SyscallError(errno.ECONNABORTED)
                    try:
                        conn = layer.stack.connect(
                            layer.remote_ip,
                            port or layer.connect_port,
                            now=layer.clock(),
                            local_port=s.port,
                            config=layer.config_for(s),
                        )
                    except OSError as exc:
                        raise SyscallError(exc.errno or errno.EADDRNOTAVAIL, str(exc)) from None
                    s.conn = conn
                    s.connecting = True
                    layer.by_conn[conn] = s
                    layer.current = conn
                    if s.nonblocking:
                        raise SyscallError(errno.EINPROGRESS)
                    return None
                return self.poll(s)

            def poll(self, s: Socket) -> int | None:
                conn = s.conn
                assert conn is not None
                if conn.state in SYNCHRONIZED:
                    s.connecting = False
                    return 0
                if conn.state is State.CLOSED:
                    s.connecting = False
                    err = s.error if s.error is not None else errno.ECONNREFUSED
                    s.error = None
                    raise SyscallError(err)
                return None

        return _Connect()

    def read(self, fd: int, count: int, flags: int = 0, *, bad_buffer: bool = False) -> Op:
        if flags & SYMBOLS["MSG_PEEK"]:
            raise Unsupported("recv(MSG_PEEK) is not supported by the socket layer")
        if flags & SYMBOLS["MSG_OOB"]:
            raise Unsupported("urgent data (MSG_OOB) is not supported by synack")
        layer = self
        dontwait = bool(flags & SYMBOLS["MSG_DONTWAIT"])

        class _Read:
            def attempt(self) -> int | None:
                s = layer.sock(fd)
                conn = s.conn
                if conn is None:
                    raise SyscallError(errno.ENOTCONN if s.listener is None else errno.EINVAL)
                if conn.readable and bad_buffer and count:
                    raise SyscallError(errno.EFAULT)  # tcp_recvmsg(): the copy fails
                if conn.readable:
                    data = conn.recv(count)
                    layer._check_read(s, data)
                    return len(data)
                if count == 0:
                    return 0
                if not conn.eof_received:  # tcp_recvmsg_locked(): SOCK_DONE before sk_err
                    layer._take_error(s)
                if s.shut_rd or conn.eof_received or conn.state in NO_MORE_DATA:
                    return 0
                if s.nonblocking or dontwait:
                    raise SyscallError(errno.EAGAIN)
                return None

        return _Read()

    def _check_read(self, s: Socket, data: bytes) -> None:
        want = pattern(s.read_offset, len(data))
        if data != want:
            bad = next(i for i in range(len(data)) if data[i] != want[i])
            raise Mismatch(
                f"read returned {len(data)} bytes that differ from the bytes the "
                f"script sent, first at stream offset {s.read_offset + bad}"
            )
        s.read_offset += len(data)

    def write(
        self, fd: int, data: bytes | None, count: int, flags: int = 0, *, bad_buffer: bool = False
    ) -> Op:
        more = bool(flags & SYMBOLS["MSG_MORE"])
        eor = bool(flags & SYMBOLS["MSG_EOR"])
        if flags & SYMBOLS["MSG_OOB"]:
            raise Unsupported("urgent data (MSG_OOB) is not supported by synack")
        layer = self
        dontwait = bool(flags & SYMBOLS["MSG_DONTWAIT"])

        class _Write:
            done = 0
            payload: bytes | None = data

            def attempt(self) -> int | None:
                s = layer.sock(fd)
                conn = s.conn
                if conn is None:
                    raise SyscallError(errno.EPIPE if s.listener is None else errno.ENOTCONN)
                if self.payload is None:
                    stream = layer.written.setdefault(conn, bytearray())
                    self.payload = pattern(len(stream), count)
                if s.error is not None and self.done == 0:
                    layer._take_error(s)
                if s.shut_wr:
                    if self.done:
                        return self.done
                    raise SyscallError(errno.EPIPE)
                if bad_buffer and count and conn.state in SYNCHRONIZED:
                    raise SyscallError(errno.EFAULT)  # tcp_sendmsg_locked(): do_fault
                lowat = s.notsent_lowat
                while self.done < count:
                    if lowat is not None and layer._notsent_unsendable(conn) >= lowat:
                        break  # sk_stream_memory_free() fails (TCP_NOTSENT_LOWAT): wait
                    # One send-queue buffer at a time, as tcp_sendmsg_locked() checks
                    # memory before it starts each skb.
                    step = count - self.done if lowat is None else conn.size_goal
                    try:
                        n = conn.send(
                            self.payload[self.done : self.done + step],
                            more=more,
                            eor=eor and self.done + step >= count,
                        )
                    except BrokenPipeError:
                        if self.done:
                            return self.done
                        raise SyscallError(errno.EPIPE) from None
                    layer.written.setdefault(conn, bytearray()).extend(
                        self.payload[self.done : self.done + n]
                    )
                    self.done += n
                    if n < step:
                        break
                if self.done >= count:
                    return count
                if s.nonblocking or dontwait:
                    if self.done:
                        return self.done
                    s.nospace = True
                    raise SyscallError(errno.EAGAIN)
                return None

        return _Write()

    def close(self, fd: int) -> Op:
        def run() -> int:
            if self.epolls.pop(fd, None) is not None:
                return 0
            s = self.sock(fd)
            del self.fds[fd]
            for ep in self.epolls.values():
                ep.items.pop(fd, None)  # a closed file leaves every epoll set
            now = self.clock()
            if s.listener is not None:
                s.listener.close()
            if s.conn is not None:
                s.conn.close(now)
            return 0

        return _Now(run)

    def shutdown(self, fd: int, how: int) -> Op:
        def run() -> int:
            s = self.sock(fd)
            if how not in (0, 1, 2):
                raise SyscallError(errno.EINVAL)
            conn = s.conn
            if conn is None or (
                conn.state not in SYNCHRONIZED
                and conn.state not in (State.SYN_SENT, State.SYN_RECEIVED)
            ):
                raise SyscallError(errno.ENOTCONN)
            if how in (0, 2):
                s.shut_rd = True
                conn.shutdown_read()
            if how in (1, 2):
                s.shut_wr = True
                conn.shutdown(self.clock())
            return 0

        return _Now(run)


__all__ = [
    "SYMBOLS",
    "Mismatch",
    "Op",
    "Socket",
    "StackSyscalls",
    "SyscallError",
    "Unsupported",
    "pattern",
]
