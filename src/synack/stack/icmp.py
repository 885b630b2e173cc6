"""ICMP (RFC 792) and ICMPv6 (RFC 4443) for the stack: echo answered, destination
unreachable and Packet Too Big handed to the connection they quote (RFC 5927, C22;
RFC 8201), errors sent under one rate limit, Parameter Problem for IPv6 packets
refused."""

from __future__ import annotations

from ..wire import icmp, icmpv6
from ..wire.checksum import BytesLike
from ..wire.errors import WireError
from ..wire.ipv4 import PROTO_ICMP, PROTO_TCP, parse_ipv4_packet
from ..wire.ipv6 import IPV6_MIN_MTU, PROTO_ICMPV6, IPv6Header, is_multicast6
from ..wire.packet import encode_ipv4, encode_ipv6
from .base import UNSPECIFIED6, StackBase


class IcmpMixin(StackBase):
    """ICMP and ICMPv6 of :class:`~synack.stack.Stack`."""

    def _receive_other(self, packet: BytesLike, now: float) -> None:
        """Non-TCP IPv4: ICMP (RFC 792) is handled; other protocols get an ICMP
        protocol unreachable (RFC 1122 §3.2.2.1) and a counted drop."""
        try:
            hdr, payload = parse_ipv4_packet(packet)
        except WireError as exc:  # pragma: no cover - decode_ipv4_tcp checked it already
            self._count_drop(now, exc.reason)
            return
        if hdr.dst not in self._local:
            self._count_drop(now, "ip_not_for_us")
            return
        if hdr.proto != PROTO_ICMP:
            self._count_drop(now, "ip_unsupported_protocol")
            self._send_icmp_error(hdr.dst, hdr.src, icmp.UNREACH_PROTOCOL, packet, now)
            return
        try:
            msg = icmp.parse_icmp(payload)
        except WireError as exc:
            self._count_drop(now, exc.reason)
            return
        if msg.type == icmp.ICMP_ECHO_REQUEST:
            if not self.answer_ping:
                self._count_drop(now, "icmp_echo_ignored")
                return
            self.stats["icmp_echo_replies"] += 1
            self._emit_ip(encode_ipv4(hdr.dst, hdr.src, PROTO_ICMP, icmp.build_echo_reply(msg)))
            return
        if msg.type != icmp.ICMP_DEST_UNREACH:
            self._count_drop(now, f"icmp_type_{msg.type}_ignored")
            return
        try:
            quote = icmp.parse_dest_unreachable(msg)
        except WireError as exc:
            self._count_drop(now, exc.reason)
            return
        self._icmp_to_connection(quote, quote.code, now)

    def _receive_icmp6(self, hdr: IPv6Header, view: memoryview, now: float) -> None:
        """ICMPv6 for one of our addresses (RFC 4443): echo answered, destination
        unreachable and Packet Too Big handed to the connection they quote, the rest
        counted."""
        try:
            msg = icmpv6.parse_icmpv6(view, hdr.src, hdr.dst)
        except WireError as exc:
            self._count_drop(now, exc.reason)
            return
        t = msg.type
        if t == icmpv6.ICMP6_ECHO_REQUEST:
            if not self.answer_ping:
                self._count_drop(now, "icmp_echo_ignored")
                return
            self.stats["icmp_echo_replies"] += 1
            self._emit_ip(
                encode_ipv6(
                    hdr.dst, hdr.src, PROTO_ICMPV6, icmpv6.build_echo6_reply(hdr.dst, hdr.src, msg)
                )
            )
            return
        if t not in (icmpv6.ICMP6_DEST_UNREACH, icmpv6.ICMP6_PACKET_TOO_BIG):
            if t in icmpv6.ICMP6_NDP_TYPES:
                self._count_drop(now, "icmp6_ndp_ignored")
            else:
                self._count_drop(now, f"icmp6_type_{t}_ignored")
            return
        try:
            quote = icmpv6.parse_icmpv6_quote(msg)
        except WireError as exc:
            self._count_drop(now, exc.reason)
            return
        if t == icmpv6.ICMP6_PACKET_TOO_BIG:
            # RFC 8201 §4: the path MTU, never below 1280; the core derives the MSS.
            quote = quote._replace(next_hop_mtu=max(quote.next_hop_mtu, IPV6_MIN_MTU))
            code = icmp.UNREACH_FRAG_NEEDED
        else:
            code = _UNREACH6_AS_V4.get(msg.code, icmp.UNREACH_HOST)
        self._icmp_to_connection(quote, code, now)

    def _icmp_to_connection(self, quote: icmp.IcmpQuote, code: int, now: float) -> None:
        """Hand an ICMP or ICMPv6 error to the connection it quotes (the core checks the
        quoted sequence number against the window, RFC 5927 §4.1, C22)."""
        if quote.proto != PROTO_TCP or quote.src not in self._local:
            self._count_drop(now, "icmp_quote_not_ours")
            return
        conn = self._conns.get((quote.dst, quote.dport, quote.sport, quote.src))
        if conn is None:
            self._count_drop(now, "icmp_no_connection")
            return
        if conn.icmp_unreachable(code, quote.seq, now, next_hop_mtu=quote.next_hop_mtu):
            self.stats["icmp_unreachable_accepted"] += 1
        else:
            self.stats["drop_icmp_out_of_window"] += 1
        self._dirty[conn] = None

    def _icmp_allowed(self, now: float) -> bool:
        """The shared ICMP/ICMPv6 error token bucket (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f))."""
        self._icmp_tokens = min(
            self._icmp_rate, self._icmp_tokens + (now - self._icmp_last) * self._icmp_rate
        )
        self._icmp_last = now
        if self._icmp_tokens < 1:
            self.stats["icmp_errors_rate_limited"] += 1
            return False
        self._icmp_tokens -= 1
        self.stats["icmp_errors_sent"] += 1
        return True

    def _send_icmp_error(
        self, src: bytes, dst: bytes, code: int, packet: BytesLike, now: float
    ) -> None:
        """Destination unreachable, rate limited."""
        if self._icmp_allowed(now):
            body = icmp.build_dest_unreachable(code, packet)
            self._emit_ip(encode_ipv4(src, dst, PROTO_ICMP, body))

    def _param_problem(
        self, src: bytes, dst: bytes, code: int, pointer: int, packet: BytesLike, now: float
    ) -> None:
        """ICMPv6 Parameter Problem to ``src`` about ``packet`` (RFC 4443 §3.4), rate
        limited (§2.4(f)); never to a source that does not identify one node, the
        unspecified address or a multicast one (§2.4(e))."""
        if src == UNSPECIFIED6 or is_multicast6(src):
            self.stats["icmp6_errors_suppressed"] += 1  # the packet is counted already
            return
        if self._icmp_allowed(now):
            body = icmpv6.build_param_problem(dst, src, code, pointer, packet)
            self._emit_ip(encode_ipv6(dst, src, PROTO_ICMPV6, body))


#: ICMPv6 destination-unreachable code (RFC 4443 §3.1) -> the ICMPv4 code the core
#: takes, so each gets the errno Linux's icmpv6_err_convert gives it.
_UNREACH6_AS_V4: dict[int, int] = {
    icmpv6.UNREACH6_NO_ROUTE: icmp.UNREACH_NET,
    icmpv6.UNREACH6_ADMIN: 13,  # communication administratively prohibited
    icmpv6.UNREACH6_BEYOND_SCOPE: icmp.UNREACH_HOST,
    icmpv6.UNREACH6_ADDRESS: icmp.UNREACH_HOST,
    icmpv6.UNREACH6_PORT: icmp.UNREACH_PORT,
    icmpv6.UNREACH6_POLICY: 13,
    icmpv6.UNREACH6_REJECT_ROUTE: 13,
}
