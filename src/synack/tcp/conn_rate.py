"""Delivery-rate samples and pacing for :class:`~synack.tcp.connection.Connection`
(draft-ietf-ccwg-bbr §4.1, Linux ``tcp_rate.c``; Linux ``tcp_update_pacing_rate``,
``tcp_pacing_check``, ``tcp_tso_autosize``).  The state lives in
:class:`~.rate_sample.RateSampler` and :class:`~.pacing.Pacer`; this mixin wires
them to the send path and the ACK path."""

from __future__ import annotations

from .conn_base import ConnBase
from .pacing import autosize, default_rate
from .scoreboard import SentSeg


class RateMixin(ConnBase):
    """Rate samples per ACK, app-limited marking, the pacing budget and timer."""

    __slots__ = ()

    def _rate_ack(self, delivered: list[SentSeg], newly: int, ece: bool, now: float) -> None:
        """After loss detection on an ACK: the rate sample (``tcp_rate_gen``), handed to
        a congestion control that wants it (Linux ``tcp_cong_control``)."""
        rsr = self._rsr
        if delivered:
            rsr.on_delivered(delivered, now)
        if ece:
            rsr.ce_delivered += newly  # RFC 3168 echo: this ACK's deliveries saw CE
        sb = self._sb
        rs = rsr.generate(now, newly, sb.lost_total, self._min_rtt)
        cc = self._cc
        if cc.wants_rate_sample:
            cc.on_rate_sample(
                rs,
                rsr,
                self._max - self._una - sb.sacked_bytes - sb.lost_bytes,
                self._cc.cwnd_limited,
                int(self._ls.state),
                now,
            )
            events = cc.events  # type: ignore[attr-defined]
            if events:
                if self._tr is not None:
                    for ev in events:
                        self._trace(
                            now,
                            "cc",
                            pacing_rate=cc.pacing_rate,
                            cwnd=cc.cwnd,
                            delivery_rate=rs.delivery_rate,
                            **ev,
                        )
                events.clear()
        if (
            self._tr is not None
            and rsr.delivered >= self._rate_trace_at
            and (self._pacer is not None or cc.wants_rate_sample)
        ):
            # Once a round trip, for a paced or rate-based sender: the estimates, for
            # plots (docs/trace.md "rate").  Other traces stay as they were.
            self._rate_trace_at = rsr.delivered + self._max - self._una
            self._trace(
                now,
                "rate",
                delivery_rate=rs.delivery_rate,
                app_limited=rs.is_app_limited,
                pacing_rate=self._pacer_rate(),
                cwnd=cc.cwnd,
                **cc.info(),
            )

    def _pacer_rate(self) -> float:
        p = self._pacer
        return p.rate if p is not None else 0.0

    def _pace_budget(self, now: float) -> int | None:
        """Bytes the send path may release now (None: not paced).  The rate is the
        congestion control's, or Linux's default from cwnd and SRTT."""
        pacer = self._pacer
        if pacer is None:
            return None
        cc = self._cc
        rate = cc.pacing_rate
        if rate <= 0:
            rate = default_rate(
                cc.cwnd, self._max - self._una, self.rtt.srtt, cc.cwnd < cc.ssthresh // 2
            )
        pacer.rate = rate
        pacer.quantum = cc.send_quantum or autosize(rate, self.eff_mss)
        return pacer.budget(now)

    def _paced(self, sent: int, held: bool, now: float) -> None:
        """The send path released ``sent`` bytes; ``held``: it stopped for pacing with
        more to send, so the pacing timer is armed for the next release."""
        pacer = self._pacer
        assert pacer is not None
        pacer.sent(sent, now)
        if held:
            if self._timers.pace is None:
                self.stats["pacing_waits"] += 1
            self._timers.pace = pacer.next_at
        else:
            self._timers.pace = None
