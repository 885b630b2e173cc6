"""Segment input for :class:`~synack.tcp.connection.Connection`: the checks of RFC 9293
§3.10.7 in their order (PAWS, RFC 7323 §5.3; challenge ACKs, RFC 5961), header
prediction, and what an ACK does to the send side (SND.UNA, SND.WL1/WL2, the window)."""

from __future__ import annotations

import errno

from ..wire.segment import ACK, CWR, ECE, FIN, RST, SYN, URG, Segment
from . import seq
from .conn_base import ConnBase
from .conn_const import (
    _PREDICTED_STATES,
    MASK,
    PAWS_IDLE,
    S_CLOSE_WAIT,
    S_CLOSED,
    S_CLOSING,
    S_ESTABLISHED,
    S_FIN_WAIT_1,
    S_FIN_WAIT_2,
    S_LAST_ACK,
    S_SYN_RECEIVED,
    S_SYN_SENT,
    S_TIME_WAIT,
)
from .events import SendSpace
from .scoreboard import SentSeg
from .states import CAN_RECEIVE


class InputMixin(ConnBase):
    """Segment input and ACK processing."""

    __slots__ = ()

    def receive(self, seg: Segment, now: float) -> None:
        """Process one arriving segment (RFC 9293 §3.10.7)."""
        self.stats["segs_in"] += 1
        self._now = now
        if self._tr is not None:
            self._trace_seg(now, "in", seg, "")
        st = self.state
        if st is S_CLOSED:
            return
        if st is S_SYN_SENT:
            self._receive_syn_sent(seg, now)
        else:
            self._receive_synchronized(seg, now)
        if self._tr is not None:
            self._trace_changes(now)

    def receive_data_fast(
        self,
        seqno: int,
        ackno: int,
        window: int,
        tsval: int | None,
        payload: memoryview,
        now: float,
    ) -> bool:
        """Header prediction: the receive path for the common case, from raw header fields.

        Van Jacobson's header prediction, as in 4.4BSD's ``tcp_input`` and Linux's
        ``tcp_rcv_established``: a connection in ESTABLISHED (or FIN-WAIT-1/2, still
        receiving) with nothing unusual pending gets in-order data that acknowledges
        nothing new and leaves the send window as it was.  The steps of RFC 9293
        §3.10.7.4 then reduce to PAWS and TS.Recent (RFC 7323 §5.3, §4.3), the
        SND.WL1/WL2 update and appending the data, with no :class:`Segment` built.
        The caller has checked the flags (ACK, maybe PSH, nothing else), the IP ECN
        field (not CE) and the checksums.  Returns False, having changed nothing,
        when any condition fails or tracing is on: the caller takes the full path.
        """
        rnxt = self._rnxt
        end = rnxt + len(payload)
        if (
            self.state not in _PREDICTED_STATES
            or self._tr is not None
            or end == rnxt
            or seqno != (self.irs + rnxt) & MASK
            or ackno != (self.iss + self._una) & MASK
            or end > self._radv
            or window << self.snd_wscale != self.snd_wnd
            or self._wl1 > rnxt
            or self._ooo.nbytes
            or self._rfin_pos is not None
            or self._orphan
            or self._ls.state
            or self._persisting
            or self._sb.sacked_bytes
            or self._sb.lost_bytes
            or self._mem.counts_truesize
        ):  # (Linux receive memory)
            return False
        if self.ts_ok:
            # PAWS (RFC 7323 §5.3): an older TSval takes the full path.
            if tsval is None or (tsval - self.ts_recent) & MASK >= 0x80000000:
                return False
            if rnxt <= self._last_ack_sent:  # RFC 7323 §4.3
                self.ts_recent = tsval
                self.ts_recent_age = now
        elif tsval is not None:
            return False
        self._now = now
        self.stats["segs_in"] += 1
        self._wl1 = rnxt  # the SND.WL1/WL2 update (WL1 <= RCV.NXT, WL2 <= SND.UNA)
        self._wl2 = self._una
        self._rbuf.append(payload)
        self._rnxt = end
        self._delivered_in_order(end - rnxt, end - rnxt, now)
        if self._timers.keepalive is not None:
            self._timers.keepalive = now + self.config.keepalive_idle
            self._ka_probes = 0
        return True

    def _receive_syn_sent(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.3, SYN-SENT."""
        flags = seg.flags
        if flags & ACK:
            ack_pos = seq.sub(seg.ack, self.iss)
            if ack_pos <= 0 or ack_pos > self._max:
                if not flags & RST:
                    self._send_rst_raw(now, seg.ack, 0, RST, why="unacceptable ACK in SYN-SENT")
                self._drop(now, "bad_ack_syn_sent")
                return
        if flags & RST:
            if flags & ACK:
                self._fail(
                    now, errno.ECONNREFUSED, "connection refused (RST in answer to SYN)", "refused"
                )
            else:
                self._drop(now, "rst_without_ack_syn_sent")
            return
        if not flags & SYN:
            self._drop(now, "no_syn_syn_sent")
            return
        self._accept_peer_syn(seg, now)
        if flags & ACK:
            self._una = seq.sub(seg.ack, self.iss)
            if self.ts_ok and seg.tsecr:
                self._rtt_from_ts(seg.tsecr, now)
                self._rtt_pos = None
            self._take_rtt_sample(self._una, now)
            self._retries = 0
            self._timers.rto = None
            if self.rtt.backoff:
                self.rtt.reset_for_data()
            self._wl1, self._wl2 = 0, self._una
            self._set_state(S_ESTABLISHED, now)
            self._ack_now = True
            if seg.payload or flags & (FIN | URG):
                # §3.10.7.3 fourth: text and controls on the SYN-ACK continue at the
                # sixth step.  Our SYN offered an unscaled window (RFC 7323 §2.2).
                self._radv = 1 + min(self.config.rcv_buf, 65535)
                if flags & URG:  # sixth step: the urgent pointer
                    self._urgent_in(seg.urgent, now)
                if seg.payload:
                    self._accept_data(1, seg.payload, now, seg.ecn)
                if flags & FIN:  # eighth step: the FIN, once the text before it is in
                    fin_pos = 1 + len(seg.payload)
                    if fin_pos == self._rnxt:
                        self._rfin_pos = fin_pos
                        self._check_fin(now)
        else:
            # Simultaneous open (RFC 9293 §3.5, figure 7): answer SYN-ACK with our ISS.
            self._set_state(S_SYN_RECEIVED, now)
            self._send_syn(now, retransmit=True)
            self.stats["retransmits"] -= 1  # a SYN-ACK carrying our SYN, not a resend

    def _receive_synchronized(self, seg: Segment, now: float) -> None:
        """RFC 9293 §3.10.7.4: every state from SYN-RECEIVED on."""
        st = self.state
        flags = seg.flags
        rnxt_seq = (self.irs + self._rnxt) & MASK
        pos = self._rnxt + seq.sub(seg.seq, rnxt_seq)
        dlen = len(seg.payload)
        slen = dlen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

        if flags & SYN and pos == 0 and not self._una:
            # Our SYN is unacked (SYN-RECEIVED, or FIN-WAIT-1 after a close there).
            if not flags & (ACK | RST):
                # The peer retransmitted its SYN: our SYN-ACK was lost; send it again.
                self._drop(now, "retransmitted_syn")
                self._send_syn(now, retransmit=True)
                return
            if flags & ACK:
                # Simultaneous open: the peer's SYN-ACK repeats the SYN we hold and acks
                # ours; drop the SYN part and process the rest (RFC 9293 §3.5 figure 7).
                flags &= ~SYN
                pos, slen = 1, slen - 1
                self._ack_now = True

        if not flags & (ACK | RST | SYN) and self.config.drop_no_ack_first:
            # Linux tcp_rcv_established(), tcp_rcv_state_process(): dropped before the
            # sequence check (RFC 9293 §3.10.7.4 drops it at the ACK step, after
            # answering one outside the window).
            self._drop(now, "no_ack")
            return

        # PAWS (RFC 7323 §5.3 R1): an older timestamp marks an old duplicate (C16).
        if (
            self.ts_ok
            and seg.tsval is not None
            and not flags & RST
            and seq.lt(seg.tsval, self.ts_recent)
        ):
            if now - self.ts_recent_age > PAWS_IDLE:
                self.ts_recent = seg.tsval  # §5.5: TS.Recent too old to trust
            else:
                self.stats["paws_drops"] += 1
                self._drop(now, "paws", concept="C16")
                self._reply_unacceptable(slen, now)
                return

        # First: the acceptability test (§3.10.7.4 table), widened to "overlaps the
        # window" as Linux does, plus a zero-window allowance at RCV.NXT exactly.
        rnxt = self._rnxt
        wnd = max(self._radv - rnxt, 0)
        if slen == 0:
            ok = pos == rnxt if wnd == 0 else rnxt <= pos < rnxt + wnd
        else:
            ok = (pos == rnxt) if wnd == 0 else (pos + slen > rnxt and pos < rnxt + wnd)
            if (
                ok
                and wnd
                and pos + dlen > rnxt + wnd
                and self._mem.refuses_past_window(len(self._rbuf))
            ):
                ok = False  # past the edge while data waits unread (Linux tcp_sequence())
        # Linux tcp_reset_check(): after the peer's FIN, an RST at RCV.NXT - 1 resets.
        rst_fin = (
            flags & RST
            and self.config.rst_after_fin_match
            and pos == rnxt - 1
            and st in (S_CLOSE_WAIT, S_LAST_ACK, S_CLOSING)
        )
        if not ok and not rst_fin:
            self.stats["unacceptable_in"] += 1
            if flags & RST:
                self._drop(now, "rst_out_of_window")
                return
            if flags & SYN:  # RFC 5961 §4.2: any SYN, whatever its sequence number
                self._drop(now, "syn_challenge")
                self._challenge_ack(now)
                return
            if st is S_TIME_WAIT and flags & FIN:
                self._trace(
                    now,
                    "note",
                    concept="C13",
                    text="retransmitted FIN in TIME-WAIT: ACK it again, restart 2*MSL",
                )
                self._timers.time_wait = now + 2 * self.config.msl
            elif pos + slen <= rnxt and slen:
                self.stats["dup_segs_in"] += 1
                if self.sack_ok and dlen:
                    self._sackgen.duplicate(pos, pos + dlen)  # D-SACK (RFC 2883)
                self._drop(now, "duplicate", concept="C14")
            else:
                self._drop(now, "out_of_window", concept="C14")
            self._reply_unacceptable(slen, now)
            return

        # Timestamps (RFC 7323 §4.3): TS.Recent follows the segment at the left edge.
        if (
            self.ts_ok
            and seg.tsval is not None
            and pos <= self._last_ack_sent
            and not seq.lt(seg.tsval, self.ts_recent)
        ):
            self.ts_recent = seg.tsval
            self.ts_recent_age = now

        # Second: RST (RFC 5961 §3.2: exact match resets, in-window gets a challenge ACK).
        if flags & RST:
            if pos != rnxt and not rst_fin:
                self._drop(now, "rst_in_window_challenge")
                self._challenge_ack(now)
                return
            if st is S_SYN_RECEIVED and self.passive:
                self._trace(
                    now,
                    "note",
                    concept="C27",
                    text="RST for our SYN-ACK: the SYN was stale; half-open state freed",
                )
                self._set_state(S_CLOSED, now, "reset")
            elif st is S_SYN_RECEIVED:
                self._fail(now, errno.ECONNREFUSED, "connection refused", "reset")
            elif st is S_TIME_WAIT or (
                st in (S_CLOSING, S_LAST_ACK) and not self.config.reset_errno_by_state
            ):
                self._set_state(S_CLOSED, now, "reset")
            elif st is S_CLOSE_WAIT and self.config.reset_errno_by_state:
                # Linux tcp_reset(): the peer had closed; writing reports EPIPE.
                self._fail(now, errno.EPIPE, "connection reset by peer after its FIN", "reset")
            else:
                self._fail(now, errno.ECONNRESET, "connection reset by peer", "reset")
            return

        # Fourth: SYN in a synchronised state: challenge ACK (RFC 5961 §4).
        if flags & SYN:
            self._drop(now, "syn_in_window_challenge")
            self._challenge_ack(now)
            return

        # Fifth: the ACK field.
        if not flags & ACK:
            self._drop(now, "no_ack")
            return
        if not self._process_ack(seg, pos, now):
            return
        st = self.state
        if st is S_CLOSED:
            return
        if self._timers.keepalive is not None:
            # Only a segment inside the window with an acceptable ACK shows the peer
            # alive; junk, old duplicates and keepalive probes do not (RFC 1122 §4.2.3.6).
            self._timers.keepalive = now + self.config.keepalive_idle
            self._ka_probes = 0

        # ECN (RFC 3168 §6.1.3): CWR from the sender ends our echo of congestion.
        if flags & CWR and self.ecn_ok:
            self._ece_echo = False

        # Sixth: the URG bit (MUST-30..32), in the states that still receive.
        if flags & URG and st in CAN_RECEIVE:
            self._urgent_in(rnxt + seq.sub(seg.seq, rnxt_seq) + seg.urgent, now)

        # Seventh: segment text.
        if dlen:
            if st in CAN_RECEIVE:
                shut = (
                    self._rd_shut and st in (S_FIN_WAIT_1, S_FIN_WAIT_2) and pos + dlen > self._rnxt
                )
                if self._orphan or shut:
                    self._reset_for_data(seg, now)
                    return
                self._accept_data(pos, seg.payload, now, seg.ecn)
            else:
                self._drop(now, "data_after_fin")
        elif (
            flags & FIN
            and pos > self._rnxt
            and (self._orphan or self._rd_shut)
            and st in (S_FIN_WAIT_1, S_FIN_WAIT_2)
            and self.config.rst_on_data_after_shut_rd
        ):
            # Linux tcp_rcv_state_process(): a FIN past RCV.NXT (data is missing before
            # it) after the receive side was shut resets, as data would.
            self._reset_for_data(seg, now)
            return
        # Eighth: FIN (held until every byte before it has arrived).
        if flags & FIN:
            fin_pos = pos + dlen
            if fin_pos < self._radv or fin_pos == self._rnxt:
                self._rfin_pos = fin_pos
                if fin_pos != self._rnxt:
                    self._ack_now = True  # held FIN: duplicate ACK now; else _check_fin
                elif not dlen and self._mem.rcv_over(self.config.rcv_buf):
                    self._ack_now = True
        if self._rfin_pos is not None:
            self._check_fin(now)

    def _reset_for_data(self, seg: Segment, now: float) -> None:
        """C24: the application is gone (or shut its receive side); data for it is
        answered with RST."""
        why = (
            "data for a closed socket (C24)"
            if self._orphan
            else "data after shutdown(SHUT_RD) (tcp_rcv_state_process)"
        )
        if self.config.orphan_rst_from_ack:
            # Linux: drop the connection, then answer as for none (RFC 9293
            # §3.10.7.1 form <SEQ=SEG.ACK><CTL=RST>).
            self._send_rst_raw(now, seg.ack, 0, RST, why=why)
        else:
            self._send_rst(now, self._max, why=why)
        if self._orphan:
            self._set_state(S_CLOSED, now, "abort")
        else:  # Linux tcp_reset(): the reader learns ECONNRESET
            self._fail(
                now, errno.ECONNRESET, "connection reset: data after shutdown(SHUT_RD)", "abort"
            )

    def _reply_unacceptable(self, slen: int, now: float) -> None:
        """RFC 9293: reply <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.  Replies to pure ACKs
        are rate limited (as Linux's tcp_invalid_ratelimit) so two confused ends
        cannot ACK each other forever; replies to data are not (its sender needs them)."""
        if slen == 0 and now - self._last_oow_ack < self.config.oow_ack_interval:
            self.stats["oow_acks_suppressed"] += 1
            return
        if slen == 0 or not self.config.challenge_ack_oow_limit:
            # (Linux tcp_oow_rate_limited(): a reply to data neither waits for nor
            # starts the interval its challenge ACKs share.)
            self._last_oow_ack = now
        self._ack_now = True

    def _process_ack(self, seg: Segment, pos: int, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth step; returns False when the segment is dropped."""
        st = self.state
        una = self._una
        ack_pos = una + seq.sub(seg.ack, (self.iss + una) & MASK)
        if not una:  # our SYN unacknowledged: SYN-RECEIVED, or FIN-WAIT-1 after a close there
            if not 0 < ack_pos <= self._max:
                self._send_rst_raw(now, seg.ack, 0, RST, why="unacceptable ACK in SYN-RECEIVED")
                self._drop(now, "bad_ack_syn_received")
                return False
            self.snd_wnd = seg.window << self.snd_wscale
            if self.passive and self.config.max_window_from_ack:
                self._max_snd_wnd = self.snd_wnd  # tcp_create_openreq_child(): the ACK's
            else:
                self._max_snd_wnd = max(self._max_snd_wnd, self.snd_wnd)
            self._wl1, self._wl2 = pos, ack_pos
            if self.ts_ok and seg.tsecr:
                self._rtt_from_ts(seg.tsecr, now)
                self._rtt_pos = None
            self._una = ack_pos
            self._take_rtt_sample(ack_pos, now)
            self._retries = 0
            self._timers.rto = None
            if self.rtt.backoff:
                self.rtt.reset_for_data()  # RFC 6298 §5.7, as on the active side
            if st is S_SYN_RECEIVED:
                self._set_state(S_ESTABLISHED, now)
            una = self._una
        span = max(self._max_snd_wnd, 1)
        if self.config.old_ack_bytes_acked:
            # Linux tcp_ack(): "do not accept ACK for bytes we never sent" -- the span
            # below SND.UNA is at most the data acknowledged so far (tp->bytes_acked).
            span = min(span, una - (1 if self.passive else 0))
        if ack_pos > self._max or ack_pos < una - span:
            # RFC 9293: ACK for data never sent; RFC 5961 §5.2: ACK too old.  Reply with
            # a (rate-limited) challenge ACK and drop.
            self._drop(now, "ack_unsent" if ack_pos > self._max else "ack_too_old")
            self._challenge_ack(now)
            return False
        if st is S_TIME_WAIT:
            # RFC 9293 §3.10.7.4: "The only thing that can arrive in this state is a
            # retransmission of the remote FIN": everything we sent is acknowledged, so
            # the ACK field has nothing left to move (window, loss state, ECN).
            return True
        window = seg.window << self.snd_wscale
        sacked_before = self._sb.sacked_bytes
        delivered_before = self._rsr.delivered
        delivered: list[SentSeg] = []
        dsack = False
        if ack_pos > una:
            delivered = self._on_new_ack(ack_pos, seg, now)
        if self.sack_ok and seg.sack_blocks:
            dsack = self._process_sack(seg.sack_blocks, delivered)
            if self._sb.splits_refused:
                self._sack_splits_refused(now)
        if self._tlp_end is not None:
            self._tlp_ack(ack_pos, ack_pos > una, dsack, now)
        is_dup = (
            ack_pos == una
            and not seg.payload
            and not seg.flags & (SYN | FIN)
            and self._max > una
            and window == self.snd_wnd
            and not self._persisting
        )
        if is_dup:
            self.stats["dup_acks_in"] += 1
            self._dupacks += 1
        # Send window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2 rule), only from an ACK
        # with SND.UNA =< SEG.ACK: an older one is a reordered copy whose window is stale.
        if ack_pos >= una and (self._wl1 < pos or (self._wl1 == pos and self._wl2 <= ack_pos)):
            opened = self.snd_wnd == 0 and window > 0
            self.snd_wnd = window
            self._wl1, self._wl2 = pos, ack_pos
            if window > self._max_snd_wnd:
                self._max_snd_wnd = window
            if opened:
                self._window_opened(now, window)
        if self._persisting or not window:
            # The peer answers our probes, or our retransmissions into a window it shrank
            # to zero: a live receiver, so keep waiting (RFC 1122 §4.2.2.17, RFC 9293
            # §3.8.6.1).  A silent one still runs out of retries.
            self._retries = 0
            if (
                self.config.zero_window_probe_old_seq
                and not window
                and self._max == self._una
                and self._timers.rto is not None
            ):
                # Linux tcp_ack_probe(): an ACK while probing a still-closed window
                # restarts the probe timer from now, keeping its backoff.
                self._timers.rto = self._rto_deadline(now)
        # An older ACK (SND.UNA - max window <= SEG.ACK < SND.UNA, a reordered copy) is
        # acceptable but acknowledges nothing: it must not count as negative progress.
        self._detect_losses(
            now,
            max(ack_pos - una, 0),
            self._sb.sacked_bytes - sacked_before,
            is_dup,
            delivered,
            dsack,
        )
        if self.ecn_ok and seg.flags & ECE:
            self._on_ece(now)  # after loss detection: one reduction per event
        newly = self._rsr.delivered - delivered_before
        if newly or self._cc.wants_rate_sample:  # nothing delivered: no sample (tcp_rate_gen)
            self._rate_ack(delivered, newly, bool(self.ecn_ok and seg.flags & ECE), now)
        # State-specific ACK consequences (FIN acknowledged?).
        fin_acked = self._fin_pos is not None and self._una > self._fin_pos
        if fin_acked:
            if st is S_FIN_WAIT_1:
                self._set_state(S_FIN_WAIT_2, now)
                if self._orphan:
                    self._timers.fin_wait_2 = now + self.config.fin_wait_2_timeout
            elif st is S_CLOSING:
                self._enter_time_wait(now)
            elif st is S_LAST_ACK:
                self._set_state(S_CLOSED, now)
                return False
        return True

    def _on_new_ack(self, ack_pos: int, seg: Segment, now: float) -> list[SentSeg]:
        """Cumulative ACK advanced SND.UNA (RFC 9293; RFC 6298 §5.2-5.3)."""
        old_una = self._una
        self._una = ack_pos
        data_end = self._buf_pos + len(self._buf)
        drop = min(ack_pos, data_end) - self._buf_pos
        if drop > 0:
            self._buf.drop(drop)
            self._buf_pos += drop
            self.stats["bytes_acked"] += drop
            self._mem.on_acked(self._buf_pos)
            if self._send_full and self._mem.writable(self):
                self._wake_writer()
        sacked = self._sb.sacked_bytes
        done = self._sb.ack(ack_pos)
        if self._probe is not None and self._probe.end <= ack_pos:
            self._probe = None
        # Delivered now: what was not SACKed (and counted) before (Linux tp->delivered).
        self._rsr.delivered += ack_pos - old_una - (sacked - self._sb.sacked_bytes)
        if self.ts_ok and seg.tsecr:
            self._rtt_from_ts(seg.tsecr, now)
        else:
            self._take_rtt_sample(ack_pos, now)
        self._retries = 0
        self._progress_at = now
        if self._max > ack_pos:
            self._timers.rto = self._rto_deadline(now)  # RFC 6298 §5.3
            self._arm_tlp(now)
        else:
            timers = self._timers
            timers.rto = timers.tlp = timers.rack_reorder = None
        if ack_pos >= self._round_end:
            self._round_end = self._max
            self._cc.on_round_start(now)
        return done

    def _wake_writer(self) -> None:
        """Report SendSpace to a writer that found the send buffer full."""
        self._send_full = False
        self._mem.woken()
        # (self is the Connection; no typing.cast() call per ACK)
        self._events.append(SendSpace(self))  # type: ignore[arg-type]

    def _window_opened(self, now: float, window: int) -> None:
        """The peer's window reopened after zero (C4): leave persist mode."""
        self._persisting = False
        probe = self._probe
        if probe is not None and probe.end > self._una and probe is self._sb.last():
            # The probe byte was refused; withdraw it so sending resumes at SND.UNA
            # instead of leaving a one-byte hole (RFC 9293 §3.8.6.1).
            self._sb.pop_last()
            self._max = probe.start
            if self._rtt_pos is not None and self._rtt_pos > probe.start:
                self._rtt_pos = None  # the timed byte will be sent again: Karn (RFC 6298 §3)
        self._probe = None
        self.rtt.backoff = 0
        # Data still out was sent into the closed window: time it afresh, without the
        # backoff the zero window piled up (RFC 6298 §5.3, §5.7).
        self._timers.rto = self._rto_deadline(now) if self._max > self._una else None
        self._trace(now, "note", concept="C4", text=f"peer window opened to {window}")

    def _sack_splits_refused(self, now: float) -> None:
        """Count the SACK edges the scoreboard would not cut records at (CVE-2019-11478
        hardening, RFC 2018 §8: SACK is advisory); trace the first occurrence only."""
        sb = self._sb
        first = not self.stats["sack_splits_refused"]
        self.stats["sack_splits_refused"] += sb.splits_refused
        sb.splits_refused = 0
        if first:
            self._trace(
                now,
                "note",
                concept="",
                text="SACK block edges inside a sent "
                "MSS: not splitting the records there, that data stays un-SACKed "
                "(CVE-2019-11478)",
            )
