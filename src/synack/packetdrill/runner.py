"""Execute a packetdrill script against a synack :class:`~synack.stack.Stack`, in virtual time.

packetdrill's model: the *local* side is the stack under test (here synack,
at 192.168.0.1); the *remote* side is the script (192.0.2.1).  ``<`` lines
are packets the script injects, ``>`` lines packets the stack must emit,
system-call lines drive the stack's application through a socket layer.

How time works here.  The clock is virtual and starts at 0.  Inbound packets,
system calls, commands and code blocks happen exactly at their scheduled
times; before each one the runner advances the stack's timers up to that
time, collecting every packet the stack emits together with the time it
emitted it.  An outbound line takes the next emitted packet(s), waiting (in
virtual time, firing timers) if there is none yet, and checks them field by
field and their time against the line's time with packetdrill's tolerance:
``--tolerance_usecs`` (4 ms by default), widened to ``--tolerance_percent``
(12.5 %) of the gap since the previous event when that is larger.

Relative times follow packetdrill: ``+x`` counts from the moment the previous
event finished (for an outbound line, when its packet went out), except that
an inbound packet after an inbound packet counts from the previous one's
scheduled time.  A blocking call (``+0...0.2 read(...)``) starts at its time
and must *return* at its end time; later events run meanwhile.  Its result
is checked when the script next waits for time to pass (as packetdrill's
system-call thread reports only when the main thread is idle), or at the end.

Sequence numbers: inbound ``seq`` values are sent as written (the script
chooses its ISN, 0 by convention; ``--remote_isn=N`` shifts them), inbound
``ack`` values and SACK blocks are relative to synack's ISN, learned from its
SYN or SYN-ACK; outbound values are mapped back the same way.  Without
``--strict_segments`` several consecutive emitted segments may together
match one outbound line (contiguous, same headers but for seq, length, PSH
and FIN, all but the last of equal size), as upstream packetdrill allows for
TSO.  Payloads are checked too: scripts write a known byte pattern and the
runner verifies every byte synack sends and delivers.
"""

from __future__ import annotations

import errno as errno_mod
import os
import struct
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..stack import Stack
from ..tcp.config import TcpConfig
from ..tcp.isn import IsnSource, Rfc6528Isn, fixed_isn
from ..tcp.states import State
from ..wire.checksum import finish, ones_sum, pseudo_header_sum
from ..wire.errors import WireError
from ..wire.ipv4 import PROTO_TCP, build_ipv4_header, ip_to_bytes
from ..wire.packet import decode_ipv4_tcp
from ..wire.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Segment
from . import shell
from .lexer import PacketdrillSyntaxError
from .parser import (
    ECN_CODEPOINTS,
    BinaryExpr,
    CallExpr,
    CodeSpec,
    CommandSpec,
    EllipsisExpr,
    Event,
    ExpectedFailure,
    Expr,
    IntExpr,
    ListExpr,
    PacketSpec,
    Script,
    StringExpr,
    StructExpr,
    SyscallSpec,
    TcpOption,
    TimeKind,
    WordExpr,
    parse_file,
)
from .profiles import Profile, config_from_sysctls, get_profile
from .pycode import AssertionFailed, CodeError, MissingField, run_code, tcp_info_vars
from .stack_syscalls import StackSyscalls
from .syscalls import SYMBOLS, Mismatch, Op, SyscallError, SyscallLayer, Unsupported, pattern

LOCAL_IP = "192.168.0.1"
REMOTE_IP = "192.0.2.1"
DEFAULT_PORT = 8080
#: The script's own port when the stack is the server (upstream picks an ephemeral port).
REMOTE_EPHEMERAL_PORT = 40000
DEFAULT_TOLERANCE_USECS = 4000
DEFAULT_TOLERANCE_PERCENT = 12.5
#: How long (virtual) past its deadline the runner waits for an expected packet.
WAIT_HORIZON_USECS = 600_000_000
#: How long a call packetdrill does not expect to block may block before failing.
BLOCK_HORIZON_USECS = 600_000_000
#: How long the end of a script waits for a blocking call still running (as upstream: 1 s).
FINAL_WAIT_USECS = 1_000_000
ISN_SECRET = b"synack-packetdrill-runner"
MASK = 0xFFFFFFFF

_FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
_OPT_KIND = {"eol": 0, "nop": 1, "mss": 2, "wscale": 3, "sackOK": 4, "sack": 5, "TS": 8}
_KIND_NAME = {v: k for k, v in _OPT_KIND.items()}
_SYSCALL_ARGS = {"socket": 3, "bind": 3, "listen": 2, "accept": 3, "connect": 3, "read": 3,
                 "write": 3, "send": 4, "recv": 4, "close": 1, "shutdown": 2,
                 "setsockopt": 5, "getsockopt": 5, "ioctl": 3}
_UNSUPPORTED_CALLS = frozenset({
    "readv", "writev", "sendto", "recvfrom", "sendmsg", "recvmsg", "poll", "epoll_create",
    "epoll_ctl", "epoll_wait", "sendfile", "splice", "open", "pipe", "cap_set"})
_FD_CALLS = frozenset({"socket", "accept"})
#: States in which a SYN from the peer starts a new incarnation of the connection.
_REOPENABLE = frozenset({State.CLOSED, State.SYN_SENT, State.TIME_WAIT, State.LISTEN})


def flags_text(bits: int) -> str:
    """Flags in script notation (``S.``, ``P.``, ``F.``, ``R``, ``-`` for none)."""
    letters = "".join(ch for ch, b in _FLAG_BITS.items() if ch != "." and bits & b)
    return letters + ("." if bits & ACK else "") or "-"


