"""Whole IPv4+TCP and IPv6+TCP packets: decode, encode, and a tcpdump-like one-line
description."""

from __future__ import annotations

from .checksum import BytesLike
from .errors import WireError
from .icmp import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
    parse_icmp,
    parse_icmp_quote,
)
from .icmpv6 import (
    ICMP6_DEST_UNREACH,
    ICMP6_ECHO_REPLY,
    ICMP6_ECHO_REQUEST,
    ICMP6_PACKET_TOO_BIG,
    ICMP6_PARAM_PROBLEM,
    ICMP6_TIME_EXCEEDED,
    parse_icmpv6,
    parse_icmpv6_quote,
)
from .ipv4 import (
    IPV4_HEADER_LEN,
    PROTO_ICMP,
    PROTO_TCP,
    build_ipv4_header,
    ip_to_str,
    parse_ipv4,
    unpack_ipv4,
)
from .ipv6 import (
    IPV6_HEADER_LEN,
    PROTO_ICMPV6,
    build_ipv6_header,
    ip6_to_str,
    parse_ipv6_packet,
)
from .segment import ACK, URG, Segment, flags_str
from .tcp import build_tcp, parse_tcp


def decode_ipv4_tcp(
    packet: BytesLike, *, verify_checksum: bool = True
) -> tuple[bytes, bytes, Segment]:
    """Decode an IPv4 datagram carrying TCP into ``(src, dst, segment)``.

    Trailing link padding past the IP total length is ignored.  The segment's
    ``ecn`` is the IP header's ECN field and its payload a view of ``packet``.
    ``verify_checksum=False`` skips both the IP and TCP checksums (offload).
    Raises :class:`WireError`, with ``ip_not_tcp`` for another protocol.
    """
    f = unpack_ipv4(packet, verify_checksum=verify_checksum)
    if f[6] != PROTO_TCP:
        raise WireError("ip_not_tcp", f"protocol {f[6]}")
    src = f[8]
    dst = f[9]
    seg = parse_tcp(
        memoryview(packet)[IPV4_HEADER_LEN : f[2]],
        src,
        dst,
        verify_checksum=verify_checksum,
        ecn=f[1] & 3,
    )
    return src, dst, seg


def encode_ipv4_tcp(
    src: bytes,
    dst: bytes,
    seg: Segment,
    *,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    df: bool = True,
) -> bytes:
    """Encode ``seg`` as one IPv4 datagram (a single ``bytes``).

    The TOS byte's low two bits are replaced by ``seg.ecn`` (RFC 3168 §5).
    """
    tcp = build_tcp(seg, src, dst)
    ip = build_ipv4_header(
        src,
        dst,
        PROTO_TCP,
        len(tcp) + len(seg.payload),
        ttl=ttl,
        ident=ident,
        tos=(tos & 0xFC) | (seg.ecn & 3),
        df=df,
    )
    return b"".join((ip, tcp, seg.payload))


def encode_ipv4_tcp_parts(src: bytes, dst: bytes, seg: Segment) -> tuple[bytes, BytesLike]:
    """The datagram of :func:`encode_ipv4_tcp` as ``(IP and TCP headers, payload)``, for
    a gathering write (``os.writev``) that never copies the payload."""
    tcp = build_tcp(seg, src, dst)
    payload = seg.payload
    ip = build_ipv4_header(src, dst, PROTO_TCP, len(tcp) + len(payload), tos=seg.ecn & 3)
    return ip + tcp, payload


def decode_ipv6_tcp(
    packet: BytesLike, *, verify_checksum: bool = True
) -> tuple[bytes, bytes, Segment]:
    """Decode an IPv6 packet carrying TCP into ``(src, dst, segment)``, extension headers
    walked (RFC 8200 §4); the TCP checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).
    The segment's ``ecn`` is the Traffic Class's ECN field.  Raises :class:`WireError`,
    with ``ip_not_tcp`` for another upper-layer protocol."""
    pkt = parse_ipv6_packet(packet)
    if pkt.proto != PROTO_TCP:
        raise WireError("ip_not_tcp", f"next header {pkt.proto}")
    hdr = pkt.header
    seg = parse_tcp(
        memoryview(packet)[pkt.offset : pkt.end],
        hdr.src,
        hdr.dst,
        verify_checksum=verify_checksum,
        ecn=hdr.traffic_class & 3,
    )
    return hdr.src, hdr.dst, seg


def encode_ipv6_tcp(
    src: bytes, dst: bytes, seg: Segment, *, hop_limit: int = 64, traffic_class: int = 0
) -> bytes:
    """Encode ``seg`` as one IPv6 packet; the ECN bits of the Traffic Class are ``seg.ecn``."""
    tcp = build_tcp(seg, src, dst)
    ip = build_ipv6_header(
        src,
        dst,
        PROTO_TCP,
        len(tcp) + len(seg.payload),
        hop_limit=hop_limit,
        traffic_class=(traffic_class & 0xFC) | (seg.ecn & 3),
    )
    return b"".join((ip, tcp, seg.payload))


