"""Modern TCP on the simulated network: utilisation, loss recovery, fairness, ECN.

Long transfers over a rate-limited bottleneck with a drop-tail queue, fixed seeds,
every TcpConfig knob that matters given explicitly.  Tracing and the wire record
are off (``record_wire=False``, stack tracers ``None``) so a 50 MB transfer costs
a few CPU seconds; what a test needs to see of the wire it gets from a small tap.

* Utilisation (RFC 7323 §2): 100 Mbit/s, 50 ms RTT, a queue of one BDP: with
  window scaling a 50 MB transfer runs at >= 90 % of the link after slow start,
  with NewReno and with CUBIC; without it the flow is capped near 64 KB per RTT.
* Loss recovery (RFC 2018, RFC 6675, RFC 8985): 1 % random loss; SACK + RACK-TLP
  repairs >= 95 % of the losses without a retransmission timeout, and the
  tcp_info counters add up to what the network dropped.
* Fairness (RFC 9438 §5): two CUBIC flows through one bottleneck for 60 s.
* ECN (RFC 3168): a marking bottleneck signals congestion without drops.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
import struct
import time
from dataclasses import dataclass, field

import pytest

from helpers.paths import RATE, RTT, bottleneck, config
from synack.scenarios.apps import Endpoint
from synack.scenarios.scenario import CLIENT_IP, Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig

MASK = 0xFFFFFFFF
CLIENT_B = bytes(int(x) for x in CLIENT_IP.split("."))

pytestmark = pytest.mark.slow


@dataclass
class Bulk:
    """One client -> server bulk transfer and what was seen of it."""

    s: Scenario
    client: Endpoint
    server: Endpoint
    size: int
    done_at: float
    cpu: float
    intact: bool
    ss_end: tuple[float, int] | None = None  # (time, bytes delivered) when slow start ended
    drops: list[tuple[float, int]] = field(default_factory=list)  # data dropped: (t, end)
    acks: list[tuple[float, int]] = field(default_factory=list)  # ACK advances seen by client
    rto_times: list[float] = field(default_factory=list)

    @property
    def goodput(self) -> float:
        """Application bytes per second over the whole transfer (bit/s)."""
        return self.size * 8 / self.done_at

    @property
    def goodput_after_slow_start(self) -> float:
        assert self.ss_end is not None, "slow start never ended"
        t0, b0 = self.ss_end
        return (self.size - b0) * 8 / (self.done_at - t0)

    def repaired_at(self, end: int) -> float:
        """When the client first saw a cumulative ACK covering stream offset ``end``."""
        i = bisect.bisect_left(self.acks, end, key=lambda a: a[1])
        return self.acks[i][0] if i < len(self.acks) else self.done_at


def bulk(
    cfg: TcpConfig,
    path: PathConfig,
    size: int,
    *,
    seed: int = 1,
    track: bool = False,
    limit: float = 20_000.0,
) -> Bulk:
    """Send ``size`` random bytes client -> server and wait until all arrived.

    With ``track`` a tap records every data packet the network dropped (time and
    stream end offset), every advance of the cumulative ACK delivered to the
    client, and the times at which the client's RTO fired.
    """
    data = random.Random(seed).randbytes(size)
    s = Scenario(seed, path=path, config=cfg, record_wire=False)
    s.client.tracer = s.server.tracer = None
    s.listen(80, keep_data=False)
    ep = s.connect(80, data, keep_data=False)
    conn = ep.conn
    result = Bulk(s, ep, ep, size, 0.0, 0.0, False)

    def watch_slow_start(now: float) -> None:
        if not conn.congestion.in_slow_start:
            srv = s.server_endpoints
            result.ss_end = (now, srv[0].received_count if srv else 0)
        else:
            s.net.call_later(0.001, watch_slow_start)

    s.net.call_later(0.001, watch_slow_start)
    if track:
        base = conn.iss + 1
        last_ack = [0]
        rto_seen = [0]

        def tap(
            now: float, kind: str, src: bytes, dst: bytes, pkt: bytes, reason: str | None
        ) -> None:
            fired = conn.stats["rto_fired"]
            if fired != rto_seen[0]:
                rto_seen[0] = fired
                result.rto_times.append(now)
            ihl = (pkt[0] & 15) * 4
            if kind == "drop" and src == CLIENT_B:
                doff = (pkt[ihl + 12] >> 4) * 4
                plen = struct.unpack_from("!H", pkt, 2)[0] - ihl - doff
                if plen > 0:
                    sq = struct.unpack_from("!I", pkt, ihl + 4)[0]
                    result.drops.append((now, ((sq - base) & MASK) + plen))
            elif kind == "deliver" and dst == CLIENT_B:
                ack = (struct.unpack_from("!I", pkt, ihl + 8)[0] - base) & MASK
                if ack < 1 << 31 and ack > last_ack[0]:
                    last_ack[0] = ack
                    result.acks.append((now, ack))

        s.net.add_tap(tap)
    t0 = time.process_time()

    def done() -> bool:
        srv = s.server_endpoints
        return bool(srv) and srv[0].received_count >= size

    s.run(until=limit, stop=done)
    result.cpu = time.process_time() - t0
    assert done(), f"transfer incomplete at {s.now} s"
    result.server = s.server_endpoint
    result.done_at = s.now
    result.intact = result.server.sha256 == hashlib.sha256(data).hexdigest()
    return result


# ============================================================== (a) utilisation
UTIL_SIZE = 50_000_000


@functools.cache
def utilisation_run(cc: str, wscale: bool) -> Bulk:
    cfg = config(cc) if wscale else config(cc, window_scaling=False, rcv_buf=65535)
    return bulk(cfg, bottleneck(), UTIL_SIZE)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_utilisation_long_fat_pipe_with_window_scaling(cc: str) -> None:
    """RFC 7323 §2: 100 Mbit/s, 50 ms RTT, one-BDP queue, 4 MiB buffers: after slow
    start (from the moment cwnd first leaves slow start to the last byte) the 50 MB
    transfer delivers >= 90 % of the link rate, intact, without a timeout."""
    r = utilisation_run(cc, True)
    info = r.client.conn.info()
    assert r.intact
    assert info["wscale"] == (7, 7)  # 4 MiB buffers: shift 7 both ways
    assert info["rto_fired"] == 0
    assert r.ss_end is not None
    goodput = r.goodput_after_slow_start
    assert goodput >= 0.90 * RATE, f"{cc}: {goodput / 1e6:.2f} Mbit/s after slow start"
    assert goodput <= RATE  # sanity: never above the link
    # The window really exceeded what 16 bits can say: more than 64 KB in flight.
    assert info["cwnd"] > 4 * 65535


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_utilisation_without_window_scaling_capped_near_64k_per_rtt(cc: str) -> None:
    """RFC 7323 §1.1: without window scaling the receive window is at most 65535
    bytes, so at most that much is sent per round trip: the same transfer runs at
    65535 bytes per 50 ms (within 10 %), about a tenth of the link."""
    r = utilisation_run(cc, False)
    info = r.client.conn.info()
    assert r.intact
    assert info["wscale"] == (0, 0)
    per_rtt = r.goodput / 8 * RTT
    assert 0.9 * 65535 <= per_rtt <= 1.1 * 65535, f"{per_rtt:.0f} bytes per RTT"
    assert r.server.conn.info()["rcv_wnd"] <= 65535
    with_ws = utilisation_run(cc, True)
    assert with_ws.goodput > 5 * r.goodput


# ============================================================ (b) loss recovery
LOSS_SIZE = 20_000_000


@functools.cache
def loss_run(cc: str, sack: bool) -> Bulk:
    return bulk(config(cc, sack=sack), bottleneck(loss=0.01), LOSS_SIZE, track=True)


def without_rto(r: Bulk) -> tuple[int, int]:
    """(loss events, of which repaired without an RTO).  A loss event is a data packet
    the network dropped; it counts as repaired by a timeout if any RTO fired between
    the drop and the cumulative ACK that covered it (a generous count)."""
    bad = 0
    for t, end in r.drops:
        fixed = r.repaired_at(end)
        if any(t <= x <= fixed for x in r.rto_times):
            bad += 1
    return len(r.drops), len(r.drops) - bad


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_loss_recovery_sack_rack_repairs_losses_without_rto(cc: str) -> None:
    """RFC 6675 + RFC 8985: at 1 % random loss (both directions) at least 95 % of the
    data packets the network dropped are repaired without a retransmission timeout."""
    r = loss_run(cc, True)
    assert r.intact
    assert r.client.conn.info()["sack"] is True
    events, fast = without_rto(r)
    assert events > 100  # 1 % of ~14,000 data packets
    assert fast >= 0.95 * events, f"{fast}/{events} repaired without RTO, RTOs at {r.rto_times}"


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_loss_recovery_info_counters_agree_with_the_network(cc: str) -> None:
    """tcp_info against the network's own record: every dropped data packet was
    retransmitted, and the sender retransmitted nothing that was not lost: each
    retransmission repairs a network drop, a segment the receiver discarded
    (out-of-order block limit) or is a tail loss probe; losses were found by RACK."""
    r = loss_run(cc, True)
    info = r.client.conn.info()
    srv = r.server.conn.info()
    dropped = len(r.drops)
    assert dropped > 100
    assert info["retransmits"] >= dropped
    assert info["retransmits"] <= dropped + srv["ooo_block_limit_drops"] + info["tlp_probes"]
    assert info["lost_segments"] >= dropped - info["tlp_probes"]
    assert info["rack_losses"] <= info["lost_segments"] <= info["retransmits"]
    assert info["rack_losses"] >= 0.9 * info["lost_segments"]  # RACK finds the losses
    assert info["fast_retransmits"] == info["recoveries"] > 0
    assert srv["bytes_received"] == LOSS_SIZE


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_loss_recovery_without_sack_uses_newreno_and_survives(cc: str) -> None:
    """RFC 6582: the same path with SACK off completes intact, recovering by duplicate
    ACKs and partial ACKs (no RACK, no TLP); SACK+RACK never needs more RTOs."""
    r = loss_run(cc, False)
    info = r.client.conn.info()
    assert r.intact and info["sack"] is False
    assert info["rack_losses"] == 0 and info["tlp_probes"] == 0
    assert info["fast_retransmits"] > 0
    assert info["retransmits"] >= len(r.drops)
    assert loss_run(cc, True).client.conn.info()["rto_fired"] <= info["rto_fired"]


@pytest.mark.xfail(
    strict=True,
    reason="REQUIREMENT NOT MET (issue 4 asks >= 2x; no bug "
    "found): with 1% random loss SACK+RACK and NewReno partial-ACK recovery "
    "both avoid timeouts; measured SACK/no-SACK goodput 1.0x-1.2x",
)
@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_loss_recovery_sack_goodput_at_least_twice_without_sack(cc: str) -> None:
    """Issue 4: 'goodput is at least 2x that of the same run with SACK disabled'."""
    with_sack, without = loss_run(cc, True), loss_run(cc, False)
    ratio = with_sack.goodput / without.goodput
    assert ratio >= 2.0, (
        f"SACK {with_sack.goodput / 1e6:.2f} Mbit/s, no SACK "
        f"{without.goodput / 1e6:.2f} Mbit/s: {ratio:.2f}x"
    )


# ================================================================= (c) fairness
FAIR_RATE = 20_000_000
FAIR_TIME = 60.0


@functools.cache
def two_flows(cc: str) -> tuple[int, int]:
    """Two connections from the client to the server, started together, through one
    20 Mbit/s bottleneck (50 ms RTT, one-BDP drop-tail queue) for 60 s; bytes each
    delivered to its server application."""
    s = Scenario(1, path=bottleneck(FAIR_RATE), config=config(cc), record_wire=False)
    s.client.tracer = s.server.tracer = None
    s.listen(80, keep_data=False)
    big = bytes(int(FAIR_RATE * FAIR_TIME / 8))
    s.connect(80, big, keep_data=False, local_port=40001)
    s.connect(80, big, keep_data=False, local_port=40002)
    s.run(until=FAIR_TIME)
    eps = sorted(s.server_endpoints, key=lambda e: e.conn.remote_port)
    assert len(eps) == 2
    a, b = (e.received_count for e in eps)
    return a, b


def test_fairness_two_cubic_flows_within_20_percent() -> None:
    """RFC 9438 §5 (fairness to itself): two CUBIC flows sharing the bottleneck for 60
    simulated seconds get goodputs within 20 % of each other."""
    a, b = two_flows("cubic")
    assert (a + b) * 8 / FAIR_TIME >= 0.9 * FAIR_RATE  # together they fill the link
    assert min(a, b) >= 0.8 * max(a, b), f"{a} vs {b} bytes: {min(a, b) / max(a, b):.3f}"


def test_fairness_two_newreno_flows_control() -> None:
    """The same bottleneck with NewReno (AIMD 1, 1/2): the harness itself shares fairly,
    which locates the CUBIC gap above in the controller, not the simulator."""
    a, b = two_flows("newreno")
    assert (a + b) * 8 / FAIR_TIME >= 0.9 * FAIR_RATE
    assert min(a, b) >= 0.8 * max(a, b), f"{a} vs {b} bytes: {min(a, b) / max(a, b):.3f}"


# ====================================================================== (d) ECN
ECN_RATE = 20_000_000
ECN_SIZE = 10_000_000


@functools.cache
def ecn_run(cc: str, mode: str) -> Bulk:
    """20 Mbit/s, 50 ms RTT, one-BDP queue that marks ECT packets CE above a quarter of
    it (RFC 3168 §5, as a RED/AQM would) and drops only when full."""
    q = int(ECN_RATE * RTT / 8)
    path = bottleneck(ECN_RATE, ecn_mark=True, ecn_threshold_bytes=q // 4)
    return bulk(config(cc, ecn=mode), path, ECN_SIZE)


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_ecn_marks_replace_drops(cc: str) -> None:
    """RFC 3168: with ECN negotiated both ways the bottleneck marks instead of dropping;
    the receiver echoes every CE, the sender reduces (ecn_reductions > 0) and has far
    fewer retransmissions than the same run without ECN, which loses packets."""
    on, off = ecn_run(cc, "on"), ecn_run(cc, "off")
    ci, si = on.client.conn.info(), on.server.conn.info()
    assert on.intact and off.intact
    assert ci["ecn"] is True and si["ecn"] is True
    assert on.s.net.stats["ecn_marked"] > 0
    assert si["ecn_ce_in"] == on.s.net.stats["ecn_marked"]  # every mark reached the receiver
    assert ci["ecn_reductions"] > 0
    off_info = off.client.conn.info()
    assert off_info["ecn"] is False and off.s.net.stats["ecn_marked"] == 0
    assert off.s.net.stats["dropped_queue"] > 0 and off_info["retransmits"] > 0
    assert ci["retransmits"] * 10 <= off_info["retransmits"], (
        ci["retransmits"],
        off_info["retransmits"],
    )
    assert on.s.net.stats["dropped_queue"] * 10 <= off.s.net.stats["dropped_queue"]
