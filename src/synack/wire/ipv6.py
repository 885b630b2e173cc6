"""IPv6 header parse and build (RFC 8200 §3), extension headers (RFC 8200 §4), and
the address helpers shared by both families (text form per RFC 5952).

synack is a host, not a router, and reassembles nothing: the walk over the
extension-header chain (RFC 8200 §4.1 order) accepts Hop-by-Hop (first only),
Destination Options and a Routing header whose Segments Left is zero, skips
options whose type says "skip" (RFC 8200 §4.2), processes an atomic fragment
in isolation (RFC 6946 §4), answers a first fragment that does not hold the whole
header chain with a Parameter Problem (RFC 7112 §5) and refuses everything else with a stable drop
reason (see :mod:`.errors`): real fragments, a routing header still to be
followed, options that demand a discard (a jumbogram's among them, RFC 2675).
Where RFC 8200 asks for an ICMPv6 Parameter Problem, the error is a
:class:`ParamProblem` carrying its code and pointer (RFC 4443 §3.4).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, NamedTuple

from .checksum import BytesLike
from .errors import WireError

IPV6_HEADER_LEN: Final = 40
IPV6_MIN_MTU: Final = 1280
"""Every IPv6 link carries packets of this size (RFC 8200 §5); PMTU never goes below."""

PROTO_ICMPV6: Final = 58
NH_HOP_BY_HOP: Final = 0
NH_ROUTING: Final = 43
NH_FRAGMENT: Final = 44
NH_NONE: Final = 59
NH_DEST_OPTS: Final = 60

# version/traffic class/flow label, payload length, next header, hop limit, src, dst
_HDR: Final = struct.Struct("!IHBB16s16s")
_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"


class ParamProblem(WireError):
    """A refusal that RFC 8200 answers with an ICMPv6 Parameter Problem (RFC 4443 §3.4):
    ``code`` 0 (erroneous header field), 1 (unrecognised Next Header), 2
    (unrecognised option) or 3 (incomplete header chain, RFC 7112), ``pointer`` the
    offending byte's offset in the packet."""

    __slots__ = ("code", "pointer")

    def __init__(self, reason: str, detail: str, code: int, pointer: int) -> None:
        super().__init__(reason, detail)
        self.code = code
        self.pointer = pointer


class IPv6Header(NamedTuple):
    """A decoded IPv6 header (RFC 8200 §3).  ``next_header`` is the fixed header's
    field; :func:`parse_ipv6_packet` also returns the upper-layer protocol found at
    the end of the extension-header chain."""

    version: int
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes

    @property
    def ecn(self) -> int:
        """The two ECN bits of the Traffic Class (RFC 8200 §7, RFC 3168 §5)."""
        return self.traffic_class & 3


class IPv6Packet(NamedTuple):
    """An IPv6 packet with its extension headers walked.

    ``proto`` is the upper-layer protocol, ``offset`` where its header starts
    and ``end`` where the packet ends (link padding cut); ``proto_pointer`` is
    the offset of the Next Header field that named ``proto``, what an ICMPv6
    Parameter Problem points at (RFC 4443 §3.4)."""

    header: IPv6Header
    proto: int
    offset: int
    end: int
    proto_pointer: int


def parse_ipv6(packet: BytesLike) -> IPv6Header:
    """Decode the fixed IPv6 header (RFC 8200 §3); raises :class:`WireError`."""
    n = len(packet)
    if n < IPV6_HEADER_LEN:
        raise WireError("ip6_truncated", f"{n} bytes")
    vtf, plen, nh, hlim, src, dst = _HDR.unpack_from(packet)
    if vtf >> 28 != 6:
        raise WireError("ip_bad_version", f"version {vtf >> 28}")
    if IPV6_HEADER_LEN + plen > n:
        raise WireError("ip6_bad_payload_length", f"payload length {plen}, buffer {n}")
    return IPv6Header(6, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst)


def _walk_options(packet: BytesLike, start: int, end: int) -> None:
    """The TLV options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2).

    Pad1 and PadN are padding; an unrecognised option is skipped when the two
    high bits of its type are 00 and otherwise makes the packet be discarded: silently
    for 01, with a Parameter Problem code 2 pointing at the type for 10 and 11."""
    i = start
    while i < end:
        typ = packet[i]
        if typ == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end or i + 2 + packet[i + 1] > end:
            raise WireError("ip6_bad_ext_header", f"option {typ} runs past its header")
        if typ != 1 and typ >> 6:
            what = "jumbo payload (RFC 2675)" if typ == 0xC2 else f"option type {typ:#04x}"
            if typ >> 6 == 1:
                raise WireError("ip6_option_discard", what)
            raise ParamProblem("ip6_option_discard", what, 2, i)
        i += 2 + packet[i + 1]