def encode_ipv6_tcp_parts(src: bytes, dst: bytes, seg: Segment) -> tuple[bytes, BytesLike]:
    """:func:`encode_ipv6_tcp` as ``(IP and TCP headers, payload)`` for a gathering write."""
    tcp = build_tcp(seg, src, dst)
    payload = seg.payload
    ip = build_ipv6_header(src, dst, PROTO_TCP, len(tcp) + len(payload), traffic_class=seg.ecn & 3)
    return ip + tcp, payload


def decode_ip_tcp(
    packet: BytesLike, *, verify_checksum: bool = True
) -> tuple[bytes, bytes, Segment]:
    """:func:`decode_ipv4_tcp` or :func:`decode_ipv6_tcp` by the version nibble."""
    if len(packet) and packet[0] >> 4 == 6:
        return decode_ipv6_tcp(packet, verify_checksum=verify_checksum)
    return decode_ipv4_tcp(packet, verify_checksum=verify_checksum)


def encode_ip_tcp(src: bytes, dst: bytes, seg: Segment) -> bytes:
    """:func:`encode_ipv4_tcp` or :func:`encode_ipv6_tcp` by the addresses' length."""
    return encode_ipv4_tcp(src, dst, seg) if len(src) == 4 else encode_ipv6_tcp(src, dst, seg)


def encode_ipv6(
    src: bytes, dst: bytes, next_header: int, payload: BytesLike, *, hop_limit: int = 64
) -> bytes:
    """Wrap an encoded upper-layer payload (an ICMPv6 message) in an IPv6 header."""
    return build_ipv6_header(src, dst, next_header, len(payload), hop_limit=hop_limit) + bytes(
        payload
    )


def encode_ipv4(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: BytesLike,
    *,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    df: bool = True,
) -> bytes:
    """Wrap an already-encoded transport payload (e.g. an ICMP message) in an IPv4 header."""
    return build_ipv4_header(
        src, dst, proto, len(payload), ttl=ttl, ident=ident, tos=tos, df=df
    ) + bytes(payload)


_ECN_NAMES = ("", " [ECT(1)]", " [ECT(0)]", " [CE]")


def _describe_tcp(s: str, d: str, seg: Segment, tag: str = "IP") -> str:
    out = [f"{tag} {s}.{seg.src_port} > {d}.{seg.dst_port}: Flags [{flags_str(seg.flags)}]"]
    n = len(seg.payload)
    out.append(f"seq {seg.seq}:{(seg.seq + n) & 0xFFFFFFFF}" if n else f"seq {seg.seq}")
    if seg.flags & ACK:
        out.append(f"ack {seg.ack}")
    out.append(f"win {seg.window}")
    if seg.flags & URG or seg.urgent:
        out.append(f"urg {seg.urgent}")
    opts = seg.option_words()
    if seg.sack_blocks:
        edges = "".join(f"{{{a}:{b}}}" for a, b in seg.sack_blocks)
        opts.append(f"sack {len(seg.sack_blocks)} {edges}")
    if opts:
        out.append("options [" + ",".join(opts) + "]")
    out.append(f"length {n}")
    return ", ".join(out) + _ECN_NAMES[seg.ecn & 3]


def _describe_icmp(s: str, d: str, payload: memoryview) -> str:
    try:
        msg = parse_icmp(payload)
    except WireError as e:
        return f"IP {s} > {d}: ICMP [drop {e.reason}], length {len(payload)}"
    head = f"IP {s} > {d}: ICMP"
    if msg.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        kind = "echo request" if msg.type == ICMP_ECHO_REQUEST else "echo reply"
        ident = int.from_bytes(msg.rest[:2], "big")
        seq = int.from_bytes(msg.rest[2:], "big")
        return f"{head} {kind}, id {ident}, seq {seq}, length {len(payload)}"
    if msg.type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
        kind = "unreachable" if msg.type == ICMP_DEST_UNREACH else "time exceeded"
        try:
            q = parse_icmp_quote(msg)
        except WireError as e:
            return f"{head} {kind} code {msg.code} [bad quote: {e.reason}], length {len(payload)}"
        mtu = f" mtu {q.next_hop_mtu}" if q.next_hop_mtu else ""
        return (
            f"{head} {kind} code {msg.code}{mtu} for proto {q.proto} "
            f"{ip_to_str(q.src)}.{q.sport} > {ip_to_str(q.dst)}.{q.dport} seq {q.seq}, "
            f"length {len(payload)}"
        )
    return f"{head} type {msg.type} code {msg.code}, length {len(payload)}"


