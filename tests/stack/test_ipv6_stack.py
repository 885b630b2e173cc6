"""The dual stack: the same TCP rules over IPv4 and IPv6 (one parametrised suite), the
IPv6-only reactions (extension headers, ICMPv6, PMTU to 1280 and not below), and both
families side by side on one simulated network."""

from __future__ import annotations

import errno

import pytest
from scapy.all import TCP as ScapyTCP
from scapy.all import (
    ICMPv6EchoReply,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    raw,
)
from scapy.layers.inet6 import HBHOptUnknown, PadN

from synack.sim import Network, PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.events import ConnectionFailed
from synack.tcp.states import State
from synack.wire.icmpv6 import (
    build_dest6_unreachable,
    build_echo6_request,
    build_icmpv6,
    build_packet_too_big,
    parse_icmpv6,
)
from synack.wire.ipv6 import PROTO_ICMPV6, addr_to_bytes, parse_ipv6_packet
from synack.wire.packet import (
    decode_ipv4_tcp,
    decode_ipv6_tcp,
    encode_ip_tcp,
    encode_ipv6,
)
from synack.wire.segment import ACK, RST, SYN, Segment

FAMILIES = {"v4": ("10.0.0.1", "10.0.0.2"), "v6": ("2001:db8::1", "2001:db8::2")}
A6, B6 = addr_to_bytes("2001:db8::1"), addr_to_bytes("2001:db8::2")


def decode(pkt: bytes) -> tuple[bytes, bytes, Segment]:
    return decode_ipv6_tcp(pkt) if pkt[0] >> 4 == 6 else decode_ipv4_tcp(pkt)


def pump(a: Stack, b: Stack, now: float = 0.0, rounds: int = 6) -> None:
    for _ in range(rounds):
        for p in a.packets_to_send(now):
            b.receive_packet(p, now)
        for p in b.packets_to_send(now):
            a.receive_packet(p, now)


def pair(fam: str, **kw: object) -> tuple[Stack, Stack, Connection, Connection]:
    ca_ip, cb_ip = FAMILIES[fam]
    a = Stack(ca_ip, isn_secret=b"a" * 16, **kw)  # type: ignore[arg-type]
    b = Stack(cb_ip, isn_secret=b"b" * 16, **kw)  # type: ignore[arg-type]
    lst = b.listen(80)
    ca = a.connect(cb_ip, 80, now=0.0)
    pump(a, b)
    cb = lst.accept()
    assert cb is not None and cb.state is State.ESTABLISHED
    return a, b, ca, cb


# ----------------------------------------------------------------- both families, same rules


@pytest.mark.parametrize("fam", FAMILIES)
def test_handshake_data_close_and_time_wait(fam: str) -> None:
    a, b, ca, cb = pair(fam)
    assert len(ca.local_ip) == len(cb.remote_ip) == (4 if fam == "v4" else 16)
    # MSS from the family's header size: 1460 over IPv4, 1440 over IPv6 (MTU 1500).
    assert ca.peer_mss == cb.peer_mss == (1460 if fam == "v4" else 1440)
    ca.send(b"x" * 5000)
    pump(a, b)
    assert cb.recv() == b"x" * 5000
    ca.close(0.0)
    cb.close(0.0)
    pump(a, b)
    assert ca.state is State.TIME_WAIT
    assert a.find(FAMILIES[fam][1], 80, ca.local_port) is ca
    name = ca.name
    assert name.startswith("[2001:db8::1]:") if fam == "v6" else name.startswith("10.0.0.1:")


@pytest.mark.parametrize("fam", FAMILIES)
def test_stranger_gets_rst_from_the_right_family(fam: str) -> None:
    c, s = (addr_to_bytes(x) for x in FAMILIES[fam])
    st = Stack(FAMILIES[fam][1])
    st.receive_packet(encode_ip_tcp(c, s, Segment(40000, 81, 100, 0, SYN, 1000)), 0.0)
    (out,) = st.packets_to_send(0.0)
    src, dst, rst = decode(out)
    assert (src, dst, rst.flags, rst.ack) == (s, c, RST | ACK, 101)


