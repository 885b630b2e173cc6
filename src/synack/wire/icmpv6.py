"""ICMPv6 (RFC 4443): parse, echo, destination unreachable, Packet Too Big, Parameter
Problem, and the quote an error carries.

The message layout is ICMPv4's (type, code, checksum, four bytes, body), but the
checksum covers an IPv6 pseudo-header with Next Header 58 (RFC 4443 §2.3,
RFC 8200 §8.1), and an error quotes as much of the invoking packet as fits in a
1280-byte packet (RFC 4443 §2.4(c)).
"""

from __future__ import annotations

import struct
from typing import Final

from .checksum import BytesLike, ones_sum, pseudo_header_sum
from .errors import WireError
from .icmp import IcmpMessage, IcmpQuote
from .ipv6 import IPV6_HEADER_LEN, IPV6_MIN_MTU, PROTO_ICMPV6, parse_ipv6_packet
from .tcp import parse_tcp_ports_seq

ICMP6_DEST_UNREACH: Final = 1
ICMP6_PACKET_TOO_BIG: Final = 2
ICMP6_TIME_EXCEEDED: Final = 3
ICMP6_PARAM_PROBLEM: Final = 4
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129
ICMP6_NDP_TYPES: Final = frozenset((133, 134, 135, 136, 137))
"""Router/Neighbour Solicitation and Advertisement, Redirect (RFC 4861 §4)."""
ICMP6_MLD_TYPES: Final = frozenset((130, 131, 132, 143))
"""Multicast Listener Query/Report/Done (RFC 2710, RFC 3810)."""

# Destination-unreachable codes (RFC 4443 §3.1).
UNREACH6_NO_ROUTE: Final = 0
UNREACH6_ADMIN: Final = 1
UNREACH6_BEYOND_SCOPE: Final = 2
UNREACH6_ADDRESS: Final = 3
UNREACH6_PORT: Final = 4
UNREACH6_POLICY: Final = 5
UNREACH6_REJECT_ROUTE: Final = 6

# Parameter Problem codes (RFC 4443 §3.4).
PARAM_BAD_FIELD: Final = 0
PARAM_UNKNOWN_NEXT_HEADER: Final = 1
PARAM_UNKNOWN_OPTION: Final = 2
PARAM_HEADER_CHAIN_INCOMPLETE: Final = 3  # first fragment lacks the header chain, RFC 7112

ICMP6_MAX_QUOTE: Final = IPV6_MIN_MTU - IPV6_HEADER_LEN - 8
"""Bytes of the invoking packet an error quotes: all that fits in 1280 (RFC 4443 §2.4(c))."""

_HDR: Final = struct.Struct("!BBH4s")


def _sum(src: bytes, dst: bytes, data: BytesLike) -> int:
    return ones_sum(data, pseudo_header_sum(src, dst, PROTO_ICMPV6, len(data)))


def parse_icmpv6(
    data: BytesLike, src: bytes, dst: bytes, *, verify_checksum: bool = True
) -> IcmpMessage:
    """Decode an ICMPv6 message sent from ``src`` to ``dst`` (RFC 4443 §2.1);
    raises :class:`WireError`.  The checksum includes the pseudo-header (§2.3)."""
    if len(data) < 8:
        raise WireError("icmp_truncated", f"{len(data)} bytes")
    if verify_checksum and _sum(src, dst, data) != 0xFFFF:
        raise WireError("icmp_bad_checksum", "ICMPv6")
    typ, code, csum, rest = _HDR.unpack_from(data)
    return IcmpMessage(typ, code, csum, rest, memoryview(data)[8:])


def build_icmpv6(
    src: bytes, dst: bytes, typ: int, code: int, rest: bytes = b"\0\0\0\0", body: BytesLike = b""
) -> bytes:
    """Encode an ICMPv6 message from ``src`` to ``dst`` with its checksum (RFC 4443 §2.3)."""
    if len(rest) != 4:
        raise ValueError(f"ICMPv6 rest-of-header must be 4 bytes, got {len(rest)}")
    try:
        head = _HDR.pack(typ, code, 0, rest)
    except struct.error as e:
        raise ValueError(f"ICMPv6 field out of range: {e}") from None
    csum = 0xFFFF ^ ones_sum(
        body, ones_sum(head, pseudo_header_sum(src, dst, PROTO_ICMPV6, 8 + len(body)))
    )
    return _HDR.pack(typ, code, csum, rest) + bytes(body)


