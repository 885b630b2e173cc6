"""Opening and closing, scenario by scenario, at exact virtual times (C6-C13, C17).

Every test runs the real stacks on the deterministic simulated network with a
0.05 s one-way delay (RTT 0.1 s), so each handshake and teardown step happens
at a time that can be computed by hand: the assertions below are exact state
sequences, exact sequence/acknowledgement numbers read off the wire, and exact
times of retransmissions (initial RTO 1 s, RFC 6298).
"""

from __future__ import annotations

import pytest

from synack.scenarios.apps import Endpoint
from synack.scenarios.scenario import (
    CLIENT_IP,
    SERVER_IP,
    Scenario,
    is_fin,
    is_pure_ack,
    is_syn,
    is_synack,
)
from synack.stack import Listener
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.segment import ACK, FIN, RST

MSL = 1.0  # TIME-WAIT is 2*MSL = 2 s in these tests


def state_times(s: Scenario, conn: Connection | str) -> list[tuple[str, float]]:
    """(new state, virtual time) for every transition of ``conn``, from the trace."""
    name = conn if isinstance(conn, str) else conn.name
    return [(r["new"], r["t"]) for r in s.records("state", conn=name)]


def assert_timeline(s: Scenario, conn: Connection | str, expected: list[tuple[str, float]]) -> None:
    got = state_times(s, conn)
    assert [st for st, _ in got] == [st for st, _ in expected], got
    for (st, t), (_, want) in zip(got, expected, strict=True):
        assert t == pytest.approx(want, abs=1e-9), f"{st} at {t}, expected {want}: {got}"


def times(events: list) -> list[float]:
    return [round(w.t, 9) for w in events]


def open_pair(s: Scenario, port: int = 80) -> tuple[Connection, Connection, Listener]:
    """A connection driven directly (no Endpoint): the client connects at t=0, both
    ends are ESTABLISHED at 0.15 s; returns (client conn, server conn, listener) at 0.19 s."""
    lst = s.server.listen(port)
    c = s.client.connect(SERVER_IP, port, now=s.now)
    s.net.kick()
    s.run(until=0.19)
    srv = lst.accept()
    assert srv is not None
    assert c.state is State.ESTABLISHED and srv.state is State.ESTABLISHED
    return c, srv, lst


# ----------------------------------------------------------------------- handshake
def test_c6_c7_c8_c9_handshake_states_and_acks() -> None:
    """C6, C7, C8, C9: CLOSED->SYN-SENT->ESTABLISHED on the client, LISTEN->SYN-RECEIVED->
    ESTABLISHED on the server; SYN-ACK acks client ISN+1, the final ACK acks
    server ISN+1; the client is open after one RTT, the server one one-way delay
    later (it needs the third segment)."""
    s = Scenario(1, config=TcpConfig.classic(msl=MSL))
    s.listen(80, close_when_done=False)
    ep = s.connect(80, b"", close_when_done=False)
    s.run(until=1.0)

    syns = s.sent(CLIENT_IP, is_syn)
    synacks = s.sent(SERVER_IP, is_synack)
    assert len(syns) == 1 and len(synacks) == 1
    syn, synack = syns[0].seg, synacks[0].seg
    assert syn.seq == ep.conn.iss
    assert synack.ack == (syn.seq + 1) & 0xFFFFFFFF  # C7
    srv = s.server.connections[0]
    assert synack.seq == srv.iss and srv.irs == syn.seq
    acks = s.sent(CLIENT_IP, lambda g: bool(g.flags & ACK) and not g.flags & (FIN | RST))
    assert len(acks) == 1  # C8: exactly one final ACK
    final = acks[0]
    assert final.t == pytest.approx(0.1)
    assert final.seg.ack == (synack.seq + 1) & 0xFFFFFFFF  # C8
    assert final.seg.seq == (syn.seq + 1) & 0xFFFFFFFF
    assert not final.seg.payload

    assert_timeline(s, ep.conn, [("SYN-SENT", 0.0), ("ESTABLISHED", 0.1)])
    assert_timeline(s, srv, [("SYN-RECEIVED", 0.05), ("ESTABLISHED", 0.15)])
    assert s.states(ep.conn) == ["CLOSED", "SYN-SENT", "ESTABLISHED"]
    assert s.states(srv) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    concepts = [r["concept"] for r in s.records("state")]
    assert concepts == ["C6", "C7", "C8", "C9"]
    # The client can send from t = 1 RTT; the server learns of the open 0.05 s later.
    est_c = s.records("state", conn=ep.conn.name, new="ESTABLISHED")[0]["t"]
    est_s = s.records("state", conn=srv.name, new="ESTABLISHED")[0]["t"]
    assert est_s - est_c == pytest.approx(0.05)
    assert ep.error is None and ep.connected