@pytest.mark.parametrize("fam", FAMILIES)
def test_syn_cookies(fam: str) -> None:
    c_ip, s_ip = FAMILIES[fam]
    c, s = addr_to_bytes(c_ip), addr_to_bytes(s_ip)
    st = Stack(s_ip, max_half_open=0, isn_secret=b"k" * 16)
    lst = st.listen(80)
    st.receive_packet(encode_ip_tcp(c, s, Segment(40000, 80, 100, 0, SYN, 1000, mss=1440)), 0.0)
    (out,) = st.packets_to_send(0.0)
    _, _, synack = decode(out)
    assert st.stats["syncookies_sent"] == 1 and synack.flags == SYN | ACK
    ack = Segment(40000, 80, 101, (synack.seq + 1) & 0xFFFFFFFF, ACK, 1000)
    st.receive_packet(encode_ip_tcp(c, s, ack), 0.5)
    conn = lst.accept()
    assert conn is not None and conn.state is State.ESTABLISHED
    # Both tables hold 1440 (Linux's msstab and msstab_v6).
    assert conn.peer_mss == 1440 and st.stats["syncookies_validated"] == 1


def test_default_peer_mss_without_option_is_per_family() -> None:
    for fam, want in (("v4", 536), ("v6", 1220)):  # RFC 9293 §3.7.1
        c, s = (addr_to_bytes(x) for x in FAMILIES[fam])
        st = Stack(FAMILIES[fam][1])
        st.listen(80)
        st.receive_packet(encode_ip_tcp(c, s, Segment(40000, 80, 100, 0, SYN, 1000)), 0.0)
        st.packets_to_send(0.0)
        (conn,) = st.connections
        assert conn.peer_mss == want


def test_isns_differ_between_families_and_tuples() -> None:
    st = Stack("10.0.0.1", addresses=("2001:db8::1",), isn_secret=b"s" * 16)
    c4 = st.connect("10.0.0.2", 80, now=0.0, local_port=40000)
    c6 = st.connect("2001:db8::2", 80, now=0.0, local_port=40000)
    assert c4.local_ip == addr_to_bytes("10.0.0.1") and c6.local_ip == A6
    assert c4.iss != c6.iss
    with pytest.raises(OSError) as info:
        Stack("10.0.0.1").connect("2001:db8::2", 80, now=0.0)
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_dual_stack_listener_and_v6only() -> None:
    st = Stack("10.0.0.2", addresses=("2001:db8::2",))
    st.listen(80)
    st.listen(81, families=(6,))  # IPV6_V6ONLY
    c4, s4 = addr_to_bytes("10.0.0.1"), addr_to_bytes("10.0.0.2")
    for port, c, s, want in (
        (80, c4, s4, SYN | ACK),
        (80, A6, B6, SYN | ACK),
        (81, A6, B6, SYN | ACK),
        (81, c4, s4, RST | ACK),
    ):
        st.receive_packet(encode_ip_tcp(c, s, Segment(40000, port, 1, 0, SYN, 1000)), 0.0)
        (out,) = st.packets_to_send(0.0)
        assert decode(out)[2].flags == want, (port, len(c))


# ------------------------------------------------------------------------- IPv6 only


def test_ping6_answered_and_scapy_agrees() -> None:
    st = Stack("2001:db8::2")
    req = build_echo6_request(A6, B6, 5, 6, b"hello")
    st.receive_packet(encode_ipv6(A6, B6, PROTO_ICMPV6, req), 0.0)
    (out,) = st.packets_to_send(0.0)
    reply = IPv6(out)
    assert isinstance(reply.payload, ICMPv6EchoReply)
    assert (reply.payload.id, reply.payload.seq, reply.payload.data) == (5, 6, b"hello")
    check = reply.copy()
    del check.payload.cksum
    assert IPv6(raw(check)).payload.cksum == reply.payload.cksum