def parse_ipv6_packet(packet: BytesLike) -> IPv6Packet:
    """Decode an IPv6 packet and walk its extension headers (RFC 8200 §4).

    Raises :class:`WireError` for a packet synack does not take (see the module
    docstring); the caller decides what an unknown upper-layer protocol means.
    """
    hdr = parse_ipv6(packet)
    end = IPV6_HEADER_LEN + hdr.payload_length
    nh = hdr.next_header
    pointer = 6  # the fixed header's Next Header field
    off = IPV6_HEADER_LEN
    while True:
        if nh not in (NH_HOP_BY_HOP, NH_ROUTING, NH_FRAGMENT, NH_DEST_OPTS):
            return IPv6Packet(hdr, nh, off, end, pointer)
        if nh == NH_HOP_BY_HOP and off != IPV6_HEADER_LEN:
            # RFC 8200 §4.1: only right after the fixed header; elsewhere its Next Header
            # value is unrecognised (code 1), as Linux's ip6_protocol_deliver_rcu says.
            raise ParamProblem(
                "ip6_bad_ext_header", "Hop-by-Hop options not first (RFC 8200 §4.3)", 1, pointer
            )
        if off + 8 > end:
            raise WireError("ip6_bad_ext_header", f"extension header {nh} truncated")
        size = 8 if nh == NH_FRAGMENT else (packet[off + 1] + 1) * 8
        if off + size > end:
            raise WireError(
                "ip6_bad_ext_header", f"extension header {nh} of {size} bytes runs past the packet"
            )
        if nh == NH_FRAGMENT:
            frag = (packet[off + 2] << 8) | packet[off + 3]
            if frag & 0xFFF9:  # offset or M set: a real fragment
                if not frag & 0xFFF8 and not _chain_complete(packet, packet[off], off + 8, end):
                    # RFC 7112 §5: a first fragment must hold the whole header chain up
                    # to the upper-layer header; code 3, pointing at the packet's start.
                    raise ParamProblem(
                        "ip6_first_fragment_incomplete",
                        "the header chain ends past the first fragment",
                        3,
                        0,
                    )
                data = end - off - 8
                if frag & 1 and data % 8:
                    # RFC 8200 §4.5: not the last fragment, yet not a multiple of 8 bytes.
                    raise ParamProblem("ip6_fragment", f"M=1 with {data} bytes of data", 0, 4)
                if (frag >> 3) * 8 + data + off - IPV6_HEADER_LEN > 0xFFFF:
                    # RFC 8200 §4.5: the reassembled payload would pass 65535 bytes.
                    raise ParamProblem("ip6_fragment", f"offset {frag >> 3} past 65535", 0, off + 2)
                raise WireError("ip6_fragment", f"offset {frag >> 3} M={frag & 1}")
            # An atomic fragment: processed in isolation (RFC 6946 §4).
        elif nh == NH_ROUTING:
            if packet[off + 3]:
                # RFC 8200 §4.4: synack knows no Routing Type (type 0 is deprecated,
                # RFC 5095); with segments left, code 0 pointing at the type.
                raise ParamProblem(
                    "ip6_routing_header",
                    f"type {packet[off + 2]}, segments left {packet[off + 3]}",
                    0,
                    off + 2,
                )
        else:
            _walk_options(packet, off + 2, off + size)
        pointer = off
        nh = packet[off]
        off += size


#: The least of an upper-layer header a first fragment must hold (RFC 7112 §5): what
#: Linux's ipv6_frag_thdr_truncated asks for (the ports and flags of TCP, UDP's
#: header, ICMPv6's type, code and checksum).
_UPPER_MIN: Final = {6: 20, 17: 8, PROTO_ICMPV6: 4}


def _chain_complete(packet: BytesLike, nh: int, off: int, end: int) -> bool:
    """Whether the header chain from ``off`` (the header ``nh`` names) reaches its
    upper-layer header before ``end``, and that header fits (RFC 7112 §5)."""
    while nh in (NH_HOP_BY_HOP, NH_ROUTING, NH_FRAGMENT, NH_DEST_OPTS):
        if off + 8 > end:
            return False
        size = 8 if nh == NH_FRAGMENT else (packet[off + 1] + 1) * 8
        if off + size > end:
            return False
        nh = packet[off]
        off += size
    return off + _UPPER_MIN.get(nh, 0) <= end


