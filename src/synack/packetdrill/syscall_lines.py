"""A script's system-call lines: arguments evaluated, the target's layer called, results
and errnos checked.

The call itself is the target's (:class:`~.syscalls.SyscallLayer`); a blocking call
(``...``) stays pending while later events run and is checked when it returns.
"""

from __future__ import annotations

import errno as errno_mod
import os
from dataclasses import dataclass

from .features import FLAG_FEATURES, OPTION_FEATURES, needs_feature
from .parser import (
    BinaryExpr,
    CallExpr,
    EllipsisExpr,
    Event,
    Expr,
    IntExpr,
    ListExpr,
    StringExpr,
    StructExpr,
    SyscallSpec,
    TimeKind,
    WordExpr,
)
from .results import ScriptFailure
from .scheduling import Scheduling
from .state import REMOTE_EPHEMERAL_PORT, Pending, Sched
from .syscalls import SYMBOLS, Mismatch, Op, SyscallError, Unsupported

_SYSCALL_ARGS = {
    "socket": 3,
    "bind": 3,
    "listen": 2,
    "accept": 3,
    "connect": 3,
    "read": 3,
    "write": 3,
    "send": 4,
    "recv": 4,
    "close": 1,
    "shutdown": 2,
    "setsockopt": 5,
    "getsockopt": 5,
    "ioctl": 3,
    "sendmsg": 3,
    "recvmsg": 3,
    "epoll_create": 1,
    "epoll_create1": 1,
    "epoll_ctl": 4,
    "epoll_wait": 4,
}
_UNSUPPORTED_CALLS = frozenset(
    {
        "readv",
        "writev",
        "sendto",
        "recvfrom",
        "poll",
        "sendfile",
        "splice",
        "open",
        "pipe",
        "cap_set",
    }
)
_FD_CALLS = frozenset({"socket", "accept", "epoll_create", "epoll_create1"})


