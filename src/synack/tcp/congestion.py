"""Congestion control behind a small interface, registered by name (RFC 5681).

The connection owns loss *detection* (duplicate ACKs, SACK, RACK, timeouts)
and paces sending during recovery with PRR (RFC 6937); an algorithm here
only decides the congestion window and slow-start threshold in answer, from
the events the connection reports.  Sizes are bytes; times seconds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rate_sample import RateSample, RateSampler


class CongestionControl(ABC):
    """What a congestion controller provides and is told.

    The base also keeps congestion-window validation (RFC 7661 §4, RFC 9438 §5.8;
    Linux ``tcp_cwnd_validate`` and ``tcp_is_cwnd_limited``): a sender held back by
    the application, the receive window or its send buffer is not testing the path
    with its whole cwnd, so an ACK is no evidence that a larger window is safe.  As
    Linux does, the answer is kept for one window of data: cwnd may grow if the
    sender was cwnd-limited at some send during the last window or, in slow start,
    while cwnd is below twice the largest flight of that window."""

    __slots__ = (
        "abc_limit",
        "cwnd",
        "cwnd_limited",
        "max_flight",
        "mss",
        "pacing_rate",
        "send_quantum",
        "ssthresh",
        "used_until",
    )

    name = "abstract"
    #: During fast recovery the connection sizes sending with PRR (RFC 6937); an
    #: algorithm that sets cwnd on every ACK itself (BBR) says False.
    uses_prr = True
    #: Give this algorithm every ACK's delivery-rate sample (:meth:`on_rate_sample`).
    wants_rate_sample = False
    #: Ask for pacing (Linux: the congestion control sets SK_PACING_NEEDED).
    paces = False

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        self.cwnd = initial_window_bytes(mss, initial_window)
        self.ssthresh = 1 << 30  # RFC 5681 §3.1: arbitrarily high
        self.abc_limit: int | None = 2  # RFC 3465 L, in segments; None: no cap
        self.pacing_rate = 0.0  # bytes/s the algorithm asks to pace at; 0: the default
        self.send_quantum = 0  # bytes released per pacing slot; 0: the default (~1 ms)
        self.cwnd_limited = False  # cwnd-limited at some send in the current window
        self.max_flight = 0  # the largest flight (bytes) seen in that window
        self.used_until = 0  # send position (SND.NXT) that ends the window measured

    def after_send(self, una: int, nxt: int, cwnd_limited: bool) -> None:
        """Record one pass of the send path (Linux ``tcp_cwnd_validate``)."""
        flight = nxt - una
        if (
            una >= self.used_until
            or cwnd_limited
            or (not self.cwnd_limited and flight > self.max_flight)
        ):
            self.cwnd_limited = cwnd_limited
            self.max_flight = flight
            self.used_until = nxt

    def may_grow(self) -> bool:
        """``tcp_is_cwnd_limited``: may an ACK grow cwnd now?"""
        return self.cwnd_limited or (self.cwnd < self.ssthresh and self.cwnd < 2 * self.max_flight)

    def _abc(self, acked: int) -> int:
        return acked if self.abc_limit is None else min(acked, self.abc_limit * self.mss)

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    @abstractmethod
    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """``acked`` new bytes were delivered outside recovery."""

    @abstractmethod
    def on_loss(self, flight: int, now: float) -> None:
        """Loss detected: entering recovery.  Set ssthresh (and cwnd)."""

    def on_recovery_end(self, now: float) -> None:
        """Recovery finished (RFC 6937: cwnd = ssthresh)."""
        self.cwnd = max(self.ssthresh, self.mss)

    @abstractmethod
    def on_timeout(self, flight: int, now: float) -> None:
        """The retransmission timer expired (RFC 5681 §3.1 eq. 4)."""

    def on_repeat_timeout(self, now: float) -> None:
        """Another timeout inside the same loss episode: back to the loss window, but
        ssthresh stays what the episode's one reduction made it (RFC 5681 §3.1
        "one reduction per loss event"; Linux ``tcp_enter_loss``)."""
        self.cwnd = self.mss

    def on_ecn(self, flight: int, now: float) -> None:
        """An ECN-Echo reported congestion (RFC 3168 §6.1.2): react as to a loss."""
        self.on_loss(flight, now)
        self.cwnd = max(self.ssthresh, self.mss)

    def on_idle_restart(self, restart_window: int, now: float) -> None:
        """Nothing was sent for longer than the RTO (RFC 5681 §4.1): cwnd = min(cwnd, RW)."""
        self.cwnd = min(self.cwnd, restart_window)

    def on_rtt_sample(self, rtt: float, now: float) -> None:  # noqa: B027 - optional hook
        """A fresh RTT measurement."""

    def on_round_start(self, now: float) -> None:  # noqa: B027 - optional hook
        """A new round trip began (SND.UNA passed the previous round's end)."""

    def on_rate_sample(  # noqa: B027 - optional hook
        self,
        rs: RateSample,
        sampler: RateSampler,
        inflight: int,
        cwnd_limited: bool,
        ca_state: int,
        now: float,
    ) -> None:
        """Every ACK's delivery-rate sample, after loss detection (Linux's cong_control
        hook), for algorithms with ``wants_rate_sample``."""

    def seed(self, value: int) -> None:  # noqa: B027 - optional hook
        """A per-connection seed for any randomness (the stack's ISS)."""

    def info(self) -> dict[str, Any]:
        """Algorithm-specific fields for ``Connection.info()`` (Linux's INET_DIAG cc info)."""
        return {}


def initial_window_bytes(mss: int, segments: int) -> int:
    """IW in bytes: RFC 6928 §2, min(10*MSS, max(2*MSS, 14600)), for the standard 10
    segments; any other count is taken as asked."""
    return min(10 * mss, max(2 * mss, 14600)) if segments == 10 else segments * mss


class NewReno(CongestionControl):
    """RFC 5681 slow start and congestion avoidance; RFC 6582 sizing on loss."""

    __slots__ = ("_ca_acked",)

    name = "newreno"

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self._ca_acked = 0

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            # RFC 5681 §3.1 eq. 2 with appropriate byte counting, L = 2*SMSS (RFC 3465).
            self.cwnd += self._abc(acked)
        else:
            # Congestion avoidance: one SMSS per cwnd of acknowledged bytes (RFC 5681 eq. 3).
            self._ca_acked += acked
            if self._ca_acked >= self.cwnd:
                self._ca_acked -= self.cwnd
                self.cwnd += self.mss

    def on_loss(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)  # RFC 5681 eq. 4
        self.cwnd = self.ssthresh
        self._ca_acked = 0

    def on_timeout(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss  # loss window, RFC 5681 §3.1
        self._ca_acked = 0


class HyStartPP:
    """HyStart++ (RFC 9406): leave slow start when the RTT starts to grow."""

    MIN_RTT_THRESH = 0.004
    MAX_RTT_THRESH = 0.016
    MIN_RTT_DIVISOR = 8
    N_RTT_SAMPLE = 8
    CSS_GROWTH_DIVISOR = 4
    CSS_ROUNDS = 5

    __slots__ = ("css_baseline", "css_rounds", "current_min", "in_css", "last_min", "samples")

    def __init__(self) -> None:
        self.last_min = math.inf
        self.current_min = math.inf
        self.samples = 0
        self.in_css = False
        self.css_baseline = math.inf
        self.css_rounds = 0

    def round_start(self) -> bool:
        """Start a round; True when CSS has lasted CSS_ROUNDS (enter avoidance)."""
        self.last_min = self.current_min
        self.current_min = math.inf
        self.samples = 0
        if self.in_css:
            self.css_rounds += 1
            if self.css_rounds >= self.CSS_ROUNDS:
                self.in_css = False
                return True
        return False

    def sample(self, rtt: float) -> None:
        """RFC 9406 §4.2: compare this round's minimum RTT with the last round's."""
        self.current_min = min(self.current_min, rtt)
        self.samples += 1
        if self.in_css:
            # RFC 9406 §4.3: judged only once the round has N_RTT_SAMPLE samples.
            if self.samples >= self.N_RTT_SAMPLE and self.current_min < self.css_baseline:
                self.in_css = False  # a spurious exit: resume slow start
                self.css_baseline = math.inf
            return
        if (
            self.samples >= self.N_RTT_SAMPLE
            and self.current_min != math.inf
            and self.last_min != math.inf
        ):
            thresh = min(
                max(self.last_min / self.MIN_RTT_DIVISOR, self.MIN_RTT_THRESH), self.MAX_RTT_THRESH
            )
            if self.current_min >= self.last_min + thresh:
                self.in_css = True
                self.css_baseline = self.current_min
                self.css_rounds = 0

    def growth(self, acked: int) -> int:
        """Slow-start growth for ``acked`` bytes: divided while in CSS."""
        return acked // self.CSS_GROWTH_DIVISOR if self.in_css else acked


class Cubic(CongestionControl):
    """CUBIC (RFC 9438) with HyStart++ (RFC 9406) slow start."""

    __slots__ = ("cwnd_prior", "epoch", "hystart", "hystart_on", "k", "srtt", "w_est", "w_max")

    name = "cubic"
    C = 0.4
    BETA = 0.7

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self.w_max = 0.0  # segments
        self.k = 0.0
        self.epoch: float | None = None
        self.w_est = 0.0
        self.cwnd_prior = 0.0  # segments, the window before the last reduction
        self.srtt = 0.0
        self.hystart = HyStartPP()
        # RFC 9406 §4.2: HyStart++ runs in the initial slow start only; after the first
        # congestion event slow start is the standard one.
        self.hystart_on = True

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        self.srtt = rtt if self.srtt == 0 else 0.875 * self.srtt + 0.125 * rtt
        if self.hystart_on and self.cwnd < self.ssthresh:
            self.hystart.sample(rtt)

    def on_round_start(self, now: float) -> None:
        if self.hystart_on and self.hystart.round_start() and self.cwnd < self.ssthresh:
            self.ssthresh = self.cwnd  # RFC 9406 §4.3: CSS done, congestion avoidance

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd += self._abc(self.hystart.growth(acked) if self.hystart_on else acked)
            return
        seg = self.cwnd / mss
        if self.epoch is None:  # RFC 9438 §4.2: a new congestion-avoidance epoch
            self.epoch = now
            if seg < self.w_max:
                self.k = ((self.w_max - seg) / self.C) ** (1 / 3)
            else:
                self.k = 0.0
                self.w_max = seg
            self.w_est = seg
        t = now - self.epoch + self.srtt
        target = self.C * (t - self.k) ** 3 + self.w_max
        target = min(max(target, seg), 1.5 * seg)
        # Reno-friendly estimate (RFC 9438 §4.3): alpha grows to 1 once W_est has
        # passed the window before the reduction.
        alpha = 1.0 if self.w_est >= self.cwnd_prior else 3 * (1 - self.BETA) / (1 + self.BETA)
        self.w_est += alpha * (acked / mss) / seg
        new = self.w_est if self.w_est > target else seg + (target - seg) / seg * (acked / mss)
        self.cwnd = max(int(new * mss), mss)

    def on_loss(self, flight: int, now: float) -> None:
        seg = self.cwnd / self.mss
        self.cwnd_prior = seg
        # Fast convergence (RFC 9438 §4.7).
        self.w_max = seg * (1 + self.BETA) / 2 if seg < self.w_max else seg
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)
        self.cwnd = self.ssthresh
        self.epoch = None
        self.hystart.in_css = False
        self.hystart_on = False

    def on_timeout(self, flight: int, now: float) -> None:
        self.on_loss(flight, now)
        self.cwnd = self.mss  # RFC 9438 §4.8
        self.epoch = None

    def on_repeat_timeout(self, now: float) -> None:
        self.cwnd = self.mss
        self.epoch = None

    def on_idle_restart(self, restart_window: int, now: float) -> None:
        super().on_idle_restart(restart_window, now)
        self.epoch = None  # the cubic curve starts again from the restarted window


class Finished(CongestionControl):
    """What remains of a controller once the connection sends nothing more (TIME-WAIT):
    its last cwnd and ssthresh for ``info()`` and nothing else, as Linux keeps only a
    small tcp_timewait_sock.  Any event is a bug and raises."""

    __slots__ = ("algo",)

    def __init__(self, cc: CongestionControl) -> None:
        self.mss = cc.mss
        self.cwnd = cc.cwnd
        self.ssthresh = cc.ssthresh
        self.abc_limit = cc.abc_limit
        self.cwnd_limited = False
        self.max_flight = self.used_until = self.send_quantum = 0
        self.pacing_rate = 0.0
        self.algo = cc.name

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.algo

    def _done(self) -> None:
        raise RuntimeError(f"{self.algo} used after the connection stopped sending")

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        self._done()

    def on_loss(self, flight: int, now: float) -> None:
        self._done()

    def on_timeout(self, flight: int, now: float) -> None:
        self._done()