def test_unknown_next_header_gets_parameter_problem() -> None:
    st = Stack("2001:db8::2")
    udp = raw(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=17) / (b"\0" * 8))
    st.receive_packet(udp, 0.0)
    (out,) = st.packets_to_send(0.0)
    pp = IPv6(out)
    assert isinstance(pp.payload, ICMPv6ParamProblem)
    assert (pp.payload.code, pp.payload.ptr) == (1, 6)  # the fixed header's Next Header
    assert st.stats["drop_ip_unsupported_protocol"] == 1


def test_extension_headers_at_the_stack() -> None:
    st = Stack("2001:db8::2")
    st.listen(80)
    syn = raw(
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / ScapyTCP(sport=40000, dport=80, flags="S", seq=1)
    )
    st.receive_packet(syn, 0.0)
    (out,) = st.packets_to_send(0.0)
    assert decode(out)[2].flags == SYN | ACK
    # 24 bytes of fragment data (a multiple of 8): a fragment, dropped without a word.
    frag = raw(
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(m=1)
        / ScapyTCP(sport=40001, dport=80, flags="S")
        / (b"\0" * 4)
    )
    st.receive_packet(frag, 0.0)
    # The kernel's router solicitation to ff02::2 on a new TUN link.
    rs = raw(IPv6(src="fe80::1", dst="ff02::2", nh=58, hlim=255) / (bytes((133,)) + bytes(7)))
    st.receive_packet(rs, 0.0)
    assert st.packets_to_send(0.0) == []
    assert st.stats["drop_ip6_fragment"] == 1 and st.stats["drop_ip6_multicast_ignored"] == 1


def _icmp_for(conn: Connection, build: object, *args: object) -> bytes:
    """An ICMPv6 error from a router quoting ``conn``'s next segment."""
    seg = Segment(conn.local_port, conn.remote_port, conn.snd_una, 0, ACK, 100, bytes(1400))
    quoted = encode_ip_tcp(conn.local_ip, conn.remote_ip, seg)
    router = addr_to_bytes("2001:db8:ff::1")
    body = build(router, conn.local_ip, *args, quoted)  # type: ignore[operator]
    return encode_ipv6(router, conn.local_ip, PROTO_ICMPV6, body)


def test_unreachable_in_syn_sent_is_hard_and_out_of_window_is_ignored() -> None:
    st = Stack("2001:db8::1")
    conn = st.connect("2001:db8::2", 80, now=0.0)
    st.packets_to_send(0.0)
    bad = Segment(conn.local_port, 80, (conn.iss + 5000) & 0xFFFFFFFF, 0, SYN, 1)
    router = addr_to_bytes("2001:db8:ff::1")
    body = build_dest6_unreachable(router, A6, 4, encode_ip_tcp(A6, B6, bad))
    st.receive_packet(encode_ipv6(router, A6, PROTO_ICMPV6, body), 0.1)
    assert conn.state is State.SYN_SENT and st.stats["drop_icmp_out_of_window"] == 1
    st.receive_packet(_icmp_for(conn, build_dest6_unreachable, 4), 0.2)  # port unreachable
    assert conn.state is State.CLOSED
    errs = [e for e in st.events() if isinstance(e, ConnectionFailed)]
    assert errs and errs[0].errno == errno.ECONNREFUSED


def test_admin_prohibited_is_a_soft_error_once_established() -> None:
    a, _, ca, _ = pair("v6")
    ca.send(b"y" * 3000)
    a.packets_to_send(0.0)  # in flight, lost
    a.receive_packet(_icmp_for(ca, build_dest6_unreachable, 1), 0.1)
    assert ca.state is State.ESTABLISHED and ca.soft_error == errno.EHOSTUNREACH  # C22


