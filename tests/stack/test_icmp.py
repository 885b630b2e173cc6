"""ICMP in the stack: ping, protocol unreachable, and errors for connections (C22)."""

from __future__ import annotations

import errno

from synack.scenarios.scenario import CLIENT_IP, SERVER_IP, Scenario, is_syn
from synack.sim import PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.states import State
from synack.wire import icmp
from synack.wire.ipv4 import PROTO_ICMP, PROTO_UDP, ip_to_bytes, parse_ipv4_packet
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4, encode_ipv4_tcp
from synack.wire.segment import RST, Segment

C, S = ip_to_bytes(CLIENT_IP), ip_to_bytes(SERVER_IP)


def test_ping_is_answered_with_the_same_identifier_sequence_and_data() -> None:
    st = Stack(SERVER_IP)
    st.receive_packet(encode_ipv4(C, S, PROTO_ICMP, icmp.build_echo_request(7, 42, b"hello")), 0.0)
    (pkt,) = st.packets_to_send(0.0)
    hdr, payload = parse_ipv4_packet(pkt)
    assert (hdr.src, hdr.dst, hdr.proto) == (S, C, PROTO_ICMP)
    msg = icmp.parse_icmp(payload)
    assert msg.type == icmp.ICMP_ECHO_REPLY
    assert msg.rest == (7).to_bytes(2, "big") + (42).to_bytes(2, "big")
    assert bytes(msg.body) == b"hello"


def test_ping_can_be_disabled_and_is_then_a_counted_drop() -> None:
    st = Stack(SERVER_IP, answer_ping=False)
    st.receive_packet(encode_ipv4(C, S, PROTO_ICMP, icmp.build_echo_request(1, 1)), 0.0)
    assert st.packets_to_send(0.0) == []
    assert st.stats["drop_icmp_echo_ignored"] == 1


def test_other_protocols_get_protocol_unreachable_rate_limited() -> None:
    st = Stack(SERVER_IP, icmp_errors_per_second=10)
    udp = encode_ipv4(C, S, PROTO_UDP, b"\x00\x35\x00\x35\x00\x0c\x00\x00abcd")
    for _ in range(50):
        st.receive_packet(udp, 0.0)
    out = st.packets_to_send(0.0)
    assert len(out) == 10
    assert st.stats["drop_ip_unsupported_protocol"] == 50
    assert st.stats["icmp_errors_rate_limited"] == 40
    msg = icmp.parse_icmp(parse_ipv4_packet(out[0])[1])
    assert (msg.type, msg.code) == (icmp.ICMP_DEST_UNREACH, icmp.UNREACH_PROTOCOL)
    assert bytes(msg.body).startswith(udp[:20])
    # One second later the bucket has refilled.
    st.receive_packet(udp, 1.0)
    assert len(st.packets_to_send(1.0)) == 1


def firewall(sc: Scenario, action: str) -> None:
    """A middlebox that blocks the client's SYNs: with an ICMP error, an RST, or nothing."""

    def block(now: float, src: bytes, dst: bytes, packet: bytes) -> bool:
        if src != C:
            return False
        seg = decode_ipv4_tcp(packet)[2]
        if not is_syn(seg):
            return False
        if action == "icmp":
            body = icmp.build_dest_unreachable(13, packet)  # administratively prohibited
            sc.net.call_later(
                0.01,
                lambda t: sc.net.inject(
                    encode_ipv4(ip_to_bytes("10.0.0.254"), C, PROTO_ICMP, body)
                ),
            )
        elif action == "rst":
            rst = Segment(seg.dst_port, seg.src_port, 0, (seg.seq + 1) & 0xFFFFFFFF, RST | 0x10, 0)
            sc.net.call_later(0.01, lambda t: sc.net.inject(encode_ipv4_tcp(S, C, rst)))
        return True

    sc.net.add_filter(block)


def test_c22_firewall_answers_with_icmp_unreachable() -> None:
    """C22: the blocked client learns at once, from ICMP, with a clear error."""
    sc = Scenario(1, path=PathConfig(delay=0.05))
    sc.net.attach(Stack("10.0.0.254"))  # a route for the middlebox's address
    sc.listen(80)
    firewall(sc, "icmp")
    ep = sc.connect(80, b"x")
    sc.run(until=5)
    assert ep.error is not None and ep.error.errno == errno.EHOSTUNREACH
    assert "prohibited" in ep.error.message
    assert sc.states(ep.conn) == ["CLOSED", "SYN-SENT", "CLOSED"]
    assert sc.records("state", new="CLOSED", concept="C22")
    assert sc.records("error")[0]["t"] < 0.1


