"""What the packetdrill system calls on synack share: the file-descriptor table,
sockets and epoll instances, readiness (poll/epoll, fs/eventpoll.c), and the socket
options (setsockopt/getsockopt/ioctl/fcntl).  :class:`~.stack_syscalls.StackSyscalls`
adds the calls that move a connection (socket, connect, read, write, close...)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..stack import Listener, Stack
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.events import Connected, ConnectionFailed, DataReceived, EndOfStream, StateChanged
from ..tcp.states import SYNCHRONIZED, State
from .profiles import TCP_CONFIG_FIELDS, Profile, socket_buffer
from .syscalls import (
    SYMBOLS,
    Mismatch,
    Op,
    SyscallError,
    Unsupported,
    epoll_text,
    new_fd,
)
from .syscalls import Now as _Now

_NAMES_BY_LEVEL = {
    1: {v: k for k, v in SYMBOLS.items() if k.startswith("SO_")},
    6: {v: k for k, v in SYMBOLS.items() if k.startswith("TCP_")},
}

_EPOLLIN = SYMBOLS["EPOLLIN"] | SYMBOLS["EPOLLRDNORM"]
_EPOLLOUT = SYMBOLS["EPOLLOUT"] | SYMBOLS["EPOLLWRNORM"]
#: Reported whether asked for or not (ep_item_poll() adds them).
_ALWAYS = SYMBOLS["EPOLLERR"] | SYMBOLS["EPOLLHUP"]
_ALL_EVENTS = 0xFFFF

#: States in which no more data can arrive: a read returns 0 (end of file).
NO_MORE_DATA = frozenset(
    {State.CLOSED, State.CLOSE_WAIT, State.LAST_ACK, State.CLOSING, State.TIME_WAIT}
)


@dataclass(eq=False, slots=True)
class Socket:
    fd: int
    nonblocking: bool = False
    port: int | None = None
    listener: Listener | None = None
    conn: Connection | None = None
    connecting: bool = False
    #: TcpConfig values set through socket options (applied to new and live TCBs).
    overrides: dict[str, object] = field(default_factory=dict)
    user_mss: int | None = None
    sndbuf: int | None = None  # value getsockopt reports (None: the default)
    rcvbuf: int | None = None
    options: dict[tuple[int, int], int] = field(default_factory=dict)
    shut_rd: bool = False
    shut_wr: bool = False
    error: int | None = None
    read_offset: int = 0
    #: TCP_NOTSENT_LOWAT (None: unset, the sysctl's "no limit").
    notsent_lowat: int | None = None
    #: Linux SOCK_NOSPACE: a write or poll found no room; the next ACK that frees some
    #: wakes EPOLLOUT waiters (sk_stream_write_space()).
    nospace: bool = False
    #: SND.UNA and bytes received when epoll last looked (what an ACK or data changed).
    seen_una: int = 0
    seen_rcvd: int = 0

    @property
    def kind(self) -> str:
        if self.listener is not None:
            return "listening"
        if self.conn is not None:
            return "connected" if self.conn.state in SYNCHRONIZED else "connecting"
        return "unconnected"


@dataclass(eq=False, slots=True)
class EpollItem:
    fd: int
    events: int
    #: On epoll's ready list (ep_poll_callback() put it there, or it was ready when added).
    ready: bool = False


@dataclass(eq=False, slots=True)
class Epoll:
    """An epoll instance: registered sockets and their ready flags (fs/eventpoll.c)."""

    fd: int
    items: dict[int, EpollItem] = field(default_factory=dict)


class StackSyscallsBase:
    """File descriptors, readiness and socket options over one :class:`Stack`."""

    def __init__(
        self,
        stack: Stack,
        *,
        profile: Profile,
        sysctls: Mapping[str, str],
        base_config: Callable[[], TcpConfig],
        clock: Callable[[], float],
        remote_ip: str,
        connect_port: int,
        bind_port: int,
    ) -> None:
        self.stack = stack
        self.profile = profile
        self.sysctls = sysctls
        self.base_config = base_config
        self.clock = clock
        self.remote_ip = remote_ip
        self.connect_port = connect_port
        self.bind_port = bind_port
        self.fds: dict[int, Socket] = {}
        self.epolls: dict[int, Epoll] = {}
        self.by_conn: dict[Connection, Socket] = {}
        #: Everything the application wrote on each connection, by stream position.
        self.written: dict[Connection, bytearray] = {}
        self.notes: list[str] = []
        #: The connection a %{ }% block inspects (packetdrill's "socket under test").
        self.current: Connection | None = None

    # ------------------------------------------------------------------ helpers
    def sock(self, fd: int) -> Socket:
        s = self.fds.get(fd)
        if s is None:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open")
        return s

    def _new_fd(self, wanted: int | None) -> int:
        return new_fd(wanted, self.fds, self.epolls)

    def config_for(self, s: Socket) -> TcpConfig:
        cfg = self.base_config()
        if s.overrides:
            cfg = cfg.replace(**s.overrides)
        return cfg

    def _set_override(self, s: Socket, name: str, value: object) -> None:
        if name not in TCP_CONFIG_FIELDS:
            raise Unsupported(f"synack's TcpConfig has no field {name!r}")
        s.overrides[name] = value
        if s.conn is not None:
            s.conn.configure(s.conn.config.replace(**{name: value}), self.clock())
        if s.listener is not None:
            s.listener.config = s.listener.config.replace(**{name: value})

    def drain_events(self) -> None:
        """Record connection failures on their sockets (the errno a call will return);
        wake epoll waiters."""
        woken: dict[Socket, int] = {}
        for ev in self.stack.events():
            s = self.by_conn.get(ev.conn)
            if s is None:
                continue
            if isinstance(ev, ConnectionFailed):
                if s.error is None:
                    s.error = ev.errno
                woken[s] = woken.get(s, 0) | _ALL_EVENTS
            elif isinstance(ev, (DataReceived, EndOfStream)):
                woken[s] = woken.get(s, 0) | _EPOLLIN
            elif isinstance(ev, (Connected, StateChanged)):
                woken[s] = woken.get(s, 0) | _ALL_EVENTS  # sk_state_change(): wakes all
        if self.epolls:
            self._epoll_wakeups(woken)

    # ------------------------------------------------------------------ epoll
    def poll_mask(self, s: Socket) -> int:
        """What tcp_poll() reports for ``s`` (EPOLLIN/OUT/HUP/ERR/RDHUP bits)."""
        mask = 0
        if s.listener is not None:
            return _EPOLLIN if s.listener.accept_queue else 0
        conn = s.conn
        if conn is None:
            return _EPOLLOUT | SYMBOLS["EPOLLHUP"]
        if s.error is not None:
            mask |= SYMBOLS["EPOLLERR"]
        if conn.state not in SYNCHRONIZED and conn.state is not State.CLOSED:
            return mask  # connecting
        rd_shut = conn.eof_received or conn.state is State.CLOSED
        if (rd_shut or s.shut_rd) and (s.shut_wr or conn.state is State.CLOSED):
            mask |= SYMBOLS["EPOLLHUP"]
        if rd_shut:
            mask |= _EPOLLIN | SYMBOLS["EPOLLRDHUP"]
        if conn.readable:
            mask |= _EPOLLIN
        if s.shut_wr or conn.state is State.CLOSED or self._writable(s, conn, wake=1):
            mask |= _EPOLLOUT
        else:
            s.nospace = True  # tcp_poll() sets SOCK_NOSPACE when it says "not writable"
        return mask

    def _notsent(self, conn: Connection) -> int:
        """Bytes written but not yet sent (write_seq - snd_nxt)."""
        return max(conn.unsent - ((conn.snd_nxt - conn.snd_una) & 0xFFFFFFFF), 0)

    def _notsent_unsendable(self, conn: Connection) -> int:
        """Not-sent bytes beyond what the windows let go at once: what Linux counts
        as not sent after tcp_sendmsg_locked() pushed each full skb (tcp_push_one())."""
        usable = min(conn.snd_wnd, conn.cwnd) - ((conn.snd_nxt - conn.snd_una) & 0xFFFFFFFF)
        return max(self._notsent(conn) - max(usable, 0), 0)

    def _writable(self, s: Socket, conn: Connection, wake: int) -> bool:
        """Linux __sk_stream_is_writeable(sk, wake): free send memory at least half of
        what is queued (sk_stream_min_wspace()) and, under TCP_NOTSENT_LOWAT,
        ``notsent << wake < lowat`` (tcp_stream_memory_free())."""
        if conn.send_space <= 0:
            return False
        queued = conn.unsent
        if conn.config.snd_buf - queued < queued // 2:
            return False
        if s.notsent_lowat is not None:
            return (self._notsent(conn) << wake) < s.notsent_lowat
        return True

    def _epoll_wakeups(self, woken: dict[Socket, int]) -> None:
        for s in self.fds.values():
            conn = s.conn
            if s.listener is not None:
                queued = len(s.listener.accept_queue)
                if queued > s.seen_rcvd:
                    woken[s] = woken.get(s, 0) | _EPOLLIN  # a connection to accept
                s.seen_rcvd = queued
            if conn is None:
                continue
            una = conn.snd_una
            if s.nospace and una != s.seen_una and self._writable(s, conn, wake=1):
                # An ACK shrank the queue (tcp_check_space() -> sk_stream_write_space()).
                s.nospace = False
                woken[s] = woken.get(s, 0) | _EPOLLOUT
            s.seen_una = una
        for ep in self.epolls.values():
            for item in ep.items.values():
                sock = self.fds.get(item.fd)
                if sock is not None and woken.get(sock, 0) & (item.events | _ALWAYS):
                    item.ready = True  # ep_poll_callback()

    def epoll_create(self, size: int, wanted_fd: int | None) -> Op:
        def run() -> int:
            if size <= 0 and size != 0:
                raise SyscallError(errno.EINVAL)
            fd = self._new_fd(wanted_fd)
            self.epolls[fd] = Epoll(fd)
            return fd

        return _Now(run)

    def epoll_ctl(self, epfd: int, op: int, fd: int, events: int) -> Op:
        def run() -> int:
            ep = self.epolls.get(epfd)
            if ep is None:
                raise SyscallError(errno.EBADF if epfd not in self.fds else errno.EINVAL)
            s = self.sock(fd)
            if op == SYMBOLS["EPOLL_CTL_ADD"]:
                if fd in ep.items:
                    raise SyscallError(errno.EEXIST)
                ep.items[fd] = EpollItem(fd, events)
            elif op == SYMBOLS["EPOLL_CTL_MOD"]:
                if fd not in ep.items:
                    raise SyscallError(errno.ENOENT)
                ep.items[fd].events = events
            elif op == SYMBOLS["EPOLL_CTL_DEL"]:
                if ep.items.pop(fd, None) is None:
                    raise SyscallError(errno.ENOENT)
                return 0
            else:
                raise SyscallError(errno.EINVAL)
            item = ep.items[fd]
            # ep_insert()/ep_modify(): ready now -> on the ready list.
            item.ready = bool(self.poll_mask(s) & (events | _ALWAYS))
            return 0

        return _Now(run)

    def epoll_wait(
        self, epfd: int, maxevents: int, timeout_ms: int, expected: list[tuple[int, int]] | None
    ) -> Op:
        layer = self
        deadline = self.clock() + timeout_ms / 1000 if timeout_ms >= 0 else None

        class _Wait:
            def attempt(self) -> int | None:
                ep = layer.epolls.get(epfd)
                if ep is None:
                    raise SyscallError(errno.EBADF if epfd not in layer.fds else errno.EINVAL)
                if maxevents <= 0:
                    raise SyscallError(errno.EINVAL)
                got: list[tuple[int, int]] = []
                for item in list(ep.items.values()):
                    if not item.ready or len(got) >= maxevents:
                        continue
                    sock = layer.fds.get(item.fd)
                    revents = (layer.poll_mask(sock) & (item.events | _ALWAYS)) if sock else 0
                    # ep_send_events(): re-polled; edge-triggered items leave the list.
                    item.ready = bool(revents) and not item.events & SYMBOLS["EPOLLET"]
                    if revents:
                        got.append((revents, item.fd))
                if not got and deadline is not None and layer.clock() < deadline - 1e-9:
                    return None
                if expected is not None and sorted(got) != sorted(expected):
                    raise Mismatch(
                        f"epoll_wait: expected {epoll_text(expected)} but got {epoll_text(got)}"
                    )
                return len(got)

        return _Wait()

    def _take_error(self, s: Socket) -> None:
        if s.error is not None:
            err, s.error = s.error, None
            raise SyscallError(err)

    def bound_port(self, fd: int) -> int | None:
        s = self.fds.get(fd)
        return s.port if s is not None else None

    def fcntl(self, fd: int, cmd: int, arg: int) -> Op:
        def run() -> int:
            s = self.sock(fd)
            if cmd == SYMBOLS["F_GETFL"]:
                return SYMBOLS["O_RDWR"] | (SYMBOLS["O_NONBLOCK"] if s.nonblocking else 0)
            if cmd == SYMBOLS["F_SETFL"]:
                s.nonblocking = bool(arg & SYMBOLS["O_NONBLOCK"])
                return 0
            if cmd in (SYMBOLS["F_GETFD"], SYMBOLS["F_SETFD"]):
                return 0
            raise Unsupported(f"fcntl command {cmd} is not supported")

        return _Now(run)

    def ioctl(self, fd: int, request: int, expected: int | None) -> Op:
        def run() -> int:
            s = self.sock(fd)
            conn = s.conn
            if request == SYMBOLS["SIOCINQ"]:
                value = conn.readable if conn is not None else 0
                name = "SIOCINQ"
            elif request in (SYMBOLS["SIOCOUTQ"], SYMBOLS["SIOCOUTQNSD"]):
                value = conn.unsent if conn is not None else 0
                name = "SIOCOUTQ"
            else:
                raise Unsupported(f"ioctl request {request:#x} is not supported")
            if conn is None and s.listener is not None:
                raise SyscallError(errno.EINVAL)
            if expected is not None and value != expected:
                raise Mismatch(f"ioctl {name}: expected {expected} but got {value}")
            return 0

        return _Now(run)

    def setsockopt(self, fd: int, level: int, name: int, value: int) -> Op:
        def run() -> int:
            s = self.sock(fd)
            label = _NAMES_BY_LEVEL.get(level, {}).get(name, f"{level}/{name}")
            s.options[(level, name)] = value
            if level == SYMBOLS["SOL_SOCKET"]:
                if name in (
                    SYMBOLS["SO_REUSEADDR"],
                    SYMBOLS["SO_REUSEPORT"],
                    SYMBOLS["SO_DEBUG"],
                    SYMBOLS["SO_OOBINLINE"],
                ):
                    return 0
                if name == SYMBOLS["SO_SNDBUF"]:
                    size = socket_buffer(self.profile, self.sysctls, "snd", value, True)
                    s.sndbuf = size
                    self._set_override(s, "snd_buf", size)
                    return 0
                if name == SYMBOLS["SO_RCVBUF"]:
                    scaling = bool(getattr(self.config_for(s), "window_scaling", False))
                    size = socket_buffer(self.profile, self.sysctls, "rcv", value, scaling)
                    s.rcvbuf = size
                    self._set_override(s, "rcv_buf", size)
                    # A locked buffer sets the window clamp, so the scale (Linux
                    # tcp_openreq_init_rwin(), SOCK_RCVBUF_LOCK).
                    self._set_override(s, "rcv_wscale_space", None)
                    return 0
                if name == SYMBOLS["SO_KEEPALIVE"]:
                    self._set_override(s, "keepalive", bool(value))
                    return 0
            elif level == SYMBOLS["SOL_TCP"]:
                if name == SYMBOLS["TCP_NODELAY"]:
                    self._set_override(s, "nodelay", bool(value))
                    if value and s.conn is not None:
                        s.conn.push()  # Linux pushes pending data, even past TCP_CORK
                    return 0
                if name == SYMBOLS["TCP_MAXSEG"]:
                    if not 88 <= value <= 32767:
                        raise SyscallError(errno.EINVAL)
                    s.user_mss = value
                    self._set_override(s, "mss", min(value, self.base_config().mss))
                    return 0
                if name == SYMBOLS["TCP_KEEPIDLE"]:
                    self._set_override(s, "keepalive_idle", float(value))
                    return 0
                if name == SYMBOLS["TCP_KEEPINTVL"]:
                    self._set_override(s, "keepalive_interval", float(value))
                    return 0
                if name == SYMBOLS["TCP_KEEPCNT"]:
                    self._set_override(s, "keepalive_count", value)
                    return 0
                if name == SYMBOLS["TCP_USER_TIMEOUT"] and "user_timeout" in TCP_CONFIG_FIELDS:
                    self._set_override(s, "user_timeout", value / 1000 if value else None)
                    return 0
                if name == SYMBOLS["TCP_NOTSENT_LOWAT"]:
                    s.notsent_lowat = value & 0xFFFFFFFF or None
                    return 0
                if name == SYMBOLS["TCP_INQ"]:
                    return 0  # kept in s.options; recvmsg's cmsg is not modelled
                if name == SYMBOLS["TCP_CORK"] and "cork" in TCP_CONFIG_FIELDS:
                    self._set_override(s, "cork", bool(value))
                    return 0
                need = {
                    SYMBOLS["TCP_CORK"]: "TcpConfig.cork",
                    SYMBOLS["TCP_USER_TIMEOUT"]: "TcpConfig.user_timeout",
                    SYMBOLS["TCP_QUICKACK"]: "a quick-ACK control on Connection",
                }.get(name)
                if need:
                    raise Unsupported(
                        f"setsockopt {label} is not supported by synack (the core needs {need})"
                    )
            elif level == SYMBOLS["SOL_IP"] and name == SYMBOLS["IP_MTU_DISCOVER"]:
                if not 0 <= value <= 5:
                    raise SyscallError(errno.EINVAL)
                return 0  # kept in s.options: synack sends DF always and probes nothing
            elif level == SYMBOLS["IPPROTO_IPV6"] and name == SYMBOLS["IPV6_V6ONLY"]:
                return 0  # kept in s.options: listen() reads it
            raise Unsupported(f"setsockopt {label} is not supported")

        return _Now(run)

    def getsockopt(
        self, fd: int, level: int, name: int, expected: int | None, expected_len: int | None
    ) -> Op:
        def run() -> int:
            s = self.sock(fd)
            label = _NAMES_BY_LEVEL.get(level, {}).get(name, f"{level}/{name}")
            value = self._getsockopt_value(s, level, name, label)
            if expected is not None and value != expected:
                raise Mismatch(f"getsockopt {label}: expected optval {expected} but got {value}")
            if expected_len is not None and expected_len != 4:
                raise Mismatch(f"getsockopt {label}: expected optlen {expected_len} but got 4")
            return 0

        return _Now(run)

    def _getsockopt_value(self, s: Socket, level: int, name: int, label: str) -> int:
        cfg = s.conn.config if s.conn is not None else self.config_for(s)
        if level == SYMBOLS["SOL_SOCKET"]:
            if name == SYMBOLS["SO_SNDBUF"]:
                return s.sndbuf if s.sndbuf is not None else cfg.snd_buf
            if name == SYMBOLS["SO_RCVBUF"]:
                return s.rcvbuf if s.rcvbuf is not None else cfg.rcv_buf
            if name == SYMBOLS["SO_ERROR"]:
                err, s.error = s.error or 0, None
                return err
            if name == SYMBOLS["SO_TYPE"]:
                return SYMBOLS["SOCK_STREAM"]
            if name == SYMBOLS["SO_KEEPALIVE"]:
                return 1 if getattr(cfg, "keepalive", False) else 0
            if (level, name) in s.options:
                return s.options[(level, name)]
            if name == SYMBOLS["SO_REUSEADDR"]:
                return 0
        elif level == SYMBOLS["SOL_TCP"]:
            if name == SYMBOLS["TCP_MAXSEG"]:
                if s.conn is not None and s.conn.state in SYNCHRONIZED:
                    return s.conn.eff_mss
                return s.user_mss if s.user_mss is not None else 536
            if name == SYMBOLS["TCP_NODELAY"]:
                return 1 if cfg.nodelay else 0
            if name == SYMBOLS["TCP_CORK"]:
                return 1 if cfg.cork else 0
            if name == SYMBOLS["TCP_USER_TIMEOUT"]:
                return round((cfg.user_timeout or 0) * 1000)
            if name == SYMBOLS["TCP_NOTSENT_LOWAT"]:
                return s.notsent_lowat or 0
            if name == SYMBOLS["TCP_INQ"]:
                return s.options.get((level, name), 0) and 1
            keep = {
                SYMBOLS["TCP_KEEPIDLE"]: "keepalive_idle",
                SYMBOLS["TCP_KEEPINTVL"]: "keepalive_interval",
                SYMBOLS["TCP_KEEPCNT"]: "keepalive_count",
            }.get(name)
            if keep is not None and hasattr(cfg, keep):
                return int(getattr(cfg, keep))
            if (level, name) in s.options:
                return s.options[(level, name)]
        elif level == SYMBOLS["SOL_IP"] and name == SYMBOLS["IP_MTU_DISCOVER"]:
            return s.options.get((level, name), SYMBOLS["IP_PMTUDISC_WANT"])
        elif level == SYMBOLS["IPPROTO_IPV6"] and name == SYMBOLS["IPV6_V6ONLY"]:
            return s.options.get((level, name), 0)  # off by default (RFC 3493 §5.3)
        raise Unsupported(f"getsockopt {label} is not supported")
