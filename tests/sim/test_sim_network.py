"""Tests for the simulated network, driven by tiny fake hosts (not the TCP stack)."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.sim import STAT_KEYS, Network, PathConfig, SimulationLimit, mark_ce

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])
C = bytes([10, 0, 0, 3])


def header_sum(header: bytes) -> int:
    """One's-complement sum of 16-bit words (0xFFFF for a valid IPv4 header)."""
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv4(src: bytes, dst: bytes, payload: bytes = b"", *, tos: int = 0, ident: int = 0) -> bytes:
    """A minimal IPv4 packet (protocol 253, experimental) with a valid header checksum."""
    header = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, 0, 64, 253, 0, src, dst)
    )
    struct.pack_into("!H", header, 10, ~header_sum(bytes(header)) & 0xFFFF)
    return bytes(header) + payload


def numbered(src: bytes, dst: bytes, n: int, size: int = 100, tos: int = 0) -> bytes:
    """Packet ``n`` of a numbered stream, ``size`` bytes in total."""
    return ipv4(src, dst, struct.pack("!I", n).ljust(size - 20, b"\x00"), tos=tos, ident=n & 0xFFFF)


def number(packet: bytes) -> int:
    value: int = struct.unpack_from("!I", packet, 20)[0]
    return value


class Sink:
    """Records what it receives; sends whatever is put in ``outbox``."""

    def __init__(self, address: bytes) -> None:
        self.address = address
        self.received: list[tuple[float, bytes]] = []
        self.outbox: list[bytes] = []

    def receive_packet(self, packet: bytes, now: float) -> None:
        self.received.append((now, packet))

    def packets_to_send(self, now: float) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def next_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer was armed")


class Echo(Sink):
    """Sends every packet back with source and destination swapped."""

    def receive_packet(self, packet: bytes, now: float) -> None:
        super().receive_packet(packet, now)
        self.outbox.append(ipv4(packet[16:20], packet[12:16], packet[20:]))


class Paced(Sink):
    """Sends ``count`` numbered packets to ``peer``, one every ``interval`` seconds."""

    def __init__(
        self,
        address: bytes,
        peer: bytes,
        count: int,
        interval: float,
        size: int = 100,
        tos: int = 0,
    ) -> None:
        super().__init__(address)
        self.peer, self.count, self.interval, self.size, self.tos = peer, count, interval, size, tos
        self.k = 0
        self.sent: list[tuple[float, bytes]] = []

    def next_timer(self) -> float | None:
        return self.k * self.interval if self.k < self.count else None

    def handle_timer(self, now: float) -> None:
        while self.k < self.count and self.k * self.interval <= now:
            packet = numbered(self.address, self.peer, self.k, self.size, self.tos)
            self.outbox.append(packet)
            self.sent.append((now, packet))
            self.k += 1


