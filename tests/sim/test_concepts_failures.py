"""When TCP fails, and when it resets: clear errors, never silent loss (C3, C19, C21,
C23, C24, C25-C27).

Scenarios run on the deterministic simulated network (one-way delay 0.05 s,
RTT 0.1 s); times of retransmissions, resets and errors are asserted exactly.
"""

from __future__ import annotations

import errno
import itertools

import pytest

from synack.scenarios.apps import Endpoint
from synack.scenarios.scenario import (
    CLIENT_IP,
    SERVER_IP,
    Scenario,
    is_fin,
    is_rst,
    is_syn,
    is_synack,
)
from synack.stack import Listener
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import encode_ipv4_tcp
from synack.wire.segment import ACK, RST, SYN, Segment

MSL = 1.0
MASK = 0xFFFFFFFF


def times(events: list) -> list[float]:
    return [round(w.t, 9) for w in events]


def state_times(s: Scenario, conn: Connection | str) -> list[tuple[str, float]]:
    name = conn if isinstance(conn, str) else conn.name
    return [(r["new"], round(r["t"], 9)) for r in s.records("state", conn=name)]


def open_pair(s: Scenario, port: int = 80) -> tuple[Endpoint, Connection, Listener]:
    """Client connects at t=0 through an idle Endpoint (it records errors); the
    server side is driven directly.  Both are ESTABLISHED when this returns (0.19 s)."""
    lst = s.server.listen(port)
    ep = s.connect(port, b"", close_when_done=False)
    s.run(until=0.19)
    srv = lst.accept()
    assert srv is not None
    assert ep.conn.state is State.ESTABLISHED and srv.state is State.ESTABLISHED
    return ep, srv, lst


# ------------------------------------------------------------------ C23 abortive close
def test_c23_c19_close_with_unread_data_sends_rst_not_fin() -> None:
    """C23: the server application never reads the 5000 bytes it received and
    calls close() at 1.0 s: the stack sends RST (not FIN) at 1.0 s, the client
    gets ConnectionFailed(ECONNRESET) at 1.05 s.  C19: exactly one RST, never
    retransmitted, never acknowledged; both sides' state is gone."""
    s = Scenario(21, config=TcpConfig.classic(msl=MSL))
    s.listen(80, read=False, close_when_done=False)
    ep = s.connect(80, b"q" * 5000, close_when_done=False)
    s.net.call_at(1.0, lambda now: s.server_endpoint.conn.close(now))
    s.run(until=120)
    srv = s.server_endpoint
    rsts = s.sent(SERVER_IP, is_rst)
    assert times(rsts) == [1.0]
    rst = rsts[0].seg
    assert rst.flags & RST and not rst.payload
    assert rst.seq == (srv.conn.iss + 1) & MASK
    assert rst.ack == (ep.conn.iss + 1 + 5000) & MASK
    assert s.sent(predicate=is_fin) == []  # no FIN from anyone
    assert s.sent(CLIENT_IP, is_rst) == []
    assert [w for w in s.sent(CLIENT_IP) if w.t > 1.0] == []  # nobody answers an RST
    assert ep.error is not None and ep.error.errno == errno.ECONNRESET
    assert state_times(s, ep.conn)[-1] == ("CLOSED", 1.05)
    assert state_times(s, srv.conn)[-1] == ("CLOSED", 1.0)
    assert s.records("state", conn=srv.conn.name, new="CLOSED")[0]["concept"] == "C19"
    assert bytes(srv.received) == b""  # the app really read nothing
    assert s.client.connections == [] and s.server.connections == []


def test_c23_close_after_reading_everything_sends_fin() -> None:
    """C23 (contrast): the same application that reads its data first closes with
    FIN, not RST."""
    s = Scenario(22, config=TcpConfig.classic(msl=MSL))
    s.listen(80, read=False, close_when_done=False)
    ep = s.connect(80, b"q" * 5000, close_when_done=False)

    def read_then_close(now: float) -> None:
        conn = s.server_endpoint.conn
        assert conn.recv() == b"q" * 5000
        conn.close(now)

    s.net.call_at(1.0, read_then_close)
    s.run(until=3.0)
    assert times(s.sent(SERVER_IP, is_fin)) == [1.0]
    assert s.sent(predicate=is_rst) == []
    assert ep.error is None and ep.eof
    assert ep.conn.state is State.CLOSE_WAIT


