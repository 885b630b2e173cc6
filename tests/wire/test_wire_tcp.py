"""TCP codec: option layouts, parsing corner cases, and scapy cross-checks both ways."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, Raw

from synack.wire import (
    ACK,
    FIN,
    PSH,
    SYN,
    Segment,
    WireError,
    build_options,
    build_tcp,
    decode_ipv4_tcp,
    encode_ipv4_tcp,
    internet_checksum,
    parse_options,
    parse_tcp,
    parse_tcp_ports_seq,
    pseudo_header_sum,
    tcp_options_length,
)

SRC = bytes([10, 0, 0, 1])
DST = bytes([10, 0, 0, 2])

# --- strategies -------------------------------------------------------------------------------

U32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(2**32 - 2000, 2**32 - 1),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]),
)
U16 = st.integers(0, 0xFFFF)
ADDR = st.binary(min_size=4, max_size=4)


@st.composite
def segments(draw: st.DrawFn, max_payload: int = 300) -> Segment:
    """Any encodable segment: all flag combos, option subsets, as many SACK blocks as fit."""
    mss = draw(st.none() | U16)
    wscale = draw(st.none() | st.integers(0, 255))
    sackok = draw(st.booleans())
    ts = draw(st.none() | st.tuples(U32, U32))
    used = (
        (4 if mss is not None else 0)
        + (12 if ts or sackok else 0)
        + (4 if wscale is not None else 0)
    )
    room = min(4, (40 - used - 4) // 8)
    blocks = draw(st.lists(st.tuples(U32, U32), max_size=max(room, 0)))
    return Segment(
        draw(U16),
        draw(U16),
        draw(U32),
        draw(U32),
        draw(st.integers(0, 255)),
        draw(U16),
        draw(st.binary(max_size=max_payload)),
        urgent=draw(U16),
        mss=mss,
        wscale=wscale,
        sack_permitted=sackok,
        sack_blocks=tuple(blocks),
        tsval=None if ts is None else ts[0],
        tsecr=None if ts is None else ts[1],
        ecn=draw(st.integers(0, 3)),
    )


# Option kinds scapy knows (it would decode them its own way) or we know.
_KNOWN_KINDS = {0, 1, 2, 3, 4, 5, 8, 14, 15, 19, 25, 28, 29, 34}
UNKNOWN_KIND = st.integers(6, 254).filter(lambda k: k not in _KNOWN_KINDS)


@st.composite
def scapy_options(draw: st.DrawFn) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
    """A shuffled scapy option list (known, unknown and NOP) of at most 40 bytes, and
    the fields our decoder should find."""
    items: list[tuple[int, tuple[Any, Any]]] = []  # (encoded length, scapy option)
    expect: dict[str, Any] = {}
    if draw(st.booleans()):
        expect["mss"] = draw(U16)
        items.append((4, ("MSS", expect["mss"])))
    if draw(st.booleans()):
        expect["wscale"] = draw(st.integers(0, 255))
        items.append((3, ("WScale", expect["wscale"])))
    if draw(st.booleans()):
        expect["sack_permitted"] = True
        items.append((2, ("SAckOK", b"")))
    if draw(st.booleans()):
        expect["tsval"], expect["tsecr"] = draw(st.tuples(U32, U32))
        items.append((10, ("Timestamp", (expect["tsval"], expect["tsecr"]))))
    used = sum(n for n, _ in items)
    for _ in range(draw(st.integers(0, 3))):
        value = draw(st.binary(max_size=max(0, min(6, 38 - used))))
        if used + 2 + len(value) <= 40:
            items.append((2 + len(value), (draw(UNKNOWN_KIND), value)))
            used += 2 + len(value)
    for _ in range(draw(st.integers(0, min(3, 40 - used)))):
        items.append((1, ("NOP", None)))
        used += 1
    nblocks = draw(st.integers(0, min(4, max(0, (40 - used - 2) // 8))))
    if nblocks:
        blocks = draw(st.lists(st.tuples(U32, U32), min_size=nblocks, max_size=nblocks))
        expect["sack_blocks"] = tuple(blocks)
        items.append((2 + 8 * nblocks, ("SAck", tuple(x for b in blocks for x in b))))
    order = draw(st.permutations(items))
    return [opt for _, opt in order], expect


# --- helpers ----------------------------------------------------------------------------------


def scapy_fields(raw: bytes) -> dict[str, Any]:
    """What scapy sees in an IPv4/TCP packet, in Segment terms."""
    pkt = IP(raw)
    t = pkt[TCP]
    out: dict[str, Any] = {
        "src_port": t.sport,
        "dst_port": t.dport,
        "seq": t.seq,
        "ack": t.ack,
        "flags": int(t.flags),
        "window": t.window,
        "urgent": t.urgptr,
        "ecn": pkt.tos & 3,
        "mss": None,
        "wscale": None,
        "sack_permitted": False,
        "sack_blocks": (),
        "tsval": None,
        "tsecr": None,
    }
    for name, value in t.options:
        if name == "MSS":
            out["mss"] = value
        elif name == "WScale":
            out["wscale"] = value
        elif name == "SAckOK":
            out["sack_permitted"] = True
        elif name == "Timestamp":
            out["tsval"], out["tsecr"] = value
        elif name == "SAck":
            out["sack_blocks"] = tuple(zip(value[::2], value[1::2], strict=True))
    hl = 20 + t.dataofs * 4
    out["payload"] = raw[hl : pkt.len]
    return out


def seg_fields(seg: Segment) -> dict[str, Any]:
    return {
        k: (bytes(getattr(seg, k)) if k == "payload" else getattr(seg, k))
        for k in Segment.__slots__
    }


def option_names(raw: bytes) -> list[str]:
    return [name if isinstance(name, str) else str(name) for name, _ in IP(raw)[TCP].options]


# --- scapy cross-checks -----------------------------------------------------------------------


@given(segments(), ADDR, ADDR)
@settings(max_examples=150)
def test_ours_decoded_by_scapy(seg: Segment, src: bytes, dst: bytes) -> None:
    raw = encode_ipv4_tcp(src, dst, seg)
    assert scapy_fields(raw) == seg_fields(seg)
    # scapy recomputes both checksums to the same values and re-serialises identically.
    pkt = IP(raw)
    del pkt.chksum
    del pkt[TCP].chksum
    again = bytes(pkt)
    assert again == raw
    redone = IP(again)
    assert redone.chksum == int.from_bytes(raw[10:12], "big")
    assert redone[TCP].chksum == int.from_bytes(raw[36:38], "big")


@given(segments(max_payload=200), st.integers(0, 255), scapy_options(), ADDR, ADDR)
@settings(max_examples=150)
def test_scapy_decoded_by_ours(
    seg: Segment,
    tos: int,
    opts: tuple[list[tuple[Any, Any]], dict[str, Any]],
    src: bytes,
    dst: bytes,
) -> None:
    options, expect = opts
    pkt = (
        IP(src=".".join(map(str, src)), dst=".".join(map(str, dst)), tos=tos)
        / TCP(
            sport=seg.src_port,
            dport=seg.dst_port,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flags,
            window=seg.window,
            urgptr=seg.urgent,
            options=options,
        )
        / Raw(bytes(seg.payload))
    )
    raw = bytes(pkt)
    got_src, got_dst, got = decode_ipv4_tcp(raw)
    assert (got_src, got_dst) == (src, dst)
    want = Segment(
        seg.src_port,
        seg.dst_port,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.window,
        seg.payload,
        urgent=seg.urgent,
        ecn=tos & 3,
        **expect,
    )
    assert got == want
    assert isinstance(got.payload, memoryview)


def test_scapy_syn_with_linux_options_matches_our_layout() -> None:
    seg = Segment(
        40000, 443, 1, 0, SYN, 64240, mss=1460, sack_permitted=True, tsval=7, tsecr=0, wscale=7
    )
    raw = encode_ipv4_tcp(SRC, DST, seg)
    linux = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", flags="DF", id=0)
        / TCP(
            sport=40000,
            dport=443,
            seq=1,
            ack=0,
            flags="S",
            window=64240,
            options=[
                ("MSS", 1460),
                ("SAckOK", b""),
                ("Timestamp", (7, 0)),
                ("NOP", None),
                ("WScale", 7),
            ],
        )
    )
    assert raw == linux


# --- option layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({}, []),
        ({"mss": 1460}, ["MSS"]),
        (
            {"mss": 1460, "sack_permitted": True, "tsval": 1, "tsecr": 0, "wscale": 7},
            ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"],
        ),
        (
            {"mss": 1460, "tsval": 1, "tsecr": 0, "wscale": 7},
            ["MSS", "NOP", "NOP", "Timestamp", "NOP", "WScale"],
        ),
        (
            {"mss": 1460, "sack_permitted": True, "wscale": 7},
            ["MSS", "NOP", "NOP", "SAckOK", "NOP", "WScale"],
        ),
        ({"mss": 1460, "sack_permitted": True}, ["MSS", "NOP", "NOP", "SAckOK"]),
        ({"tsval": 5, "tsecr": 6}, ["NOP", "NOP", "Timestamp"]),
        (
            {"tsval": 5, "tsecr": 6, "sack_blocks": ((1, 2), (3, 4))},
            ["NOP", "NOP", "Timestamp", "NOP", "NOP", "SAck"],
        ),
        ({"sack_blocks": ((1, 2), (3, 4), (5, 6), (7, 8))}, ["NOP", "NOP", "SAck"]),
    ],
)
def test_linux_option_layout(kwargs: dict[str, Any], names: list[str]) -> None:
    flags = SYN if "mss" in kwargs else ACK
    seg = Segment(1, 2, 3, 4, flags, 5, **kwargs)
    hdr = build_tcp(seg, SRC, DST)
    assert len(hdr) % 4 == 0
    assert len(hdr) - 20 == tcp_options_length(seg) == len(build_options(seg))
    assert option_names(encode_ipv4_tcp(SRC, DST, seg)) == names
    assert parse_tcp(hdr, SRC, DST) == seg


def test_sack_blocks_beyond_option_space_are_dropped_from_the_end() -> None:
    blocks = ((1, 2), (3, 4), (5, 6), (7, 8))
    seg = Segment(1, 2, 3, 4, ACK, 5, tsval=1, tsecr=2, sack_blocks=blocks)
    assert tcp_options_length(seg) == 40
    assert parse_tcp(build_tcp(seg, SRC, DST), SRC, DST).sack_blocks == blocks[:3]
    seg = Segment(1, 2, 3, 4, ACK, 5, sack_blocks=(*blocks, (9, 10)))
    assert parse_tcp(build_tcp(seg, SRC, DST), SRC, DST).sack_blocks == blocks


def test_header_excludes_payload_but_checksum_covers_it() -> None:
    payload = b"x" * 1461
    seg = Segment(1234, 80, 2**32 - 5, 99, ACK | PSH, 1000, payload, tsval=1, tsecr=2)
    hdr = build_tcp(seg, SRC, DST)
    assert len(hdr) == 32
    whole = hdr + payload
    assert internet_checksum(whole, pseudo_header_sum(SRC, DST, 6, len(whole))) == 0
    assert parse_tcp(whole, SRC, DST) == seg
    assert build_tcp(seg, SRC, DST, checksum=False)[16:18] == b"\0\0"


def test_payload_is_a_zero_copy_view() -> None:
    seg = Segment(1, 2, 3, 4, ACK, 5, b"hello world")
    buf = bytearray(encode_ipv4_tcp(SRC, DST, seg))
    got = decode_ipv4_tcp(buf)[2]
    assert isinstance(got.payload, memoryview)
    assert got.payload.obj is buf
    assert bytes(got.payload) == b"hello world"


def test_reserved_bits_ignored_and_sent_as_zero() -> None:
    seg = Segment(1, 2, 3, 4, FIN | ACK, 5)
    hdr = bytearray(build_tcp(seg, SRC, DST, checksum=False))
    assert hdr[12] & 0x0F == 0
    hdr[12] |= 0x0F
    assert parse_tcp(bytes(hdr), SRC, DST, verify_checksum=False) == seg


# --- option parsing corner cases --------------------------------------------------------------


def test_unknown_options_skipped_eol_stops_last_copy_wins() -> None:
    opts = (
        bytes([2, 4, 0x05, 0xB4])  # MSS 1460
        + bytes([99, 5, 1, 2, 3])  # unknown, odd length
        + bytes([3, 3, 14])  # wscale 14
        + bytes([2, 4, 0x02, 0x18])  # MSS again: 536 wins
        + bytes([0])  # EOL: the rest is ignored
        + bytes([8, 1, 0, 0])
    )  # would be malformed
    assert parse_options(opts) == (536, 14, False, (), None, None)


def test_window_scale_above_14_kept_as_received() -> None:
    seg = Segment(1, 2, 3, 4, SYN, 5, wscale=200)
    assert parse_tcp(build_tcp(seg, SRC, DST), SRC, DST).wscale == 200


@pytest.mark.parametrize(
    "opts",
    [
        bytes([2]),  # no length byte
        bytes([1, 1, 1, 99]),  # unknown kind with no length byte
        bytes([99, 0, 0, 0]),  # length 0
        bytes([99, 1, 0, 0]),  # length 1
        bytes([99, 9, 0, 0]),  # runs past the options
        bytes([2, 3, 5, 0]),  # MSS length 3
        bytes([3, 4, 7, 0]),  # window scale length 4
        bytes([4, 3, 0, 0]),  # SACK-permitted length 3
        bytes([5, 2, 0, 0]),  # SACK with no blocks
        bytes([5, 11]) + bytes(10),  # SACK length not 2+8n
        bytes([8, 8]) + bytes(6),  # timestamps length 8
    ],
)
def test_malformed_options(opts: bytes) -> None:
    with pytest.raises(WireError) as info:
        parse_options(opts)
    assert info.value.reason == "tcp_bad_option"
    hdr = bytearray(build_tcp(Segment(1, 2, 3, 4, ACK, 5), SRC, DST, checksum=False))
    hdr[12] = ((20 + len(opts) + 3) // 4) << 4
    raw = bytes(hdr) + opts + bytes(-len(opts) % 4)
    with pytest.raises(WireError) as info:
        parse_tcp(raw, SRC, DST, verify_checksum=False)
    assert info.value.reason == "tcp_bad_option"


def test_ports_seq_from_quoted_header() -> None:
    hdr = build_tcp(Segment(5555, 22, 2**32 - 1, 0, SYN, 0, mss=1460), SRC, DST)
    assert parse_tcp_ports_seq(hdr[:8]) == (5555, 22, 2**32 - 1)
    with pytest.raises(WireError) as info:
        parse_tcp_ports_seq(hdr[:7])
    assert info.value.reason == "tcp_truncated"


@pytest.mark.parametrize(
    "seg",
    [
        Segment(70000, 2, 3, 4, ACK, 5),
        Segment(1, 2, 2**32, 4, ACK, 5),
        Segment(1, 2, 3, -1, ACK, 5, tsval=1, tsecr=1),
        Segment(1, 2, 3, 4, ACK, 5, mss=1 << 16),
        Segment(1, 2, 3, 4, ACK, 5, wscale=256),
        Segment(1, 2, 3, 4, ACK, 1 << 16, tsval=2**32, tsecr=0),
        Segment(1, 2, 3, 4, 0x100, 5),
    ],
)
def test_build_rejects_out_of_range(seg: Segment) -> None:
    with pytest.raises(ValueError):
        build_tcp(seg, SRC, DST)


@given(segments(), ADDR, ADDR)
@settings(max_examples=200)
def test_roundtrip(seg: Segment, src: bytes, dst: bytes) -> None:
    hdr = build_tcp(seg, src, dst)
    got = parse_tcp(hdr + bytes(seg.payload), src, dst, ecn=seg.ecn)
    assert got == seg
    assert build_tcp(got, src, dst) == hdr
    assert struct.unpack_from("!H", hdr, 12)[0] >> 12 == len(hdr) // 4
