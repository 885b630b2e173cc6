"""Crafted-segment builders with every modern option on (window scaling,
timestamps, SACK, RACK-TLP; an explicit :func:`cfg`, never the defaults, which
change), on the :class:`helpers.crafted.Tcb` of the baseline tests."""

from __future__ import annotations

from collections import deque
from typing import Any

from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.events import Event
from synack.tcp.seq import MASK
from synack.wire.segment import ACK, SYN, Segment

from .crafted import (
    CLIENT_IP,
    CPORT,
    D0,
    IRS,
    ISS,
    MSS_TS,
    SERVER_IP,
    SPORT,
    U0,
    S,
    Tcb,
    peer_ts,
)


def cfg(**changes: Any) -> TcpConfig:
    """Every modern option on, exact-window arithmetic (no whole-segment rounding),
    no Nagle delay unless a test asks; a test changes what it is about."""
    base: dict[str, Any] = {
        "mss": 1460,
        "window_scaling": True,
        "timestamps": True,
        "sack": True,
        "rack": True,
        "tlp": True,
        "ecn": "off",
        "congestion_control": "newreno",
        "rcv_buf": 1 << 20,
        "snd_buf": 1 << 20,
        "nodelay": True,
        "delayed_ack": 0.2,
        "keepalive": False,
        "initial_window": 10,
        "window_in_segments": False,
        "rto_min": 1.0,
        "rto_initial": 1.0,
        "max_retransmits": 15,
        "abc_limit": 2,
        "tlp_wc_delack": 0.2,
        "quickack": 0,
        "psh_every_burst": False,
        "user_timeout": None,
    }
    base.update(changes)
    return TcpConfig(**base)


def new_conn(config: TcpConfig, *, iss: int = ISS, now: float = 0.0) -> Tcb:
    """open_active: SYN-SENT, the SYN collected in ``tcb.sent``."""
    events: deque[Event] = deque()
    trace: list[dict[str, Any]] = []
    conn = Connection.open_active(
        CLIENT_IP,
        CPORT,
        SERVER_IP,
        SPORT,
        iss=iss,
        now=now,
        config=config,
        events=events,
        tracer=trace.append,
    )
    tcb = Tcb(conn, events, trace)
    (syn,) = tcb.out(now)
    if syn.tsval is not None:
        tcb.ts_offset = (syn.tsval - int(now * 1000)) & MASK
    return tcb


def established(
    config: TcpConfig,
    *,
    peer_ws: int | None = 7,
    peer_tsopt: bool = True,
    peer_sack: bool = True,
    window: int = 65535,
    mss: int | None = 1460,
    t_synack: float = 0.1,
    flags: int = 0,
    sync: bool = True,
) -> Tcb:
    """Active open completed by a crafted SYN-ACK carrying the peer's options.  With
    ``sync`` the peer then sends one pure ACK, so we know its (scaled) window: the
    SYN-ACK's field is never scaled, and a window change is no duplicate ACK."""
    tcb = new_conn(config)
    syn = tcb.sent[0][1]
    kw: dict[str, Any] = {"mss": mss, "wscale": peer_ws, "sack_permitted": peer_sack}
    if peer_tsopt:
        kw["tsval"], kw["tsecr"] = peer_ts(t_synack), syn.tsval or 0
    out = tcb.feed(Segment(SPORT, CPORT, IRS, ISS + 1, SYN | ACK | flags, window, **kw), t_synack)
    assert tcb.state is S.ESTABLISHED
    assert len(out) == 1 and out[0].flags == ACK
    if sync:
        assert tcb.feed(tcb.peer(D0, U0, window=window, t=t_synack), t_synack) == []
    tcb.events.clear()
    tcb.trace.clear()
    tcb.sent.clear()
    return tcb


def passive(
    config: TcpConfig, *, now: float = 0.0, flags: int = SYN, **opts: Any
) -> tuple[Tcb, Segment]:
    """open_passive on a crafted client SYN; returns the Tcb and its SYN-ACK."""
    events: deque[Event] = deque()
    trace: list[dict[str, Any]] = []
    opts.setdefault("mss", 1460)
    syn = Segment(CPORT, SPORT, IRS, 0, flags, 65535, **opts)
    conn = Connection.open_passive(
        syn,
        SERVER_IP,
        CLIENT_IP,
        iss=ISS,
        now=now,
        config=config,
        events=events,
        tracer=trace.append,
    )
    tcb = Tcb(conn, events, trace)
    out = tcb.out(now)
    assert len(out) == 1
    if out[0].tsval is not None:
        tcb.ts_offset = (out[0].tsval - int(now * 1000)) & MASK
    return tcb, out[0]


def seg_at(i: int, mss: int = MSS_TS) -> int:
    """Sequence number of our i-th full segment."""
    return (U0 + i * mss) & MASK


def data_segs(out: list[Segment]) -> list[tuple[int, int]]:
    """(seq, len) of the data-carrying segments."""
    return [(s.seq, len(s.payload)) for s in out if s.payload]


def flow(tcb: Tcb, n: int, now: float = 1.0) -> bytes:
    """Queue and send exactly ``n`` full segments at ``now``; return the data."""
    data = bytes((i * 7 + 3) % 251 for i in range(n * MSS_TS))
    out = tcb.send(data, now)
    assert data_segs(out) == [(seg_at(i), MSS_TS) for i in range(n)]
    return data
