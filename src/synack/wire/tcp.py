"""TCP header and options codec (RFC 9293 §3.1, RFC 7323, RFC 2018, RFC 6691).

:func:`parse_tcp` returns a :class:`~synack.wire.segment.Segment` whose
``payload`` is a zero-copy ``memoryview`` into the caller's buffer: the core
copies it into its own buffers, and a caller that recycles the receive buffer
must do so only after the segment has been consumed.

:func:`build_tcp` returns the header with options but without the payload; its
checksum nevertheless covers pseudo-header, header and payload, so a sender
can hand ``[ip_header, tcp_header, payload]`` to ``writev`` without ever
concatenating the payload.

Options are laid out the way Linux does (RFC 7323 Appendix A's layouts)::

    SYN:      mss N, sackOK, TS val X ecr Y, nop, wscale W
    data/ACK: nop, nop, TS val X ecr Y, nop, nop, sack L:R ...

so every option group is 4-byte aligned and no padding is needed.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Final

from .checksum import FOLD_ABOVE, BytesLike, reduce_words
from .errors import WireError
from .ipv4 import PROTO_TCP
from .segment import Segment

TCP_HEADER_LEN: Final = 20
TCP_MAX_OPTIONS: Final = 40

OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WSCALE: Final = 3
OPT_SACK_PERMITTED: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMP: Final = 8

# src port, dst port, seq, ack, data offset<<12 | flags (reserved bits zero), window,
# checksum, urgent pointer
_HDR: Final = struct.Struct("!HHIIHHHH")
# The same, as received: the data-offset byte and the flags byte apart.
_HDR_IN: Final = struct.Struct("!HHIIBBHHH")
# Header followed by the common data-segment option block: nop, nop, TS.
_HDR_TS: Final = struct.Struct("!HHIIHHHHHHII")
_TS_VALS: Final = struct.Struct("!II")
_PORTS_SEQ: Final = struct.Struct("!HHI")
_MSS: Final = struct.Struct("!BBH")
_SACKOK_TS: Final = struct.Struct("!BBBBII")
_NOP_NOP_TS: Final = struct.Struct("!BBBBII")
_NOP_WSCALE: Final = struct.Struct("!BBBB")
_SACK: Final = tuple(struct.Struct("!BBBB" + "II" * n) for n in range(5))
_SACK_EDGES: Final = tuple(struct.Struct("!" + "II" * n) for n in range(5))

_TS_PREFIX: Final = b"\x01\x01\x08\x0a"
_NOP_NOP_SACKOK: Final = b"\x01\x01\x04\x02"
# Sum of the constant words of "nop, nop, TS" (0x0101 + 0x080A) for the fast checksum path.
_TS_PREFIX_SUM: Final = 0x0101 + 0x080A
_DOFF_TS: Final = (TCP_HEADER_LEN + 12) << 10
_DOFF_BARE: Final = TCP_HEADER_LEN << 10
_SACK_LENGTHS: Final = frozenset((10, 18, 26, 34))


def _bad_option(detail: str) -> WireError:
    return WireError("tcp_bad_option", detail)


def parse_options(
    opts: bytes,
) -> tuple[int | None, int | None, bool, tuple[tuple[int, int], ...], int | None, int | None]:
    """Decode a TCP option block (RFC 9293 §3.1, §3.2).

    Returns ``(mss, wscale, sack_permitted, sack_blocks, tsval, tsecr)``.  EOL
    ends the list; unknown kinds are skipped by their length; a later copy of
    an option overrides an earlier one.  A window scale above 14 is returned
    as received (the connection clamps it, RFC 7323 §2.3).  Raises
    ``WireError("tcp_bad_option")`` on a length below 2, past the block, or
    wrong for a known kind (MSS 4 RFC 6691, WS 3 and TS 10 RFC 7323,
    SACK-permitted 2 and SACK 2+8n RFC 2018).
    """
    mss: int | None = None
    wscale: int | None = None
    sack_permitted = False
    blocks: tuple[tuple[int, int], ...] = ()
    tsval: int | None = None
    tsecr: int | None = None
    end = len(opts)
    i = 0
    while i < end:
        kind = opts[i]
        if kind == OPT_NOP:
            i += 1
            continue
        if kind == OPT_EOL:
            break
        if i + 1 >= end:
            raise _bad_option(f"kind {kind} at offset {i} has no length byte")
        olen = opts[i + 1]
        if olen < 2 or i + olen > end:
            raise _bad_option(f"kind {kind} length {olen} at offset {i} of {end}")
        if kind == OPT_TIMESTAMP:
            if olen != 10:
                raise _bad_option(f"timestamps length {olen}")
            tsval, tsecr = _TS_VALS.unpack_from(opts, i + 2)
        elif kind == OPT_SACK:
            if olen not in _SACK_LENGTHS:
                raise _bad_option(f"SACK length {olen}")
            edges = _SACK_EDGES[(olen - 2) >> 3].unpack_from(opts, i + 2)
            blocks = tuple(zip(edges[::2], edges[1::2], strict=True))
        elif kind == OPT_MSS:
            if olen != 4:
                raise _bad_option(f"MSS length {olen}")
            mss = (opts[i + 2] << 8) | opts[i + 3]
        elif kind == OPT_WSCALE:
            if olen != 3:
                raise _bad_option(f"window scale length {olen}")
            wscale = opts[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            if olen != 2:
                raise _bad_option(f"SACK-permitted length {olen}")
            sack_permitted = True
        i += olen
    return mss, wscale, sack_permitted, blocks, tsval, tsecr


def tcp_checksum_ok(data: BytesLike, src: bytes, dst: bytes) -> bool:
    """Whether a TCP segment (header and payload, checksum field included) sums to zero
    with its pseudo-header (RFC 9293 §3.1; IPv6 RFC 8200 §8.1: 4- or 16-byte addresses,
    each read as one integer, which is congruent to the sum of its 16-bit words)."""
    n = len(data)
    # Reduce before adding (no big-int copies); large segments fold first.
    big = int.from_bytes(data, "big")
    s = big % 0xFFFF if big < FOLD_ABOVE else reduce_words(big, n)
    if n & 1:
        s <<= 8
    # The pseudo-header makes the sum non-zero, so "== 0xFFFF" is "≡ 0 mod 0xFFFF".
    return (
        not (s + int.from_bytes(src, "big") + int.from_bytes(dst, "big") + PROTO_TCP + n) % 0xFFFF
    )


def parse_tcp(
    data: BytesLike, src: bytes, dst: bytes, *, verify_checksum: bool = True, ecn: int = 0
) -> Segment:
    """Decode one TCP segment (RFC 9293 §3.1); raises :class:`WireError`.

    ``src``/``dst`` are the IP addresses for the pseudo-header; ``ecn`` is
    copied into ``Segment.ecn``.  Checks, in order: length, checksum, data
    offset, options.  Reserved header bits are ignored (RFC 9293 §3.1).  The
    payload is a zero-copy ``memoryview`` slice of ``data``.
    """
    n = len(data)
    if n < TCP_HEADER_LEN:
        raise WireError("tcp_truncated", f"{n} bytes")
    sport, dport, seq, ack, doff, flags, window, _, urgent = _HDR_IN.unpack_from(data)
    if verify_checksum and not tcp_checksum_ok(data, src, dst):
        raise WireError("tcp_bad_checksum")
    hl = (doff >> 4) << 2
    if hl < TCP_HEADER_LEN or hl > n:
        raise WireError("tcp_bad_offset", f"data offset {doff >> 4}, segment {n} bytes")
    payload = memoryview(data)[hl:]
    if hl == TCP_HEADER_LEN:
        return Segment(sport, dport, seq, ack, flags, window, payload, urgent=urgent, ecn=ecn)
    if hl == 32 and data[20:24] == _TS_PREFIX:
        tsval, tsecr = _TS_VALS.unpack_from(data, 24)
        return Segment(
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            payload,
            urgent=urgent,
            tsval=tsval,
            tsecr=tsecr,
            ecn=ecn,
        )
    mss, wscale, sackok, blocks, tsval, tsecr = parse_options(bytes(data[TCP_HEADER_LEN:hl]))
    return Segment(
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        payload,
        urgent=urgent,
        mss=mss,
        wscale=wscale,
        sack_permitted=sackok,
        sack_blocks=blocks,
        tsval=tsval,
        tsecr=tsecr,
        ecn=ecn,
    )


def parse_tcp_ports_seq(data: BytesLike) -> tuple[int, int, int]:
    """``(sport, dport, seq)`` from the first 8 bytes of a TCP header.

    For headers quoted in ICMP errors, where only 8 bytes are guaranteed
    (RFC 792; RFC 1122 §3.2.2).  Raises ``WireError("tcp_truncated")``.
    """
    if len(data) < 8:
        raise WireError("tcp_truncated", f"{len(data)} bytes of quoted TCP header")
    sport, dport, seq = _PORTS_SEQ.unpack_from(data)
    return sport, dport, seq


def build_options(seg: Segment) -> bytes:
    """Encode ``seg``'s options in Linux's order (see the module docstring).

    SACK blocks that do not fit in the 40-byte option space are dropped from
    the end (RFC 2018 §3: at most 4 blocks, 3 alongside timestamps; the first
    block must be the most recent).  The result is padded with zero (EOL)
    bytes to a multiple of 4, which the layouts above never need.
    """
    parts: list[bytes] = []
    if seg.mss is not None:
        parts.append(_MSS.pack(OPT_MSS, 4, seg.mss))
    if seg.tsval is not None:
        tsecr = seg.tsecr or 0
        if seg.sack_permitted:
            parts.append(
                _SACKOK_TS.pack(OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10, seg.tsval, tsecr)
            )
        else:
            parts.append(_NOP_NOP_TS.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, seg.tsval, tsecr))
    elif seg.sack_permitted:
        parts.append(_NOP_NOP_SACKOK)
    if seg.wscale is not None:
        parts.append(_NOP_WSCALE.pack(OPT_NOP, OPT_WSCALE, 3, seg.wscale))
    if seg.sack_blocks:
        used = sum(map(len, parts))
        count = min(len(seg.sack_blocks), 4, (TCP_MAX_OPTIONS - used - 4) // 8)
        if count > 0:
            parts.append(
                _SACK[count].pack(
                    OPT_NOP,
                    OPT_NOP,
                    OPT_SACK,
                    2 + 8 * count,
                    *chain.from_iterable(seg.sack_blocks[:count]),
                )
            )
    opts = b"".join(parts)
    if len(opts) & 3:
        opts += bytes(4 - (len(opts) & 3))
    return opts


def tcp_options_length(seg: Segment) -> int:
    """Bytes of options :func:`build_tcp` emits for ``seg`` (a multiple of 4, at most 40)."""
    if seg.mss is None and seg.wscale is None and not seg.sack_permitted and not seg.sack_blocks:
        return 0 if seg.tsval is None else 12
    return len(build_options(seg))


def build_tcp(seg: Segment, src: bytes, dst: bytes, *, checksum: bool = True) -> bytes:
    """Encode ``seg``'s TCP header and options, *without* the payload (RFC 9293 §3.1).

    The checksum covers the pseudo-header for ``src``/``dst``, the header and
    ``seg.payload``.  ``checksum=False`` leaves the field zero (offload).
    A computed checksum of 0 is sent as 0 (RFC 9293 §3.1 has no UDP-style
    0xFFFF substitution).  Reserved bits are sent as zero; raises
    ``ValueError`` for fields out of range.
    """
    if seg.flags & ~0xFF:
        raise ValueError(f"TCP flags {seg.flags:#x} do not fit in 8 bits")
    payload = seg.payload
    plen = len(payload)
    try:
        if (
            seg.mss is None
            and seg.wscale is None
            and not seg.sack_permitted
            and not seg.sack_blocks
        ):
            if seg.tsval is None:
                # Bare header: no options.
                doff_flags = _DOFF_BARE | seg.flags
                csum = 0
                if checksum:
                    big = int.from_bytes(payload, "big")
                    s = big % 0xFFFF if big < FOLD_ABOVE else reduce_words(big, plen)
                    if plen & 1:
                        s <<= 8
                    s += (
                        int.from_bytes(src, "big")
                        + int.from_bytes(dst, "big")
                        + PROTO_TCP
                        + TCP_HEADER_LEN
                        + plen
                        + seg.src_port
                        + seg.dst_port
                        + seg.seq
                        + seg.ack
                        + doff_flags
                        + seg.window
                        + seg.urgent
                    )
                    csum = 0xFFFF ^ (s % 0xFFFF or 0xFFFF)  # fold(s), inline: s > 0
                return _HDR.pack(
                    seg.src_port,
                    seg.dst_port,
                    seg.seq,
                    seg.ack,
                    doff_flags,
                    seg.window,
                    csum,
                    seg.urgent,
                )
            # The common data/ACK segment: nop, nop, TS.
            doff_flags = _DOFF_TS | seg.flags
            tsecr = seg.tsecr or 0
            csum = 0
            if checksum:
                big = int.from_bytes(payload, "big")
                s = big % 0xFFFF if big < FOLD_ABOVE else reduce_words(big, plen)
                if plen & 1:
                    s <<= 8
                s += (
                    int.from_bytes(src, "big")
                    + int.from_bytes(dst, "big")
                    + PROTO_TCP
                    + TCP_HEADER_LEN
                    + 12
                    + plen
                    + seg.src_port
                    + seg.dst_port
                    + seg.seq
                    + seg.ack
                    + doff_flags
                    + seg.window
                    + seg.urgent
                    + _TS_PREFIX_SUM
                    + seg.tsval
                    + tsecr
                )
                csum = 0xFFFF ^ (s % 0xFFFF or 0xFFFF)  # fold(s), inline: s > 0
            return _HDR_TS.pack(
                seg.src_port,
                seg.dst_port,
                seg.seq,
                seg.ack,
                doff_flags,
                seg.window,
                csum,
                seg.urgent,
                0x0101,
                0x080A,
                seg.tsval,
                tsecr,
            )
        opts = build_options(seg)
        hl = TCP_HEADER_LEN + len(opts)
        doff_flags = (hl << 10) | seg.flags
        csum = 0
        if checksum:
            big = int.from_bytes(payload, "big")
            s = big % 0xFFFF if big < FOLD_ABOVE else reduce_words(big, plen)
            if plen & 1:
                s <<= 8
            s += (
                int.from_bytes(src, "big")
                + int.from_bytes(dst, "big")
                + PROTO_TCP
                + hl
                + plen
                + seg.src_port
                + seg.dst_port
                + seg.seq
                + seg.ack
                + doff_flags
                + seg.window
                + seg.urgent
                + int.from_bytes(opts, "big")
            )
            csum = 0xFFFF ^ (s % 0xFFFF or 0xFFFF)  # fold(s), inline: s > 0
        return (
            _HDR.pack(
                seg.src_port,
                seg.dst_port,
                seg.seq,
                seg.ack,
                doff_flags,
                seg.window,
                csum,
                seg.urgent,
            )
            + opts
        )
    except struct.error as e:
        raise ValueError(f"TCP field out of range in {seg!r}: {e}") from None
