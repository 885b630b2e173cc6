"""Forged ICMP destination unreachables (RFC 5927, RFC 1122 §4.2.3.9), issue 8 item 3.

An ICMP error is believed only when the TCP header it quotes names an existing
connection and a sequence number in [SND.UNA, SND.NXT) (RFC 5927 §4.1).  Once
believed, it is a soft error for a synchronised connection (remembered, the
connection carries on) and a hard error only for a connection attempt
(SYN-SENT), which then fails with the errno a socket would report.  Run with
``-s`` for the figures quoted in docs/security.md.
"""

from __future__ import annotations

import errno
import random
from collections import Counter

import pytest

from synack.scenarios.scenario import CLIENT_IP, SERVER_IP, Scenario, is_syn, is_synack
from synack.sim import PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.states import State
from synack.wire import icmp
from synack.wire.ipv4 import PROTO_ICMP, ip_to_bytes
from synack.wire.packet import encode_ipv4, encode_ipv4_tcp
from synack.wire.segment import ACK, SYN, Segment

C, S = ip_to_bytes(CLIENT_IP), ip_to_bytes(SERVER_IP)
ROUTER = ip_to_bytes("10.0.0.254")
MASK = 0xFFFFFFFF
#: host, port, network, and the three "administratively prohibited" codes.
CODES = (icmp.UNREACH_HOST, icmp.UNREACH_PORT, icmp.UNREACH_NET, 9, 10, 13)
#: A 64 KiB receive buffer: transfers last long enough (~1.6 MB/s at 40 ms RTT) for the
#: attacks to run while the connections are established.
SLOW = TcpConfig(rcv_buf=65536)


def forged_unreachable(
    code: int, src: bytes, dst: bytes, sport: int, dport: int, seq_no: int, to: bytes
) -> bytes:
    """ICMP destination unreachable sent by ROUTER to ``to``, quoting a TCP segment
    ``src:sport > dst:dport seq`` (what a router would quote of a packet ``to`` sent)."""
    quoted = encode_ipv4_tcp(
        src, dst, Segment(sport, dport, seq_no & MASK, 0, ACK, 1000, b"\x00" * 8)
    )
    return encode_ipv4(ROUTER, to, PROTO_ICMP, icmp.build_dest_unreachable(code, quoted))


@pytest.mark.slow
def test_blind_forged_unreachables_do_not_kill_established_connections() -> None:
    """20,000 forged unreachables (host/port/net/admin codes, random quoted sequence
    numbers, both directions, 4 connections) during four 4 MB transfers: every transfer
    completes intact; every ICMP is accounted for (accepted soft error or counted
    out-of-window drop); soft errors only on connections whose window a quote hit."""
    sc = Scenario(31, config=SLOW, path=PathConfig(delay=0.02), record_wire=False)
    sc.client.tracer = sc.server.tracer = None
    sc.listen(80, send_after_eof=True)
    payloads = [random.Random(i).randbytes(4_000_000) for i in range(4)]
    eps = [sc.connect(80, p) for p in payloads]
    sc.run(until=0.3)
    assert all(e.conn.state is State.ESTABLISHED for e in eps)
    rng = random.Random(3131)
    sent: Counter[str] = Counter()
    in_window_at_send = 0

    def fire(now: float) -> None:
        nonlocal in_window_at_send
        assert all(e.conn.state is State.ESTABLISHED for e in eps)  # alive all along
        for _ in range(20):
            ep = rng.choice(eps)
            code = rng.choice(CODES)
            seq_no = rng.getrandbits(32)
            if rng.random() < 0.5:  # quotes a segment the client sent
                c = ep.conn
                pkt = forged_unreachable(code, C, S, c.local_port, 80, seq_no, C)
                sent["to_client"] += 1
                una, nxt = c.snd_una, c.snd_nxt
                if (seq_no - una) & MASK < (nxt - una) & MASK:
                    in_window_at_send += 1
            else:  # quotes a segment the server sent
                pkt = forged_unreachable(code, S, C, 80, ep.conn.local_port, seq_no, S)
                sent["to_server"] += 1
            sc.net.inject(pkt)
        if sent.total() < 20_000:
            sc.net.call_later(0.001, fire)

    sc.net.call_later(0.0, fire)
    sc.run(until=300)
    assert sent.total() == 20_000
    srv = {e.conn.remote_port: e for e in sc.server_endpoints}
    for ep, payload in zip(eps, payloads, strict=True):
        assert ep.error is None and srv[ep.conn.local_port].error is None
        assert bytes(srv[ep.conn.local_port].received) == payload
        assert ep.closed
    cs, ss = sc.client.stats, sc.server.stats
    accepted = cs["icmp_unreachable_accepted"] + ss["icmp_unreachable_accepted"]
    dropped = cs["drop_icmp_out_of_window"] + ss["drop_icmp_out_of_window"]
    assert accepted + dropped == sent.total()
    assert cs["icmp_unreachable_accepted"] + cs["drop_icmp_out_of_window"] == sent["to_client"]
    # Each accepted error was a soft one, on a connection whose window it hit.
    per_conn = [e.conn.stats["icmp_errors"] for e in eps]
    assert sum(per_conn) == cs["icmp_unreachable_accepted"]
    for ep, n in zip(eps, per_conn, strict=True):
        assert (ep.conn.soft_error is not None) == (n > 0)
    # A quote in flight when sent may be acked before it arrives: accepted <= in-window.
    assert cs["icmp_unreachable_accepted"] <= in_window_at_send
    print(
        f"\nFIGURES icmp-blind: forged={sent.total()} to_client={sent['to_client']} "
        f"to_server={sent['to_server']} accepted_soft={accepted} "
        f"in_window_when_sent={in_window_at_send} dropped_out_of_window={dropped} "
        f"connections_killed=0 transfers_intact=4"
    )