def spec_flag_bits(flags: str) -> int:
    bits = 0
    for ch in flags:
        bits |= _FLAG_BITS[ch]
    return bits


def _usecs(t: int) -> str:
    return f"{t / 1e6:.6f}"


# ------------------------------------------------------------------------------ results
class ScriptFailure(Exception):
    def __init__(self, line: int, message: str, expected: str | None = None,
                 actual: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Failure:
    line: int
    message: str
    expected: str | None = None
    actual: str | None = None


@dataclass(slots=True)
class RunResult:
    path: str
    profile: str
    failure: Failure | None = None
    expected_failure: ExpectedFailure | None = None
    notes: list[str] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)
    events_run: int = 0

    @property
    def status(self) -> str:
        """PASS, FAIL, or XFAIL (a self-test failed exactly where its comment says)."""
        ef = self.expected_failure
        if ef is not None:
            if self.failure is not None and self.failure.line == ef.line:
                return "XFAIL"
            return "FAIL"
        return "PASS" if self.failure is None else "FAIL"

    @property
    def ok(self) -> bool:
        return self.status in ("PASS", "XFAIL")

    @property
    def message_matches(self) -> bool:
        """For an expected failure: does the message match the ``// Failure:`` pattern?"""
        ef = self.expected_failure
        return bool(ef and self.failure and ef.matches(self.failure.message))

    def reason(self) -> str:
        """One line: where and why the script failed (or did not fail as it should)."""
        ef = self.expected_failure
        f = self.failure
        if ef is not None and f is None:
            return f"expected to fail at line {ef.line} but passed"
        if f is None:
            return ""
        text = f"line {f.line}: {f.message}"
        if ef is not None and f.line != ef.line:
            text = f"expected to fail at line {ef.line}, failed at {text}"
        return text

    def report(self, *, verbose: bool = False) -> str:
        status = self.status
        if status == "PASS":
            lines = [f"PASS  {self.path}"]
        elif status == "XFAIL":
            extra = "" if self.message_matches else " (message differs from the // Failure: note)"
            assert self.failure is not None
            lines = [f"XFAIL (expected) {self.path}:{self.failure.line}: "
                     f"{self.failure.message}{extra}"]
        else:
            lines = [f"FAIL  {self.path}: {self.reason()}"]
            f = self.failure
            if f is not None:
                if f.expected:
                    lines.append(f"      expected: {f.expected}")
                if f.actual:
                    who = "kernel:" if self.profile == "kernel" else "synack:"
                    lines.extend(f"      {who:<9} {a}" if i == 0 else f"                {a}"
                                 for i, a in enumerate(f.actual.splitlines()))
        if verbose:
            lines.extend(f"      note: {n}" for n in self.notes)
            lines.extend(f"      unmet: {u}" for u in self.unmet)
        return "\n".join(lines)


@dataclass(slots=True)
class RunOptions:
    """Settings from the command line; script option lines override them."""

    tolerance_usecs: int | None = None
    tolerance_percent: float | None = None
    strict_segments: bool = False
    #: Also compare the outbound TS ecr (upstream never does).
    check_ts_ecr: bool = False
    #: Receives the stack's trace records (see docs/trace.md), if set.
    tracer: Callable[[dict[str, Any]], None] | None = None
    #: Receives every packet in and out: ``(packet, seconds, comment)``, if set.
    capture: Callable[[bytes, float, str], None] | None = None


# ------------------------------------------------------------------------------ records
@dataclass(slots=True)
class Sent:
    """A packet synack emitted."""

    time_us: int
    seg: Segment
    options: list[tuple[int, bytes]]

    @property
    def payload(self) -> bytes:
        return bytes(self.seg.payload)


@dataclass(slots=True)
class Sched:
    start_us: int
    end_us: int | None = None  # range end
    blocking_end_us: int | None = None


@dataclass(slots=True)
class Pending:
    """A blocking system call that has not been checked yet."""

    event: Event
    spec: SyscallSpec
    op: Op
    start_us: int
    end_us: int
    done_at: int | None = None
    result: int | None = None
    errno: int | None = None