# ------------------------------------------------------------- C24 data to a closed socket
def test_c24_data_to_orphaned_fin_wait_2_is_reset() -> None:
    """C24: the server app reads, closes (FIN at 0.5 s) and is gone; its connection
    sits orphaned in FIN-WAIT-2.  The client, in CLOSE-WAIT, sends more data at
    1.0 s: the server answers RST at 1.05 s without acknowledging the bytes; the
    client gets ECONNRESET at 1.1 s."""
    s = Scenario(23, config=TcpConfig.classic(msl=MSL))
    ep, srv, _ = open_pair(s)
    c = ep.conn
    s.net.call_at(0.2, lambda now: c.send(b"hello"))

    def server_reads_and_closes(now: float) -> None:
        assert srv.recv() == b"hello"
        srv.close(now)

    s.net.call_at(0.5, server_reads_and_closes)
    late = b"anyone there?" * 10
    s.net.call_at(1.0, lambda now: c.send(late))
    s.run(until=0.99)
    assert srv.state is State.FIN_WAIT_2 and c.state is State.CLOSE_WAIT
    s.run(until=120)
    data = s.sent(CLIENT_IP, lambda g: bool(g.payload))
    assert times(data) == [0.2, 1.0]
    rsts = s.sent(SERVER_IP, is_rst)
    assert times(rsts) == [1.05]
    assert rsts[0].seg.ack == data[1].seg.seq  # the late bytes are not acked
    assert rsts[0].seg.seq == (srv.iss + 2) & MASK  # after the server's FIN
    assert state_times(s, srv) == [
        ("SYN-RECEIVED", 0.05),
        ("ESTABLISHED", 0.15),
        ("FIN-WAIT-1", 0.5),
        ("FIN-WAIT-2", 0.6),
        ("CLOSED", 1.05),
    ]
    assert ep.error is not None and ep.error.errno == errno.ECONNRESET
    assert state_times(s, c)[-1] == ("CLOSED", 1.1)
    assert len(rsts) == 1 and s.sent(CLIENT_IP, is_rst) == []
    assert s.client.connections == [] and s.server.connections == []


@pytest.mark.parametrize("listener_open", [False, True], ids=["no-listener", "listener"])
def test_c24_data_for_vanished_connection_answered_by_stack(listener_open: bool) -> None:
    """C24: the server aborts at 0.5 s and its RST is lost, so the client still
    believes in the connection.  Its data at 1.0 s reaches a stack with no such
    connection (with or without a listener on the port): the stack itself answers
    RST (stats['rst_sent']) with SEQ = the segment's ACK, and the client fails
    with ECONNRESET at 1.1 s."""
    s = Scenario(24, config=TcpConfig.classic(msl=MSL))
    ep, srv, lst = open_pair(s)
    c = ep.conn

    def server_vanishes(now: float) -> None:
        s.drop_next(is_rst, 1, src=SERVER_IP)
        srv.abort(now)
        if not listener_open:
            lst.close()

    s.net.call_at(0.5, server_vanishes)
    s.net.call_at(1.0, lambda now: c.send(b"still there?"))
    s.run(until=0.99)
    assert s.server.connections == [] and c.state is State.ESTABLISHED
    assert s.server.stats["rst_sent"] == 0
    s.run(until=120)
    rsts = s.sent(SERVER_IP, is_rst)
    assert times(rsts) == [0.5, 1.05]  # the lost abort RST, then the answer
    data = s.sent(CLIENT_IP, lambda g: bool(g.payload))
    assert times(data) == [1.0]
    answer = rsts[1].seg
    assert answer.flags == RST and answer.seq == data[0].seg.ack
    assert s.server.stats["rst_sent"] == 1
    why = [r["why"] for r in s.records("seg", dir="out") if r["flags"] & RST and r["t"] > 1]
    assert len(why) == 1
    if not listener_open:
        assert "C24" in why[0]
    assert ep.error is not None and ep.error.errno == errno.ECONNRESET
    assert state_times(s, c)[-1] == ("CLOSED", 1.1)
    assert s.client.connections == []


