"""The virtio-net header that a TUN device opened with ``IFF_VNET_HDR`` puts
before every packet, in both directions (virtio 1.2 §5.1.6, ``<linux/virtio_net.h>``).

With it the kernel and synack trade work they would otherwise both do:

- **checksum offload** (``TUN_F_CSUM``): a packet flagged ``NEEDS_CSUM``
  carries only the pseudo-header sum in its TCP checksum field; whoever
  puts it on a real wire finishes the sum from ``csum_start`` and stores it
  at ``csum_start + csum_offset``.  Such a packet never left this machine's
  memory, so the receiver may trust it.  ``DATA_VALID`` says the checksum
  was already verified.
- **segmentation offload** (``TUN_F_TSO4``, ``TUN_F_TSO6``): a ``GSO_TCPV4``
  (``GSO_TCPV6``) packet is one
  TCP segment of up to 64 KB that stands for ``ceil(payload / gso_size)``
  wire segments, each with a copy of its headers (RFC 9293's segments, cut
  later).  The kernel hands us its coalesced (GRO) segments the same way.

The legacy header is 10 bytes, in the host's byte order (the kernel's
``tun_is_little_endian`` without ``TUNSETVNETLE``).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .checksum import BytesLike, pseudo_header_sum
from .ipv4 import IPV4_HEADER_LEN, PROTO_TCP, build_ipv4_header
from .ipv6 import IPV6_HEADER_LEN, build_ipv6_header
from .segment import CWR, Segment
from .tcp import build_tcp

__all__ = [
    "F_DATA_VALID",
    "F_NEEDS_CSUM",
    "GSO_ECN",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "PLAIN_HEADER",
    "VNET_HDR_LEN",
    "VnetHeader",
    "encode_ipv4_tcp_offload",
    "parse_vnet_header",
]

VNET_HDR: Final = struct.Struct("=BBHHHH")
VNET_HDR_LEN: Final = VNET_HDR.size  # 10
F_NEEDS_CSUM: Final = 1
F_DATA_VALID: Final = 2
GSO_NONE: Final = 0
GSO_TCPV4: Final = 1
GSO_TCPV6: Final = 4
GSO_ECN: Final = 0x80  # the first segment alone carries CWR (RFC 3168 §6.1.2)
PLAIN_HEADER: Final = bytes(VNET_HDR_LEN)
"""The header of a packet that asks nothing of the kernel (checksums complete)."""

_TCP_CSUM_OFFSET: Final = 16  # the checksum field's offset in the TCP header (RFC 9293 §3.1)


class VnetHeader(NamedTuple):
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int

    @property
    def checksum_trusted(self) -> bool:
        """The packet's transport checksum needs no verification (partial or verified)."""
        return bool(self.flags & (F_NEEDS_CSUM | F_DATA_VALID))


def parse_vnet_header(packet: BytesLike) -> VnetHeader:
    """The header at the start of ``packet``; ValueError if it is too short."""
    if len(packet) < VNET_HDR_LEN:
        raise ValueError(f"{len(packet)} bytes is shorter than a virtio-net header")
    return VnetHeader(*VNET_HDR.unpack_from(packet))


def encode_ipv4_tcp_offload(src: bytes, dst: bytes, seg: Segment, max_tcp_len: int) -> bytes:
    """One ``bytes``: :func:`encode_ipv4_tcp_offload_parts` joined."""
    head, payload = encode_ipv4_tcp_offload_parts(src, dst, seg, max_tcp_len)
    return b"".join((head, payload))


def encode_ipv4_tcp_offload_parts(
    src: bytes, dst: bytes, seg: Segment, max_tcp_len: int
) -> tuple[bytes, BytesLike]:
    """Virtio-net header + IP (v4 or v6, by the addresses' length) + TCP headers, and the
    payload apart (for ``writev``),
    with the checksum left to the kernel, and cut by it into
    segments of at most ``max_tcp_len`` bytes of TCP header and payload (MSS + 20,
    RFC 6691 §2) when longer; each piece repeats this segment's header and options.

    The TCP checksum field holds the folded pseudo-header sum over the whole
    segment's length, which is what the kernel's segmentation expects
    (it adjusts the length per piece).
    """
    tcp = build_tcp(seg, src, dst, checksum=False)
    gso_size = max_tcp_len - len(tcp)
    if gso_size <= 0:
        raise ValueError(f"a {len(tcp)}-byte TCP header leaves no room in {max_tcp_len} bytes")
    tcp_len = len(tcp) + len(seg.payload)
    psum = pseudo_header_sum(src, dst, PROTO_TCP, tcp_len)
    tcp = tcp[:_TCP_CSUM_OFFSET] + psum.to_bytes(2, "big") + tcp[_TCP_CSUM_OFFSET + 2 :]
    if len(src) == 4:
        ip = build_ipv4_header(src, dst, PROTO_TCP, tcp_len, tos=seg.ecn & 3)
        ihl, gso = IPV4_HEADER_LEN, GSO_TCPV4
    else:  # RFC 8200 §8.1: the same pseudo-header sum with 16-byte addresses
        ip = build_ipv6_header(src, dst, PROTO_TCP, tcp_len, traffic_class=seg.ecn & 3)
        ihl, gso = IPV6_HEADER_LEN, GSO_TCPV6
    plen = len(seg.payload)
    if plen > gso_size:
        gso_type = gso | (GSO_ECN if seg.flags & CWR else 0)
        hdr = VNET_HDR.pack(F_NEEDS_CSUM, gso_type, ihl + len(tcp), gso_size, ihl, _TCP_CSUM_OFFSET)
    else:
        hdr = VNET_HDR.pack(F_NEEDS_CSUM, GSO_NONE, ihl + len(tcp), 0, ihl, _TCP_CSUM_OFFSET)
    return b"".join((hdr, ip, tcp)), seg.payload