def run_script(script: Script | str | Path, profile: str | Profile = "rfc",
               options: RunOptions | None = None) -> RunResult:
    """Parse (if needed) and run one script; never raises for a script's own errors."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(script, Script):
        path = str(script)
        try:
            script = parse_file(script)
        except PacketdrillSyntaxError as exc:
            return RunResult(path, prof.name, Failure(exc.line, f"parse error: {exc.problem}"))
        except OSError as exc:
            return RunResult(path, prof.name, Failure(0, f"cannot read script: {exc}"))
    return Runner(script, prof, options or RunOptions()).run()


class Runner:
    """One execution of one script."""

    def __init__(self, script: Script, profile: Profile, options: RunOptions) -> None:
        self.script = script
        self.profile = profile
        self.result = RunResult(script.path, profile.name,
                                expected_failure=script.expected_failure)
        self.tolerance_us = options.tolerance_usecs or DEFAULT_TOLERANCE_USECS
        self.tolerance_pct = (options.tolerance_percent if options.tolerance_percent is not None
                              else DEFAULT_TOLERANCE_PERCENT)
        self.strict_segments = options.strict_segments
        self.check_ts_ecr = options.check_ts_ecr
        self._tracer = options.tracer
        self._capture = options.capture
        self.ts_tick_us = 0
        self.ts_ecr_scaled = False
        self.mtu: int | None = None
        self.local_isn: int | None = None
        self.remote_shift = 0
        self.bind_port = DEFAULT_PORT
        self.connect_port = DEFAULT_PORT
        self.sysctls: dict[str, str] = dict(profile.sysctls)
        self._config_cache: tuple[tuple[tuple[str, str], ...], TcpConfig] | None = None
        self.now_us = 0
        self.outq: deque[Sent] = deque()
        self.pending: Pending | None = None
        self.last_event: Event | None = None
        self.last_sched: Sched | None = None
        # Sequence-number mapping (see the module docstring).
        self.local_isn_live: int | None = None
        self.local_isn_script = 0
        self.remote_isn_script: int | None = None
        self.ts_map: dict[int, int] = {}
        self.ts_base: tuple[int, int] | None = None  # (script val, live val) of the first TS
        self.tuple_local = DEFAULT_PORT
        self.tuple_remote = REMOTE_EPHEMERAL_PORT
        self.stack: Stack | None = None
        self.wait_horizon_us = WAIT_HORIZON_USECS
        self.block_horizon_us = BLOCK_HORIZON_USECS
        self.layer: StackSyscalls | None = None

    # ------------------------------------------------------------------ running
    def run(self) -> RunResult:
        res = self.result
        line = 0
        try:
            for name, value, line in self.script.options:
                self._option(name, value, line)
            for cmd, line in self.script.init_commands:
                self._command(cmd, line)
            self._start_target()
            for ev in self.script.events:
                line = ev.line
                self._run_event(ev)
                res.events_run += 1
            line = self.script.events[-1].line
            self._finish()
            for cmd, line in self.script.cleanup_commands:
                self._command(cmd, line)
        except ScriptFailure as f:
            res.failure = Failure(f.line, f.message, f.expected, f.actual)
        except Exception as exc:  # a bug in synack (or here): report it, never crash the run
            tb = traceback.extract_tb(exc.__traceback__)[-3:]
            where = "; ".join(f"{Path(fr.filename).name}:{fr.lineno} in {fr.name}" for fr in tb)
            res.failure = Failure(line, f"internal error: {type(exc).__name__}: {exc}",
                                  actual=f"raised at {where}")
        self._end_target()
        if self.outq:
            shown = "; ".join(self._sent_text(s) for s in list(self.outq)[:3])
            more = f" (and {len(self.outq) - 3} more)" if len(self.outq) > 3 else ""
            res.notes.append(f"{len(self.outq)} packet(s) sent after the last expected one "
                             f"were not checked: {shown}{more}")
        return res

    def _end_target(self) -> None:
        """After the run: the layer's notes and the profile's unmet needs."""
        if self.layer is not None:
            self.result.notes.extend(self.layer.notes)
        self.result.unmet = config_from_sysctls(self.profile, self.sysctls).unmet

    def _option(self, name: str, value: str, line: int) -> None:
        def number() -> int:
            try:
                return int(value, 0)
            except ValueError:
                raise ScriptFailure(line, f"option --{name} needs an integer, got {value!r}")\
                    from None

        if name == "tolerance_usecs":
            self.tolerance_us = number()
        elif name == "tolerance_percent":
            try:
                self.tolerance_pct = float(value)
            except ValueError:
                raise ScriptFailure(line, f"option --{name} needs a number") from None
        elif name == "tcp_ts_tick_usecs":
            self.ts_tick_us = number()
        elif name == "tcp_ts_ecr_scaled":
            self.ts_ecr_scaled = True
        elif name == "check_ts_ecr":  # synack extension: also compare outbound TS ecr
            self.check_ts_ecr = True
        elif name == "strict_segments":
            self.strict_segments = True
        elif name == "mss":
            number()
            self.result.notes.append(f"--mss={value}: injected packets larger than this reach "
                                     "synack whole, as a GSO/GRO packet does")
        elif name == "mtu":
            self.mtu = number()
        elif name == "ip_version":
            if value not in ("ipv4", "ipv4-mapped-ipv6"):
                raise ScriptFailure(line, f"--ip_version={value}: synack is IPv4 only")
        elif name == "bind_port":
            self.bind_port = number()
        elif name == "connect_port":
            self.connect_port = number()
        elif name == "local_isn":  # synack extension: a fixed ISN for synack's connections
            self.local_isn = number() & MASK
        elif name == "remote_isn":  # synack extension: shift the script's sequence space
            self.remote_shift = number() & MASK
        elif name in ("local_ip", "remote_ip", "gateway_ip", "netmask_ip", "speed",
                      "init_scripts", "define", "verbose", "debug"):
            self.result.notes.append(f"--{name}: ignored by the virtual runner")
        else:
            raise ScriptFailure(line, f"unknown option --{name}")

    def _start_target(self) -> None:
        isn: IsnSource = (fixed_isn(self.local_isn) if self.local_isn is not None
                          else Rfc6528Isn(ISN_SECRET))
        self.stack = Stack(LOCAL_IP, config=self._config(), isn=isn, seed=1, mtu=self.mtu,
                           tracer=self._tracer)
        self.layer = StackSyscalls(self.stack, profile=self.profile, sysctls=self.sysctls,
                                 base_config=self._config, clock=lambda: self.now_us / 1e6,
                                 remote_ip=REMOTE_IP, connect_port=self.connect_port,
                                 bind_port=self.bind_port)

    def _config(self) -> TcpConfig:
        key = tuple(sorted(self.sysctls.items()))
        if self._config_cache is None or self._config_cache[0] != key:
            cfg = config_from_sysctls(self.profile, self.sysctls).config
            if self.mtu is not None:
                cfg = cfg.replace(mss=min(cfg.mss, self.mtu - 40))
            self._config_cache = (key, cfg)
        return self._config_cache[1]

    def _command(self, cmd: CommandSpec, line: int) -> None:
        for eff in shell.interpret(cmd.text, self.script.directory):
            if isinstance(eff, shell.SysctlSet):
                self.sysctls[eff.key] = eff.value
            else:
                self.result.notes.append(f"line {line}: skipped `{eff.command}`: {eff.reason}")

    @property
    def _stack(self) -> Stack:
        assert self.stack is not None
        return self.stack

    @property
    def _syscalls(self) -> SyscallLayer:
        """The target's system-call layer."""
        return self._layer

    @property
    def _layer(self) -> StackSyscalls:
        assert self.layer is not None
        return self.layer

    # ------------------------------------------------------------------- timing
    def _schedule(self, ev: Event) -> Sched:
        t = ev.time
        if self.last_event is None and t.usecs != 0:
            raise ScriptFailure(ev.line, "first event should be at time 0")
        offset = 0
        if t.kind.relative:
            if (self.last_event is not None and self.last_sched is not None
                    and _is_inbound(self.last_event) and _is_inbound(ev)):
                offset = self.last_sched.start_us
            else:
                offset = self.now_us
        elif (self.last_event is not None and self.last_sched is not None
              and not self.last_event.time.kind.relative
              and t.usecs < self.last_sched.start_us):
            raise ScriptFailure(ev.line, f"time goes backward in script from "
                                         f"{self.last_sched.start_us} usec to {t.usecs} usec")
        sched = Sched(t.usecs + offset)
        if t.end_usecs is not None:
            sched.end_us = t.end_usecs + (offset if t.kind is TimeKind.RELATIVE_RANGE else 0)
        if isinstance(ev.action, SyscallSpec) and ev.action.end is not None:
            sched.blocking_end_us = ev.action.end.usecs + (offset if t.kind.relative else 0)
        return sched

    def _tolerance(self, script_us: int, last_us: int | None) -> int:
        tol = self.tolerance_us
        if last_us is not None:
            tol = max(tol, int(self.tolerance_pct / 100.0 * (script_us - last_us)))
        return tol

    def _verify_time(self, kind: TimeKind, sched: Sched, actual_us: int, last_us: int | None,
                     what: str) -> str | None:
        """None if ``actual_us`` fits the schedule, else packetdrill's timing error text."""
        if kind is TimeKind.ANY:
            return None
        tol = self._tolerance(sched.start_us, last_us)
        if kind.ranged:
            assert sched.end_us is not None
            if sched.start_us - tol <= actual_us <= sched.end_us + tol:
                return None
            return (f"timing error: expected {what} in time range {_usecs(sched.start_us)}~"
                    f"{_usecs(sched.end_us)} sec but happened at {_usecs(actual_us)} sec")
        if sched.start_us - tol <= actual_us <= sched.start_us + tol:
            return None
        return (f"timing error: expected {what} at {_usecs(sched.start_us)} sec but happened "
                f"at {_usecs(actual_us)} sec; tolerance {_usecs(tol)} sec")

    def _last_us(self) -> int | None:
        return self.last_sched.start_us if self.last_sched is not None else None

    # ------------------------------------------------------------ virtual clock
    def _collect(self) -> None:
        """Take everything the stack wants to send now; wake blocked calls."""
        stack = self._stack
        for _ in range(3):
            for raw in stack.packets_to_send(self.now_us / 1e6):
                self._record(raw)
            self._layer.drain_events()
            if not self._poll_pending():
                break

    def _record(self, raw: bytes) -> None:
        if self._capture is not None:
            self._capture(raw, self.now_us / 1e6, "synack sent")
        try:
            _src, _dst, seg = decode_ipv4_tcp(raw)
        except WireError as exc:
            if exc.reason != "ip_not_tcp":
                raise ScriptFailure(self._line(), f"synack sent a malformed packet: {exc}")\
                    from None
            self.result.notes.append(f"non-TCP packet sent at {_usecs(self.now_us)} s ignored")
            return
        seg.payload = bytes(seg.payload)
        self.outq.append(Sent(self.now_us, seg, _raw_options(raw)))

    def _line(self) -> int:
        return self.last_event.line if self.last_event is not None else 0

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

    def _advance(self, until_us: int, *, idle: bool) -> None:
        """Fire the stack's timers up to ``until_us``; the clock ends at ``until_us`` or later.

        ``idle`` says the script is waiting for time to pass, so a blocking call that
        finishes is checked at once (otherwise its check waits for the next idle moment).
        """
        stack = self._stack
        same_time = 0
        while True:
            if idle:
                self._check_pending_if_done()
            nt = stack.next_timer()
            if nt is None:
                break
            nt_us = round(nt * 1e6)
            if nt_us > until_us:
                break
            if nt_us <= self.now_us:
                same_time += 1
                if same_time > 10000:
                    raise ScriptFailure(self._line(), f"synack's timers do not advance: stuck at "
                                                      f"{_usecs(self.now_us)} s")
            else:
                same_time = 0
            self.now_us = max(self.now_us, nt_us)
            stack.handle_timer(nt)
            self._collect()
        if idle:
            self._check_pending_if_done()
        self.now_us = max(self.now_us, until_us)

    def _wait_step(self, horizon_us: int) -> bool:
        """Let time pass until something happens (the next timer); False if nothing will
        happen before ``horizon_us``."""
        nt = self._stack.next_timer()
        if nt is None or round(nt * 1e6) > horizon_us:
            return False
        self.now_us = max(self.now_us, round(nt * 1e6))
        self._stack.handle_timer(nt)
        self._collect()
        return True

    def _step_until_sent(self, horizon_us: int) -> bool:
        """Fire timers (the script is busy: not idle) until a packet is sent; False if none
        is sent before ``horizon_us``."""
        stack = self._stack
        same_time = 0
        while not self.outq:
            nt = stack.next_timer()
            if nt is None:
                return False
            nt_us = round(nt * 1e6)
            if nt_us > horizon_us:
                return False
            if nt_us <= self.now_us:
                same_time += 1
                if same_time > 10000:
                    raise ScriptFailure(self._line(), f"synack's timers do not advance: stuck at "
                                                      f"{_usecs(self.now_us)} s")
            else:
                same_time = 0
            self.now_us = max(self.now_us, nt_us)
            stack.handle_timer(nt)
            self._collect()
        return True

    # --------------------------------------------------------------- events
    def _run_event(self, ev: Event) -> None:
        sched = self._schedule(ev)
        a = ev.action
        if isinstance(a, PacketSpec) and not a.inbound:
            self._outbound(ev, a, sched)
        else:
            self._advance(sched.start_us, idle=True)
            what = {PacketSpec: "inbound packet", SyscallSpec: "system call start",
                    CommandSpec: "command", CodeSpec: "data collection for code"}[type(a)]
            err = self._verify_time(ev.time.kind, sched, self.now_us, self._last_us(), what)
            if err:
                raise ScriptFailure(ev.line, err)
            if isinstance(a, PacketSpec):
                self._inbound(ev, a)
            elif isinstance(a, SyscallSpec):
                self._syscall(ev, a, sched)
            elif isinstance(a, CommandSpec):
                self._command(a, ev.line)
            else:
                self._code(ev, a)
        self.last_event = ev
        if ev.time.kind is TimeKind.ANY:
            sched.start_us = self.now_us
        self.last_sched = sched

    def _finish(self) -> None:
        p = self.pending
        if p is not None and p.done_at is None:
            self._advance(self.now_us + FINAL_WAIT_USECS, idle=True)
            p = self.pending
            if p is not None and p.done_at is None:
                raise ScriptFailure(p.event.line, "runtime error: exiting while a blocking "
                                                  "system call is in progress")
        self._check_pending_if_done()

    # ------------------------------------------------------------ inbound
    def _local_offset(self) -> int:
        if self.local_isn_live is None:
            return 0
        return (self.local_isn_live - self.local_isn_script) & MASK

    def _inbound(self, ev: Event, pkt: PacketSpec) -> None:
        bits = spec_flag_bits(pkt.flags)
        sport = pkt.src_port or self.tuple_remote
        dport = pkt.dst_port or self.tuple_local
        if bits & SYN and self._syn_reopens(sport, dport, bits):
            # The script's ISN for payload numbering: only a SYN that (re)opens a
            # connection sets it, not one that hits an established connection.
            self.remote_isn_script = pkt.seq
        seq = (pkt.seq + self.remote_shift) & MASK
        ack = (pkt.ack + self._local_offset()) & MASK if pkt.ack is not None else 0
        opts = self._encode_options(ev, pkt, bits)
        data_seq = pkt.seq + (1 if bits & SYN else 0)
        base = self.remote_isn_script + 1 if self.remote_isn_script is not None else 1
        payload = pattern((data_seq - base) & MASK, pkt.length)
        tos = ECN_CODEPOINTS[pkt.ecn] if pkt.ecn is not None else 0
        raw = _build_packet(REMOTE_IP, LOCAL_IP, sport, dport, seq, ack, bits, pkt.win or 0,
                            pkt.urg or 0, opts, payload, tos)
        if self._capture is not None:
            self._capture(raw, self.now_us / 1e6, "injected by the script")
        self._inject(raw, bits, sport, dport)
        self._collect()

    def _syn_reopens(self, sport: int, dport: int, bits: int) -> bool:
        """Does an inbound SYN on this tuple start a new connection (a new script ISN)?"""
        existing = self._stack.find(REMOTE_IP, sport, dport)
        return existing is None or existing.state in _REOPENABLE

    def _inject(self, raw: bytes, bits: int, sport: int, dport: int) -> None:
        self._stack.receive_packet(raw, self.now_us / 1e6)
        if bits & SYN and not bits & ACK:
            conn = self._stack.find(REMOTE_IP, sport, dport)
            if conn is not None:
                self._layer.current = conn

    def _encode_options(self, ev: Event, pkt: PacketSpec, bits: int) -> bytes:
        out = bytearray()
        for o in pkt.options or ():
            if o.kind == "nop":
                out.append(1)
            elif o.kind == "eol":
                out.append(0)
            elif o.kind == "mss":
                out += struct.pack("!BBH", 2, 4, o.value)
            elif o.kind == "wscale":
                out += struct.pack("!BBB", 3, 3, o.value)
            elif o.kind == "sackOK":
                out += b"\x04\x02"
            elif o.kind == "sack":
                off = self._local_offset()
                out += struct.pack("!BB", 5, 2 + 8 * len(o.blocks))
                for left, right in o.blocks:
                    out += struct.pack("!II", (left + off) & MASK, (right + off) & MASK)
            elif o.kind == "TS":
                ecr = o.ecr
                if bits & ACK:
                    ecr = self._map_ecr(ev, o.ecr)
                out += struct.pack("!BBII", 8, 10, o.val, ecr)
        while len(out) % 4:
            out.append(0)
        return bytes(out)

    def _map_ecr(self, ev: Event, script_ecr: int) -> int:
        live = self.ts_map.get(script_ecr)
        if live is not None:
            return live
        if self.ts_ecr_scaled and self.ts_base is not None:
            return (script_ecr - self.ts_base[0] + self.ts_base[1]) & MASK
        raise ScriptFailure(ev.line, f"error handling packet: unable to infer live TS ecr for "
                                     f"script TS ecr {script_ecr}; no matching or preceding "
                                     "outbound TS val")

    # ----------------------------------------------------------- outbound
    def _outbound(self, ev: Event, pkt: PacketSpec, sched: Sched) -> None:
        kind = ev.time.kind
        last_us = self._last_us()
        if kind is TimeKind.ANY:
            deadline = self.now_us
        else:
            tol = self._tolerance(sched.start_us, last_us)
            deadline = (sched.end_us if sched.end_us is not None else sched.start_us) + tol
        horizon = max(deadline, self.now_us) + self.wait_horizon_us
        expected_desc = f"{self._sched_text(ev, sched)} {pkt.describe()}"
        if not self.outq and not self._step_until_sent(horizon):
            raise ScriptFailure(ev.line, "error handling packet: Timed out waiting for packet",
                                expected=expected_desc,
                                actual=f"nothing sent (waited until {_usecs(self.now_us)} s)")
        frags = [self.outq.popleft()]
        if frags[0].seg.flags & SYN and "S" in pkt.flags:
            self.local_isn_live = frags[0].seg.seq
            self.local_isn_script = pkt.seq
        total = len(frags[0].payload)
        while total < pkt.length and not self.strict_segments:
            if not self.outq and not self._step_until_sent(horizon):
                break
            nxt = self.outq[0]
            why = self._fragment_problem(frags[-1], nxt, total, pkt.length)
            if why:
                raise ScriptFailure(
                    ev.line, f"error handling packet: cannot aggregate outbound segments: {why}",
                    expected=expected_desc,
                    actual="\n".join(self._sent_text(s) for s in [*frags, nxt]))
            frags.append(self.outq.popleft())
            total += len(nxt.payload)
        actual_desc = "\n".join(self._sent_text(s) for s in frags)
        problem = self._compare(ev, pkt, frags, total)
        if problem is None:
            err = self._verify_time(kind, sched, frags[0].time_us, last_us, "outbound packet")
            if err:
                problem = err
        if problem is not None:
            raise ScriptFailure(ev.line, f"error handling packet: {problem}",
                                expected=expected_desc, actual=actual_desc)
        self.now_us = max(self.now_us, frags[-1].time_us)

    def _sched_text(self, ev: Event, sched: Sched) -> str:
        if ev.time.kind is TimeKind.ANY:
            return "(any time)"
        if sched.end_us is not None:
            return f"{_usecs(sched.start_us)}~{_usecs(sched.end_us)}"
        return _usecs(sched.start_us)

    def _fragment_problem(self, prev: Sent, cur: Sent, total: int, need: int) -> str | None:
        a, b = prev.seg, cur.seg
        loose = PSH | FIN | CWR
        if b.flags & SYN or a.flags & FIN:
            return "a SYN or FIN cannot be followed by more data"
        if (a.flags ^ b.flags) & ~loose:
            return f"flags {flags_text(a.flags)} then {flags_text(b.flags)}"
        if (a.seq + len(prev.payload)) & MASK != b.seq:
            return "segments are not contiguous"
        if a.ack != b.ack or a.window != b.window or a.src_port != b.src_port \
                or a.dst_port != b.dst_port:
            return "headers differ (ack, window or ports)"
        if [k for k, _ in prev.options] != [k for k, _ in cur.options]:
            return "option layouts differ"
        if total + len(cur.payload) < need and len(cur.payload) != len(prev.payload):
            return (f"fragment payload: expected {len(prev.payload)} bytes vs actual "
                    f"{len(cur.payload)} bytes")
        return None

    def _compare(self, ev: Event, pkt: PacketSpec, frags: list[Sent], total: int
                 ) -> str | None:
        if total != pkt.length:
            return f"live packet payload: expected {pkt.length} bytes vs actual {total} bytes"
        first = frags[0].seg
        bits = first.flags
        for f in frags[1:]:
            bits |= f.seg.flags & (PSH | FIN)
        if pkt.src_port is not None and first.src_port != pkt.src_port:
            return _field("tcp_src_port", pkt.src_port, first.src_port)
        if pkt.dst_port is not None and first.dst_port != pkt.dst_port:
            return _field("tcp_dst_port", pkt.dst_port, first.dst_port)
        want_bits = spec_flag_bits(pkt.flags)
        if bits != want_bits:
            return (f"live packet field tcp_flags: expected: {pkt.flags or '-'} vs actual: "
                    f"{flags_text(bits)}")
        seq = (first.seq - self._local_offset()) & MASK
        if seq != pkt.seq:
            return _field("tcp_seq", pkt.seq, seq)
        if bits & ACK:
            ack = (first.ack - self.remote_shift) & MASK
            if pkt.ack is not None and ack != pkt.ack:
                return _field("tcp_ack_seq", pkt.ack, ack)
        elif first.ack != (pkt.ack or 0):
            return _field("tcp_ack_seq", pkt.ack or 0, first.ack)
        if pkt.ecn is not None:
            want = ECN_CODEPOINTS[pkt.ecn]
            got = first.ecn & 3
            if (want == -1 and got not in (1, 2)) or (want >= 0 and got != want):
                names = {v: k for k, v in ECN_CODEPOINTS.items()}
                return (f"live packet field ip_ecn: expected: {pkt.ecn} vs actual: "
                        f"{names.get(got, got)}")
        if pkt.win is not None and first.window != pkt.win:
            return _field("tcp_window", pkt.win, first.window)
        if first.urgent != (pkt.urg or 0):
            return _field("tcp_urg_ptr", pkt.urg or 0, first.urgent)
        if pkt.options is not None:
            problem = self._compare_options(pkt.options, frags[0])
            if problem:
                return problem
        return self._check_content(frags)

    def _compare_options(self, want: tuple[TcpOption, ...], sent: Sent) -> str | None:
        got = sent.options
        want_text = "<" + ",".join(str(o) for o in want) + ">" if want else "no options"
        got_text = self._options_text(sent)
        got_text = f"<{got_text}>" if got_text else "no options"
        if [_OPT_KIND[o.kind] for o in want] != [k for k, _ in got]:
            return f"bad outbound TCP options: expected {want_text} vs actual {got_text}"
        for o, (_kind, data) in zip(want, got, strict=True):
            if o.kind == "mss":
                if len(data) != 2 or struct.unpack("!H", data)[0] != o.value:
                    return f"bad value outbound TCP option mss: expected {want_text} vs " \
                           f"actual {got_text}"
            elif o.kind == "wscale":
                if len(data) != 1 or data[0] != o.value:
                    return f"bad value outbound TCP option wscale: expected {want_text} vs " \
                           f"actual {got_text}"
            elif o.kind == "sack":
                blocks = self._sack_blocks(data)
                if blocks != list(o.blocks):
                    return f"bad value outbound TCP option sack: expected {want_text} vs " \
                           f"actual {got_text}"
            elif o.kind == "TS":
                if len(data) != 8:
                    return "bad outbound TCP timestamp option length"
                val, ecr = struct.unpack("!II", data)
                if self.ts_base is None:
                    self.ts_base = (o.val, val)
                self.ts_map[o.val] = val
                mapped = (self.ts_base[0] + (val - self.ts_base[1])) & MASK
                diff = (mapped - o.val) & MASK
                if diff >= 1 << 31:
                    diff -= 1 << 32
                if self.ts_tick_us and abs(diff) * self.ts_tick_us > self.tolerance_us:
                    return (f"bad outbound TCP timestamp value, tolerance {self.tolerance_us}: "
                            f"expected TS val {o.val} vs actual {mapped} (script clock)")
                if self.check_ts_ecr and ecr != o.ecr:
                    return f"bad outbound TCP timestamp ecr: expected {o.ecr} vs actual {ecr}"
        return None

    def _sack_blocks(self, data: bytes) -> list[tuple[int, int]]:
        edges = [struct.unpack_from("!I", data, i)[0] for i in range(0, len(data) - 3, 4)]
        sh = self.remote_shift
        return [((edges[i] - sh) & MASK, (edges[i + 1] - sh) & MASK)
                for i in range(0, len(edges) - 1, 2)]

    def _check_content(self, frags: list[Sent]) -> str | None:
        """Every payload byte must be the byte the application wrote at that position."""
        layer = self._layer
        for f in frags:
            if not f.payload:
                continue
            conn = self._stack.find(REMOTE_IP, f.seg.dst_port, f.seg.src_port)
            if conn is None:
                continue
            written = layer.written.get(conn, bytearray())
            off = (f.seg.seq - conn.iss - 1) & MASK
            want = bytes(written[off:off + len(f.payload)])
            if want != f.payload:
                return (f"incorrect outbound data payload: the {len(f.payload)} bytes at stream "
                        f"offset {off} are not what the application wrote there")
        return None

    def _options_text(self, sent: Sent) -> str:
        parts: list[str] = []
        for kind, data in sent.options:
            name = _KIND_NAME.get(kind, f"opt{kind}")
            if kind == 2 and len(data) == 2:
                parts.append(f"mss {struct.unpack('!H', data)[0]}")
            elif kind == 3 and len(data) == 1:
                parts.append(f"wscale {data[0]}")
            elif kind == 5:
                parts.append("sack " + " ".join(f"{a}:{b}" for a, b in self._sack_blocks(data)))
            elif kind == 8 and len(data) == 8:
                val, ecr = struct.unpack("!II", data)
                if self.ts_base is not None:
                    val = (self.ts_base[0] + val - self.ts_base[1]) & MASK
                parts.append(f"TS val {val} ecr {ecr}")
            else:
                parts.append(name)
        return ",".join(parts)

    def _sent_text(self, s: Sent) -> str:
        seg = s.seg
        seq = (seg.seq - self._local_offset()) & MASK
        n = len(s.payload)
        ecn = {1: "[ect1] ", 2: "[ect0] ", 3: "[ce] "}.get(seg.ecn & 3, "")
        text = (f"{_usecs(s.time_us)} {ecn}{flags_text(seg.flags)} {seq}:{(seq + n) & MASK}"
                f"({n})")
        if seg.flags & ACK:
            text += f" ack {(seg.ack - self.remote_shift) & MASK}"
        text += f" win {seg.window}"
        opts = self._options_text(s)
        if opts:
            text += f" <{opts}>"
        return text

    # ------------------------------------------------------------ syscalls
    def _syscall(self, ev: Event, spec: SyscallSpec, sched: Sched) -> None:
        prefix = f"runtime error in {spec.name} call"
        if spec.blocking and self.pending is not None and self.pending.done_at is None:
            raise ScriptFailure(ev.line, f"{prefix}: blocking system call while another "
                                         "blocking system call is already in progress")
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
                    raise ScriptFailure(ev.line, f"{prefix}: the call blocks (no '...' end time "
                                                 "was given, so it must not) and nothing "
                                                 "will ever unblock it")
                outcome = self._attempt(ev, spec, op)
            self._collect()
        self._check_result(ev, spec, *outcome)

    def _attempt(self, ev: Event, spec: SyscallSpec, op: Op) -> tuple[int | None, int | None] \
            | None:
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

    def _check_result(self, ev: Event, spec: SyscallSpec, value: int | None,
                      err: int | None) -> None:
        prefix = f"runtime error in {spec.name} call"
        actual = value if err is None and value is not None else -1
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
                    raise ScriptFailure(ev.line, f"{prefix}: Expected non-negative result but got "
                                                 f"{actual}{err_text}")
            elif actual != expected:
                raise ScriptFailure(ev.line, f"{prefix}: Expected result {expected} but got "
                                             f"{actual}{err_text}")
        if spec.errno is not None:
            want = getattr(errno_mod, spec.errno, None)
            if not isinstance(want, int):
                raise ScriptFailure(ev.line, f"{prefix}: unknown errno {spec.errno}")
            got = err or 0
            if got != want:
                raise ScriptFailure(ev.line, f"{prefix}: Expected errno {want} "
                                             f"({os.strerror(want)}) but got {got} "
                                             f"({os.strerror(got) if got else 'no error'})")

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
        if isinstance(e, ListExpr) and len(e.items) == 1 and isinstance(e.items[0],
                                                                          EllipsisExpr):
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
            return _Then(layer.connect(fd, self._sockaddr_port(args[1])),
                         lambda: self._set_tuple_connect(fd), before_block=True)
        if name in ("read", "recv"):
            flags = self._int(args[3]) if name == "recv" else 0
            return layer.read(fd, self._int(args[2]), flags)
        if name in ("write", "send"):
            flags = self._int(args[3]) if name == "send" else 0
            count = self._int(args[2])
            return layer.write(fd, self._buffer(args[1], count), count, flags)
        if name == "close":
            return layer.close(fd)
        if name == "shutdown":
            return layer.shutdown(fd, self._int(args[1]))
        if name == "setsockopt":
            return layer.setsockopt(fd, self._int(args[1]), self._int(args[2]),
                                    self._optval(args[3]))
        if name == "getsockopt":
            return layer.getsockopt(fd, self._int(args[1]), self._int(args[2]),
                                    self._opt_int(args[3]), self._opt_int(args[4]))
        if name == "fcntl":
            arg = self._int(args[2]) if len(args) == 3 else 0
            return layer.fcntl(fd, self._int(args[1]), arg)
        assert name == "ioctl"
        return layer.ioctl(fd, self._int(args[1]), self._opt_int(args[2]))

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
                if isinstance(item, BinaryExpr) and isinstance(item.lhs, WordExpr) \
                        and item.lhs.name == "sin_port":
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

    # ----------------------------------------------------------------- code
    def _code(self, ev: Event, spec: CodeSpec) -> None:
        try:
            run_code(spec.text, self._tcp_info())
        except MissingField as exc:
            self.result.notes.append(f"line {ev.line}: %{{ }}% block skipped: {exc}")
        except AssertionFailed as exc:
            raise ScriptFailure(ev.line, f"error executing code: {exc}") from None
        except CodeError as exc:
            raise ScriptFailure(ev.line, f"error in %{{ }}% block: {exc}") from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ScriptFailure(ev.line, f"error in %{{ }}% block: {type(exc).__name__}: {exc}")\
                from None


    def _tcp_info(self) -> dict[str, object]:
        """The ``tcpi_*`` variables of the socket under test."""
        return tcp_info_vars(self._layer.current)


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