def test_c9_server_app_accepts_when_handshake_completes() -> None:
    """C9: once the server is ESTABLISHED the server application can accept the
    connection (here the final ACK is lost and the SYN-ACK retransmission
    completes the handshake at 1.15 s, with nothing else happening afterwards)."""
    s = Scenario(2, config=TcpConfig.classic(msl=MSL))
    lst = s.listen(80, close_when_done=False)
    s.drop_next(is_pure_ack, 1, src=CLIENT_IP)
    s.connect(80, b"", close_when_done=False)
    s.run(until=5.0)
    assert s.server.connections[0].state is State.ESTABLISHED
    assert len(lst.accept_queue) == 0, "established connection never handed to the app"
    assert len(s.server_endpoints) == 1


def test_c17_c6_lost_syn_retransmitted_at_rto() -> None:
    """C17, C6: the first SYN is lost; the same SYN (same ISN) is resent at
    exactly t = 1 s (initial RTO), and the connection then opens and carries data."""
    s = Scenario(3, config=TcpConfig.classic(msl=MSL))
    s.listen(80, payload=b"from server " * 50)
    s.drop_next(is_syn, 1)
    ep = s.connect(80, b"from client " * 50)
    s.run(until=20)
    syns = s.sent(CLIENT_IP, is_syn)
    assert times(syns) == [0.0, 1.0]
    assert syns[0].seg.seq == syns[1].seg.seq == ep.conn.iss
    assert times(s.sent(SERVER_IP, is_synack)) == [1.05]
    rto = s.records("timer", conn=ep.conn.name, timer="rto")
    assert [(r["t"], r["concept"]) for r in rto] == [(1.0, "C17")]
    assert state_times(s, ep.conn)[:2] == [("SYN-SENT", 0.0), ("ESTABLISHED", pytest.approx(1.1))]
    srv = s.server_endpoint
    assert s.states(srv.conn)[:3] == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED"]
    assert state_times(s, srv.conn)[:2] == [
        ("SYN-RECEIVED", pytest.approx(1.05)),
        ("ESTABLISHED", pytest.approx(1.15)),
    ]
    assert bytes(srv.received) == b"from client " * 50
    assert bytes(ep.received) == b"from server " * 50
    assert ep.error is None and srv.error is None
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED


def test_c17_c7_lost_synack_both_sides_retransmit() -> None:
    """C17, C7: the first SYN-ACK is lost.  The client resends its SYN at 1 s; the
    server resends its SYN-ACK when its own RTO fires at 1.05 s and again in answer
    to the retransmitted SYN; both end ESTABLISHED and data flows both ways."""
    s = Scenario(4, config=TcpConfig.classic(msl=MSL))
    s.listen(80, payload=b"S" * 3000)
    s.drop_next(is_synack, 1)
    ep = s.connect(80, b"C" * 3000)
    s.run(until=20)
    assert times(s.sent(CLIENT_IP, is_syn)) == [0.0, 1.0]
    synacks = s.sent(SERVER_IP, is_synack)
    assert times(synacks) == [0.05, 1.05, 1.05]
    assert len({(w.seg.seq, w.seg.ack) for w in synacks}) == 1  # the same SYN-ACK each time
    drops = [w for w in s.wire if w.kind == "drop"]
    assert len(drops) == 1 and drops[0].t == pytest.approx(0.05) and is_synack(drops[0].seg)
    srv = s.server_endpoint
    assert state_times(s, ep.conn)[:2] == [("SYN-SENT", 0.0), ("ESTABLISHED", pytest.approx(1.1))]
    assert state_times(s, srv.conn)[:2] == [
        ("SYN-RECEIVED", pytest.approx(0.05)),
        ("ESTABLISHED", pytest.approx(1.15)),
    ]
    assert bytes(srv.received) == b"C" * 3000 and bytes(ep.received) == b"S" * 3000
    assert ep.error is None and srv.error is None
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED


