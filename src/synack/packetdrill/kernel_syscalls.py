"""The packetdrill system-call layer on the Linux kernel's sockets, in real time.

The same calls as :mod:`.stack_syscalls`, made for real in the network
namespace the kernel target runs in (:mod:`.kernel`).  Script file
descriptors (3, 4, ...) map onto the process's real sockets.  A call that may
block (``accept``, ``connect``, ``read``, ``write``, ``close``) runs in a
thread of its own, as upstream packetdrill's system-call thread does, so the
runner can keep injecting packets while it waits: :meth:`Op.attempt`
returns None until the thread has finished.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl as fcntl_mod
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .syscalls import (
    SYMBOLS,
    Mismatch,
    Op,
    SyscallError,
    epoll_text,
    new_fd,
    pattern,
)

#: How long an attempt waits for a call running in its thread before reporting "blocks".
_QUICK_JOIN_S = 0.003
_TCP_CONGESTION = 13
_TCP_INFO = 11

#: struct tcp_info (include/uapi/linux/tcp.h), in order, with the struct format of each.
_TCP_INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("state", "B"),
    ("ca_state", "B"),
    ("retransmits", "B"),
    ("probes", "B"),
    ("backoff", "B"),
    ("options", "B"),
    ("wscales", "B"),
    ("flags", "B"),
    ("rto", "I"),
    ("ato", "I"),
    ("snd_mss", "I"),
    ("rcv_mss", "I"),
    ("unacked", "I"),
    ("sacked", "I"),
    ("lost", "I"),
    ("retrans", "I"),
    ("fackets", "I"),
    ("last_data_sent", "I"),
    ("last_ack_sent", "I"),
    ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"),
    ("rcv_ssthresh", "I"),
    ("rtt", "I"),
    ("rttvar", "I"),
    ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"),
    ("advmss", "I"),
    ("reordering", "I"),
    ("rcv_rtt", "I"),
    ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"),
    ("max_pacing_rate", "Q"),
    ("bytes_acked", "Q"),
    ("bytes_received", "Q"),
    ("segs_out", "I"),
    ("segs_in", "I"),
    ("notsent_bytes", "I"),
    ("min_rtt", "I"),
    ("data_segs_in", "I"),
    ("data_segs_out", "I"),
    ("delivery_rate", "Q"),
    ("busy_time", "Q"),
    ("rwnd_limited", "Q"),
    ("sndbuf_limited", "Q"),
    ("delivered", "I"),
    ("delivered_ce", "I"),
    ("bytes_sent", "Q"),
    ("bytes_retrans", "Q"),
    ("dsack_dups", "I"),
    ("reord_seen", "I"),
    ("rcv_ooopack", "I"),
    ("snd_wnd", "I"),
    ("rcv_wnd", "I"),
    ("rehash", "I"),
    ("total_rto", "H"),
    ("total_rto_recoveries", "H"),
    ("total_rto_time", "I"),
)


def decode_tcp_info(raw: bytes) -> dict[str, object]:
    """``tcpi_*`` variables from a ``TCP_INFO`` buffer (as many fields as it holds)."""
    out: dict[str, object] = {}
    fmt = "@"
    for name, code in _TCP_INFO_FIELDS:
        if struct.calcsize(fmt + code) > len(raw):
            break
        fmt += code
        values = struct.unpack_from(fmt, raw)
        out[f"tcpi_{name}"] = values[-1]
    wscales = out.pop("tcpi_wscales", None)
    if isinstance(wscales, int):
        out["tcpi_snd_wscale"] = wscales & 0xF
        out["tcpi_rcv_wscale"] = wscales >> 4
    flags = out.pop("tcpi_flags", None)
    if isinstance(flags, int):
        out["tcpi_delivery_rate_app_limited"] = flags & 1
    return out


@dataclass(eq=False, slots=True)
class KernelSocket:
    """One script file descriptor and the real socket behind it."""

    fd: int
    sock: socket.socket
    port: int | None = None
    read_offset: int = 0
    written: bytearray = field(default_factory=bytearray)


class _Call:
    """A call that finishes on the spot (``threaded=False``) or runs in a thread."""

    def __init__(
        self,
        fn: Callable[[], int],
        *,
        threaded: bool,
        wake: Callable[[], None] | None = None,
        quick: Callable[[], int | None] | None = None,
    ) -> None:
        self.fn = fn
        #: Tried first, in the runner's thread: the result, or None if the call would block.
        self.quick = quick
        self.wake = wake
        self.threaded = threaded
        self.thread: threading.Thread | None = None
        self.result: int | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        #: time.monotonic() when the call returned (threaded calls).
        self.finished_at: float | None = None

    def _run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the runner's thread by attempt()
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.done.set()
            if self.wake is not None:
                self.wake()

    def attempt(self) -> int | None:
        if not self.threaded:
            return _os_call(self.fn)
        if self.thread is None and self.quick is not None:
            r = _os_call_opt(self.quick)
            self.quick = None
            if r is not None:
                return r
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, daemon=True, name="packetdrill-syscall"
            )
            self.thread.start()
            if not self.done.wait(_QUICK_JOIN_S):  # most calls finish at once
                return None
        elif not self.done.is_set():
            return None
        if self.error is not None:
            err = self.error
            if isinstance(err, OSError) and err.errno is not None:
                raise SyscallError(err.errno, str(err)) from None
            raise err
        return self.result


def _os_call_opt(fn: Callable[[], int | None]) -> int | None:
    """Run a socket call; an OSError with an errno becomes the script's SyscallError."""
    try:
        return fn()
    except OSError as exc:
        if exc.errno is None:
            raise
        raise SyscallError(exc.errno, str(exc)) from None