def build_ipv6_header(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_len: int,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """A 40-byte IPv6 header (RFC 8200 §3); ``ValueError`` on out-of-range fields.

    No jumbograms: the payload is at most 65535 bytes (RFC 2675 is not supported)."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError(f"IPv6 addresses must be 16 bytes, got {len(src)} and {len(dst)}")
    if not 0 <= payload_len <= 0xFFFF:
        raise ValueError(f"IPv6 payload length {payload_len} out of range")
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError("IPv6 traffic class or flow label out of range")
    try:
        return _HDR.pack(
            0x60000000 | traffic_class << 20 | flow_label,
            payload_len,
            next_header,
            hop_limit,
            src,
            dst,
        )
    except struct.error as e:
        raise ValueError(f"IPv6 header field out of range: {e}") from None


# ------------------------------------------------------------------ addresses, both families


def is_mapped(b: BytesLike) -> bool:
    """An IPv4-mapped IPv6 address, ``::ffff:a.b.c.d`` (RFC 4291 §2.5.5.2)."""
    return len(b) == 16 and bytes(b[:12]) == _MAPPED_PREFIX


def map_v4(b: bytes) -> bytes:
    """The IPv4-mapped IPv6 form of a 4-byte address."""
    return _MAPPED_PREFIX + b


def unmap(b: bytes) -> bytes:
    """The IPv4 address inside a mapped one; any other address unchanged."""
    return b[12:] if is_mapped(b) else b


def is_multicast6(b: BytesLike) -> bool:
    """An IPv6 multicast address, ``ff00::/8`` (RFC 4291 §2.7)."""
    return len(b) == 16 and b[0] == 0xFF


def ip6_to_str(b: BytesLike) -> str:
    """16 bytes to the RFC 5952 text form: lowercase, longest run of zero groups
    compressed (the first of equal runs, never a single group), a mapped address
    with its IPv4 tail dotted (RFC 5952 §5)."""
    if len(b) != 16:
        raise ValueError(f"IPv6 address must be 16 bytes, got {len(b)}: {bytes(b)!r}")
    b = bytes(b)
    if is_mapped(b):
        return f"::ffff:{b[12]}.{b[13]}.{b[14]}.{b[15]}"
    return str(ipaddress.IPv6Address(b))  # compressed as RFC 5952 §4.2 asks


def ip6_to_bytes(s: str) -> bytes:
    """IPv6 text (RFC 4291 §2.2, optionally in brackets) to 16 bytes; strict.

    A zone index (``fe80::1%tun0``) is refused: synack has one link per stack."""
    t = s[1:-1] if s.startswith("[") and s.endswith("]") else s
    if "%" in t:
        raise ValueError(f"not an IPv6 address (zone indexes unsupported): {s!r}")
    try:
        return ipaddress.IPv6Address(t).packed
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"not an IPv6 address: {s!r}") from None


def addr_to_str(b: BytesLike) -> str:
    """An address of either family as text (dotted quad, or RFC 5952)."""
    if len(b) == 4:
        return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
    return ip6_to_str(b)


def addr_to_bytes(s: str) -> bytes:
    """Text of either family (IPv6 optionally bracketed) to 4 or 16 bytes; strict."""
    if ":" in s:
        return ip6_to_bytes(s)
    try:
        return ipaddress.IPv4Address(s).packed
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"not an IP address: {s!r}") from None


def endpoint_str(b: BytesLike, port: int) -> str:
    """``a.b.c.d:port`` or ``[v6]:port`` (RFC 5952 §6)."""
    return f"{addr_to_str(b)}:{port}" if len(b) == 4 else f"[{ip6_to_str(b)}]:{port}"


def split_endpoint(s: str) -> tuple[str, int]:
    """``a.b.c.d:port`` or ``[v6]:port`` to (address text without brackets, port):
    the inverse of :func:`endpoint_str`."""
    host, _, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def conn_hosts(name: str) -> tuple[str, str]:
    """(local, remote) address text of a connection name ``local>remote``
    (the core's spelling, :func:`endpoint_str` on each side)."""
    local, _, remote = name.partition(">")
    return split_endpoint(local)[0], split_endpoint(remote)[0]