def test_c17_c9_lost_final_ack_synack_resent_and_reacked() -> None:
    """C17, C9: the client's final ACK is lost.  The server stays in SYN-RECEIVED,
    resends its SYN-ACK at its RTO (0.05 + 1 = 1.05 s); the already ESTABLISHED
    client answers that duplicate with a fresh ACK at 1.1 s, which opens the server
    at 1.15 s.  Then data still flows."""
    s = Scenario(5, config=TcpConfig.classic(msl=MSL))
    lst = s.server.listen(80)
    c = s.client.connect(SERVER_IP, 80, now=0.0)
    s.drop_next(is_pure_ack, 1, src=CLIENT_IP)
    s.net.kick()
    s.run(until=1.0)
    srv = s.server.connections[0]
    assert srv.state is State.SYN_RECEIVED and c.state is State.ESTABLISHED
    assert lst.half_open == 1
    s.run(until=2.0)
    assert times(s.sent(SERVER_IP, is_synack)) == [0.05, 1.05]
    client_acks = s.sent(CLIENT_IP, is_pure_ack)
    assert times(client_acks) == [0.1, 1.1]
    assert client_acks[1].seg.ack == (srv.iss + 1) & 0xFFFFFFFF
    assert state_times(s, srv) == [
        ("SYN-RECEIVED", pytest.approx(0.05)),
        ("ESTABLISHED", pytest.approx(1.15)),
    ]
    assert s.states(c) == ["CLOSED", "SYN-SENT", "ESTABLISHED"]
    rto = s.records("timer", conn=srv.name, timer="rto")
    assert [(r["t"], r["concept"]) for r in rto] == [(pytest.approx(1.05), "C17")]
    assert lst.half_open == 0 and lst.accept() is srv
    c.send(b"after the handshake")
    s.net.kick()
    s.run(until=3.0)
    assert srv.recv() == b"after the handshake"


def test_c9_c18_lost_final_ack_first_data_completes_handshake() -> None:
    """C9, C18: the final ACK is lost, but the client's first data segment (sent at
    0.5 s, before the server's SYN-ACK RTO at 1.05 s) carries the same ACK: it
    moves the server to ESTABLISHED at 0.55 s and its bytes are accepted."""
    s = Scenario(6, config=TcpConfig.classic(msl=MSL))
    lst = s.server.listen(80)
    c = s.client.connect(SERVER_IP, 80, now=0.0)
    s.drop_next(is_pure_ack, 1, src=CLIENT_IP)
    s.net.kick()
    s.net.call_at(0.5, lambda now: c.send(b"x" * 700))
    s.run(until=3.0)
    srv = s.server.connections[0]
    assert times(s.sent(SERVER_IP, is_synack)) == [0.05]  # no SYN-ACK retransmission
    data = s.sent(CLIENT_IP, lambda g: bool(g.payload))
    assert times(data) == [0.5]
    assert data[0].seg.ack == (srv.iss + 1) & 0xFFFFFFFF
    assert state_times(s, srv) == [
        ("SYN-RECEIVED", pytest.approx(0.05)),
        ("ESTABLISHED", pytest.approx(0.55)),
    ]
    assert lst.accept() is srv
    assert srv.recv() == b"x" * 700
    assert srv.info()["retransmits"] == 0 and c.info()["retransmits"] == 0


