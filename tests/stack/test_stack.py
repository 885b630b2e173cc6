"""The stack around the connections: demultiplexing, listeners, ports, strangers, bad input."""

from __future__ import annotations

import errno
import itertools

import pytest

from synack.scenarios.scenario import CLIENT_IP, SERVER_IP, Scenario, is_rst, is_synack
from synack.sim import PathConfig
from synack.stack import EPHEMERAL_HIGH, EPHEMERAL_LOW, Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp
from synack.wire.segment import ACK, RST, SYN, Segment

C = ip_to_bytes(CLIENT_IP)
S = ip_to_bytes(SERVER_IP)


def test_listen_twice_on_a_port_is_a_clear_error() -> None:
    st = Stack("10.0.0.2")
    st.listen(80)
    with pytest.raises(OSError) as exc:
        st.listen(80)
    assert exc.value.errno == errno.EADDRINUSE
    assert "80" in str(exc.value)


@pytest.mark.parametrize("port", [0, -1, 65536, "80"])
def test_bad_ports_are_rejected(port: object) -> None:
    st = Stack("10.0.0.2")
    if port != 0:  # listen(0) means "any free port"
        with pytest.raises(ValueError, match="port"):
            st.listen(port)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        st.connect("10.0.0.1", port, now=0.0)  # type: ignore[arg-type]


def test_listen_on_port_zero_picks_a_free_port() -> None:
    st = Stack("10.0.0.2", seed=3)
    ports = {st.listen(0).port for _ in range(50)}
    assert len(ports) == 50 and all(EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH for p in ports)


def test_bad_address_is_rejected() -> None:
    with pytest.raises(ValueError):
        Stack("10.0.0.300")


def test_explicit_local_port_in_use_is_a_clear_error() -> None:
    st = Stack("10.0.0.1")
    st.connect("10.0.0.2", 80, now=0.0, local_port=40000)
    with pytest.raises(OSError) as exc:
        st.connect("10.0.0.2", 80, now=0.0, local_port=40000)
    assert exc.value.errno == errno.EADDRINUSE
    # A different remote port makes a different 4-tuple: allowed.
    st.connect("10.0.0.2", 81, now=0.0, local_port=40000)


def test_ephemeral_ports_are_random_distinct_and_in_range() -> None:
    st = Stack("10.0.0.1", seed=5)
    ports = [st.connect("10.0.0.2", 80, now=0.0).local_port for _ in range(500)]
    assert len(set(ports)) == 500
    assert all(EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH for p in ports)
    # Not sequential: RFC 6056 randomisation.
    steps = {b - a for a, b in itertools.pairwise(ports)}
    assert len(steps) > 400


def test_ephemeral_port_never_reuses_a_tuple_in_time_wait() -> None:
    """A 4-tuple held in TIME-WAIT (C13) is not handed out again."""
    sc = Scenario(3, config=TcpConfig(msl=100.0))
    sc.listen(80)
    ep = sc.connect(80, b"x")
    sc.run(until=5)
    assert ep.conn.state is State.TIME_WAIT
    held = ep.conn.local_port
    # Exhaust the random choice: every port allocated must differ from the held one.
    st = sc.client
    for _ in range(300):
        c = st.connect(SERVER_IP, 80, now=sc.now)
        assert c.local_port != held


def test_demultiplexes_many_connections_by_four_tuple() -> None:
    """C1, C5: 20 concurrent connections each get exactly their own bytes."""
    sc = Scenario(4, path=PathConfig(delay=0.01, loss=0.02))
    sc.listen(80, send_after_eof=False)
    eps = [sc.connect(80, bytes([i]) * (3000 + i)) for i in range(20)]
    sc.run(until=600)
    by_port = {e.conn.remote_port: e for e in sc.server_endpoints}
    assert len(by_port) == 20
    for i, ep in enumerate(eps):
        srv = by_port[ep.conn.local_port]
        assert bytes(srv.received) == bytes([i]) * (3000 + i)
        assert ep.closed and srv.closed and ep.error is None


