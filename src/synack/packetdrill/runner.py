"""Execute a packetdrill script against a synack :class:`~synack.stack.Stack`, in virtual time.

The run is split by what it does: :mod:`.scheduling` (event times, tolerance, the
clock), :mod:`.inbound` (the script's packets), :mod:`.outbound` (matching the
target's packets), :mod:`.syscall_lines` (system-call lines on a
:class:`~.syscalls.SyscallLayer`), sharing :mod:`.state`; :class:`Runner` combines
them with options, commands and code blocks.  :mod:`.kernel` reuses it all with
real time and the kernel's sockets.

packetdrill's model: the *local* side is the stack under test (here synack,
at 192.168.0.1); the *remote* side is the script (192.0.2.1).  With
``--ip_version=ipv6`` they are fd3d:a0b:17d6::1 and fd3d:fa7b:d17d::1 on a
1520-byte link (the Linux selftests' addresses, MSS 1460); with
``ipv4-mapped-ipv6`` the packets are IPv4 and the sockets AF_INET6.  ``<`` lines
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

import traceback
from collections.abc import Iterable
from pathlib import Path

from ..stack import Stack
from ..tcp.config import TcpConfig
from ..tcp.isn import IsnSource, Rfc6528Isn, fixed_isn
from ..tcp.seq import MASK
from . import shell
from .inbound import Inbound
from .lexer import PacketdrillSyntaxError
from .outbound import Outbound
from .parser import (
    CodeSpec,
    CommandSpec,
    Event,
    PacketSpec,
    Script,
    SyscallSpec,
    TimeKind,
    parse_file,
)
from .profiles import Profile, config_from_sysctls, get_profile
from .pycode import AssertionFailed, CodeError, MissingField, run_code, tcp_info_vars
from .results import Failure, RunOptions, RunResult, ScriptFailure
from .stack_syscalls import StackSyscalls
from .state import (
    DEFAULT_TOLERANCE_USECS,
    FINAL_WAIT_USECS,
    IP_VERSIONS,
    ISN_SECRET,
    LOCAL_IP,
    LOCAL_IP6,
    REMOTE_IP,
    REMOTE_IP6,
    Sent,
    raw_options,
)
from .syscall_lines import SyscallLines


def run_script(
    script: Script | str | Path, profile: str | Profile = "rfc", options: RunOptions | None = None
) -> RunResult:
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


class Runner(SyscallLines, Inbound, Outbound):
    """One execution of one script."""

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
            res.failure = Failure(
                line, f"internal error: {type(exc).__name__}: {exc}", actual=f"raised at {where}"
            )
        self._end_target()
        if self.record:
            self.result.outbound.extend(self._out_record(s) for s in self.outq)
        if self.outq:
            shown = "; ".join(self._sent_text(s) for s in list(self.outq)[:3])
            more = f" (and {len(self.outq) - 3} more)" if len(self.outq) > 3 else ""
            res.notes.append(
                f"{len(self.outq)} packet(s) sent after the last expected one "
                f"were not checked: {shown}{more}"
            )
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
                raise ScriptFailure(
                    line, f"option --{name} needs an integer, got {value!r}"
                ) from None

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
            self.result.notes.append(
                f"--mss={value}: injected packets larger than this reach "
                "synack whole, as a GSO/GRO packet does"
            )
        elif name == "mtu":
            self.mtu = number()
        elif name == "ip_version":
            if value not in IP_VERSIONS:
                raise ScriptFailure(
                    line,
                    f"option --ip_version needs one of {', '.join(IP_VERSIONS)}, got {value!r}",
                )
            if self.ip_version != value:
                self.result.notes.append(f"--ip_version={value}: the script's own family")
            self.ip_version = value
        elif name == "bind_port":
            self.bind_port = number()
        elif name == "connect_port":
            self.connect_port = number()
        elif name == "local_isn":  # synack extension: a fixed ISN for synack's connections
            self.local_isn = number() & MASK
        elif name == "remote_isn":  # synack extension: shift the script's sequence space
            self.remote_shift = number() & MASK
        elif name in (
            "local_ip",
            "remote_ip",
            "gateway_ip",
            "netmask_ip",
            "speed",
            "init_scripts",
            "define",
            "verbose",
            "debug",
        ):
            self.result.notes.append(f"--{name}: ignored by the virtual runner")
        else:
            raise ScriptFailure(line, f"unknown option --{name}")

    def _start_target(self) -> None:
        isn: IsnSource = (
            fixed_isn(self.local_isn) if self.local_isn is not None else Rfc6528Isn(ISN_SECRET)
        )
        self.stack = Stack(
            self.local_ip,
            config=self._config(),
            isn=isn,
            seed=1,
            mtu=self.link_mtu(),
            tracer=self._tracer,
        )
        self.layer = StackSyscalls(
            self.stack,
            profile=self.profile,
            sysctls=self.sysctls,
            base_config=self._config,
            clock=lambda: self.now_us / 1e6,
            remote_ip=self.remote_ip,
            connect_port=self.connect_port,
            bind_port=self.bind_port,
        )

    def _config(self) -> TcpConfig:
        key = tuple(sorted(self.sysctls.items()))
        if self._config_cache is None or self._config_cache[0] != key:
            cfg = config_from_sysctls(self.profile, self.sysctls).config
            mtu = self.link_mtu()
            if mtu is not None:
                cfg = cfg.replace(mss=min(cfg.mss, mtu - 40))
            self._config_cache = (key, cfg)
        return self._config_cache[1]

    def _command(self, cmd: CommandSpec, line: int) -> None:
        for eff in shell.interpret(cmd.text, self.script.directory):
            if isinstance(eff, shell.SysctlSet):
                self.sysctls[eff.key] = eff.value
            else:
                self.result.notes.append(f"line {line}: skipped `{eff.command}`: {eff.reason}")

    # --------------------------------------------------------------- events
    def _run_event(self, ev: Event) -> None:
        sched = self._schedule(ev)
        a = ev.action
        if isinstance(a, PacketSpec) and not a.inbound:
            self._outbound(ev, a, sched)
        else:
            self._advance(sched.start_us, idle=True)
            what = {
                PacketSpec: "inbound packet",
                SyscallSpec: "system call start",
                CommandSpec: "command",
                CodeSpec: "data collection for code",
            }[type(a)]
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
                raise ScriptFailure(
                    p.event.line,
                    "runtime error: exiting while a blocking system call is in progress",
                )
        self._check_pending_if_done()

    # ----------------------------------------------------------------- code
    def _code(self, ev: Event, spec: CodeSpec) -> None:
        printed: list[str] = []
        try:
            run_code(spec.text, self._tcp_info(), printed)
        except MissingField as exc:
            self.result.notes.append(f"line {ev.line}: %{{ }}% block skipped: {exc}")
        except AssertionFailed as exc:
            raise ScriptFailure(ev.line, f"error executing code: {exc}") from None
        except CodeError as exc:
            raise ScriptFailure(ev.line, f"error in %{{ }}% block: {exc}") from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ScriptFailure(
                ev.line, f"error in %{{ }}% block: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            self.result.notes.extend(f"line {ev.line}: print: {p}" for p in printed)

    def _tcp_info(self) -> dict[str, object]:
        """The ``tcpi_*`` variables of the socket under test."""
        return tcp_info_vars(self._layer.current)


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
    "IP_VERSIONS",
    "LOCAL_IP",
    "LOCAL_IP6",
    "REMOTE_IP",
    "REMOTE_IP6",
    "Failure",
    "RunOptions",
    "RunResult",
    "Runner",
    "ScriptFailure",
    "Sent",
    "iter_scripts",
    "raw_options",
    "run_script",
]
