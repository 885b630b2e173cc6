"""Crafted segments against one sans-IO Connection (smoltcp style): the peer is
played by hand, with fixed ISNs (ours 1000, the peer's 5000) and fixed times.

:class:`Tcb` wraps one connection; :func:`active`, :func:`established`,
:func:`passive` and :func:`passive_established` build one on the RFC 9293 baseline
(``TcpConfig.classic()``); :mod:`helpers.modern` builds them with every modern
option on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.events import Event, StateChanged
from synack.tcp.seq import MASK
from synack.tcp.states import State
from synack.wire.segment import ACK, SYN, Segment

CLIENT_IP = bytes([10, 0, 0, 1])
SERVER_IP = bytes([10, 0, 0, 2])
CPORT, SPORT = 40000, 80
ISS = 1000  # our ISN
IRS = 5000  # the peer's ISN
WIN = 65535
U0 = ISS + 1  # our first data byte
D0 = IRS + 1  # the peer's first data byte
PEER_TS0 = 900_000  # the peer's timestamp clock at t = 0 (ms)
MSS_TS = 1460 - 12  # effective MSS with the timestamp option in every segment
ECT0, CE = 0b10, 0b11

S = State


def peer_ts(t: float) -> int:
    """The peer's TSval at time ``t`` (its own 1 ms clock)."""
    return (PEER_TS0 + int(t * 1000)) & MASK


@dataclass
class Tcb:
    """One Connection, its events and trace, what it sent, and what we know of its
    timestamp clock; the test plays the peer by hand."""

    conn: Connection
    events: deque[Event]
    trace: list[dict[str, Any]] = field(default_factory=list)
    ts_offset: int = 0  # our TSval = ts_offset + ms
    last_tsval: int = 0  # the last TSval we emitted (what the peer echoes by default)
    sent: list[tuple[float, Segment]] = field(default_factory=list)

    @property
    def state(self) -> State:
        return self.conn.state

    def ts(self, t: float) -> int:
        """Our TSval at time ``t``."""
        return (self.ts_offset + int(t * 1000)) & MASK

    def peer(
        self,
        seq_no: int,
        ack: int = 0,
        flags: int = ACK,
        window: int = 65535,
        payload: bytes = b"",
        *,
        t: float | None = None,
        **kw: Any,
    ) -> Segment:
        """A segment from the peer.  With ``t`` and timestamps negotiated it carries
        the peer's TSval at ``t`` and echoes our latest TSval, unless given."""
        if t is not None and self.conn.ts_ok and "tsval" not in kw:
            kw["tsval"] = peer_ts(t)
            kw.setdefault("tsecr", self.last_tsval)
        return Segment(
            self.conn.remote_port,
            self.conn.local_port,
            seq_no & MASK,
            ack & MASK,
            flags,
            window,
            payload,
            **kw,
        )

    def _note(self, now: float, out: list[Segment]) -> list[Segment]:
        for s in out:
            if s.tsval is not None:
                self.last_tsval = s.tsval
            self.sent.append((now, s))
        return list(out)  # a copy: an empty result may be the connection's own list

    def feed(self, seg: Segment, now: float) -> list[Segment]:
        self.conn.receive(seg, now)
        return self._note(now, self.conn.segments_to_send(now))

    def ack(
        self,
        ack: int,
        now: float,
        *,
        window: int = 65535,
        sack: tuple[tuple[int, int], ...] = (),
        **kw: Any,
    ) -> list[Segment]:
        """The peer acknowledges ``ack`` (absolute) with optional SACK blocks."""
        return self.feed(self.peer(D0, ack, window=window, t=now, sack_blocks=sack, **kw), now)

    def out(self, now: float) -> list[Segment]:
        return self._note(now, self.conn.segments_to_send(now))

    def send(self, data: bytes, now: float) -> list[Segment]:
        assert self.conn.send(data) == len(data)
        return self.out(now)

    def fire(self, now: float) -> list[Segment]:
        self.conn.handle_timer(now)
        return self._note(now, self.conn.segments_to_send(now))

    def run_timers(self, until: float) -> list[tuple[float, Segment]]:
        """Fire every timer due up to ``until``; (time, segment) for what went out."""
        sent: list[tuple[float, Segment]] = []
        while (t := self.conn.next_timer()) is not None and t <= until:
            sent += [(t, s) for s in self.fire(t)]
        return sent

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def lport(self) -> int:
        return self.conn.local_port

    @property
    def rport(self) -> int:
        return self.conn.remote_port

    def ours(
        self,
        seq_no: int,
        ack: int = 0,
        flags: int = ACK,
        window: int = WIN,
        payload: bytes = b"",
        **kw: Any,
    ) -> Segment:
        """The exact segment we expect this connection to emit."""
        return Segment(
            self.lport, self.rport, seq_no & MASK, ack & MASK, flags, window, payload, **kw
        )

    def transitions(self) -> list[tuple[State, State, str]]:
        return [(e.old, e.new, e.concept) for e in self.of(StateChanged)]


def active(config: TcpConfig | None = None, *, iss: int = ISS, now: float = 0.0) -> Tcb:
    """open_active: SYN-SENT, the SYN already collected."""
    events: deque[Event] = deque()
    trace: list[dict[str, Any]] = []
    conn = Connection.open_active(
        CLIENT_IP,
        CPORT,
        SERVER_IP,
        SPORT,
        iss=iss,
        now=now,
        config=config or TcpConfig.classic(),
        events=events,
        tracer=trace.append,
    )
    t = Tcb(conn, events, trace)
    t.out(now)
    return t


def established(
    config: TcpConfig | None = None,
    *,
    window: int = WIN,
    mss: int | None = 1460,
    iss: int = ISS,
    irs: int = IRS,
    t_syn: float = 0.0,
    t_synack: float = 0.0,
) -> Tcb:
    """Active open completed by a crafted SYN-ACK; events and output drained."""
    tcb = active(config, iss=iss, now=t_syn)
    out = tcb.feed(tcb.peer(irs, iss + 1, SYN | ACK, window, mss=mss), t_synack)
    assert out == [tcb.ours(iss + 1, irs + 1, ACK, tcb.conn.rcv_wnd)]
    assert tcb.state is S.ESTABLISHED
    tcb.events.clear()
    tcb.trace.clear()
    return tcb


def passive(
    config: TcpConfig | None = None,
    *,
    iss: int = ISS,
    irs: int = IRS,
    mss: int | None = 1460,
    window: int = WIN,
    now: float = 0.0,
) -> tuple[Tcb, Segment]:
    """open_passive on a crafted client SYN; returns the Tcb and its SYN-ACK."""
    events: deque[Event] = deque()
    trace: list[dict[str, Any]] = []
    syn = Segment(CPORT, SPORT, irs, 0, SYN, window, mss=mss)
    conn = Connection.open_passive(
        syn,
        SERVER_IP,
        CLIENT_IP,
        iss=iss,
        now=now,
        config=config or TcpConfig.classic(),
        events=events,
        tracer=trace.append,
    )
    tcb = Tcb(conn, events, trace)
    out = tcb.out(now)
    assert len(out) == 1
    return tcb, out[0]


def passive_established(config: TcpConfig | None = None, **kw: Any) -> Tcb:
    tcb, _ = passive(config, **kw)
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1), 0.0) == []
    assert tcb.state is S.ESTABLISHED
    tcb.events.clear()
    return tcb


def end(seg: Segment) -> int:
    return (seg.seq + seg.seg_len) & MASK
