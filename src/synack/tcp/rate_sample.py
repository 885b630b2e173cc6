"""Delivery-rate estimation per ACK (draft-ietf-ccwg-bbr §4.1 "Delivery Rate
Samples", after draft-cheng-iccrg-delivery-rate-estimation; Linux ``tcp_rate.c``).

Each transmission of a segment records the connection's delivery state at that
moment (:meth:`RateSampler.on_send`, ``tcp_rate_skb_sent``): bytes delivered so
far, when the last delivery happened, when the first segment of the current
flight was sent, whether the sender was application-limited, the bytes in flight
and the bytes marked lost.  An ACK that delivers segments takes the most recently
sent of them (``tcp_rate_skb_delivered``) and turns the difference into a sample
(``tcp_rate_gen``): bytes delivered over the longer of the send and the ACK
intervals, so neither ACK compression nor a burst overstates the rate.

A sender that ran out of data while it had window to spare marks the data in
flight application-limited (``tcp_rate_check_app_limited``); samples taken until
that data is delivered say so, and a congestion controller may ignore them when
they are below its estimate.

Sizes are bytes, times seconds.  The cost per segment is one tuple; per ACK, a
loop over the segments the ACK delivered, which the connection walks anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scoreboard import SentSeg

# Indices of the per-transmission record SentSeg.tx (a tuple: one allocation per send).
TX_DELIVERED, TX_DELIVERED_TIME, TX_FIRST_SENT, TX_APP_LIMITED, TX_INFLIGHT, TX_LOST, TX_CE = range(
    7
)


class RateSample:
    """One ACK's sample (draft-ietf-ccwg-bbr §4.1.2 "rs"), reused from ACK to ACK."""

    __slots__ = (
        "ce",
        "delivered",
        "delivery_rate",
        "interval",
        "is_app_limited",
        "lost",
        "newly_acked",
        "newly_lost",
        "prior_delivered",
        "rtt",
        "sender_limited",
        "tx_in_flight",
    )

    def __init__(self) -> None:
        self.delivered = 0  # bytes delivered between the sampled send and this ACK
        self.prior_delivered = 0  # C.delivered when the sampled segment was sent
        self.interval = 0.0  # max(send elapsed, ACK elapsed); <= 0: no rate in this sample
        self.delivery_rate = 0.0  # bytes per second; 0 when no valid sample
        self.is_app_limited = False
        # The ACK phase was no longer than the send phase: the path delivered as fast as
        # the data was sent, so the sender (pacing, or a host too busy to keep its pace)
        # set this rate, not the path.
        self.sender_limited = False
        self.tx_in_flight = 0  # bytes in flight when the sampled segment was sent
        self.lost = 0  # bytes marked lost between that send and this ACK
        self.newly_acked = 0  # bytes this ACK delivered (cumulatively or by SACK)
        self.newly_lost = 0  # bytes marked lost since the previous ACK
        self.ce = 0  # bytes delivered with ECN-Echo since that send (RFC 3168 echo)
        self.rtt = -1.0  # RTT of the newest non-retransmitted segment delivered; < 0: none


