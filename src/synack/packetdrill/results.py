"""What a run of a packetdrill script reports (result, failure) and the options it takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..trace.schema import TraceRecord
from .parser import ExpectedFailure

#: A sent packet in script terms: (time in us, flags, seq, ack, payload length, window,
#: options as script text).
OutRecord = tuple[int, str, int, int, int, int, str]


class ScriptFailure(Exception):
    def __init__(
        self, line: int, message: str, expected: str | None = None, actual: str | None = None
    ) -> None:
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
    #: With ``RunOptions.record``: every packet the target sent, in script terms.
    outbound: list[OutRecord] = field(default_factory=list)
    #: With ``RunOptions.record``: (line, result, errno) of every system call.
    calls: list[tuple[int, int | None, int | None]] = field(default_factory=list)
    #: The kernel target's packets in and out ``(packet, seconds, comment)``, carried
    #: from the forked child to ``RunOptions.capture``/``tracer`` (then emptied).
    captured: list[tuple[bytes, float, str]] = field(default_factory=list)

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
            lines = [
                f"XFAIL (expected) {self.path}:{self.failure.line}: {self.failure.message}{extra}"
            ]
        else:
            lines = [f"FAIL  {self.path}: {self.reason()}"]
            f = self.failure
            if f is not None:
                if f.expected:
                    lines.append(f"      expected: {f.expected}")
                if f.actual:
                    who = "kernel:" if self.profile == "kernel" else "synack:"
                    lines.extend(
                        f"      {who:<9} {a}" if i == 0 else f"                {a}"
                        for i, a in enumerate(f.actual.splitlines())
                    )
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
    tracer: Callable[[TraceRecord], None] | None = None
    #: Receives every packet in and out: ``(packet, seconds, comment)``, if set.
    capture: Callable[[bytes, float, str], None] | None = None
    #: Keep every packet the target sent (as :data:`OutRecord`) and every call's outcome
    #: in the result (the differential fuzzer compares them between targets).
    record: bool = False
    #: ``ipv4`` (the default), ``ipv4-mapped-ipv6`` or ``ipv6``: the family a script runs
    #: in unless it has an ``--ip_version`` line of its own.
    ip_version: str | None = None