# ------------------------------------------------------------------------ teardown
def test_c10_c11_c12_c13_client_initiated_teardown() -> None:
    """C10, C11, C12, C13, active close by the client: ESTABLISHED->FIN-WAIT-1->FIN-WAIT-2->
    TIME-WAIT->CLOSED after exactly 2*MSL; the server ESTABLISHED->CLOSE-WAIT->
    LAST-ACK->CLOSED.  The server app reads the data and EOF, closes later."""
    s = Scenario(7, config=TcpConfig.classic(msl=MSL))
    c, srv, _ = open_pair(s)
    got = bytearray()

    def server_reads(now: float) -> None:
        got.extend(srv.recv())
        assert srv.eof_received

    s.net.call_at(0.2, lambda now: c.send(b"request " * 125))
    s.net.call_at(0.6, lambda now: c.shutdown(now))
    s.net.call_at(0.8, server_reads)
    s.net.call_at(1.0, lambda now: srv.close(now))
    s.run(until=3.0 - 1e-6)
    assert c.state is State.TIME_WAIT  # still waiting 2*MSL
    s.run(until=10)
    assert bytes(got) == b"request " * 125
    assert_timeline(
        s,
        c,
        [
            ("SYN-SENT", 0.0),
            ("ESTABLISHED", 0.1),
            ("FIN-WAIT-1", 0.6),
            ("FIN-WAIT-2", 0.7),
            ("TIME-WAIT", 1.05),
            ("CLOSED", 3.05),
        ],
    )
    assert_timeline(
        s,
        srv,
        [
            ("SYN-RECEIVED", 0.05),
            ("ESTABLISHED", 0.15),
            ("CLOSE-WAIT", 0.65),
            ("LAST-ACK", 1.0),
            ("CLOSED", 1.1),
        ],
    )
    fins_c, fins_s = s.sent(CLIENT_IP, is_fin), s.sent(SERVER_IP, is_fin)
    assert times(fins_c) == [0.6] and times(fins_s) == [1.0]
    # The FIN occupies one sequence number (C17): the ACKs acknowledge FIN seq + 1.
    ack_of_fin_c = [
        w
        for w in s.sent(SERVER_IP, is_pure_ack)
        if w.seg.ack == (fins_c[0].seg.seq + 1) & 0xFFFFFFFF
    ]
    assert times(ack_of_fin_c) == [0.65]
    last_ack = [
        w
        for w in s.sent(CLIENT_IP, is_pure_ack)
        if w.seg.ack == (fins_s[0].seg.seq + 1) & 0xFFFFFFFF
    ]
    assert times(last_ack) == [1.05]
    tw = s.records("state", conn=c.name, new="CLOSED")[0]
    assert tw["concept"] == "C13"
    assert s.client.connections == [] and s.server.connections == []
    assert not s.sent(predicate=lambda g: bool(g.flags & RST))


def test_c10_c11_c12_c13_server_initiated_teardown() -> None:
    """C10, C11, C12, C13, active close by the server: the server goes FIN-WAIT-1->FIN-WAIT-2->
    TIME-WAIT->CLOSED (2*MSL later), the client CLOSE-WAIT->LAST-ACK->CLOSED."""
    s = Scenario(8, config=TcpConfig.classic(msl=MSL))
    c, srv, _ = open_pair(s)
    s.net.call_at(0.2, lambda now: srv.send(b"response " * 200))
    s.net.call_at(0.6, lambda now: srv.shutdown(now))
    got = bytearray()

    def client_reads_and_closes(now: float) -> None:
        got.extend(c.recv())
        assert c.eof_received
        c.close(now)

    s.net.call_at(1.0, client_reads_and_closes)
    s.run(until=10)
    assert bytes(got) == b"response " * 200
    assert_timeline(
        s,
        srv,
        [
            ("SYN-RECEIVED", 0.05),
            ("ESTABLISHED", 0.15),
            ("FIN-WAIT-1", 0.6),
            ("FIN-WAIT-2", 0.7),
            ("TIME-WAIT", 1.05),
            ("CLOSED", 3.05),
        ],
    )
    assert_timeline(
        s,
        c,
        [
            ("SYN-SENT", 0.0),
            ("ESTABLISHED", 0.1),
            ("CLOSE-WAIT", 0.65),
            ("LAST-ACK", 1.0),
            ("CLOSED", 1.1),
        ],
    )
    assert times(s.sent(SERVER_IP, is_fin)) == [0.6]
    assert times(s.sent(CLIENT_IP, is_fin)) == [1.0]
    assert s.client.connections == [] and s.server.connections == []


