"""Narrate a trace in plain language: what each segment is and why things happened.

:func:`analyze` turns the records of ``docs/trace.md`` into a :class:`Run`:
the hosts, every segment with its send time, arrival time or loss, its
relative sequence numbers and a snapshot of both ends (state, windows, bytes
in flight, cwnd) after it was sent.  :class:`Explainer` then walks the records
and writes one :class:`Step` per event: a short header (as
:mod:`synack.timeline` prints it) and a sentence that says what the segment
is, why a state changed, why a segment was retransmitted, why an RST was
sent, each citing the concept ID of ``shared/concepts.md`` (C1-C27) and the
RFC section.  Diagrams (:mod:`synack.diagram`), plots and the report page are
built on the same :class:`Run`.

Sequence numbers are relative to each side's ISN by default (0 = the SYN),
absolute on request, as in Wireshark.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .wire.segment import ACK, FIN, PSH, RST, SYN, flags_str

MASK = 0xFFFFFFFF
_CONCEPT = re.compile(r"\bC(\d{1,2})\b")

#: (old, new) -> (what it means, RFC sections).
STATE_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("CLOSED", "SYN-SENT"): ("connect(): the SYN goes out with a fresh random ISN",
                             "RFC 9293 §3.5, §3.10.1"),
    ("LISTEN", "SYN-RECEIVED"): ("a SYN reached a listening port: answer SYN-ACK and wait for "
                                 "the final ACK; not connected yet", "RFC 9293 §3.10.7.2"),
    ("CLOSED", "SYN-RECEIVED"): ("a SYN reached a listening port: answer SYN-ACK and wait",
                                 "RFC 9293 §3.10.7.2"),
    ("SYN-SENT", "ESTABLISHED"): ("the SYN-ACK taught us the peer's ISN; we ACK it and may send "
                                  "data now", "RFC 9293 §3.10.7.3"),
    ("SYN-SENT", "SYN-RECEIVED"): ("simultaneous open: the peer's SYN crossed ours; answer "
                                   "SYN-ACK", "RFC 9293 §3.5 (figure 7)"),
    ("SYN-RECEIVED", "ESTABLISHED"): ("the final ACK arrived: both ends know both ISNs and "
                                      "that the other can send and receive",
                                      "RFC 9293 §3.10.7.4"),
    ("SYN-RECEIVED", "FIN-WAIT-1"): ("closed before the handshake finished: FIN queued",
                                     "RFC 9293 §3.10.4"),
    ("SYN-RECEIVED", "CLOSE-WAIT"): ("the peer's FIN came with the final ACK", "RFC 9293 §3.6"),
    ("ESTABLISHED", "FIN-WAIT-1"): ("the application closed its sending direction: FIN sent",
                                    "RFC 9293 §3.6, §3.10.4"),
    ("ESTABLISHED", "CLOSE-WAIT"): ("the peer's FIN: it will send no more, but we still may "
                                    "(half-close)", "RFC 9293 §3.6, §3.10.7.4"),
    ("FIN-WAIT-1", "FIN-WAIT-2"): ("our FIN is acknowledged: our direction is closed, the "
                                   "peer may still send (half-close)", "RFC 9293 §3.6"),
    ("FIN-WAIT-1", "CLOSING"): ("simultaneous close: the peer's FIN arrived before the ACK of "
                                "ours", "RFC 9293 §3.6 (figure 13)"),
    ("FIN-WAIT-1", "TIME-WAIT"): ("the peer's FIN and the ACK of ours together: wait 2*MSL",
                                  "RFC 9293 §3.6"),
    ("FIN-WAIT-2", "TIME-WAIT"): ("the peer's FIN: ACK it and wait 2*MSL, because that ACK may "
                                  "be lost and old duplicates must die out", "RFC 9293 §3.6"),
    ("CLOSING", "TIME-WAIT"): ("the ACK of our FIN: wait 2*MSL", "RFC 9293 §3.6"),
    ("CLOSE-WAIT", "LAST-ACK"): ("the application closed too: our FIN sent, waiting for its ACK",
                                 "RFC 9293 §3.6"),
    ("LAST-ACK", "CLOSED"): ("the ACK of our FIN: the connection is gone", "RFC 9293 §3.6"),
    ("TIME-WAIT", "CLOSED"): ("2*MSL elapsed without a retransmitted FIN: state freed",
                              "RFC 9293 §3.6"),
}

#: The RFC sections behind each close reason (the ``why`` of a ``state`` record).
CLOSE_RFC = {
    "RST received": "RFC 9293 §3.5.3",
    "RST sent": "RFC 9293 §3.10.5",
    "retransmissions exhausted": "RFC 9293 §3.8.3",
    "RST in answer to our SYN": "RFC 9293 §3.10.7.3",
    "ICMP": "RFC 1122 §4.2.3.9, RFC 5927",
    "final ACK never came": "RFC 9293 §3.8.3, §3.5",
    "closed before": "RFC 9293 §3.10.4",
}

DROP_TEXT: dict[str, tuple[str, str, str]] = {
    "duplicate": ("a duplicate of bytes already received: discarded, and ACKed again so the "
                  "sender learns what arrived", "C14", "RFC 9293 §3.10.7.4"),
    "out_of_window": ("outside the receive window: discarded (an old or stray segment cannot "
                      "enter this connection), answered by an ACK", "C14",
                      "RFC 9293 §3.10.7.4"),
    "rst_out_of_window": ("an RST outside the window: ignored (blind reset attempts fail)",
                          "C15", "RFC 5961 §3.2"),
    "rst_in_window_challenge": ("an RST in the window but not exactly at RCV.NXT: answered "
                                "with a challenge ACK instead of obeyed", "C15",
                                "RFC 5961 §3.2"),
    "syn_in_window_challenge": ("a SYN on a synchronised connection: challenge ACK", "",
                                "RFC 5961 §4.2"),
    "ack_unsent": ("it acknowledges data never sent: dropped and ACKed", "",
                   "RFC 9293 §3.10.7.4"),
    "ack_too_old": ("its ACK is too old: dropped", "", "RFC 5961 §5.2"),
    "no_ack": ("no ACK flag on a synchronised connection: dropped", "", "RFC 9293 §3.10.7.4"),
    "retransmitted_syn": ("the peer sent its SYN again, so our SYN-ACK was lost: resend it",
                          "C17", "RFC 9293 §3.10.7.4"),
    "bad_ack_syn_sent": ("a SYN-ACK that acknowledges nothing we sent (a stray): reset it",
                         "C27", "RFC 9293 §3.10.7.3"),
    "bad_ack_syn_received": ("an ACK that fits no SYN we sent: reset it", "",
                             "RFC 9293 §3.10.7.4"),
    "rst_no_connection": ("an RST for no connection: never answered (an RST is never "
                          "acknowledged)", "C19", "RFC 9293 §3.10.7.1"),
    "rst_to_listener": ("an RST to a listening port: ignored", "C19", "RFC 9293 §3.10.7.2"),
    "tcp_bad_checksum": ("the checksum does not match (corrupted on the way): discarded, the "
                         "sender will retransmit", "C1", "RFC 9293 §3.1"),
    "ip_bad_checksum": ("the IP header checksum does not match: discarded", "C1",
                        "RFC 791 §3.1"),
    "accept_queue_full": ("the accept queue is full: the final ACK is ignored, the SYN-ACK "
                          "will be resent", "C27", "RFC 9293 §3.10.7.2"),
    "syn_backlog_full": ("too many half-open connections: SYN dropped", "C27",
                         "RFC 4987 §3.2"),
    "data_after_fin": ("data after the peer's FIN: ignored", "C11", "RFC 9293 §3.10.7.4"),
    "paws": ("its timestamp is older than the last one seen (PAWS): an old duplicate from a "
             "previous wrap of the sequence space, discarded", "C16", "RFC 7323 §5"),
}

TIMER_TEXT: dict[str, tuple[str, str]] = {
    "rto": ("retransmission timer expired: nothing acknowledged within RTO; resend and double "
            "RTO (exponential backoff)", "RFC 6298 §5.4-5.6"),
    "persist": ("persist timer: the peer's window is zero (probe it with one byte) or too "
                "small to be worth a segment (send what fits, the SWS override)",
                "RFC 9293 §3.8.6.1, §3.8.6.2.1"),
    "delayed_ack": ("delayed-ACK timer: nothing else to carry the ACK, send it alone",
                    "RFC 9293 §3.8.6.3"),
    "time_wait": ("2*MSL elapsed in TIME-WAIT", "RFC 9293 §3.6"),
    "fin_wait_2": ("orphaned FIN-WAIT-2 gave up waiting for the peer's FIN",
                   "RFC 9293 §3.6 (as Linux tcp_fin_timeout)"),
    "keepalive": ("keep-alive timer: the connection was idle, probe the peer",
                  "RFC 9293 §3.8.4, RFC 1122 §4.2.3.6"),
    "rack_reorder": ("RACK reordering window expired: segments sent before the last one "
                     "acknowledged are now deemed lost", "RFC 8985 §6.2"),
    "tlp": ("tail loss probe", "RFC 8985 §7"),
}


def load_trace(source: str | Path | IO[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines trace (``--trace FILE``); blank lines are skipped."""
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as fh:
            return load_trace(fh)
    out = []
    for n, line in enumerate(source, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n}: not JSON: {exc.msg}") from None
        if not isinstance(rec, dict) or "ev" not in rec or "t" not in rec:
            raise ValueError(f"line {n}: not a trace record (needs 't' and 'ev')")
        out.append(rec)
    return out


