"""A TCP/IPv4 host: demultiplexing, listeners, ports, resets for strangers.

The stack is sans-IO like the connections it holds: raw IPv4 packets go in
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
from typing import Any

from . import seq
from .tcp import cookies
from .tcp.config import TcpConfig
from .tcp.connection import Connection, Tracer
from .tcp.cookies import SynCookies
from .tcp.events import Event
from .tcp.isn import IsnSource, Rfc6528Isn
from .tcp.states import SYNCHRONIZED, State
from .wire import icmp
from .wire.checksum import FOLD_MIN, BytesLike, word_sum
from .wire.errors import WireError
from .wire.ipv4 import PROTO_ICMP, PROTO_TCP, ip_to_bytes, ip_to_str, parse_ipv4_packet
from .wire.packet import decode_ipv4_tcp, encode_ipv4, encode_ipv4_tcp, encode_ipv4_tcp_parts
from .wire.segment import ACK, FIN, PSH, RST, SYN, Segment
from .wire.vnet import (
    PLAIN_HEADER,
    VNET_HDR_LEN,
    encode_ipv4_tcp_offload,
    encode_ipv4_tcp_offload_parts,
    parse_vnet_header,
)

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65535  # RFC 6335 §6 dynamic ports

Key = tuple[bytes, int, int]  # (remote ip, remote port, local port)
OutPacket = bytes | tuple[bytes, BytesLike]
"""A packet to transmit: whole, or (headers, payload) for a gathering write."""

# The common shape of an arriving packet, for demultiplexing on raw bytes: an
# option-less IPv4 header (RFC 791 §3.1) and a TCP header (RFC 9293 §3.1),
# optionally followed by "nop, nop, timestamps" (RFC 7323 Appendix A).
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_TS_BLOCK = struct.Struct("!III")
_TS_WORD = 0x0101080A
_S_TIME_WAIT = State.TIME_WAIT


class Listener:
    """A passive open on one port with a bounded accept queue (the backlog)."""

    __slots__ = ("_stack", "accept_queue", "backlog", "closed", "config", "half_open",
                 "last_cookie", "port")

    def __init__(self, stack: Stack, port: int, backlog: int, config: TcpConfig) -> None:
        self._stack = stack
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
    """One IPv4 address's worth of TCP."""

    def __init__(
        self,
        address: str | bytes,
        *,
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
        off changes nothing on the wire, only the cost."""
        self.address = ip_to_bytes(address) if isinstance(address, str) else bytes(address)
        if len(self.address) != 4:
            raise ValueError("address must be an IPv4 address")
        cfg = config or TcpConfig()
        if mtu is not None:
            if not 128 <= mtu <= 65535:
                raise ValueError(f"mtu must be in 128..65535, got {mtu}")
            cfg = cfg.replace(mss=min(cfg.mss, mtu - 40))
        if max_segment_payload is not None:
            cfg = cfg.replace(max_segment_payload=max_segment_payload)
        self.config = cfg
        self.offload = offload
        self.fast_path = fast_path
        self._addr_sum = int.from_bytes(self.address, "big") + PROTO_TCP
        self._isn: IsnSource = isn or Rfc6528Isn(isn_secret)
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
    def listen(self, port: int, backlog: int = 128, *, config: TcpConfig | None = None
               ) -> Listener:
        """Passive OPEN on ``port`` (RFC 9293 §3.10.1); port 0 picks a free one."""
        if port == 0:
            port = self._free_listen_port()
        _check_port(port)
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if port in self._listeners:
            raise OSError(errno.EADDRINUSE, f"port {port} is already listening")
        lst = Listener(self, port, backlog, config or self.config)
        self._listeners[port] = lst
        return lst

    def connect(self, remote: str | bytes, port: int, *, now: float,
                local_port: int | None = None, config: TcpConfig | None = None) -> Connection:
        """Active OPEN to ``remote:port``: returns a connection in SYN-SENT (C6)."""
        rip = ip_to_bytes(remote) if isinstance(remote, str) else bytes(remote)
        _check_port(port)
        if len(self._conns) >= self.max_connections:
            raise OSError(errno.ENOBUFS, f"connection table full ({self.max_connections})")
        if local_port is None:
            local_port = self._ephemeral_port(rip, port)
        else:
            _check_port(local_port)
            if (rip, port, local_port) in self._conns:
                raise OSError(errno.EADDRINUSE,
                              f"{ip_to_str(self.address)}:{local_port} -> "
                              f"{ip_to_str(rip)}:{port} is already in use")
        iss = self._isn(self.address, local_port, rip, port, now)
        conn = Connection.open_active(self.address, local_port, rip, port, iss=iss, now=now,
                                      config=config or self.config, events=self._events,
                                      tracer=self.tracer, wake=self._wake,
                                      ts_offset=self._ts_offset(rip))
        self._conns[(rip, port, local_port)] = conn
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

    def find(self, remote: str | bytes, remote_port: int, local_port: int) -> Connection | None:
        rip = ip_to_bytes(remote) if isinstance(remote, str) else bytes(remote)
        return self._conns.get((rip, remote_port, local_port))

    # ------------------------------------------------------------- packet input
    def receive_packet(self, packet: bytes, now: float) -> None:
        """Take one IPv4 packet from the link (after its virtio-net header if ``offload``)."""
        if not self.offload:
            self._receive_ip(packet, now, True)
            return
        try:
            vnet = parse_vnet_header(packet)
        except ValueError:
            self._count_drop(now, "vnet_header_short")
            return
        self._receive_ip(memoryview(packet)[VNET_HDR_LEN:], now, not vnet.checksum_trusted)

    def _receive_ip(self, packet: BytesLike, now: float, verify: bool) -> None:
        if self.fast_path and self._receive_common(packet, now, verify):
            return
        try:
            src, dst, seg = decode_ipv4_tcp(packet, verify_checksum=verify)
        except WireError as exc:
            if exc.reason == "ip_not_tcp":
                self._receive_other(packet, now)
            else:
                self._count_drop(now, exc.reason)
            return
        if dst != self.address:
            self._count_drop(now, "ip_not_for_us")
            return
        self.stats["segs_in"] += 1
        key = (src, seg.src_port, seg.dst_port)
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
        if lst is not None:
            self._listen_input(lst, src, seg, now)
        else:
            self._reset_stranger(src, seg, now)

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
                or total < 20 + hl or dst != self.address or (hl != 20 and hl != 32)):
            return False
        conn = self._conns.get((src, sport, dport))
        if conn is None or conn.state is _S_TIME_WAIT or conn in self._embryonic:
            return False  # a listener's or TIME-WAIT's segment: the general path
        tsval = tsecr = None
        if hl == 32:
            word, tsval, tsecr = _TS_BLOCK.unpack_from(packet, 40)
            if word != _TS_WORD:
                return False  # another option (a SACK block): the general decoder
        view = memoryview(packet)
        if verify:
            # RFC 1071 sums as in wire.checksum: a valid header or segment sums to
            # 0 mod 0xFFFF (with the pseudo-header, RFC 9293 §3.1, for TCP).
            if int.from_bytes(view[:20], "big") % 0xFFFF:
                return False
            tlen = total - 20
            s = (int.from_bytes(view[20:total], "big") % 0xFFFF if tlen <= FOLD_MIN
                 else word_sum(view[20:total]))
            if tlen & 1:
                s <<= 8
            if (s + int.from_bytes(src, "big") + self._addr_sum + tlen) % 0xFFFF:
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

    def _receive_other(self, packet: BytesLike, now: float) -> None:
        """Non-TCP IPv4: ICMP (RFC 792) is handled; other protocols get an ICMP
        protocol unreachable (RFC 1122 §3.2.2.1) and a counted drop."""
        try:
            hdr, payload = parse_ipv4_packet(packet)
        except WireError as exc:  # pragma: no cover - decode_ipv4_tcp checked it already
            self._count_drop(now, exc.reason)
            return
        if hdr.dst != self.address:
            self._count_drop(now, "ip_not_for_us")
            return
        if hdr.proto != PROTO_ICMP:
            self._count_drop(now, "ip_unsupported_protocol")
            self._send_icmp_error(hdr.src, icmp.UNREACH_PROTOCOL, packet, now)
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
            self._emit_ip(encode_ipv4(self.address, hdr.src, PROTO_ICMP,
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
        if quote.proto != PROTO_TCP or quote.src != self.address:
            self._count_drop(now, "icmp_quote_not_ours")
            return
        conn = self._conns.get((quote.dst, quote.dport, quote.sport))
        if conn is None:
            self._count_drop(now, "icmp_no_connection")
            return
        if conn.icmp_unreachable(quote.code, quote.seq, now, next_hop_mtu=quote.next_hop_mtu):
            self.stats["icmp_unreachable_accepted"] += 1
        else:
            self.stats["drop_icmp_out_of_window"] += 1
        self._dirty[conn] = None

    def _send_icmp_error(self, dst: bytes, code: int, packet: BytesLike, now: float) -> None:
        """Destination unreachable, rate limited by a token bucket (RFC 1812 §4.3.2.8)."""
        self._icmp_tokens = min(self._icmp_rate,
                                self._icmp_tokens + (now - self._icmp_last) * self._icmp_rate)
        self._icmp_last = now
        if self._icmp_tokens < 1:
            self.stats["icmp_errors_rate_limited"] += 1
            return
        self._icmp_tokens -= 1
        self.stats["icmp_errors_sent"] += 1
        body = icmp.build_dest_unreachable(code, packet)
        self._emit_ip(encode_ipv4(self.address, dst, PROTO_ICMP, body))

    def _reuse_time_wait(self, conn: Connection, seg: Segment) -> bool:
        """A new SYN may take over a TIME-WAIT 4-tuple (RFC 6191 §2, as Linux allows).

        With timestamps on the old connection and a TSval on the SYN (the listener
        taking timestamps), the TSval decides: newer than TS.Recent is accepted
        whatever the ISN, equal only with a higher ISN, older never (an old
        duplicate).  Otherwise the ISN must be above RCV.NXT (RFC 1122 §4.2.2.13)."""
        if not seg.flags & SYN or seg.flags & (ACK | RST):
            return False
        lst = self._listeners.get(seg.dst_port)
        if lst is None:
            return False
        newer_isn = seq.sub(seg.seq, conn.rcv_nxt) > 0
        if conn.ts_ok and seg.tsval is not None and lst.config.timestamps:
            age = seq.sub(seg.tsval, conn.ts_recent)
            return age > 0 or (age == 0 and newer_isn)
        return newer_isn

    def _listen_input(self, lst: Listener, src: bytes, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.2: a segment for a listener."""
        flags = seg.flags
        if flags & RST:
            self._count_drop(now, "rst_to_listener")
            return
        if flags & ACK:
            if flags & SYN == 0 and self._cookie_ack(lst, src, seg, now):
                return
            self._send_rst_for(src, seg, now, "ACK to a listener with no such connection")
            return
        if not flags & SYN:
            self._count_drop(now, "no_syn_to_listener")
            return
        if len(self._conns) >= self.max_connections:
            self._count_drop(now, "connection_table_full")
            return
        if lst.half_open >= self.max_half_open:
            if self.syncookies:
                self._send_cookie(lst, src, seg, now)
            else:
                self._count_drop(now, "syn_backlog_full")
            return
        iss = self._isn(self.address, seg.dst_port, src, seg.src_port, now)
        conn = Connection.open_passive(seg, self.address, src, iss=iss, now=now,
                                       config=lst.config, events=self._events,
                                       tracer=self.tracer, wake=self._wake,
                                       ts_offset=self._ts_offset(src))
        self._conns[(src, seg.src_port, seg.dst_port)] = conn
        self._embryonic[conn] = lst
        lst.half_open += 1
        self._dirty[conn] = None

    def _send_cookie(self, lst: Listener, src: bytes, syn: Segment, now: float) -> None:
        """Half-open table full: answer with a SYN cookie and keep nothing (RFC 4987)."""
        cfg = lst.config
        cookie, mss = self._cookies.make(self.address, syn.dst_port, src, syn.src_port,
                                         syn.seq, syn.mss or 536, now)
        probe = Connection.open_passive(syn, self.address, src, iss=cookie, now=now,
                                        config=cfg, ts_offset=self._ts_offset(src))
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
        self._trace_cookie(now, src, syn, "sent")
        self._emit_tcp(src, synack)

    def _cookie_ack(self, lst: Listener, src: bytes, seg: Segment, now: float) -> bool:
        """An ACK to a listener that may return a cookie we sent (RFC 4987 §3.6)."""
        if lst.last_cookie is None or now - lst.last_cookie > 2 * cookies.PERIOD:
            return False
        client_isn = (seg.seq - 1) & 0xFFFFFFFF
        cookie = (seg.ack - 1) & 0xFFFFFFFF
        mss = self._cookies.check(self.address, seg.dst_port, src, seg.src_port, client_isn,
                                  cookie, now)
        if mss is None:
            self.stats["syncookies_rejected"] += 1
            self._trace_cookie(now, src, seg, "rejected")
            return False
        if len(lst.accept_queue) >= lst.backlog or len(self._conns) >= self.max_connections:
            self._count_drop(now, "accept_queue_full")
            return True
        wscale, sack, ecn = (cookies.decode_options(seg.tsecr & cookies.TS_MASK)
                             if seg.tsecr else (None, False, False))
        conn = Connection.from_cookie(seg, self.address, src, iss=cookie, mss=mss,
                                      wscale=wscale, sack=sack, ecn=ecn, now=now,
                                      config=lst.config, events=self._events,
                                      tracer=self.tracer, wake=self._wake,
                                      ts_offset=self._ts_offset(src))
        self.stats["syncookies_validated"] += 1
        self._trace_cookie(now, src, seg, "validated")
        self._conns[(src, seg.src_port, seg.dst_port)] = conn
        lst.accept_queue.append(conn)
        conn.receive(seg, now)
        self._dirty[conn] = None
        return True

    def _trace_cookie(self, now: float, src: bytes, seg: Segment, action: str) -> None:
        if self.tracer is not None:
            self.tracer({"t": now, "ev": "syncookie", "action": action, "concept": "C27",
                         "conn": f"{ip_to_str(self.address)}:{seg.dst_port}>"
                                 f"{ip_to_str(src)}:{seg.src_port}"})

    def _reset_stranger(self, src: bytes, seg: Segment, now: float) -> None:
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
        self._send_rst_for(src, seg, now, why)

    def _send_rst_for(self, src: bytes, seg: Segment, now: float, why: str) -> None:
        if seg.flags & ACK:
            rst = Segment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = Segment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & 0xFFFFFFFF,
                          RST | ACK, 0)
        self.stats["rst_sent"] += 1
        if self.tracer is not None:
            name = f"{ip_to_str(self.address)}:{seg.dst_port}>{ip_to_str(src)}:{seg.src_port}"
            self.tracer({"t": now, "ev": "seg", "dir": "out", "conn": name, "flags": rst.flags,
                         "seq": rst.seq, "ack": rst.ack, "len": 0, "win": 0, "mss": None,
                         "why": why, "state": "CLOSED", "iss": None, "irs": None})
        self._emit_tcp(src, rst)

    def _emit_ip(self, packet: bytes) -> None:
        """Queue a finished IP packet (checksums complete)."""
        self._out.append(PLAIN_HEADER + packet if self.offload else packet)

    def _emit_tcp(self, dst: bytes, seg: Segment) -> None:
        """Queue a stack-made TCP segment (a SYN-ACK cookie, a RST): never segmented."""
        if self.offload:
            self._out.append(encode_ipv4_tcp_offload(self.address, dst, seg, 65535))
        else:
            self._out.append(encode_ipv4_tcp(self.address, dst, seg))

    def _ts_offset(self, remote: bytes) -> int:
        digest = hashlib.blake2s(self.address + remote, key=self._ts_key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def _count_drop(self, now: float, reason: str) -> None:
        self.stats["drop_" + reason] += 1
        if self.tracer is not None:
            self.tracer({"t": now, "ev": "drop", "conn": None, "reason": reason, "concept": ""})

    # ------------------------------------------------------------ packet output
    def packets_to_send(self, now: float) -> list[bytes]:
        """Run every connection that has work and return the packets to transmit."""
        return self._drain(now, False)  # type: ignore[return-value]  # all whole

    def packet_vectors(self, now: float) -> list[OutPacket]:
        """As :meth:`packets_to_send`, but a packet carrying data comes as ``(headers,
        payload)``, the payload a view of the send buffer, for ``os.writev``: the
        payload is never copied on its way to the link."""
        return self._drain(now, True)

    def _drain(self, now: float, vectored: bool) -> list[OutPacket]:
        out = self._out
        src = self.address
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                segs = conn.segments_to_send(now)
                dst = conn.remote_ip
                if self.offload:
                    limit = conn.max_wire_segment
                    for seg in segs:
                        if vectored and seg.payload:
                            out.append(encode_ipv4_tcp_offload_parts(src, dst, seg, limit))
                        else:
                            out.append(encode_ipv4_tcp_offload(src, dst, seg, limit))
                else:
                    for seg in segs:
                        if vectored and seg.payload:
                            out.append(encode_ipv4_tcp_parts(src, dst, seg))
                        else:
                            out.append(encode_ipv4_tcp(src, dst, seg))
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
        key = (conn.remote_ip, conn.remote_port, conn.local_port)
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
    def _ephemeral_port(self, rip: bytes, rport: int) -> int:
        """A random free port (RFC 6056 §3.3.1 simple randomisation)."""
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self._rng.randrange(span)
        for i in range(span):
            p = EPHEMERAL_LOW + (start + i) % span
            if (rip, rport, p) not in self._conns and p not in self._listeners:
                return p
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port for this destination")

    def _free_listen_port(self) -> int:
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self._rng.randrange(span)
        used = {key[2] for key in self._conns}
        for i in range(span):
            p = EPHEMERAL_LOW + (start + i) % span
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


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")


__all__ = ["ACK", "FIN", "Listener", "Stack"]
