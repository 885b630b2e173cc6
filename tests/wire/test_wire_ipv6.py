"""IPv6 (RFC 8200) and ICMPv6 (RFC 4443) codecs: scapy cross-checks, extension headers,
the pseudo-header checksum, addresses in RFC 5952 text, TSO6, and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import TCP as ScapyTCP
from scapy.all import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
    raw,
)

from synack.wire import (
    ACK,
    DROP_REASONS,
    PSH,
    SYN,
    Segment,
    WireError,
    addr_to_bytes,
    addr_to_str,
    decode_ipv6_tcp,
    describe_packet,
    encode_ipv6_tcp,
    endpoint_str,
    ip6_to_bytes,
    ip6_to_str,
    parse_ipv6_packet,
)
from synack.wire.icmpv6 import (
    ICMP6_ECHO_REPLY,
    ICMP6_MAX_QUOTE,
    ICMP6_PACKET_TOO_BIG,
    build_dest6_unreachable,
    build_echo6_reply,
    build_packet_too_big,
    build_param_problem,
    parse_icmpv6,
    parse_icmpv6_quote,
)
from synack.wire.vnet import GSO_TCPV6, VNET_HDR_LEN, encode_ipv4_tcp_offload, parse_vnet_header

A_TXT, B_TXT = "2001:db8::1", "2001:db8::2"
A, B = ip6_to_bytes(A_TXT), ip6_to_bytes(B_TXT)


def test_tcp_checksum_matches_scapy_both_ways() -> None:
    seg = Segment(40000, 80, 7, 9, ACK | PSH, 500, b"odd-length!", tsval=1, tsecr=2)
    ours = encode_ipv6_tcp(A, B, seg)
    theirs = IPv6(ours)
    resum = theirs.copy()
    del resum[ScapyTCP].chksum
    assert IPv6(raw(resum))[ScapyTCP].chksum == theirs[ScapyTCP].chksum
    built = raw(
        IPv6(src=A_TXT, dst=B_TXT, tc=2)
        / ScapyTCP(sport=1, dport=2, seq=3, flags="S", options=[("MSS", 1440)])
        / b"x"
    )
    _, _, got = decode_ipv6_tcp(built)
    assert (got.src_port, got.dst_port, got.seq, got.mss, bytes(got.payload), got.ecn) == (
        1,
        2,
        3,
        1440,
        b"x",
        2,
    )
    broken = bytearray(built)
    broken[-1] ^= 1
    with pytest.raises(WireError, match="tcp_bad_checksum"):
        decode_ipv6_tcp(bytes(broken))
    assert decode_ipv6_tcp(bytes(broken), verify_checksum=False)[2].seq == 3


def test_extension_headers_walked_as_scapy_builds_them() -> None:
    chain = (
        IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(segleft=0)
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrFragment(offset=0, m=0)
    )  # the last: atomic (RFC 6946)
    pkt = raw(IPv6(src=A_TXT, dst=B_TXT) / chain / ScapyTCP(sport=5, dport=6, flags="A"))
    parsed = parse_ipv6_packet(pkt)
    assert parsed.proto == 6 and parsed.offset == len(pkt) - 20
    assert decode_ipv6_tcp(pkt)[2].src_port == 5
    assert describe_packet(pkt).startswith("IP6 2001:db8::1.5 > 2001:db8::2.6: Flags [.]")


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (IPv6ExtHdrFragment(offset=0, m=1), "ip6_fragment"),
        (IPv6ExtHdrFragment(offset=100, m=0), "ip6_fragment"),
        (IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"]), "ip6_routing_header"),
    ],
)
def test_extension_headers_refused_with_reason(layer: object, reason: str) -> None:
    pkt = raw(IPv6(src=A_TXT, dst=B_TXT) / layer / ScapyTCP())  # type: ignore[operator]
    with pytest.raises(WireError) as info:
        decode_ipv6_tcp(pkt)
    assert info.value.reason == reason
    assert reason in describe_packet(pkt)


def test_skip_option_is_skipped() -> None:
    # Option type 0x1e: high bits 00, "skip over this option" (RFC 8200 §4.2).
    hbh = bytes((6, 0, 0x1E, 4)) + bytes(4)
    pkt = (
        struct.pack("!IHBB16s16s", 0x60000000, 28, 0, 64, A, B)
        + hbh
        + raw(ScapyTCP(sport=1, dport=2))
    )
    assert parse_ipv6_packet(pkt).proto == 6


def test_echo_reply_scapy_accepts() -> None:
    req = raw(IPv6(src=A_TXT, dst=B_TXT) / ICMPv6EchoRequest(id=7, seq=9, data=b"ping!"))
    msg = parse_icmpv6(memoryview(req)[40:], A, B)
    reply = build_echo6_reply(B, A, msg)
    theirs = IPv6(src=B_TXT, dst=A_TXT, nh=58) / Raw(reply)
    decoded = IPv6(raw(theirs))
    assert isinstance(decoded.payload, ICMPv6EchoReply)
    assert (decoded.payload.id, decoded.payload.seq, decoded.payload.data) == (7, 9, b"ping!")
    assert parse_icmpv6(reply, B, A).type == ICMP6_ECHO_REPLY
    with pytest.raises(WireError, match="icmp_bad_checksum"):
        # The pseudo-header binds the addresses (RFC 4443 §2.3).
        parse_icmpv6(reply, B, ip6_to_bytes("2001:db8::3"))


def test_errors_checksum_quote_and_scapy_agree() -> None:
    offending = encode_ipv6_tcp(A, B, Segment(40000, 80, 123456, 0, SYN, 100, bytes(1400)))
    unreach = build_dest6_unreachable(B, A, 4, offending)
    ptb = build_packet_too_big(B, A, 1280, offending)
    for body, cls in ((unreach, ICMPv6DestUnreach), (ptb, ICMPv6PacketTooBig)):
        pkt = IPv6(raw(IPv6(src=B_TXT, dst=A_TXT, nh=58) / Raw(body)))
        assert isinstance(pkt.payload, cls)
        check = pkt.copy()
        del check.payload.cksum
        assert IPv6(raw(check)).payload.cksum == pkt.payload.cksum
        assert len(body) == 8 + ICMP6_MAX_QUOTE  # 1280 bytes with the IPv6 header
    q = parse_icmpv6_quote(parse_icmpv6(ptb, B, A))
    assert (q.type, q.next_hop_mtu, q.src, q.dst, q.proto, q.sport, q.dport, q.seq) == (
        ICMP6_PACKET_TOO_BIG,
        1280,
        A,
        B,
        6,
        40000,
        80,
        123456,
    )
    # A quote scapy built, with a Hop-by-Hop header before TCP.
    inner = IPv6(src=A_TXT, dst=B_TXT) / IPv6ExtHdrHopByHop() / ScapyTCP(sport=1, dport=2, seq=77)
    body = raw(ICMPv6DestUnreach(code=1) / raw(inner)[:56])
    q = parse_icmpv6_quote(parse_icmpv6(body, B, A, verify_checksum=False))
    assert (q.code, q.sport, q.dport, q.seq) == (1, 1, 2, 77)
    pp = build_param_problem(B, A, 1, 6, offending)
    assert parse_icmpv6(pp, B, A).rest == b"\0\0\0\6"
    assert "packet too big code 0, mtu 1280" in describe_packet(
        raw(IPv6(src=B_TXT, dst=A_TXT, nh=58) / Raw(ptb))
    )


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (bytes(39), "icmp_truncated"),
        (b"\x40" + bytes(47), "icmp_bad_quote"),
        (b"\x60" + bytes(5) + b"\x06" + bytes(33) + bytes(4), "icmp_truncated"),
        (
            b"\x60" + bytes(5) + b"\x2c" + bytes(33) + b"\x06\x00\x00\x01" + bytes(12),
            "icmp_bad_quote",
        ),
    ],
)
def test_bad_quotes(quote: bytes, reason: str) -> None:
    msg = parse_icmpv6(build_dest6_unreachable(B, A, 4, quote), B, A)
    with pytest.raises(WireError) as info:
        parse_icmpv6_quote(msg)
    assert info.value.reason == reason and reason in DROP_REASONS


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # the first of equal runs (RFC 5952 §4.2.3)
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # one zero group is not compressed
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),  # mapped: dotted tail (RFC 5952 §5)
        ("[fe80::1]", "fe80::1"),
    ],
)
def test_rfc5952_text(text: str, canonical: str) -> None:
    assert ip6_to_str(ip6_to_bytes(text)) == canonical
    assert addr_to_str(addr_to_bytes(text)) == canonical


def test_addresses_of_both_families() -> None:
    assert addr_to_bytes("10.0.0.1") == b"\n\0\0\1"
    assert endpoint_str(b"\n\0\0\1", 80) == "10.0.0.1:80"
    assert endpoint_str(A, 80) == "[2001:db8::1]:80"
    for bad in ("10.0.0", "2001:db8::1::2", "fe80::1%eth0", "", "[10.0.0.1]"):
        with pytest.raises(ValueError):
            addr_to_bytes(bad)


def test_tso6_offload_header() -> None:
    seg = Segment(1, 2, 3, 4, ACK, 100, bytes(5000))
    pkt = encode_ipv4_tcp_offload(A, B, seg, 1440 + 20)
    hdr = parse_vnet_header(pkt)
    assert (hdr.gso_type, hdr.gso_size, hdr.csum_start, hdr.hdr_len) == (GSO_TCPV6, 1440, 40, 60)
    ip = pkt[VNET_HDR_LEN:]
    # The TCP checksum field holds the pseudo-header sum (RFC 8200 §8.1) for the kernel.
    _, _, got = decode_ipv6_tcp(ip, verify_checksum=False)
    assert len(got.payload) == 5000
    assert IPv6(ip).plen == 5020


# --- fuzzing ---------------------------------------------------------------------------------


def _decode(raw_bytes: bytes, verify: bool) -> None:
    try:
        decode_ipv6_tcp(raw_bytes, verify_checksum=verify)
    except WireError as e:
        assert e.reason in DROP_REASONS


@given(st.binary(max_size=120), st.booleans())
@settings(max_examples=500)
def test_arbitrary_bytes_v6(tail: bytes, verify: bool) -> None:
    raw_bytes = b"\x60" + tail
    _decode(raw_bytes, verify)
    assert isinstance(describe_packet(raw_bytes), str)


@given(st.sampled_from([0, 43, 44, 60, 6, 58]), st.binary(max_size=80))
@settings(max_examples=500)
def test_arbitrary_extension_chains(nh: int, rest: bytes) -> None:
    pkt = struct.pack("!IHBB16s16s", 0x60000000, len(rest), nh, 64, A, B) + rest
    _decode(pkt, False)
    assert isinstance(describe_packet(pkt), str)
    try:
        msg = parse_icmpv6(build_dest6_unreachable(B, A, 4, pkt), B, A)
        parse_icmpv6_quote(msg)
    except WireError as e:
        assert e.reason in DROP_REASONS