def _os_call(fn: Callable[[], int]) -> int:
    r = _os_call_opt(fn)
    assert r is not None
    return r


def _nonblocking(sock: socket.socket) -> bool:
    return bool(fcntl_mod.fcntl(sock.fileno(), fcntl_mod.F_GETFL) & os.O_NONBLOCK)


class KernelSyscalls:
    """File descriptors over real sockets in the current network namespace."""

    def __init__(
        self,
        *,
        remote_ip: str,
        connect_port: int,
        bind_port: int,
        congestion: str | None = None,
        wake: Callable[[], None] | None = None,
        family: int = socket.AF_INET,
    ) -> None:
        #: Called from a call's thread when it finishes (wakes the runner at once).
        self.wake = wake
        self.remote_ip = remote_ip
        #: The family of ``socket(..., ...)``: AF_INET6 over IPv6 and IPv4-mapped runs.
        self.family = family
        self.connect_port = connect_port
        self.bind_port = bind_port
        #: Set per socket with TCP_CONGESTION (the namespace refused the sysctl).
        self.congestion = congestion
        self.fds: dict[int, KernelSocket] = {}
        self.notes: list[str] = []
        #: The socket a %{ }% block inspects: the latest accepted or connected one.
        self.current: KernelSocket | None = None
        #: Sockets by (local port, remote port), for checking outbound payloads.
        self.by_ports: dict[tuple[int, int], KernelSocket] = {}
        self.epolls: dict[int, select.epoll] = {}

    def sock(self, fd: int) -> KernelSocket:
        s = self.fds.get(fd)
        if s is None:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open")
        return s

    def bound_port(self, fd: int) -> int | None:
        s = self.fds.get(fd)
        if s is None:
            return None
        try:
            return int(s.sock.getsockname()[1]) or s.port
        except OSError:
            return s.port

    def _new_fd(self, wanted: int | None) -> int:
        return new_fd(wanted, self.fds, self.epolls)

    def _remember_ports(self, s: KernelSocket) -> None:
        try:
            local = int(s.sock.getsockname()[1])
            remote = int(s.sock.getpeername()[1])
        except OSError:
            return
        self.by_ports[(local, remote)] = s

    def _remote_for(self, sock: socket.socket) -> str:
        """The script's address as ``sock`` names it: IPv4-mapped on an AF_INET6 socket
        over IPv4 (RFC 4291 §2.5.5.2)."""
        if sock.family == socket.AF_INET6 and ":" not in self.remote_ip:
            return "::ffff:" + self.remote_ip
        return self.remote_ip

    def tcp_info(self) -> dict[str, object]:
        s = self.current
        if s is None:
            return {}
        try:
            raw = s.sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 512)
        except OSError:
            return {}
        return decode_tcp_info(raw)

    def close_all(self) -> None:
        for s in self.fds.values():
            s.sock.close()
        self.fds.clear()
        for ep in self.epolls.values():
            ep.close()
        self.epolls.clear()

    # --------------------------------------------------------------- syscalls
    def socket(self, domain: int | None, type_: int, protocol: int, wanted_fd: int | None) -> Op:
        def run() -> int:
            family: int = self.family if domain is None else domain  # the kernel judges it
            sock = socket.socket(family, type_, protocol)
            if self.congestion is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, self.congestion.encode())
            fd = self._new_fd(wanted_fd)
            self.fds[fd] = KernelSocket(fd, sock)
            return fd

        return _Call(run, threaded=False)

    def bind(self, fd: int, port: int | None) -> Op:
        def run() -> int:
            s = self.sock(fd)
            wildcard = "::" if s.sock.family == socket.AF_INET6 else "0.0.0.0"
            s.sock.bind((wildcard, port or self.bind_port))
            s.port = port or self.bind_port
            return 0

        return _Call(run, threaded=False)

    def listen(self, fd: int, backlog: int) -> Op:
        def run() -> int:
            self.sock(fd).sock.listen(backlog)
            return 0

        return _Call(run, threaded=False)

    def accept(self, fd: int, wanted_fd: int | None) -> Op:
        s = self.sock(fd)

        def run() -> int:
            conn, _addr = s.sock.accept()
            new_fd = self._new_fd(wanted_fd)
            ks = KernelSocket(new_fd, conn, port=s.port)
            self.fds[new_fd] = ks
            self.current = ks
            self._remember_ports(ks)
            return new_fd

        def quick() -> int | None:
            ready, _, _ = select.select([s.sock], [], [], 0)
            return run() if ready else None

        return _Call(run, threaded=True, wake=self.wake, quick=quick)

    def connect(self, fd: int, port: int | None) -> Op:
        s = self.sock(fd)
        self.current = s

        def run() -> int:
            try:
                s.sock.connect((self._remote_for(s.sock), port or self.connect_port))
            finally:
                self._remember_ports(s)
            return 0

        return _Call(run, threaded=True, wake=self.wake)

    def read(self, fd: int, count: int, flags: int = 0, *, bad_buffer: bool = False) -> Op:
        s = self.sock(fd)
        peek = bool(flags & SYMBOLS["MSG_PEEK"])
        if bad_buffer:
            return _Call(
                lambda: _libc_io("recv", s.sock, count, flags),
                threaded=True,
                wake=self.wake,
                quick=lambda: _quick_libc("recv", s.sock, count, flags),
            )

        def run(extra: int = 0) -> int:
            data = s.sock.recv(count, flags | extra)
            want = pattern(s.read_offset, len(data))
            if data != want:
                bad = next(i for i in range(len(data)) if data[i] != want[i])
                raise Mismatch(
                    f"read returned {len(data)} bytes that differ from the bytes "
                    f"the script sent, first at stream offset "
                    f"{s.read_offset + bad}"
                )
            if not peek:
                s.read_offset += len(data)
            return len(data)

        def quick() -> int | None:
            try:
                return run(SYMBOLS["MSG_DONTWAIT"])
            except BlockingIOError:
                if _nonblocking(s.sock) or flags & SYMBOLS["MSG_DONTWAIT"]:
                    raise
                return None

        return _Call(run, threaded=True, wake=self.wake, quick=quick)

    def write(
        self, fd: int, data: bytes | None, count: int, flags: int = 0, *, bad_buffer: bool = False
    ) -> Op:
        s = self.sock(fd)
        if bad_buffer:
            return _Call(
                lambda: _libc_io("send", s.sock, count, flags),
                threaded=True,
                wake=self.wake,
                quick=lambda: _quick_libc("send", s.sock, count, flags),
            )
        payload = data if data is not None else pattern(len(s.written), count)

        done = 0

        def run() -> int:
            n = s.sock.send(payload[done:], flags)
            s.written.extend(payload[done : done + n])
            self._remember_ports(s)
            return done + n

        def quick() -> int | None:
            nonlocal done
            try:
                n = s.sock.send(payload, flags | SYMBOLS["MSG_DONTWAIT"])
            except BlockingIOError:
                if _nonblocking(s.sock) or flags & SYMBOLS["MSG_DONTWAIT"]:
                    raise
                return None
            s.written.extend(payload[:n])
            self._remember_ports(s)
            if n == len(payload) or _nonblocking(s.sock) or flags & SYMBOLS["MSG_DONTWAIT"]:
                return n
            done = n  # a blocking write sends the rest from its thread
            return None

        return _Call(run, threaded=True, wake=self.wake, quick=quick)

    def close(self, fd: int) -> Op:
        ep = self.epolls.pop(fd, None)
        if ep is not None:

            def close_epoll() -> int:
                ep.close()
                return 0

            return _Call(close_epoll, threaded=False)
        s = self.sock(fd)

        def run() -> int:
            self.fds.pop(fd, None)
            s.sock.close()
            return 0

        lingers = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER) != 0
        return _Call(run, threaded=lingers, wake=self.wake)

    def shutdown(self, fd: int, how: int) -> Op:
        def run() -> int:
            self.sock(fd).sock.shutdown(how)
            return 0

        return _Call(run, threaded=False)

    def fcntl(self, fd: int, cmd: int, arg: int) -> Op:
        def run() -> int:
            return int(fcntl_mod.fcntl(self.sock(fd).sock.fileno(), cmd, arg))

        return _Call(run, threaded=False)

    def ioctl(self, fd: int, request: int, expected: int | None) -> Op:
        def run() -> int:
            buf = fcntl_mod.ioctl(self.sock(fd).sock.fileno(), request, struct.pack("i", 0))
            value = struct.unpack("i", buf)[0]
            if expected is not None and value != expected:
                raise Mismatch(f"ioctl {request:#x}: expected {expected} but got {value}")
            return 0

        return _Call(run, threaded=False)

    def setsockopt(self, fd: int, level: int, name: int, value: int) -> Op:
        def run() -> int:
            self.sock(fd).sock.setsockopt(level, name, value)
            return 0

        return _Call(run, threaded=False)

    def getsockopt(
        self, fd: int, level: int, name: int, expected: int | None, expected_len: int | None
    ) -> Op:
        def run() -> int:
            value = self.sock(fd).sock.getsockopt(level, name)
            if expected is not None and value != expected:
                raise Mismatch(
                    f"getsockopt {level}/{name}: expected optval {expected} but got {value}"
                )
            if expected_len is not None and expected_len != 4:
                raise Mismatch(
                    f"getsockopt {level}/{name}: expected optlen {expected_len} but got 4"
                )
            return 0

        return _Call(run, threaded=False)

    # ------------------------------------------------------------------ epoll
    def _epoll(self, epfd: int) -> select.epoll:
        ep = self.epolls.get(epfd)
        if ep is None:
            raise SyscallError(errno.EBADF if epfd not in self.fds else errno.EINVAL)
        return ep

    def epoll_create(self, size: int, wanted_fd: int | None) -> Op:
        def run() -> int:
            if size < 0:
                raise SyscallError(errno.EINVAL)
            fd = self._new_fd(wanted_fd)
            self.epolls[fd] = select.epoll()
            return fd

        return _Call(run, threaded=False)

    def epoll_ctl(self, epfd: int, op: int, fd: int, events: int) -> Op:
        def run() -> int:
            ep = self._epoll(epfd)
            real = self.sock(fd).sock.fileno()
            if op == SYMBOLS["EPOLL_CTL_ADD"]:
                ep.register(real, events)
            elif op == SYMBOLS["EPOLL_CTL_MOD"]:
                ep.modify(real, events)
            elif op == SYMBOLS["EPOLL_CTL_DEL"]:
                ep.unregister(real)
            else:
                raise SyscallError(errno.EINVAL)
            return 0

        return _Call(run, threaded=False)

    def epoll_wait(
        self, epfd: int, maxevents: int, timeout_ms: int, expected: list[tuple[int, int]] | None
    ) -> Op:
        by_real = {s.sock.fileno(): fd for fd, s in self.fds.items()}

        def wait(timeout: float) -> int:
            got = [
                (ev, by_real.get(real, real))
                for real, ev in self._epoll(epfd).poll(timeout, maxevents)
            ]
            if expected is not None and sorted(got) != sorted(expected):
                raise Mismatch(
                    f"epoll_wait: expected {epoll_text(expected)} but got {epoll_text(got)}"
                )
            return len(got)

        timeout = timeout_ms / 1000 if timeout_ms >= 0 else -1
        if timeout_ms == 0:
            return _Call(lambda: wait(0), threaded=False)
        return _Call(lambda: wait(timeout), threaded=True, wake=self.wake)


_LIBC = ctypes.CDLL(None, use_errno=True)
#: An address nothing is mapped at: the kernel's copy from or to it fails (EFAULT).
_BAD_ADDRESS = 1


def _libc_io(name: str, sock: socket.socket, count: int, flags: int) -> int:
    """send()/recv() through libc with a bad buffer pointer."""
    fn = getattr(_LIBC, name)
    r = int(fn(sock.fileno(), ctypes.c_void_p(_BAD_ADDRESS), ctypes.c_size_t(count), flags))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def _quick_libc(name: str, sock: socket.socket, count: int, flags: int) -> int | None:
    try:
        return _libc_io(name, sock, count, flags | SYMBOLS["MSG_DONTWAIT"])
    except BlockingIOError:
        if _nonblocking(sock) or flags & SYMBOLS["MSG_DONTWAIT"]:
            raise
        return None


__all__ = ["KernelSocket", "KernelSyscalls", "decode_tcp_info"]
