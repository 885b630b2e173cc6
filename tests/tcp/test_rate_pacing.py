"""Delivery-rate samples (draft-ietf-ccwg-bbr §4.1, Linux tcp_rate.c) and pacing
(Linux tcp_update_pacing_rate, tcp_tso_autosize), on single connections."""

from __future__ import annotations

import pytest

from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp import algorithms
from synack.tcp.config import TcpConfig
from synack.tcp.pacing import Pacer, autosize, default_rate
from synack.tcp.rate_sample import RateSampler
from synack.tcp.scoreboard import Scoreboard

RATE = 10_000_000  # bit/s
PATH = PathConfig(delay=0.025, rate_bps=RATE, queue_bytes=62_500)


def cfg(cc: str = "cubic", **kw: object) -> TcpConfig:
    return TcpConfig(congestion_control=cc, rcv_buf=1 << 21, snd_buf=1 << 21, **kw)  # type: ignore[arg-type]


def test_rate_sample_from_one_flight() -> None:
    """Ten 1000-byte segments sent 1 ms apart, delivered by one ACK 100 ms after the
    first: 10,000 bytes over max(send 9 ms, ACK 100 ms) = 100,000 bytes/s; a sample
    shorter than the minimum RTT is discarded."""
    sb = Scoreboard()
    r = RateSampler()
    for i in range(10):
        s = sb.add(i * 1000, (i + 1) * 1000, i * 0.001, False)
        r.on_send(s, i * 0.001, i == 0, (i + 1) * 1000, 0)
    done = sb.ack(10_000)
    r.delivered += 10_000
    r.on_delivered(done, 0.1)
    rs = r.generate(0.1, 10_000, 0, 0.05)
    assert rs.delivered == 10_000 and rs.interval == pytest.approx(0.1)
    assert rs.delivery_rate == pytest.approx(100_000)
    assert rs.tx_in_flight == 10_000 and rs.lost == 0 and not rs.is_app_limited
    assert not rs.sender_limited  # the ACK phase was the longer
    assert rs.rtt == pytest.approx(0.1 - 0.009)
    assert r.info_rate == pytest.approx(100_000)
    # A segment each record is used once: the same segments again give no sample.
    r.on_delivered(done, 0.2)
    assert r.generate(0.2, 0, 0, 0.05).delivery_rate == 0
    # Below the minimum RTT: no rate.
    s = sb.add(10_000, 11_000, 0.3, False)
    r.on_send(s, 0.3, True, 1000, 0)
    r.delivered += 1000
    r.on_delivered(sb.ack(11_000), 0.31)
    assert r.generate(0.31, 1000, 0, 0.05).delivery_rate == 0


def test_rate_sample_says_when_the_sender_set_the_rate() -> None:
    """The first flight above was ACK-limited (ACK phase 100 ms, send phase 9 ms).  Here
    one segment is acked at 50 ms, then ten go out 10 ms apart (a slow sender) and are
    acked together 5 ms after the last: send phase 140 ms (since the acked segment's
    send), ACK phase 95 ms: the sender, not the path, set this rate."""
    sb = Scoreboard()
    r = RateSampler()
    s = sb.add(0, 1000, 0.0, False)
    r.on_send(s, 0.0, True, 1000, 0)
    r.delivered += 1000
    r.on_delivered(sb.ack(1000), 0.05)
    assert not r.generate(0.05, 1000, 0, 0.01).sender_limited
    for i in range(10):
        t = 0.05 + i * 0.01
        s = sb.add(1000 + i * 1000, 2000 + i * 1000, t, False)
        r.on_send(s, t, False, (i + 1) * 1000, 0)
    r.delivered += 10_000
    r.on_delivered(sb.ack(11_000), 0.145)
    rs = r.generate(0.145, 10_000, 0, 0.01)
    assert rs.sender_limited
    assert rs.delivery_rate == pytest.approx(10_000 / 0.14)


def test_sacked_bytes_count_once_in_delivered() -> None:
    """C.delivered counts a SACKed byte when it is SACKed, not again when the
    cumulative ACK covers it (Linux tp->delivered): through 2 % loss (many SACKs) the
    count ends at the bytes sent plus SYN and FIN."""
    s = Scenario(
        3,
        path=PathConfig(delay=0.025, rate_bps=RATE, queue_bytes=62_500, loss=0.02),
        config=cfg(),
        record_wire=False,
    )
    s.client.tracer = s.server.tracer = None
    s.listen(80, keep_data=False)
    ep = s.connect(80, bytes(500_000), keep_data=False, close_when_done=False)
    s.run(until=30.0)
    assert ep.conn.info()["sacked"] == 0 and ep.conn.info()["unacked"] == 0
    assert ep.conn.info()["retransmits"] > 0
    assert ep.conn._rsr.delivered == 500_000


def test_app_limited_and_delivery_rate_in_info() -> None:
    """A sender that runs out of data is app-limited (tcp_rate_check_app_limited);
    its delivery rate is shown in info() and near the path's rate for a bulk one."""
    s = Scenario(1, path=PATH, config=cfg(), record_wire=False)
    s.client.tracer = s.server.tracer = None
    s.listen(80, keep_data=False)
    ep = s.connect(80, bytes(3_000_000), keep_data=False, close_when_done=False)
    s.run(until=1.5)
    info = ep.conn.info()
    assert info["app_limited"] is False
    assert 0.5 * RATE / 8 < info["delivery_rate"] <= RATE / 8 * 1.01
    assert info["pacing_rate"] is None  # CUBIC does not ask for pacing
    s.run(until=8.0)  # all sent and acknowledged: the application is the limit now
    assert ep.conn.info()["unacked"] == 0
    ep.conn.send(b"x" * 30_000)  # a short write: sent at once, with window to spare
    s.run(until=9.0)
    # Its samples say so (info() keeps Linux's rule: an app-limited sample replaces
    # the rate shown only if it is higher).
    assert ep.conn._rsr.rs.is_app_limited is True


