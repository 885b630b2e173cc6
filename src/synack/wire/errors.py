"""Decoding errors and the stable drop-reason names the stack counts them under."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

DROP_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ip_truncated": "shorter than an IPv4 header (20 bytes, or IHL*4)",
        "ip_bad_version": "IP version field is neither 4 nor 6",
        "ip_bad_ihl": "IPv4 header length (IHL) below 5 words",
        "ip_bad_total_length": "IPv4 total length below the header length or past the buffer",
        "ip_bad_checksum": "IPv4 header checksum does not verify",
        "ip_fragment": "IPv4 fragment (MF set or fragment offset non-zero); reassembly unsupported",
        "ip_options_unsupported": "IPv4 header carries options (IHL > 5); unsupported",
        "ip_not_tcp": "IPv4 protocol is not TCP (6) where TCP was required",
        "ip6_truncated": "shorter than an IPv6 header (40 bytes)",
        "ip6_bad_payload_length": "IPv6 payload length runs past the end of the packet",
        "ip6_bad_ext_header": "IPv6 extension header truncated, malformed, or out of order",
        "ip6_option_discard": "IPv6 option synack does not know and may not skip (e.g. jumbo)",
        "ip6_routing_header": "IPv6 routing header with segments left: synack is no router",
        "ip6_fragment": "IPv6 fragment (offset or M set); reassembly unsupported",
        "ip6_first_fragment_incomplete": "IPv6 first fragment without the whole header chain "
        "(RFC 7112 §5)",
        "tcp_truncated": "shorter than a TCP header (20 bytes, 8 for a quoted header)",
        "tcp_bad_offset": "TCP data offset below 5 words or past the end of the segment",
        "tcp_bad_option": "TCP option length below 2, past the header, or wrong for its kind",
        "tcp_bad_checksum": "TCP checksum (with pseudo-header) does not verify",
        "icmp_truncated": "shorter than an ICMP header (8 bytes) or than its quoted packet needs",
        "icmp_bad_checksum": "ICMP checksum does not verify",
        "icmp_bad_quote": "ICMP error quotes something that is not an IP header of its family",
    }
)
"""Every ``WireError.reason``, in pipeline order, with a one-line description."""


class WireError(Exception):
    """A packet could not be decoded; ``reason`` is a key of :data:`DROP_REASONS`.

    ``detail`` is free text for logs; counters must key on ``reason`` only.
    """

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason
