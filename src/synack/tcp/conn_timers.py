"""The timers of :class:`~synack.tcp.connection.Connection`: retransmission (RFC 6298),
persist (RFC 9293 §3.8.6.1), tail loss probe and RACK reordering (RFC 8985), delayed
ACK, TIME-WAIT, FIN-WAIT-2 and keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6)."""

from __future__ import annotations

import errno

from ..wire.segment import ACK
from .conn_base import ConnBase
from .conn_const import (
    S_CLOSE_WAIT,
    S_CLOSED,
    S_ESTABLISHED,
    S_FIN_WAIT_2,
    S_SYN_SENT,
)
from .loss_state import CA_DISORDER, CA_LOSS, CA_RECOVERY
from .timers import DELAYED_ACK, FIN_WAIT_2, KEEPALIVE, RACK_REORDER, RTO, TIME_WAIT, TLP


class TimersMixin(ConnBase):
    """Timer deadlines and expiries."""

    __slots__ = ()

    def next_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must be called."""
        return self._timers.next()

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is ``<= now``, in the order of
        :data:`~synack.tcp.timers.FIRING_ORDER`."""
        self._now = now
        timers = self._timers
        for kind in timers.expired(now):
            if kind == TIME_WAIT:
                timers.time_wait = None
                self._trace(now, "timer", timer="time_wait", concept="C13")
                self._set_state(S_CLOSED, now)
                return
            if kind == FIN_WAIT_2:
                timers.fin_wait_2 = None
                if self.state is S_FIN_WAIT_2:
                    self._trace(now, "timer", timer="fin_wait_2")
                    self._set_state(S_CLOSED, now, "fin_wait_2_timeout")
                    return
            elif kind == DELAYED_ACK:
                timers.delayed_ack = None
                self._trace(now, "timer", timer="delayed_ack")
                self._ack_now = True
            elif kind == RACK_REORDER:
                timers.rack_reorder = None
                self._trace(now, "timer", timer="rack_reorder")
                self._rack_detect(now)
                if self._ls.state < CA_RECOVERY:
                    self._maybe_enter_recovery(now)
            elif kind == TLP:
                timers.tlp = None
                self._send_tlp(now)
            elif kind == RTO:
                timers.rto = None
                self._on_rto(now)
            elif kind == KEEPALIVE:  # the handler re-arms or clears it
                self._on_keepalive(now)
            else:  # PACE: the stack runs the send path next (tcp/pacing.py)
                timers.pace = None
        if self._tr is not None:
            self._trace_changes(now)

    def _send_tlp(self, now: float) -> None:
        """RFC 8985 §7.3: probe the tail: new data if allowed, else the last segment."""
        if self._max <= self._una or self._ls.state >= CA_RECOVERY:
            return
        self.stats["tlp_probes"] += 1
        data_end = self._buf_pos + len(self._buf)
        # New data, or a FIN the congestion window held (cwnd_in_packets): Linux's probe
        # sends the next skb past cwnd (tcp_write_xmit() with push_one = 2).
        fin_unsent = self._fin_pos is not None and self._max == self._fin_pos
        if (self._max < data_end or fin_unsent) and self._una + self.snd_wnd > self._max:
            end = min(data_end, self._max + self.eff_mss, self._una + self.snd_wnd)
            self._trace(now, "timer", timer="tlp", concept="C18", probe="new data")
            self._send_new(self._max, end, end == data_end, now)
            self._tlp_retrans = False
        else:
            last = self._sb.last()
            assert last is not None  # SND.NXT > SND.UNA: something is outstanding
            cut = last.end - (1 if last.fin else 0) - self.eff_mss
            if cut > last.start:  # an offloaded record: probe with its last MSS only
                last = self._sb.split(last, cut)
            self._trace(now, "timer", timer="tlp", concept="C18", probe="retransmission")
            self._resend(last, now, "retransmit: tail loss probe")
            self._tlp_retrans = True
        self._tlp_end = self._max
        self._tlp_flight = self._max - self._una
        head = self._sb.first()
        rto = self._rto_deadline(now)
        if not self._tlp_retrans and self.config.tlp_new_data_rto_from_head and head:
            # Linux: new data sent while the probe timer is pending re-arms the RTO from
            # the head's transmission (tcp_event_new_data_sent() -> tcp_rearm_rto());
            # a probe at the RTO's own time (tlp_clamp_to_rto) restarts it.
            from_head = self._rto_deadline(head.xmit)
            if from_head > now:
                rto = from_head
        self._timers.rto = rto

    def _on_rto(self, now: float) -> None:
        """Retransmission timer expiry (RFC 6298 §5.4-5.6), also the persist timer."""
        st = self.state
        cfg = self.config
        if st is S_SYN_SENT or not self._una:  # SYN unacked (also FIN-WAIT-1, RFC 9293 §3.10.4)
            self._retries += 1
            self.stats["rto_fired"] += 1
            self.rtt.back_off()
            limit = cfg.syn_retries if st is S_SYN_SENT else cfg.synack_retries
            self._trace(
                now, "timer", timer="rto", concept="C17", retries=self._retries, rto=self.rtt.rto
            )
            if self._retries > limit:
                if st is S_SYN_SENT:
                    self._fail(now, errno.ETIMEDOUT, "connection timed out (no SYN-ACK)", "timeout")
                else:
                    self._trace(
                        now,
                        "note",
                        concept="C27",
                        text=f"no final ACK after {limit} SYN-ACK retransmissions",
                    )
                    self._set_state(S_CLOSED, now, "synack_timeout")
                return
            self._send_syn(now, retransmit=True)
            return
        outstanding = self._max - self._una
        data_end = self._buf_pos + len(self._buf)
        if (
            outstanding <= 0
            and self._max < data_end
            and cfg.held_data_probe
            and self.snd_wnd >= min(data_end - self._max, self.eff_mss)
        ):
            # Linux tcp_probe_timer() -> tcp_write_wakeup(): data corked (or held by
            # MSG_MORE) with nothing in flight leaves, one segment with PSH.
            start = self._max
            n = min(data_end - start, self.eff_mss, self._una + self.snd_wnd - start)
            self.stats["probes"] += 1
            sml = self._snd_sml  # (tcp_write_wakeup() leaves Minshall's snd_sml alone)
            self._send_new(start, start + n, True, now, "probe: held data (tcp_write_wakeup)")
            self._snd_sml = sml
            self._timers.rto = self._rto_deadline(now)
            return
        if (
            outstanding <= 0
            and (self._max >= data_end or self.snd_wnd >= min(data_end - self._max, self.eff_mss))
            and not self._fin_held()
        ):
            return  # nothing outstanding and no window to probe (RFC 6298 §5.1)
        self._retries += 1
        if (
            cfg.user_timeout is not None
            and self._max > self._una
            and now - self._progress_at >= cfg.user_timeout
        ):
            self._fail(
                now,
                errno.ETIMEDOUT,
                f"user timeout: no acknowledgement for {cfg.user_timeout:g} s (RFC 5482)",
                "timeout",
            )
            return
        if self._retries > cfg.max_retransmits:
            msg = f"connection timed out after {cfg.max_retransmits} retransmissions"
            if self.soft_error is not None:
                msg += f" (last ICMP error: {errno.errorcode.get(self.soft_error, '?')})"
            self._fail(now, errno.ETIMEDOUT, msg, "timeout")
            return
        self.rtt.back_off()
        probe = self._probe
        only_probe = outstanding == 0 or (probe is not None and outstanding == 1)
        if (
            only_probe
            and self.snd_wnd < self.eff_mss
            and (self._max < data_end or probe or self._fin_held())
        ):
            self._persist(now)
            return
        self.stats["rto_fired"] += 1
        concept = "C17" if self._fin_pos is not None and self._una == self._fin_pos else "C18"
        self._trace(
            now, "timer", timer="rto", concept=concept, retries=self._retries, rto=self.rtt.rto
        )
        ls = self._ls
        # One reduction per loss event (RFC 5681 §3.1, RFC 9438 §4.8): ssthresh is
        # computed afresh only when no episode is running, when the running one is
        # over, or on a first timeout after progress in Loss; a timeout inside
        # fast recovery, or a repeated one without progress, keeps it (as Linux's
        # tcp_enter_loss).
        fresh = (
            ls.state <= CA_DISORDER
            or self._una >= ls.high_seq
            or (ls.state is CA_LOSS and self._una > ls.rto_una)
        )
        ls.rto_una = self._una
        self._prr = None  # fast recovery, if any, is over: Loss sends by cwnd
        if fresh:
            self._cc.on_timeout(self._pipe(), now)
        else:
            self._cc.on_repeat_timeout(now)
        self._dupacks = 0
        ls.high_seq = self._max  # RFC 6582 §4: no fast retransmit for pre-timeout losses
        self._rtt_pos = None  # Karn
        self._timers.tlp = self._timers.rack_reorder = None
        self._tlp_end = None
        self._sb.mark_all_lost(forget_sacks=True)  # RFC 2018 §8, RFC 6675 §5.1
        if self.ecn_ok:
            self._cwr_pending = True
        self._ca_move("rto", CA_LOSS, now)
        self._trace(now, "cc", event="rto", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh)
        self._send_data(now)
        if self._timers.rto is None:
            self._timers.rto = self._rto_deadline(now)

    def _rto_deadline(self, now: float) -> float:
        """now + RTO, clamped to the user timeout's deadline (as Linux does)."""
        t = now + self.rtt.rto
        ut = self.config.user_timeout
        if ut is not None and self._max > self._una:
            t = min(t, max(self._progress_at + ut, now))
        return t

    def _persist(self, now: float) -> None:
        """Persist timer (RFC 9293 §3.8.6.1): probe a zero window with one byte, or send
        what fits into a window too small to be worth using (§3.8.6.2.1 override)."""
        self.stats["probes"] += 1
        self._persisting = self.snd_wnd == 0
        self._trace(
            now, "timer", timer="persist", concept="C4", retries=self._retries, rto=self.rtt.rto
        )
        probe = self._probe
        if self.snd_wnd == 0 and self.config.zero_window_probe_old_seq:
            # Linux tcp_xmit_probe_skb(): an old sequence number forces the peer's ACK
            # (RFC 9293 §3.10.7.4), which tells us its window; no data is committed.
            self._emit(self._make(ACK, self._una - 1, b"", now), now, "zero-window probe")
        elif probe is not None and probe.end > self._una:
            self._resend(probe, now, "zero-window probe", count=False)
        else:
            data_end = self._buf_pos + len(self._buf)
            start = self._max
            n = max(min(self.snd_wnd - (start - self._una), data_end - start), 1)
            zero = self.snd_wnd == 0
            self._send_new(
                start,
                start + n,
                start + n == data_end,
                now,
                "zero-window probe" if zero else "persist: send what fits",
            )
            self._probe = self._sb.last() if zero else None
        self._timers.rto = self._rto_deadline(now)

    def _on_keepalive(self, now: float) -> None:
        """Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): an ACK with SEG.SEQ = SND.NXT-1."""
        cfg = self.config
        if self.state not in (S_ESTABLISHED, S_CLOSE_WAIT):
            self._timers.keepalive = None
            return
        if self._max > self._una or self._timers.rto is not None:
            # Data in flight or a window to probe: the RTO or persist timer watches.
            # Data cork or MSG_MORE hold arms neither, so keepalive still probes.
            self._timers.keepalive = now + cfg.keepalive_idle
            return
        if self._ka_probes >= cfg.keepalive_count:
            self._fail(
                now,
                errno.ETIMEDOUT,
                f"connection timed out: {cfg.keepalive_count} keepalive probes "
                "unanswered (peer gone)",
                "timeout",
            )
            return
        self._ka_probes += 1
        self.stats["keepalives"] += 1
        self._trace(
            now,
            "timer",
            timer="keepalive",
            concept="C3",
            retries=self._ka_probes,
            rto=cfg.keepalive_interval,
        )
        probe = self._make(ACK, self._max - 1, b"", now)
        self._emit(probe, now, "keepalive probe")
        self._timers.keepalive = now + cfg.keepalive_interval
