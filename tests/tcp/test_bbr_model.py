"""BBR's model under loss, driven directly with rate samples (no network, no clock
but the one passed in): the lower bounds bw_lo/inflight_lo (draft-ietf-ccwg-bbr
§5.5.10.3) and cwnd in fast recovery (Linux v3 bbr_set_cwnd).

Each test starts from a flow cruising in ProbeBW at a known model (1 MB/s, 50 ms
min RTT: a 50,000-byte BDP of fifty 1000-byte segments) and feeds it ACKs of one
segment each, sent one BDP of deliveries earlier, so a round is fifty ACKs.  A
loss round is judged on its last ACK, and that ACK's sample opens the next one
(Linux bbr_advance_latest_delivery_signals), so a change of rate shows a round
late."""

from __future__ import annotations

import pytest

from synack.tcp import congestion  # noqa: F401 - registers the classes (import order)
from synack.tcp.bbr import CRUISE, DOWN, INF, Bbr
from synack.tcp.rate_sample import RateSample, RateSampler

MSS = 1000
BW = 1_000_000.0  # bytes/s
RTT = 0.05
BDP = int(BW * RTT)
OPEN, RECOVERY = 0, 3


class Flow:
    """A Bbr in ProbeBW with the model above, and the ACK stream that feeds it."""

    def __init__(self, state: str = CRUISE) -> None:
        b = self.b = Bbr(MSS, 10)
        b.filled_pipe = True
        b.min_rtt = b.probe_rtt_min_delay = RTT
        b.bw_hi = [BW, BW]
        b.bw = BW
        b.cwnd = 2 * BDP
        b.bw_probe_wait = 1e9  # no bandwidth probe during a test
        b._enter(state, 0.9 if state == DOWN else 1.0, 2.0)
        self.sampler = RateSampler()
        self.now = 1.0
        self.lost = 0

    def round(
        self,
        rate: float,
        *,
        app_limited: bool = False,
        sender_limited: bool = False,
        losses: int = 1,
        inflight: int = BDP,
        ca_state: int = OPEN,
    ) -> None:
        """One round of ACKs delivering at ``rate``, ``losses`` segments marked lost
        early in it."""
        b, r = self.b, self.sampler
        for i in range(BDP // MSS):
            self.now += MSS / BW
            r.delivered += MSS
            rs = RateSample()
            rs.delivered = BDP
            rs.prior_delivered = r.delivered - BDP
            rs.delivery_rate = rate
            rs.interval = BDP / rate
            rs.is_app_limited = app_limited
            rs.sender_limited = sender_limited
            rs.tx_in_flight = BDP
            rs.newly_acked = MSS
            rs.newly_lost = MSS if i < losses else 0
            self.lost += rs.newly_lost
            rs.lost = rs.newly_lost
            rs.rtt = RTT
            b.on_rate_sample(rs, r, inflight, False, ca_state, self.now)


def test_app_limited_loss_round_does_not_cut_bw_lo() -> None:
    """The round after ProbeRTT acks the flight ProbeRTT sent at half the rate and marked
    app-limited: a loss in it is no reason to cut bw_lo to 70 % of the bandwidth."""
    f = Flow()
    for _ in range(3):
        f.round(0.5 * BW, app_limited=True)
    assert f.b.bw_lo == INF
    assert f.b.bw == BW
    # The same round, not app-limited, is congestion: bw_lo falls by BETA at most.
    f.round(0.5 * BW)
    assert f.b.bw_lo == pytest.approx(f.b.BETA * BW)


def test_sender_limited_loss_round_does_not_cut_bw_lo() -> None:
    """A host too busy to keep its pacing rate sends at 80 % of it for a few rounds, and
    the path delivers all of it (each sample's ACK phase no longer than its send phase)
    but for a random loss: that is the sender's rate, not congestion, and bw_lo stays.
    The same rounds with the ACKs spread out by a queue (ACK-limited) are congestion."""
    f = Flow()
    for _ in range(4):
        f.round(0.8 * BW, sender_limited=True)
    assert f.b.bw_lo == INF
    for _ in range(2):
        f.round(0.8 * BW)
    # 0.8 x bw, less the pacing margin, and with the round's one loss in 51 added back
    assert f.b.bw_lo == pytest.approx(0.8 * BW / (1 - Bbr.PACING_MARGIN) * 51 / 50)


def test_probe_bw_down_rounds_do_not_ratchet_bw_lo() -> None:
    """ProbeBW_DOWN paces at 0.9 x bw (x 0.99, the pacing margin) on purpose; a random loss
    in such a round must not make that the new bw_lo, nor its smaller flight the new
    inflight_lo (each further round of DOWN would cut another 10 %)."""
    f = Flow(DOWN)
    paced = 0.9 * BW * (1 - Bbr.PACING_MARGIN)
    for _ in range(4):
        f.round(paced, inflight=2 * BDP)  # flight above BDP: DOWN goes on
    assert f.b.state == DOWN
    assert f.b.bw_lo >= BW * 0.999
    assert f.b.inflight_lo >= BDP
    # Delivering well below what DOWN paced is congestion: cut by BETA.
    before = f.b.bw_lo
    f.round(0.5 * BW, inflight=2 * BDP)
    f.round(0.5 * BW, inflight=2 * BDP)
    assert f.b.bw_lo == pytest.approx(f.b.BETA * before)


def test_random_loss_below_the_threshold_does_not_ratchet_bw_lo() -> None:
    """One segment in 51 lost at random (just under BBRLossThresh, 2 %): the rate the
    path delivered reads 50/51 of what it carried, and taken as is every lossy round
    would cut bw_lo by that much again.  Above the threshold the shortfall stands."""
    f = Flow()
    paced = BW * (1 - Bbr.PACING_MARGIN)
    for _ in range(5):
        f.round(paced * 50 / 51, losses=1)
    assert f.b.bw_lo == pytest.approx(BW)
    for _ in range(2):
        f.round(paced * 47 / 50, losses=3)  # 3 in 50: 6 %, congestion as the draft says
    assert f.b.bw_lo == pytest.approx(BW * 47 / 50)


def test_c18_fast_recovery_leaves_cwnd_to_the_model() -> None:
    """The same ACKs (five losses, a flight of half the BDP) in Recovery and outside it
    leave the same cwnd: Linux v3 keeps cwnd where the model puts it, where the draft's
    packet conservation would pin it to the flight for a round and take each lost
    segment off it, on every recovery of a lossy path."""
    flows = Flow(), Flow()
    for _ in range(2):
        for f, ca in zip(flows, (OPEN, RECOVERY), strict=True):
            f.round(BW, inflight=BDP // 2, ca_state=ca, losses=5)
        assert flows[1].b.cwnd == flows[0].b.cwnd
        assert flows[1].b.cwnd > BDP  # inflight_lo (2 x BDP cut by BETA at most) bounds it


def test_rto_cuts_cwnd_and_leaving_loss_restores_it() -> None:
    """An RTO (the Loss state) still starts from one segment; leaving Loss brings cwnd
    back to at least what it was (Linux v3 bbr_exit_loss_recovery)."""
    f = Flow()
    before = f.b.cwnd
    f.b.on_timeout(BDP, f.now)
    assert f.b.cwnd == MSS
    f.round(BW, ca_state=4, losses=0, inflight=MSS)
    assert f.b.cwnd < before
    f.round(BW, ca_state=OPEN, losses=0, inflight=MSS)
    assert f.b.cwnd >= before
