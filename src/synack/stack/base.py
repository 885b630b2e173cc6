"""What the parts of :class:`~synack.stack.Stack` share: its tables (declared here,
assigned in ``Stack.__init__``), the queue of packets it makes itself, counted drops,
and the names and types used across the package."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from ..tcp.config import TcpConfig
from ..tcp.connection import Connection, Tracer
from ..tcp.cookies import SynCookies
from ..tcp.events import Event
from ..tcp.isn import IsnSource
from ..trace.schema import DropRecord
from ..wire.checksum import BytesLike
from ..wire.ipv6 import addr_to_bytes, endpoint_str
from ..wire.packet import encode_ipv4_tcp, encode_ipv6_tcp
from ..wire.segment import Segment
from ..wire.vnet import PLAIN_HEADER, encode_ipv4_tcp_offload

if TYPE_CHECKING:
    from ..wire.ipv6 import IPv6Header
    from .listeners import Listener

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65535  # RFC 6335 §6 dynamic ports

Key = tuple[bytes, int, int, bytes]  # (remote ip, remote port, local port, local ip)
OutPacket = bytes | tuple[bytes, BytesLike]
"""A packet to transmit: whole, or (headers, payload) for a gathering write."""

UNSPECIFIED6 = bytes(16)


class StackBase:
    """The state of a stack and the helpers every part of it uses."""

    address: bytes
    addresses: list[bytes]
    _local: set[bytes]
    _mtu: int
    _v6_configs: dict[int, tuple[TcpConfig, TcpConfig]]
    config: TcpConfig
    offload: bool
    fast_path: bool
    _isn: IsnSource
    ephemeral_ports: range
    _rng: random.Random
    tracer: Tracer | None
    max_half_open: int
    syncookies: bool
    max_connections: int
    max_time_wait: int
    _cookies: SynCookies
    _ts_key: bytes
    _time_wait: dict[Connection, None]
    answer_ping: bool
    _icmp_rate: float
    _icmp_tokens: float
    _icmp_last: float
    _conns: dict[Key, Connection]
    _listeners: dict[tuple[int, bytes], Listener]  # (port, local address or wildcard)
    _listen_ports: Counter[int]  # listeners per port
    _embryonic: dict[Connection, Listener]
    _events: deque[Event]
    pending_events: deque[Event]
    _dirty: dict[Connection, None]
    _heap: list[list[Any]]
    _deadline: dict[Connection, list[Any]]
    _stale: int
    _counter: Any  # itertools.count
    _out: list[OutPacket]
    stats: Counter[str]

    if TYPE_CHECKING:  # defined by the other parts of Stack

        def family_config(self, cfg: TcpConfig, remote: bytes) -> TcpConfig: ...
        def _remove(self, conn: Connection) -> None: ...
        def _send_rst_for(
            self, src: bytes, dst: bytes, seg: Segment, now: float, why: str
        ) -> None: ...
        def _schedule(self, conn: Connection, t: float | None) -> None: ...
        def _close_listener(self, lst: Listener) -> None: ...
        def _rebind_listener(self, lst: Listener, families: tuple[int, ...]) -> None: ...
        def _listener_for(self, dst: bytes, port: int) -> Listener | None: ...
        def _free_listen_port(self) -> int: ...
        def _settle_embryonic(self, conn: Connection, lst: Listener) -> None: ...
        def _reuse_time_wait(self, conn: Connection, seg: Segment) -> bool: ...
        def _listen_input(
            self, lst: Listener, src: bytes, dst: bytes, seg: Segment, now: float
        ) -> None: ...
        def _receive_other(self, packet: BytesLike, now: float) -> None: ...
        def _receive_icmp6(self, hdr: IPv6Header, view: memoryview, now: float) -> None: ...
        def _param_problem(
            self, src: bytes, dst: bytes, code: int, pointer: int, packet: BytesLike, now: float
        ) -> None: ...

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
            rec: DropRecord = {
                "t": now,
                "ev": "drop",
                "conn": None,
                "reason": reason,
                "concept": "",
            }
            self.tracer(rec)

    def _wake(self, conn: Connection) -> None:
        self._dirty[conn] = None


def to_addr(a: str | bytes) -> bytes:
    """An address of either family from text or bytes; ``ValueError`` otherwise."""
    b = addr_to_bytes(a) if isinstance(a, str) else bytes(a)
    if len(b) not in (4, 16):
        raise ValueError(f"an address is 4 (IPv4) or 16 (IPv6) bytes, got {len(b)}")
    return b


def conn_name(lip: bytes, lport: int, rip: bytes, rport: int) -> str:
    """A connection's name as the core spells it: ``local>remote``."""
    return f"{endpoint_str(lip, lport)}>{endpoint_str(rip, rport)}"