def _describe_icmp6(s: str, d: str, src: bytes, dst: bytes, payload: memoryview) -> str:
    head = f"IP6 {s} > {d}: ICMP6"
    try:
        msg = parse_icmpv6(payload, src, dst)
    except WireError as e:
        return f"{head} [drop {e.reason}], length {len(payload)}"
    if msg.type in (ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY):
        kind = "echo request" if msg.type == ICMP6_ECHO_REQUEST else "echo reply"
        ident = int.from_bytes(msg.rest[:2], "big")
        seq = int.from_bytes(msg.rest[2:], "big")
        return f"{head}, {kind}, id {ident}, seq {seq}, length {len(payload)}"
    kinds = {
        ICMP6_DEST_UNREACH: "destination unreachable",
        ICMP6_PACKET_TOO_BIG: "packet too big",
        ICMP6_TIME_EXCEEDED: "time exceeded",
        ICMP6_PARAM_PROBLEM: "parameter problem",
    }
    err = kinds.get(msg.type)
    if err is None:
        return f"{head}, type {msg.type} code {msg.code}, length {len(payload)}"
    kind = err
    try:
        q = parse_icmpv6_quote(msg)
    except WireError as e:
        return f"{head}, {kind} code {msg.code} [bad quote: {e.reason}], length {len(payload)}"
    mtu = f", mtu {q.next_hop_mtu}" if msg.type == ICMP6_PACKET_TOO_BIG else ""
    return (
        f"{head}, {kind} code {msg.code}{mtu} for proto {q.proto} "
        f"{ip6_to_str(q.src)}.{q.sport} > {ip6_to_str(q.dst)}.{q.dport} seq {q.seq}, "
        f"length {len(payload)}"
    )


def _describe_tcp_payload(
    tag: str, s: str, d: str, src: bytes, dst: bytes, ecn: int, payload: memoryview
) -> str:
    """The TCP part of either family's line, or its drop reason."""
    try:
        seg = parse_tcp(payload, src, dst, ecn=ecn)
    except WireError as e:
        return f"{tag} {s} > {d}: tcp [drop {e.reason}], length {len(payload)}"
    return _describe_tcp(s, d, seg, tag)


def _describe6(data: bytes) -> str:
    try:
        pkt = parse_ipv6_packet(data)
    except WireError as e:
        where = ""
        if len(data) >= IPV6_HEADER_LEN:
            where = f" {ip6_to_str(data[8:24])} > {ip6_to_str(data[24:40])}:"
        return f"IP6{where} [drop {e.reason}] {len(data)} bytes"
    hdr = pkt.header
    s = ip6_to_str(hdr.src)
    d = ip6_to_str(hdr.dst)
    payload = memoryview(data)[pkt.offset : pkt.end]
    if pkt.proto == PROTO_TCP:
        return _describe_tcp_payload("IP6", s, d, hdr.src, hdr.dst, hdr.ecn, payload)
    if pkt.proto == PROTO_ICMPV6:
        return _describe_icmp6(s, d, hdr.src, hdr.dst, payload)
    return f"IP6 {s} > {d}: next-header {pkt.proto} {len(payload)}"


def _describe(packet: BytesLike) -> str:
    data = bytes(packet)
    if data and data[0] >> 4 == 6:
        return _describe6(data)
    try:
        hdr = parse_ipv4(data)
    except WireError as e:
        where = ""
        if len(data) >= IPV4_HEADER_LEN:
            where = f" {ip_to_str(data[12:16])} > {ip_to_str(data[16:20])}:"
        return f"IP{where} [drop {e.reason}] {len(data)} bytes"
    s = ip_to_str(hdr.src)
    d = ip_to_str(hdr.dst)
    payload = memoryview(data)[hdr.header_len : hdr.total_length]
    if hdr.proto == PROTO_TCP:
        return _describe_tcp_payload("IP", s, d, hdr.src, hdr.dst, hdr.ecn, payload)
    if hdr.proto == PROTO_ICMP:
        return _describe_icmp(s, d, payload)
    return f"IP {s} > {d}: ip-proto-{hdr.proto} {len(payload)}"


def describe_packet(packet: BytesLike) -> str:
    """A tcpdump-like one-line summary of an IPv4 or IPv6 packet; never raises.

    A packet that fails to decode is described by its drop reason, e.g.
    ``IP 10.0.0.1 > 10.0.0.2: tcp [drop tcp_bad_checksum], length 40``.
    """
    try:
        return _describe(packet)
    except Exception as e:  # describing must never take the caller down
        return f"<undescribable packet: {type(e).__name__}: {e}>"
