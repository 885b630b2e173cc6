"""The deterministic simulated network that carries raw IPv4 and IPv6 packets between hosts.

Hosts are sans-IO objects (see :class:`Host`).  The network routes each packet
by its destination address (IPv4 bytes 16:20, IPv6 bytes 24:40) through the
:class:`Path` of its
``(source, destination)`` pair, then hands it to the destination host at its
arrival time.  After every event that touches a host (a delivery or a timer)
the network drains that host's output queue and re-arms its one timer.

Everything runs on a virtual :class:`Clock` with one seeded
``random.Random``: the same seed and the same inputs give the same run, packet
for packet.

By default every packet is real bytes: the sender encodes it (checksums
computed), the receiver decodes and verifies it, so every simulated run also
exercises the wire codec.  ``Network(segments=True)`` lets hosts that offer it
(a :class:`~synack.stack.Stack`: ``segments_to_send`` and ``receive_segment``)
hand each other decoded segments instead, skipping encode, checksum and decode
for the common shape of segment; anything a tap, a filter, corruption or ECN
marking must see as bytes is encoded as usual.  The two modes give the same
run, packet for packet (tests/sim/test_sim_segments.py).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any, Protocol

from ..wire.packet import encode_ip_tcp
from ..wire.segment import Segment
from .clock import Clock, EventHandle
from .path import Path, PathConfig

__all__ = ["STAT_KEYS", "Filter", "Host", "Network", "Process", "Tap"]

#: Every counter in :attr:`Network.stats`.
STAT_KEYS = (
    "sent",
    "delivered",
    "dropped_loss",
    "dropped_queue",
    "dropped_no_route",
    "dropped_filter",
    "duplicated",
    "corrupted",
    "reordered",
    "ecn_marked",
)

_NOTE_STAT = {
    "duplicate": "duplicated",
    "corrupt": "corrupted",
    "mark": "ecn_marked",
    "reorder": "reordered",
}

#: ``tap(now, kind, src, dst, packet, reason)``; kind is one of "send",
#: "deliver", "drop", "duplicate", "corrupt", "mark".
Tap = Callable[[float, str, bytes, bytes, bytes, str | None], None]
#: ``filter(now, src, dst, packet) -> True`` drops the packet.
Filter = Callable[[float, bytes, bytes, bytes], bool]
#: ``process(now)`` runs after every processed event.
Process = Callable[[float], None]


class Host(Protocol):
    """What the network needs from an endpoint: a sans-IO IPv4 host."""

    address: bytes

    def receive_packet(self, packet: bytes, now: float) -> None:
        """Accept one raw IPv4 packet arriving at ``now``."""

    def packets_to_send(self, now: float) -> list[bytes]:
        """Drain and return the raw IPv4 packets waiting to go out."""

    def next_timer(self) -> float | None:
        """Absolute virtual time of the earliest deadline, or ``None``."""

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due at ``now``."""


def _addr(address: bytes | str) -> bytes:
    if isinstance(address, str):
        return ipaddress.ip_address(address.strip("[]")).packed
    if not isinstance(address, bytes | bytearray) or len(address) not in (4, 16):
        raise ValueError(f"an address must be 4 bytes (IPv4) or 16 (IPv6), got {address!r}")
    return bytes(address)


class _Wire:
    """A segment in flight in ``segments`` mode: what its packet would decode to, and
    the packet's length (all a path needs to know of it)."""

    __slots__ = ("dst", "seg", "size", "src")

    def __init__(self, src: bytes, dst: bytes, seg: Segment, size: int) -> None:
        self.src = src
        self.dst = dst
        self.seg = seg
        self.size = size

    def __len__(self) -> int:
        return self.size

    def encode(self) -> bytes:
        """The packet the sender would have put on the wire."""
        return encode_ip_tcp(self.src, self.dst, self.seg)


def _ends(packet: bytes) -> tuple[bytes, bytes]:
    """A packet's source and destination addresses, by its version (RFC 791, RFC 8200)."""
    if packet[0] >> 4 == 6:
        return packet[8:24], packet[24:40]
    return packet[12:16], packet[16:20]