def test_c21_syn_to_closed_port_gets_rst_ack() -> None:
    """C21: RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    st = Stack("10.0.0.2")
    syn = Segment(40000, 9, 123456, 0, SYN, 65535, mss=1460)
    st.receive_packet(encode_ipv4_tcp(C, S, syn), 0.0)
    out = st.packets_to_send(0.0)
    assert len(out) == 1
    src, dst, rst = decode_ipv4_tcp(out[0])
    assert (src, dst) == (S, C)
    assert rst.flags == RST | ACK and rst.seq == 0 and rst.ack == 123457
    assert (rst.src_port, rst.dst_port) == (9, 40000)
    assert st.stats["rst_sent"] == 1


def test_c24_ack_to_unknown_connection_gets_rst_with_seq_of_ack() -> None:
    """C24: a segment for a connection that no longer exists: <SEQ=SEG.ACK><CTL=RST>."""
    st = Stack("10.0.0.2")
    data = Segment(40000, 80, 5000, 777, ACK, 65535, b"stale")
    st.receive_packet(encode_ipv4_tcp(C, S, data), 0.0)
    (pkt,) = st.packets_to_send(0.0)
    rst = decode_ipv4_tcp(pkt)[2]
    assert rst.flags == RST and rst.seq == 777


def test_rst_to_unknown_connection_is_never_answered() -> None:
    """C19: an RST is never answered (not even with an RST)."""
    st = Stack("10.0.0.2")
    st.listen(80)
    for port in (80, 81):
        st.receive_packet(encode_ipv4_tcp(C, S, Segment(40000, port, 1, 2, RST | ACK, 0)), 0.0)
    assert st.packets_to_send(0.0) == []
    assert st.stats["drop_rst_no_connection"] == 1
    assert st.stats["drop_rst_to_listener"] == 1


def test_ack_to_listener_gets_rst() -> None:
    st = Stack("10.0.0.2")
    st.listen(80)
    st.receive_packet(encode_ipv4_tcp(C, S, Segment(40000, 80, 1, 999, ACK, 100)), 0.0)
    (pkt,) = st.packets_to_send(0.0)
    rst = decode_ipv4_tcp(pkt)[2]
    assert rst.flags == RST and rst.seq == 999


def test_malformed_packets_are_counted_drops_not_exceptions() -> None:
    st = Stack("10.0.0.2")
    st.listen(80)
    good = encode_ipv4_tcp(C, S, Segment(40000, 80, 1, 0, SYN, 100, mss=1460))
    bad_sum = bytearray(good)
    bad_sum[-1] ^= 0x01  # breaks the TCP checksum (MSS option byte)
    st.receive_packet(bytes(bad_sum), 0.0)
    st.receive_packet(good[:10], 0.0)
    st.receive_packet(b"", 0.0)
    other = encode_ipv4_tcp(C, ip_to_bytes("10.0.0.9"), Segment(40000, 80, 1, 0, SYN, 100))
    st.receive_packet(other, 0.0)
    assert st.packets_to_send(0.0) == []
    assert st.stats["drop_tcp_bad_checksum"] == 1
    assert st.stats["drop_ip_truncated"] == 2
    assert st.stats["drop_ip_not_for_us"] == 1
    assert st.connections == []


def test_accept_backlog_full_holds_handshakes_until_accepted() -> None:
    """The final ACK is ignored while the accept queue is full; the SYN-ACK is resent."""
    sc = Scenario(6, path=PathConfig(delay=0.01))
    lst = sc.server.listen(80, backlog=2)
    eps = [sc.connect(80, b"") for _ in range(4)]
    sc.run(until=0.5)
    assert len(lst.accept_queue) == 2
    assert lst.half_open == 2
    assert sc.server.stats["drop_accept_queue_full"] >= 2
    # Accept the two queued ones; the others complete on the next SYN-ACK retransmission.
    assert lst.accept() is not None and lst.accept() is not None
    sc.run(until=3.0)
    assert len(lst.accept_queue) == 2 and lst.half_open == 0
    assert all(e.conn.state is not State.SYN_SENT for e in eps)


def test_half_open_limit_drops_syns_with_a_counted_reason() -> None:
    st = Stack("10.0.0.2", max_half_open=3, syncookies=False)
    st.listen(80)
    for i in range(5):
        syn = Segment(40000 + i, 80, 1000 * i, 0, SYN, 65535, mss=1460)
        st.receive_packet(encode_ipv4_tcp(C, S, syn), 0.0)
    out = [decode_ipv4_tcp(p)[2] for p in st.packets_to_send(0.0)]
    assert len(out) == 3 and all(is_synack(s) for s in out)
    assert st.stats["drop_syn_backlog_full"] == 2


def test_closing_listener_resets_unaccepted_connections() -> None:
    sc = Scenario(7, path=PathConfig(delay=0.01))
    lst = sc.server.listen(80)
    ep = sc.connect(80, b"", close_when_done=False)
    sc.run(until=0.2)
    assert len(lst.accept_queue) == 1
    lst.close()
    sc.net.kick()
    sc.run(until=0.5)
    assert sc.sent(src=SERVER_IP, predicate=is_rst)
    assert ep.error is not None and ep.error.errno == errno.ECONNRESET
    # The port is free again.
    sc.server.listen(80)


def test_time_wait_tuple_reused_by_a_newer_syn() -> None:
    """RFC 9293 §3.10.7.4 / RFC 6191: a new SYN with a higher sequence number may
    take over a TIME-WAIT 4-tuple (C13), as Linux allows; the RFC 6528 clock
    makes the new ISN higher (C15, C16)."""
    sc = Scenario(8, config=TcpConfig(msl=100.0))
    sc.listen(80, b"one")  # the server sends, then closes first
    first = sc.connect(80, b"", local_port=45000, close_when_done=False)
    sc.run(until=2)
    assert first.eof
    first.conn.close(sc.now)
    sc.net.kick()
    sc.run(until=4)
    srv = sc.server_endpoints[0].conn
    assert srv.state is State.TIME_WAIT and first.conn.state is State.CLOSED
    second = sc.connect(80, b"", local_port=45000, close_when_done=False)
    sc.run(until=6)
    assert second.error is None and second.conn.state is State.CLOSE_WAIT  # server sent, closed
    assert bytes(second.received) == b"one"
    assert sc.server.find(CLIENT_IP, 45000, 80) is not srv


def test_syn_cookies_when_half_open_table_is_full() -> None:
    """RFC 4987 §3.6: past the half-open limit SYNs get cookie SYN-ACKs and no state;
    the client's ACK returning the cookie rebuilds the connection (C7, C9), with the
    options carried in the timestamp; a forged cookie ACK is refused with RST."""
    sc = Scenario(11, path=PathConfig(delay=0.01))
    sc.server.max_half_open = 0  # every SYN is answered with a cookie
    lst = sc.server.listen(80)
    ep = sc.connect(80, b"hello through a cookie", close_when_done=False)
    sc.run(until=0.1)
    assert sc.server.stats["syncookies_sent"] == 1
    assert sc.server.stats["syncookies_validated"] == 1
    conn = lst.accept()
    assert conn is not None and conn.state is State.ESTABLISHED
    assert conn.recv() == b"hello through a cookie"
    assert conn.sack_ok and conn.ts_ok and conn.ws_ok  # came back in TSecr
    assert conn.peer_mss == 1460 and ep.conn.state is State.ESTABLISHED
    # A forged ACK with a guessed cookie is rejected with RST, and no state is made.
    forged = Segment(41000, 80, 12345, 0xDEADBEEF, ACK, 1000)
    sc.server.receive_packet(encode_ipv4_tcp(C, S, forged), sc.now)
    replies = [decode_ipv4_tcp(p)[2] for p in sc.server.packets_to_send(sc.now)]
    assert [r.flags for r in replies if r.dst_port == 41000] == [RST]
    assert sc.server.stats["syncookies_rejected"] == 1
    assert len(sc.server.connections) == 1


def test_connection_table_limit_is_a_clear_error_and_a_counted_drop() -> None:
    st = Stack("10.0.0.1", max_connections=2)
    st.connect("10.0.0.2", 80, now=0.0)
    st.connect("10.0.0.2", 80, now=0.0)
    with pytest.raises(OSError) as exc:
        st.connect("10.0.0.2", 80, now=0.0)
    assert exc.value.errno == errno.ENOBUFS
    st.listen(80)
    st.receive_packet(encode_ipv4_tcp(S, C, Segment(40000, 80, 1, 0, SYN, 100)), 0.0)
    assert st.stats["drop_connection_table_full"] == 1


def test_time_wait_table_recycles_the_oldest_entry() -> None:
    """Bounded TIME-WAIT (C13): past max_time_wait the oldest entry is recycled."""
    sc = Scenario(12, path=PathConfig(delay=0.01), config=TcpConfig(msl=100.0))
    sc.client.max_time_wait = 3
    sc.listen(80, send_after_eof=True)
    eps = []
    for _ in range(5):
        eps.append(sc.connect(80, b"x"))
        sc.run_for(1.0)
    tw = [e for e in eps if e.conn.state is State.TIME_WAIT]
    assert len(tw) == 3 and tw == eps[2:]
    assert sc.client.stats["time_wait_recycled"] == 2
    assert all(e.conn.state is State.CLOSED for e in eps[:2])


def _server_time_wait(config: TcpConfig) -> tuple[Scenario, Stack, Connection]:
    """The server closes first and holds 45000>80 in TIME-WAIT (C13); the client is gone."""
    sc = Scenario(8, config=config)
    sc.listen(80, b"one")
    first = sc.connect(80, b"", local_port=45000, close_when_done=False)
    sc.run(until=2)
    first.conn.close(sc.now)
    sc.net.kick()
    sc.run(until=4)
    srv = sc.server_endpoints[0].conn
    assert srv.state is State.TIME_WAIT and first.conn.state is State.CLOSED
    sc.server.packets_to_send(sc.now)
    return sc, sc.server, srv


def _syn_to_time_wait(
    st: Stack, srv: Connection, seq_delta: int, tsval: int | None, now: float
) -> list[Segment]:
    """A new SYN for the TIME-WAIT 4-tuple, its ISN ``seq_delta`` from RCV.NXT."""
    rcv_nxt = srv.rcv_nxt
    syn = Segment(
        45000,
        80,
        (rcv_nxt + seq_delta) & 0xFFFFFFFF,
        0,
        SYN,
        65535,
        mss=1460,
        tsval=tsval,
        tsecr=0 if tsval is not None else None,
    )
    st.receive_packet(encode_ipv4_tcp(C, S, syn), now)
    return [decode_ipv4_tcp(p)[2] for p in st.packets_to_send(now)]


def test_time_wait_syn_with_newer_tsval_and_lower_isn_accepted_rfc6191_c13() -> None:
    """RFC 6191 §2: timestamps were in use, the SYN's TSval is newer than TS.Recent: the
    SYN takes over the TIME-WAIT 4-tuple whatever its ISN (C13, C16)."""
    sc, st, srv = _server_time_wait(TcpConfig(msl=100.0))
    assert srv.ts_ok
    newer = (srv.ts_recent + 5000) & 0xFFFFFFFF
    out = _syn_to_time_wait(st, srv, -100000, newer, sc.now)
    assert len(out) == 1 and is_synack(out[0])
    assert st.find(CLIENT_IP, 45000, 80) is not srv


def test_time_wait_old_duplicate_syn_with_older_tsval_higher_isn_refused_rfc6191_c16() -> None:
    """RFC 6191 §2: an old duplicate SYN (TSval older than TS.Recent) is refused even with
    a higher ISN: the TIME-WAIT connection stays (C13, C16)."""
    sc, st, srv = _server_time_wait(TcpConfig(msl=100.0))
    older = (srv.ts_recent - 5000) & 0xFFFFFFFF
    out = _syn_to_time_wait(st, srv, 100000, older, sc.now)
    assert not any(is_synack(s) for s in out)
    assert st.find(CLIENT_IP, 45000, 80) is srv and srv.state is State.TIME_WAIT


@pytest.mark.parametrize(("seq_delta", "taken"), [(100000, True), (-100000, False), (0, False)])
def test_time_wait_syn_without_timestamps_uses_isn_rule_rfc1122(
    seq_delta: int, taken: bool
) -> None:
    """RFC 6191 §2 fallback without timestamps: RFC 1122 §4.2.2.13, the new SYN is
    accepted iff its ISN is above RCV.NXT of the TIME-WAIT connection (C13)."""
    sc, st, srv = _server_time_wait(TcpConfig(msl=100.0, timestamps=False))
    assert not srv.ts_ok
    out = _syn_to_time_wait(st, srv, seq_delta, None, sc.now)
    assert any(is_synack(s) for s in out) is taken
    assert (st.find(CLIENT_IP, 45000, 80) is not srv) is taken
