"""IPv4 header codec: scapy cross-checks, payload limits, address helpers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, Raw

from synack.wire import (
    ACK,
    Segment,
    WireError,
    build_ipv4_header,
    decode_ipv4_tcp,
    encode_ipv4,
    encode_ipv4_tcp,
    ip_to_bytes,
    ip_to_str,
    ipv4_payload,
    parse_ipv4,
    parse_ipv4_packet,
)

ADDR = st.binary(min_size=4, max_size=4)
SRC = ip_to_bytes("192.0.2.1")
DST = ip_to_bytes("198.51.100.2")


# Protocol 2 (IGMP) is left out: scapy's IGMP layer adds a Router Alert IP option
# when it rebuilds the packet (RFC 2236), so its recomputed checksum covers a
# different header.
@given(
    ADDR,
    ADDR,
    st.integers(0, 255).filter(lambda p: p != 2),
    st.binary(max_size=300),
    st.integers(1, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.booleans(),
)
@settings(max_examples=150)
def test_build_matches_scapy(
    src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int, ident: int, tos: int, df: bool
) -> None:
    hdr = build_ipv4_header(src, dst, proto, len(payload), ttl=ttl, ident=ident, tos=tos, df=df)
    pkt = IP(hdr + payload)
    assert (pkt.version, pkt.ihl, pkt.tos, pkt.len, pkt.id, pkt.ttl, pkt.proto) == (
        4,
        5,
        tos,
        20 + len(payload),
        ident,
        ttl,
        proto,
    )
    assert int(pkt.flags) == (2 if df else 0) and pkt.frag == 0
    assert (pkt.src, pkt.dst) == (ip_to_str(src), ip_to_str(dst))
    ours = pkt.chksum
    del pkt.chksum
    assert IP(bytes(pkt)).chksum == ours


@given(
    ADDR,
    ADDR,
    st.integers(0, 255),
    st.binary(max_size=300),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.sampled_from(["DF", 0]),
    st.binary(max_size=20),
)
@settings(max_examples=150)
def test_parse_scapy_built(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    ttl: int,
    ident: int,
    tos: int,
    flags: str | int,
    padding: bytes,
) -> None:
    raw = bytes(
        IP(
            src=ip_to_str(src),
            dst=ip_to_str(dst),
            proto=proto,
            ttl=ttl,
            id=ident,
            tos=tos,
            flags=flags,
        )
        / Raw(payload)
    )
    hdr, body = parse_ipv4_packet(raw + padding)  # link padding is ignored
    assert hdr == parse_ipv4(raw)
    assert (
        hdr.version,
        hdr.ihl,
        hdr.header_len,
        hdr.tos,
        hdr.total_length,
        hdr.ident,
        hdr.ttl,
        hdr.proto,
        hdr.src,
        hdr.dst,
    ) == (4, 5, 20, tos, 20 + len(payload), ident, ttl, proto, src, dst)
    assert hdr.df == (flags == "DF") and not hdr.mf and hdr.frag_offset == 0
    assert (hdr.ecn, hdr.dscp) == (tos & 3, tos >> 2)
    assert bytes(body) == payload
    assert bytes(ipv4_payload(raw + padding, hdr)) == payload


def test_tcp_packet_with_link_padding() -> None:
    seg = Segment(1, 2, 3, 4, ACK, 5, b"data")
    raw = encode_ipv4_tcp(SRC, DST, seg)
    # Ethernet pads short frames to 60 bytes; the padding must not reach TCP.
    assert decode_ipv4_tcp(raw + bytes(60 - len(raw)))[2] == seg


def test_ecn_bits_go_to_tos_and_back() -> None:
    seg = Segment(1, 2, 3, 4, ACK, 5, b"x", ecn=3)
    raw = encode_ipv4_tcp(SRC, DST, seg, tos=0xB8 | 1)  # DSCP EF; low bits replaced
    assert raw[1] == 0xBB
    assert decode_ipv4_tcp(raw)[2].ecn == 3


def test_encode_ipv4_generic() -> None:
    raw = encode_ipv4(SRC, DST, 17, b"\0" * 12, ttl=3, ident=9)
    hdr, body = parse_ipv4_packet(raw)
    assert (hdr.proto, hdr.ttl, hdr.ident, bytes(body)) == (17, 3, 9, bytes(12))


def test_verify_checksum_false_skips_header_checksum() -> None:
    hdr = bytearray(build_ipv4_header(SRC, DST, 6, 0))
    hdr[10:12] = b"\x12\x34"
    with pytest.raises(WireError):
        parse_ipv4(bytes(hdr))
    assert parse_ipv4(bytes(hdr), verify_checksum=False).checksum == 0x1234


@pytest.mark.parametrize(
    ("kwargs", "payload_len"),
    [
        ({"ttl": 256}, 0),
        ({"tos": -1}, 0),
        ({"ident": 1 << 16}, 0),
        ({}, 65516),
        ({}, -1),
    ],
)
def test_build_rejects_out_of_range(kwargs: dict[str, Any], payload_len: int) -> None:
    with pytest.raises(ValueError):
        build_ipv4_header(SRC, DST, 6, payload_len, **kwargs)


def test_build_rejects_bad_address_length() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        build_ipv4_header(b"\1\2\3", DST, 6, 0)


def test_address_helpers() -> None:
    assert ip_to_bytes("10.1.2.255") == b"\x0a\x01\x02\xff"
    assert ip_to_str(b"\x0a\x01\x02\xff") == "10.1.2.255"
    assert ip_to_str(memoryview(b"\x7f\0\0\1")) == "127.0.0.1"
    # IPv6 text is taken too (the dual stack): 16 bytes, RFC 5952 text back.
    assert ip_to_bytes("::1") == bytes(15) + b"\1" and ip_to_str(bytes(15) + b"\1") == "::1"
    for bad in ("", "1.2.3", "127.1", "256.0.0.1", "1.2.3.4 ", "a.b.c.d"):
        with pytest.raises(ValueError, match="not an IPv4 address"):
            ip_to_bytes(bad)
    with pytest.raises(ValueError, match="4 bytes"):
        ip_to_str(b"\1\2\3")


@given(ADDR)
def test_address_roundtrip(b: bytes) -> None:
    assert ip_to_bytes(ip_to_str(b)) == b
