"""The analysis model of a run: :class:`Run` with its hosts and every :class:`Seg`
matched up from the trace (send time, arrival or loss, relative numbers, and a
snapshot of both ends after it was sent).  Diagrams, plots and the report are
built on it."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..tcp.seq import MASK
from ..wire.ipv6 import conn_hosts
from ..wire.segment import ACK, FIN, RST, SYN
from .schema import TraceRecord
from .segment import seg_label
from .words import CONCEPT_ID


def conn_ips(name: str) -> tuple[str, str]:
    """(local IP, remote IP) of a connection name ``"a.b.c.d:p>e.f.g.h:q"`` (IPv6
    bracketed, ``[2001:db8::1]:p>...``; the text returned has no brackets)."""
    return conn_hosts(name)


def reverse(name: str) -> str:
    local, _, remote = name.partition(">")
    return f"{remote}>{local}"


def guess_roles(records: Iterable[TraceRecord]) -> dict[str, str]:
    """IP -> "client"/"server": the first active opener is the client."""
    roles: dict[str, str] = {}
    ips: list[str] = []
    for r in records:
        name = r.get("conn")
        if r["ev"] == "open" and name:
            lip, rip = conn_ips(name)
            if not roles:
                if r.get("mode") == "active":
                    roles = {lip: "client", rip: "server"}
                else:
                    roles = {rip: "client", lip: "server"}
        if r["ev"] == "net_drop" or r["ev"] == "net_inject":
            for ip in (r.get("src"), r.get("dst")):
                if ip and ip not in ips:
                    ips.append(ip)
        if name:
            for ip in conn_ips(name):
                if ip not in ips:
                    ips.append(ip)
    for ip in ips:
        roles.setdefault(ip, f"host{len(roles) + 1}")
    return roles


@dataclass
class Seg:
    """One segment on the wire, matched up from the trace."""

    index: int
    src: str
    dst: str
    conn: str
    flags: int
    seq: int
    ack: int
    len: int
    win: int
    mss: int | None
    why: str
    t: float | None
    t_arrive: float | None = None
    lost: str | None = None
    injected: str | None = None
    duplicate_of: int | None = None
    rel_seq: int | None = None
    rel_ack: int | None = None
    send_rec: int | None = None
    arrive_rec: int | None = None
    sack: list[tuple[int, int]] = field(default_factory=list)
    tsval: int | None = None
    #: the urgent pointer, on segments with URG
    urg: int | None = None
    text: str = ""
    concepts: list[str] = field(default_factory=list)
    rfc: str = ""
    snapshot: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the window in bytes: ``win`` shifted by the sender's window scale (RFC 7323 §2.3)
    wnd: int = 0
    sack_ok: bool = False
    wscale: int | None = None
    tsecr: int | None = None

    @property
    def retransmit(self) -> bool:
        return self.why.startswith("retransmit")

    @property
    def kind(self) -> str:
        f = self.flags
        if f & RST:
            return "RST"
        if f & SYN:
            return "SYN-ACK" if f & ACK else "SYN"
        if f & FIN:
            return "FIN"
        if self.why.startswith("zero-window probe"):
            return "probe"
        return "data" if self.len else "ACK"

    def label(self, absolute: bool = False) -> str:
        """The segment as every view shows it (:func:`seg_label`)."""
        seq = self.seq if absolute or self.rel_seq is None else self.rel_seq
        ack = self.ack if absolute or self.rel_ack is None else self.rel_ack
        ts = (self.tsval, self.tsecr or 0) if self.tsval is not None else None
        return seg_label(
            self.flags,
            seq,
            ack,
            self.len,
            self.wnd,
            self.mss,
            self.urg,
            sack_ok=self.sack_ok,
            wscale=self.wscale,
            ts=ts,
            sack=self.sack_blocks(absolute),
        )

    def sack_blocks(self, absolute: bool = False) -> list[tuple[int, int]]:
        """The SACK blocks, relative to the peer's ISN (as ``ack``) unless ``absolute``."""
        if absolute or self.rel_ack is None:
            return list(self.sack)
        irs = (self.ack - self.rel_ack) & MASK
        return [((a - irs) & MASK, (b - irs) & MASK) for a, b in self.sack]

    @property
    def t_sort(self) -> float:
        if self.t is not None:
            return self.t
        return self.t_arrive if self.t_arrive is not None else 0.0