def test_in_window_unreachables_are_soft_errors_for_established_connections() -> None:
    """The weakened attacker quotes SND.UNA exactly, 1,000 times, all codes: accepted,
    the connection keeps going (soft error, RFC 1122 §4.2.3.9) and completes."""
    sc = Scenario(32, config=SLOW, path=PathConfig(delay=0.02), record_wire=False)
    sc.client.tracer = sc.server.tracer = None
    sc.listen(80, send_after_eof=True)
    payload = random.Random(32).randbytes(3_000_000)
    ep = sc.connect(80, payload)
    sc.run(until=0.3)
    c = ep.conn
    n = 0

    def fire(now: float) -> None:
        nonlocal n
        if c.snd_una != c.snd_nxt:
            # Handed straight to the client, so the quote is in window on arrival.
            sc.client.receive_packet(
                forged_unreachable(CODES[n % len(CODES)], C, S, c.local_port, 80, c.snd_una, C), now
            )
            n += 1
        if n < 1000 and c.state is State.ESTABLISHED:
            sc.net.call_later(0.001, fire)

    sc.net.call_later(0.0, fire)
    sc.run(until=120)
    assert n == 1000
    assert sc.client.stats["icmp_unreachable_accepted"] == 1000
    assert c.stats["icmp_errors"] == 1000
    assert ep.error is None and bytes(sc.server_endpoint.received) == payload
    assert c.soft_error in (errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ENETUNREACH)


@pytest.mark.parametrize(
    ("code", "err"),
    [
        (icmp.UNREACH_HOST, errno.EHOSTUNREACH),
        (icmp.UNREACH_PORT, errno.ECONNREFUSED),
        (icmp.UNREACH_NET, errno.ENETUNREACH),
        (9, errno.ENETUNREACH),
        (10, errno.EHOSTUNREACH),
        (13, errno.EHOSTUNREACH),
    ],
)
def test_in_window_unreachable_aborts_a_connection_attempt(code: int, err: int) -> None:
    """RFC 1122 / RFC 5927: for a connection attempt (SYN-SENT) the error is hard:
    the attempt ends at once with the errno a socket reports, counted as accepted."""
    sc = Scenario(33, path=PathConfig(delay=0.05))
    sc.listen(80)
    sc.drop_next(is_syn)  # hold the client in SYN-SENT
    ep = sc.connect(80, b"x")
    sc.run(until=0.2)
    c = ep.conn
    assert c.state is State.SYN_SENT
    sc.net.inject(forged_unreachable(code, C, S, c.local_port, 80, c.iss, C))
    sc.run(until=0.5)
    assert c.state is State.CLOSED
    assert ep.error is not None and ep.error.errno == err
    assert "(ICMP)" in ep.error.message
    assert sc.client.stats["icmp_unreachable_accepted"] == 1
    assert sc.states(c) == ["CLOSED", "SYN-SENT", "CLOSED"]