# -------------------------------------------------------------- C21 nobody listening
def test_c21_connect_to_closed_port_refused_within_one_rtt() -> None:
    """C21: a SYN to a port nobody listens on is answered with RST|ACK (ack = ISN+1)
    at 0.05 s; the client gets ConnectionFailed(ECONNREFUSED) at 0.1 s, one RTT
    after connect(), and never retransmits its SYN."""
    s = Scenario(25, config=TcpConfig.classic(msl=MSL))
    s.listen(80)
    ep = s.connect(81, b"nobody home")
    s.run(until=30)
    rsts = s.sent(SERVER_IP, is_rst)
    assert times(rsts) == [0.05]
    assert rsts[0].seg.flags == RST | ACK
    assert rsts[0].seg.ack == (ep.conn.iss + 1) & MASK and rsts[0].seg.seq == 0
    assert s.server.stats["rst_sent"] == 1
    assert times(s.sent(CLIENT_IP, is_syn)) == [0.0]
    assert ep.error is not None and ep.error.errno == errno.ECONNREFUSED
    assert state_times(s, ep.conn) == [("SYN-SENT", 0.0), ("CLOSED", 0.1)]
    assert s.records("state", conn=ep.conn.name, new="CLOSED")[0]["concept"] == "C21"
    assert s.client.connections == [] and s.server.connections == []
    assert s.server_endpoints == []


# ------------------------------------------------------------ C25-C27 old duplicate SYN
def stray_syn(sport: int = 40000, seq: int = 123456) -> bytes:
    """A SYN from 10.0.0.1:sport to the server's port 80 that no client process sent."""
    seg = Segment(sport, 80, seq, 0, SYN, 65535, mss=1460)
    return encode_ipv4_tcp(ip_to_bytes(CLIENT_IP), ip_to_bytes(SERVER_IP), seg)


def test_c25_c26_c27_old_duplicate_syn_reset_by_client_frees_half_open() -> None:
    """C25, C26, C27: an old duplicate SYN reaches the listening server after its
    client is gone.  One or two segments would not let the server tell it from a
    real request (C25, C26), so the server does not consider itself connected: it
    answers SYN-ACK and waits (half-open, SYN-RECEIVED).  The client stack knows no such
    connection and resets the SYN-ACK; the server frees the half-open state on
    that RST.  Nothing is ever accepted, no connection is left."""
    s = Scenario(26, config=TcpConfig.classic(msl=MSL))
    lst = s.listen(80)
    s.net.inject(stray_syn())
    s.run(until=0.12)
    assert lst.half_open == 1
    (half,) = s.server.connections
    assert half.state is State.SYN_RECEIVED
    s.run(until=100)
    synacks = s.sent(SERVER_IP, is_synack)
    assert times(synacks) == [0.05]
    assert synacks[0].seg.ack == 123457
    rsts = s.sent(CLIENT_IP, is_rst)
    assert times(rsts) == [0.1]
    assert rsts[0].seg.seq == 123457 and rsts[0].seg.flags == RST
    assert s.client.stats["rst_sent"] == 1
    assert state_times(s, half) == [("SYN-RECEIVED", 0.05), ("CLOSED", 0.15)]
    notes = [r for r in s.records("note", conn=half.name) if r.get("concept") == "C27"]
    assert [round(r["t"], 9) for r in notes] == [0.15]
    assert s.server.connections == [] and s.client.connections == []
    assert lst.half_open == 0 and lst.accept() is None and s.server_endpoints == []
    assert len(s.sent(SERVER_IP)) == 1  # the SYN-ACK and nothing else