def test_c6_c7_c8_simultaneous_open() -> None:
    """C6, C7, C8, simultaneous open (RFC 9293 figure 7): both ends connect() to each
    other at t=0 with fixed ports and no listener; each sees the other's SYN in
    SYN-SENT (-> SYN-RECEIVED at 0.05 s, SYN-ACK sent) and the other's SYN-ACK
    (-> ESTABLISHED at 0.1 s); data then flows both ways, byte-exact."""
    s = Scenario(9, config=TcpConfig.classic(msl=MSL))
    a = s.client.connect(SERVER_IP, 6000, now=0.0, local_port=5000)
    b = s.server.connect(CLIENT_IP, 5000, now=0.0, local_port=6000)
    pa = bytes(i % 251 for i in range(20000))
    pb = bytes(i % 241 for i in range(30000))
    ea = s.client_apps.add(Endpoint(a, pa), 0.0)
    eb = s.server_apps.add(Endpoint(b, pb), 0.0)
    s.net.kick()
    s.run(until=30)
    for conn in (a, b):
        assert state_times(s, conn)[:3] == [
            ("SYN-SENT", 0.0),
            ("SYN-RECEIVED", pytest.approx(0.05)),
            ("ESTABLISHED", pytest.approx(0.1)),
        ]
        assert s.states(conn)[-1] == "CLOSED"
    assert times(s.sent(CLIENT_IP, is_syn)) == [0.0] and times(s.sent(SERVER_IP, is_syn)) == [0.0]
    sa, sb = s.sent(CLIENT_IP, is_synack), s.sent(SERVER_IP, is_synack)
    assert times(sa) == [0.05] and times(sb) == [0.05]
    assert sa[0].seg.ack == (b.iss + 1) & 0xFFFFFFFF and sb[0].seg.ack == (a.iss + 1) & 0xFFFFFFFF
    assert s.server.stats["rst_sent"] == 0 and s.client.stats["rst_sent"] == 0
    assert bytes(ea.received) == pb and bytes(eb.received) == pa
    assert ea.error is None and eb.error is None
    assert a.info()["retransmits"] == 0 and b.info()["retransmits"] == 0


def test_c10_c13_simultaneous_close() -> None:
    """C10, C13, simultaneous close: both ends shut down at 0.5 s; the FINs cross,
    each end goes FIN-WAIT-1 -> CLOSING (peer's FIN before the ACK of its own) ->
    TIME-WAIT (0.6 s) -> CLOSED after 2*MSL (2.6 s)."""
    s = Scenario(10, config=TcpConfig.classic(msl=MSL))
    c, srv, _ = open_pair(s)

    def both(now: float) -> None:
        c.shutdown(now)
        srv.shutdown(now)

    s.net.call_at(0.5, both)
    s.run(until=10)
    assert_timeline(
        s,
        c,
        [
            ("SYN-SENT", 0.0),
            ("ESTABLISHED", 0.1),
            ("FIN-WAIT-1", 0.5),
            ("CLOSING", 0.55),
            ("TIME-WAIT", 0.6),
            ("CLOSED", 2.6),
        ],
    )
    assert_timeline(
        s,
        srv,
        [
            ("SYN-RECEIVED", 0.05),
            ("ESTABLISHED", 0.15),
            ("FIN-WAIT-1", 0.5),
            ("CLOSING", 0.55),
            ("TIME-WAIT", 0.6),
            ("CLOSED", 2.6),
        ],
    )
    assert times(s.sent(CLIENT_IP, is_fin)) == [0.5] and times(s.sent(SERVER_IP, is_fin)) == [0.5]
    assert c.info()["retransmits"] == 0 and srv.info()["retransmits"] == 0


