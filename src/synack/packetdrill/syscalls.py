"""The system-call layer both packetdrill targets implement, and what they share.

A script's system-call lines become calls on a :class:`SyscallLayer`:
``socket``, ``bind``, ``listen``, ``accept``, ``connect``, ``read``,
``write``, ``close``, ``shutdown``, ``setsockopt``, ``getsockopt``,
``fcntl`` and ``ioctl``.  Each returns an :class:`Op` whose
:meth:`Op.attempt` finishes the call (returns the result, or raises
:class:`SyscallError` with the errno), or returns None while it blocks; the
runner attempts a blocked call again as time passes.  Two layers implement
it: :mod:`.stack_syscalls` (synack's sockets, in virtual time) and
:mod:`.kernel_syscalls` (the Linux kernel's sockets, in real time).

Scripts write and send a known byte pattern (:func:`pattern`) so both
targets can check every payload byte, not just lengths.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Protocol

# Linux values of the constants scripts use.
SYMBOLS: dict[str, int] = {
    "AF_INET": 2,
    "AF_INET6": 10,
    "PF_INET": 2,
    "PF_INET6": 10,
    "AF_UNSPEC": 0,
    "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2,
    "SOCK_RAW": 3,
    "SOCK_NONBLOCK": 0o4000,
    "SOCK_CLOEXEC": 0o2000000,
    "IPPROTO_IP": 0,
    "IPPROTO_TCP": 6,
    "IPPROTO_UDP": 17,
    "IPPROTO_ICMP": 1,
    "SOL_SOCKET": 1,
    "SOL_TCP": 6,
    "SOL_IP": 0,
    "SOL_IPV6": 41,
    "IPPROTO_IPV6": 41,
    "IPV6_V6ONLY": 26,
    "SO_DEBUG": 1,
    "SO_REUSEADDR": 2,
    "SO_TYPE": 3,
    "SO_ERROR": 4,
    "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6,
    "SO_SNDBUF": 7,
    "SO_RCVBUF": 8,
    "SO_KEEPALIVE": 9,
    "SO_OOBINLINE": 10,
    "SO_LINGER": 13,
    "SO_REUSEPORT": 15,
    "SO_RCVLOWAT": 18,
    "SO_SNDLOWAT": 19,
    "TCP_NODELAY": 1,
    "TCP_MAXSEG": 2,
    "TCP_CORK": 3,
    "TCP_KEEPIDLE": 4,
    "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6,
    "TCP_SYNCNT": 7,
    "TCP_LINGER2": 8,
    "TCP_DEFER_ACCEPT": 9,
    "TCP_WINDOW_CLAMP": 10,
    "TCP_INFO": 11,
    "TCP_QUICKACK": 12,
    "TCP_CONGESTION": 13,
    "TCP_USER_TIMEOUT": 18,
    "TCP_NOTSENT_LOWAT": 25,
    "TCP_INQ": 36,
    "TCP_CM_INQ": 36,
    "TCP_MD5SIG": 14,
    "TCP_FASTOPEN": 23,
    "TCP_FASTOPEN_CONNECT": 30,
    "TCP_ZEROCOPY_RECEIVE": 35,
    "SO_ZEROCOPY": 60,
    "SO_TIMESTAMPING": 37,
    "MSG_ZEROCOPY": 0x4000000,
    "MSG_FASTOPEN": 0x20000000,
    "IP_TOS": 1,
    "IP_MTU_DISCOVER": 10,
    "IP_MTU": 14,
    "IP_PMTUDISC_DONT": 0,
    "IP_PMTUDISC_WANT": 1,
    "IP_PMTUDISC_DO": 2,
    "IP_PMTUDISC_PROBE": 3,
    "EPOLLIN": 0x1,
    "EPOLLPRI": 0x2,
    "EPOLLOUT": 0x4,
    "EPOLLERR": 0x8,
    "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40,
    "EPOLLWRNORM": 0x100,
    "EPOLLRDHUP": 0x2000,
    "EPOLLET": 1 << 31,
    "EPOLLONESHOT": 1 << 30,
    "EPOLL_CTL_ADD": 1,
    "EPOLL_CTL_DEL": 2,
    "EPOLL_CTL_MOD": 3,
    "SHUT_RD": 0,
    "SHUT_WR": 1,
    "SHUT_RDWR": 2,
    "MSG_OOB": 0x1,
    "MSG_PEEK": 0x2,
    "MSG_DONTROUTE": 0x4,
    "MSG_DONTWAIT": 0x40,
    "MSG_EOR": 0x80,
    "MSG_TRUNC": 0x20,
    "MSG_WAITALL": 0x100,
    "MSG_NOSIGNAL": 0x4000,
    "MSG_MORE": 0x8000,
    "F_GETFD": 1,
    "F_SETFD": 2,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "O_RDONLY": 0,
    "O_WRONLY": 1,
    "O_RDWR": 2,
    "O_NONBLOCK": 0o4000,
    "O_NDELAY": 0o4000,
    "FIONREAD": 0x541B,
    "SIOCINQ": 0x541B,
    "SIOCOUTQ": 0x5411,
    "SIOCOUTQNSD": 0x894B,
    "INADDR_ANY": 0,
}
_PATTERN_PERIOD = 251  # prime: never lines up with power-of-two segment sizes
_PATTERN = bytes(range(_PATTERN_PERIOD)) * 264  # > 64 KiB


def pattern(offset: int, n: int) -> bytes:
    """The bytes scripts send or write at stream ``offset`` (byte k is k mod 251).

    Data whose position is known everywhere lets the runner check that what
    synack sends, retransmits and delivers is the right part of the stream,
    not just the right length.
    """
    out = bytearray()
    while n > 0:
        start = offset % _PATTERN_PERIOD
        take = min(n, len(_PATTERN) - start)
        out += _PATTERN[start : start + take]
        offset += take
        n -= take
    return bytes(out)


class SyscallError(Exception):
    """The call returns -1 with ``errno``."""

    def __init__(self, err: int, detail: str = "") -> None:
        super().__init__(detail or errno.errorcode.get(err, str(err)))
        self.errno = err
        self.detail = detail


class Unsupported(Exception):
    """The script needs something synack (or this layer) cannot do."""


class Mismatch(Exception):
    """A value the call returns through a pointer argument differs from the script's."""


