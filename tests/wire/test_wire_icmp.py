"""ICMPv4: echo, destination unreachable, quoted headers; scapy cross-checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, IPerror, Raw, TCPerror

from synack.wire import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_TIME_EXCEEDED,
    SYN,
    UNREACH_FRAG_NEEDED,
    UNREACH_PORT,
    Segment,
    WireError,
    build_dest_unreachable,
    build_echo_reply,
    build_echo_request,
    build_icmp,
    describe_packet,
    encode_ipv4,
    encode_ipv4_tcp,
    ip_to_bytes,
    parse_dest_unreachable,
    parse_icmp,
    parse_icmp_quote,
    parse_ipv4_packet,
)

A = ip_to_bytes("10.0.0.1")
B = ip_to_bytes("10.0.0.2")


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=200))
@settings(max_examples=100)
def test_echo_request_from_scapy_gets_reply_scapy_accepts(
    ident: int, seq: int, data: bytes
) -> None:
    request = bytes(ICMP(type=8, id=ident, seq=seq) / Raw(data))
    msg = parse_icmp(request)
    assert (msg.type, msg.code, bytes(msg.body)) == (8, 0, data)
    assert build_echo_request(ident, seq, data) == request
    reply = build_echo_reply(request)
    assert build_echo_reply(msg) == reply
    pkt = ICMP(reply)
    assert (pkt.type, pkt.code, pkt.id, pkt.seq, bytes(pkt.payload)) == (0, 0, ident, seq, data)
    ours = pkt.chksum
    del pkt.chksum
    assert ICMP(bytes(pkt)).chksum == ours


def test_echo_reply_requires_request() -> None:
    with pytest.raises(ValueError, match="not an echo request"):
        build_echo_reply(build_icmp(ICMP_ECHO_REPLY, 0))


def test_dest_unreachable_quotes_original_and_scapy_reads_it() -> None:
    seg = Segment(40000, 80, 2**32 - 3, 0, SYN, 1000, b"p" * 1000, mss=1460)
    original = encode_ipv4_tcp(A, B, seg)
    icmp = build_dest_unreachable(UNREACH_PORT, original + b"\0" * 6)
    assert len(icmp) == 8 + 548  # quoted 548 bytes, as Linux does
    pkt = IP(encode_ipv4(B, A, 1, icmp))
    assert (pkt[ICMP].type, pkt[ICMP].code) == (3, 3)
    quoted = pkt[IPerror]
    assert (quoted.src, quoted.dst, quoted.proto) == ("10.0.0.1", "10.0.0.2", 6)
    assert (pkt[TCPerror].sport, pkt[TCPerror].dport, pkt[TCPerror].seq) == (40000, 80, 2**32 - 3)
    ours = pkt[ICMP].chksum
    del pkt[ICMP].chksum
    assert IP(bytes(pkt))[ICMP].chksum == ours
    q = parse_dest_unreachable(parse_icmp(icmp))
    assert (q.type, q.code, q.next_hop_mtu, q.src, q.dst, q.proto, q.sport, q.dport, q.seq) == (
        3,
        3,
        0,
        A,
        B,
        6,
        40000,
        80,
        2**32 - 3,
    )


def test_short_original_quoted_whole_without_link_padding() -> None:
    original = encode_ipv4_tcp(A, B, Segment(1, 2, 3, 4, SYN, 5))
    icmp = build_dest_unreachable(UNREACH_PORT, original + b"\0" * 6)
    assert bytes(parse_icmp(icmp).body) == original


@given(
    st.integers(0, 15),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=40),
    st.integers(68, 0xFFFF),
)
@settings(max_examples=100)
def test_scapy_built_unreachable_decoded(
    code: int, sport: int, dport: int, seq: int, tail: bytes, mtu: int
) -> None:
    original = bytes(
        IP(src="192.0.2.9", dst="198.51.100.1", id=7)
        / TCP(sport=sport, dport=dport, seq=seq, options=[("MSS", 536)])
        / Raw(b"x" * 100)
    )
    quote_len = 28 + len(tail) if len(tail) < 20 else len(original)
    icmp = ICMP(type=3, code=code, nexthopmtu=mtu if code == 4 else 0) / Raw(original[:quote_len])
    raw = bytes(IP(src="203.0.113.1", dst="192.0.2.9") / icmp)
    _, body = parse_ipv4_packet(raw)
    msg = parse_icmp(body)
    q = parse_dest_unreachable(msg)
    assert (q.type, q.code, q.src, q.dst, q.proto, q.sport, q.dport, q.seq) == (
        3,
        code,
        ip_to_bytes("192.0.2.9"),
        ip_to_bytes("198.51.100.1"),
        6,
        sport,
        dport,
        seq,
    )
    assert q.next_hop_mtu == (mtu if code == UNREACH_FRAG_NEEDED else 0)


def test_frag_needed_carries_mtu() -> None:
    original = encode_ipv4_tcp(A, B, Segment(1, 2, 3, 4, SYN, 5))
    icmp = build_dest_unreachable(UNREACH_FRAG_NEEDED, original, next_hop_mtu=1400)
    assert ICMP(icmp).nexthopmtu == 1400
    assert parse_dest_unreachable(parse_icmp(icmp)).next_hop_mtu == 1400


def test_quote_with_ip_options_skips_them() -> None:
    original = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00")
        / TCP(sport=7, dport=8, seq=9)
    )
    q = parse_dest_unreachable(parse_icmp(build_dest_unreachable(1, original)))
    assert (q.sport, q.dport, q.seq) == (7, 8, 9)


def test_time_exceeded_quote_and_type_checks() -> None:
    original = encode_ipv4_tcp(A, B, Segment(1, 2, 3, 4, SYN, 5))
    msg = parse_icmp(build_icmp(ICMP_TIME_EXCEEDED, 0, body=original))
    assert parse_icmp_quote(msg).sport == 1
    with pytest.raises(ValueError, match="not a destination unreachable"):
        parse_dest_unreachable(msg)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "icmp_truncated"),
        (b"E" + bytes(18), "icmp_truncated"),
        (b"\x60" + bytes(27), "icmp_bad_quote"),
        (b"\x44" + bytes(27), "icmp_bad_quote"),
        (b"\x45" + bytes(26), "icmp_truncated"),
        (b"\x46" + bytes(30), "icmp_truncated"),
    ],
)
def test_bad_quotes(body: bytes, reason: str) -> None:
    msg = parse_icmp(build_icmp(ICMP_DEST_UNREACH, 1, body=body))
    with pytest.raises(WireError) as info:
        parse_dest_unreachable(msg)
    assert info.value.reason == reason


def test_describe_icmp() -> None:
    echo = encode_ipv4(A, B, 1, build_echo_request(5, 6, b"abcd"))
    assert describe_packet(echo) == (
        "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 5, seq 6, length 12"
    )
    original = encode_ipv4_tcp(A, B, Segment(1234, 80, 77, 0, SYN, 5))
    unreach = encode_ipv4(B, A, 1, build_dest_unreachable(UNREACH_PORT, original))
    assert describe_packet(unreach) == (
        "IP 10.0.0.2 > 10.0.0.1: ICMP unreachable code 3 for proto 6 "
        "10.0.0.1.1234 > 10.0.0.2.80 seq 77, length 48"
    )