def conn_ips(name: str) -> tuple[str, str]:
    """(local IP, remote IP) of a connection name ``"a.b.c.d:p>e.f.g.h:q"``."""
    local, _, remote = name.partition(">")
    return local.rsplit(":", 1)[0], remote.rsplit(":", 1)[0]


def reverse(name: str) -> str:
    local, _, remote = name.partition(">")
    return f"{remote}>{local}"


def guess_roles(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """IP -> "client"/"server": the first active opener is the client."""
    roles: dict[str, str] = {}
    ips: list[str] = []
    for r in records:
        name = r.get("conn")
        if r.get("ev") == "open" and name:
            lip, rip = conn_ips(name)
            if not roles:
                if r.get("mode") == "active":
                    roles = {lip: "client", rip: "server"}
                else:
                    roles = {rip: "client", lip: "server"}
        for key in ("src", "dst"):
            if r.get(key) and r[key] not in ips:
                ips.append(r[key])
        if name:
            for ip in conn_ips(name):
                if ip not in ips:
                    ips.append(ip)
    for ip in ips:
        roles.setdefault(ip, f"host{len(roles) + 1}")
    return roles


def seg_label(flags: int, seq: int, ack: int | None, length: int, win: int | None = None,
              mss: int | None = None, urg: int | None = None) -> str:
    """``[S.] seq=0 ack=1 len=0 win=65535 <mss 1460>``; ``urg=N`` (the urgent pointer,
    RFC 9293 §3.8.5) on segments with URG."""
    parts = [f"[{flags_str(flags)}]", f"seq={seq}"]
    if flags & ACK and ack is not None:
        parts.append(f"ack={ack}")
    parts.append(f"len={length}")
    if win is not None:
        parts.append(f"win={win}")
    if urg is not None:
        parts.append(f"urg={urg}")
    if mss:
        parts.append(f"<mss {mss}>")
    return " ".join(parts)


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
        seq = self.seq if absolute or self.rel_seq is None else self.rel_seq
        ack = self.ack if absolute or self.rel_ack is None else self.rel_ack
        return seg_label(self.flags, seq, ack, self.len, self.win, self.mss, self.urg)

    @property
    def t_sort(self) -> float:
        if self.t is not None:
            return self.t
        return self.t_arrive if self.t_arrive is not None else 0.0


@dataclass
class Run:
    """A trace, analysed: hosts (IP -> role), segments and the records themselves."""

    records: list[dict[str, Any]]
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
            for key in ("concept", "why", "text"):
                v = r.get(key)
                if isinstance(v, str):
                    found.update(f"C{m}" for m in _CONCEPT.findall(v))
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
        return {"state": self.state, "conn": self.conn, "rcv_wnd": self.rcv_wnd,
                "peer_wnd": self.peer_wnd, "in_flight": self.flight, "cwnd": self.cwnd,
                "ssthresh": self.ssthresh, "srtt": self.srtt, "rto": self.rto}


def analyze(records: Iterable[dict[str, Any]], roles: dict[str, str] | None = None) -> Run:
    """Match sends, arrivals, losses and injections; compute relative numbers and snapshots."""
    recs = list(records)
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
        ev = r.get("ev")
        name = r.get("conn") or ""
        if ev == "open" and name:
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
        elif ev == "seg":
            lip, rip = conn_ips(name)
            host(lip)
            host(rip)
            if r.get("iss") is not None:
                isn[name] = (r["iss"], r.get("irs"))
            sack = [tuple(b) for b in r.get("sack") or []]
            if r.get("dir") == "out":
                s = new_seg(src=lip, dst=rip, conn=name, flags=r["flags"], seq=r["seq"],
                            ack=r["ack"], len=r["len"], win=r["win"], mss=r.get("mss"),
                            why=r.get("why") or "", t=r["t"], send_rec=i,
                            sack=sack, tsval=r.get("tsval"), urg=r.get("urg"))
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
                    s = new_seg(src=rip, dst=lip, conn=reverse(name), flags=r["flags"],
                                seq=r["seq"], ack=r["ack"], len=r["len"], win=r["win"],
                                mss=r.get("mss"), why="", t=None, t_arrive=r["t"],
                                arrive_rec=i, duplicate_of=orig,
                                sack=sack, tsval=r.get("tsval"), urg=r.get("urg"))
                    if orig is not None:
                        s.t = segs[orig].t
                    j = s.index
                rec_seg[i] = j
        elif ev == "net_inject" and r.get("sport") is not None:
            host(r["src"])
            host(r["dst"])
            name_out = f"{r['src']}:{r['sport']}>{r['dst']}:{r['dport']}"
            s = new_seg(src=r["src"], dst=r["dst"], conn=name_out, flags=r["flags"],
                        seq=r["seq"], ack=r["ack"], len=r["len"], win=r.get("win", 0), mss=None,
                        why="", t=r["t"], send_rec=i,
                        injected=r.get("why") or "injected by the scenario")
            rec_seg[i] = s.index
            injected.setdefault((reverse(name_out), r["seq"], r["ack"], r["flags"], r["len"]),
                                deque()).append(s.index)
        elif ev == "net_drop":
            for s in reversed(segs):
                if (s.lost is None and s.t_arrive is None and s.src == r.get("src")
                        and s.dst == r.get("dst") and s.seq == r.get("seq")
                        and s.flags == r.get("flags") and s.len == r.get("len")
                        and (r.get("sport") is None or s.conn.split(">")[0].endswith(
                            f":{r['sport']}"))):
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


def window_shifts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Per sending connection name, the window scale shift in force (RFC 7323 §2.2):
    the shift it announced on its SYN, if both SYNs carried the option."""
    announced: dict[str, int] = {}
    for r in records:
        if r.get("ev") == "seg" and r.get("wscale") is not None and r["flags"] & SYN:
            name = r["conn"] if r.get("dir") == "out" else reverse(r["conn"])
            announced[name] = int(r["wscale"])
    return {n: v for n, v in announced.items() if reverse(n) in announced}


def _pop(table: dict[Any, deque[int]], key: Any) -> int | None:
    q = table.get(key)
    if not q:
        return None
    j = q.popleft()
    if not q:
        del table[key]
    return j


def _snapshots(recs: list[dict[str, Any]], segs: list[Seg], rec_seg: dict[int, int],
               hosts: list[str], shifts: dict[str, int]) -> list[dict[str, dict[str, Any]]]:
    state = {ip: _Host() for ip in hosts}
    for r in recs:  # a host starts in the state its first transition leaves (LISTEN)
        if r.get("ev") == "state" and r.get("conn"):
            h = state.get(conn_ips(r["conn"])[0])
            if h is not None and not h.conn:
                h.state, h.conn = r["old"], r["conn"]
    for h in state.values():
        h.conn = ""
    high: dict[str, int] = {}
    acked: dict[str, int] = {}
    out: list[dict[str, dict[str, Any]]] = []
    for i, r in enumerate(recs):
        name = r.get("conn") or ""
        ev = r.get("ev")
        if name and ev in ("state", "seg", "open", "cc", "rtt"):
            lip = conn_ips(name)[0]
            h = state.get(lip)
            if h is not None:
                if ev == "state":
                    h.state = r["new"]
                    h.conn = name
                elif ev == "open":
                    h.conn = name
                    h.flight = 0
                    h.cwnd = h.ssthresh = None
                    high.pop(name, None)
                    acked.pop(name, None)
                elif ev == "cc":
                    h.cwnd, h.ssthresh = r.get("cwnd"), r.get("ssthresh")
                elif ev == "rtt":
                    h.srtt, h.rto = r.get("srtt"), r.get("rto")
                elif ev == "seg" and r.get("iss") is not None:
                    syn = r["flags"] & SYN
                    if r["dir"] == "out":
                        h.rcv_wnd = r["win"] if syn else r["win"] << shifts.get(name, 0)
                        f = r["flags"]
                        end = (r["seq"] + r["len"] + (1 if f & SYN else 0)
                               + (1 if f & FIN else 0)) & MASK
                        if name not in high or _after(end, high[name]):
                            high[name] = end
                    else:
                        h.peer_wnd = r["win"] if syn else \
                            r["win"] << shifts.get(reverse(name), 0)
                        if r["flags"] & ACK and (name not in acked
                                                 or _after(r["ack"], acked[name])):
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


# ------------------------------------------------------------------ narration
@dataclass
class Step:
    """One explained event: when, who, what (header) and why (narration)."""

    t: float
    who: str
    kind: str
    header: str
    text: str = ""
    concepts: list[str] = field(default_factory=list)
    rfc: str = ""
    seg: int | None = None
    rec: int | None = None

    def tag(self) -> str:
        bits = []
        if self.concepts:
            bits.append(" ".join(dict.fromkeys(self.concepts)))
        if self.rfc:
            bits.append(self.rfc)
        return f"[{'; '.join(bits)}]" if bits else ""

    def render(self, width: int = 0) -> str:
        head = f"{self.t:10.4f}s  {self.who:<7} {self.header}"
        if not self.text and not self.concepts:
            return head
        body = self.text
        tag = self.tag()
        return f"{head}\n{'':21}{body}  {tag}".rstrip() if body else f"{head}  {tag}"


def _concepts_in(text: str) -> list[str]:
    return [f"C{m}" for m in _CONCEPT.findall(text)]


class Explainer:
    """Turns an analysed :class:`Run` into :class:`Step` objects."""

    def __init__(self, run: Run, *, absolute: bool = False, verbose: bool = False) -> None:
        self.run = run
        self.absolute = absolute
        self.verbose = verbose
        self._timer: dict[str, dict[str, Any]] = {}
        self._seen_fin: set[str] = set()
        self._last_ack: dict[str, tuple[int, int]] = {}
        self._trigger: dict[str, tuple[float, str]] = {}
        self._duplex: set[str] = set()
        self._wrapped: set[str] = set()

    def steps(self) -> Iterator[Step]:
        run = self.run
        for i, r in enumerate(run.records):
            step = self.step(i, r)
            if step is not None:
                yield step

    def _who(self, r: dict[str, Any]) -> str:
        name = r.get("conn")
        if r.get("ev") in ("lab",):
            return "lab"
        if r.get("ev") in ("net_drop", "net_inject"):
            return "network"
        if not name:
            return "stack"
        return self.run.role(conn_ips(name)[0])

    def step(self, i: int, r: dict[str, Any]) -> Step | None:
        ev = r.get("ev")
        t = float(r.get("t", 0.0))
        who = self._who(r)
        name = r.get("conn") or ""
        if ev == "seg":
            j = self.run.rec_seg.get(i)
            if j is None:
                return None
            s = self.run.segments[j]
            if r.get("dir") == "out":
                return self._seg_out(s, i, t, who)
            return self._seg_in(s, i, r, t, who)
        if ev == "state":
            key = (r["old"], r["new"])
            text, rfc = STATE_TEXT.get(key, ("", ""))
            why = str(r.get("why") or "")
            if (r["new"] == "CLOSED" and key not in STATE_TEXT) or (r["new"] == "CLOSED" and any(
                    k in why for k in CLOSE_RFC if k not in ("closed before",))):
                text = why
                rfc = next((v for k, v in CLOSE_RFC.items() if k in why), "RFC 9293 §3.6")
            concepts = [c for c in [r.get("concept") or ""] if c]
            if r["new"] == "TIME-WAIT" and "C13" not in concepts:
                concepts.append("C13")
            if key == ("LISTEN", "SYN-RECEIVED"):
                concepts += ["C26", "C27"] if self._stray_syn(i) else []
            return Step(t, who, "state", f"state {r['old']} -> {r['new']}", text, concepts,
                        rfc, rec=i)
        if ev == "timer":
            self._timer[name] = dict(r)
            text, rfc = TIMER_TEXT.get(r["timer"], (f"{r['timer']} timer", ""))
            extra = ""
            if "retries" in r:
                extra = f" (attempt {r['retries']}, next timeout {r['rto']:g}s)"
            concepts = [r["concept"]] if r.get("concept") else []
            if r["timer"] == "rto" and r.get("concept") == "C17":
                text = "retransmission timer expired: our SYN/FIN was not acknowledged; " \
                    "resend it and double RTO"
            return Step(t, who, "timer", f"{r['timer']} timer fired{extra}", text, concepts,
                        rfc, rec=i)
        if ev == "timer_set":
            if not self.verbose:
                return None
            at = r.get("at")
            when = f" for t={at:.4f}s" if isinstance(at, int | float) else ""
            return Step(t, who, "timer", f"{r.get('timer')} timer set{when}",
                        "", [], "", rec=i)
        if ev == "rtt":
            return Step(t, who, "rtt", f"RTT sample {r['sample'] * 1000:.1f} ms",
                        f"SRTT {r['srtt'] * 1000:.1f} ms, RTTVAR {r['rttvar'] * 1000:.1f} ms, "
                        f"so RTO = SRTT + 4*RTTVAR (at least 1 s) = {r['rto']:.3f}s",
                        ["C2"], "RFC 6298 §2, §3 (Karn: never from a retransmission)", rec=i)
        if ev == "cc":
            return self._cc(r, i, t, who)
        if ev == "drop":
            self._note_trigger(r, t, name)
            reason = str(r.get("reason") or "")
            text, concept, rfc = DROP_TEXT.get(reason, (reason.replace("_", " "), "", ""))
            concepts = [c for c in (r.get("concept") or concept,) if c]
            return Step(t, who, "drop", f"discarded incoming segment: {reason}", text,
                        concepts, rfc, rec=i)
        if ev == "note":
            self._note_trigger(r, t, name)
            text = str(r.get("text") or "")
            concepts = [r["concept"]] if r.get("concept") else _concepts_in(text)
            rfc = ""
            if r.get("concept") == "C27":
                rfc = "RFC 9293 §3.5 (figure 8), §3.8.3"
            elif r.get("concept") == "C13":
                rfc = "RFC 9293 §3.10.7.4 (TIME-WAIT)"
            elif "out-of-order" in text:
                rfc = "RFC 9293 §3.10.7.4, RFC 5681 §4.2"
            elif "window opened" in text:
                rfc = "RFC 9293 §3.8.6"
            return Step(t, who, "note", text, "", concepts, rfc, rec=i)
        if ev == "error":
            return Step(t, who, "error", f"ERROR {r['errno']}: {r['message']}",
                        "the application gets a clear error: TCP is reliable, not infallible",
                        ["C3"], "RFC 9293 §3.8.3", rec=i)
        if ev == "net_drop":
            return self._net_drop(r, i, t)
        if ev == "net_inject":
            j = self.run.rec_seg.get(i)
            if j is None:
                return None
            s = self.run.segments[j]
            src, dst = self.run.role(s.src), self.run.role(s.dst)
            concepts = _concepts_in(s.injected or "") or ["C15"]
            return Step(t, "network", "seg", f"{src} -> {dst} {s.label(self.absolute)}  "
                        "(not sent by any connection)",
                        f"a stray packet: {s.injected}", concepts, "RFC 9293 §3.4",
                        seg=j, rec=i)
        if ev == "lab":
            text = str(r.get("text") or "")
            concepts = list(r.get("concepts") or []) or _concepts_in(text)
            return Step(t, "lab", "lab", text, "", concepts, str(r.get("rfc") or ""), rec=i)
        if ev == "open":
            iss = r.get("iss")
            mode = r.get("mode")
            text = (f"{mode} open: ISS {iss} chosen by RFC 6528 (4 µs clock + keyed hash of "
                    "the addresses): unpredictable, and moving forward for a reused 4-tuple")
            if not self.verbose:
                return None
            return Step(t, who, "open", f"{mode} open", text, ["C15", "C16"],
                        "RFC 6528 §3, RFC 9293 §3.4.1", rec=i)
        return None

    def _stray_syn(self, i: int) -> bool:
        recs = self.run.records
        for k in range(i - 1, max(i - 6, -1), -1):
            r = recs[k]
            if r.get("ev") == "open" and r.get("mode") == "passive":
                j = self.run.rec_seg.get(k)
                return j is not None and self.run.segments[j].injected is not None
        return False

    def _note_trigger(self, r: dict[str, Any], t: float, name: str) -> None:
        if r.get("ev") == "note" and "out-of-order" in str(r.get("text")):
            self._trigger[name] = (t, "out-of-order data arrived beyond a hole (C14)")
        elif r.get("ev") == "drop" and r.get("reason") in ("duplicate", "out_of_window"):
            self._trigger[name] = (t, f"answer to a {r['reason'].replace('_', '-')} "
                                   "segment")

    def _cc(self, r: dict[str, Any], i: int, t: float, who: str) -> Step | None:
        event = r.get("event")
        head = f"congestion: {event} cwnd={r.get('cwnd')} ssthresh={r.get('ssthresh')}"
        if event == "fast_retransmit":
            return Step(t, who, "cc", head, "three duplicate ACKs: a segment is lost but later "
                        "ones arrive; halve the window (ssthresh = flight/2), enter fast "
                        "recovery", ["C14", "C18"], "RFC 5681 §3.2, RFC 6582 §3.2", rec=i)
        if event == "rto":
            return Step(t, who, "cc", head, "timeout: the path may be congested; ssthresh = "
                        "flight/2, cwnd = 1 MSS, slow start again", ["C18"],
                        "RFC 5681 §3.1 (eq. 4), RFC 6298 §5.5", rec=i)
        if event == "ecn_echo":
            return Step(t, who, "cc", head, "the peer echoed a congestion mark (ECE): reduce "
                        "the window as for a loss, once per RTT, with nothing to resend", [],
                        "RFC 3168 §6.1.2", rec=i)
        if event == "tlp_recovery":
            return Step(t, who, "cc", head, "the tail loss probe revealed a loss: the window "
                        "is reduced", ["C18"], "RFC 8985 §7.4", rec=i)
        if event == "recovery_end":
            return Step(t, who, "cc", head, "every segment outstanding at the loss is acked: "
                        "leave fast recovery, cwnd = ssthresh", [], "RFC 6582 §3.2 step 5",
                        rec=i)
        if not self.verbose:
            return None
        return Step(t, who, "cc", head, "", [], "RFC 5681 §3.1", rec=i)

    def _net_drop(self, r: dict[str, Any], i: int, t: float) -> Step:
        src = self.run.role(str(r.get("src")))
        dst = self.run.role(str(r.get("dst")))
        flags = r.get("flags")
        what = f"[{flags_str(flags)}]" if flags is not None else "packet"
        j = None
        for k, s in enumerate(self.run.segments):
            if s.lost is not None and s.send_rec is not None and s.send_rec < i and \
                    s.t == r.get("t") and s.seq == r.get("seq") and s.src == r.get("src"):
                j = k
        seq = r.get("seq")
        if j is not None:
            what = self.run.segments[j].label(self.absolute)
        elif seq is not None:
            what += f" seq={seq} len={r.get('len')}"
        kind = "SYN" if flags and flags & SYN and not flags & ACK else \
            "SYN-ACK" if flags and flags & SYN else "FIN" if flags and flags & FIN else \
            "RST" if flags and flags & RST else "data" if r.get("len") else "ACK"
        if kind == "RST":
            after = "an RST is never retransmitted: its receiver will never know (C19)"
            concepts = ["C19"]
        elif kind == "ACK":
            after = "a pure ACK is never retransmitted; a later ACK covers it (C20)"
            concepts = ["C20"]
        else:
            after = ("the sender will find out from its timer or duplicate ACKs and "
                     "retransmit (C14, C17)" if kind in ("SYN", "SYN-ACK", "FIN") else
                     "the sender will find out from its timer or duplicate ACKs and "
                     "retransmit (C14, C18)")
            concepts = _concepts_in(after)
        return Step(t, "network", "net_drop", f"LOST {src} -> {dst} {what} "
                    f"({r.get('reason')})", f"the network lost this {kind}: {after}",
                    concepts, "RFC 9293 §3.8.1", seg=j, rec=i)

    def _seg_in(self, s: Seg, i: int, r: dict[str, Any], t: float, who: str) -> Step | None:
        src = self.run.role(s.src)
        if s.injected is not None:
            return Step(t, who, "seg_in", f"<- {src:<7} {s.label(self.absolute)}  (stray)",
                        "this segment was sent by no current connection: "
                        f"{s.injected}", _concepts_in(s.injected) or ["C15"],
                        "RFC 9293 §3.4", seg=s.index, rec=i)
        if s.duplicate_of is not None:
            return Step(t, who, "seg_in", f"<- {src:<7} {s.label(self.absolute)}  (copy)",
                        "a second copy of a segment already delivered (the network "
                        "duplicated it): sequence numbers let TCP discard it", ["C14"],
                        "RFC 9293 §3.10.7.4", seg=s.index, rec=i)
        if not self.verbose:
            return None
        return Step(t, who, "seg_in", f"<- {src:<7} {s.label(self.absolute)}  received",
                    "", [], "", seg=s.index, rec=i)

    def _seg_out(self, s: Seg, i: int, t: float, who: str) -> Step:
        peer = self.run.role(s.dst)
        text, concepts, rfc = self.segment_meaning(s, t)
        s.text, s.concepts, s.rfc = text, concepts, rfc
        lost = f"  (lost: {s.lost})" if s.lost else ""
        return Step(t, who, "seg", f"-> {peer:<7} {s.label(self.absolute)}{lost}", text,
                    concepts, rfc, seg=s.index, rec=i)

    def segment_meaning(self, s: Seg, t: float) -> tuple[str, list[str], str]:
        """What the segment is and why it was sent: (text, concept IDs, RFC sections)."""
        f, why, conn = s.flags, s.why, s.conn
        timer = self._timer.get(conn)
        fired = timer is not None and timer.get("t") == t
        retr = why.startswith("retransmit")
        if f & RST:
            c = _concepts_in(why)
            base = "RST: " + (why or "reset")
            rfc = "RFC 9293 §3.5.2"
            if "C21" in c:
                base = ("RST: a SYN for a port nobody listens on is refused with a reset; "
                        "ack = their ISN + 1 so the client accepts it")
                rfc = "RFC 9293 §3.5.2, §3.10.7.1"
            elif "C23" in c:
                base = ("RST instead of FIN: the application closed with unread data, so "
                        "this is an abortive close and the peer learns data was lost")
                rfc = "RFC 9293 §3.10.4, RFC 2525 §2.17"
            elif "C24" in c:
                base = ("RST: data arrived for a socket the application already closed; "
                        "nobody will read it")
                rfc = "RFC 9293 §3.10.7.1, RFC 1122 §4.2.2.13"
            elif "unacceptable ACK in SYN-SENT" in why or "does not exist" in why:
                base = ("RST: this SYN-ACK (or ACK) belongs to no connection we know; reset it "
                        "so the other side frees its state")
                c.append("C27")
                rfc = "RFC 9293 §3.10.7.1, §3.10.7.3"
            elif "abort" in why:
                base = "RST: the application aborted the connection; all state is dropped"
                rfc = "RFC 9293 §3.10.5"
            return (base + ". An RST is never acknowledged and never retransmitted",
                    [*c, "C19"], rfc)
        if f & SYN:
            if retr:
                n = f" (attempt {timer.get('retries')})" if fired and timer else ""
                reason = ("its retransmission timer fired" if fired else
                          "the peer repeated its SYN, so our SYN-ACK must have been lost")
                what = "SYN-ACK" if f & ACK else "SYN"
                return (f"{what} again, same ISN: {reason}{n}. A SYN occupies one sequence "
                        "number precisely so it can be acknowledged and retransmitted",
                        ["C17", "C7" if f & ACK else "C6"], "RFC 9293 §3.8.1, RFC 6298 §5")
            if f & ACK:
                iss = s.seq if s.rel_seq is None else s.rel_seq
                return (f"SYN-ACK: our own ISN ({iss if self.absolute else 0}), and ack = "
                        "their ISN + 1: we got their SYN. Without this segment the client "
                        "would never learn our ISN (one segment is UDP, C25)",
                        ["C7", "C25"], "RFC 9293 §3.5")
            return ("SYN: asks to open; carries our random ISN and our MSS. The SYN occupies "
                    "one sequence number", ["C6", "C17"], "RFC 9293 §3.5, §3.4.1, RFC 6528")
        parts: list[str] = []
        concepts: list[str] = []
        rfc = ""
        if retr:
            detail = why.partition(": ")[2]
            if "fast retransmit" in detail:
                parts.append("fast retransmit: three duplicate ACKs said this segment is "
                             "missing while later ones arrived; resend it without waiting "
                             "for the timer")
                rfc = "RFC 5681 §3.2"
                concepts += ["C14", "C18"]
            elif detail.startswith("tail loss probe"):
                parts.append("tail loss probe: the last segment is resent early so that its "
                             "ACK (or SACK) reveals a lost tail without waiting for the RTO")
                rfc = "RFC 8985 §7"
                concepts += ["C18"]
            elif detail.startswith("lost"):
                parts.append("retransmission of a segment the sender's scoreboard marked lost "
                             "(SACK or RACK said later data arrived)")
                rfc = "RFC 6675 §5, RFC 8985 §6"
                concepts += ["C14", "C18"]
            elif "partial ACK" in detail:
                parts.append("retransmission in fast recovery: a partial ACK showed the next "
                             "hole")
                rfc = "RFC 6582 §3.2"
                concepts += ["C14", "C18"]
            elif fired and timer is not None:
                parts.append(f"retransmission: the RTO fired (backoff {timer.get('retries')}, "
                             f"next RTO {timer.get('rto', 0):g}s); resend from the first "
                             "unacknowledged byte")
                rfc = "RFC 6298 §5.4-5.6"
                concepts.append("C18")
            else:
                parts.append("retransmission after a timeout: everything outstanding is "
                             "presumed lost (go-back)")
                rfc = "RFC 6298 §5.4, RFC 5681 §3.1"
                concepts.append("C18")
        if f & FIN:
            if retr:
                parts = ["FIN again: it was not acknowledged in time; a FIN occupies a "
                         "sequence number so it can be acked and retransmitted"]
                concepts = ["C17"]
                rfc = "RFC 9293 §3.8.1"
            elif conn in self._seen_fin:
                parts.append("FIN again")
                concepts.append("C17")
            else:
                state = s.snapshot.get(s.src, {}).get("state")
                if state == "LAST-ACK":
                    parts.append("FIN: the passive side closes its direction too")
                    concepts += ["C12", "C17"]
                else:
                    parts.append("FIN: no more data from this side (our direction closes; we "
                                 "can still receive)")
                    concepts += ["C10", "C17"]
                rfc = rfc or "RFC 9293 §3.6"
            self._seen_fin.add(conn)
        if s.len and not retr and not f & FIN:
            if why.startswith("zero-window probe"):
                parts.append("zero-window probe: one byte past the closed window, so the "
                             "peer's answer tells us when it reopens")
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.1"
            elif why.startswith("persist: send what fits"):
                parts.append(f"the peer's window is smaller than a segment; after waiting "
                             f"(sender SWS avoidance) send the {s.len} bytes that fit")
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.2.1"
            else:
                first = (s.rel_seq or 0)
                parts.append(f"data: bytes {first}..{first + s.len - 1}; they must be "
                             "acknowledged and may be retransmitted")
                concepts += ["C1", "C18"]
                rfc = "RFC 9293 §3.8"
        elif s.len and f & FIN and not retr:
            concepts.append("C18")
        elif why.startswith("zero-window probe"):
            parts.append("zero-window probe")
            concepts.append("C4")
            rfc = "RFC 9293 §3.8.6.1"
        pure = not s.len and not f & (SYN | FIN | RST) and f & ACK
        trig = self._trigger.pop(conn, None)
        if pure:
            prev = self._last_ack.get(conn)
            rack = s.rel_ack if s.rel_ack is not None else s.ack
            if why.startswith("challenge"):
                parts.append("challenge ACK: tells a genuine peer our real position; a blind "
                             "attacker learns nothing it can use")
                rfc = "RFC 5961 §3.2, §4.2"
            elif s.win == 0:
                parts.append("ACK with a zero window: our receive buffer is full, stop "
                             "sending")
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6"
            elif trig is not None and trig[0] == t and prev is not None and prev[0] == s.ack:
                parts.append(f"duplicate ACK ({trig[1]}): still asking for byte {rack}")
                concepts += _concepts_in(trig[1]) or ["C14"]
                concepts.append("C20")
                rfc = "RFC 5681 §4.2, RFC 9293 §3.10.7.4"
            elif prev is not None and prev[1] == 0 and s.win > 0:
                parts.append(f"window update: the application read data, the window "
                             f"reopens to {s.wnd}")
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.2.2"
            elif s.snapshot.get(s.src, {}).get("state") == "TIME-WAIT":
                parts.append("ACK of the peer's FIN, sent from TIME-WAIT")
                concepts.append("C13")
                rfc = "RFC 9293 §3.6"
            elif s.rel_seq == 1 and s.rel_ack == 1:
                parts.append("ACK of the SYN-ACK: third segment of the handshake; now both "
                             "ends know the other can send and receive")
                concepts += ["C8", "C27"]
                rfc = "RFC 9293 §3.5"
            else:
                parts.append(f"pure ACK: everything before byte {rack} arrived; an ACK is "
                             "never acknowledged itself")
                concepts.append("C20")
                rfc = "RFC 9293 §3.8.6.3"
            if fired and timer is not None and timer.get("timer") == "delayed_ack":
                parts[-1] += " (sent by the delayed-ACK timer)"
        elif f & ACK and s.len and not retr:
            concepts.append("C20")
            if (s.rel_ack or 0) > 1 and conn not in self._duplex:
                self._duplex.add(conn)
                parts.append("this data segment also acknowledges the peer's data: both "
                             "directions carry data at once (full duplex)")
                concepts.append("C5")
        if s.rel_seq is not None and (s.seq < s.rel_seq or s.seq + s.len > MASK + 1) \
                and conn not in self._wrapped and s.injected is None:
            self._wrapped.add(conn)
            parts.append(f"the sequence numbers have wrapped: absolute seq {s.seq} is past "
                         "2**32 - 1 and restarts from 0; comparisons are modulo 2**32")
            concepts.append("C16")
            rfc = (rfc + ", " if rfc else "") + "RFC 9293 §3.4, RFC 1982"
        if not pure and s.win == 0 and not f & RST:
            parts.append("our window is zero")
            concepts.append("C4")
        if f & ACK and not f & RST:
            self._last_ack[conn] = (s.ack, s.win)
        if s.sack:
            parts.append("SACK blocks " + ", ".join(f"{a}-{b}" for a, b in s.sack))
            rfc = (rfc + ", " if rfc else "") + "RFC 2018"
        if f & PSH and s.len and not retr and not f & FIN and parts:
            parts[0] += " (PSH: deliver now)"
        return "; ".join(parts), list(dict.fromkeys(concepts)), rfc


def explain(records: Iterable[dict[str, Any]], roles: dict[str, str] | None = None, *,
            absolute: bool = False, verbose: bool = False) -> tuple[Run, list[Step]]:
    """Analyse and narrate a trace; returns the run and its steps."""
    run = analyze(records, roles)
    ex = Explainer(run, absolute=absolute, verbose=verbose)
    return run, list(ex.steps())


def render(records: Iterable[dict[str, Any]], roles: dict[str, str] | None = None, *,
           absolute: bool = False, verbose: bool = False) -> list[str]:
    """The explained timeline as text lines (a step may span two lines)."""
    _, steps = explain(records, roles, absolute=absolute, verbose=verbose)
    return [s.render() for s in steps]
