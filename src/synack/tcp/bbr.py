"""BBR congestion control, version 3 (draft-ietf-ccwg-bbr-02, "BBRv3").

BBR models the path instead of reacting to each loss: the bottleneck bandwidth
(a windowed maximum of delivery-rate samples, §5.5.5) and the round-trip
propagation delay (a windowed minimum RTT, §5.5.6).  It paces at a gain times
the bandwidth and bounds the data in flight by a gain times their product, the
BDP.  Loss and ECN do not cut the rate directly; they set short-term bounds
(``inflight_hi`` above which loss exceeded 2 %, ``bw_lo``/``inflight_lo`` for the
current round, §5.5.10), so random loss below that threshold costs almost
nothing, which is why BBR is not fooled by it.

States (§4.3): Startup (pacing gain 2.77 until the bandwidth stops growing 25 %
per round for three rounds, or loss is too high), Drain (gain 0.35 until the
queue Startup built is gone), ProbeBW cycling Down (0.9), Cruise (1.0), Refill
(1.0) and Up (1.25), and ProbeRTT (cwnd = BDP/2 for 200 ms and a round when the
minimum RTT has not been refreshed for 5 s).

Units are bytes and seconds (the draft counts packets where Linux's tcp_bbr.c
counts them too; here MSS-sized multiples of bytes).  docs/design.md lists where
this follows the draft and where Linux's ``tcp_bbr.c``.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from .congestion import CongestionControl

if TYPE_CHECKING:
    from .rate_sample import RateSample, RateSampler

INF = math.inf

STARTUP = "Startup"
DRAIN = "Drain"
DOWN = "ProbeBW_DOWN"
CRUISE = "ProbeBW_CRUISE"
REFILL = "ProbeBW_REFILL"
UP = "ProbeBW_UP"
PROBE_RTT = "ProbeRTT"
PROBE_BW = (DOWN, CRUISE, REFILL, UP)
STATES = (STARTUP, DRAIN, DOWN, CRUISE, REFILL, UP, PROBE_RTT)

# ack phases (§5.3.3.6)
ACKS_INIT, ACKS_REFILLING, ACKS_PROBE_STARTING, ACKS_PROBE_FEEDBACK, ACKS_PROBE_STOPPING = range(5)

RECOVERY = 3  # CaState.RECOVERY and LOSS (loss_state.py), passed as ints
LOSS = 4


class Bbr(CongestionControl):
    """draft-ietf-ccwg-bbr-02 on delivery-rate samples (:mod:`.rate_sample`)."""

    __slots__ = (
        "ack_epoch_acked",
        "ack_epoch_start",
        "ack_phase",
        "bw",
        "bw_hi",
        "bw_latest",
        "bw_lo",
        "bw_probe_samples",
        "bw_probe_up_acks",
        "bw_probe_up_rounds",
        "bw_probe_wait",
        "cwnd_gain",
        "cycle_stamp",
        "delivered",
        "events",
        "extra_acked",
        "extra_acked_idx",
        "extra_acked_rounds",
        "filled_pipe",
        "full_bw",
        "full_bw_count",
        "full_bw_now",
        "has_seen_rtt",
        "idle_restart",
        "inflight",
        "inflight_hi",
        "inflight_latest",
        "inflight_lo",
        "initial_window_bytes",
        "latest_sender_limited",
        "loss_events_in_round",
        "loss_in_round",
        "loss_round_delivered",
        "loss_round_start",
        "min_rtt",
        "min_rtt_stamp",
        "next_round_delivered",
        "pacing_gain",
        "prev_ca_state",
        "prior_cwnd",
        "probe_rtt_done_stamp",
        "probe_rtt_expired",
        "probe_rtt_min_delay",
        "probe_rtt_min_stamp",
        "probe_rtt_round_done",
        "probe_up_cnt",
        "rng",
        "round_count",
        "round_delivered",
        "round_lost",
        "round_start",
        "rounds_since_bw_probe",
        "state",
    )

    name = "bbr"
    uses_prr = False
    wants_rate_sample = True
    paces = True

    STARTUP_PACING_GAIN = 2.77  # 4 ln 2 (§5.3.1.1)
    STARTUP_CWND_GAIN = 2.0
    DRAIN_PACING_GAIN = 0.35  # §5.3.2
    DEFAULT_CWND_GAIN = 2.0
    UP_CWND_GAIN = 2.25
    PROBE_RTT_CWND_GAIN = 0.5
    PACING_MARGIN = 0.01  # pace 1 % below the estimate (§5.6.2)
    LOSS_THRESH = 0.02  # §5.5.10.2
    ECN_THRESH = 0.5
    BETA = 0.7
    HEADROOM = 0.15
    FULL_BW_THRESH = 1.25
    FULL_BW_COUNT = 3
    FULL_LOSS_COUNT = 6
    MIN_RTT_FILTER_LEN = 10.0
    PROBE_RTT_INTERVAL = 5.0
    PROBE_RTT_DURATION = 0.2
    EXTRA_ACKED_ROUNDS = 5  # two windows of 5 rounds: a 10-round max filter
    EXTRA_ACKED_MAX = 0.1  # seconds of bandwidth at most (Linux bbr_extra_acked_max_us)

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self.rng = random.Random(0)
        self.events: list[dict[str, Any]] = []
        self.initial_window_bytes = self.cwnd
        self.delivered = 0
        self.inflight = 0
        self.prior_cwnd = 0
        self.prev_ca_state = 0
        self.idle_restart = False
        # model
        self.min_rtt = INF
        self.min_rtt_stamp = 0.0
        self.probe_rtt_min_delay = INF
        self.probe_rtt_min_stamp = -1.0  # set by the first ACK (the clock may not start at 0)
        self.probe_rtt_expired = False
        self.probe_rtt_done_stamp = 0.0
        self.probe_rtt_round_done = False
        self.bw_hi = [0.0, 0.0]  # max filter over the last two ProbeBW cycles
        self.bw = 0.0
        self.bw_lo = INF
        self.bw_latest = 0.0
        self.inflight_hi = INF
        self.inflight_lo = INF
        self.inflight_latest = 0
        self.latest_sender_limited = True
        self.extra_acked = [0, 0]
        self.extra_acked_idx = 0
        self.extra_acked_rounds = 0
        self.ack_epoch_start = 0.0
        self.ack_epoch_acked = 0
        # rounds
        self.next_round_delivered = 0
        self.round_count = 0
        self.round_start = False
        self.rounds_since_bw_probe = 0
        self.loss_round_delivered = 0
        self.loss_round_start = False
        self.loss_in_round = False
        self.loss_events_in_round = 0
        self.round_lost = 0
        self.round_delivered = 0
        # full pipe
        self.filled_pipe = False
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.full_bw_now = False
        # ProbeBW
        self.cycle_stamp = 0.0
        self.ack_phase = ACKS_INIT
        self.bw_probe_wait = 0.0
        self.bw_probe_samples = 0
        self.bw_probe_up_rounds = 0
        self.bw_probe_up_acks = 0
        self.probe_up_cnt = INF
        self.has_seen_rtt = False
        self.state = STARTUP
        self.pacing_gain = self.STARTUP_PACING_GAIN
        self.cwnd_gain = self.STARTUP_CWND_GAIN
        # Before an RTT is known: IW per millisecond (Linux bbr_init_pacing_rate_from_rtt).
        self.pacing_rate = self.STARTUP_PACING_GAIN * self.cwnd / 0.001
        self.send_quantum = 2 * mss

    def seed(self, value: int) -> None:
        self.rng.seed(value)

    # ------------------------------------------------------------ interface
    @property
    def in_slow_start(self) -> bool:
        return self.state == STARTUP

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """cwnd is set per rate sample (:meth:`on_rate_sample`), as Linux's cong_control."""

    def on_loss(self, flight: int, now: float) -> None:
        """Fast recovery starts: remember cwnd (§5.6.4.4 BBRSaveCwnd; Linux v3
        bbr_ssthresh) and nothing else: cwnd is the model's (see :meth:`_recovery`)."""
        self._save_cwnd()

    def on_timeout(self, flight: int, now: float) -> None:
        """RTO (§5.6.4.4): save cwnd, and send one segment (everything is marked lost)."""
        self._save_cwnd()
        self.cwnd = self.mss
        self.full_bw = 0.0  # Linux: the bandwidth plateau must be seen afresh
        self.full_bw_count = 0

    def on_repeat_timeout(self, now: float) -> None:
        self.cwnd = self.mss

    def on_recovery_end(self, now: float) -> None:
        """Fast recovery did not cut cwnd, so there is nothing to restore."""

    def on_ecn(self, flight: int, now: float) -> None:
        """ECN is answered through the rate samples' CE fraction, not by a cut."""

    def on_idle_restart(self, restart_window: int, now: float) -> None:
        """§5.4.2 BBRHandleRestartFromIdle: no cwnd cut; pace at the estimate."""
        self.idle_restart = True
        self.ack_epoch_start = now
        self.ack_epoch_acked = 0
        if self.state in PROBE_BW:
            self._set_pacing_rate(1.0)
        elif self.state == PROBE_RTT:
            self._check_probe_rtt_done(now)

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        if not self.has_seen_rtt and rtt > 0:
            self.has_seen_rtt = True
            self.pacing_rate = self.pacing_gain * self.cwnd / rtt * (1 - self.PACING_MARGIN)

    def info(self) -> dict[str, Any]:
        return {
            "bbr_state": self.state,
            "bbr_bw": self.bw,
            "bbr_max_bw": self._max_bw(),
            "bbr_min_rtt": None if self.min_rtt == INF else self.min_rtt,
            "bbr_pacing_gain": self.pacing_gain,
            "bbr_cwnd_gain": self.cwnd_gain,
            "bbr_inflight_hi": None if self.inflight_hi == INF else int(self.inflight_hi),
            "bbr_inflight_lo": None if self.inflight_lo == INF else int(self.inflight_lo),
            "bbr_bw_lo": None if self.bw_lo == INF else self.bw_lo,
            "bbr_round_count": self.round_count,
        }

    def on_rate_sample(
        self,
        rs: RateSample,
        sampler: RateSampler,
        inflight: int,
        cwnd_limited: bool,
        ca_state: int,
        now: float,
    ) -> None:
        """§5.2.3 BBRUpdateOnACK: update the model and state, then pacing rate, send
        quantum and cwnd."""
        self.delivered = sampler.delivered
        self.inflight = inflight
        if self.probe_rtt_min_stamp < 0:  # §5.2.1 BBRInitMinRTT: the filters start now
            self.probe_rtt_min_stamp = self.min_rtt_stamp = self.cycle_stamp = now
            self.ack_epoch_start = now
        old = self.state
        self._update_round(rs)
        self._recovery(ca_state)
        # BBRUpdateModelAndState
        self._update_latest_delivery_signals(rs)
        self._update_congestion_signals(rs)
        self._update_ack_aggregation(rs, now)
        self._check_full_bw_reached(rs)
        self._check_startup_done(rs, ca_state)
        self._check_drain_done(now)
        self._update_probe_bw_cycle_phase(rs, cwnd_limited, now)
        self._update_min_rtt(rs, now)
        self._check_probe_rtt(rs, sampler, now)
        self._advance_latest_delivery_signals(rs)
        self.bw = min(self._max_bw(), self.bw_lo)  # BBRBoundBWForModel
        # BBRUpdateControlParameters
        self._set_pacing_rate(self.pacing_gain)
        self._set_send_quantum()
        self._set_cwnd(rs)
        if self.state != old:
            self.events.append({"event": "bbr_state", "old": old, "new": self.state, **self.info()})

    # ------------------------------------------------------------ rounds and recovery
    def _update_round(self, rs: RateSample) -> None:
        """§5.5.1: a round ends when a segment sent after the last round began is
        delivered."""
        if rs.delivered > 0 and rs.prior_delivered >= self.next_round_delivered:
            self.next_round_delivered = self.delivered
            self.round_count += 1
            self.rounds_since_bw_probe += 1
            self.round_start = True
        else:
            self.round_start = False

    def _start_round(self) -> None:
        self.next_round_delivered = self.delivered

    def _save_cwnd(self) -> None:
        """§5.6.4.4 BBRSaveCwnd."""
        if self.prev_ca_state < RECOVERY and self.state != PROBE_RTT:
            self.prior_cwnd = self.cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, self.cwnd)

    def _recovery(self, ca_state: int) -> None:
        """Linux v3 (bbr_set_cwnd, bbr_exit_loss_recovery): fast recovery leaves cwnd to
        the model, and only leaving Loss (after an RTO cut cwnd to one segment) brings
        cwnd back to at least what it was.

        Here synack follows Linux's BBRv3 rather than the draft's §5.6.4.4 (and Linux
        v1's bbr_set_cwnd_to_recover_or_restore), which hold cwnd at the flight for the
        first round of every fast recovery and take each newly lost segment off it.  On
        a path with random loss a recovery starts nearly every round, so cwnd would sit
        at the flight (never growing toward the BDP) and inflight_lo, initialised from
        cwnd, would inherit the cut; the loss response the draft wants is already
        inflight_lo/bw_lo (§5.5.10.3).  docs/design.md "BBR" has the figures."""
        if self.prev_ca_state == LOSS and ca_state != LOSS:
            self.cwnd = max(self.cwnd, self.prior_cwnd)
        self.prev_ca_state = ca_state

    # ------------------------------------------------------------ delivery signals
    def _update_latest_delivery_signals(self, rs: RateSample) -> None:
        """§5.5.10.3: the newest bandwidth and volume delivered, per loss round."""
        self.loss_round_start = False
        rate = rs.delivery_rate
        if rate >= self.bw_latest:  # the round's best (newest of equals), and who set its pace
            self.bw_latest = rate
            self.latest_sender_limited = rs.is_app_limited or rs.sender_limited
        self.inflight_latest = max(self.inflight_latest, rs.delivered)
        if rs.delivered > 0 and rs.prior_delivered >= self.loss_round_delivered:
            self.round_delivered = self.delivered - self.loss_round_delivered
            self.loss_round_delivered = self.delivered
            self.loss_round_start = True

    def _advance_latest_delivery_signals(self, rs: RateSample) -> None:
        if self.loss_round_start:
            self.bw_latest = rs.delivery_rate
            self.inflight_latest = rs.delivered
            self.latest_sender_limited = (
                rs.is_app_limited or rs.sender_limited or rs.delivery_rate <= 0
            )

    def _update_congestion_signals(self, rs: RateSample) -> None:
        """§5.5.10.3 BBRUpdateCongestionSignals, with the max-bandwidth filter (§5.5.5)."""
        rate = rs.delivery_rate
        if rate > self.bw_hi[1] and (rate >= self._max_bw() or not rs.is_app_limited):
            self.bw_hi[1] = rate
        if rs.lost > 0 or self._ce_too_high(rs):
            self.loss_in_round = True
        if rs.newly_lost > 0:
            self.loss_events_in_round += 1
            self.round_lost += rs.newly_lost
        if not self.loss_round_start:
            return
        self._adapt_lower_bounds_from_congestion()
        self.loss_in_round = False
        self.round_lost = 0

    def _ce_too_high(self, rs: RateSample) -> bool:
        return rs.ce > 0 and rs.delivered > 0 and rs.ce > self.ECN_THRESH * rs.delivered

    def _max_bw(self) -> float:
        a, b = self.bw_hi
        return a if a > b else b

    def _advance_max_bw_filter(self) -> None:
        """A new ProbeBW cycle: the filter keeps this cycle's and the last one's maximum."""
        self.bw_hi[0] = self.bw_hi[1]
        self.bw_hi[1] = 0.0

    def _adapt_lower_bounds_from_congestion(self) -> None:
        """§5.5.10.3: after a round with loss (or CE), outside bandwidth probing,
        bw_lo and inflight_lo fall to what was delivered, at most by BETA."""
        if self.state in (STARTUP, REFILL, UP):  # BBRIsProbingBW
            return
        if not self.loss_in_round or self.latest_sender_limited:
            # The round's best sample was paced by the sender, not by the path: it was
            # app-limited (ProbeRTT marks its flight so, and the round after it is still
            # acking that flight), or its ACKs came as fast as its data went out (a
            # sender below the path's rate: ProbeBW_DOWN, or a host too busy to keep
            # the pacing rate).  The path kept up; its loss was not congestion, and the
            # rate measures the sender: no cut (as app-limited samples do not lower the
            # max filter, §5.5.5, or inflight_hi, §5.5.10.2).  docs/design.md "BBR".
            return
        if self.bw_lo == INF:
            self.bw_lo = self._max_bw()
        if self.inflight_lo == INF:
            self.inflight_lo = self.cwnd
        # The round delivered at most what was paced: gain x bw_lo, 1 % below it
        # (PACING_MARGIN), and 0.9 of it in ProbeBW_DOWN.  Compared as is, each round
        # with a random loss would cut bw_lo by that 1 %, and each round of DOWN by 10 %
        # more, compounding until the next probe (see docs/design.md, "BBR").
        gain = min(self.pacing_gain, 1.0)
        latest = self.bw_latest / (gain * (1 - self.PACING_MARGIN))
        # A delivery rate counts what arrived: at a random loss rate p it reads (1 - p)
        # of what the path carried.  Below BBRLossThresh (2 %, the loss the draft calls
        # tolerable, §5.5.10.2) that shortfall is the loss, not the path, and compounded
        # over the rounds of a cycle (1 % a round, 40 rounds) it would halve bw_lo.
        lost = self.round_lost
        if lost and lost <= self.LOSS_THRESH * (self.round_delivered + lost):
            latest *= (self.round_delivered + lost) / self.round_delivered
        self.bw_lo = max(latest, self.BETA * self.bw_lo)
        # What was lost was in flight too: a round with random loss delivers its
        # flight less those bytes, and would otherwise shrink inflight_lo by them.
        self.inflight_lo = max(
            (self.inflight_latest + self.round_lost) / gain, self.BETA * self.inflight_lo
        )

    def _reset_lower_bounds(self) -> None:
        self.bw_lo = INF
        self.inflight_lo = INF

    def _reset_congestion_signals(self) -> None:
        self.loss_in_round = False
        self.bw_latest = 0.0
        self.inflight_latest = 0
        self.latest_sender_limited = True

    def _update_ack_aggregation(self, rs: RateSample, now: float) -> None:
        """§5.5.9: how far ACKs ran ahead of the bandwidth, max over ~10 rounds."""
        if self.round_start:
            self.extra_acked_rounds += 1
            if self.extra_acked_rounds >= self.EXTRA_ACKED_ROUNDS:
                self.extra_acked_rounds = 0
                self.extra_acked_idx ^= 1
                self.extra_acked[self.extra_acked_idx] = 0
        acked = rs.newly_acked
        if not acked:
            return
        expected = self.bw * (now - self.ack_epoch_start)
        if self.ack_epoch_acked <= expected:
            self.ack_epoch_acked = 0
            self.ack_epoch_start = now
            expected = 0.0
        self.ack_epoch_acked += acked
        extra = min(int(self.ack_epoch_acked - expected), self.cwnd)
        i = self.extra_acked_idx
        if extra > self.extra_acked[i]:
            self.extra_acked[i] = extra

    # ------------------------------------------------------------ Startup and Drain
    def _reset_full_bw(self) -> None:
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.full_bw_now = False

    def _check_full_bw_reached(self, rs: RateSample) -> None:
        """§5.3.1.2: the pipe is full when the bandwidth grew under 25 % in 3 rounds."""
        if self.full_bw_now or rs.is_app_limited or not self.round_start:
            return
        bw = self._max_bw()
        if bw >= self.full_bw * self.FULL_BW_THRESH:
            self.full_bw = bw
            self.full_bw_count = 0
            return
        self.full_bw_count += 1
        self.full_bw_now = self.full_bw_count >= self.FULL_BW_COUNT
        if self.full_bw_now:
            self.filled_pipe = True

    def _check_startup_done(self, rs: RateSample, ca_state: int) -> None:
        """§5.3.1.3: leave Startup once the pipe is full, or when loss was too high
        for a round with enough loss events (Linux v3 bbr_check_loss_too_high_in_startup)."""
        if self.state != STARTUP:
            return
        if (
            self.loss_round_start
            and ca_state == RECOVERY
            and self.loss_events_in_round >= self.FULL_LOSS_COUNT
            and self._inflight_too_high(rs)
        ):
            self.filled_pipe = True
            self.inflight_hi = max(self._bdp(1.0), self.inflight_latest)
        if self.loss_round_start:
            self.loss_events_in_round = 0
        if self.filled_pipe:
            self.state = DRAIN
            self.pacing_gain = self.DRAIN_PACING_GAIN
            self.cwnd_gain = self.STARTUP_CWND_GAIN

    def _check_drain_done(self, now: float) -> None:
        if self.state == DRAIN and self.inflight <= self._bdp(1.0):
            self._start_down(now)  # BBREnterProbeBW

    # ------------------------------------------------------------ ProbeBW
    def _start_down(self, now: float) -> None:
        self._reset_congestion_signals()
        self.probe_up_cnt = INF
        self.rounds_since_bw_probe = self.rng.randrange(2)  # BBRPickProbeWait
        self.bw_probe_wait = 2.0 + self.rng.random()
        self.cycle_stamp = now
        self.ack_phase = ACKS_PROBE_STOPPING
        self._start_round()
        self._enter(DOWN, 0.9, self.DEFAULT_CWND_GAIN)

    def _start_cruise(self) -> None:
        self._enter(CRUISE, 1.0, self.DEFAULT_CWND_GAIN)

    def _start_refill(self) -> None:
        self._reset_lower_bounds()
        self.bw_probe_up_rounds = 0
        self.bw_probe_up_acks = 0
        self.ack_phase = ACKS_REFILLING
        self._start_round()
        self._enter(REFILL, 1.0, self.DEFAULT_CWND_GAIN)

    def _start_up(self, rs: RateSample, now: float) -> None:
        self.ack_phase = ACKS_PROBE_STARTING
        self._start_round()
        self._reset_full_bw()
        self.full_bw = rs.delivery_rate
        self.cycle_stamp = now
        self._enter(UP, 1.25, self.UP_CWND_GAIN)
        self._raise_inflight_hi_slope()

    def _enter(self, state: str, pacing_gain: float, cwnd_gain: float) -> None:
        self.state = state
        self.pacing_gain = pacing_gain
        self.cwnd_gain = cwnd_gain

    def _update_probe_bw_cycle_phase(self, rs: RateSample, cwnd_limited: bool, now: float) -> None:
        """§5.3.3.6 BBRUpdateProbeBWCyclePhase."""
        if not self.filled_pipe:
            return
        self._adapt_upper_bounds(rs, cwnd_limited, now)
        st = self.state
        if st not in PROBE_BW:
            return
        if st == DOWN:
            if self._check_time_to_probe_bw(now):
                return
            if self._check_time_to_cruise():
                self._start_cruise()
        elif st == CRUISE:
            self._check_time_to_probe_bw(now)
        elif st == REFILL:
            if self.round_start:  # one round of refill at the new bounds
                self.bw_probe_samples = 1
                self._start_up(rs, now)
        elif st == UP and self._check_time_to_go_down(rs, cwnd_limited):
            self._start_down(now)

    def _check_time_to_probe_bw(self, now: float) -> bool:
        if now - self.cycle_stamp > self.bw_probe_wait or self._reno_coexistence_time():
            self._start_refill()
            return True
        return False

    def _reno_coexistence_time(self) -> bool:
        """§5.3.3.5.3: probe at least as often as Reno would fill the BDP again."""
        rounds = min(self._target_inflight() // self.mss, 63)
        return self.rounds_since_bw_probe >= rounds

    def _check_time_to_cruise(self) -> bool:
        if self.inflight > self._inflight_with_headroom():
            return False
        return self.inflight <= self._bdp(1.0, self._max_bw())

    def _check_time_to_go_down(self, rs: RateSample, cwnd_limited: bool) -> bool:
        if cwnd_limited and self.cwnd >= self.inflight_hi:
            self._reset_full_bw()  # bandwidth limited by inflight_hi: keep probing
            self.full_bw = rs.delivery_rate
        elif self.full_bw_now:
            return True  # the path's bandwidth is used
        return False

    def _adapt_upper_bounds(self, rs: RateSample, cwnd_limited: bool, now: float) -> None:
        """§5.5.10.2 BBRAdaptUpperBounds."""
        if self.ack_phase == ACKS_PROBE_STARTING and self.round_start:
            self.ack_phase = ACKS_PROBE_FEEDBACK
        if self.ack_phase == ACKS_PROBE_STOPPING and self.round_start:
            # The samples of the last probe are in: forget the cycle before it
            # (once per cycle, as Linux's bbr_adapt_upper_bounds).
            self.bw_probe_samples = 0
            self.ack_phase = ACKS_INIT
            if self.state in PROBE_BW and not rs.is_app_limited:
                self._advance_max_bw_filter()
        if self._inflight_too_high(rs):
            if self.bw_probe_samples:  # BBRHandleInflightTooHigh
                self.bw_probe_samples = 0
                if not rs.is_app_limited:
                    self.inflight_hi = max(rs.tx_in_flight, self._target_inflight() * self.BETA)
                if self.state == UP:
                    self._start_down(now)
            return
        if self.inflight_hi == INF:
            return
        if rs.tx_in_flight > self.inflight_hi:
            self.inflight_hi = rs.tx_in_flight
        if self.state == UP:
            self._probe_inflight_hi_upward(rs, cwnd_limited)

    def _inflight_too_high(self, rs: RateSample) -> bool:
        """§5.5.10.2 IsInflightTooHigh: loss above 2 % of the flight, or CE above half."""
        return (rs.lost > rs.tx_in_flight * self.LOSS_THRESH and rs.lost > 0) or self._ce_too_high(
            rs
        )

    def _probe_inflight_hi_upward(self, rs: RateSample, cwnd_limited: bool) -> None:
        if not cwnd_limited or self.cwnd < self.inflight_hi:
            return
        self.bw_probe_up_acks += rs.newly_acked
        cnt = self.probe_up_cnt
        if self.bw_probe_up_acks >= cnt:
            delta = int(self.bw_probe_up_acks // cnt)
            self.bw_probe_up_acks -= int(delta * cnt)
            self.inflight_hi += delta * self.mss
        if self.round_start:
            self._raise_inflight_hi_slope()

    def _raise_inflight_hi_slope(self) -> None:
        """inflight_hi grows by 1, 2, 4, ... segments per round while probing up."""
        growth = 1 << self.bw_probe_up_rounds
        self.bw_probe_up_rounds = min(self.bw_probe_up_rounds + 1, 30)
        self.probe_up_cnt = max(self.cwnd // growth, self.mss)

    # ------------------------------------------------------------ ProbeRTT
    def _update_min_rtt(self, rs: RateSample, now: float) -> None:
        """§5.5.6 and §5.3.4.4: probe_rtt_min_delay over 5 s, min_rtt over 10 s."""
        self.probe_rtt_expired = now > self.probe_rtt_min_stamp + self.PROBE_RTT_INTERVAL
        if rs.rtt >= 0 and (rs.rtt < self.probe_rtt_min_delay or self.probe_rtt_expired):
            self.probe_rtt_min_delay = rs.rtt
            self.probe_rtt_min_stamp = now
        min_rtt_expired = now > self.min_rtt_stamp + self.MIN_RTT_FILTER_LEN
        if self.probe_rtt_min_delay < self.min_rtt or min_rtt_expired:
            self.min_rtt = self.probe_rtt_min_delay
            self.min_rtt_stamp = self.probe_rtt_min_stamp

    def _check_probe_rtt(self, rs: RateSample, sampler: RateSampler, now: float) -> None:
        if self.state != PROBE_RTT and self.probe_rtt_expired and not self.idle_restart:
            self._save_cwnd()
            self._enter(PROBE_RTT, 1.0, self.PROBE_RTT_CWND_GAIN)
            self.probe_rtt_done_stamp = 0.0
            self.ack_phase = ACKS_PROBE_STOPPING
            self._start_round()
        if self.state == PROBE_RTT:
            sampler.mark_app_limited(self.inflight)
            if not self.probe_rtt_done_stamp and self.inflight <= self._probe_rtt_cwnd():
                self.probe_rtt_done_stamp = now + self.PROBE_RTT_DURATION
                self.probe_rtt_round_done = False
                self._start_round()
            elif self.probe_rtt_done_stamp:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done:
                    self._check_probe_rtt_done(now)
        if rs.delivered > 0:
            self.idle_restart = False

    def _check_probe_rtt_done(self, now: float) -> None:
        if self.probe_rtt_done_stamp and now > self.probe_rtt_done_stamp:
            self.probe_rtt_min_stamp = now  # the minimum is fresh for another interval
            self.cwnd = max(self.cwnd, self.prior_cwnd)  # BBRRestoreCwnd
            self._reset_lower_bounds()  # BBRExitProbeRTT
            if self.filled_pipe:
                self._start_down(now)
                self._start_cruise()
            else:
                self._enter(STARTUP, self.STARTUP_PACING_GAIN, self.STARTUP_CWND_GAIN)

    def _probe_rtt_cwnd(self) -> int:
        return max(self._bdp(self.PROBE_RTT_CWND_GAIN), 4 * self.mss)

    # ------------------------------------------------------------ control parameters
    def _bdp(self, gain: float, bw: float | None = None) -> int:
        """§5.6.4.2 BBRBDPMultiple: gain x bandwidth x min RTT (IW before an RTT)."""
        if self.min_rtt == INF:
            return self.initial_window_bytes
        return int(gain * (self.bw if bw is None else bw) * self.min_rtt)

    def _target_inflight(self) -> int:
        return min(self._bdp(1.0), self.cwnd)

    def _inflight_with_headroom(self) -> float:
        """§5.5.10.2: leave 15 % of inflight_hi free for other flows."""
        if self.inflight_hi == INF:
            return INF
        headroom = max(self.mss, self.HEADROOM * self.inflight_hi)
        return max(self.inflight_hi - headroom, 4 * self.mss)

    def _set_pacing_rate(self, gain: float) -> None:
        """§5.6.2 BBRSetPacingRateWithGain: never lowered before the pipe is full."""
        rate = gain * self.bw * (1 - self.PACING_MARGIN)
        if rate > 0 and (self.filled_pipe or rate > self.pacing_rate):
            self.pacing_rate = rate

    def _set_send_quantum(self) -> None:
        """§5.6.3: about 1 ms of data, 2 to 64 KB (1 segment below 1.2 Mbit/s)."""
        floor = self.mss if self.pacing_rate < 150_000 else 2 * self.mss
        self.send_quantum = max(min(int(self.pacing_rate * 0.001), 65536), floor)

    def _set_cwnd(self, rs: RateSample) -> None:
        """§5.6.4: cwnd toward gain x BDP plus the aggregation allowance, bounded by
        ProbeRTT and the model's inflight_hi/inflight_lo."""
        mss = self.mss
        min_pipe = 4 * mss
        inflight = self._bdp(self.cwnd_gain)
        if self.filled_pipe:
            extra = (
                self.extra_acked[0]
                if self.extra_acked[0] > self.extra_acked[1]
                else self.extra_acked[1]
            )
            inflight += min(extra, int(self.bw * self.EXTRA_ACKED_MAX))
        # BBRQuantizationBudget
        inflight = max(inflight, 3 * self.send_quantum, min_pipe)
        if self.state == UP:
            inflight += 2 * mss
        max_inflight = inflight
        cwnd = self.cwnd
        # No BBRModulateCwndForRecovery: Linux v3's bbr_set_cwnd (see _recovery).
        if self.filled_pipe:
            cwnd = min(cwnd + rs.newly_acked, max_inflight)
        elif cwnd < max_inflight or self.delivered < self.initial_window_bytes:
            cwnd += rs.newly_acked
        cwnd = max(cwnd, min_pipe)
        st = self.state
        if st == PROBE_RTT:
            cwnd = min(cwnd, self._probe_rtt_cwnd())
        cap: float = INF
        if st in PROBE_BW and st != CRUISE:
            cap = self.inflight_hi
        elif st in (PROBE_RTT, CRUISE):
            cap = self._inflight_with_headroom()
        cap = max(min(cap, self.inflight_lo), min_pipe)
        self.cwnd = int(min(cwnd, cap))