def test_packet_too_big_lowers_mss_down_to_1280_and_not_below() -> None:
    a, b, ca, cb = pair("v6")
    ts = 12 if ca.ts_ok else 0
    assert ca.eff_mss == 1440 - ts
    ca.send(b"z" * 20000)
    a.packets_to_send(0.0)  # all lost behind the small link
    a.receive_packet(_icmp_for(ca, build_packet_too_big, 1400), 0.1)
    assert ca.eff_mss == 1400 - 60 - ts
    a.receive_packet(_icmp_for(ca, build_packet_too_big, 1000), 0.2)  # below the minimum
    assert ca.eff_mss == 1280 - 60 - ts
    a.receive_packet(_icmp_for(ca, build_packet_too_big, 576), 0.3)
    assert ca.eff_mss == 1280 - 60 - ts
    out = a.packets_to_send(0.3)
    assert out and max(len(p) for p in out) <= 1280
    for p in out:
        assert parse_ipv6_packet(p).header.src == A6
        b.receive_packet(p, 0.3)
    # Only what fits the path goes out; the peer gets it all.
    pump(a, b, 0.4, rounds=40)
    assert cb.recv() == b"z" * 20000


def test_icmpv6_checksum_and_ndp_are_counted() -> None:
    st = Stack("2001:db8::2")
    req = bytearray(build_echo6_request(A6, B6, 1, 1))
    req[2] ^= 0xFF
    st.receive_packet(encode_ipv6(A6, B6, PROTO_ICMPV6, bytes(req)), 0.0)
    st.receive_packet(
        encode_ipv6(A6, B6, PROTO_ICMPV6, build_icmpv6(A6, B6, 135, 0, bytes(4), B6)), 0.0
    )
    assert st.packets_to_send(0.0) == []
    assert st.stats["drop_icmp_bad_checksum"] == 1 and st.stats["drop_icmp6_ndp_ignored"] == 1
    assert parse_icmpv6(build_echo6_request(A6, B6, 1, 1), A6, B6).type == 128


# ------------------------------------------------------------- side by side, simulated


@pytest.mark.parametrize("seed", [1, 2])
def test_both_families_side_by_side_through_loss(seed: int) -> None:
    net = Network(seed)
    a = Stack("10.0.0.1", addresses=("2001:db8::1",), seed=seed, isn_secret=b"a" * 16)
    b = Stack("10.0.0.2", addresses=("2001:db8::2",), seed=seed, isn_secret=b"b" * 16)
    net.attach(a)
    net.attach(b)
    path = PathConfig(delay=0.01, rate_bps=20e6, loss=0.01)
    for x, y in (("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8::2")):
        net.set_link(x, y, path)
    lst = b.listen(80, config=TcpConfig())
    data = {4: bytes(range(256)) * 800, 6: bytes(reversed(range(256))) * 800}
    conns = {4: a.connect("10.0.0.2", 80, now=0.0), 6: a.connect("2001:db8::2", 80, now=0.0)}
    got: dict[int, bytearray] = {4: bytearray(), 6: bytearray()}
    served: list[Connection] = []

    def step(now: float) -> None:
        while (c := lst.accept()) is not None:
            served.append(c)
        for c in served:
            got[4 if len(c.remote_ip) == 4 else 6] += c.recv()
        for fam, conn in conns.items():
            if conn.state is State.ESTABLISHED and data[fam]:
                n = conn.send(data[fam][: conn.send_space])
                data[fam] = data[fam][n:]
                if not data[fam]:
                    conn.close(now)

    net.add_process(step)
    net.kick()
    net.run(until=60.0)
    assert bytes(got[4]) == bytes(range(256)) * 800
    assert bytes(got[6]) == bytes(reversed(range(256))) * 800
    assert {len(c.remote_ip) for c in served} == {4, 16}
    assert net.stats["dropped_loss"] > 0


