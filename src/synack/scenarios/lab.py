"""The guided-lab machinery: :class:`Lab` (a named, deterministic script on
:class:`synack.scenarios.scenario.Scenario`: seeded network, one-way delay 50 ms,
MSL 1 s so TIME-WAIT lasts 2 s), :class:`LabRun` (the trace with ``lab`` records
narrating the set-up and the outcome, what the applications saw, and a capture of
every packet), :class:`LabScript` (what a lab's script builds on) and
:func:`write_outputs` (the explained timeline, the sequence diagram in SVG and
Mermaid, the plots, the pcap and pcapng files, the trace and the report page).
The labs themselves are in :mod:`synack.scenarios.labs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..stack import Stack
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..trace.capture import MemoryWriter, NetworkCapture
from ..trace.schema import CcRecord, LabRecord, TraceRecord
from .scenario import (
    CLIENT_IP,
    SERVER_IP,
    Scenario,
)

MSL = 1.0
ROLES = {CLIENT_IP: "client", SERVER_IP: "server"}
#: Whether the lab being run is over IPv6 (:meth:`Lab.run`); every lab's scenario follows.
LAB_IPV6: ContextVar[bool] = ContextVar("synack_lab_ipv6", default=False)


class LabUnavailable(RuntimeError):
    """The lab needs a feature the stack does not have yet."""


@dataclass
class LabRun:
    """The result of one lab: trace, facts about the outcome, captured packets."""

    lab: Lab
    trace: list[TraceRecord]
    facts: dict[str, Any]
    packets: MemoryWriter
    roles: dict[str, str] = field(default_factory=lambda: dict(ROLES))


@dataclass(frozen=True)
class Lab:
    """A named guided scenario and the concept IDs it demonstrates."""

    name: str
    title: str
    concepts: tuple[str, ...]
    rfc: str
    summary: str
    script: Callable[[Lab], LabRun]
    requires: str = ""

    def run(self, *, ipv6: bool = False) -> LabRun:
        """Run the scenario (deterministic: same result every time); ``ipv6`` runs it
        between 2001:db8::1 and 2001:db8::2 instead of 10.0.0.1 and 10.0.0.2."""
        token = LAB_IPV6.set(ipv6)
        try:
            return self.script(self)
        finally:
            LAB_IPV6.reset(token)

    @property
    def available(self) -> bool:
        return not self.requires or has_feature(self.requires)


#: The labs teach NewReno (RFC 5681: halve on loss, one segment per RTT after), the
#: algorithm the textbooks and the concept notes describe; real networks default to
#: CUBIC (TcpConfig).
LAB_CC = "newreno"


def lab_config(**changes: Any) -> TcpConfig:
    """TcpConfig(msl=MSL) with ``changes``, ignoring fields this build does not have."""
    known = getattr(TcpConfig, "__dataclass_fields__", {})
    return TcpConfig(msl=MSL, congestion_control=LAB_CC).replace(
        **{k: v for k, v in changes.items() if k in known}
    )


def has_feature(name: str) -> bool:
    if name == "timestamps":
        return "timestamps" in getattr(TcpConfig, "__dataclass_fields__", {})
    return False


# ---------------------------------------------------------------- harness pieces
class CongestionSampler:
    """Adds ``cc`` records (``event: "sample"``) whenever a connection's cwnd or
    ssthresh differs from the last value in the trace, so plots have the whole
    curve even where the core only traces loss events."""

    def __init__(self, trace: list[TraceRecord], stacks: list[Stack]) -> None:
        self.trace = trace
        self.stacks = stacks
        self._last: dict[str, tuple[int, int | None]] = {}
        self._pos = 0

    def __call__(self, now: float) -> None:
        trace = self.trace
        for r in trace[self._pos :]:
            if r["ev"] == "cc" and (name := r.get("conn")):
                self._last[name] = (r.get("cwnd"), r.get("ssthresh"))
        for stack in self.stacks:
            for conn in stack.connections:
                val = (conn.cwnd, conn.ssthresh)
                if self._last.get(conn.name) != val:
                    self._last[conn.name] = val
                    sample: CcRecord = {
                        "t": now,
                        "ev": "cc",
                        "conn": conn.name,
                        "event": "sample",
                        "cwnd": val[0],
                        "ssthresh": val[1],
                    }
                    trace.append(sample)
        self._pos = len(trace)


class LabScript:
    """The scenario plus its capture, sampler and lab notes."""

    def __init__(self, lab: Lab, seed: int, **kw: Any) -> None:
        kw.setdefault("config", TcpConfig(msl=MSL, congestion_control=LAB_CC))
        kw.setdefault("ipv6", LAB_IPV6.get())
        self.lab = lab
        self.sc = Scenario(seed, **kw)
        self.packets = MemoryWriter()
        self.capture = NetworkCapture(self.packets, self.sc.trace, point="send")
        self.sc.net.add_tap(self.capture)
        self.sc.net.add_process(CongestionSampler(self.sc.trace, [self.sc.client, self.sc.server]))
        self.facts: dict[str, Any] = {}
        self.note(f"lab {lab.name}: {lab.summary}", list(lab.concepts), lab.rfc)

    def note(self, text: str, concepts: list[str] | None = None, rfc: str = "") -> None:
        rec: LabRecord = {
            "t": self.sc.now,
            "ev": "lab",
            "conn": None,
            "text": text,
            "concepts": concepts or [],
            "rfc": rfc,
        }
        self.sc.trace.append(rec)

    def note_at(
        self, t: float, text: str, concepts: list[str] | None = None, rfc: str = ""
    ) -> None:
        self.sc.net.call_at(t, lambda now: self.note(text, concepts, rfc))

    def at(self, t: float, fn: Callable[[float], Any]) -> None:
        self.sc.net.call_at(t, fn)

    def open_pair(self, port: int = 80) -> tuple[Connection, Connection]:
        """Client connects at t=0; both ends ESTABLISHED when this returns (0.19 s)."""
        lst = self.sc.server.listen(port)
        c = self.sc.client.connect(self.sc.server_ip, port, now=self.sc.now)
        self.sc.net.kick()
        self.sc.run(until=0.19)
        srv = lst.accept()
        assert srv is not None
        return c, srv

    def done(self) -> LabRun:
        self.capture.close()
        return LabRun(self.lab, self.sc.trace, self.facts, self.packets, self.roles)

    @property
    def roles(self) -> dict[str, str]:
        return {self.sc.client_ip: "client", self.sc.server_ip: "server"}


# ------------------------------------------------------------------------ outputs
def explained_lines(run: LabRun, *, absolute: bool = False, verbose: bool = False) -> list[str]:
    """The explained timeline of a lab run, as printed lines."""
    from ..trace.narrate import render

    return render(run.trace, run.roles, absolute=absolute, verbose=verbose)


def json_lines(records: Iterable[TraceRecord]) -> str:
    """Trace records as JSON lines (the ``--trace`` format)."""
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def write_outputs(
    run: LabRun,
    outdir: str | Path,
    *,
    absolute: bool = False,
    plots: bool = True,
    report: bool = True,
) -> tuple[list[Path], str]:
    """Write the lab's files into ``outdir``; returns (files, message about plots)."""
    from ..trace.diagram import render_mermaid, render_svg
    from ..trace.model import analyze
    from ..trace.plots import write_plots

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    analysed = analyze(run.trace, run.roles)
    lines = explained_lines(run, absolute=absolute)
    (out / "explain.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "trace.jsonl").write_text(json_lines(run.trace), encoding="utf-8")
    (out / "diagram.svg").write_text(
        render_svg(analysed, absolute=absolute, title=f"{run.lab.name}: {run.lab.title}"),
        encoding="utf-8",
    )
    (out / "diagram.mmd").write_text(render_mermaid(analysed, absolute=absolute), encoding="utf-8")
    files += [out / n for n in ("explain.txt", "trace.jsonl", "diagram.svg", "diagram.mmd")]
    run.packets.save(out / "capture.pcapng")
    run.packets.save(out / "capture.pcap")
    files += [out / "capture.pcapng", out / "capture.pcap"]
    message = ""
    if plots:
        written, message = write_plots(analysed, out, title=f"{run.lab.name}: time-sequence")
        files += written
    if report:
        from ..trace.report import write_report

        write_report(
            run.trace,
            out / "report.html",
            roles=run.roles,
            title=f"synack lab {run.lab.name}: {run.lab.title}",
            absolute=absolute,
        )
        files.append(out / "report.html")
    return files, message
