"""Render a structured trace as a readable timeline, tagged with concept IDs.

Input is the list of trace records a stack's tracer collected (see
``docs/trace.md``).  Each output line is one thing that happened: a segment
put on the wire (relative sequence numbers by default), a segment the network
lost, a state change, a timer, an RTT sample, a dropped input, an error.
Where a line illustrates a concept of ``docs/concepts.md`` it ends with its
ID, so a reader can look the idea up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..wire.ipv6 import conn_hosts
from ..wire.segment import ACK, FIN, RST, SYN, flags_str
from .schema import SegRecord, TraceRecord
from .segment import seg_label
from .words import CA_SHORT, drop_name, net_drop_words, note_words, timer_name

_CONCEPT_IN_TEXT = re.compile(r"\((C\d+)\)")


@dataclass(slots=True)
class Line:
    """One rendered event: time, who, what, and the concept it shows."""

    t: float
    who: str
    text: str
    concept: str = ""
    kind: str = ""

    def render(self) -> str:
        tag = f"  [{self.concept}]" if self.concept else ""
        return f"{self.t:10.4f}s  {self.who:<7} {self.text}{tag}"


class Timeline:
    """Turns trace records into :class:`Line` objects.

    ``roles`` maps an IPv4 address (dotted) to a label such as "client".
    ``absolute`` shows raw 32-bit sequence numbers instead of relative ones.
    """

    def __init__(
        self, roles: dict[str, str] | None = None, *, absolute: bool = False, verbose: bool = False
    ) -> None:
        self.roles = roles or {}
        self.absolute = absolute
        self.verbose = verbose
        self._isn: dict[str, tuple[int | None, int | None]] = {}
        self._seen_fin: set[str] = set()

    def lines(self, records: Iterable[TraceRecord]) -> Iterator[Line]:
        for r in records:
            line = self.line(r)
            if line is not None:
                yield line

    def line(self, r: TraceRecord) -> Line | None:
        t = float(r["t"])
        who = self._who(r.get("conn"))
        if r["ev"] == "seg":
            return self._segment(r, t, who)
        if r["ev"] == "state":
            why = str(r.get("why") or "")
            # The close is recorded when the application asks; the FIN itself leaves after
            # the data queued before it (the segment lines show when).
            why = re.sub(r"\b(our )?FIN sent\b", "FIN queued after any data still to send", why)
            return Line(
                t, who, f"state {r['old']} -> {r['new']}: {why}", r.get("concept", ""), "state"
            )
        if r["ev"] == "net_drop":
            src = self.roles.get(r["src"], r["src"])
            dst = self.roles.get(r["dst"], r["dst"])
            bits = r.get("flags")
            flags = flags_str(bits) if bits is not None else "?"
            return Line(
                t,
                "network",
                f"LOST {src} -> {dst} [{flags}] len={r.get('len')} "
                f"({net_drop_words(r.get('reason'))})",
                "",
                "net_drop",
            )
        if r["ev"] == "timer":
            extra = ""
            retries, rto = r.get("retries"), r.get("rto")
            if retries is not None and rto is not None:
                extra = f" (attempt {retries}, next timeout {rto:.3f}s)"
            return Line(
                t, who, f"{timer_name(r['timer'])} fired{extra}", r.get("concept", ""), "timer"
            )
        if r["ev"] == "rtt":
            return Line(
                t,
                who,
                f"RTT sample {r['sample'] * 1000:.1f} ms -> SRTT "
                f"{r['srtt'] * 1000:.1f} ms, RTTVAR {r['rttvar'] * 1000:.1f} ms, "
                f"RTO {r['rto']:.3f}s",
                "C2",
                "rtt",
            )
        if r["ev"] == "drop":
            return Line(
                t,
                who,
                f"discarded incoming segment: {drop_name(r['reason'])}",
                r.get("concept", ""),
                "drop",
            )
        if r["ev"] == "note":
            return Line(t, who, note_words(r["text"]), r.get("concept", ""), "note")
        if r["ev"] == "ca_state":
            move = f"stays {r['new']}" if r["old"] == r["new"] else f"{r['old']} → {r['new']}"
            short = CA_SHORT.get(r["trigger"], str(r.get("why") or r["trigger"]))
            concept = {"loss_marked": "C18", "rto": "C2", "exit": "C18"}.get(r["trigger"], "")
            return Line(
                t, who, f"loss state {move}: {short}; cwnd {r.get('cwnd')}", concept, "ca_state"
            )
        if r["ev"] == "error":
            return Line(t, who, f"ERROR {r['errno']}: {r['message']}", "C3", "error")
        if r["ev"] == "cc" and self.verbose:
            # ssthresh is not on BBR's state records (docs/trace.md, trace.schema.CcRecord)
            extra = f" ssthresh={r.get('ssthresh')}" if "ssthresh" in r else ""
            if r["event"] == "bbr_state":
                extra = f" BBR {r.get('old')} → {r.get('new')}"
            return Line(t, who, f"congestion: {r['event']} cwnd={r['cwnd']}{extra}", "", "cc")
        if r["ev"] == "open":
            name = r.get("conn") or ""
            self._isn[name] = (r.get("iss"), r.get("irs"))
            if self.verbose:
                return Line(t, who, f"{r['mode']} open, ISS={r['iss']}", "C15", "open")
        return None

    def _who(self, conn: str | None) -> str:
        if not conn:
            return "stack"
        local = conn_hosts(conn)[0]
        return self.roles.get(local, local)

    def _segment(self, r: SegRecord, t: float, who: str) -> Line | None:
        if r["dir"] != "out" and not self.verbose:
            return None
        name = r["conn"] or ""  # a connection's (the loader checks)
        flags = r["flags"]
        iss, irs = r.get("iss"), r.get("irs")
        if iss is None:
            iss, irs = self._isn.get(name, (None, None))
        else:
            self._isn[name] = (iss, irs)
        seq, ack = r["seq"], r["ack"]
        if not self.absolute and iss is not None:
            seq = (seq - iss) & 0xFFFFFFFF
            if irs is not None and flags & ACK:
                ack = (ack - irs) & 0xFFFFFFFF
        remote = name.split(">", 1)[1]
        peer = self.roles.get(conn_hosts(name)[1], remote)
        sack = []
        for left, right in r.get("sack") or ():
            if not self.absolute and irs is not None:
                left, right = (left - irs) & 0xFFFFFFFF, (right - irs) & 0xFFFFFFFF
            sack.append((left, right))
        tsval = r.get("tsval")
        ts = (tsval, r.get("tsecr") or 0) if tsval is not None else None
        label = seg_label(
            flags,
            seq,
            ack,
            r["len"],
            r.get("wnd", r["win"]),
            r.get("mss"),
            r.get("urg"),
            sack_ok=bool(r.get("sack_permitted")),
            wscale=r.get("wscale"),
            ts=ts,
            sack=sack,
        )
        why = r.get("why") or ""
        concept, meaning = self._segment_meaning(r, name)
        text = f"-> {peer:<7} {label}"
        if why:
            text += f"  {why}"
        elif meaning:
            text += f"  {meaning}"
        return Line(t, who, text, concept, "seg")

    def _segment_meaning(self, r: SegRecord, name: str) -> tuple[str, str]:
        flags = r["flags"]
        why = r.get("why") or ""
        m = _CONCEPT_IN_TEXT.search(why)
        if flags & RST:
            return (m.group(1) if m else "C19"), "reset: never acknowledged, never resent"
        retrans = why.startswith("retransmit")
        if flags & SYN:
            if retrans:
                return "C17", ""
            return (
                ("C7", "SYN-ACK: our ISN, ack = their ISN + 1")
                if flags & ACK
                else ("C6", "SYN: random initial sequence number")
            )
        if flags & FIN:
            if retrans:
                return "C17", ""
            first = name not in self._seen_fin
            self._seen_fin.add(name)
            if not first:
                return "C17", "FIN again"
            if r.get("state") == "LAST-ACK":
                return "C12", "FIN: passive side closes its direction"
            return "C10", "FIN: no more data from this side"
        if r["len"]:
            return ("C18", "") if retrans else ("C1", "")
        if r["win"] == 0:
            return "C4", "ACK advertising a zero window"
        if r.get("sack"):
            return "C14", "duplicate ACK: SACK blocks name what arrived past the hole"
        rel_seq = r["seq"] - (self._isn.get(name, (0, 0))[0] or 0)
        rel_ack = r["ack"] - (self._isn.get(name, (0, 0))[1] or 0)
        if why.startswith("challenge"):
            return "", ""
        if r.get("state") == "TIME-WAIT":
            return "C13", "ACK of the peer's FIN"
        if (rel_seq & 0xFFFFFFFF) == 1 and (rel_ack & 0xFFFFFFFF) == 1:
            return "C8", "ACK of the SYN-ACK: handshake complete"
        return "C20", "pure ACK (never acknowledged itself)"


def render(
    records: Iterable[TraceRecord],
    roles: dict[str, str] | None = None,
    *,
    absolute: bool = False,
    verbose: bool = False,
) -> list[str]:
    """Render every record to text lines."""
    tl = Timeline(roles, absolute=absolute, verbose=verbose)
    return [line.render() for line in tl.lines(records)]