def test_c22_firewall_answers_with_rst() -> None:
    """C22: a firewall that resets looks like a closed port: connection refused."""
    sc = Scenario(2)
    sc.listen(80)
    firewall(sc, "rst")
    ep = sc.connect(80, b"x")
    sc.run(until=5)
    assert ep.error is not None and ep.error.errno == errno.ECONNREFUSED


def test_c22_c3_firewall_drops_silently_client_times_out() -> None:
    """C22 (or nothing): the SYN is retried with backoff, then a timeout error (C3)."""
    sc = Scenario(3, config=TcpConfig(syn_retries=3))
    sc.listen(80)
    firewall(sc, "drop")
    ep = sc.connect(80, b"x")
    sc.run(until=100)
    syns = [round(w.t, 6) for w in sc.sent(src=CLIENT_IP, predicate=is_syn)]
    assert syns == [0.0, 1.0, 3.0, 7.0]
    assert ep.error is not None and ep.error.errno == errno.ETIMEDOUT
    assert sc.records("error")[0]["t"] == 15.0


def unreachable_for(packet: bytes, code: int, mtu: int = 0) -> bytes:
    body = icmp.build_dest_unreachable(code, packet, next_hop_mtu=mtu)
    return encode_ipv4(ip_to_bytes("10.0.0.254"), C, PROTO_ICMP, body)


def test_icmp_soft_error_keeps_an_established_connection() -> None:
    """RFC 1122 §4.2.3.9 / RFC 5927: host unreachable for an established connection is
    soft: the transfer goes on."""
    sc = Scenario(4, path=PathConfig(delay=0.02))
    sc.listen(80, send_after_eof=True)
    ep = sc.connect(80, bytes(200_000))
    sc.run(until=0.1)
    in_flight = [
        w for w in sc.wire if w.kind == "send" and w.src == CLIENT_IP and w.seg and w.seg.payload
    ]
    data_pkt = in_flight[-1]  # the newest: not yet acknowledged
    pkt = encode_ipv4_tcp(C, S, data_pkt.seg)  # type: ignore[arg-type]
    sc.net.inject(unreachable_for(pkt, icmp.UNREACH_HOST))
    sc.run(until=100)
    assert ep.error is None
    assert ep.conn.soft_error == errno.EHOSTUNREACH
    assert len(sc.server_endpoint.received) == 200_000


def test_icmp_with_out_of_window_sequence_is_ignored() -> None:
    """RFC 5927 §4.1: an ICMP error whose quoted sequence number is not in flight is
    dropped, even during the handshake (a blind attacker must guess the window)."""
    sc = Scenario(5)
    sc.listen(80)
    sc.drop_next(is_syn)  # keep the client in SYN-SENT for a while
    ep = sc.connect(80, b"x")
    sc.run(until=0.5)
    forged = Segment(ep.conn.local_port, 80, (ep.conn.iss + 5000) & 0xFFFFFFFF, 0, 0x02, 0)
    sc.net.inject(unreachable_for(encode_ipv4_tcp(C, S, forged), icmp.UNREACH_PORT))
    sc.run(until=0.6)
    assert ep.conn.state is State.SYN_SENT
    assert sc.client.stats["drop_icmp_out_of_window"] == 1
    sc.run(until=10)
    assert ep.error is None and ep.received == b"" and ep.conn.state is not State.SYN_SENT


def test_fragmentation_needed_lowers_the_mss() -> None:
    """RFC 1191: 'fragmentation needed' with a next-hop MTU shrinks later segments."""
    sc = Scenario(6, path=PathConfig(delay=0.02))
    sc.listen(80, send_after_eof=True)
    ep = sc.connect(80, bytes(100_000))
    sc.run(until=0.05)
    first = next(w for w in sc.wire if w.src == CLIENT_IP and w.seg and w.seg.payload)
    sc.net.inject(
        unreachable_for(
            encode_ipv4_tcp(C, S, first.seg),  # type: ignore[arg-type]
            icmp.UNREACH_FRAG_NEEDED,
            mtu=1000,
        )
    )
    t = sc.now
    sc.run(until=100)
    later = [
        len(w.seg.payload) for w in sc.sent(src=CLIENT_IP) if w.t > t and w.seg and w.seg.payload
    ]
    assert later and max(later) <= 960
    assert len(sc.server_endpoint.received) == 100_000 and ep.error is None
