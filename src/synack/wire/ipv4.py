"""IPv4 header parse and build (RFC 791 §3.1).

synack accepts only option-less, unfragmented datagrams: a header with
options or a fragment is dropped with a reason (see :mod:`.errors`).  Checks
run in a fixed order so that each bad packet maps to one stable reason:
length, version, IHL, header length vs buffer, total length, checksum,
options, fragmentation.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, NamedTuple, NoReturn

from .checksum import BytesLike, ones_sum
from .errors import WireError

PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17

IPV4_HEADER_LEN: Final = 20
IPV4_MAX_PAYLOAD: Final = 0xFFFF - IPV4_HEADER_LEN

# version/IHL, TOS, total length, ident, flags+fragment offset, TTL, proto, checksum, src, dst
_HDR: Final = struct.Struct("!BBHHHBBH4s4s")

_DF: Final = 0x4000
_MF: Final = 0x2000
_FRAG_BITS: Final = 0x3FFF  # MF plus the 13-bit fragment offset

IPv4Fields = tuple[int, int, int, int, int, int, int, int, bytes, bytes]
"""Raw header fields: vihl, tos, total, ident, flags+frag, ttl, proto, csum, src, dst."""


class IPv4Header(NamedTuple):
    """A decoded IPv4 header (RFC 791 §3.1).  ``flags`` is the 3-bit field (DF=2, MF=1)."""

    version: int
    ihl: int
    tos: int
    total_length: int
    ident: int
    flags: int
    frag_offset: int
    ttl: int
    proto: int
    checksum: int
    src: bytes
    dst: bytes

    @property
    def header_len(self) -> int:
        """Header length in bytes (IHL counts 32-bit words)."""
        return self.ihl * 4

    @property
    def ecn(self) -> int:
        """The two ECN bits of the TOS byte (RFC 3168 §5)."""
        return self.tos & 3

    @property
    def dscp(self) -> int:
        """The six DSCP bits of the TOS byte (RFC 2474 §3)."""
        return self.tos >> 2

    @property
    def df(self) -> bool:
        """Don't Fragment."""
        return bool(self.flags & 2)

    @property
    def mf(self) -> bool:
        """More Fragments."""
        return bool(self.flags & 1)


def _reject_unusual(packet: BytesLike, vihl: int, n: int, verify_checksum: bool) -> NoReturn:
    """Slow path for a header whose first byte is not 0x45: always raises."""
    if vihl >> 4 != 4:
        raise WireError("ip_bad_version", f"version {vihl >> 4}")
    hl = (vihl & 15) * 4
    if hl < IPV4_HEADER_LEN:
        raise WireError("ip_bad_ihl", f"IHL {vihl & 15}")
    if hl > n:
        raise WireError("ip_truncated", f"IHL {vihl & 15} but {n} bytes")
    total = int.from_bytes(packet[2:4], "big")
    if total < hl or total > n:
        raise WireError("ip_bad_total_length", f"total length {total}, header {hl}, buffer {n}")
    if verify_checksum and ones_sum(packet[:hl]) != 0xFFFF:
        raise WireError("ip_bad_checksum")
    raise WireError("ip_options_unsupported", f"{hl - IPV4_HEADER_LEN} option bytes")


def unpack_ipv4(packet: BytesLike, *, verify_checksum: bool = True) -> IPv4Fields:
    """Validate an IPv4 header and return its raw fields (hot path behind :func:`parse_ipv4`).

    On success the header is exactly 20 bytes (no options) and ``fields[2]``
    (total length) is within the buffer.  Raises :class:`WireError`.
    """
    n = len(packet)
    if n < IPV4_HEADER_LEN:
        raise WireError("ip_truncated", f"{n} bytes")
    f: IPv4Fields = _HDR.unpack_from(packet)
    if f[0] != 0x45:
        _reject_unusual(packet, f[0], n, verify_checksum)
    total = f[2]
    if total < IPV4_HEADER_LEN or total > n:
        raise WireError("ip_bad_total_length", f"total length {total}, buffer {n}")
    # A version-4 header is never all zero, so "sum == 0xFFFF" is "≡ 0 mod 0xFFFF".
    if verify_checksum and int.from_bytes(packet[:IPV4_HEADER_LEN], "big") % 0xFFFF:
        raise WireError("ip_bad_checksum")
    if f[4] & _FRAG_BITS:
        raise WireError("ip_fragment", f"MF={(f[4] >> 13) & 1} offset={f[4] & 0x1FFF}")
    return f