@pytest.mark.parametrize("code", CODES)
def test_out_of_window_unreachable_is_ignored_by_a_connection_attempt(code: int) -> None:
    """A quote that is not our SYN's sequence number (1,000 random guesses) is dropped
    and counted; the attempt goes on and the connection opens."""
    sc = Scenario(34, path=PathConfig(delay=0.05))
    sc.listen(80, send_after_eof=True)
    sc.drop_next(is_syn)
    ep = sc.connect(80, b"hello")
    sc.run(until=0.2)
    c = ep.conn
    rng = random.Random(code)
    for _ in range(1000):
        guess = rng.getrandbits(32)
        if guess == c.iss:
            continue
        sc.client.receive_packet(forged_unreachable(code, C, S, c.local_port, 80, guess, C), sc.now)
    assert c.state is State.SYN_SENT
    assert sc.client.stats["drop_icmp_out_of_window"] >= 999
    assert sc.client.stats["icmp_unreachable_accepted"] == 0
    sc.run(until=10)
    assert ep.error is None and ep.connected
    assert bytes(sc.server_endpoint.received) == b"hello"


def test_unreachable_for_a_half_open_passive_connection_is_soft() -> None:
    """A listener's half-open entry (SYN-RECEIVED) quoted in window is not torn down by
    the ICMP (soft); the handshake still completes."""
    sc = Scenario(35, path=PathConfig(delay=0.05))
    sc.listen(80, send_after_eof=True)
    sc.drop_next(lambda s: is_synack(s), count=1)
    ep = sc.connect(80, b"hi")
    sc.run(until=0.1)
    half = sc.server.find(CLIENT_IP, ep.conn.local_port, 80)
    assert half is not None and half.state is State.SYN_RECEIVED
    sc.server.receive_packet(
        forged_unreachable(icmp.UNREACH_PORT, S, C, 80, ep.conn.local_port, half.iss, S), sc.now
    )
    assert half.state is State.SYN_RECEIVED and half.soft_error == errno.ECONNREFUSED
    sc.run(until=10)
    assert ep.error is None and bytes(sc.server_endpoint.received) == b"hi"


def test_unreachables_that_name_no_connection_are_counted_drops() -> None:
    """Quotes for an unknown 4-tuple, for a packet we did not send, or not quoting TCP:
    counted drops, never an exception, never a reply."""
    st = Stack(CLIENT_IP)
    conn = st.connect(SERVER_IP, 80, now=0.0, local_port=40000)
    st.packets_to_send(0.0)
    st.receive_packet(forged_unreachable(1, C, S, 40001, 80, conn.iss, C), 0.0)
    st.receive_packet(forged_unreachable(1, S, C, 80, 40000, conn.iss, C), 0.0)
    udp = encode_ipv4(C, S, 17, b"\x9c\x40\x00\x50\x00\x10\x00\x00" + b"x" * 8)
    st.receive_packet(encode_ipv4(ROUTER, C, PROTO_ICMP, icmp.build_dest_unreachable(3, udp)), 0.0)
    truncated = icmp.build_dest_unreachable(
        1, encode_ipv4_tcp(C, S, Segment(40000, 80, conn.iss, 0, SYN, 100))[:24]
    )
    st.receive_packet(encode_ipv4(ROUTER, C, PROTO_ICMP, truncated), 0.0)
    assert st.stats["drop_icmp_no_connection"] == 1
    assert st.stats["drop_icmp_quote_not_ours"] == 2
    assert st.stats["drop_icmp_truncated"] == 1
    assert conn.state is State.SYN_SENT and conn.soft_error is None
    assert st.packets_to_send(0.0) == []


def test_forged_fragmentation_needed_cannot_push_the_mss_below_the_floor() -> None:
    """RFC 5927 §7 (PMTUD attacks): a 'fragmentation needed' with an absurd next-hop MTU
    (below 128) is ignored; even in window the MSS never drops under 88 bytes."""
    sc = Scenario(36, path=PathConfig(delay=0.02), record_wire=False)
    sc.client.tracer = sc.server.tracer = None
    sc.listen(80, send_after_eof=True)
    payload = random.Random(36).randbytes(200_000)
    ep = sc.connect(80, payload)
    sc.run(until=0.1)
    c = ep.conn
    mss = c.eff_mss
    for mtu in (0, 20, 68, 127):
        quoted = encode_ipv4_tcp(C, S, Segment(c.local_port, 80, c.snd_una, 0, ACK, 1, b"x"))
        body = icmp.build_dest_unreachable(icmp.UNREACH_FRAG_NEEDED, quoted, next_hop_mtu=mtu)
        sc.client.receive_packet(encode_ipv4(ROUTER, C, PROTO_ICMP, body), sc.now)
    assert c.eff_mss == mss
    sc.run(until=60)
    assert ep.error is None and bytes(sc.server_endpoint.received) == payload
