"""The :class:`Stack`: a TCP host over IPv4 and IPv6, its user API and its output.

The stack is sans-IO like the connections it holds: raw IP packets go in
through :meth:`Stack.receive_packet` and come out of
:meth:`Stack.packets_to_send`; timers are one heap of per-connection
deadlines (:mod:`.timers`).  Anything a user or a peer can get wrong
becomes a clear exception (bad arguments, a port in use) or a counted drop
(malformed packets) in :attr:`Stack.stats`; nothing is swallowed.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import random
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

from ..tcp.config import TcpConfig
from ..tcp.connection import Connection, Tracer
from ..tcp.cookies import SynCookies
from ..tcp.events import Event
from ..tcp.isn import IsnSource, Rfc6528Isn
from ..tcp.states import State
from ..wire.ipv6 import endpoint_str
from ..wire.packet import (
    encode_ipv4_tcp,
    encode_ipv4_tcp_parts,
    encode_ipv6_tcp,
    encode_ipv6_tcp_parts,
)
from ..wire.segment import Segment
from ..wire.vnet import encode_ipv4_tcp_offload, encode_ipv4_tcp_offload_parts
from .base import EPHEMERAL_HIGH, EPHEMERAL_LOW, Key, OutPacket, to_addr
from .demux import DemuxMixin
from .icmp import IcmpMixin
from .listeners import Listener, ListenersMixin
from .ports import PortsMixin, check_port
from .timers import TimersMixin

# (Module names for the states tested per drained connection: State.X goes through
# EnumType's __getattr__ hook, several times slower than a global.)
_S_CLOSED = State.CLOSED
_S_TIME_WAIT = State.TIME_WAIT


class Stack(DemuxMixin, ListenersMixin, IcmpMixin, TimersMixin, PortsMixin):
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
        self.address = to_addr(address)
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
        self.ephemeral_ports = (
            range(EPHEMERAL_LOW, EPHEMERAL_HIGH + 1) if ephemeral_ports is None else ephemeral_ports
        )
        if not self.ephemeral_ports or not (
            self.ephemeral_ports[0] > 0 and self.ephemeral_ports[-1] <= 65535
        ):
            raise ValueError(
                f"ephemeral_ports must be a non-empty range of ports, got {ephemeral_ports!r}"
            )
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
        self._ts_key = (
            hashlib.blake2s(isn_secret, digest_size=16).digest()
            if isn_secret is not None
            else os.urandom(16)
        )
        self._time_wait: dict[Connection, None] = {}  # insertion order = age
        self.answer_ping = answer_ping
        self._icmp_rate = icmp_errors_per_second
        self._icmp_tokens = icmp_errors_per_second
        self._icmp_last = 0.0
        self._conns: dict[Key, Connection] = {}
        self._listeners: dict[tuple[int, bytes], Listener] = {}
        self._listen_ports: Counter[int] = Counter()
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

    def add_address(self, address: str | bytes) -> None:
        """Own another IPv4 or IPv6 address (a host has many, RFC 4291 §2.1)."""
        a = to_addr(address)
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

    def connect(
        self,
        remote: str | bytes,
        port: int,
        *,
        now: float,
        local_port: int | None = None,
        config: TcpConfig | None = None,
        local_ip: str | bytes | None = None,
    ) -> Connection:
        """Active OPEN to ``remote:port`` (IPv4 or IPv6): returns a connection in
        SYN-SENT (C6).  The source is ``local_ip`` or :meth:`source_for` the remote."""
        rip = to_addr(remote)
        lip = self.source_for(rip) if local_ip is None else to_addr(local_ip)
        if lip not in self._local or len(lip) != len(rip):
            raise OSError(
                errno.EADDRNOTAVAIL,
                f"{endpoint_str(lip, 0)[:-2]} cannot reach "
                f"{endpoint_str(rip, 0)[:-2]} from this stack",
            )
        check_port(port)
        if len(self._conns) >= self.max_connections:
            raise OSError(errno.ENOBUFS, f"connection table full ({self.max_connections})")
        if local_port is None:
            local_port = self._ephemeral_port(rip, port, lip)
        else:
            check_port(local_port)
            if (rip, port, local_port, lip) in self._conns:
                raise OSError(
                    errno.EADDRINUSE,
                    f"{endpoint_str(lip, local_port)} -> "
                    f"{endpoint_str(rip, port)} is already in use",
                )
        iss = self._isn(lip, local_port, rip, port, now)
        conn = Connection.open_active(
            lip,
            local_port,
            rip,
            port,
            iss=iss,
            now=now,
            config=self.family_config(config or self.config, rip),
            events=self._events,
            tracer=self.tracer,
            wake=self._wake,
            ts_offset=self._ts_offset(lip, rip),
        )
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

    def find(
        self,
        remote: str | bytes,
        remote_port: int,
        local_port: int,
        local_ip: str | bytes | None = None,
    ) -> Connection | None:
        """The connection of a 4-tuple; the local address defaults to the primary one of
        the remote's family."""
        rip = to_addr(remote)
        try:
            lip = self.source_for(rip) if local_ip is None else to_addr(local_ip)
        except OSError:
            return None
        return self._conns.get((rip, remote_port, local_port, lip))

    # ------------------------------------------------------------ packet output
    def packets_to_send(self, now: float) -> list[bytes]:
        """Run every connection that has work and return the packets to transmit."""
        if not self._dirty and not self._out:
            return []  # idle (the simulator asks every host after every event)
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
        if not self._dirty and not self._out:
            return []  # idle (the simulator asks every host after every event)
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

    def _after_activity(self, conn: Connection) -> None:
        st = conn.state
        lst = self._embryonic.get(conn)
        if lst is not None:
            self._settle_embryonic(conn, lst)
        if st is _S_CLOSED:
            self._remove(conn)
            return
        if st is _S_TIME_WAIT and conn not in self._time_wait:
            self._time_wait[conn] = None
            if len(self._time_wait) > self.max_time_wait:
                # Too many TIME-WAIT entries: recycle the oldest (as Linux does when
                # tcp_max_tw_buckets is reached), counted.
                oldest = next(iter(self._time_wait))
                self.stats["time_wait_recycled"] += 1
                self._remove(oldest)
                oldest.abort(why="TIME-WAIT table full: oldest entry recycled")
        self._schedule(conn, conn.next_timer())

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

    def info(self) -> dict[str, Any]:
        """Counters and table sizes."""
        states = Counter(c.state.value for c in self._conns.values())
        return {
            "connections": len(self._conns),
            "listeners": sorted(self._listen_ports),
            "states": dict(states),
            **self.stats,
        }
