"""Internet checksum (RFC 1071): reference values, split sums, the two zeros."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP
from scapy.utils import checksum as scapy_checksum

from synack.wire import (
    ACK,
    WireError,
    build_ipv4_header,
    build_tcp,
    checksum_valid,
    decode_ipv4_tcp,
    encode_ipv4_tcp,
    finish,
    fold,
    internet_checksum,
    ones_sum,
    parse_icmp,
    parse_ipv4,
    parse_tcp,
    pseudo_header_sum,
)
from synack.wire.segment import Segment

SRC = bytes([192, 0, 2, 1])
DST = bytes([198, 51, 100, 7])


def naive_sum(data: bytes) -> int:
    """RFC 1071 §4.1 word by word with end-around carry (the obvious reference)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example() -> None:
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 with end-around carry.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    # Byte-swapped input gives the byte-swapped sum (RFC 1071 §2(B)).
    swapped = bytes.fromhex("0100 03f2 f5f4 f7f6")
    assert ones_sum(swapped) == 0xF2DD


def test_known_ip_header() -> None:
    # The classic example header: checksum b861.
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(hdr) == 0xB861
    fixed = hdr[:10] + b"\xb8\x61" + hdr[12:]
    assert checksum_valid(fixed)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_matches_reference_and_scapy(data: bytes) -> None:
    assert ones_sum(data) == naive_sum(data)
    assert internet_checksum(data) == scapy_checksum(data)
    assert ones_sum(memoryview(data)) == ones_sum(data)
    assert ones_sum(bytearray(data)) == ones_sum(data)


@given(st.lists(st.binary(max_size=40), max_size=6), st.binary(max_size=41))
@settings(max_examples=300)
def test_split_sum_equals_one_shot(pieces: list[bytes], last: bytes) -> None:
    # Every piece but the last must have even length.
    pieces = [p if len(p) % 2 == 0 else p + b"\x5a" for p in pieces]
    acc = 0
    for p in [*pieces, last]:
        acc = ones_sum(p, acc)
    whole = b"".join(pieces) + last
    assert acc == ones_sum(whole) == naive_sum(whole)
    assert finish(acc) == internet_checksum(whole)


@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.binary(max_size=64),
)
def test_pseudo_header_split(src: bytes, dst: bytes, proto: int, length: int, body: bytes) -> None:
    pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
    assert pseudo_header_sum(src, dst, proto, length) == naive_sum(pseudo)
    assert internet_checksum(body, pseudo_header_sum(src, dst, proto, length)) == internet_checksum(
        pseudo + body
    )


def test_fold_and_finish_zero_semantics() -> None:
    assert fold(0) == 0
    assert fold(0xFFFF) == 0xFFFF
    assert fold(0x1FFFE) == 0xFFFF  # non-zero multiple of 0xFFFF is negative zero
    assert fold(0x10000) == 1
    assert finish(0) == 0xFFFF
    assert finish(0xFFFF) == 0
    # All-zero data sums to +0; its checksum is 0xFFFF, never 0.
    assert ones_sum(bytes(10)) == 0
    assert internet_checksum(bytes(10)) == 0xFFFF


def _tcp_packet_with_zero_checksum() -> tuple[bytes, Segment]:
    """Choose the payload word that makes the TCP checksum compute to exactly 0."""
    seg = Segment(4000, 80, 123456, 654321, ACK, 512, b"\0\0")
    c0 = struct.unpack_from("!H", build_tcp(seg, SRC, DST), 16)[0]
    seg = Segment(4000, 80, 123456, 654321, ACK, 512, c0.to_bytes(2, "big"))
    return encode_ipv4_tcp(SRC, DST, seg), seg


def test_tcp_checksum_computing_to_zero_is_sent_as_zero_and_verifies() -> None:
    raw, seg = _tcp_packet_with_zero_checksum()
    assert raw[36:38] == b"\0\0"  # RFC 9293: no 0 -> 0xFFFF mapping for TCP
    assert decode_ipv4_tcp(raw)[2] == seg
    # scapy agrees that 0 is the right value.
    pkt = IP(raw)
    del pkt[TCP].chksum
    assert IP(bytes(pkt))[TCP].chksum == 0