class RateSampler:
    """The connection's delivery state (draft §4.1.1: C.delivered, C.delivered_time,
    C.first_send_time, C.app_limited, C.lost) and its latest sample."""

    __slots__ = (
        "_best",
        "_best_xmit",
        "_interval",
        "_lost_seen",
        "_rtt",
        "app_limited",
        "ce_delivered",
        "delivered",
        "delivered_time",
        "first_sent_time",
        "info_app_limited",
        "info_rate",
        "rs",
    )

    def __init__(self) -> None:
        self.delivered = 0
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited = 0  # 0, or C.delivered + inflight when the app ran dry
        self.ce_delivered = 0
        self.info_rate = 0.0  # tcpi_delivery_rate: the latest non-app-limited (or higher)
        self.info_app_limited = False
        self.rs: RateSample | None = None  # made on the first ACK that samples
        self._best: tuple[int, float, float, bool, int, int, int] | None = None
        self._best_xmit = 0.0
        self._interval = 0.0
        self._rtt = -1.0
        self._lost_seen = 0

    def release(self) -> None:
        """Nothing more will be sampled (TIME-WAIT): drop the last sample and the clock
        readings, keeping only what ``info()`` reports (Linux frees the whole socket
        for a tcp_timewait_sock)."""
        self.rs = None
        self._best = None
        self.delivered_time = self.first_sent_time = self._best_xmit = self._interval = 0.0
        self._rtt = -1.0

    def on_send(self, s: SentSeg, now: float, idle: bool, inflight: int, lost: int) -> None:
        """``tcp_rate_skb_sent``: a segment goes out (first time or again).  ``idle``:
        nothing was in flight, so the delivery clock starts now."""
        if idle:
            self.first_sent_time = self.delivered_time = now
        s.tx = (
            self.delivered,
            self.delivered_time,
            self.first_sent_time,
            self.app_limited != 0,
            inflight,
            lost,
            self.ce_delivered,
        )

    def on_delivered(self, segs: list[SentSeg], now: float) -> None:
        """``tcp_rate_skb_delivered``: take the most recently sent of the segments this
        ACK delivered; each segment's record is used once (a SACKed one is not counted
        again when the cumulative ACK passes it)."""
        best = self._best
        bx = self._best_xmit
        newest = None
        for s in segs:
            tx = s.tx
            if tx is None:
                continue
            s.tx = None
            x = s.xmit
            if best is None or x >= bx:
                best = tx
                bx = x
                newest = s
        if newest is not None:
            # The send phase: from the first send of that flight to this one.
            self._interval = bx - best[2]  # type: ignore[index]  # TX_FIRST_SENT
            self.first_sent_time = bx
            # Its RTT, unless it was a retransmission (Karn, RFC 6298 §3).
            self._rtt = -1.0 if newest.retrans else now - bx
        self._best = best
        self._best_xmit = bx

    def generate(self, now: float, newly_acked: int, lost: int, min_rtt: float) -> RateSample:
        """``tcp_rate_gen``: the sample for this ACK (read it before the next one)."""
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0  # the app-limited data has all been delivered
        rs = self.rs
        if rs is None:
            rs = self.rs = RateSample()
        rs.newly_acked = newly_acked
        rs.newly_lost = lost - self._lost_seen
        self._lost_seen = lost
        rs.rtt = self._rtt
        self._rtt = -1.0
        best = self._best
        if best is None:
            rs.delivered = 0
            rs.interval = 0.0
            rs.delivery_rate = 0.0
            return rs
        self._best = None
        if newly_acked:
            self.delivered_time = now
        prior, prior_time, _, app_limited, inflight, lost0, ce0 = best
        rs.prior_delivered = prior
        rs.delivered = self.delivered - prior
        rs.is_app_limited = app_limited
        rs.tx_in_flight = inflight
        rs.lost = lost - lost0
        rs.ce = self.ce_delivered - ce0
        # The longer of the send and ACK phases: an ACK compressed in time, or a burst
        # sent faster than the path, would otherwise overstate the rate.
        ack_phase = now - prior_time
        interval = max(self._interval, ack_phase)
        rs.interval = interval
        rs.sender_limited = self._interval >= ack_phase
        if interval <= 0 or interval < min_rtt or rs.delivered <= 0:
            # Shorter than the minimum RTT: not a real round trip (Linux discards it).
            rs.delivery_rate = 0.0
            return rs
        rate = rs.delivered / interval
        rs.delivery_rate = rate
        if not rs.is_app_limited or rate >= self.info_rate:
            self.info_rate = rate
            self.info_app_limited = rs.is_app_limited
        return rs

    def check_app_limited(self, unsent: int, mss: int, inflight: int, cwnd: int, lost: int) -> None:
        """``tcp_rate_check_app_limited``: less than a segment left to send, window to
        spare, nothing waiting for retransmission: the application is the limit."""
        if unsent < mss and inflight < cwnd and not lost:
            self.mark_app_limited(inflight)

    def mark_app_limited(self, inflight: int) -> None:
        """Samples are app-limited until the data now in flight is delivered."""
        self.app_limited = (self.delivered + inflight) or 1