def test_c27_stray_syn_synack_retransmitted_then_state_freed() -> None:
    """C27: the same stray SYN, but every RST from the client is lost.  The server
    never gets the final ACK: it retransmits its SYN-ACK exactly synack_retries
    (5) times with exponential backoff (1.05, 3.05, 7.05, 15.05, 31.05 s), gives
    up at 63.05 s and frees the half-open state; nothing is ever accepted."""
    cfg = TcpConfig.classic(msl=MSL)
    s = Scenario(27, config=cfg)
    lst = s.listen(80)
    s.drop_next(is_rst, 1000, src=CLIENT_IP)
    s.net.inject(stray_syn())
    s.run(until=63.0)
    assert lst.half_open == 1 and len(s.server.connections) == 1
    half = s.server.connections[0]
    s.run(until=200)
    synacks = s.sent(SERVER_IP, is_synack)
    assert len(synacks) == 1 + cfg.synack_retries
    assert times(synacks) == [0.05, 1.05, 3.05, 7.05, 15.05, 31.05]
    assert len({(w.seg.seq, w.seg.ack) for w in synacks}) == 1
    gaps = [round(b.t - a.t, 9) for a, b in itertools.pairwise(synacks)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert times(s.sent(CLIENT_IP, is_rst)) == [0.1, 1.1, 3.1, 7.1, 15.1, 31.1]
    closed = s.records("state", conn=half.name, new="CLOSED")
    assert [(round(r["t"], 9), r["concept"]) for r in closed] == [(63.05, "C27")]
    assert s.states(half) == ["LISTEN", "SYN-RECEIVED", "CLOSED"]
    assert s.server.connections == [] and lst.half_open == 0
    assert lst.accept() is None and s.server_endpoints == []
    assert half.info()["retransmits"] == cfg.synack_retries


# ------------------------------------------------------------ C3 retransmission exhaustion
def test_c3_retransmission_exhaustion_reports_etimedout() -> None:
    """C3: after the handshake the path goes dead (a filter drops everything).  The
    client's data sent at 0.5 s is retransmitted on the doubling RTO (1, 2, 4, 8 s
    -> at 1.5, 3.5, 7.5, 15.5 s) max_retransmits=4 times; when the next RTO expires
    (31.5 s) the application gets ConnectionFailed(ETIMEDOUT) and the connection is
    CLOSED.  No exception escapes."""
    s = Scenario(28, config=TcpConfig.classic(msl=MSL, max_retransmits=4))
    s.listen(80, close_when_done=False)
    ep = s.connect(80, b"", close_when_done=False)
    s.run(until=0.2)
    assert ep.conn.state is State.ESTABLISHED

    def path_dies(now: float) -> None:
        s.net.add_filter(lambda now, src, dst, pkt: True)
        assert ep.conn.send(b"d" * 2000) == 2000

    s.net.call_at(0.5, path_dies)
    s.run(until=200)
    data = s.sent(CLIENT_IP, lambda g: bool(g.payload))
    assert times(data) == [0.5, 0.5, 1.5, 3.5, 7.5, 15.5]
    first = data[0].seg.seq
    assert all(w.seg.seq == first for w in data[2:])  # go-back: resend SND.UNA
    rto = s.records("timer", conn=ep.conn.name, timer="rto")
    assert [round(r["t"], 9) for r in rto] == [1.5, 3.5, 7.5, 15.5]
    assert [r["rto"] for r in rto] == [2.0, 4.0, 8.0, 16.0]
    assert ep.error is not None and ep.error.errno == errno.ETIMEDOUT
    errors = s.records("error", conn=ep.conn.name)
    assert [(round(r["t"], 9), r["errno"]) for r in errors] == [(31.5, "ETIMEDOUT")]
    closed = s.records("state", conn=ep.conn.name, new="CLOSED")
    assert [(round(r["t"], 9), r["concept"]) for r in closed] == [(31.5, "C3")]
    assert ep.closed and ep.conn not in s.client.connections
    assert ep.conn.info()["retransmits"] == 4


def test_c3_c17_syn_retries_exhausted_reports_etimedout() -> None:
    """C3, C17: nobody answers the SYN (the path drops everything); it is resent at
    1, 3, 7 s (syn_retries=3) and connect fails with ETIMEDOUT at 15 s."""
    s = Scenario(29, config=TcpConfig.classic(msl=MSL, syn_retries=3))
    s.net.add_filter(lambda now, src, dst, pkt: True)
    ep = s.connect(80, b"never sent")
    s.run(until=100)
    assert times(s.sent(CLIENT_IP, is_syn)) == [0.0, 1.0, 3.0, 7.0]
    assert ep.error is not None and ep.error.errno == errno.ETIMEDOUT
    assert state_times(s, ep.conn) == [("SYN-SENT", 0.0), ("CLOSED", 15.0)]
    assert s.client.connections == []
