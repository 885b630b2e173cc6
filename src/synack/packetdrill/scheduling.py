"""When things happen: a script's event times, the tolerance, and the target's clock.

Relative and absolute times become scheduled times (:meth:`Scheduling._schedule`),
checked against when things really happened with packetdrill's tolerance.  On the
synack target the clock is virtual: the stack's timers fire up to each event's time
and everything it sends is queued, stamped, for :mod:`.outbound`.  The kernel target
(:mod:`.kernel`) overrides the clock methods with real time.
"""

from __future__ import annotations

from ..wire.errors import WireError
from ..wire.packet import decode_ip_tcp
from .parser import (
    Event,
    PacketSpec,
    SyscallSpec,
    TimeKind,
)
from .results import ScriptFailure
from .state import RunnerState, Sched, Sent, raw_options, usecs


class Scheduling(RunnerState):
    """Event times, tolerance, and the target's clock (virtual here)."""

    # ------------------------------------------------------------------- timing
    def _schedule(self, ev: Event) -> Sched:
        t = ev.time
        if self.last_event is None and t.usecs != 0:
            raise ScriptFailure(ev.line, "first event should be at time 0")
        offset = 0
        if t.kind.relative:
            if (
                self.last_event is not None
                and self.last_sched is not None
                and is_inbound(self.last_event)
                and is_inbound(ev)
            ):
                offset = self.last_sched.start_us
            else:
                offset = self.now_us
        elif (
            self.last_event is not None
            and self.last_sched is not None
            and not self.last_event.time.kind.relative
            and t.usecs < self.last_sched.start_us
        ):
            raise ScriptFailure(
                ev.line,
                f"time goes backward in script from "
                f"{self.last_sched.start_us} usec to {t.usecs} usec",
            )
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

    def _verify_time(
        self, kind: TimeKind, sched: Sched, actual_us: int, last_us: int | None, what: str
    ) -> str | None:
        """None if ``actual_us`` fits the schedule, else packetdrill's timing error text."""
        if kind is TimeKind.ANY:
            return None
        tol = self._tolerance(sched.start_us, last_us)
        if kind.ranged:
            assert sched.end_us is not None
            if sched.start_us - tol <= actual_us <= sched.end_us + tol:
                return None
            return (
                f"timing error: expected {what} in time range {usecs(sched.start_us)}~"
                f"{usecs(sched.end_us)} sec but happened at {usecs(actual_us)} sec"
            )
        if sched.start_us - tol <= actual_us <= sched.start_us + tol:
            return None
        return (
            f"timing error: expected {what} at {usecs(sched.start_us)} sec but happened "
            f"at {usecs(actual_us)} sec; tolerance {usecs(tol)} sec"
        )

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
            _src, _dst, seg = decode_ip_tcp(raw)
        except WireError as exc:
            if exc.reason != "ip_not_tcp":
                raise ScriptFailure(
                    self._line(), f"synack sent a malformed packet: {exc}"
                ) from None
            self.result.notes.append(f"non-TCP packet sent at {usecs(self.now_us)} s ignored")
            return
        seg.payload = bytes(seg.payload)
        self.outq.append(Sent(self.now_us, seg, raw_options(raw)))

    def _line(self) -> int:
        return self.last_event.line if self.last_event is not None else 0

    # -------------------------------------------- provided by the system-call part
    def _poll_pending(self) -> bool:
        """Attempt the blocked call again; True if it finished now (:mod:`.syscall_lines`)."""
        raise NotImplementedError

    def _check_pending_if_done(self) -> None:
        """Check a finished blocking call's result (:mod:`.syscall_lines`)."""
        raise NotImplementedError

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
            if round(nt * 1e6) > until_us:
                break
            same_time = self._fire(nt, same_time)
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
            if round(nt * 1e6) > horizon_us:
                return False
            same_time = self._fire(nt, same_time)
        return True

    def _fire(self, nt: float, same_time: int) -> int:
        """Fire the timers due at ``nt`` and collect what they sent; return how many
        firings in a row left the clock where it was (a stack whose timers never
        advance fails the script instead of looping for ever)."""
        nt_us = round(nt * 1e6)
        if nt_us <= self.now_us:
            same_time += 1
            if same_time > 10000:
                raise ScriptFailure(
                    self._line(), f"synack's timers do not advance: stuck at {usecs(self.now_us)} s"
                )
        else:
            same_time = 0
        self.now_us = max(self.now_us, nt_us)
        self._stack.handle_timer(nt)
        self._collect()
        return same_time


def is_inbound(ev: Event) -> bool:
    return isinstance(ev.action, PacketSpec) and ev.action.inbound