class Alarm(Sink):
    """A host with settable deadlines; records when its timer fires."""

    def __init__(self, address: bytes) -> None:
        super().__init__(address)
        self.deadlines: list[float] = []
        self.fired: list[float] = []

    def next_timer(self) -> float | None:
        return min(self.deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.deadlines = [d for d in self.deadlines if d > now]


def pair(net: Network) -> tuple[Sink, Sink]:
    a, b = Sink(A), Sink(B)
    net.attach(a)
    net.attach(b)
    return a, b


def burst(net: Network, sender: Sink, count: int, size: int = 100, tos: int = 0) -> list[bytes]:
    packets = [numbered(sender.address, B, n, size, tos) for n in range(count)]
    sender.outbox.extend(packets)
    return packets


def total_drops(stats: dict[str, int]) -> int:
    return sum(v for k, v in stats.items() if k.startswith("dropped_"))


# -- routing and driving --------------------------------------------------------


def test_echo_round_trip_takes_two_one_way_delays() -> None:
    net = Network()
    a, b = Sink(A), Echo(B)
    net.attach(a)
    net.attach(b)
    net.set_link(A, B, PathConfig(delay=0.01))
    a.outbox.append(ipv4(A, B, b"ping"))
    assert net.run() == pytest.approx(0.02)
    assert [(t, p[20:]) for t, p in b.received] == [(0.01, b"ping")]
    assert [p[20:] for _, p in a.received] == [b"ping"]
    assert a.received[0][0] == pytest.approx(0.02)
    assert net.stats["sent"] == 2 and net.stats["delivered"] == 2


def test_unknown_destination_is_dropped_and_counted() -> None:
    net = Network()
    a, _ = pair(net)
    taps: list[tuple[str, str | None]] = []
    net.add_tap(lambda now, kind, src, dst, packet, reason: taps.append((kind, reason)))
    a.outbox.append(ipv4(A, C))
    a.outbox.append(b"\x45\x00")  # too short to have a destination at all
    net.run()
    assert net.stats["dropped_no_route"] == 2
    assert taps == [("send", None), ("drop", "no_route")] * 2


def test_default_path_is_configurable_and_per_direction_paths_override_it() -> None:
    net = Network(default_path=PathConfig(delay=0.5))
    a, b = pair(net)
    net.set_path("10.0.0.1", "10.0.0.2", PathConfig(delay=0.1))
    assert net.path_config(A, B).delay == 0.1
    assert net.path_config(B, A).delay == 0.5
    a.outbox.append(ipv4(A, B))
    b.outbox.append(ipv4(B, A))
    net.run()
    assert b.received[0][0] == 0.1
    assert a.received[0][0] == 0.5


def test_attach_rejects_duplicates_and_bad_addresses() -> None:
    net = Network()
    net.attach(Sink(A))
    with pytest.raises(ValueError, match="already attached"):
        net.attach(Sink(A))
    with pytest.raises(ValueError, match="4 bytes"):
        net.attach(Sink(b"\x01\x02"))
    with pytest.raises(ValueError):
        net.set_path("10.0.0.300", B, PathConfig())


def test_run_until_advances_clock_exactly_even_when_idle() -> None:
    net = Network()
    a, b = pair(net)
    net.set_link(A, B, PathConfig(delay=0.3))
    a.outbox.append(ipv4(A, B))
    assert net.run(until=0.2) == 0.2
    assert b.received == []
    assert net.run_for(0.1) == pytest.approx(0.3)
    assert len(b.received) == 1
    assert net.run(until=7.0) == 7.0 and net.now == 7.0
    assert net.run() == 7.0  # idle: returns at once
    with pytest.raises(ValueError, match="before now"):
        net.run(until=1.0)


def test_packets_queued_between_runs_are_sent_when_run_starts() -> None:
    net = Network()
    a, b = pair(net)
    net.run(until=1.0)
    a.outbox.append(ipv4(A, B))
    net.run()
    assert [t for t, _ in b.received] == [1.0]


def test_kick_drains_hosts_without_running() -> None:
    net = Network()
    a, b = pair(net)
    a.outbox.append(ipv4(A, B))
    net.kick()
    assert net.stats["sent"] == 1 and b.received == []
    net.run()
    assert len(b.received) == 1


def test_stop_predicate_ends_the_run() -> None:
    net = Network()
    a = Paced(A, B, count=100, interval=0.01)
    b = Sink(B)
    net.attach(a)
    net.attach(b)
    end = net.run(until=10.0, stop=lambda: len(b.received) >= 5)
    assert len(b.received) == 5
    assert end == net.now == pytest.approx(0.04)


def test_host_timers_fire_once_and_stale_deadlines_are_ignored() -> None:
    net = Network()
    host = Alarm(A)
    net.attach(host)
    host.deadlines = [1.0]

    def postpone(now: float) -> None:
        host.deadlines = [2.0]

    def advance(now: float) -> None:
        host.deadlines = [2.7]

    net.call_at(0.5, postpone)
    net.call_at(2.5, advance)
    net.run()
    assert host.fired == [2.0, 2.7]
    assert net.now == 2.7


def test_timer_moved_earlier_fires_at_the_new_time() -> None:
    net = Network()
    host = Alarm(A)
    net.attach(host)
    host.deadlines = [5.0]
    net.call_at(1.0, lambda now: host.deadlines.append(3.0))
    net.run()
    assert host.fired == [3.0, 5.0]


def test_timer_in_the_past_fires_now() -> None:
    net = Network()
    host = Alarm(A)
    net.attach(host)
    net.run(until=4.0)
    host.deadlines = [1.0]
    net.run()
    assert host.fired == [4.0]


def test_livelock_hits_the_event_limit() -> None:
    class Stuck(Sink):
        def next_timer(self) -> float | None:
            return 0.0

        def handle_timer(self, now: float) -> None:
            pass

    net = Network()
    net.attach(Stuck(A))
    with pytest.raises(SimulationLimit):
        net.run(max_events=1000)


def test_processes_run_after_every_event_and_their_pokes_are_sent() -> None:
    net = Network()
    a, b = pair(net)
    net.set_link(A, B, PathConfig(delay=0.1))
    seen: list[float] = []

    def app(now: float) -> None:
        seen.append(now)
        if b.received and len(a.outbox) == 0 and net.stats["sent"] < 3:
            a.outbox.append(ipv4(A, B, b"again"))

    net.add_process(app)
    a.outbox.append(ipv4(A, B))
    net.run()
    assert [round(t, 9) for t, _ in b.received] == [0.1, 0.2, 0.3]
    assert seen == [t for t, _ in b.received]
    net.remove_process(app)
    assert net.clock.hook is None


def test_call_at_and_call_later_poll_hosts_afterwards() -> None:
    net = Network()
    a, b = pair(net)
    order: list[str] = []

    def poke(now: float) -> None:
        order.append("x")
        a.outbox.append(ipv4(A, B))

    net.call_later(1.0, poke)
    net.call_at(1.0, lambda now: order.append("y"))
    cancelled = net.call_at(0.5, lambda now: order.append("never"))
    cancelled.cancel()
    net.run()
    assert order == ["x", "y"]
    assert [t for t, _ in b.received] == [1.0]
    with pytest.raises(ValueError, match="before now"):
        net.call_at(0.5, lambda now: None)


# -- impairments ---------------------------------------------------------------


def test_loss_rate_is_near_the_configured_probability() -> None:
    net = Network(seed=7)
    a, b = pair(net)
    net.set_path(A, B, PathConfig(delay=0.01, loss=0.1))
    burst(net, a, 10_000)
    net.run()
    dropped = net.stats["dropped_loss"]
    assert 900 <= dropped <= 1100  # binomial sd is 30
    assert len(b.received) == 10_000 - dropped == net.stats["delivered"]


def test_loss_of_one_drops_everything_and_zero_draws_no_randomness() -> None:
    net = Network(seed=1)
    a, b = pair(net)
    net.set_path(A, B, PathConfig(loss=1.0))
    burst(net, a, 50)
    net.run()
    assert b.received == [] and net.stats["dropped_loss"] == 50
    state = net.rng.getstate()
    net.set_path(A, B, PathConfig(delay=0.01))
    burst(net, a, 50)
    net.run()
    assert net.rng.getstate() == state


def test_jitter_varies_delay_but_keeps_fifo_order() -> None:
    net = Network(seed=3)
    a = Paced(A, B, count=2000, interval=0.001)
    b = Sink(B)
    net.attach(a)
    net.attach(b)
    net.set_path(A, B, PathConfig(delay=0.02, jitter=0.01))
    net.run()
    assert [number(p) for _, p in b.received] == list(range(2000))
    times = [t for t, _ in b.received]
    assert times == sorted(times)
    delays = [t - s for (t, _), (s, _) in zip(b.received, a.sent, strict=True)]
    assert min(delays) >= 0.01 - 1e-12 and max(delays) <= 0.03 + 1e-12
    assert len({round(d, 9) for d in delays}) > 1000
    assert net.stats["reordered"] == 0


def test_reordering_happens_only_when_asked() -> None:
    net = Network(seed=4)
    a = Paced(A, B, count=2000, interval=0.0001)
    b = Sink(B)
    net.attach(a)
    net.attach(b)
    net.set_path(A, B, PathConfig(delay=0.02, jitter=0.00005, reorder=0.05, reorder_delay=0.001))
    net.run()
    order = [number(p) for _, p in b.received]
    assert sorted(order) == list(range(2000))
    late = sum(1 for i in range(1, len(order)) if order[i] < order[i - 1])
    assert 60 <= net.stats["reordered"] <= 140
    assert late > 50
    times = [t for t, _ in b.received]
    assert times == sorted(times)


def test_duplicates_appear_shortly_after_the_original_in_order() -> None:
    net = Network(seed=5)
    a = Paced(A, B, count=2000, interval=0.0002)
    b = Sink(B)
    net.attach(a)
    net.attach(b)
    net.set_path(A, B, PathConfig(delay=0.01, duplicate=0.1))
    net.run()
    dups = net.stats["duplicated"]
    assert 150 <= dups <= 250
    assert len(b.received) == 2000 + dups == net.stats["delivered"]
    order = [number(p) for _, p in b.received]
    assert order == sorted(order)
    counts = Counter(order)
    assert sum(1 for c in counts.values() if c == 2) == dups
    first: dict[int, float] = {}
    for t, p in b.received:
        n = number(p)
        if n in first:
            assert 0 <= t - first[n] <= 0.001 + 1e-12
            assert p == numbered(A, B, n)
        else:
            first[n] = t


def test_corruption_flips_one_to_three_bits() -> None:
    net = Network(seed=6)
    a, b = pair(net)
    net.set_path(A, B, PathConfig(delay=0.001, corrupt=1.0))
    sent = burst(net, a, 300)
    net.run()
    assert net.stats["corrupted"] == 300
    flipped = Counter(
        sum(bin(x ^ y).count("1") for x, y in zip(orig, got, strict=True))
        for orig, (_, got) in zip(sent, b.received, strict=True)
    )
    assert set(flipped) == {1, 2, 3}


def test_partial_corruption_rate() -> None:
    net = Network(seed=8)
    a, b = pair(net)
    net.set_path(A, B, PathConfig(corrupt=0.2))
    sent = burst(net, a, 2000)
    net.run()
    changed = sum(1 for orig, (_, got) in zip(sent, b.received, strict=True) if orig != got)
    assert changed == net.stats["corrupted"]
    assert 320 <= changed <= 480


def test_ecn_marks_ect_packets_above_threshold_with_valid_checksum() -> None:
    net = Network()
    a, b = pair(net)
    net.set_path(
        A, B, PathConfig(rate_bps=1e6, queue_bytes=12_000, ecn_mark=True, ecn_threshold_bytes=3000)
    )
    tos_values = [0x01, 0x02, 0x02, 0x00, 0x01, 0x00, 0x02, 0x03, 0x02, 0x01]
    a.outbox.extend(numbered(A, B, n, 1500, tos) for n, tos in enumerate(tos_values))
    net.run()
    # Backlog before packet k is 1500*k: above 3000 from k=3; limit reached after 8.
    assert net.stats["dropped_queue"] == 2
    got = [(number(p), p[1] & 3) for _, p in b.received]
    assert got == [(0, 1), (1, 2), (2, 2), (3, 0), (4, 3), (5, 0), (6, 3), (7, 3)]
    assert net.stats["ecn_marked"] == 2  # k = 4, 6; k = 3 is not-ECT, k = 7 was CE already
    for _, packet in b.received:
        assert header_sum(packet[:20]) == 0xFFFF
        assert packet[0] == 0x45 and packet[1] >> 2 == 0


@given(st.binary(min_size=20, max_size=60), st.integers(0, 255))
def test_mark_ce_keeps_checksums_valid_or_invalid(body: bytes, tos: int) -> None:
    header = bytearray(body[:20])
    header[0] = 0x45
    header[1] = tos
    header[10:12] = b"\x00\x00"
    header[10:12] = (~header_sum(bytes(header)) & 0xFFFF).to_bytes(2, "big")
    packet = bytes(header) + body[20:]
    marked = mark_ce(packet)
    assert marked[1] == tos | 3
    assert marked[2:10] == packet[2:10] and marked[12:] == packet[12:]
    assert header_sum(marked[:20]) == 0xFFFF
    broken = packet[:10] + bytes([packet[10] ^ 0x10]) + packet[11:]
    assert header_sum(mark_ce(broken)[:20]) != 0xFFFF


def test_mark_ce_checksum_carries() -> None:
    for ident in range(0, 65536, 3):
        for tos in (1, 2):
            marked = mark_ce(ipv4(A, B, tos=tos, ident=ident))
            assert header_sum(marked[:20]) == 0xFFFF, (ident, tos)


# -- filters and taps ---------------------------------------------------------------


def test_filters_drop_exactly_the_matched_packets() -> None:
    net = Network()
    a, b = pair(net)
    calls: list[tuple[bytes, bytes]] = []

    def odd(now: float, src: bytes, dst: bytes, packet: bytes) -> bool:
        calls.append((src, dst))
        return number(packet) % 2 == 1

    net.add_filter(odd)
    burst(net, a, 20)
    net.run()
    assert [number(p) for _, p in b.received] == list(range(0, 20, 2))
    assert net.stats["dropped_filter"] == 10
    assert set(calls) == {(A, B)}
    net.remove_filter(odd)
    burst(net, a, 4)
    net.run()
    assert len(b.received) == 14


def test_filters_apply_before_impairments() -> None:
    net = Network(seed=2)
    a, _ = pair(net)
    net.set_path(A, B, PathConfig(loss=0.5))
    net.add_filter(lambda now, src, dst, packet: True)
    state = net.rng.getstate()
    burst(net, a, 100)
    net.run()
    assert net.stats["dropped_filter"] == 100 and net.stats["dropped_loss"] == 0
    assert net.rng.getstate() == state


def test_drop_next_drops_count_matches_then_removes_itself() -> None:
    net = Network()
    a, b = pair(net)
    filt = net.drop_next(lambda p: number(p) % 3 == 0, count=2)
    burst(net, a, 10)
    net.run()
    assert [number(p) for _, p in b.received] == [1, 2, 4, 5, 6, 7, 8, 9]
    assert net.stats["dropped_filter"] == 2
    net.remove_filter(filt)  # already gone: harmless
    with pytest.raises(ValueError):
        net.drop_next(lambda p: True, count=0)


def every_fate_net(seed: int, count: int) -> tuple[Network, Paced, Echo]:
    """A paced sender and an echo on a path where every impairment happens (loss,
    duplication, reordering, corruption, a full queue, ECN marking)."""
    net = Network(seed=seed)
    a = Paced(A, B, count=count, interval=0.0005, size=1000, tos=0x02)
    b = Echo(B)
    net.attach(a)
    net.attach(b)
    net.set_path(
        A,
        B,
        PathConfig(
            delay=0.01,
            jitter=0.001,
            loss=0.05,
            duplicate=0.05,
            reorder=0.05,
            corrupt=0.05,
            rate_bps=12e6,
            queue_bytes=20_000,
            ecn_mark=True,
            ecn_threshold_bytes=5000,
        ),
    )
    return net, a, b


def test_taps_see_every_event() -> None:
    net, a, b = every_fate_net(seed=11, count=3000)
    events: Counter[tuple[str, str | None]] = Counter()
    times: list[float] = []

    def tap(
        now: float, kind: str, src: bytes, dst: bytes, packet: bytes, reason: str | None
    ) -> None:
        assert (src, dst) == (packet[12:16], packet[16:20])
        events[kind, reason] += 1
        times.append(now)

    net.add_tap(tap)
    a.outbox.append(ipv4(A, C))
    net.run()
    stats = net.stats
    assert events["send", None] == stats["sent"] == 3001 + len(b.received)
    assert events["deliver", None] == stats["delivered"]
    for reason in ("loss", "queue", "no_route"):
        assert events["drop", reason] == stats[f"dropped_{reason}"] > 0
    assert events["duplicate", None] == stats["duplicated"] > 0
    assert events["corrupt", None] == stats["corrupted"] > 0
    assert events["mark", None] == stats["ecn_marked"] > 0
    assert stats["reordered"] > 0
    assert stats["sent"] + stats["duplicated"] == stats["delivered"] + total_drops(stats)
    assert times == sorted(times)
    net.remove_tap(tap)
    net.run()


def test_stats_every_counter_counts_its_fate() -> None:
    """Each counter of STAT_KEYS is the one its fate increments: a run where every fate
    happens (a filter, no route, random loss, a full queue, duplication, corruption,
    reordering, ECN marking) moves every counter, no fate lands in a counter outside
    the list, and the conservation law of :class:`Network` holds."""
    net, a, b = every_fate_net(seed=5, count=2000)
    net.drop_next(lambda p: p[16:20] == A, count=3)  # three echoes dropped by a filter
    a.outbox.append(ipv4(A, C))  # no host at C
    assert all(v == 0 for v in net.stats.values())
    net.run()
    stats = net.stats
    assert list(stats) == list(STAT_KEYS)
    assert {k for k, v in stats.items() if v == 0} == set()
    assert stats["dropped_filter"] == 3 and stats["dropped_no_route"] >= 1  # + corrupted dsts
    assert stats["sent"] == 2001 + len(b.received)
    assert stats["sent"] + stats["duplicated"] == stats["delivered"] + total_drops(stats)


# -- determinism ------------------------------------------------------------------


def scenario(seed: int) -> list[tuple[float, str, bytes, str | None]]:
    net = Network(seed=seed)
    a = Paced(A, B, count=500, interval=0.001, size=600, tos=0x01)
    b = Echo(B)
    net.attach(a)
    net.attach(b)
    cfg = PathConfig(
        delay=0.005,
        jitter=0.002,
        loss=0.05,
        duplicate=0.05,
        reorder=0.05,
        corrupt=0.05,
        rate_bps=4e6,
        queue_bytes=6000,
        ecn_mark=True,
        ecn_threshold_bytes=2000,
    )
    net.set_link(A, B, cfg)
    log: list[tuple[float, str, bytes, str | None]] = []
    net.add_tap(lambda now, kind, src, dst, packet, reason: log.append((now, kind, packet, reason)))
    net.run()
    return log


def test_same_seed_same_run_packet_for_packet() -> None:
    first = scenario(42)
    assert len(first) > 1000
    assert scenario(42) == first
    assert scenario(43) != first


# -- configuration validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": 1.5}, "loss"),
        ({"duplicate": -0.1}, "duplicate"),
        ({"reorder": float("nan")}, "reorder"),
        ({"corrupt": 2}, "corrupt"),
        ({"delay": -1.0}, "delay"),
        ({"jitter": float("inf")}, "jitter"),
        ({"reorder_delay": -0.001}, "reorder_delay"),
        ({"rate_bps": 0}, "rate_bps"),
        ({"rate_bps": -5.0}, "rate_bps"),
        ({"rate_bps": 1e6, "queue_bytes": -1}, "queue_bytes"),
        ({"rate_bps": 1e6, "queue_bytes": 1.5}, "queue_bytes"),
        ({"rate_bps": 1e6, "ecn_threshold_bytes": -3}, "ecn_threshold_bytes"),
        ({"queue_bytes": 1000}, "rate_bps"),
        ({"ecn_mark": True}, "rate_bps"),
    ],
)
def test_path_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PathConfig(**kwargs)  # type: ignore[arg-type]