# ------------------------------------------------ Parameter Problem (RFC 4443 §3.4)
SRC, DST = "2001:db8::1", "2001:db8::2"
TCP_SYN = ScapyTCP(sport=40002, dport=80, flags="S")


def _answer(pkt: bytes, now: float = 0.0, st: Stack | None = None) -> tuple[Stack, list[bytes]]:
    st = st or Stack(DST)
    st.listen(80)
    st.receive_packet(pkt, now)
    return st, st.packets_to_send(now)


def _pp(out: list[bytes]) -> tuple[int, int, bytes]:
    """(code, pointer, quoted packet) of the one Parameter Problem in ``out``."""
    (reply,) = out
    ip = IPv6(reply)
    assert (ip.src, ip.dst) == (DST, SRC)
    icmp6 = ip.payload
    assert isinstance(icmp6, ICMPv6ParamProblem), ip.summary()
    check = ip.copy()
    del check.payload.cksum
    assert IPv6(raw(check)).payload.cksum == icmp6.cksum  # scapy agrees on the checksum
    return icmp6.code, icmp6.ptr, raw(icmp6.payload)


@pytest.mark.parametrize(
    ("otype", "answered"),
    [
        (0x80, True),  # 10xxxxxx: discard, Parameter Problem code 2
        (0xC5, True),  # 11xxxxxx: the same to a unicast destination
        (0x45, False),  # 01xxxxxx: discard silently
        (0x05, None),  # 00xxxxxx: skip it, take the packet
    ],
)
def test_unrecognised_option_types_by_their_high_bits(otype: int, answered: bool | None) -> None:
    """RFC 8200 §4.2: the two high bits of an unknown option's type say what to do."""
    opt = HBHOptUnknown(otype=otype, optdata=b"\0\0\0\0")
    pkt = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrDestOpt(options=[opt]) / TCP_SYN)
    st, out = _answer(pkt)
    if answered is None:
        assert decode(out[0])[2].flags == SYN | ACK
        return
    assert st.stats["drop_ip6_option_discard"] == 1
    if not answered:
        assert out == []
        return
    code, ptr, quoted = _pp(out)
    assert code == 2 and pkt[ptr] == otype and ptr == 42  # after next header and length
    assert quoted == pkt  # the whole offending packet fits in the quote


def test_routing_header_with_segments_left_points_at_its_type() -> None:
    """RFC 8200 §4.4: an unrecognised Routing Type (synack knows none) with Segments
    Left non-zero: code 0 pointing at the Routing Type field."""
    pkt = raw(
        IPv6(src=SRC, dst=DST)
        / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"])
        / TCP_SYN
    )
    st, out = _answer(pkt)
    code, ptr, _ = _pp(out)
    assert (code, ptr) == (0, 42)
    assert st.stats["drop_ip6_routing_header"] == 1
    done = raw(
        IPv6(src=SRC, dst=DST)
        / IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"])
        / TCP_SYN
    )
    assert decode(_answer(done)[1][0])[2].flags == SYN | ACK  # Segments Left 0: ignored


def test_hop_by_hop_not_first_is_an_unrecognised_next_header() -> None:
    """RFC 8200 §4.1 (Hop-by-Hop only right after the fixed header): code 1 pointing at
    the Next Header field that named it, here the Destination Options header's."""
    pkt = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / TCP_SYN)
    st, out = _answer(pkt)
    code, ptr, _ = _pp(out)
    assert (code, ptr) == (1, 40) and pkt[ptr] == 0
    assert st.stats["drop_ip6_bad_ext_header"] == 1


def test_fragments_with_bad_lengths_get_code_0() -> None:
    """RFC 8200 §4.5: M=1 with a length that is not a multiple of 8 points at the
    Payload Length; an offset that would pass 65535 bytes points at the offset."""
    short = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(m=1) / (b"\0" * 20))
    code, ptr, _ = _pp(_answer(short)[1])
    assert (code, ptr) == (0, 4)
    far = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(offset=8190, m=0) / (b"\0" * 24))
    code, ptr, _ = _pp(_answer(far)[1])
    assert (code, ptr) == (0, 42)
    fine = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(offset=8, m=1) / (b"\0" * 24))
    st, out = _answer(fine)
    assert out == [] and st.stats["drop_ip6_fragment"] == 1