def test_default_pacing_rate_and_autosize() -> None:
    """Linux's default: cwnd/SRTT x 2 in slow start, x 1.2 after; ~1 ms quanta."""
    assert default_rate(100_000, 0, 0.1, True) == pytest.approx(2_000_000)
    assert default_rate(100_000, 0, 0.1, False) == pytest.approx(1_200_000)
    assert default_rate(100_000, 0, None, True) == 0
    assert autosize(12_500_000, 1448) == 8 * 1448  # 100 Mbit/s: 12.2 KB per ms
    assert autosize(100_000, 1448) == 2 * 1448  # at least two segments
    assert autosize(1e10, 1448) <= 65536
    p = Pacer()
    p.rate, p.quantum = 1_000_000, 10_000
    assert p.budget(0.0) == 10_000
    p.sent(10_000, 0.0)
    assert p.budget(0.005) == 0 and p.budget(0.01) == 10_000


def test_pacer_credits_a_late_timer() -> None:
    """A pacing timer that always fires 80 % of a quantum's time late (a 1 ms quantum,
    an event loop woken by epoll in whole milliseconds) still paces at the rate: the
    lateness is credited to the next wait (Linux tcp_update_skb_after_send credits up to
    half of it).  Without the credit it paced at 1/1.8 of the rate, and BBR's lower
    bounds, which follow what was delivered when losses are random, followed that down
    round after round."""
    p = Pacer()
    p.rate, p.quantum = 1_000_000, 1_000
    now, sent = 0.0, 0
    for _ in range(1000):
        assert p.budget(now) == 1_000
        p.sent(1_000, now)
        assert p.next_at > now  # never two releases at once
        sent += 1_000
        now = p.next_at + 0.8 * 1_000 / p.rate  # the timer fires late
    assert sent / now >= 0.99 * p.rate
    # Less than one wait is credited: a sender back from idle does not burst.
    p.sent(1_000, now + 10.0)
    assert p.next_at == pytest.approx(now + 10.0 + 0.0001)


def max_burst(s: Scenario, after: float) -> int:
    """The most data segments the client sent at one instant after ``after``."""
    times = [
        r["t"]
        for r in s.trace
        if r.get("ev") == "seg"
        and r.get("dir") == "out"
        and r.get("len")
        and r.get("conn", "").startswith("10.0.0.1")
        and r["t"] > after
    ]
    best = run = 0
    for i, t in enumerate(times):
        run = run + 1 if i and t == times[i - 1] else 1
        best = max(best, run)
    return best


@pytest.mark.parametrize(
    ("cc", "pacing", "paced"),
    [("bbr", None, True), ("cubic", True, True), ("cubic", None, False), ("bbr", False, False)],
)
def test_pacing_spreads_segments(cc: str, pacing: bool | None, paced: bool) -> None:
    """Paced, a window's data leaves in ~1 ms quanta spread over the RTT, through the
    pacing timer; unpaced it leaves in back-to-back bursts."""
    s = Scenario(1, path=PATH, config=cfg(cc, pacing=pacing))
    s.listen(80, keep_data=False)
    ep = s.connect(80, bytes(2_000_000), keep_data=False)
    s.run(until=1.0)
    info = ep.conn.info()
    assert (info["pacing_rate"] is not None) == paced
    assert (info["pacing_waits"] > 0) == paced
    burst = max_burst(s, 0.3)  # after the first RTT (no pacing rate before it)
    if paced:
        assert info["pacing_rate"] > 0
        assert burst <= 3, burst  # ~1 ms quanta: two segments at 10 Mbit/s
    else:
        assert burst >= 4, burst  # slow start: each ACK releases a burst
    assert ep.conn.info()["congestion_control"] == cc


def test_offload_chunks_are_sized_by_the_pacing_rate() -> None:
    """With segmentation offload, paced TSO chunks carry ~1 ms of data at the pacing
    rate (tcp_tso_autosize): at most a few segments on a 10 Mbit/s path, not 64 KB."""
    s = Scenario(1, path=PATH, config=cfg("bbr", max_segment_payload=65535))
    s.listen(80, keep_data=False)
    ep = s.connect(80, bytes(3_000_000), keep_data=False)
    s.run(until=2.0)
    sizes = [
        r["len"]
        for r in s.trace
        if r.get("ev") == "seg"
        and r.get("dir") == "out"
        and r.get("conn", "").startswith("10.0.0.1")
        and r.get("t", 0) > 0.5
    ]
    pr = ep.conn.info()["pacing_rate"]
    assert sizes and max(sizes) <= max(autosize(pr, ep.conn.eff_mss), 3 * ep.conn.eff_mss)
    assert max(sizes) < 65535 // 2


def test_bbr_is_registered_everywhere_cubic_is() -> None:
    assert "bbr" in algorithms.ALGORITHMS
    cc = algorithms.create("bbr", 1448, 10)
    assert cc.name == "bbr" and cc.paces and not cc.uses_prr
    assert TcpConfig(congestion_control="bbr").congestion_control == "bbr"
