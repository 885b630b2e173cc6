"""A client and a server on the simulated network, ready to script.

:class:`Scenario` wires two :class:`~synack.stack.Stack` objects to a seeded
:class:`~synack.sim.Network`, records the structured trace of both, and logs
every packet the network sends, delivers or drops (decoded).  Tests, the demo
and the guided labs are built on it: a scenario is a few lines that say what
happens (lose the first SYN-ACK, close from the server, reconnect...) and the
record says what TCP did about it, at exact virtual times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..sim import Network, PathConfig
from ..stack import Listener, Stack
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.isn import IsnSource
from ..trace.schema import NetDropRecord, NetInjectRecord, TraceRecord
from ..wire.errors import WireError
from ..wire.ipv4 import ip_to_bytes, ip_to_str
from ..wire.packet import decode_ip_tcp
from ..wire.segment import ACK, FIN, RST, SYN, Segment
from .apps import Dispatcher, Endpoint

if TYPE_CHECKING:
    from ..trace.capture import CaptureWriter, NetworkCapture

CLIENT_IP = "10.0.0.1"
SERVER_IP = "10.0.0.2"
#: The IPv6 pair (``Scenario(ipv6=True)``), from the documentation prefix (RFC 3849).
CLIENT_IP6 = "2001:db8::1"
SERVER_IP6 = "2001:db8::2"


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One packet event seen by the network: kind is send/deliver/drop/duplicate/corrupt."""

    t: float
    kind: str
    src: str
    dst: str
    seg: Segment | None
    reason: str | None

    @property
    def flags(self) -> int:
        return self.seg.flags if self.seg is not None else 0


def is_syn(seg: Segment) -> bool:
    return bool(seg.flags & SYN) and not seg.flags & ACK


def is_synack(seg: Segment) -> bool:
    return seg.flags & (SYN | ACK) == SYN | ACK


def is_fin(seg: Segment) -> bool:
    return bool(seg.flags & FIN)


def is_rst(seg: Segment) -> bool:
    return bool(seg.flags & RST)


def is_pure_ack(seg: Segment) -> bool:
    return seg.flags & (SYN | FIN | RST) == 0 and bool(seg.flags & ACK) and not seg.payload


def has_data(seg: Segment) -> bool:
    return bool(seg.payload)


