"""Packet input: IPv4 and IPv6 packets demultiplexed to connections (by
family-aware 4-tuple), to listeners, or answered with a reset (RFC 9293 §3.10.7.1);
common packets demultiplexed on their raw bytes (header prediction's shape) without
the general decoder."""

from __future__ import annotations

import struct

from ..tcp.states import State
from ..trace.schema import SegRecord
from ..wire import icmpv6
from ..wire.checksum import BytesLike
from ..wire.errors import WireError
from ..wire.ipv4 import PROTO_TCP
from ..wire.ipv6 import (
    PROTO_ICMPV6,
    ParamProblem,
    is_multicast6,
    parse_ipv6,
    parse_ipv6_packet,
)
from ..wire.packet import decode_ipv4_tcp, encode_ipv4_tcp, encode_ipv6_tcp
from ..wire.segment import ACK, PSH, RST, SYN, Segment
from ..wire.tcp import parse_tcp, tcp_checksum_ok
from ..wire.vnet import VNET_HDR_LEN, parse_vnet_header
from .base import StackBase, conn_name

# The common shape of an arriving packet, for demultiplexing on raw bytes: an
# option-less IPv4 header (RFC 791 §3.1) and a TCP header (RFC 9293 §3.1),
# optionally followed by "nop, nop, timestamps" (RFC 7323 Appendix A).
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_TS_BLOCK = struct.Struct("!III")
_TS_WORD = 0x0101080A
# The same over IPv6: a fixed header (RFC 8200 §3) whose Next Header is TCP, no
# extension headers.
_IP6_TCP = struct.Struct("!IHBB16s16sHHIIBBHHH")
_S_TIME_WAIT = State.TIME_WAIT