def build_echo6_request(
    src: bytes, dst: bytes, ident: int, seq: int, data: BytesLike = b""
) -> bytes:
    """An echo request (type 128, RFC 4443 §4.1)."""
    return build_icmpv6(src, dst, ICMP6_ECHO_REQUEST, 0, struct.pack("!HH", ident, seq), data)


def build_echo6_reply(src: bytes, dst: bytes, request: IcmpMessage) -> bytes:
    """The reply (type 129) to an echo request: same identifier, sequence and data
    (RFC 4443 §4.2).  ``ValueError`` if ``request`` is not an echo request."""
    if request.type != ICMP6_ECHO_REQUEST:
        raise ValueError(f"not an echo request: ICMPv6 type {request.type}")
    return build_icmpv6(src, dst, ICMP6_ECHO_REPLY, 0, request.rest, request.body)


def _quote(original: BytesLike) -> memoryview:
    quote = memoryview(original)[:ICMP6_MAX_QUOTE]
    if len(quote) >= IPV6_HEADER_LEN:  # cut link padding when the length is readable
        end = IPV6_HEADER_LEN + ((quote[4] << 8) | quote[5])
        if end < len(quote):
            quote = quote[:end]
    return quote


def build_dest6_unreachable(src: bytes, dst: bytes, code: int, original: BytesLike) -> bytes:
    """Destination unreachable (type 1, RFC 4443 §3.1) quoting ``original``."""
    return build_icmpv6(src, dst, ICMP6_DEST_UNREACH, code, bytes(4), _quote(original))


def build_packet_too_big(src: bytes, dst: bytes, mtu: int, original: BytesLike) -> bytes:
    """Packet Too Big (type 2, RFC 4443 §3.2) with the next hop's MTU."""
    return build_icmpv6(src, dst, ICMP6_PACKET_TOO_BIG, 0, mtu.to_bytes(4, "big"), _quote(original))


def build_param_problem(
    src: bytes, dst: bytes, code: int, pointer: int, original: BytesLike
) -> bytes:
    """Parameter Problem (type 4, RFC 4443 §3.4): ``pointer`` is the offending byte's
    offset in ``original``."""
    return build_icmpv6(
        src, dst, ICMP6_PARAM_PROBLEM, code, pointer.to_bytes(4, "big"), _quote(original)
    )


def parse_icmpv6_quote(msg: IcmpMessage) -> IcmpQuote:
    """The quoted IPv6 packet of an ICMPv6 error (types 1-4): its addresses, upper
    protocol and first 8 upper-layer bytes as TCP ports and sequence.

    The quote is usually cut, so its payload length is not trusted; its
    extension headers are walked as far as the quote goes.  ``next_hop_mtu`` is the
    MTU of a Packet Too Big.  Raises ``WireError("icmp_truncated")`` if the quote
    ends before 8 upper-layer bytes, ``WireError("icmp_bad_quote")`` if it is not IPv6
    or its headers do not parse.
    """
    body = bytearray(msg.body)
    if len(body) < IPV6_HEADER_LEN:
        raise WireError("icmp_truncated", f"quote of {len(body)} bytes")
    if body[0] >> 4 != 6:
        raise WireError("icmp_bad_quote", f"quoted version {body[0] >> 4}")
    # Make the quoted payload length fit what was quoted, then walk it.
    body[4:6] = (len(body) - IPV6_HEADER_LEN).to_bytes(2, "big")
    try:
        pkt = parse_ipv6_packet(body)
    except WireError as e:
        raise WireError("icmp_bad_quote", f"quoted IPv6 packet: {e}") from None
    if pkt.offset + 8 > len(body):
        raise WireError("icmp_truncated", f"quote of {len(body)} bytes, headers {pkt.offset}")
    sport, dport, seq = parse_tcp_ports_seq(body[pkt.offset : pkt.offset + 8])
    mtu = int.from_bytes(msg.rest, "big") if msg.type == ICMP6_PACKET_TOO_BIG else 0
    hdr = pkt.header
    return IcmpQuote(msg.type, msg.code, mtu, hdr.src, hdr.dst, pkt.proto, sport, dport, seq)