class Op(Protocol):
    def attempt(self) -> int | None:
        """Finish the call (return its result) or return None if it would block."""


@dataclass(slots=True)
class Now:
    """Finishes on the first attempt."""

    fn: Callable[[], int]

    def attempt(self) -> int:
        return self.fn()


class SyscallLayer(Protocol):
    """What a target offers the runner: Linux system calls as :class:`Op` objects."""

    notes: list[str]

    def socket(
        self, domain: int | None, type_: int, protocol: int, wanted_fd: int | None
    ) -> Op: ...

    def bind(self, fd: int, port: int | None) -> Op: ...

    def listen(self, fd: int, backlog: int) -> Op: ...

    def accept(self, fd: int, wanted_fd: int | None) -> Op: ...

    def connect(self, fd: int, port: int | None) -> Op: ...

    def read(self, fd: int, count: int, flags: int = 0, *, bad_buffer: bool = False) -> Op:
        """``read``/``recv``/``recvmsg``; ``bad_buffer``: the buffer pointer is not
        mapped (the call fails with EFAULT where Linux copies)."""

    def write(
        self, fd: int, data: bytes | None, count: int, flags: int = 0, *, bad_buffer: bool = False
    ) -> Op:
        """``write``/``send``/``sendmsg`` (MSG_MORE, MSG_EOR, MSG_DONTWAIT)."""

    def epoll_create(self, size: int, wanted_fd: int | None) -> Op: ...

    def epoll_ctl(self, epfd: int, op: int, fd: int, events: int) -> Op: ...

    def epoll_wait(
        self, epfd: int, maxevents: int, timeout_ms: int, expected: list[tuple[int, int]] | None
    ) -> Op:
        """Ready events; ``expected`` (events, fd) pairs are checked when given."""

    def close(self, fd: int) -> Op: ...

    def shutdown(self, fd: int, how: int) -> Op: ...

    def setsockopt(self, fd: int, level: int, name: int, value: int) -> Op: ...

    def getsockopt(
        self, fd: int, level: int, name: int, expected: int | None, expected_len: int | None
    ) -> Op: ...

    def fcntl(self, fd: int, cmd: int, arg: int) -> Op: ...

    def ioctl(self, fd: int, request: int, expected: int | None) -> Op: ...

    def bound_port(self, fd: int) -> int | None:
        """The local port of ``fd`` (after bind or listen), if known."""


def new_fd(wanted: int | None, *taken: Container[int]) -> int:
    """The descriptor a new socket or epoll instance gets: the one the script names
    (which must be free), else the lowest free one from 3 (as the kernel hands out)."""
    if wanted is not None and wanted >= 0:
        if any(wanted in t for t in taken):
            raise Unsupported(f"the script expects fd {wanted}, which is already open")
        return wanted
    fd = 3
    while any(fd in t for t in taken):
        fd += 1
    return fd


def epoll_text(events: list[tuple[int, int]]) -> str:
    """``[{events=EPOLLIN|EPOLLOUT, fd=4}]`` for messages."""
    names = [
        (v, k) for k, v in SYMBOLS.items() if k.startswith("EPOLL") and not k.startswith("EPOLL_")
    ]
    parts = []
    for ev, fd in events:
        bits = "|".join(n for v, n in names if ev & v) or "0"
        parts.append(f"{{events={bits}, fd={fd}}}")
    return "[" + ", ".join(parts) + "]"


__all__ = [
    "SYMBOLS",
    "Mismatch",
    "Now",
    "Op",
    "SyscallError",
    "SyscallLayer",
    "Unsupported",
    "epoll_text",
    "pattern",
]
