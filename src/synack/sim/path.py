"""Per-direction impairment model: delay, jitter, loss, duplication, reordering,
corruption and a rate-limited drop-tail bottleneck with optional ECN marking.

A :class:`PathConfig` describes one direction of a link; a :class:`Path` holds
the running state (bottleneck queue, last arrival time) and decides, per
packet, whether and when it arrives and in what form.  Randomness is drawn
from the network's seeded ``random.Random`` and only for impairments that are
enabled, so a path with no random impairments never consumes random numbers.

Per packet the steps are, in order: loss; bottleneck (drop-tail, ECN mark,
serialization); propagation delay and jitter, clamped so the path stays FIFO;
corruption; reordering (holds the packet back, letting later ones overtake);
duplication (a copy shortly after, also FIFO-clamped).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Path", "PathConfig", "flip_bits", "mark_ce"]

T = TypeVar("T")

#: ``note(now, kind, packet, reason)``: kind is "drop" (reason "loss" or
#: "queue"), "mark", "corrupt", "duplicate" or "reorder".
Note = Callable[[float, str, bytes, str | None], None]


def _check_probability(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"PathConfig.{name} must be a probability in [0, 1], got {value!r}")


def _check_time(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(
            f"PathConfig.{name} must be a finite number of seconds >= 0, got {value!r}"
        )


def _check_bytes(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"PathConfig.{name} must be an int >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PathConfig:
    """Impairments of one direction of a link.  All defaults mean "perfect".

    ``delay``: one-way propagation delay (s).  ``jitter``: uniform +/- seconds
    added to it; never reorders (arrival is clamped to the previous arrival).
    ``loss``, ``duplicate``, ``reorder``, ``corrupt``: per-packet probabilities.
    A reordered packet is held back an extra ``reorder_delay`` seconds.  A
    duplicate arrives 0..delay/10 after the original.  Corruption flips 1-3
    random bits anywhere in the packet.  ``rate_bps``: bottleneck rate
    (``None`` = infinite); packets are serialized FIFO at ``len*8/rate``.
    ``queue_bytes``: drop-tail limit on bytes in the bottleneck (waiting or
    being serialized), ``None`` = unlimited.  ``ecn_mark``: packets carrying
    ECT(0)/ECT(1) that find more than ``ecn_threshold_bytes`` in the
    bottleneck are marked CE instead of queueing silently; ``queue_bytes``
    still drops.  Non-ECT packets are never dropped early.
    """

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.001
    corrupt: float = 0.0
    rate_bps: float | None = None
    queue_bytes: int | None = None
    ecn_mark: bool = False
    ecn_threshold_bytes: int = 0

    def __post_init__(self) -> None:
        """Validate every field; raise ``ValueError`` naming the bad one."""
        _check_time("delay", self.delay)
        _check_time("jitter", self.jitter)
        _check_time("reorder_delay", self.reorder_delay)
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            _check_probability(name, getattr(self, name))
        rate = self.rate_bps
        if rate is not None and not (
            isinstance(rate, int | float) and math.isfinite(rate) and rate > 0
        ):
            raise ValueError(
                f"PathConfig.rate_bps must be a finite number > 0 or None, got {rate!r}"
            )
        if self.queue_bytes is not None:
            _check_bytes("queue_bytes", self.queue_bytes)
        _check_bytes("ecn_threshold_bytes", self.ecn_threshold_bytes)
        if rate is None and (self.queue_bytes is not None or self.ecn_mark):
            raise ValueError(
                "PathConfig.queue_bytes and ecn_mark need a bottleneck: set rate_bps too"
            )


def mark_ce(packet: bytes) -> bytes:
    """Return ``packet`` with its ECN field set to CE (11).

    IPv4: the header checksum is updated incrementally (RFC 1624 eqn. 3), so a
    header whose checksum was wrong stays wrong.  IPv6: the ECN bits are the low
    two of the Traffic Class (RFC 8200 §7), bits 4-5 of byte 1; there is no
    header checksum.
    """
    if packet[0] >> 4 == 6:
        out6 = bytearray(packet)
        out6[1] |= 0x30
        return bytes(out6)
    old = (packet[0] << 8) | packet[1]
    new = old | 3
    total = (~((packet[10] << 8) | packet[11]) & 0xFFFF) + (~old & 0xFFFF) + new
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    check = ~total & 0xFFFF
    out = bytearray(packet)
    out[1] = new & 0xFF
    out[10] = check >> 8
    out[11] = check & 0xFF
    return bytes(out)


def _ecn(packet: bytes) -> int:
    """The ECN field of an IPv4 or IPv6 packet (RFC 3168 §5; RFC 8200 §7); 0 otherwise."""
    v = packet[0] >> 4
    if v == 4:
        return packet[1] & 3
    return (packet[1] >> 4) & 3 if v == 6 else 0


def flip_bits(packet: bytes, rng: random.Random) -> bytes:
    """Return ``packet`` with 1-3 random bits flipped (unchanged if empty).

    The flipped bits sit at distinct positions within their 16-bit words
    (counted from the start of the packet, which keeps the TCP header's word
    alignment when the IP header has no options).  The Internet checksum is a
    one's-complement sum of such words, so two flips of the *same* word
    position in opposite directions cancel and go unnoticed, as they do on
    real networks; flips at distinct positions always change the sum, so
    corruption in the simulator is always caught by the IPv4 or TCP checksum
    (RFC 1071 §2) and is counted as a drop rather than delivered as data.
    """
    n = len(packet)
    if not n:
        return packet
    out = bytearray(packet)
    count = min(rng.randint(1, 3), 16 if n > 1 else 8)
    # Word-bit class k: high byte of a word (even offset) for k >= 8, else low byte.
    classes = rng.sample(range(16) if n > 1 else range(8), count)
    for k in classes:
        parity = 0 if k >= 8 else 1
        if n == 1:
            parity = 0
        nwords = (n - parity + 1) // 2
        i = parity + 2 * rng.randrange(nwords)
        out[i] ^= 1 << (k & 7)
    return bytes(out)


class Path(Generic[T]):
    """Running state of one direction: the bottleneck and the FIFO clamp.

    ``deliver(at, dest, packet)`` is called for every copy that will arrive
    (``dest`` is passed through untouched); ``note`` reports drops and
    impairments as they are decided.
    """

    __slots__ = (
        "_backlog",
        "_busy_bits",
        "_busy_start",
        "_busy_until",
        "_deliver",
        "_last_arrival",
        "_note",
        "_queue",
        "_rng",
        "_simple",
        "_track",
        "cfg",
    )

    def __init__(
        self,
        cfg: PathConfig,
        rng: random.Random,
        deliver: Callable[[float, T, bytes], None],
        note: Note,
    ) -> None:
        self._rng = rng
        self._deliver = deliver
        self._note = note
        self._busy_start = 0.0
        self._busy_bits = 0
        self._busy_until = -math.inf
        self._last_arrival = -math.inf
        self._queue: deque[tuple[float, int]] = deque()
        self._backlog = 0
        self.configure(cfg)

    def configure(self, cfg: PathConfig) -> None:
        """Switch to a new config, keeping packets already in flight and queued."""
        self.cfg = cfg
        self._simple = not (
            cfg.loss
            or cfg.jitter
            or cfg.duplicate
            or cfg.reorder
            or cfg.corrupt
            or cfg.rate_bps is not None
        )
        self._track = cfg.queue_bytes is not None or cfg.ecn_mark
        # Restart the busy period where the link frees up, so a rate change
        # applies only to packets not yet accepted.
        self._busy_start = self._busy_until
        self._busy_bits = 0

    def backlog(self, now: float) -> int:
        """Bytes in the bottleneck at ``now`` (only tracked with queue_bytes or ecn_mark)."""
        self._expire(now)
        return self._backlog

    def _expire(self, now: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= now:
            self._backlog -= queue.popleft()[1]

    def transmit(self, now: float, packet: bytes, dest: T) -> None:
        """Send ``packet`` into this path at ``now``."""
        if self._simple:
            at = now + self.cfg.delay
            if at < self._last_arrival:
                at = self._last_arrival
            self._last_arrival = at
            self._deliver(at, dest, packet)
            return
        cfg = self.cfg
        rng = self._rng
        if cfg.loss and rng.random() < cfg.loss:
            self._note(now, "drop", packet, "loss")
            return
        rate = cfg.rate_bps
        if rate is None:
            depart = now
        else:
            size = len(packet)
            if self._track:
                self._expire(now)
                backlog = self._backlog
                limit = cfg.queue_bytes
                if limit is not None and backlog + size > limit:
                    self._note(now, "drop", packet, "queue")
                    return
                if (
                    cfg.ecn_mark
                    and backlog > cfg.ecn_threshold_bytes
                    and len(packet) >= 20
                    and 0 < _ecn(packet) < 3
                ):
                    packet = mark_ce(packet)
                    self._note(now, "mark", packet, None)
            if now > self._busy_until:
                self._busy_start = now
                self._busy_bits = 0
            self._busy_bits += size * 8
            depart = self._busy_start + self._busy_bits / rate
            self._busy_until = depart
            if self._track:
                self._queue.append((depart, size))
                self._backlog += size
        at = depart + cfg.delay
        if cfg.jitter:
            at += rng.uniform(-cfg.jitter, cfg.jitter)
            if at < depart:
                at = depart
        if at < self._last_arrival:
            at = self._last_arrival
        if cfg.corrupt and rng.random() < cfg.corrupt:
            packet = flip_bits(packet, rng)
            self._note(now, "corrupt", packet, None)
        held = bool(cfg.reorder) and rng.random() < cfg.reorder
        if held:
            at += cfg.reorder_delay
            self._note(now, "reorder", packet, None)
        else:
            self._last_arrival = at
        self._deliver(at, dest, packet)
        if cfg.duplicate and rng.random() < cfg.duplicate:
            if cfg.delay:
                at += rng.uniform(0.0, cfg.delay / 10)
            if not held:
                self._last_arrival = at
            self._note(now, "duplicate", packet, None)
            self._deliver(at, dest, packet)