@dataclass
class Run:
    """A trace, analysed: hosts (IP -> role), segments and the records themselves."""

    records: list[TraceRecord]
    roles: dict[str, str]
    hosts: list[str]
    segments: list[Seg]
    #: per record index: the segment index it sends or receives, if any.
    rec_seg: dict[int, int]
    #: per record index: both ends' snapshot after that record.
    snapshots: list[dict[str, dict[str, Any]]]

    def role(self, ip: str) -> str:
        return self.roles.get(ip, ip)

    @property
    def concepts(self) -> list[str]:
        """Every concept ID that the records or the narration mention, sorted."""
        found: set[str] = set()
        for r in self.records:
            fields: Mapping[str, object] = r  # any kind: the text fields some kinds have
            for key in ("concept", "why", "text"):
                v = fields.get(key)
                if isinstance(v, str):
                    found.update(f"C{m}" for m in CONCEPT_ID.findall(v))
        for s in self.segments:
            found.update(s.concepts)
        return sorted(found, key=lambda c: int(c[1:]))


class _Host:
    __slots__ = (
        "conn",
        "cwnd",
        "flight",
        "irs",
        "iss",
        "peer_wnd",
        "rcv_wnd",
        "rto",
        "srtt",
        "ssthresh",
        "state",
    )

    def __init__(self) -> None:
        self.state = "CLOSED"
        self.conn = ""
        self.rcv_wnd: int | None = None
        self.peer_wnd: int | None = None
        self.flight = 0
        self.cwnd: int | None = None
        self.ssthresh: int | None = None
        self.srtt: float | None = None
        self.rto: float | None = None
        self.iss: int | None = None
        self.irs: int | None = None

    def snap(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "conn": self.conn,
            "rcv_wnd": self.rcv_wnd,
            "peer_wnd": self.peer_wnd,
            "in_flight": self.flight,
            "cwnd": self.cwnd,
            "ssthresh": self.ssthresh,
            "srtt": self.srtt,
            "rto": self.rto,
        }


def rebase(records: Iterable[TraceRecord]) -> list[TraceRecord]:
    """The records with times counted from the command's start when the trace comes
    from a real link (its first record is ``{"ev": "run", "clock": "wall"}`` at the
    start, on the event loop's clock); a simulator's trace is returned as it is."""
    recs = list(records)
    if recs and recs[0]["ev"] == "run" and recs[0].get("clock") == "wall":
        t0 = float(recs[0]["t"])
        return [_shifted(r, t0) for r in recs]
    return recs


def _shifted(r: TraceRecord, t0: float) -> TraceRecord:
    """A copy of ``r`` at ``t - t0``."""
    out = r.copy()
    out["t"] = float(r["t"]) - t0
    return out