class SendAfterEof(Endpoint):
    """Reads until the peer's FIN, and only then sends its own payload and closes."""

    def __init__(self, conn: Connection, later: bytes) -> None:
        super().__init__(conn, b"", close_when_done=False)
        self._later: bytes | None = later
        self.started_at: float | None = None

    def pump(self, now: float) -> None:
        super().pump(now)
        if self._later is not None and self.eof:
            self._payload = memoryview(self._later)
            self._later = None
            self.started_at = now
            self.close_when_done = True
            super().pump(now)


def test_c11_half_close_data_flows_other_way() -> None:
    """C11 half-close: the client sends 10 KB and shuts down; only after receiving
    that FIN does the server start sending 1 MB; the client receives all of it
    while in FIN-WAIT-2, then the server closes (LAST-ACK) and the client ends in
    TIME-WAIT -> CLOSED."""
    s = Scenario(11, config=TcpConfig.classic(msl=MSL))
    up = bytes((i * 7) % 256 for i in range(10 * 1024))
    down = bytes((i * 13 + 5) % 256 for i in range(1 << 20))
    eps: list[SendAfterEof] = []
    s.listen(80, factory=lambda conn: eps.append(SendAfterEof(conn, down)) or eps[-1])
    ep = s.connect(80, up)
    s.run(until=300)
    (srv,) = eps
    assert bytes(srv.received) == up
    assert bytes(ep.received) == down
    assert ep.error is None and srv.error is None
    assert s.states(ep.conn) == [
        "CLOSED",
        "SYN-SENT",
        "ESTABLISHED",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "CLOSED",
    ]
    assert s.states(srv.conn) == [
        "LISTEN",
        "SYN-RECEIVED",
        "ESTABLISHED",
        "CLOSE-WAIT",
        "LAST-ACK",
        "CLOSED",
    ]
    fw2 = s.records("state", conn=ep.conn.name, new="FIN-WAIT-2")[0]["t"]
    cw = s.records("state", conn=srv.conn.name, new="CLOSE-WAIT")[0]["t"]
    assert srv.started_at is not None and srv.started_at >= cw
    # Every data segment the client received was processed in FIN-WAIT-2: the
    # first one also carries the ACK of the client's FIN (it arrives in FIN-WAIT-1
    # and that ACK moves the client to FIN-WAIT-2 before its bytes are taken).
    fin = s.sent(CLIENT_IP, is_fin)[0].seg
    fin_ack = (fin.seq + len(fin.payload) + 1) & 0xFFFFFFFF
    data_in = [r for r in s.records("seg", conn=ep.conn.name, dir="in") if r["len"]]
    assert sum(r["len"] for r in data_in) >= len(down)
    assert {r["state"] for r in data_in} == {"FIN-WAIT-1", "FIN-WAIT-2"}
    in_fw1 = [r for r in data_in if r["state"] == "FIN-WAIT-1"]
    assert len(in_fw1) == 1 and in_fw1[0]["ack"] == fin_ack
    assert min(r["t"] for r in data_in) >= fw2
    # The client sent no data after its FIN; all its later segments are pure ACKs.
    fin_t = s.sent(CLIENT_IP, is_fin)[0].t
    assert all(not w.seg.payload for w in s.sent(CLIENT_IP) if w.t > fin_t)
    assert len(s.sent(CLIENT_IP, is_fin)) == 1
    tw = s.records("state", conn=ep.conn.name, new="TIME-WAIT")[0]["t"]
    closed = s.records("state", conn=ep.conn.name, new="CLOSED")[0]["t"]
    assert closed - tw == pytest.approx(2 * MSL)