class DemuxMixin(StackBase):
    """Packet input of :class:`~synack.stack.Stack`."""

    def receive_packet(self, packet: bytes, now: float) -> None:
        """Take one IP packet from the link (after its virtio-net header if ``offload``)."""
        if not self.offload:
            self._receive_ip(packet, now, True)
            return
        try:
            vnet = parse_vnet_header(packet)
        except ValueError:
            self._count_drop(now, "vnet_header_short")
            return
        self._receive_ip(memoryview(packet)[VNET_HDR_LEN:], now, not vnet.checksum_trusted)

    def receive_segment(self, src: bytes, dst: bytes, seg: Segment, now: float) -> None:
        """Take a segment that another stack's :meth:`segments_to_send` gave for us, as
        if its packet had arrived: with the result :meth:`receive_packet` would give
        for the encoded packet, and without encoding it where the header-prediction
        path would have taken it (:meth:`_receive_common`: a connection it knows,
        options no more than timestamps); anything else is encoded and received
        whole."""
        conn = None
        if (
            self.fast_path
            and not self.offload
            and seg.mss is None
            and seg.wscale is None
            and not seg.sack_permitted
            and not seg.sack_blocks
            and dst in self._local
        ):
            conn = self._conns.get((src, seg.src_port, seg.dst_port, dst))
        if conn is None or conn.state is _S_TIME_WAIT or conn in self._embryonic:
            self.receive_packet(
                encode_ipv4_tcp(src, dst, seg) if len(src) == 4 else encode_ipv6_tcp(src, dst, seg),
                now,
            )
            return
        # The fields as the codec would carry them: TSecr only beside TSval (RFC 7323
        # §3.2), 0 when unset; the ECN bits of the IP header (RFC 3168 §5).
        tsval = seg.tsval
        tsecr = None if tsval is None else seg.tsecr or 0
        flags = seg.flags
        ecn = seg.ecn & 3
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (
            flags | PSH == ACK | PSH
            and ecn != 3
            and seg.payload  # (a pure ACK: never)
            and conn.receive_data_fast(
                seg.seq, seg.ack, seg.window, tsval, memoryview(seg.payload), now
            )
        ):
            self.stats["segs_fast"] += 1
            return
        conn.receive(
            Segment(
                seg.src_port,
                seg.dst_port,
                seg.seq,
                seg.ack,
                flags,
                seg.window,
                seg.payload,
                urgent=seg.urgent,
                tsval=tsval,
                tsecr=tsecr,
                ecn=ecn,
            ),
            now,
        )

    def _receive_ip(self, packet: BytesLike, now: float, verify: bool) -> None:
        six = bool(packet) and packet[0] >> 4 == 6
        if self.fast_path and (
            self._receive_common6(packet, now, verify)
            if six
            else self._receive_common(packet, now, verify)
        ):
            return
        if six:
            self._receive_ip6(packet, now, verify)
            return
        try:
            src, dst, seg = decode_ipv4_tcp(packet, verify_checksum=verify)
        except WireError as exc:
            if exc.reason == "ip_not_tcp":
                self._receive_other(packet, now)
            else:
                self._count_drop(now, exc.reason)
            return
        if dst not in self._local:
            self._count_drop(now, "ip_not_for_us")
            return
        self._receive_tcp(src, dst, seg, now)

    def _receive_tcp(self, src: bytes, dst: bytes, seg: Segment, now: float) -> None:
        """A decoded segment for one of our addresses, of either family."""
        self.stats["segs_in"] += 1
        key = (src, seg.src_port, seg.dst_port, dst)
        conn = self._conns.get(key)
        if conn is not None:
            if conn.state is State.TIME_WAIT and self._reuse_time_wait(conn, seg):
                self._remove(conn)
            else:
                lst = self._embryonic.get(conn)
                if (
                    lst is not None
                    and seg.flags & ACK
                    and not seg.flags & (SYN | RST)
                    and len(lst.accept_queue) >= lst.backlog
                ):
                    # Accept queue full: ignore the final ACK; the SYN-ACK will be resent.
                    self._count_drop(now, "accept_queue_full")
                    return
                conn.receive(seg, now)
                self._dirty[conn] = None
                if lst is not None:
                    self._settle_embryonic(conn, lst)
                return
        lst = self._listener_for(dst, seg.dst_port)
        if lst is not None:
            self._listen_input(lst, src, dst, seg, now)
        else:
            self._reset_stranger(src, dst, seg, now)

    def _receive_common(self, packet: BytesLike, now: float, verify: bool) -> bool:
        """Demultiplex on raw bytes: a valid packet of the common shape for a known
        connection goes to it without the general decoder; predicted data
        takes :meth:`Connection.receive_data_fast`.  Returns False, having done
        nothing, for anything else (another shape, a bad checksum, another state),
        which the general path then decodes, counts and answers as usual."""
        n = len(packet)
        if n < 40:
            return False
        (
            vihl,
            tos,
            total,
            _,
            frag,
            _,
            proto,
            _,
            src,
            dst,
            sport,
            dport,
            seqno,
            ackno,
            doff,
            flags,
            window,
            _,
            urgent,
        ) = _IP_TCP.unpack_from(packet)
        hl = (doff >> 4) << 2
        if (
            vihl != 0x45
            or proto != PROTO_TCP
            or frag & 0x3FFF
            or total > n
            or total < 20 + hl
            or (hl != 20 and hl != 32)
        ):
            return False
        conn = self._conns.get((src, sport, dport, dst))
        if conn is None or conn.state is _S_TIME_WAIT or conn in self._embryonic:
            return False  # a listener's or TIME-WAIT's segment: the general path
        tsval = tsecr = None
        if hl == 32:
            word, tsval, tsecr = _TS_BLOCK.unpack_from(packet, 40)
            if word != _TS_WORD:
                return False  # another option (a SACK block): the general decoder
        view = memoryview(packet)
        # RFC 1071 sums as in wire.checksum: a valid header or segment sums to 0 mod
        # 0xFFFF (with the pseudo-header, RFC 9293 §3.1, for TCP).
        if verify and (
            int.from_bytes(view[:20], "big") % 0xFFFF
            or not tcp_checksum_ok(view[20:total], src, dst)
        ):
            return False
        payload = view[20 + hl : total]
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (
            flags | PSH == ACK | PSH
            and tos & 3 != 3
            and payload  # (a pure ACK: never)
            and conn.receive_data_fast(seqno, ackno, window, tsval, payload, now)
        ):
            self.stats["segs_fast"] += 1
            return True
        conn.receive(
            Segment(
                sport,
                dport,
                seqno,
                ackno,
                flags,
                window,
                payload,
                urgent=urgent,
                tsval=tsval,
                tsecr=tsecr,
                ecn=tos & 3,
            ),
            now,
        )
        return True

    def _receive_common6(self, packet: BytesLike, now: float, verify: bool) -> bool:
        """:meth:`_receive_common` for IPv6: a fixed header with Next Header TCP (no
        extension headers, RFC 8200 §4), TCP with no options or nop-nop-timestamps.
        The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).  Returns False,
        having done nothing, for anything else."""
        n = len(packet)
        if n < 60:
            return False
        (vtf, plen, nh, _, src, dst, sport, dport, seqno, ackno, doff, flags, window, _, urgent) = (
            _IP6_TCP.unpack_from(packet)
        )
        hl = (doff >> 4) << 2
        if (
            vtf >> 28 != 6
            or nh != PROTO_TCP
            or plen + 40 > n
            or plen < hl
            or (hl != 20 and hl != 32)
        ):
            return False
        conn = self._conns.get((src, sport, dport, dst))
        if conn is None or conn.state is _S_TIME_WAIT or conn in self._embryonic:
            return False
        tsval = tsecr = None
        if hl == 32:
            word, tsval, tsecr = _TS_BLOCK.unpack_from(packet, 60)
            if word != _TS_WORD:
                return False
        end = 40 + plen
        view = memoryview(packet)
        # RFC 1071 with the IPv6 pseudo-header (RFC 8200 §8.1).
        if verify and not tcp_checksum_ok(view[40:end], src, dst):
            return False
        payload = view[40 + hl : end]
        ecn = (vtf >> 20) & 3  # the Traffic Class's ECN field (RFC 3168 §5)
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (
            flags | PSH == ACK | PSH
            and ecn != 3
            and payload  # (a pure ACK: never)
            and conn.receive_data_fast(seqno, ackno, window, tsval, payload, now)
        ):
            self.stats["segs_fast"] += 1
            return True
        conn.receive(
            Segment(
                sport,
                dport,
                seqno,
                ackno,
                flags,
                window,
                payload,
                urgent=urgent,
                tsval=tsval,
                tsecr=tsecr,
                ecn=ecn,
            ),
            now,
        )
        return True

    def _receive_ip6(self, packet: BytesLike, now: float, verify: bool) -> None:
        """An IPv6 packet (RFC 8200): extension headers walked, TCP demultiplexed as
        over IPv4, ICMPv6 answered (RFC 4443), anything else refused and counted."""
        try:
            pkt = parse_ipv6_packet(packet)
        except WireError as exc:
            self._count_drop(now, exc.reason)
            if isinstance(exc, ParamProblem):
                hdr6 = parse_ipv6(packet)  # it parsed before the chain was refused
                if hdr6.dst in self._local:  # never a multicast one: synack joins no group
                    self._param_problem(hdr6.src, hdr6.dst, exc.code, exc.pointer, packet, now)
            return
        hdr = pkt.header
        if is_multicast6(hdr.dst):
            # The kernel's router solicitations and MLD reports on a new link: synack
            # joins no group and does no NDP on an L3 link.
            self._count_drop(now, "ip6_multicast_ignored")
            return
        if hdr.dst not in self._local:
            self._count_drop(now, "ip_not_for_us")
            return
        view = memoryview(packet)[pkt.offset : pkt.end]
        if pkt.proto == PROTO_TCP:
            try:
                seg = parse_tcp(
                    view, hdr.src, hdr.dst, verify_checksum=verify, ecn=hdr.traffic_class & 3
                )
            except WireError as exc:
                self._count_drop(now, exc.reason)
                return
            self._receive_tcp(hdr.src, hdr.dst, seg, now)
            return
        if pkt.proto != PROTO_ICMPV6:
            # RFC 8200 §4: an unrecognised Next Header is answered with a Parameter
            # Problem (code 1) pointing at it (RFC 4443 §3.4).
            self._count_drop(now, "ip_unsupported_protocol")
            self._param_problem(
                hdr.src, hdr.dst, icmpv6.PARAM_UNKNOWN_NEXT_HEADER, pkt.proto_pointer, packet, now
            )
            return
        self._receive_icmp6(hdr, view, now)

    def _reset_stranger(self, src: bytes, dst: bytes, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.1: no connection and no listener (C21, C24)."""
        if seg.flags & RST:
            self._count_drop(now, "rst_no_connection")
            return
        if seg.flags & SYN and not seg.flags & ACK:
            why = "SYN to a port nobody listens on (C21)"
        elif seg.payload:
            why = "data for a connection that no longer exists (C24)"
        else:
            why = "segment for a connection that does not exist"
        self._send_rst_for(src, dst, seg, now, why)

    def _send_rst_for(self, src: bytes, dst: bytes, seg: Segment, now: float, why: str) -> None:
        if seg.flags & ACK:
            rst = Segment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = Segment(
                seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & 0xFFFFFFFF, RST | ACK, 0
            )
        self.stats["rst_sent"] += 1
        if self.tracer is not None:
            name = conn_name(dst, seg.dst_port, src, seg.src_port)
            rec: SegRecord = {
                "t": now,
                "ev": "seg",
                "dir": "out",
                "conn": name,
                "flags": rst.flags,
                "seq": rst.seq,
                "ack": rst.ack,
                "len": 0,
                "win": 0,
                "mss": None,
                "why": why,
                "state": "CLOSED",
                "iss": None,
                "irs": None,
            }
            self.tracer(rec)
        self._emit_tcp(dst, src, rst)