def parse_ipv4(packet: BytesLike, *, verify_checksum: bool = True) -> IPv4Header:
    """Decode and validate an IPv4 header (RFC 791 §3.1); raises :class:`WireError`.

    ``verify_checksum=False`` skips the header checksum (checksum offload).
    """
    vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = unpack_ipv4(
        packet, verify_checksum=verify_checksum
    )
    return IPv4Header(
        vihl >> 4, vihl & 15, tos, total, ident, ff >> 13, ff & 0x1FFF, ttl, proto, csum, src, dst
    )


def ipv4_payload(packet: BytesLike, header: IPv4Header) -> memoryview:
    """The datagram's payload as a zero-copy view, cut at total length (link padding dropped)."""
    return memoryview(packet)[header.ihl * 4 : header.total_length]


def parse_ipv4_packet(
    packet: BytesLike, *, verify_checksum: bool = True
) -> tuple[IPv4Header, memoryview]:
    """:func:`parse_ipv4` plus :func:`ipv4_payload` in one call."""
    hdr = parse_ipv4(packet, verify_checksum=verify_checksum)
    return hdr, memoryview(packet)[IPV4_HEADER_LEN : hdr.total_length]


def build_ipv4_header(
    src: bytes,
    dst: bytes,
    proto: int,
    payload_len: int,
    *,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    df: bool = True,
) -> bytes:
    """A 20-byte IPv4 header with a correct checksum (RFC 791 §3.1).

    The checksum is computed from the field values directly (each 32-bit
    address is congruent to the sum of its two 16-bit words mod 0xFFFF), so
    the header is packed once.  Raises ``ValueError`` on out-of-range fields.
    """
    if len(src) != 4 or len(dst) != 4:
        raise ValueError(f"IPv4 addresses must be 4 bytes, got {len(src)} and {len(dst)}")
    if not 0 <= payload_len <= IPV4_MAX_PAYLOAD:
        raise ValueError(f"IPv4 payload length {payload_len} out of range")
    total = IPV4_HEADER_LEN + payload_len
    ff = _DF if df else 0
    s = (
        (0x4500 | tos)
        + total
        + ident
        + ff
        + (ttl << 8 | proto)
        + int.from_bytes(src, "big")
        + int.from_bytes(dst, "big")
    )
    try:  # (0xFFFF ^ fold(s), fold inline: s > 0)
        return _HDR.pack(
            0x45, tos, total, ident, ff, ttl, proto, 0xFFFF ^ (s % 0xFFFF or 0xFFFF), src, dst
        )
    except struct.error as e:
        raise ValueError(f"IPv4 header field out of range: {e}") from None


def ip_to_bytes(s: str) -> bytes:
    """Dotted-quad text to 4 bytes; strict (no ``127.1`` shorthands).  IPv6 text
    (RFC 4291 §2.2, brackets allowed) gives 16 bytes, so every caller takes both."""
    if isinstance(s, str) and ":" in s:
        from .ipv6 import ip6_to_bytes

        return ip6_to_bytes(s)
    try:
        return ipaddress.IPv4Address(s).packed
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"not an IPv4 address: {s!r}") from None


def ip_to_str(b: BytesLike) -> str:
    """4 bytes to dotted-quad text; 16 bytes to IPv6 text in RFC 5952 form."""
    if len(b) == 16:
        from .ipv6 import ip6_to_str

        return ip6_to_str(b)
    if len(b) != 4:
        raise ValueError(f"IPv4 address must be 4 bytes, got {len(b)}: {bytes(b)!r}")
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"