def analyze(records: Iterable[TraceRecord], roles: dict[str, str] | None = None) -> Run:
    """Match sends, arrivals, losses and injections; compute relative numbers and snapshots."""
    recs = rebase(records)
    roles = dict(roles) if roles else guess_roles(recs)
    hosts: list[str] = []

    def host(ip: str) -> str:
        if ip not in hosts:
            hosts.append(ip)
        roles.setdefault(ip, ip)
        return ip

    for ip in roles:
        host(ip)
    segs: list[Seg] = []
    rec_seg: dict[int, int] = {}
    isn: dict[str, tuple[int | None, int | None]] = {}
    waiting: dict[tuple[str, int, int, int, int], deque[int]] = {}
    injected: dict[tuple[str, int, int, int, int], deque[int]] = {}
    by_key_done: dict[tuple[str, int, int, int, int], int] = {}

    def new_seg(**kw: Any) -> Seg:
        s = Seg(index=len(segs), **kw)
        segs.append(s)
        return s

    # Pass 1: segments, arrivals, losses.
    for i, r in enumerate(recs):
        name = r.get("conn") or ""
        if r["ev"] == "open" and name:
            isn[name] = (r.get("iss"), r.get("irs"))
            lip, rip = conn_ips(name)
            host(lip)
            host(rip)
            if r.get("mode") == "passive" and r.get("irs") is not None:
                # The SYN that created this connection arrived now.
                key = (name, r["irs"], 0, SYN, 0)
                j = _pop(waiting, key)
                if j is None:
                    j = _pop(injected, key)
                if j is not None:
                    segs[j].t_arrive = r["t"]
                    segs[j].arrive_rec = i
                    rec_seg[i] = j
        elif r["ev"] == "seg":
            lip, rip = conn_ips(name)
            host(lip)
            host(rip)
            if r.get("iss") is not None:
                isn[name] = (r["iss"], r.get("irs"))
            sack = [tuple(b) for b in r.get("sack") or []]
            if r.get("dir") == "out":
                s = new_seg(
                    src=lip,
                    dst=rip,
                    conn=name,
                    flags=r["flags"],
                    seq=r["seq"],
                    ack=r["ack"],
                    len=r["len"],
                    win=r["win"],
                    mss=r.get("mss"),
                    why=r.get("why") or "",
                    t=r["t"],
                    send_rec=i,
                    sack=sack,
                    tsval=r.get("tsval"),
                    urg=r.get("urg"),
                    sack_ok=bool(r.get("sack_permitted")),
                    wscale=r.get("wscale"),
                    tsecr=r.get("tsecr"),
                )
                rec_seg[i] = s.index
                key = (reverse(name), r["seq"], r["ack"], r["flags"], r["len"])
                waiting.setdefault(key, deque()).append(s.index)
            else:
                key = (name, r["seq"], r["ack"], r["flags"], r["len"])
                j = _pop(waiting, key)
                if j is None:
                    j = _pop(injected, key)
                if j is not None:
                    segs[j].t_arrive = r["t"]
                    segs[j].arrive_rec = i
                    by_key_done[key] = j
                else:
                    orig = by_key_done.get(key)
                    s = new_seg(
                        src=rip,
                        dst=lip,
                        conn=reverse(name),
                        flags=r["flags"],
                        seq=r["seq"],
                        ack=r["ack"],
                        len=r["len"],
                        win=r["win"],
                        mss=r.get("mss"),
                        why="",
                        t=None,
                        t_arrive=r["t"],
                        arrive_rec=i,
                        duplicate_of=orig,
                        sack=sack,
                        tsval=r.get("tsval"),
                        urg=r.get("urg"),
                        sack_ok=bool(r.get("sack_permitted")),
                        wscale=r.get("wscale"),
                        tsecr=r.get("tsecr"),
                    )
                    if orig is not None:
                        s.t = segs[orig].t
                    j = s.index
                rec_seg[i] = j
        elif r["ev"] == "net_inject" and r.get("sport") is not None:
            # a TCP packet: sport comes with dport, flags, seq, ack and len (docs/trace.md)
            host(r["src"])
            host(r["dst"])
            name_out = f"{r['src']}:{r['sport']}>{r['dst']}:{r['dport']}"
            s = new_seg(
                src=r["src"],
                dst=r["dst"],
                conn=name_out,
                flags=r["flags"],
                seq=r["seq"],
                ack=r["ack"],
                len=r["len"],
                win=r.get("win", 0),
                mss=None,
                why="",
                t=r["t"],
                send_rec=i,
                injected=r.get("why") or "injected by the scenario",
            )
            rec_seg[i] = s.index
            injected.setdefault(
                (reverse(name_out), r["seq"], r["ack"], r["flags"], r["len"]), deque()
            ).append(s.index)
        elif r["ev"] == "net_drop":
            for s in reversed(segs):
                if (
                    s.lost is None
                    and s.t_arrive is None
                    and s.src == r.get("src")
                    and s.dst == r.get("dst")
                    and s.seq == r.get("seq")
                    and s.flags == r.get("flags")
                    and s.len == r.get("len")
                    and (r.get("sport") is None or s.conn.split(">")[0].endswith(f":{r['sport']}"))
                ):
                    s.lost = str(r.get("reason") or "lost")
                    key = (reverse(s.conn), s.seq, s.ack, s.flags, s.len)
                    q = waiting.get(key) or injected.get(key)
                    if q and s.index in q:
                        q.remove(s.index)
                    break

    # Arrival estimates for delivered segments nobody logged receiving.
    flights: dict[tuple[str, str], list[float]] = {}
    for s in segs:
        if s.t is not None and s.t_arrive is not None and s.duplicate_of is None:
            flights.setdefault((s.src, s.dst), []).append(s.t_arrive - s.t)
    for s in segs:
        if s.t is not None and s.t_arrive is None and s.lost is None:
            d = flights.get((s.src, s.dst)) or flights.get((s.dst, s.src))
            if d:
                s.t_arrive = s.t + statistics.median(d)

    # Relative numbers: seq against the sender's ISS, ack against its IRS.
    for s in segs:
        iss, irs = isn.get(s.conn, (None, None))
        if iss is None:
            riss, rirs = isn.get(reverse(s.conn), (None, None))
            iss, irs = rirs, riss
        if iss is not None:
            s.rel_seq = (s.seq - iss) & MASK
        if irs is not None and s.flags & ACK:
            s.rel_ack = (s.ack - irs) & MASK

    shifts = window_shifts(recs)
    for s in segs:
        s.wnd = s.win if s.flags & SYN else s.win << shifts.get(s.conn, 0)
    snapshots = _snapshots(recs, segs, rec_seg, hosts, shifts)
    return Run(recs, roles, hosts, segs, rec_seg, snapshots)