def test_first_fragment_without_the_header_chain_gets_code_3() -> None:
    """RFC 7112 §5: a first fragment (offset 0, M=1) must carry every header up to and
    including the upper-layer one; one that does not gets Parameter Problem code 3
    pointing at the start of the packet, and a counted drop."""
    cut_tcp = raw(
        IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(m=1, nh=6) / raw(TCP_SYN)[:16]
    )  # 16 of TCP's 20 header bytes
    st, out = _answer(cut_tcp)
    code, ptr, quoted = _pp(out)
    assert (code, ptr, quoted) == (3, 0, cut_tcp)
    assert st.stats["drop_ip6_first_fragment_incomplete"] == 1
    # The chain ends in the next fragment: a 16-byte Destination Options header of
    # which only 8 bytes came in this one.
    cut_chain = raw(
        IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(m=1, nh=60) / bytes((6, 1)) / bytes(6)
    )
    code, ptr, _ = _pp(_answer(cut_chain)[1])
    assert (code, ptr) == (3, 0)
    # A first fragment with the whole TCP header is only a fragment: dropped quietly.
    whole = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrFragment(m=1) / TCP_SYN / (b"\0" * 4))
    st, out = _answer(whole)
    assert out == [] and st.stats["drop_ip6_fragment"] == 1


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("::", DST),  # unspecified source: no one to tell (RFC 4443 §2.4(e))
        ("ff02::1", DST),  # a multicast source
        (SRC, "ff02::1"),  # a multicast destination: synack joins no group
        (SRC, "2001:db8::99"),  # not for us at all
    ],
)
def test_no_parameter_problem_where_rfc_4443_forbids_it(src: str, dst: str) -> None:
    opt = HBHOptUnknown(otype=0x80, optdata=b"\0\0\0\0")
    pkt = raw(
        IPv6(src=src, dst=dst) / IPv6ExtHdrDestOpt(options=[opt, PadN(optdata=b"")]) / TCP_SYN
    )
    _, out = _answer(pkt)
    assert out == []
    udp = raw(IPv6(src=src, dst=dst, nh=17) / (b"\0" * 8))
    _, out = _answer(udp)
    assert out == []


def test_parameter_problems_share_the_icmp_error_budget() -> None:
    """RFC 4443 §2.4(f): ICMPv6 errors are rate limited; synack's bucket is the one
    ICMPv4 errors use, as Linux's icmp_global_allow is shared by both families."""
    st = Stack(DST, addresses=("10.0.0.2",), icmp_errors_per_second=3.0)
    opt = HBHOptUnknown(otype=0x80, optdata=b"\0\0\0\0")
    pkt = raw(IPv6(src=SRC, dst=DST) / IPv6ExtHdrDestOpt(options=[opt]) / TCP_SYN)
    sent = 0
    for _ in range(10):
        st.receive_packet(pkt, 0.0)
        sent += len(st.packets_to_send(0.0))
    assert sent == 3 and st.stats["icmp_errors_rate_limited"] == 7
    st.receive_packet(pkt, 1.0)  # a second later the bucket has refilled
    assert len(st.packets_to_send(1.0)) == 1
    # IPv4 errors spend the same tokens: three protocol unreachables leave none.
    from scapy.all import IP

    udp4 = raw(IP(src="10.0.0.1", dst="10.0.0.2", proto=17) / (b"\0" * 8))
    for _ in range(3):
        st.receive_packet(udp4, 2.0)
    assert len(st.packets_to_send(2.0)) == 3
    st.receive_packet(pkt, 2.0)
    assert st.packets_to_send(2.0) == []