class _Slot:
    """An attached host, its single pending timer entry, and whether it has the
    segments-mode methods (``segments_to_send`` and ``receive_segment``)."""

    __slots__ = ("host", "segmented", "timer")

    def __init__(self, host: Host) -> None:
        self.host = host
        self.timer: list[Any] | None = None
        self.segmented = callable(getattr(host, "segments_to_send", None)) and callable(
            getattr(host, "receive_segment", None)
        )


class _DropNext:
    """Filter that drops the next ``remaining`` matching packets, then removes itself."""

    __slots__ = ("_net", "predicate", "remaining")

    def __init__(self, net: Network, predicate: Callable[[bytes], bool], count: int) -> None:
        self._net = net
        self.predicate = predicate
        self.remaining = count

    def __call__(self, now: float, src: bytes, dst: bytes, packet: bytes) -> bool:
        if self.remaining <= 0 or not self.predicate(packet):
            return False
        self.remaining -= 1
        if self.remaining == 0:
            self._net.remove_filter(self)
        return True


class Network:
    """A deterministic packet network between attached hosts.

    ``net.stats`` counts packets by fate (see :data:`STAT_KEYS`); ``delivered``
    includes duplicates, so ``sent + duplicated == delivered + drops`` once
    nothing is in flight.
    """

    def __init__(
        self, seed: int = 0, *, default_path: PathConfig | None = None, segments: bool = False
    ) -> None:
        """``segments=True`` passes decoded segments between hosts that support it
        (see the module docstring): the same run, without the wire codec's cost."""
        self.segments = segments
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._default = default_path if default_path is not None else PathConfig()
        self._paths: dict[bytes, Path[_Slot]] = {}
        self._slots: dict[bytes, _Slot] = {}
        self._order: list[_Slot] = []
        self._taps: tuple[Tap, ...] = ()
        self._filters: tuple[Filter, ...] = ()
        self._processes: tuple[Process, ...] = ()

    @property
    def now(self) -> float:
        """Current virtual time in seconds."""
        return self.clock.now

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Attached hosts in attach order."""
        return tuple(slot.host for slot in self._order)

    # -- topology -------------------------------------------------------

    def attach(self, host: Host) -> None:
        """Attach ``host``; packets to ``host.address`` (and to every address in
        ``host.addresses`` when it has that attribute, IPv4 or IPv6) are delivered to it."""
        addresses = [_addr(host.address)]
        for extra in getattr(host, "addresses", ()):
            if _addr(extra) not in addresses:
                addresses.append(_addr(extra))
        for address in addresses:
            if address in self._slots:
                raise ValueError(f"address {ipaddress.ip_address(address)} is already attached")
        slot = _Slot(host)
        for address in addresses:
            self._slots[address] = slot
        self._order.append(slot)

    def set_path(self, src: bytes | str, dst: bytes | str, cfg: PathConfig) -> None:
        """Use ``cfg`` for packets from ``src`` to ``dst`` (one direction)."""
        key = _addr(src) + _addr(dst)
        path = self._paths.get(key)
        if path is None:
            self._paths[key] = Path(cfg, self.rng, self._arrive, self._note)
        else:
            path.configure(cfg)

    def set_link(self, a: bytes | str, b: bytes | str, cfg: PathConfig) -> None:
        """Use ``cfg`` in both directions between ``a`` and ``b``."""
        self.set_path(a, b, cfg)
        self.set_path(b, a, cfg)

    def path_config(self, src: bytes | str, dst: bytes | str) -> PathConfig:
        """The config currently used from ``src`` to ``dst``."""
        path = self._paths.get(_addr(src) + _addr(dst))
        return self._default if path is None else path.cfg

    def backlog(self, src: bytes | str, dst: bytes | str) -> int:
        """Bytes now in the bottleneck from ``src`` to ``dst`` (0 unless tracked)."""
        path = self._paths.get(_addr(src) + _addr(dst))
        return 0 if path is None else path.backlog(self.clock.now)

    # -- filters, taps, processes, scripted calls ---------------------------

    def add_filter(self, fn: Filter) -> Filter:
        """Drop every packet for which ``fn(now, src, dst, packet)`` is true; return ``fn``."""
        self._filters = (*self._filters, fn)
        return fn

    def remove_filter(self, fn: Filter) -> None:
        """Remove a filter added earlier (no error if absent)."""
        self._filters = tuple(f for f in self._filters if f is not fn)

    def drop_next(self, predicate: Callable[[bytes], bool], count: int = 1) -> Filter:
        """Drop the next ``count`` packets with ``predicate(packet)`` true, then stop."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        return self.add_filter(_DropNext(self, predicate, count))

    def add_tap(self, fn: Tap) -> Tap:
        """Call ``fn(now, kind, src, dst, packet, reason)`` on every event; return ``fn``."""
        self._taps = (*self._taps, fn)
        return fn

    def remove_tap(self, fn: Tap) -> None:
        """Remove a tap added earlier (no error if absent)."""
        self._taps = tuple(t for t in self._taps if t is not fn)

    def add_process(self, fn: Process) -> Process:
        """Call ``fn(now)`` after every processed event, then poll all hosts; return ``fn``."""
        self._processes = (*self._processes, fn)
        self.clock.hook = self._after_event
        return fn

    def remove_process(self, fn: Process) -> None:
        """Remove a process added earlier (no error if absent)."""
        self._processes = tuple(p for p in self._processes if p is not fn)
        if not self._processes:
            self.clock.hook = None

    def call_at(self, at: float, fn: Process) -> EventHandle:
        """Run ``fn(now)`` at virtual time ``at`` (not in the past), then poll all hosts."""
        if not at >= self.clock.now:
            raise ValueError(f"cannot call at {at!r}: it is before now ({self.clock.now!r})")
        return EventHandle(self.clock.push(at, self._scripted, fn))

    def call_later(self, delay: float, fn: Process) -> EventHandle:
        """Run ``fn(now)`` after ``delay`` virtual seconds, then poll all hosts."""
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        return self.call_at(self.clock.now + delay, fn)

    # -- driving ------------------------------------------------------------

    def kick(self) -> None:
        """Drain every host's output and re-arm its timer (call after poking a host)."""
        for slot in self._order:
            self._drain(slot)

    poll_hosts = kick

    def inject(self, packet: bytes) -> None:
        """Send a raw packet into the network now, as if some host had sent it."""
        self._send(packet)

    def run(
        self,
        until: float | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        max_events: int = 10_000_000,
    ) -> float:
        """Poll all hosts, then process events; return the time it stopped.

        It stops, in order of precedence: when ``stop()`` is true (checked
        after the initial poll and after every event; the clock stays put);
        when the next event is later than ``until`` (the clock is then set to
        ``until`` exactly, also if the network went idle before); without
        ``until``, when no event and no host timer is pending (the clock stays
        at the last event).  More than ``max_events`` events raise
        :class:`~synack.sim.clock.SimulationLimit`.
        """
        if until is not None and not until >= self.clock.now:
            raise ValueError(f"until={until!r} is before now ({self.clock.now!r})")
        if self.clock.running:
            raise RuntimeError("Network.run is not re-entrant: called from inside an event")
        self.kick()
        return self.clock.run(until, stop=stop, max_events=max_events)

    def run_for(
        self,
        duration: float,
        *,
        stop: Callable[[], bool] | None = None,
        max_events: int = 10_000_000,
    ) -> float:
        """Run until ``now + duration`` (see :meth:`run`)."""
        if not duration >= 0:
            raise ValueError(f"duration must be >= 0, got {duration!r}")
        return self.run(self.clock.now + duration, stop=stop, max_events=max_events)

    # -- internals ----------------------------------------------------------

    def _drain(self, slot: _Slot) -> None:
        host = slot.host
        now = self.clock.now
        if self.segments and slot.segmented:
            for item in host.segments_to_send(now):  # type: ignore[attr-defined]
                if type(item) is tuple:
                    self._send_segment(*item)
                else:
                    self._send(item)
        else:
            for packet in host.packets_to_send(now):
                self._send(packet)
        when = host.next_timer()
        entry = slot.timer
        if when is None:
            if entry is not None:
                entry[2] = None
                slot.timer = None
            return
        if when < now:
            when = now
        if entry is not None:
            if entry[0] == when:
                return
            entry[2] = None
        slot.timer = self.clock.push(when, self._fire_timer, slot)

    def _fire_timer(self, now: float, slot: _Slot) -> None:
        slot.timer = None
        slot.host.handle_timer(now)
        if not self._processes:  # else processes run first, then every host is drained
            self._drain(slot)

    def _deliver(self, now: float, item: tuple[_Slot, bytes | _Wire]) -> None:
        slot, wire = item
        self.stats["delivered"] += 1
        if type(wire) is _Wire:
            if self._taps or not slot.segmented:
                packet = wire.encode()  # a tap (or a host) that wants the bytes
            else:
                slot.host.receive_segment(  # type: ignore[attr-defined]
                    wire.src, wire.dst, wire.seg, now
                )
                if not self._processes:
                    self._drain(slot)
                return
        else:
            packet = wire  # type: ignore[assignment]
        if self._taps:
            self._emit(now, "deliver", packet, None)
        slot.host.receive_packet(packet, now)
        # With processes (applications) registered, let them react to this event
        # before the host's output is drained, as a real driver would in one
        # wake-up: an ACK then carries the window the application just freed.
        if not self._processes:
            self._drain(slot)

    def _arrive(self, at: float, slot: _Slot, packet: bytes) -> None:
        self.clock.push(at, self._deliver, (slot, packet))

    def _scripted(self, now: float, fn: Process) -> None:
        fn(now)
        self.kick()

    def _after_event(self) -> None:
        now = self.clock.now
        for process in self._processes:
            process(now)
        for slot in self._order:
            self._drain(slot)

    def _send(self, packet: bytes) -> None:
        now = self.clock.now
        stats = self.stats
        stats["sent"] += 1
        if self._taps:
            self._emit(now, "send", packet, None)
        src, dst = _ends(packet)
        if self._filters:
            for fn in self._filters:
                if fn(now, src, dst, packet):
                    self._note(now, "drop", packet, "filter")
                    return
        slot = self._slots.get(dst)
        if slot is None:
            self._note(now, "drop", packet, "no_route")
            return
        key = src + dst
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = Path(self._default, self.rng, self._arrive, self._note)
        path.transmit(now, packet, slot)

    def _send_segment(self, src: bytes, dst: bytes, seg: Segment) -> None:
        """``segments`` mode: send ``seg`` undecoded when nothing needs its bytes (no
        tap or filter, a route, a path that neither corrupts nor marks), else
        encoded.  Only the common shape (no options but timestamps) goes undecoded,
        the shape a receiving :class:`~synack.stack.Stack` takes without decoding."""
        if (
            self._taps
            or self._filters
            or seg.mss is not None
            or seg.wscale is not None
            or seg.sack_permitted
            or seg.sack_blocks
        ):
            self._send(encode_ip_tcp(src, dst, seg))
            return
        slot = self._slots.get(dst)
        path = self._paths.get(src + dst)
        if slot is None or path is None or path.cfg.corrupt or path.cfg.ecn_mark:
            self._send(encode_ip_tcp(src, dst, seg))
            return
        self.stats["sent"] += 1
        # The packet's length: IP header (RFC 791 §3.1, RFC 8200 §3), TCP header, and
        # the 12 bytes of nop, nop, timestamps (RFC 7323 Appendix A).
        size = (20 if len(src) == 4 else 40) + (20 if seg.tsval is None else 32) + len(seg.payload)
        path.transmit(self.clock.now, _Wire(src, dst, seg, size), slot)  # type: ignore[arg-type]

    def _note(self, now: float, kind: str, packet: bytes, reason: str | None) -> None:
        stat = _NOTE_STAT.get(kind) or f"dropped_{reason}"
        self.stats[stat] += 1
        if self._taps and kind != "reorder":
            self._emit(now, kind, packet, reason)

    def _emit(self, now: float, kind: str, packet: bytes, reason: str | None) -> None:
        src, dst = _ends(packet)
        for tap in self._taps:
            tap(now, kind, src, dst, packet, reason)