def window_shifts(records: Iterable[TraceRecord]) -> dict[str, int]:
    """Per sending connection name, the window scale shift in force (RFC 7323 §2.2):
    the shift it announced on its SYN, if both SYNs carried the option."""
    announced: dict[str, int] = {}
    for r in records:
        if r["ev"] != "seg":
            continue
        wscale, conn = r.get("wscale"), r["conn"]
        if wscale is not None and r["flags"] & SYN and conn is not None:
            name = conn if r.get("dir") == "out" else reverse(conn)
            announced[name] = int(wscale)
    return {n: v for n, v in announced.items() if reverse(n) in announced}


def _pop(table: dict[Any, deque[int]], key: Any) -> int | None:
    q = table.get(key)
    if not q:
        return None
    j = q.popleft()
    if not q:
        del table[key]
    return j


def _snapshots(
    recs: list[TraceRecord],
    segs: list[Seg],
    rec_seg: dict[int, int],
    hosts: list[str],
    shifts: dict[str, int],
) -> list[dict[str, dict[str, Any]]]:
    state = {ip: _Host() for ip in hosts}
    for r in recs:  # a host starts in the state its first transition leaves (LISTEN)
        conn = r.get("conn")
        if r["ev"] == "state" and conn:
            h = state.get(conn_ips(conn)[0])
            if h is not None and not h.conn:
                h.state, h.conn = r["old"], conn
    for h in state.values():
        h.conn = ""
    high: dict[str, int] = {}
    acked: dict[str, int] = {}
    out: list[dict[str, dict[str, Any]]] = []
    for i, r in enumerate(recs):
        name = r.get("conn") or ""
        if name and r["ev"] in ("state", "seg", "open", "cc", "rtt"):
            lip = conn_ips(name)[0]
            h = state.get(lip)
            if h is not None:
                if r["ev"] == "state":
                    h.state = r["new"]
                    h.conn = name
                elif r["ev"] == "open":
                    h.conn = name
                    h.flight = 0
                    h.cwnd = h.ssthresh = None
                    high.pop(name, None)
                    acked.pop(name, None)
                elif r["ev"] == "cc":
                    h.cwnd, h.ssthresh = r.get("cwnd"), r.get("ssthresh")
                elif r["ev"] == "rtt":
                    h.srtt, h.rto = r.get("srtt"), r.get("rto")
                elif r["ev"] == "seg" and r.get("iss") is not None:
                    syn = r["flags"] & SYN
                    if r["dir"] == "out":
                        h.rcv_wnd = r["win"] if syn else r["win"] << shifts.get(name, 0)
                        f = r["flags"]
                        end = (
                            r["seq"] + r["len"] + (1 if f & SYN else 0) + (1 if f & FIN else 0)
                        ) & MASK
                        if name not in high or _after(end, high[name]):
                            high[name] = end
                    else:
                        h.peer_wnd = r["win"] if syn else r["win"] << shifts.get(reverse(name), 0)
                        if r["flags"] & ACK and (
                            name not in acked or _after(r["ack"], acked[name])
                        ):
                            acked[name] = r["ack"]
                    if name in high:
                        base = acked.get(name, r.get("iss") or 0)
                        h.flight = max((high[name] - base) & MASK, 0)
                        if h.flight >= 1 << 31:
                            h.flight = 0
        snap = {ip: h.snap() for ip, h in state.items()}
        out.append(snap)
        j = rec_seg.get(i)
        if j is not None and segs[j].send_rec == i:
            segs[j].snapshot = snap
    for s in segs:
        if not s.snapshot and s.arrive_rec is not None:
            s.snapshot = out[s.arrive_rec]
    return out


def _after(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < 1 << 31