def _field(name: str, expected: int, actual: int) -> str:
    return (f"live packet field {name}: expected: {expected} ({expected:#x}) vs actual: "
            f"{actual} ({actual:#x})")


def _is_inbound(ev: Event) -> bool:
    return isinstance(ev.action, PacketSpec) and ev.action.inbound


def _raw_options(raw: bytes) -> list[tuple[int, bytes]]:
    """The TCP options of IPv4 packet ``raw`` as (kind, data), in wire order."""
    ihl = (raw[0] & 0x0F) * 4
    tcp = raw[ihl:]
    doff = (tcp[12] >> 4) * 4
    opts = tcp[20:doff]
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            out.append((0, b""))
            break
        if kind == 1:
            out.append((1, b""))
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            out.append((kind, bytes(opts[i + 1:])))
            break
        length = opts[i + 1]
        out.append((kind, bytes(opts[i + 2:i + length])))
        i += length
    return out


def _build_packet(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
                  window: int, urgent: int, options: bytes, payload: bytes, tos: int = 0
                  ) -> bytes:
    """An IPv4/TCP packet with exactly these fields and options, checksums filled in."""
    src_b, dst_b = ip_to_bytes(src), ip_to_bytes(dst)
    doff = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0,
                         urgent) + options
    length = len(header) + len(payload)
    acc = ones_sum(header, pseudo_header_sum(src_b, dst_b, PROTO_TCP, length))
    csum = finish(ones_sum(payload, acc)) if payload else finish(acc)
    header = header[:16] + struct.pack("!H", csum) + header[18:]
    return build_ipv4_header(src_b, dst_b, PROTO_TCP, length, tos=tos) + header + payload


def iter_scripts(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``*.pkt`` file under ``paths`` (files as given, directories recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(path.rglob("*.pkt")))
        else:
            out.append(path)
    return out


__all__ = [
    "DEFAULT_TOLERANCE_USECS",
    "LOCAL_IP",
    "REMOTE_IP",
    "Failure",
    "RunOptions",
    "RunResult",
    "Runner",
    "iter_scripts",
    "run_script",
]
