"""ICMPv4 messages (RFC 792): parse, echo reply, destination unreachable.

An ICMP message is 8 header bytes (type, code, checksum, four "rest of
header" bytes whose meaning depends on the type) followed by a body.  Error
messages quote the offending datagram's IP header and at least the first 8
bytes of its payload (RFC 792; RFC 1122 §3.2.2), enough for the TCP ports and
sequence number.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .checksum import BytesLike, ones_sum
from .errors import WireError
from .ipv4 import IPV4_HEADER_LEN
from .tcp import parse_tcp_ports_seq

ICMP_ECHO_REPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_SOURCE_QUENCH: Final = 4
ICMP_REDIRECT: Final = 5
ICMP_ECHO_REQUEST: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP_PARAMETER_PROBLEM: Final = 12

# Destination-unreachable codes (RFC 792; 4 is RFC 1191's "fragmentation needed").
UNREACH_NET: Final = 0
UNREACH_HOST: Final = 1
UNREACH_PROTOCOL: Final = 2
UNREACH_PORT: Final = 3
UNREACH_FRAG_NEEDED: Final = 4

ICMP_HEADER_LEN: Final = 8
ICMP_MAX_QUOTE: Final = 548
"""Bytes of the original datagram quoted in an error: 576 - 20 (IP) - 8 (ICMP), as Linux does."""

_HDR: Final = struct.Struct("!BBH4s")
_QUOTED_IP: Final = struct.Struct("!BxHxxxxxBxx4s4s")
_UNUSED_MTU: Final = struct.Struct("!HH")


class IcmpMessage(NamedTuple):
    """A decoded ICMP message.  ``body`` is a zero-copy view of the input."""

    type: int
    code: int
    checksum: int
    rest: bytes
    body: memoryview


class IcmpQuote(NamedTuple):
    """What an ICMP error tells about the datagram it quotes (RFC 792, RFC 1191 §4).

    ``sport``/``dport``/``seq`` are the first 8 quoted payload bytes read as
    a TCP header; they mean nothing unless ``proto`` is TCP (6).
    ``next_hop_mtu`` is non-zero only in a "fragmentation needed" message.
    """

    type: int
    code: int
    next_hop_mtu: int
    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    seq: int


def parse_icmp(data: BytesLike, *, verify_checksum: bool = True) -> IcmpMessage:
    """Decode an ICMP message (RFC 792); raises :class:`WireError`.

    The checksum covers the whole message; either one's-complement zero in
    the field is accepted for a correct message (RFC 1624 §3).
    """
    if len(data) < ICMP_HEADER_LEN:
        raise WireError("icmp_truncated", f"{len(data)} bytes")
    if verify_checksum and ones_sum(data) != 0xFFFF:
        raise WireError("icmp_bad_checksum")
    typ, code, csum, rest = _HDR.unpack_from(data)
    return IcmpMessage(typ, code, csum, rest, memoryview(data)[ICMP_HEADER_LEN:])


def build_icmp(typ: int, code: int, rest: bytes = b"\0\0\0\0", body: BytesLike = b"") -> bytes:
    """Encode an ICMP message with its checksum (RFC 792).  ``rest`` must be 4 bytes."""
    if len(rest) != 4:
        raise ValueError(f"ICMP rest-of-header must be 4 bytes, got {len(rest)}")
    try:
        head = _HDR.pack(typ, code, 0, rest)
    except struct.error as e:
        raise ValueError(f"ICMP field out of range: {e}") from None
    csum = 0xFFFF ^ ones_sum(body, ones_sum(head))
    return _HDR.pack(typ, code, csum, rest) + bytes(body)


def build_echo_request(ident: int, seq: int, data: BytesLike = b"") -> bytes:
    """An echo request (type 8) with identifier, sequence number and data (RFC 792)."""
    return build_icmp(ICMP_ECHO_REQUEST, 0, _UNUSED_MTU.pack(ident, seq), data)


def build_echo_reply(request: IcmpMessage | BytesLike) -> bytes:
    """The echo reply to an echo request: same identifier, sequence and data (RFC 792).

    ``request`` is a parsed message or raw ICMP bytes (parsed and verified
    here, so raw input may raise :class:`WireError`).  Raises ``ValueError``
    if it is not an echo request.
    """
    msg = request if isinstance(request, IcmpMessage) else parse_icmp(request)
    if msg.type != ICMP_ECHO_REQUEST:
        raise ValueError(f"not an echo request: ICMP type {msg.type}")
    return build_icmp(ICMP_ECHO_REPLY, 0, msg.rest, msg.body)


def build_dest_unreachable(code: int, original: BytesLike, *, next_hop_mtu: int = 0) -> bytes:
    """A destination-unreachable message (type 3) quoting ``original`` (RFC 792, RFC 1122 §3.2.2).

    ``original`` is the offending IP datagram; up to :data:`ICMP_MAX_QUOTE`
    bytes of it are quoted, cut at its total length when that is readable
    (link padding is not quoted).  ``next_hop_mtu`` goes in the low 16 bits of
    the rest-of-header for code 4 (RFC 1191 §4).
    """
    quote = memoryview(original)[:ICMP_MAX_QUOTE]
    if len(quote) >= 4:
        total = (quote[2] << 8) | quote[3]
        if IPV4_HEADER_LEN <= total < len(quote):
            quote = quote[:total]
    return build_icmp(ICMP_DEST_UNREACH, code, _UNUSED_MTU.pack(0, next_hop_mtu), quote)


def parse_icmp_quote(msg: IcmpMessage) -> IcmpQuote:
    """Read the quoted IPv4 header and TCP ports/seq from an ICMP error's body.

    Works for any error type (3, 4, 5, 11, 12); the caller dispatches on type.
    The quoted header's checksum is not verified (it is the datagram as the
    reporting router saw it), and quoted options are skipped.  Raises
    ``WireError("icmp_truncated")`` if the quote is shorter than its IP header
    plus 8 bytes, ``WireError("icmp_bad_quote")`` if it is not IPv4.
    """
    body = msg.body
    if len(body) < IPV4_HEADER_LEN:
        raise WireError("icmp_truncated", f"quote of {len(body)} bytes")
    vihl, _total, proto, src, dst = _QUOTED_IP.unpack_from(body)
    if vihl >> 4 != 4 or vihl & 15 < 5:
        raise WireError("icmp_bad_quote", f"quoted version/IHL byte {vihl:#04x}")
    hl = (vihl & 15) * 4
    if len(body) < hl + 8:
        raise WireError("icmp_truncated", f"quote of {len(body)} bytes, IP header {hl}")
    sport, dport, seq = parse_tcp_ports_seq(body[hl : hl + 8])
    mtu = 0
    if msg.type == ICMP_DEST_UNREACH and msg.code == UNREACH_FRAG_NEEDED:
        mtu = int.from_bytes(msg.rest[2:4], "big")
    return IcmpQuote(msg.type, msg.code, mtu, src, dst, proto, sport, dport, seq)


def parse_dest_unreachable(msg: IcmpMessage) -> IcmpQuote:
    """:func:`parse_icmp_quote` for a destination-unreachable; ``ValueError`` for other types."""
    if msg.type != ICMP_DEST_UNREACH:
        raise ValueError(f"not a destination unreachable: ICMP type {msg.type}")
    return parse_icmp_quote(msg)
