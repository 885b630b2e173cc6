"""Bottleneck timing, drop-tail counts and simulator throughput."""

from __future__ import annotations

import struct
import time

from synack.sim import Network, PathConfig

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])
RATE = 100_000_000  # bits/s
DELAY = 0.025
SIZE = 1500
BITS = SIZE * 8


def packet(n: int) -> bytes:
    """A 1500-byte IPv4-shaped packet from A to B numbered ``n`` (checksum not needed)."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, SIZE, n & 0xFFFF, 0, 64, 253, 0, A, B)
    return header + struct.pack("!I", n).ljust(SIZE - 20, b"\x00")


def number(data: bytes) -> int:
    value: int = struct.unpack_from("!I", data, 20)[0]
    return value


class Counter:
    """Counts arrivals and remembers their times and numbers."""

    def __init__(self, address: bytes) -> None:
        self.address = address
        self.times: list[float] = []
        self.numbers: list[int] = []

    def receive_packet(self, data: bytes, now: float) -> None:
        self.times.append(now)
        self.numbers.append(number(data))

    def packets_to_send(self, now: float) -> list[bytes]:
        return []

    def next_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer was armed")


class Sender:
    """Sends ``per_tick`` packets every ``BITS/RATE`` seconds, ``ticks`` times, via its timer.

    ``burst`` instead queues everything at t=0.
    """

    def __init__(self, ticks: int, per_tick: int = 1, burst: bool = False) -> None:
        self.address = A
        self.ticks = ticks
        self.per_tick = per_tick
        self.tick = 0
        self.n = 0
        self.out: list[bytes] = []
        if burst:
            self.out = [packet(n) for n in range(ticks * per_tick)]
            self.tick = ticks

    def receive_packet(self, data: bytes, now: float) -> None:
        pass

    def packets_to_send(self, now: float) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def next_timer(self) -> float | None:
        return self.tick * BITS / RATE if self.tick < self.ticks else None

    def handle_timer(self, now: float) -> None:
        while self.tick < self.ticks and self.tick * BITS / RATE <= now:
            for _ in range(self.per_tick):
                self.out.append(packet(self.n))
                self.n += 1
            self.tick += 1


def setup(sender: Sender, queue_bytes: int | None = None) -> tuple[Network, Counter]:
    net = Network(seed=1)
    sink = Counter(B)
    net.attach(sender)
    net.attach(sink)
    net.set_path(A, B, PathConfig(delay=DELAY, rate_bps=RATE, queue_bytes=queue_bytes))
    return net, sink


def test_burst_at_time_zero_arrives_at_serialization_plus_delay_exactly() -> None:
    count = 20_000
    net, sink = setup(Sender(count, burst=True))
    end = net.run()
    assert sink.numbers == list(range(count))
    assert sink.times == [DELAY + (k + 1) * BITS / RATE for k in range(count)]
    assert end == sink.times[-1]
    assert net.stats["delivered"] == count


def test_paced_sender_at_link_rate_is_timed_exactly_and_fast() -> None:
    count = 20_000
    net, sink = setup(Sender(count))
    start = time.process_time()
    net.run()
    cpu = time.process_time() - start
    assert sink.numbers == list(range(count))
    assert sink.times == [DELAY + (k + 1) * BITS / RATE for k in range(count)]
    # 20,000 timer events plus 20,000 deliveries; typically ~0.2 s of CPU.
    assert cpu < 10.0, f"{count / cpu:.0f} packets/s is far too slow"


def test_drop_tail_limit_on_a_burst() -> None:
    net, sink = setup(Sender(1000, burst=True), queue_bytes=64 * SIZE)
    net.run()
    assert sink.numbers == list(range(64))
    assert net.stats["dropped_queue"] == 1000 - 64
    assert net.backlog(A, B) == 0


def test_drop_tail_counts_under_double_rate_overload() -> None:
    ticks, limit = 5000, 50
    net, sink = setup(Sender(ticks, per_tick=2), queue_bytes=limit * SIZE)
    # Reference model in whole serialization times: a packet accepted at
    # tick k leaves at tick max(busy, k) + 1 and occupies the queue until then.
    accepted: list[tuple[int, int]] = []
    departures: list[int] = []
    busy = drops = n = 0
    for k in range(ticks):
        for _ in range(2):
            if sum(1 for d in departures[-limit:] if d > k) + 1 > limit:
                drops += 1
            else:
                busy = max(busy, k) + 1
                departures.append(busy)
                accepted.append((n, busy))
            n += 1
    net.run()
    assert net.stats["dropped_queue"] == drops
    assert drops == ticks * 2 - (ticks + limit - 1)  # then one drop per tick
    assert sink.numbers == [num for num, _ in accepted]
    assert sink.times == [DELAY + dep * BITS / RATE for _, dep in accepted]