class SyscallLines(Scheduling):
    """System-call lines: evaluation, the call, the check."""

    # ------------------------------------------------------------ syscalls
    def _syscall(self, ev: Event, spec: SyscallSpec, sched: Sched) -> None:
        prefix = f"runtime error in {spec.name} call"
        if spec.blocking and self.pending is not None and self.pending.done_at is None:
            raise ScriptFailure(
                ev.line,
                f"{prefix}: blocking system call while another "
                "blocking system call is already in progress",
            )
        try:
            op = self._make_op(ev, spec)
        except SyscallError as exc:
            self._check_result(ev, spec, None, exc.errno)
            return
        except (Unsupported, Mismatch) as exc:
            raise ScriptFailure(ev.line, f"{prefix}: {exc}") from None
        outcome = self._attempt(ev, spec, op)
        self._collect()
        if spec.blocking:
            assert sched.blocking_end_us is not None
            self._check_pending_if_done()
            p = Pending(ev, spec, op, self.now_us, sched.blocking_end_us)
            if outcome is not None:
                p.done_at = self.now_us
                p.result, p.errno = outcome
            self.pending = p
            return
        if outcome is None:
            horizon = self.now_us + self.block_horizon_us
            while outcome is None:
                if not self._wait_step(horizon):
                    raise ScriptFailure(
                        ev.line,
                        f"{prefix}: the call blocks (no '...' end time "
                        "was given, so it must not) and nothing "
                        "will ever unblock it",
                    )
                outcome = self._attempt(ev, spec, op)
            self._collect()
        self._check_result(ev, spec, *outcome)

    def _poll_pending(self) -> bool:
        p = self.pending
        if p is None or p.done_at is not None:
            return False
        outcome = self._attempt(p.event, p.spec, p.op)
        if outcome is None:
            return False
        p.done_at = self.now_us
        p.result, p.errno = outcome
        return True

    def _attempt(
        self, ev: Event, spec: SyscallSpec, op: Op
    ) -> tuple[int | None, int | None] | None:
        try:
            r = op.attempt()
        except SyscallError as exc:
            return None, exc.errno
        except (Unsupported, Mismatch) as exc:
            raise ScriptFailure(ev.line, f"runtime error in {spec.name} call: {exc}") from None
        if r is None:
            return None
        return r, None

    def _check_pending_if_done(self) -> None:
        p = self.pending
        if p is None or p.done_at is None:
            return
        self.pending = None
        self._check_result(p.event, p.spec, p.result, p.errno)
        sched = Sched(p.end_us)
        kind = TimeKind.RELATIVE if p.event.time.kind.relative else TimeKind.ABSOLUTE
        err = self._verify_time(kind, sched, p.done_at, p.start_us, "system call return")
        if err:
            raise ScriptFailure(p.event.line, err)

    def _check_result(
        self, ev: Event, spec: SyscallSpec, value: int | None, err: int | None
    ) -> None:
        prefix = f"runtime error in {spec.name} call"
        actual = value if err is None and value is not None else -1
        if self.record:
            self.result.calls.append((ev.line, value, err))
        err_text = ""
        if err is not None:
            err_text = f" with errno {err} ({os.strerror(err)})"
        if isinstance(spec.result, EllipsisExpr):
            expected: int | None = None
        else:
            try:
                expected = self._int(spec.result)
            except Unsupported as exc:
                raise ScriptFailure(ev.line, f"{prefix}: bad return value: {exc}") from None
        if expected is not None:
            if spec.name in _FD_CALLS and expected >= 0:
                if actual < 0:
                    raise ScriptFailure(
                        ev.line,
                        f"{prefix}: Expected non-negative result but got {actual}{err_text}",
                    )
            elif actual != expected:
                raise ScriptFailure(
                    ev.line, f"{prefix}: Expected result {expected} but got {actual}{err_text}"
                )
        if spec.errno is not None:
            want = getattr(errno_mod, spec.errno, None)
            if not isinstance(want, int):
                raise ScriptFailure(ev.line, f"{prefix}: unknown errno {spec.errno}")
            got = err or 0
            if got != want:
                raise ScriptFailure(
                    ev.line,
                    f"{prefix}: Expected errno {want} "
                    f"({os.strerror(want)}) but got {got} "
                    f"({os.strerror(got) if got else 'no error'})",
                )

    # argument evaluation ------------------------------------------------------
    def _int(self, e: Expr) -> int:
        if isinstance(e, IntExpr):
            return e.value
        if isinstance(e, WordExpr):
            if e.name in SYMBOLS:
                return SYMBOLS[e.name]
            raise Unsupported(f"unknown symbol {e.name}")
        if isinstance(e, BinaryExpr) and e.op == "|":
            return self._int(e.lhs) | self._int(e.rhs)
        if isinstance(e, ListExpr) and len(e.items) == 1:
            return self._int(e.items[0])
        if isinstance(e, CallExpr) and e.name == "htons" and len(e.args) == 1:
            return self._int(e.args[0])
        raise Unsupported(f"expected an integer, got {e}")

    def _opt_int(self, e: Expr) -> int | None:
        if isinstance(e, EllipsisExpr):
            return None
        if isinstance(e, ListExpr) and len(e.items) == 1 and isinstance(e.items[0], EllipsisExpr):
            return None
        return self._int(e)

    def _make_op(self, ev: Event, spec: SyscallSpec) -> Op:
        name = spec.name
        args = spec.args
        if name in _UNSUPPORTED_CALLS:
            raise Unsupported(f"system call {name} is not supported by the synack runner")
        want = _SYSCALL_ARGS.get(name)
        if name == "fcntl":
            if len(args) not in (2, 3):
                raise Unsupported(f"Expected 2 or 3 args but got {len(args)}")
        elif want is None:
            raise Unsupported(f"Unknown system call: '{name}'")
        elif len(args) != want:
            raise Unsupported(f"Expected {want} args but got {len(args)}")
        layer = self._syscalls
        result_fd = spec.result.value if isinstance(spec.result, IntExpr) else None
        if name == "socket":
            domain = self._opt_int(args[0])
            return layer.socket(domain, self._int(args[1]), self._int(args[2]), result_fd)
        fd = self._int(args[0])
        if name == "bind":
            return layer.bind(fd, self._sockaddr_port(args[1]))
        if name == "listen":
            op = layer.listen(fd, self._int(args[1]))
            return _Then(op, lambda: self._set_tuple_listen(fd))
        if name == "accept":
            return layer.accept(fd, result_fd)
        if name == "connect":
            return _Then(
                layer.connect(fd, self._sockaddr_port(args[1])),
                lambda: self._set_tuple_connect(fd),
                before_block=True,
            )
        if name in ("read", "recv"):
            flags = self._int(args[3]) if name == "recv" else 0
            return layer.read(
                fd, self._int(args[2]), self._flags(flags, ev), bad_buffer=_bad_pointer(args[1])
            )
        if name in ("write", "send"):
            flags = self._int(args[3]) if name == "send" else 0
            count = self._int(args[2])
            return layer.write(
                fd,
                self._buffer(args[1], count),
                count,
                self._flags(flags, ev),
                bad_buffer=_bad_pointer(args[1]),
            )
        if name in ("sendmsg", "recvmsg"):
            count, bad = self._msghdr(args[1])
            flags = self._flags(self._int(args[2]), ev)
            if name == "recvmsg":
                return layer.read(fd, count, flags, bad_buffer=bad)
            return layer.write(fd, None, count, flags, bad_buffer=bad)
        if name in ("epoll_create", "epoll_create1"):
            return layer.epoll_create(fd, result_fd)
        if name == "epoll_ctl":
            events = self._epoll_events(args[3])
            return layer.epoll_ctl(
                fd, self._int(args[1]), self._int(args[2]), events[0][0] if events else 0
            )
        if name == "epoll_wait":
            events_want = None if isinstance(args[1], EllipsisExpr) else self._epoll_events(args[1])
            return layer.epoll_wait(fd, self._int(args[2]), self._int(args[3]), events_want)
        if name == "close":
            return layer.close(fd)
        if name == "shutdown":
            return layer.shutdown(fd, self._int(args[1]))
        if name in ("setsockopt", "getsockopt"):
            feature = OPTION_FEATURES.get((self._int(args[1]), self._int(args[2])))
            if feature is not None:
                raise Unsupported(needs_feature(f"{name} {args[2]}", feature))
        if name == "setsockopt":
            return layer.setsockopt(
                fd, self._int(args[1]), self._int(args[2]), self._optval(args[3])
            )
        if name == "getsockopt":
            return layer.getsockopt(
                fd,
                self._int(args[1]),
                self._int(args[2]),
                self._opt_int(args[3]),
                self._opt_int(args[4]),
            )
        if name == "fcntl":
            arg = self._int(args[2]) if len(args) == 3 else 0
            return layer.fcntl(fd, self._int(args[1]), arg)
        assert name == "ioctl"
        return layer.ioctl(fd, self._int(args[1]), self._opt_int(args[2]))

    def _flags(self, flags: int, ev: Event) -> int:
        for bit, feature in FLAG_FEATURES.items():
            if flags & bit and not self.fast_open:
                raise Unsupported(needs_feature(f"the send flag {bit:#x}", feature))
        return flags

    def _msghdr(self, e: Expr) -> tuple[int, bool]:
        """Bytes a ``struct msghdr`` literal's iovecs hold, and whether a buffer is bad."""
        if isinstance(e, IntExpr):
            return 0, True  # the msghdr pointer itself
        if not isinstance(e, StructExpr):
            raise Unsupported(f"expected a struct msghdr literal, got {e}")
        total, bad = 0, False
        for item in e.items:
            if not (isinstance(item, BinaryExpr) and item.op == "="):
                continue
            key = item.lhs.name if isinstance(item.lhs, (WordExpr, CallExpr)) else ""
            if key == "msg_iov":
                iovs = item.rhs.items if isinstance(item.rhs, ListExpr) else (item.rhs,)
                for iov in iovs:
                    fields = _struct_fields(iov)
                    if "iov_len" not in fields:
                        raise Unsupported(f"an iovec needs iov_len: {iov}")
                    total += self._int(fields["iov_len"])
                    base = fields.get("iov_base")
                    bad = bad or (base is not None and _bad_pointer(base))
            elif key == "msg_control" and not isinstance(item.rhs, EllipsisExpr):
                self.result.notes.append(f"line {self._line()}: msg_control is not checked")
        return total, bad

    def _epoll_events(self, e: Expr) -> list[tuple[int, int]]:
        """``{events=..., fd=N}`` (or a list of them; ``u64``/``ptr`` also name the fd)."""
        items = e.items if isinstance(e, ListExpr) else (e,)
        out = []
        for it in items:
            fields = _struct_fields(it)
            if "events" not in fields:
                raise Unsupported(f"expected a struct epoll_event literal, got {it}")
            ident = fields.get("fd", fields.get("u64", fields.get("u32", fields.get("ptr"))))
            out.append((self._int(fields["events"]), self._int(ident) if ident is not None else -1))
        return out

    def _optval(self, e: Expr) -> int:
        if isinstance(e, StructExpr):
            raise Unsupported(f"structured socket option values ({e}) are not supported")
        return self._int(e)

    def _buffer(self, e: Expr, count: int) -> bytes | None:
        if isinstance(e, StringExpr):
            raw = e.text.encode("latin-1")
            if e.repeat and raw:
                raw = (raw * (count // len(raw) + 1))[:count]
            if len(raw) < count:
                raise Unsupported(f"the string has {len(raw)} bytes but {count} are written")
            return raw[:count]
        return None

    def _sockaddr_port(self, e: Expr) -> int | None:
        if isinstance(e, StructExpr):
            for item in e.items:
                if (
                    isinstance(item, BinaryExpr)
                    and isinstance(item.lhs, WordExpr)
                    and item.lhs.name == "sin_port"
                ):
                    return self._int(item.rhs)
        return None

    def _set_tuple_listen(self, fd: int) -> None:
        port = self._syscalls.bound_port(fd)
        if port is not None:
            self.tuple_local = port
            self.tuple_remote = REMOTE_EPHEMERAL_PORT

    def _set_tuple_connect(self, fd: int) -> None:
        s = self._layer.fds.get(fd)
        if s is not None and s.conn is not None:
            self.tuple_local = s.conn.local_port
            self.tuple_remote = s.conn.remote_port


def _struct_fields(e: Expr) -> dict[str, Expr]:
    """``{a=1, b=2}`` as a dict (empty for anything else)."""
    out: dict[str, Expr] = {}
    if isinstance(e, StructExpr):
        for item in e.items:
            if (
                isinstance(item, BinaryExpr)
                and item.op == "="
                and isinstance(item.lhs, (WordExpr, CallExpr))
            ):
                out[item.lhs.name] = item.rhs
    return out


def _bad_pointer(e: Expr) -> bool:
    """A buffer argument written as a number (``0``, ``0x1``): an address nothing is
    mapped at, so the kernel's copy fails with EFAULT.  ``...`` or a string is a
    real buffer."""
    return isinstance(e, IntExpr)


@dataclass(slots=True)
class _Then:
    """Run ``after`` once ``op`` has started (or finished)."""

    op: Op
    after: object
    before_block: bool = False
    ran: bool = False

    def attempt(self) -> int | None:
        try:
            r = self.op.attempt()
        except SyscallError:
            self._after()
            raise
        if r is not None or self.before_block:
            self._after()
        return r

    def _after(self) -> None:
        if not self.ran:
            self.ran = True
            fn = self.after
            assert callable(fn)
            fn()
