"""Every drop reason from a crafted packet, and fuzzing: only WireError may escape."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synack.wire import (
    ACK,
    DROP_REASONS,
    ICMP_DEST_UNREACH,
    SYN,
    UNREACH_PORT,
    Segment,
    WireError,
    build_dest_unreachable,
    build_icmp,
    decode_ipv4_tcp,
    decode_ipv6_tcp,
    describe_packet,
    encode_ipv4_tcp,
    internet_checksum,
    parse_dest_unreachable,
    parse_icmp,
    parse_icmp_quote,
    parse_options,
    pseudo_header_sum,
)

SRC = bytes([10, 1, 1, 1])
DST = bytes([10, 2, 2, 2])

# --- crafting ---------------------------------------------------------------------------------


def ip_packet(
    payload: bytes,
    *,
    proto: int = 6,
    vihl: int = 0x45,
    total: int | None = None,
    ff: int = 0x4000,
    options: bytes = b"",
    good_checksum: bool = True,
) -> bytes:
    """An IPv4 packet with arbitrary (possibly invalid) header fields."""
    if total is None:
        total = 20 + len(options) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", vihl, 0, total, 0, ff, 64, proto, 0, SRC, DST) + options
    csum = internet_checksum(hdr) ^ (0 if good_checksum else 0x5555)
    return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:] + payload


def tcp_bytes(
    opts: bytes = b"", *, doff: int | None = None, payload: bytes = b"", good_checksum: bool = True
) -> bytes:
    """A TCP segment with arbitrary options and data offset, checksummed for SRC->DST."""
    if doff is None:
        doff = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", 1000, 80, 1, 2, doff << 4, ACK, 100, 0, 0) + opts + payload
    csum = internet_checksum(seg, pseudo_header_sum(SRC, DST, 6, len(seg)))
    csum ^= 0 if good_checksum else 0x5555
    return seg[:16] + csum.to_bytes(2, "big") + seg[18:]


def fix_checksums(raw: bytes) -> bytes:
    """Recompute the IP and TCP checksums of a (mutated) packet where the layout allows."""
    buf = bytearray(raw)
    if len(buf) >= 20 and buf[0] == 0x45:
        buf[10:12] = b"\0\0"
        buf[10:12] = internet_checksum(bytes(buf[:20])).to_bytes(2, "big")
        total = int.from_bytes(buf[2:4], "big")
        if buf[9] == 6 and 38 <= total <= len(buf):
            buf[36:38] = b"\0\0"
            tcp = bytes(buf[20:total])
            buf[36:38] = internet_checksum(
                tcp, pseudo_header_sum(bytes(buf[12:16]), bytes(buf[16:20]), 6, len(tcp))
            ).to_bytes(2, "big")
    return bytes(buf)


def decode(raw: bytes) -> Callable[[], object]:
    return lambda: decode_ipv4_tcp(raw)


def icmp(raw: bytes) -> Callable[[], object]:
    return lambda: parse_icmp(raw)


def unreach(body: bytes) -> Callable[[], object]:
    msg = parse_icmp(build_icmp(ICMP_DEST_UNREACH, 1, body=body))
    return lambda: parse_dest_unreachable(msg)


GOOD_TCP = tcp_bytes()
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8000000000000000000000002")


def ip6_packet(payload: bytes, *, nh: int = 6, plen: int | None = None) -> bytes:
    """An IPv6 packet with an arbitrary (possibly invalid) payload length."""
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHBB16s16s", 0x60000000, plen, nh, 64, SRC6, DST6) + payload


def ext(nh: int, body: bytes) -> bytes:
    """An extension header: next header, length in 8-octet units beyond the first, body."""
    return bytes((nh, (len(body) + 2) // 8 - 1)) + body


def decode6(raw: bytes) -> Callable[[], object]:
    return lambda: decode_ipv6_tcp(raw)


HBH_PAD = ext(6, b"\x01\x04" + bytes(4))  # PadN of 4: a valid 8-byte Hop-by-Hop header

CRAFTED: dict[str, list[tuple[str, Callable[[], object]]]] = {
    "ip_truncated": [
        ("19_bytes", decode(ip_packet(GOOD_TCP)[:19])),
        ("empty", decode(b"")),
        ("ihl_past_buffer", decode(ip_packet(b"", vihl=0x4F, total=20))),
    ],
    "ip_bad_version": [
        ("v6", decode(ip_packet(GOOD_TCP, vihl=0x65))),
        ("v0", decode(bytes(40))),
    ],
    "ip_bad_ihl": [("ihl_4", decode(ip_packet(GOOD_TCP, vihl=0x44)))],
    "ip_bad_total_length": [
        ("past_buffer", decode(ip_packet(GOOD_TCP, total=20 + len(GOOD_TCP) + 1))),
        ("below_header", decode(ip_packet(GOOD_TCP, total=19))),
        ("below_ihl", decode(ip_packet(GOOD_TCP, vihl=0x46, options=b"\1\1\1\0", total=22))),
    ],
    "ip_bad_checksum": [("flipped", decode(ip_packet(GOOD_TCP, good_checksum=False)))],
    "ip_fragment": [
        ("more_fragments", decode(ip_packet(GOOD_TCP, ff=0x2000))),
        ("offset", decode(ip_packet(GOOD_TCP, ff=0x4001))),
    ],
    "ip_options_unsupported": [
        ("nops", decode(ip_packet(GOOD_TCP, vihl=0x46, options=b"\1\1\1\0"))),
    ],
    "ip_not_tcp": [
        ("udp", decode(ip_packet(bytes(8), proto=17))),
        ("v6_udp", decode6(ip6_packet(bytes(8), nh=17))),
        ("v6_udp_after_hbh", decode6(ip6_packet(ext(17, HBH_PAD[2:]) + bytes(8), nh=0))),
    ],
    "ip6_truncated": [("39_bytes", decode6(ip6_packet(GOOD_TCP)[:39]))],
    "ip6_bad_payload_length": [("past_buffer", decode6(ip6_packet(GOOD_TCP, plen=21)))],
    "ip6_bad_ext_header": [
        ("hbh_not_first", decode6(ip6_packet(ext(0, HBH_PAD[2:]) + HBH_PAD, nh=60))),
        ("truncated", decode6(ip6_packet(b"\x06\x00\x01", nh=0))),
        ("length_past_packet", decode6(ip6_packet(b"\x06\x05" + bytes(6), nh=60))),
        ("option_past_header", decode6(ip6_packet(ext(6, b"\x01\x09" + bytes(4)), nh=0))),
    ],
    "ip6_option_discard": [
        ("jumbo", decode6(ip6_packet(ext(6, b"\xc2\x04" + bytes(4)), nh=0))),
        ("discard_type_01", decode6(ip6_packet(ext(6, b"\x41\x04" + bytes(4)), nh=60))),
    ],
    "ip6_routing_header": [
        ("segments_left", decode6(ip6_packet(ext(6, bytes((4, 1)) + bytes(20)), nh=43))),
    ],
    "ip6_fragment": [
        ("more_fragments", decode6(ip6_packet(bytes((6, 0, 0, 1)) + bytes(4) + GOOD_TCP, nh=44))),
        ("offset", decode6(ip6_packet(bytes((6, 0, 0, 8)) + bytes(4) + GOOD_TCP, nh=44))),
    ],
    "ip6_first_fragment_incomplete": [
        ("tcp_cut", decode6(ip6_packet(bytes((6, 0, 0, 1)) + bytes(4) + GOOD_TCP[:16], nh=44))),
        (
            "chain_cut",
            decode6(ip6_packet(bytes((60, 0, 0, 1)) + bytes(4) + b"\x06\x01" + bytes(6), nh=44)),
        ),
    ],
    "tcp_truncated": [
        ("19_bytes", decode(ip_packet(GOOD_TCP[:19]))),
        ("empty", decode(ip_packet(b""))),
    ],
    "tcp_bad_offset": [
        ("doff_4", decode(ip_packet(tcp_bytes(doff=4)))),
        ("doff_0", decode(ip_packet(tcp_bytes(doff=0)))),
        ("past_segment", decode(ip_packet(tcp_bytes(b"\1\1\1\1", doff=15, payload=b"abcd")))),
    ],
    "tcp_bad_option": [
        ("len_0", decode(ip_packet(tcp_bytes(b"\x63\x00\x00\x00")))),
        ("len_1", decode(ip_packet(tcp_bytes(b"\x63\x01\x00\x00")))),
        ("past_header", decode(ip_packet(tcp_bytes(b"\x01\x63\x04\x00")))),
        ("no_length_byte", decode(ip_packet(tcp_bytes(b"\x01\x01\x01\x08")))),
        ("mss_len_3", decode(ip_packet(tcp_bytes(b"\x02\x03\x05\x00")))),
        ("ts_len_12", decode(ip_packet(tcp_bytes(b"\x08\x0c" + bytes(10))))),
        ("sack_len_12", decode(ip_packet(tcp_bytes(b"\x05\x0c" + bytes(10))))),
    ],
    "tcp_bad_checksum": [
        ("flipped", decode(ip_packet(tcp_bytes(payload=b"data", good_checksum=False)))),
    ],
    "icmp_truncated": [
        ("7_bytes", icmp(b"\x08\x00\xf7\xff\x00\x00\x00")),
        ("quote_short", unreach(b"\x45" + bytes(18))),
        ("quote_without_8_bytes", unreach(b"\x45" + bytes(26))),
    ],
    "icmp_bad_checksum": [("flipped", icmp(b"\x08\x00\x12\x34" + bytes(4)))],
    "icmp_bad_quote": [
        ("v6_quote", unreach(b"\x60" + bytes(47))),
        ("ihl_4_quote", unreach(b"\x44" + bytes(27))),
    ],
}


def test_every_reason_is_crafted_and_described() -> None:
    assert list(CRAFTED) == list(DROP_REASONS)
    for reason, description in DROP_REASONS.items():
        assert reason.isidentifier() and reason.islower()
        assert description and "\n" not in description


@pytest.mark.parametrize(
    ("reason", "thunk"),
    [
        pytest.param(reason, thunk, id=f"{reason}-{name}")
        for reason, cases in CRAFTED.items()
        for name, thunk in cases
    ],
)
def test_crafted_packet_drop_reason(reason: str, thunk: Callable[[], object]) -> None:
    with pytest.raises(WireError) as info:
        thunk()
    assert info.value.reason == reason
    assert str(info.value).startswith(reason)


def test_crafted_packets_are_otherwise_sound() -> None:
    # The crafting helpers themselves produce valid packets when asked to.
    assert decode_ipv4_tcp(ip_packet(GOOD_TCP))[2] == Segment(1000, 80, 1, 2, ACK, 100)
    assert decode_ipv4_tcp(ip_packet(tcp_bytes(b"\x02\x04\x05\xb4")))[2].mss == 1460


def test_describe_names_drop_reason() -> None:
    assert "ip_bad_checksum" in describe_packet(ip_packet(GOOD_TCP, good_checksum=False))
    bad_tcp = describe_packet(ip_packet(tcp_bytes(good_checksum=False)))
    assert bad_tcp == "IP 10.1.1.1 > 10.2.2.2: tcp [drop tcp_bad_checksum], length 20"
    assert "ip_truncated" in describe_packet(b"\x45")
    assert describe_packet(ip_packet(b"abc", proto=17)) == "IP 10.1.1.1 > 10.2.2.2: ip-proto-17 3"


def test_describe_tcp_like_tcpdump() -> None:
    seg = Segment(
        40000, 80, 1, 0, SYN, 64240, mss=1460, sack_permitted=True, tsval=5, tsecr=0, wscale=7
    )
    assert describe_packet(encode_ipv4_tcp(SRC, DST, seg)) == (
        "IP 10.1.1.1.40000 > 10.2.2.2.80: Flags [S], seq 1, win 64240, "
        "options [mss 1460,sackOK,TS val 5 ecr 0,wscale 7], length 0"
    )
    seg = Segment(
        80,
        40000,
        2**32 - 2,
        2,
        ACK | 0x08,
        501,
        b"hello",
        tsval=9,
        tsecr=5,
        sack_blocks=((10, 20),),
        ecn=3,
    )
    assert describe_packet(encode_ipv4_tcp(DST, SRC, seg)) == (
        "IP 10.2.2.2.80 > 10.1.1.1.40000: Flags [P.], seq 4294967294:3, ack 2, win 501, "
        "options [TS val 9 ecr 5,sack 1 {10:20}], length 5 [CE]"
    )


# --- fuzzing ----------------------------------------------------------------------------------

U32 = st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 100, 2**32 - 1))


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    ts = draw(st.none() | st.tuples(U32, U32))
    blocks = draw(st.lists(st.tuples(U32, U32), max_size=2))
    return Segment(
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFF)),
        draw(U32),
        draw(U32),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.binary(max_size=200)),
        urgent=draw(st.integers(0, 0xFFFF)),
        mss=draw(st.none() | st.integers(0, 0xFFFF)),
        wscale=draw(st.none() | st.integers(0, 255)),
        sack_permitted=draw(st.booleans()),
        sack_blocks=tuple(blocks),
        tsval=None if ts is None else ts[0],
        tsecr=None if ts is None else ts[1],
        ecn=draw(st.integers(0, 3)),
    )


def decode_or_reason(raw: bytes, *, verify: bool = True) -> Segment | str:
    """Decode; the only exception allowed out of the decoder is WireError."""
    try:
        return decode_ipv4_tcp(raw, verify_checksum=verify)[2]
    except WireError as e:
        assert e.reason in DROP_REASONS
        return e.reason


@given(st.binary(max_size=120), st.booleans())
@settings(max_examples=500)
def test_arbitrary_bytes(raw: bytes, verify: bool) -> None:
    decode_or_reason(raw, verify=verify)
    assert isinstance(describe_packet(raw), str)


@given(st.binary(max_size=60), st.binary(max_size=40))
@settings(max_examples=500)
def test_arbitrary_tcp_behind_valid_ip_with_valid_checksums(head: bytes, tail: bytes) -> None:
    # Valid IP and TCP checksums so the offset and option parsers really get fuzzed.
    raw = fix_checksums(ip_packet(head + tail))
    result = decode_or_reason(raw)
    assert not isinstance(result, str) or result.startswith("tcp_")
    assert isinstance(describe_packet(raw), str)


@given(st.binary(max_size=40))
@settings(max_examples=500)
def test_arbitrary_option_block(opts: bytes) -> None:
    try:
        parse_options(opts)
    except WireError as e:
        assert e.reason == "tcp_bad_option"


@given(segments(), st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
@settings(max_examples=200)
def test_valid_packet_roundtrips_exactly(seg: Segment, src: bytes, dst: bytes) -> None:
    raw = encode_ipv4_tcp(src, dst, seg, ident=7)
    got_src, got_dst, got = decode_ipv4_tcp(raw)
    assert (got_src, got_dst, got) == (src, dst, seg)
    assert encode_ipv4_tcp(src, dst, got, ident=7) == raw


@given(segments(), st.data())
@settings(max_examples=200)
def test_single_bit_flip_always_detected(seg: Segment, data: st.DataObject) -> None:
    raw = bytearray(encode_ipv4_tcp(SRC, DST, seg))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    assert isinstance(decode_or_reason(bytes(raw)), str)
    assert isinstance(describe_packet(bytes(raw)), str)


@given(segments(), st.data())
@settings(max_examples=200)
def test_random_mutations(seg: Segment, data: st.DataObject) -> None:
    raw = bytearray(encode_ipv4_tcp(SRC, DST, seg))
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    decode_or_reason(bytes(raw))
    decode_or_reason(bytes(raw), verify=False)
    fixed = fix_checksums(bytes(raw))
    decode_or_reason(fixed)
    assert isinstance(describe_packet(fixed), str)


@given(segments())
@settings(max_examples=40)
def test_truncation_at_every_length(seg: Segment) -> None:
    raw = encode_ipv4_tcp(SRC, DST, seg)
    for n in range(len(raw)):
        assert decode_or_reason(raw[:n]) in ("ip_truncated", "ip_bad_total_length")
        assert decode_or_reason(raw[:n], verify=False) in ("ip_truncated", "ip_bad_total_length")


@given(segments(), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_option_corruption_with_valid_checksums(seg: Segment, data: st.DataObject) -> None:
    raw = bytearray(encode_ipv4_tcp(SRC, DST, seg))
    hl = 20 + (raw[32] >> 4) * 4
    if hl > 40:
        # Overwrite a stretch of the options with arbitrary bytes.
        start = data.draw(st.integers(40, hl - 1))
        junk = data.draw(st.binary(min_size=1, max_size=hl - start))
        raw[start : start + len(junk)] = junk
    if data.draw(st.booleans()):
        raw[32] = (data.draw(st.integers(0, 15)) << 4) | (raw[32] & 15)
    result = decode_or_reason(fix_checksums(bytes(raw)))
    assert not isinstance(result, str) or result in ("tcp_bad_option", "tcp_bad_offset")


@given(st.binary(max_size=80), st.booleans())
@settings(max_examples=500)
def test_arbitrary_icmp(raw: bytes, verify: bool) -> None:
    try:
        msg = parse_icmp(raw, verify_checksum=verify)
    except WireError as e:
        assert e.reason in ("icmp_truncated", "icmp_bad_checksum")
        return
    try:
        parse_icmp_quote(msg)
        if msg.type == ICMP_DEST_UNREACH:
            parse_dest_unreachable(msg)
    except WireError as e:
        assert e.reason in ("icmp_truncated", "icmp_bad_quote")


@given(segments(), st.data())
@settings(max_examples=200)
def test_mutated_dest_unreachable(seg: Segment, data: st.DataObject) -> None:
    msg = bytearray(build_dest_unreachable(UNREACH_PORT, encode_ipv4_tcp(SRC, DST, seg)))
    cut = data.draw(st.integers(0, len(msg)))
    del msg[cut:]
    for _ in range(data.draw(st.integers(0, 4))):
        if msg:
            msg[data.draw(st.integers(0, len(msg) - 1))] = data.draw(st.integers(0, 255))
    if len(msg) >= 8:  # re-checksum so the quote parser gets exercised
        msg[2:4] = b"\0\0"
        msg[2:4] = internet_checksum(bytes(msg)).to_bytes(2, "big")
    try:
        parsed = parse_icmp(bytes(msg))
        parse_icmp_quote(parsed)
    except WireError as e:
        assert e.reason in ("icmp_truncated", "icmp_bad_checksum", "icmp_bad_quote")
