"""The send path of :class:`~synack.tcp.connection.Connection`: filling the window
(RFC 9293 §3.8.6 and §3.7.4 Nagle; RFC 5681, RFC 3042, PRR RFC 6937), retransmissions,
segments with our ACK, window (RFC 7323 §2.3) and SACK blocks (RFC 2018), RSTs,
and challenge ACKs (RFC 5961)."""

from __future__ import annotations

from ..wire.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Segment
from .congestion import initial_window_bytes
from .conn_base import ConnBase
from .conn_const import (
    _OUTPUT_STATES,
    DEFAULT_PEER_MSS,
    ECT0,
    MASK,
    S_CLOSED,
    S_SYN_SENT,
)
from .scoreboard import SentSeg


class OutputMixin(ConnBase):
    """Send path."""

    __slots__ = ()

    def segments_to_send(self, now: float) -> list[Segment]:
        """Run the send path and return every segment it wants on the wire now."""
        self._now = now
        if self.state in _OUTPUT_STATES and self._una:
            # (SND.UNA = 0: closed in SYN-RECEIVED; the FIN waits for the ACK of our SYN.)
            self._send_data(now)
        if self._ack_now and self.state is not S_CLOSED and self.state is not S_SYN_SENT:
            # A pure ACK carries SND.NXT (the highest sequence sent, RFC 9293).
            self._emit(self._make(ACK, self._max, b"", now), now, "")
        if self._tr is not None:
            self._trace_changes(now)
        out = self._out
        if not out:
            return []
        self._out = []
        return out

    def _send_data(self, now: float) -> None:
        """Resend what is lost, then fill the usable window in one go (RFC 9293 §3.8.6,
        RFC 5681 cwnd, RFC 6937 PRR during recovery, RFC 3042 limited transmit)."""
        sb = self._sb
        mss = self.eff_mss
        if self.config.mss_half_window and self._max_snd_wnd:
            wnd = self._max_snd_wnd
            cutoff = wnd >> 1 if wnd > DEFAULT_PEER_MSS else wnd
            mss = min(mss, max(cutoff, 48))  # tcp_bound_to_half_wnd(): 68 - the header
        data_end = self._buf_pos + len(self._buf)
        if self._max == self._una and data_end > self._max and self.config.slow_start_after_idle:
            self._idle_restart(now)
        prr = self._prr  # exists exactly while in fast recovery
        recovering = prr is not None
        if prr is not None:
            allow = prr.allow
        else:
            pipe = self._pipe()
            if self.config.cwnd_in_packets and pipe:
                # Linux counts cwnd and the flight in packets (cwnd_in_packets).
                pipe = -(-pipe // mss) * self._cc.mss
            allow = self._cc.cwnd - pipe
            if not self.sack_ok and self._dupacks in (1, 2):
                allow += self._dupacks * mss  # limited transmit (RFC 3042)
        seg_max = self.config.max_segment_payload or mss
        # Linux counts cwnd in packets: a short segment takes a whole one (cwnd_in_packets).
        per_packet = self._cc.mss if self.config.cwnd_in_packets else 0
        budget = self._pace_budget(now) if self._pacer is not None else None
        paced = False  # stopped for pacing with more to send
        if budget is not None and seg_max > mss:
            seg_max = min(seg_max, self._pacer.quantum)  # type: ignore[union-attr]  # autosize
        budget0 = budget
        seg_max = max(seg_max - seg_max % mss, mss)  # whole MSS pieces once offloaded
        # 1. Retransmissions, oldest first: only ever segments that were sent.  A record
        # larger than the window allows (a 64 KB offloaded one after a timeout, or one
        # sent before the MSS fell) is cut first, so the resend fits.
        if sb.lost_bytes:
            for s in sb.lost_segments():
                if allow <= 0:
                    break
                if budget is not None and budget <= 0:
                    paced = True
                    break
                limit = min(seg_max, max(allow - allow % mss, mss))
                if s.end - s.start - (1 if s.fin else 0) > limit:  # the FIN rides along
                    sb.split(s, s.start + limit)
                elif self.config.retrans_collapse:
                    self._collapse_retrans(s, mss)
                n = self._resend(s, now, "retransmit: lost" if recovering else "retransmit")
                allow -= max(n, per_packet)
                if budget is not None:
                    budget -= n
        # 2. New data, and the FIN after it.
        fin_pos = self._fin_pos
        rwnd_end = self._una + self.snd_wnd
        sent_new = False
        push = self._push_now
        self._push_now = False
        # Segments limited transmit sends on a duplicate ACK close no burst (Linux).
        limited = self._dupacks > 0 and not recovering
        burst = 0
        chunk = self.config.psh_burst_segments
        first_new = self._max
        eor = self._eor
        while eor and eor[0] <= self._max:
            eor.pop(0)  # a record boundary already sent
        rec_end = data_end
        while True:
            nxt = self._max
            if nxt < data_end:
                # A segment never crosses a record boundary (MSG_EOR).
                if eor:
                    rec_end = next((m for m in eor if m > nxt), data_end)
                room = min(rwnd_end - nxt, rec_end - nxt, seg_max)
                if room <= 0:
                    break
                n = room
                if n > allow:
                    if allow < mss:
                        break
                    n = allow - allow % mss
                end = nxt + n
                # A record's last segment goes like the last of a write: Linux's Nagle
                # and SWS tests (tcp_nagle_test()) only hold the queue's last skb.
                record_end = end == rec_end < data_end
                # Sender SWS avoidance (RFC 9293 §3.8.6.2.1): no small segment while more
                # queued data waits for window, unless half the peer's max window fits.
                if n < mss and end < data_end and n < self._max_snd_wnd // 2 and not record_end:
                    break
                # Nagle (RFC 9293 §3.7.4) unless TCP_NODELAY; TCP_CORK and MSG_MORE hold
                # a partial last segment even with nothing in flight.  push() overrides.
                if (
                    n < mss
                    and not push
                    and not (fin_pos is not None and end == data_end)
                    and not record_end
                    and (
                        (
                            not self.config.nodelay
                            and self._max > self._una
                            and (not self.config.nagle_minshall or self._snd_sml > self._una)
                        )
                        or (end == data_end and (self.config.cork or self._more))
                    )
                ):
                    break
                more = min(rwnd_end - end, data_end - end)
                burst_end = False
                if self.config.psh_every_burst and not limited:
                    burst += 1
                    if chunk:  # TSO packets of `chunk` segments, each ending with PSH
                        burst_end = burst % chunk == 0
                    else:
                        burst_end = more <= 0 or allow - n < min(mss, more)
                if budget is not None:
                    if budget <= 0:
                        paced = True
                        break
                    budget -= n
                held = end == data_end and self._more and fin_pos is None  # MSG_MORE
                self._send_new(
                    nxt,
                    end,
                    (end == data_end and not held) or record_end,
                    now,
                    burst_end=burst_end and (chunk > 0 or not held),
                )
                allow -= max(n, per_packet)
                sent_new = True
            elif fin_pos is not None and nxt == fin_pos:
                if nxt >= rwnd_end and self.config.fin_needs_window:
                    break  # Linux tcp_snd_wnd_test(): the FIN's sequence number must fit
                if per_packet and allow <= 0:
                    break  # a bare FIN is a packet too (tcp_cwnd_test())
                self._send_new(nxt, nxt, True, now)
                sent_new = True
            else:
                break
        if prr is not None:
            prr.allow = max(allow, 0)
        else:  # cwnd in use: no full segment's room left (Linux tcp_write_xmit)
            self._cc.after_send(self._una, self._max, allow < mss)
        if sent_new:
            self._mem.on_sent(
                first_new, self._max, self._buf_pos, data_end, self.config.psh_burst_segments * mss
            )
        if budget is not None:
            self._paced(budget0 - budget if budget0 else 0, paced, now)
        if not paced and data_end - self._max < mss:  # tcp_rate_check_app_limited
            self._rsr.check_app_limited(
                data_end - self._max, mss, self._pipe(), self._cc.cwnd, sb.lost_bytes
            )
        # 3. Timers: retransmission, tail loss probe, persist.
        if self._max > self._una:
            if self._timers.rto is None:
                self._timers.rto = self._rto_deadline(now)
            if sent_new:
                self._arm_tlp(now)  # RFC 8985 §7.2: (re)schedule on each new send
        elif self._timers.rto is None and (
            (
                self._max < data_end
                and (
                    rwnd_end - self._max < min(data_end - self._max, mss)
                    or self.config.held_data_probe
                )
            )
            or self._fin_held()
        ):
            # Window closed or too small to use (SWS): the persist timer will probe it
            # or send what fits (RFC 9293 §3.8.6.1 and §3.8.6.2.1 override).  Data that
            # cork, MSG_MORE or Nagle hold with the window open is not outstanding and
            # arms no timer (RFC 6298 §5.1); the application's push releases it.
            self._persisting = self.snd_wnd == 0
            self._timers.rto = self._rto_deadline(now)

    def _fin_held(self) -> bool:
        """Is the FIN unsent for want of window (``fin_needs_window``)?"""
        return (
            self._fin_pos is not None
            and self._max == self._fin_pos
            and self._max >= self._una + self.snd_wnd
            and self.config.fin_needs_window
        )

    def _mark_push(self, end: int) -> None:
        """Linux tcp_mark_push(): the segment that ends at ``end`` will carry PSH."""
        if self._psh_marks is None:
            self._psh_marks = set()
        self._psh_marks.add(end)
        self._pushed_pos = end

    def _forced_push(self, end: int) -> None:
        """Linux forced_push(): once more than half the peer's largest window was
        written since the last push, the skb ending at ``end`` gets PSH (tcp_mark_push)."""
        if end - self._pushed_pos > self._max_snd_wnd // 2:
            self._mark_push(end)

    def _collapse_retrans(self, s: SentSeg, mss: int) -> None:
        """Linux tcp_retrans_try_collapse(): a retransmission shorter than the MSS takes
        in the lost records after it while their data fits one MSS and the peer's
        window; the merged segment carries their flags (a FIN rides with the data)."""
        wnd_end = self._una + self.snd_wnd
        while not s.fin and s.end - s.start < mss and self._sb.absorb_next(s, mss, wnd_end):
            pass

    def _idle_restart(self, now: float) -> None:
        """RFC 5681 §4.1: if no data was sent for longer than the RTO, cwnd = min(cwnd,
        IW) before sending.  With nothing in flight the last data sent was acknowledged
        at ``_progress_at``, so the idle time is at least ``now - _progress_at``."""
        cc = self._cc
        if now - self._progress_at <= self.rtt.rto:
            return
        rw = initial_window_bytes(self.eff_mss, self.config.initial_window)
        if cc.cwnd > rw:
            old = cc.cwnd
            cc.on_idle_restart(rw, now)
            self._trace(
                now,
                "cc",
                event="idle_restart",
                cwnd=cc.cwnd,
                ssthresh=cc.ssthresh,
                old_cwnd=old,
                idle=now - self._progress_at,
            )

    def _send_new(
        self, start: int, end: int, last: bool, now: float, why: str = "", burst_end: bool = False
    ) -> None:
        """Send data ``[start, end)`` for the first time, with FIN if it ends the stream."""
        off = start - self._buf_pos
        flags = ACK
        fin = last and self._fin_pos is not None and end == self._fin_pos
        marks = self._psh_marks
        marked = marks is not None and end in marks  # psh_write_end
        if ((last or burst_end) and end > start) or marked:
            flags |= PSH
        if marks and end > start:
            marks.difference_update([m for m in marks if m <= end])
        if fin:
            flags |= FIN
        if flags & PSH and self.config.psh_retrans_kept:
            if self._psh_sent is None:
                self._psh_sent = set()
            self._psh_sent.add(end)
        seg = self._make(flags, start, self._payload(off, end - start), now)
        if self.ecn_ok and end > start and not why.startswith("zero-window"):
            seg.ecn = ECT0  # RFC 3168 §6.1.2: new data is ECN-capable
            if self._cwr_pending:
                seg.flags |= CWR
                self._cwr_pending = False
        stop = end + (1 if fin else 0)
        if end - start < self.eff_mss:
            self._snd_sml = stop  # Linux tcp_minshall_update()
        if self._max == self._una:
            self._progress_at = now  # data goes outstanding: the user timeout starts
        sb = self._sb
        rsr = self._rsr
        if self._max == self._una:  # nothing in flight: the delivery clock starts now
            rsr.first_sent_time = rsr.delivered_time = now
        # The delivery state at this send (RateSampler.on_send, inlined: once per segment).
        sb.add(start, stop, now, fin).tx = (
            rsr.delivered,
            rsr.delivered_time,
            rsr.first_sent_time,
            rsr.app_limited != 0,
            self._max - self._una - sb.sacked_bytes - sb.lost_bytes + stop - start,
            sb.lost_total,
            rsr.ce_delivered,
        )
        if self._rtt_pos is None and not self.ts_ok:
            self._rtt_pos, self._rtt_time = stop, now
        self.stats["bytes_sent"] += end - start
        if self._prr is not None:
            self._prr.sent(end - start)
        self._emit(seg, now, why)
        self._max = stop

    def _resend(self, s: SentSeg, now: float, why: str, *, count: bool = True) -> int:
        """Retransmit one recorded segment (C17, C18); return its length."""
        data_end = min(s.end, self._buf_pos + len(self._buf))
        off = s.start - self._buf_pos
        payload = self._payload(off, data_end - s.start) if data_end > s.start else b""
        flags = ACK | (FIN if s.fin else 0)
        sent = self._psh_sent
        if sent is not None:  # psh_retrans_kept: as first sent
            una = self._una
            sent.difference_update([m for m in sent if m <= una])
            if payload and any(s.start < m <= data_end for m in sent):
                flags |= PSH
        elif (
            payload
            and data_end == self._buf_pos + len(self._buf)
            and not self.config.psh_retrans_kept
        ):
            flags |= PSH
        sb = self._sb
        sb.retransmitted(s, now)
        self._rsr.on_send(
            s, now, False, self._max - self._una - sb.sacked_bytes - sb.lost_bytes, sb.lost_total
        )
        if count:
            self.stats["retransmits"] += 1
        self._rtt_pos = None  # Karn's rule (RFC 6298 §3)
        if self._prr is not None:
            self._prr.sent(len(payload) or 1)
        self._emit(self._make(flags, s.start, payload, now), now, why)
        return len(payload) or 1

    def _payload(self, off: int, n: int) -> bytes | memoryview:
        """``n`` bytes of the send buffer from ``off``: a view, not a copy, wherever
        the buffer allows (see :mod:`.sendbuf`)."""
        return self._buf.view(off, n)

    def _make(self, flags: int, pos: int, payload: bytes | memoryview, now: float) -> Segment:
        """Build a segment at send position ``pos`` carrying our ACK, window and options."""
        if flags & ACK:
            ack = (self.irs + self._rnxt) & MASK
            window = self._advertise(bool(flags & SYN))
            if self._ece_echo and self.ecn_ok and not flags & SYN:
                flags |= ECE
        else:
            ack = 0
            window = min(self.config.rcv_buf, 65535)
        seg = Segment(
            self.local_port, self.remote_port, (self.iss + pos) & MASK, ack, flags, window, payload
        )
        if self._sup is not None and not flags & (SYN | RST):
            self._mark_urgent(seg, pos)
        if self.ts_ok:
            seg.tsval = self._ts_clock(now)
            seg.tsecr = self.ts_recent
        if (
            self.sack_ok
            and flags & ACK
            and not flags & (SYN | RST)
            and (self._ooo.nbytes or self._sackgen.pending)
        ):
            blocks = self._sackgen.blocks(self._ooo, self._rnxt, 3 if self.ts_ok else 4)
            if blocks:
                irs = self.irs
                seg.sack_blocks = tuple(((irs + a) & MASK, (irs + b) & MASK) for a, b in blocks)
        return seg

    def _mark_urgent(self, seg: Segment, pos: int) -> None:
        """URG and the urgent pointer on a segment starting at ``pos`` before SND.UP
        (RFC 9293 §3.8.5, MUST-31: the offset to the octet after the last urgent byte,
        RFC 6093 §4).  Urgent mode ends once SND.UNA reaches SND.UP.  An offset past
        the 16-bit field says 65535 instead, as Linux does, when that points beyond
        SND.NXT (into data the peer has not had, so no false mark in its buffer)."""
        sup = self._sup
        assert sup is not None
        if self._una >= sup:
            self._sup = None
            return
        off = sup - pos
        if 0 < off <= 0xFFFF:
            seg.flags |= URG
            seg.urgent = off
        elif off > 0xFFFF and pos + 0xFFFF > self._max:
            seg.flags |= URG
            seg.urgent = 0xFFFF

    def _ts_clock(self, now: float) -> int:
        """TSval: a 1 ms clock with a per-connection offset (RFC 7323 §5.4)."""
        return (int(now * 1000) + self._ts_offset) & MASK

    def _advertise(self, syn: bool = False) -> int:
        """The window field to send: free space, moved right only in worthwhile steps.

        Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge advances when
        it can move by at least min(buffer/2, MSS); it never moves left.  The value
        is scaled by our shift (RFC 7323 §2.3), never on a SYN, rounding up so the
        edge the peer computes is never left of one it was already given.
        """
        rnxt = self._rnxt
        mem = self._mem
        cfg = self.config
        mss = self.eff_mss
        right = rnxt + mem.window(
            cfg, len(self._rbuf), mss, self.ts_ok, syn, 65535 << self.rcv_wscale
        )  # (as _offerable)
        radv = self._radv
        # (The threshold is at least 1: an edge that did not move needs no call for it.)
        if radv < rnxt or (right > radv and right - radv >= mem.sws_threshold(cfg.rcv_buf, mss)):
            self._radv = max(right, radv)
        shift = 0 if syn else self.rcv_wscale
        field = min((max(self._radv - rnxt, 0) + (1 << shift) - 1) >> shift, 65535)
        self._radv = rnxt + (mem.syn_edge(field) if syn else field << shift)
        return field

    def _offerable(self, syn: bool = False) -> int:
        """The window we could offer now: what the memory model allows (the free buffer,
        in whole segments if configured), capped at what the header can carry
        (65535 << shift)."""
        return self._mem.window(
            self.config, len(self._rbuf), self.eff_mss, self.ts_ok, syn, 65535 << self.rcv_wscale
        )

    def _emit(self, seg: Segment, now: float, why: str) -> None:
        if seg.flags & ACK:
            self._ack_now = False
            self._ack_pending = 0
            self._timers.delayed_ack = None
            self._last_ack_sent = self._rnxt
        self.stats["segs_out"] += 1
        self._out.append(seg)
        if self._tr is not None:
            self._trace_seg(now, "out", seg, why)

    def _send_rst(self, now: float, pos: int, *, why: str) -> None:
        """Send <SEQ=pos><ACK=RCV.NXT><CTL=RST,ACK>; an RST is never retransmitted (C19)."""
        if self.config.rst_window:
            # Linux tcp_close() frees the unread data, then tcp_send_active_reset()
            # sends the window as any segment (tcp_transmit_skb, tcp_select_window).
            self._mem.on_read(lambda: self._rnxt)
            seg = self._make(RST | ACK, pos, b"", now)
        else:
            seg = self._make(RST | ACK, pos, b"", now)
            seg.window = 0
        seg.sack_blocks = ()
        self._emit(seg, now, why)

    def _send_rst_raw(self, now: float, seq_no: int, ack: int, flags: int, *, why: str) -> None:
        seg = Segment(self.local_port, self.remote_port, seq_no & MASK, ack, flags, 0)
        self.stats["segs_out"] += 1
        self._out.append(seg)
        if self._tr is not None:
            self._trace_seg(now, "out", seg, why)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2 challenge ACK, rate limited per connection (§7)."""
        if self.config.challenge_ack_oow_limit:
            # Linux tcp_send_challenge_ack(): first the per-socket limit it shares with
            # out-of-window replies (__tcp_oow_rate_limited, tcp_invalid_ratelimit).
            if now - self._last_oow_ack < self.config.oow_ack_interval:
                self.stats["challenge_acks_suppressed"] += 1
                return
            self._last_oow_ack = now
        if now - self._challenge_window >= 1.0:
            self._challenge_window = now
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            self.stats["challenge_acks_suppressed"] += 1
            return
        self._challenge_count += 1
        self.stats["challenge_acks"] += 1
        self._emit(self._make(ACK, self._max, b"", now), now, "challenge ACK (RFC 5961)")