def test_tcp_negative_zero_checksum_field_accepted() -> None:
    # 0xFFFF and 0x0000 are the two one's-complement zeros; verification by summing
    # accepts either for a correct packet (RFC 1624 §3), so we do.
    raw, seg = _tcp_packet_with_zero_checksum()
    alt = raw[:36] + b"\xff\xff" + raw[38:]
    assert decode_ipv4_tcp(alt)[2] == seg
    assert parse_tcp(alt[20:], SRC, DST) == seg


def test_tcp_ffff_field_rejected_when_checksum_is_not_zero() -> None:
    seg = Segment(4000, 80, 1, 2, ACK, 512, b"abc")
    raw = encode_ipv4_tcp(SRC, DST, seg)
    assert raw[36:38] not in (b"\0\0", b"\xff\xff")
    bad = raw[:36] + b"\xff\xff" + raw[38:]
    try:
        decode_ipv4_tcp(bad)
    except WireError as e:
        assert e.reason == "tcp_bad_checksum"
    else:
        raise AssertionError("accepted a wrong checksum")


def test_ip_header_checksum_zero_and_negative_zero() -> None:
    c0 = struct.unpack_from("!H", build_ipv4_header(SRC, DST, 6, 0, ident=0), 10)[0]
    hdr = build_ipv4_header(SRC, DST, 6, 0, ident=c0)
    assert hdr[10:12] == b"\0\0"
    assert parse_ipv4(hdr).ident == c0
    alt = hdr[:10] + b"\xff\xff" + hdr[12:]
    assert parse_ipv4(alt).checksum == 0xFFFF


def test_icmp_all_zero_message_needs_ffff() -> None:
    # An all-zero echo reply sums to +0: the only correct field value is 0xFFFF.
    zero = bytes(8)
    try:
        parse_icmp(zero)
    except WireError as e:
        assert e.reason == "icmp_bad_checksum"
    else:
        raise AssertionError("accepted an all-zero ICMP message")
    msg = parse_icmp(b"\0\0\xff\xff\0\0\0\0")
    assert msg.checksum == 0xFFFF


@pytest.mark.parametrize(
    "n",
    [
        511,
        512,
        513,
        1024,
        1025,
        1460,
        1461,
        2047,
        2048,
        2049,
        8191,
        8192,
        8193,
        9001,
        12346,
        32768,
        65000,
        65535,
        70001,
    ],
)
@pytest.mark.parametrize("kind", ["random", "ones", "zeros"])
def test_large_sums_fold_before_dividing_and_agree(n: int, kind: str) -> None:
    """Above 512 bytes the sum folds first (#7: checksums computed fast where the
    kernel does not; #18: a segment's worth by three fixed folds): same results as
    word-by-word and as scapy, for the encoder and the decoder, at even and odd
    lengths, including sums that are congruent to zero (all 0xFF bytes)."""
    rnd = random.Random(n)
    data = {"random": rnd.randbytes(n), "ones": b"\xff" * n, "zeros": bytes(n)}[kind]
    assert ones_sum(data) == naive_sum(data)
    assert internet_checksum(data) == scapy_checksum(data)
    seg = Segment(1000, 2000, 7, 9, ACK, 100, data[:65000])
    pkt = encode_ipv4_tcp(SRC, DST, seg)
    redo = IP(pkt)
    del redo[TCP].chksum  # scapy computes its own
    assert IP(bytes(redo))[TCP].chksum == struct.unpack("!H", pkt[36:38])[0]
    _, _, back = decode_ipv4_tcp(pkt)
    assert bytes(back.payload) == data[:65000]
    bad = bytearray(pkt)
    bad[-1] ^= 0x10
    try:
        decode_ipv4_tcp(bytes(bad))
    except WireError as e:
        assert e.reason == "tcp_bad_checksum"
    else:
        raise AssertionError("a flipped bit in a large segment must fail the checksum")
