"""A TCP host over IPv4 and IPv6: demultiplexing, listeners, ports, resets for strangers.

The stack is sans-IO like the connections it holds: raw IP packets go in
through :meth:`Stack.receive_packet` and come out of
:meth:`Stack.packets_to_send`; timers are one heap of per-connection
deadlines (stale entries are skipped, so the cost per event does not grow
with the number of connections).  Anything a user or a peer can get wrong
becomes a clear exception (bad arguments, a port in use) or a counted drop
(malformed packets) in :attr:`Stack.stats`; nothing is swallowed.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import itertools
import os
import random
import struct
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any, Literal

from .tcp import cookies, seq
from .tcp.config import TcpConfig
from .tcp.connection import Connection, Tracer
from .tcp.cookies import SynCookies
from .tcp.events import Event
from .tcp.isn import IsnSource, Rfc6528Isn
from .tcp.states import SYNCHRONIZED, State
from .trace.schema import DropRecord, SegRecord, SyncookieRecord
from .wire import icmp, icmpv6
from .wire.checksum import BytesLike
from .wire.errors import WireError
from .wire.ipv4 import PROTO_ICMP, PROTO_TCP, parse_ipv4_packet
from .wire.ipv6 import (
    IPV6_MIN_MTU,
    PROTO_ICMPV6,
    ParamProblem,
    addr_to_bytes,
    endpoint_str,
    is_multicast6,
    parse_ipv6,
    parse_ipv6_packet,
)
from .wire.packet import (
    decode_ipv4_tcp,
    encode_ipv4,
    encode_ipv4_tcp,
    encode_ipv4_tcp_parts,
    encode_ipv6,
    encode_ipv6_tcp,
    encode_ipv6_tcp_parts,
)
from .wire.segment import ACK, FIN, PSH, RST, SYN, Segment
from .wire.tcp import parse_tcp, tcp_checksum_ok
from .wire.vnet import (
    PLAIN_HEADER,
    VNET_HDR_LEN,
    encode_ipv4_tcp_offload,
    encode_ipv4_tcp_offload_parts,
    parse_vnet_header,
)

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65535  # RFC 6335 §6 dynamic ports

Key = tuple[bytes, int, int, bytes]  # (remote ip, remote port, local port, local ip)
OutPacket = bytes | tuple[bytes, BytesLike]
"""A packet to transmit: whole, or (headers, payload) for a gathering write."""

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
_UNSPECIFIED6 = bytes(16)


class Listener:
    """A passive open on one port with a bounded accept queue (the backlog).

    It takes connections to any of the stack's addresses, of the families in
    ``families`` (4, 6 or both: a dual-stack listener, as an ``AF_INET6`` socket
    with ``IPV6_V6ONLY`` off, RFC 3493 §5.3)."""

    __slots__ = ("_stack", "accept_queue", "backlog", "closed", "config", "families",
                 "half_open", "last_cookie", "port")

    def __init__(self, stack: Stack, port: int, backlog: int, config: TcpConfig,
                 families: tuple[int, ...] = (4, 6)) -> None:
        self._stack = stack
        self.families = families
        self.port = port
        self.backlog = backlog
        self.config = config
        self.accept_queue: deque[Connection] = deque()
        self.half_open = 0
        self.closed = False
        self.last_cookie: float | None = None  # when this listener last sent a SYN cookie

    def accept(self) -> Connection | None:
        """The oldest fully established connection, or None if none is waiting."""
        return self.accept_queue.popleft() if self.accept_queue else None

    def close(self) -> None:
        """Stop listening; connections never accepted are reset, as Linux does."""
        self._stack._close_listener(self)

    def __repr__(self) -> str:
        return (f"<Listener :{self.port} backlog={self.backlog} queued={len(self.accept_queue)}"
                f" half_open={self.half_open}>")


class Stack:
    """TCP for one host: one or more IPv4 and IPv6 addresses (:meth:`add_address`)."""

    def __init__(
        self,
        address: str | bytes,
        *,
        addresses: tuple[str | bytes, ...] = (),
        config: TcpConfig | None = None,
        isn: IsnSource | None = None,
        isn_secret: bytes | None = None,
        seed: int | None = None,
        tracer: Tracer | None = None,
        max_half_open: int = 256,
        syncookies: bool = True,
        max_connections: int = 65536,
        max_time_wait: int = 16384,
        answer_ping: bool = True,
        icmp_errors_per_second: float = 100.0,
        mtu: int | None = None,
        max_segment_payload: int | None = None,
        offload: bool = False,
        fast_path: bool = True,
        ephemeral_ports: range | None = None,
    ) -> None:
        """``mtu``, ``max_segment_payload`` and ``offload`` are what the link tells the
        stack: the MSS becomes ``mtu - 40`` (RFC 9293 §3.7.1) and, on a link with
        segmentation offload, one segment may carry up to ``max_segment_payload`` bytes
        (the link splits it per MSS).  ``offload`` means every packet, both ways,
        starts with a virtio-net header (:mod:`synack.wire.vnet`): inbound packets the
        header marks as checksummed are not verified again, and outbound TCP leaves its
        checksum and segmentation to the kernel.  ``fast_path`` (on by default)
        demultiplexes common packets on their raw bytes and lets
        :meth:`Connection.receive_data_fast` take predicted in-order data; turning it
        off changes nothing on the wire, only the cost.

        ``address`` is the first (primary) address, IPv4 or IPv6; ``addresses`` adds
        more.  A connection's source is the first address of its peer's family.  The
        MSS an IPv6 connection announces is 20 bytes less (its header is 40 bytes,
        RFC 8200 §3): the link MTU less 60, 1440 on a 1500-byte link.

        ``ephemeral_ports`` narrows the local ports the stack picks for its own
        connections (and for listening on port 0) to a subset of 49152-65535, RFC 6335
        §6: each worker of a multi-queue TUN device takes its own share, so that the
        device's steering program sends their packets back to it
        (:mod:`synack.links.steering`).  ``isn_secret`` shared between stacks makes
        them agree on ISNs, SYN cookies and timestamp offsets."""
        self.address = _addr(address)
        self.addresses: list[bytes] = []
        self._local: set[bytes] = set()
        for a in (address, *addresses):
            self.add_address(a)
        cfg = config or TcpConfig()
        self._mtu = 1500 if mtu is None else mtu
        if mtu is not None:
            if not 128 <= mtu <= 65535:
                raise ValueError(f"mtu must be in 128..65535, got {mtu}")
            cfg = cfg.replace(mss=min(cfg.mss, mtu - 40))
        self._v6_configs: dict[int, tuple[TcpConfig, TcpConfig]] = {}
        if max_segment_payload is not None:
            cfg = cfg.replace(max_segment_payload=max_segment_payload)
        self.config = cfg
        self.offload = offload
        self.fast_path = fast_path
        self._isn: IsnSource = isn or Rfc6528Isn(isn_secret)
        self.ephemeral_ports = (range(EPHEMERAL_LOW, EPHEMERAL_HIGH + 1)
                                if ephemeral_ports is None else ephemeral_ports)
        if not self.ephemeral_ports or not (
                self.ephemeral_ports[0] > 0 and self.ephemeral_ports[-1] <= 65535):
            raise ValueError(f"ephemeral_ports must be a non-empty range of ports, got "
                             f"{ephemeral_ports!r}")
        self._rng = random.Random(seed)
        self.tracer = tracer
        self.max_half_open = max_half_open
        self.syncookies = syncookies
        self.max_connections = max_connections
        self.max_time_wait = max_time_wait
        self._cookies = SynCookies(None if isn_secret is None else isn_secret[::-1] + b"cookie")
        # RFC 7323 §5.4: one timestamp offset per address pair, from a secret, so a new
        # connection's TSvals follow the last one's (a peer's TIME-WAIT PAWS check
        # accepts its SYN, RFC 6191) while the clock is not revealed across pairs.
        self._ts_key = (hashlib.blake2s(isn_secret, digest_size=16).digest()
                        if isn_secret is not None else os.urandom(16))
        self._time_wait: dict[Connection, None] = {}  # insertion order = age
        self.answer_ping = answer_ping
        self._icmp_rate = icmp_errors_per_second
        self._icmp_tokens = icmp_errors_per_second
        self._icmp_last = 0.0
        self._conns: dict[Key, Connection] = {}
        self._listeners: dict[int, Listener] = {}
        self._embryonic: dict[Connection, Listener] = {}
        self._events: deque[Event] = deque()
        #: The events not yet read, oldest first (what :meth:`events` drains): a
        #: driver that polls after every packet tests this before calling anything.
        self.pending_events = self._events
        self._dirty: dict[Connection, None] = {}
        # Timer heap of [deadline, tiebreak, connection or None] entries; an entry is
        # dropped lazily by setting its connection to None, so a rescheduled or removed
        # connection is released at once and the heap is compacted when mostly stale.
        self._heap: list[list[Any]] = []
        self._deadline: dict[Connection, list[Any]] = {}
        self._stale = 0
        self._counter = itertools.count()
        self._out: list[OutPacket] = []
        self.stats: Counter[str] = Counter()

    # ----------------------------------------------------------------- user API
    def add_address(self, address: str | bytes) -> None:
        """Own another IPv4 or IPv6 address (a host has many, RFC 4291 §2.1)."""
        a = _addr(address)
        if a not in self._local:
            self.addresses.append(a)
            self._local.add(a)

    def source_for(self, remote: bytes) -> bytes:
        """The local address to use towards ``remote``: the first of its family."""
        for a in self.addresses:
            if len(a) == len(remote):
                return a
        fam = "IPv4" if len(remote) == 4 else "IPv6"
        raise OSError(errno.EADDRNOTAVAIL, f"no {fam} address on this stack")

    def family_config(self, cfg: TcpConfig, remote: bytes) -> TcpConfig:
        """``cfg`` as used towards ``remote``: over IPv6 the MSS leaves room for the
        40-byte header (RFC 9293 §3.7.1: MTU less 60)."""
        if len(remote) == 4:
            return cfg
        hit = self._v6_configs.get(id(cfg))
        if hit is None or hit[0] is not cfg:
            mss = min(cfg.mss, self._mtu - 60)
            hit = (cfg, cfg if mss == cfg.mss else cfg.replace(mss=mss))
            self._v6_configs[id(cfg)] = hit
        return hit[1]

    def listen(self, port: int, backlog: int = 128, *, config: TcpConfig | None = None,
               families: tuple[int, ...] = (4, 6)) -> Listener:
        """Passive OPEN on ``port`` (RFC 9293 §3.10.1); port 0 picks a free one.
        ``families=(6,)`` is an ``IPV6_V6ONLY`` listener, ``(4,)`` an IPv4-only one."""
        if port == 0:
            port = self._free_listen_port()
        _check_port(port)
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if port in self._listeners:
            raise OSError(errno.EADDRINUSE, f"port {port} is already listening")
        if not families or set(families) - {4, 6}:
            raise ValueError(f"families must be some of (4, 6), got {families!r}")
        lst = Listener(self, port, backlog, config or self.config, tuple(families))
        self._listeners[port] = lst
        return lst

    def connect(self, remote: str | bytes, port: int, *, now: float,
                local_port: int | None = None, config: TcpConfig | None = None,
                local_ip: str | bytes | None = None) -> Connection:
        """Active OPEN to ``remote:port`` (IPv4 or IPv6): returns a connection in
        SYN-SENT (C6).  The source is ``local_ip`` or :meth:`source_for` the remote."""
        rip = _addr(remote)
        lip = self.source_for(rip) if local_ip is None else _addr(local_ip)
        if lip not in self._local or len(lip) != len(rip):
            raise OSError(errno.EADDRNOTAVAIL, f"{endpoint_str(lip, 0)[:-2]} cannot reach "
                          f"{endpoint_str(rip, 0)[:-2]} from this stack")
        _check_port(port)
        if len(self._conns) >= self.max_connections:
            raise OSError(errno.ENOBUFS, f"connection table full ({self.max_connections})")
        if local_port is None:
            local_port = self._ephemeral_port(rip, port, lip)
        else:
            _check_port(local_port)
            if (rip, port, local_port, lip) in self._conns:
                raise OSError(errno.EADDRINUSE,
                              f"{endpoint_str(lip, local_port)} -> "
                              f"{endpoint_str(rip, port)} is already in use")
        iss = self._isn(lip, local_port, rip, port, now)
        conn = Connection.open_active(lip, local_port, rip, port, iss=iss, now=now,
                                      config=self.family_config(config or self.config, rip),
                                      events=self._events,
                                      tracer=self.tracer, wake=self._wake,
                                      ts_offset=self._ts_offset(lip, rip))
        self._conns[(rip, port, local_port, lip)] = conn
        self._dirty[conn] = None
        return conn

    def next_event(self) -> Event | None:
        """The oldest unread event of any connection, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[Event]:
        """Drain all pending events."""
        while self._events:
            yield self._events.popleft()

    @property
    def connections(self) -> list[Connection]:
        return list(self._conns.values())

    def find(self, remote: str | bytes, remote_port: int, local_port: int,
             local_ip: str | bytes | None = None) -> Connection | None:
        """The connection of a 4-tuple; the local address defaults to the primary one of
        the remote's family."""
        rip = _addr(remote)
        try:
            lip = self.source_for(rip) if local_ip is None else _addr(local_ip)
        except OSError:
            return None
        return self._conns.get((rip, remote_port, local_port, lip))

    # ------------------------------------------------------------- packet input
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
        if (self.fast_path and not self.offload and seg.mss is None and seg.wscale is None
                and not seg.sack_permitted and not seg.sack_blocks and dst in self._local):
            conn = self._conns.get((src, seg.src_port, seg.dst_port, dst))
        if conn is None or conn.state is _S_TIME_WAIT or conn in self._embryonic:
            self.receive_packet(encode_ipv4_tcp(src, dst, seg) if len(src) == 4
                                else encode_ipv6_tcp(src, dst, seg), now)
            return
        # The fields as the codec would carry them: TSecr only beside TSval (RFC 7323
        # §3.2), 0 when unset; the ECN bits of the IP header (RFC 3168 §5).
        tsval = seg.tsval
        tsecr = None if tsval is None else seg.tsecr or 0
        flags = seg.flags
        ecn = seg.ecn & 3
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (flags | PSH == ACK | PSH and ecn != 3
                and conn.receive_data_fast(seg.seq, seg.ack, seg.window, tsval,
                                           memoryview(seg.payload), now)):
            self.stats["segs_fast"] += 1
            return
        conn.receive(Segment(seg.src_port, seg.dst_port, seg.seq, seg.ack, flags, seg.window,
                             seg.payload, urgent=seg.urgent, tsval=tsval, tsecr=tsecr,
                             ecn=ecn), now)

    def _receive_ip(self, packet: BytesLike, now: float, verify: bool) -> None:
        six = bool(packet) and packet[0] >> 4 == 6
        if self.fast_path and (self._receive_common6(packet, now, verify) if six
                               else self._receive_common(packet, now, verify)):
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
                if (lst is not None and seg.flags & ACK and not seg.flags & (SYN | RST)
                        and len(lst.accept_queue) >= lst.backlog):
                    # Accept queue full: ignore the final ACK; the SYN-ACK will be resent.
                    self._count_drop(now, "accept_queue_full")
                    return
                conn.receive(seg, now)
                self._dirty[conn] = None
                if lst is not None:
                    self._settle_embryonic(conn, lst)
                return
        lst = self._listeners.get(seg.dst_port)
        if lst is not None and (4 if len(src) == 4 else 6) in lst.families:
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
        (vihl, tos, total, _, frag, _, proto, _, src, dst, sport, dport, seqno, ackno,
         doff, flags, window, _, urgent) = _IP_TCP.unpack_from(packet)
        hl = (doff >> 4) << 2
        if (vihl != 0x45 or proto != PROTO_TCP or frag & 0x3FFF or total > n
                or total < 20 + hl or (hl != 20 and hl != 32)):
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
        if verify and (int.from_bytes(view[:20], "big") % 0xFFFF
                       or not tcp_checksum_ok(view[20:total], src, dst)):
            return False
        payload = view[20 + hl:total]
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (flags | PSH == ACK | PSH and tos & 3 != 3
                and conn.receive_data_fast(seqno, ackno, window, tsval, payload, now)):
            self.stats["segs_fast"] += 1
            return True
        conn.receive(Segment(sport, dport, seqno, ackno, flags, window, payload,
                             urgent=urgent, tsval=tsval, tsecr=tsecr, ecn=tos & 3), now)
        return True

    def _receive_common6(self, packet: BytesLike, now: float, verify: bool) -> bool:
        """:meth:`_receive_common` for IPv6: a fixed header with Next Header TCP (no
        extension headers, RFC 8200 §4), TCP with no options or nop-nop-timestamps.
        The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).  Returns False,
        having done nothing, for anything else."""
        n = len(packet)
        if n < 60:
            return False
        (vtf, plen, nh, _, src, dst, sport, dport, seqno, ackno, doff, flags, window, _,
         urgent) = _IP6_TCP.unpack_from(packet)
        hl = (doff >> 4) << 2
        if (vtf >> 28 != 6 or nh != PROTO_TCP or plen + 40 > n or plen < hl
                or (hl != 20 and hl != 32)):
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
        payload = view[40 + hl:end]
        ecn = (vtf >> 20) & 3  # the Traffic Class's ECN field (RFC 3168 §5)
        self.stats["segs_in"] += 1
        self._dirty[conn] = None
        if (flags | PSH == ACK | PSH and ecn != 3
                and conn.receive_data_fast(seqno, ackno, window, tsval, payload, now)):
            self.stats["segs_fast"] += 1
            return True
        conn.receive(Segment(sport, dport, seqno, ackno, flags, window, payload,
                             urgent=urgent, tsval=tsval, tsecr=tsecr, ecn=ecn), now)
        return True

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
            self._emit_ip(encode_ipv4(hdr.dst, hdr.src, PROTO_ICMP,
                                      icmp.build_echo_reply(msg)))
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
        self._icmp_tokens = min(self._icmp_rate,
                                self._icmp_tokens + (now - self._icmp_last) * self._icmp_rate)
        self._icmp_last = now
        if self._icmp_tokens < 1:
            self.stats["icmp_errors_rate_limited"] += 1
            return False
        self._icmp_tokens -= 1
        self.stats["icmp_errors_sent"] += 1
        return True

    def _send_icmp_error(self, src: bytes, dst: bytes, code: int, packet: BytesLike,
                         now: float) -> None:
        """Destination unreachable, rate limited."""
        if self._icmp_allowed(now):
            body = icmp.build_dest_unreachable(code, packet)
            self._emit_ip(encode_ipv4(src, dst, PROTO_ICMP, body))

    # --------------------------------------------------------------------- IPv6
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
                    self._param_problem(hdr6.src, hdr6.dst, exc.code, exc.pointer, packet,
                                        now)
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
        view = memoryview(packet)[pkt.offset:pkt.end]
        if pkt.proto == PROTO_TCP:
            try:
                seg = parse_tcp(view, hdr.src, hdr.dst, verify_checksum=verify,
                                ecn=hdr.traffic_class & 3)
            except WireError as exc:
                self._count_drop(now, exc.reason)
                return
            self._receive_tcp(hdr.src, hdr.dst, seg, now)
            return
        if pkt.proto != PROTO_ICMPV6:
            # RFC 8200 §4: an unrecognised Next Header is answered with a Parameter
            # Problem (code 1) pointing at it (RFC 4443 §3.4).
            self._count_drop(now, "ip_unsupported_protocol")
            self._param_problem(hdr.src, hdr.dst, icmpv6.PARAM_UNKNOWN_NEXT_HEADER,
                                pkt.proto_pointer, packet, now)
            return
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
            self._emit_ip(encode_ipv6(hdr.dst, hdr.src, PROTO_ICMPV6,
                                      icmpv6.build_echo6_reply(hdr.dst, hdr.src, msg)))
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

    def _param_problem(self, src: bytes, dst: bytes, code: int, pointer: int,
                       packet: BytesLike, now: float) -> None:
        """ICMPv6 Parameter Problem to ``src`` about ``packet`` (RFC 4443 §3.4), rate
        limited (§2.4(f)); never to a source that does not identify one node, the
        unspecified address or a multicast one (§2.4(e))."""
        if src == _UNSPECIFIED6 or is_multicast6(src):
            self.stats["icmp6_errors_suppressed"] += 1  # the packet is counted already
            return
        if self._icmp_allowed(now):
            body = icmpv6.build_param_problem(dst, src, code, pointer, packet)
            self._emit_ip(encode_ipv6(dst, src, PROTO_ICMPV6, body))

    def _reuse_time_wait(self, conn: Connection, seg: Segment) -> bool:
        """A new SYN may take over a TIME-WAIT 4-tuple (RFC 6191 §2, as Linux allows).

        With timestamps on the old connection and a TSval on the SYN (the listener
        taking timestamps), the TSval decides: newer than TS.Recent is accepted
        whatever the ISN, equal only with a higher ISN, older never (an old
        duplicate).  Otherwise the ISN must be above RCV.NXT (RFC 1122 §4.2.2.13)."""
        if not seg.flags & SYN or seg.flags & (ACK | RST):
            return False
        lst = self._listeners.get(seg.dst_port)
        if lst is None or (4 if len(conn.remote_ip) == 4 else 6) not in lst.families:
            return False
        newer_isn = seq.sub(seg.seq, conn.rcv_nxt) > 0
        if conn.ts_ok and seg.tsval is not None and lst.config.timestamps:
            age = seq.sub(seg.tsval, conn.ts_recent)
            return age > 0 or (age == 0 and newer_isn)
        return newer_isn

    def _listen_input(self, lst: Listener, src: bytes, dst: bytes, seg: Segment,
                      now: float) -> None:
        """RFC 9293 §3.10.7.2: a segment for a listener."""
        flags = seg.flags
        if flags & RST:
            self._count_drop(now, "rst_to_listener")
            return
        if flags & ACK:
            if flags & SYN == 0 and self._cookie_ack(lst, src, dst, seg, now):
                return
            self._send_rst_for(src, dst, seg, now, "ACK to a listener with no such connection")
            return
        if not flags & SYN:
            self._count_drop(now, "no_syn_to_listener")
            return
        if len(self._conns) >= self.max_connections:
            self._count_drop(now, "connection_table_full")
            return
        if lst.half_open >= self.max_half_open:
            if self.syncookies:
                self._send_cookie(lst, src, dst, seg, now)
            else:
                self._count_drop(now, "syn_backlog_full")
            return
        iss = self._isn(dst, seg.dst_port, src, seg.src_port, now)
        conn = Connection.open_passive(seg, dst, src, iss=iss, now=now,
                                       config=self.family_config(lst.config, src),
                                       events=self._events,
                                       tracer=self.tracer, wake=self._wake,
                                       ts_offset=self._ts_offset(dst, src))
        self._conns[(src, seg.src_port, seg.dst_port, dst)] = conn
        self._embryonic[conn] = lst
        lst.half_open += 1
        self._dirty[conn] = None

    def _send_cookie(self, lst: Listener, src: bytes, dst: bytes, syn: Segment,
                     now: float) -> None:
        """Half-open table full: answer with a SYN cookie and keep nothing (RFC 4987)."""
        cfg = self.family_config(lst.config, src)
        v4 = len(src) == 4
        cookie, mss = self._cookies.make(dst, syn.dst_port, src, syn.src_port,
                                         syn.seq, syn.mss or (536 if v4 else 1220), now,
                                         v6=not v4)
        probe = Connection.open_passive(syn, dst, src, iss=cookie, now=now,
                                        config=cfg, ts_offset=self._ts_offset(dst, src))
        (synack,) = probe.segments_to_send(now)
        synack.mss = min(synack.mss or mss, cfg.mss)
        if synack.tsval is not None:  # options that the ISN cannot carry ride in TSval
            bits = cookies.encode_options(probe.snd_wscale if probe.ws_ok else None,
                                          probe.sack_ok, probe.ecn_ok)
            ts = (synack.tsval & ~cookies.TS_MASK) | bits
            if seq.gt(ts, synack.tsval):
                # Never ahead of the clock the connection will use, or the peer's PAWS
                # would drop our first segments (as Linux's cookie_init_timestamp).
                ts -= 1 << cookies.TS_BITS
            synack.tsval = ts & 0xFFFFFFFF
        lst.last_cookie = now
        self.stats["syncookies_sent"] += 1
        self._trace_cookie(now, dst, src, syn, "sent")
        self._emit_tcp(dst, src, synack)

    def _cookie_ack(self, lst: Listener, src: bytes, dst: bytes, seg: Segment,
                    now: float) -> bool:
        """An ACK to a listener that may return a cookie we sent (RFC 4987 §3.6)."""
        if lst.last_cookie is None or now - lst.last_cookie > 2 * cookies.PERIOD:
            return False
        client_isn = (seg.seq - 1) & 0xFFFFFFFF
        cookie = (seg.ack - 1) & 0xFFFFFFFF
        mss = self._cookies.check(dst, seg.dst_port, src, seg.src_port, client_isn,
                                  cookie, now, v6=len(src) == 16)
        if mss is None:
            self.stats["syncookies_rejected"] += 1
            self._trace_cookie(now, dst, src, seg, "rejected")
            return False
        if len(lst.accept_queue) >= lst.backlog or len(self._conns) >= self.max_connections:
            self._count_drop(now, "accept_queue_full")
            return True
        wscale, sack, ecn = (cookies.decode_options(seg.tsecr & cookies.TS_MASK)
                             if seg.tsecr else (None, False, False))
        conn = Connection.from_cookie(seg, dst, src, iss=cookie, mss=mss,
                                      wscale=wscale, sack=sack, ecn=ecn, now=now,
                                      config=self.family_config(lst.config, src),
                                      events=self._events,
                                      tracer=self.tracer, wake=self._wake,
                                      ts_offset=self._ts_offset(dst, src))
        self.stats["syncookies_validated"] += 1
        self._trace_cookie(now, dst, src, seg, "validated")
        self._conns[(src, seg.src_port, seg.dst_port, dst)] = conn
        lst.accept_queue.append(conn)
        conn.receive(seg, now)
        self._dirty[conn] = None
        return True

    def _trace_cookie(self, now: float, local: bytes, src: bytes, seg: Segment,
                      action: Literal["sent", "validated", "rejected"]) -> None:
        if self.tracer is not None:
            rec: SyncookieRecord = {
                "t": now, "ev": "syncookie", "action": action, "concept": "C27",
                "conn": _conn_name(local, seg.dst_port, src, seg.src_port)}
            self.tracer(rec)

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

    def _send_rst_for(self, src: bytes, dst: bytes, seg: Segment, now: float,
                      why: str) -> None:
        if seg.flags & ACK:
            rst = Segment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = Segment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & 0xFFFFFFFF,
                          RST | ACK, 0)
        self.stats["rst_sent"] += 1
        if self.tracer is not None:
            name = _conn_name(dst, seg.dst_port, src, seg.src_port)
            rec: SegRecord = {
                "t": now, "ev": "seg", "dir": "out", "conn": name, "flags": rst.flags,
                "seq": rst.seq, "ack": rst.ack, "len": 0, "win": 0, "mss": None,
                "why": why, "state": "CLOSED", "iss": None, "irs": None}
            self.tracer(rec)
        self._emit_tcp(dst, src, rst)

    def _emit_ip(self, packet: bytes) -> None:
        """Queue a finished IP packet (checksums complete)."""
        self._out.append(PLAIN_HEADER + packet if self.offload else packet)

    def _emit_tcp(self, src: bytes, dst: bytes, seg: Segment) -> None:
        """Queue a stack-made TCP segment (a SYN-ACK cookie, a RST): never segmented."""
        if self.offload:
            self._out.append(encode_ipv4_tcp_offload(src, dst, seg, 65535))
        elif len(src) == 4:
            self._out.append(encode_ipv4_tcp(src, dst, seg))
        else:
            self._out.append(encode_ipv6_tcp(src, dst, seg))

    def _ts_offset(self, local: bytes, remote: bytes) -> int:
        digest = hashlib.blake2s(local + remote, key=self._ts_key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def _count_drop(self, now: float, reason: str) -> None:
        self.stats["drop_" + reason] += 1
        if self.tracer is not None:
            rec: DropRecord = {"t": now, "ev": "drop", "conn": None, "reason": reason,
                               "concept": ""}
            self.tracer(rec)

    # ------------------------------------------------------------ packet output
    def packets_to_send(self, now: float) -> list[bytes]:
        """Run every connection that has work and return the packets to transmit."""
        return self._drain(now, False)  # all whole

    def packet_vectors(self, now: float) -> list[OutPacket]:
        """As :meth:`packets_to_send`, but a packet carrying data comes as ``(headers,
        payload)``, the payload a view of the send buffer, for ``os.writev``: the
        payload is never copied on its way to the link."""
        return self._drain(now, True)

    def segments_to_send(self, now: float) -> list[bytes | tuple[bytes, bytes, Segment]]:
        """As :meth:`packets_to_send`, but each connection's segment comes unencoded, as
        ``(source, destination, segment)``; packets the stack itself made (resets, ICMP)
        stay bytes.  For the simulator's ``segments`` mode; a stack with ``offload``
        gives only bytes (their virtio-net headers)."""
        return self._drain(now, None)

    def _drain(self, now: float, vectored: bool | None) -> list[Any]:
        """Encode every dirty connection's segments; ``vectored`` None leaves them
        unencoded, as ``(src, dst, seg)``."""
        out: list[Any] = self._out
        if not self._dirty:
            if not out:
                return []
            self._out = []
            return out
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                segs = conn.segments_to_send(now)
                src = conn.local_ip
                dst = conn.remote_ip
                if vectored is None and not self.offload:
                    for seg in segs:
                        out.append((src, dst, seg))
                elif self.offload:
                    limit = conn.max_wire_segment
                    for seg in segs:
                        if vectored and seg.payload:
                            out.append(encode_ipv4_tcp_offload_parts(src, dst, seg, limit))
                        else:
                            out.append(encode_ipv4_tcp_offload(src, dst, seg, limit))
                elif len(src) == 4:
                    for seg in segs:
                        if vectored and seg.payload:
                            out.append(encode_ipv4_tcp_parts(src, dst, seg))
                        else:
                            out.append(encode_ipv4_tcp(src, dst, seg))
                else:
                    for seg in segs:
                        if vectored and seg.payload:
                            out.append(encode_ipv6_tcp_parts(src, dst, seg))
                        else:
                            out.append(encode_ipv6_tcp(src, dst, seg))
                self.stats["segs_out"] += len(segs)
                self._after_activity(conn)
        self._out = []
        return out

    def _settle_embryonic(self, conn: Connection, lst: Listener) -> None:
        """A half-open connection left SYN-RECEIVED: queue it for accept() at once."""
        st = conn.state
        if st is State.SYN_RECEIVED:
            return
        del self._embryonic[conn]
        lst.half_open -= 1
        if st in SYNCHRONIZED and not lst.closed:
            lst.accept_queue.append(conn)

    def _after_activity(self, conn: Connection) -> None:
        st = conn.state
        lst = self._embryonic.get(conn)
        if lst is not None:
            self._settle_embryonic(conn, lst)
        if st is State.CLOSED:
            self._remove(conn)
            return
        if st is State.TIME_WAIT and conn not in self._time_wait:
            self._time_wait[conn] = None
            if len(self._time_wait) > self.max_time_wait:
                # Too many TIME-WAIT entries: recycle the oldest (as Linux does when
                # tcp_max_tw_buckets is reached), counted.
                oldest = next(iter(self._time_wait))
                self.stats["time_wait_recycled"] += 1
                self._remove(oldest)
                oldest.abort(why="TIME-WAIT table full: oldest entry recycled")
        self._schedule(conn, conn.next_timer())

    def _schedule(self, conn: Connection, t: float | None) -> None:
        old = self._deadline.get(conn)
        if old is not None:
            if old[0] == t:
                return
            old[2] = None
            self._stale += 1
        if t is None:
            self._deadline.pop(conn, None)
        else:
            entry = [t, next(self._counter), conn]
            self._deadline[conn] = entry
            heapq.heappush(self._heap, entry)
        if self._stale > len(self._deadline) + 64:
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop stale heap entries: a deadline that moved or a connection that is gone
        would otherwise stay until its old time comes, which an adversary can make far
        away (keepalive: 2 h).  Amortised O(1): it runs after as many stale entries as
        live ones."""
        self._heap = [e for e in self._heap if e[2] is not None]
        heapq.heapify(self._heap)
        self._stale = 0

    def _remove(self, conn: Connection) -> None:
        self._time_wait.pop(conn, None)
        key = (conn.remote_ip, conn.remote_port, conn.local_port, conn.local_ip)
        if self._conns.get(key) is conn:
            del self._conns[key]
        if conn in self._deadline:
            self._schedule(conn, None)
        lst = self._embryonic.pop(conn, None)
        if lst is not None:
            lst.half_open -= 1

    def _wake(self, conn: Connection) -> None:
        self._dirty[conn] = None

    # ------------------------------------------------------------------ timers
    def next_timer(self) -> float | None:
        """Earliest deadline of any connection."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        """Fire the timers of every connection whose deadline has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, conn = heapq.heappop(heap)
            if conn is None:
                self._stale -= 1
                continue
            del self._deadline[conn]
            conn.handle_timer(now)
            self._dirty[conn] = None
            lst = self._embryonic.get(conn)
            if lst is not None:
                self._settle_embryonic(conn, lst)

    # ------------------------------------------------------------------ helpers
    def _ephemeral_port(self, rip: bytes, rport: int, lip: bytes) -> int:
        """A random free port (RFC 6056 §3.3.1 simple randomisation) of
        :attr:`ephemeral_ports`."""
        ports = self.ephemeral_ports
        span = len(ports)
        start = self._rng.randrange(span)
        for i in range(span):
            p = ports[(start + i) % span]
            if (rip, rport, p, lip) not in self._conns and p not in self._listeners:
                return p
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port for this destination")

    def _free_listen_port(self) -> int:
        ports = self.ephemeral_ports
        span = len(ports)
        start = self._rng.randrange(span)
        used = {key[2] for key in self._conns}
        for i in range(span):
            p = ports[(start + i) % span]
            if p not in self._listeners and p not in used:
                return p
        raise OSError(errno.EADDRINUSE, "no free port to listen on")

    def _close_listener(self, lst: Listener) -> None:
        if lst.closed:
            return
        lst.closed = True
        self._listeners.pop(lst.port, None)
        while lst.accept_queue:
            lst.accept_queue.popleft().abort(why="listener closed before accept")
        for conn, owner in list(self._embryonic.items()):
            if owner is lst:
                conn.abort(why="listener closed")

    def info(self) -> dict[str, Any]:
        """Counters and table sizes."""
        states = Counter(c.state.value for c in self._conns.values())
        return {"connections": len(self._conns), "listeners": sorted(self._listeners),
                "states": dict(states), **self.stats}


def _addr(a: str | bytes) -> bytes:
    """An address of either family from text or bytes; ``ValueError`` otherwise."""
    b = addr_to_bytes(a) if isinstance(a, str) else bytes(a)
    if len(b) not in (4, 16):
        raise ValueError(f"an address is 4 (IPv4) or 16 (IPv6) bytes, got {len(b)}")
    return b


def _conn_name(lip: bytes, lport: int, rip: bytes, rport: int) -> str:
    """A connection's name as the core spells it: ``local>remote``."""
    return f"{endpoint_str(lip, lport)}>{endpoint_str(rip, rport)}"


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


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")


__all__ = ["ACK", "FIN", "Listener", "Stack"]