def test_c17_c10_lost_fin_retransmitted_after_rto() -> None:
    """C17, C10: the client's FIN (sent at 0.6 s) is lost; it is retransmitted
    exactly one RTO (1 s, the RFC 6298 minimum) later at 1.6 s, and the teardown
    completes from there."""
    s = Scenario(12, config=TcpConfig.classic(msl=MSL))
    c, srv, _ = open_pair(s)
    s.drop_next(is_fin, 1, src=CLIENT_IP)
    s.net.call_at(0.6, lambda now: c.shutdown(now))
    s.net.call_at(2.0, lambda now: srv.close(now))
    s.run(until=10)
    fins = s.sent(CLIENT_IP, is_fin)
    assert times(fins) == [0.6, 1.6]
    assert fins[0].seg.seq == fins[1].seg.seq
    rto = s.records("timer", conn=c.name, timer="rto")
    assert [(r["t"], r["concept"]) for r in rto] == [(pytest.approx(1.6), "C17")]
    assert_timeline(
        s,
        c,
        [
            ("SYN-SENT", 0.0),
            ("ESTABLISHED", 0.1),
            ("FIN-WAIT-1", 0.6),
            ("FIN-WAIT-2", 1.7),
            ("TIME-WAIT", 2.05),
            ("CLOSED", 4.05),
        ],
    )
    assert_timeline(
        s,
        srv,
        [
            ("SYN-RECEIVED", 0.05),
            ("ESTABLISHED", 0.15),
            ("CLOSE-WAIT", 1.65),
            ("LAST-ACK", 2.0),
            ("CLOSED", 2.1),
        ],
    )
    assert c.info()["retransmits"] == 1


def test_c13_lost_last_ack_fin_resent_and_time_wait_restarts() -> None:
    """C13: the last ACK (client in TIME-WAIT at 1.05 s) is lost.  The server in
    LAST-ACK retransmits its FIN at its RTO (2.0 s); the client, still in
    TIME-WAIT, ACKs it again at 2.05 s and restarts 2*MSL, so it closes at 4.05 s
    instead of 3.05 s; the server closes on that ACK at 2.1 s."""
    s = Scenario(13, config=TcpConfig.classic(msl=MSL))
    c, srv, _ = open_pair(s)

    def server_closes(now: float) -> None:
        s.drop_next(is_pure_ack, 1, src=CLIENT_IP)  # the next client ACK: the last one
        srv.close(now)

    s.net.call_at(0.6, lambda now: c.shutdown(now))
    s.net.call_at(1.0, server_closes)
    s.run(until=10)
    fins = s.sent(SERVER_IP, is_fin)
    assert times(fins) == [1.0, 2.0]
    assert fins[0].seg.seq == fins[1].seg.seq
    last_acks = [
        w for w in s.sent(CLIENT_IP, is_pure_ack) if w.seg.ack == (fins[0].seg.seq + 1) & 0xFFFFFFFF
    ]
    assert times(last_acks) == [1.05, 2.05]
    drops = [w for w in s.wire if w.kind == "drop"]
    assert times(drops) == [1.05]
    notes = [r for r in s.records("note", conn=c.name) if r.get("concept") == "C13"]
    assert [r["t"] for r in notes] == [pytest.approx(2.05)]
    assert_timeline(
        s,
        c,
        [
            ("SYN-SENT", 0.0),
            ("ESTABLISHED", 0.1),
            ("FIN-WAIT-1", 0.6),
            ("FIN-WAIT-2", 0.7),
            ("TIME-WAIT", 1.05),
            ("CLOSED", 4.05),
        ],
    )
    assert_timeline(
        s,
        srv,
        [
            ("SYN-RECEIVED", 0.05),
            ("ESTABLISHED", 0.15),
            ("CLOSE-WAIT", 0.65),
            ("LAST-ACK", 1.0),
            ("CLOSED", 2.1),
        ],
    )
    assert srv.info()["retransmits"] == 1