class Scenario:
    """Two stacks (client 10.0.0.1, server 10.0.0.2) on one simulated link; with
    ``ipv6=True`` they are 2001:db8::1 and 2001:db8::2 and every packet is IPv6."""

    def __init__(
        self,
        seed: int = 0,
        *,
        path: PathConfig | None = None,
        config: TcpConfig | None = None,
        client_config: TcpConfig | None = None,
        server_config: TcpConfig | None = None,
        client_isn: IsnSource | None = None,
        server_isn: IsnSource | None = None,
        record_wire: bool = True,
        ipv6: bool = False,
        segments: bool = False,
    ) -> None:
        """``segments=True`` runs the network in its segments mode (see
        :class:`~synack.sim.Network`): the same run, faster; with ``record_wire`` (a
        tap) every packet is still encoded."""
        self.client_ip, self.server_ip = (
            (CLIENT_IP6, SERVER_IP6) if ipv6 else (CLIENT_IP, SERVER_IP)
        )
        self.net = Network(seed=seed, segments=segments)
        self.trace: list[TraceRecord] = []
        self.wire: list[WireEvent] = []
        base = config or TcpConfig()
        self.client = Stack(
            self.client_ip,
            config=client_config or base,
            isn=client_isn,
            isn_secret=_secret(seed, 1),
            seed=seed * 2 + 1,
            tracer=self.trace.append,
        )
        self.server = Stack(
            self.server_ip,
            config=server_config or base,
            isn=server_isn,
            isn_secret=_secret(seed, 2),
            seed=seed * 2 + 2,
            tracer=self.trace.append,
        )
        self.net.attach(self.client)
        self.net.attach(self.server)
        self.net.set_link(self.client_ip, self.server_ip, path or PathConfig(delay=0.05))
        self.client_apps = Dispatcher(self.client)
        self.server_apps = Dispatcher(self.server)
        self.net.add_process(self.client_apps)
        self.net.add_process(self.server_apps)
        if record_wire:
            self.net.add_tap(self._tap)

    # ------------------------------------------------------------ scripting
    @property
    def now(self) -> float:
        return self.net.now

    def listen(
        self,
        port: int = 80,
        payload: bytes = b"",
        *,
        backlog: int = 128,
        factory: Callable[[Connection], Endpoint] | None = None,
        **endpoint_kw: Any,
    ) -> Listener:
        """Listen on the server; each accepted connection gets an :class:`Endpoint`."""
        lst = self.server.listen(port, backlog)
        self.server_apps.serve(lst, factory or (lambda c: Endpoint(c, payload, **endpoint_kw)))
        return lst

    def connect(
        self,
        port: int = 80,
        payload: bytes = b"",
        *,
        local_port: int | None = None,
        **endpoint_kw: Any,
    ) -> Endpoint:
        """Open a client connection driven by an :class:`Endpoint`."""
        conn = self.client.connect(self.server_ip, port, now=self.now, local_port=local_port)
        ep = self.client_apps.add(Endpoint(conn, payload, **endpoint_kw), self.now)
        self.net.kick()
        return ep

    @property
    def server_endpoints(self) -> list[Endpoint]:
        return list(self.server_apps.endpoints.values())

    @property
    def server_endpoint(self) -> Endpoint:
        eps = self.server_endpoints
        if len(eps) != 1:
            raise LookupError(f"expected one accepted connection, have {len(eps)}")
        return eps[0]

    def run(
        self,
        until: float | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        max_events: int = 5_000_000,
    ) -> float:
        return self.net.run(until, stop=stop, max_events=max_events)

    def run_for(self, duration: float, **kw: Any) -> float:
        return self.run(self.now + duration, **kw)

    def drop_next(
        self, predicate: Callable[[Segment], bool], count: int = 1, *, src: str | None = None
    ) -> None:
        """Drop the next ``count`` packets whose decoded segment matches ``predicate``."""
        want = None if src is None else ip_to_bytes(src)

        def match(packet: bytes) -> bool:
            if want is not None and _src(packet) != want:
                return False
            seg = _decode(packet)
            return seg is not None and predicate(seg)

        self.net.drop_next(match, count)

    def inject(self, packet: bytes, why: str = "") -> None:
        """Put a raw packet on the network now, as if from nowhere, and trace it.

        The trace gets a ``net_inject`` record (docs/trace.md) so that explain,
        diagrams and captures can say that no connection sent it (an old
        duplicate, a stray segment).
        """
        seg = _decode(packet)
        rec: NetInjectRecord = {
            "t": self.now,
            "ev": "net_inject",
            "conn": None,
            "why": why,
            "src": ip_to_str(_src(packet)),
            "dst": ip_to_str(_dst(packet)),
        }
        if seg is not None:
            rec.update(
                {
                    "sport": seg.src_port,
                    "dport": seg.dst_port,
                    "flags": seg.flags,
                    "seq": seg.seq,
                    "ack": seg.ack,
                    "len": len(seg.payload),
                    "win": seg.window,
                }
            )
        self.trace.append(rec)
        self.net.inject(packet)

    def capture(self, dest: str | Path | CaptureWriter, *, point: str = "send") -> NetworkCapture:
        """Record every packet into a pcap/pcapng file (by suffix) or a writer, with
        synack's comments; call ``.close()`` on the result when the run is over."""
        from ..trace.capture import NetworkCapture, open_capture

        writer = open_capture(dest) if isinstance(dest, str | Path) else dest
        cap = NetworkCapture(writer, self.trace, point=point, local=())
        self.net.add_tap(cap)
        return cap

    # ------------------------------------------------------------- reading
    def states(self, conn: Connection | str) -> list[str]:
        """The state sequence a connection went through, from the trace."""
        name = conn if isinstance(conn, str) else conn.name
        out: list[str] = []
        for r in self.trace:
            if r["ev"] == "state" and r["conn"] == name:
                if not out:
                    out.append(r["old"])
                out.append(r["new"])
        return out

    def sent(
        self, src: str | None = None, predicate: Callable[[Segment], bool] | None = None
    ) -> list[WireEvent]:
        """Packets put on the wire (kind "send"), optionally filtered."""
        return [
            w
            for w in self.wire
            if w.kind == "send"
            and w.seg is not None
            and (src is None or w.src == src)
            and (predicate is None or predicate(w.seg))
        ]

    def records(self, ev: str, **match: Any) -> list[TraceRecord]:
        """Trace records of one kind whose fields equal ``match``."""
        return [
            r for r in self.trace if r["ev"] == ev and all(r.get(k) == v for k, v in match.items())
        ]

    def _tap(
        self, now: float, kind: str, src: bytes, dst: bytes, packet: bytes, reason: str | None
    ) -> None:
        self.wire.append(
            WireEvent(now, kind, ip_to_str(src), ip_to_str(dst), _decode(packet), reason)
        )
        # a drop always has its reason (sim.path); benchmarks set trace to None
        if kind == "drop" and reason is not None and self.trace is not None:
            seg = _decode(packet)
            rec: NetDropRecord = {
                "t": now,
                "ev": "net_drop",
                "conn": None,
                "reason": reason,
                "src": ip_to_str(src),
                "dst": ip_to_str(dst),
                "flags": seg.flags if seg else None,
                "seq": seg.seq if seg else None,
                "len": len(seg.payload) if seg else None,
                "sport": seg.src_port if seg else None,
                "dport": seg.dst_port if seg else None,
                "ack": seg.ack if seg else None,
                "win": seg.window if seg else None,
            }
            self.trace.append(rec)


def _decode(packet: bytes) -> Segment | None:
    try:
        return decode_ip_tcp(packet)[2]
    except WireError:
        return None


def _src(packet: bytes) -> bytes:
    """The source address of an IPv4 or IPv6 packet (RFC 791 §3.1, RFC 8200 §3)."""
    return packet[8:24] if packet[0] >> 4 == 6 else packet[12:16]


def _dst(packet: bytes) -> bytes:
    return packet[24:40] if packet[0] >> 4 == 6 else packet[16:20]


def _secret(seed: int, who: int) -> bytes:
    return (seed * 7919 + who).to_bytes(8, "big", signed=False)
