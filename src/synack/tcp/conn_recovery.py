"""Loss detection and recovery for :class:`~synack.tcp.connection.Connection`: SACK
(RFC 2018, D-SACK RFC 2883), duplicate ACKs (RFC 5681, NewReno RFC 6582), RACK and the
tail loss probe (RFC 8985), DupThresh and pipe (RFC 6675), PRR (RFC 6937), the ECN-Echo
response (RFC 3168 §6.1.2), RTT samples (RFC 6298, RFC 7323 §4.1) and delivery rate."""

from __future__ import annotations

import math

from .. import seq
from .conn_base import ConnBase
from .conn_const import MASK
from .scoreboard import SentSeg


class RecoveryMixin(ConnBase):
    """Loss detection, recovery, RTT and delivery-rate samples."""

    __slots__ = ()

    def _process_sack(self, blocks: tuple[tuple[int, int], ...],
                      delivered: list[SentSeg]) -> bool:
        """Apply received SACK blocks (RFC 2018); return True if the first is a D-SACK."""
        una = self._una
        base = (self.iss + una) & MASK
        dsack = False
        for i, (left, right) in enumerate(blocks):
            lpos = una + seq.sub(left, base)
            rpos = una + seq.sub(right, base)
            if not lpos < rpos <= self._max:
                continue
            self.stats["sack_blocks_in"] += 1
            if i == 0 and (rpos <= una or (len(blocks) > 1 and _covers(blocks[1], left, right))):
                dsack = True  # RFC 2883 §4: a duplicate was received
                self.stats["dsacks_in"] += 1
                continue
            newly = self._sb.sack(max(lpos, una), rpos, self.eff_mss)
            for s in newly:
                self._delivered += s.end - s.start
                if s.end < self._rack_end and not s.retrans:
                    self._reordering_seen = True  # delivered below a later segment
            delivered.extend(newly)
        return dsack

    def _detect_losses(self, now: float, acked: int, sacked: int, is_dup: bool,
                       delivered: list[SentSeg], dsack: bool) -> None:
        """Find lost segments, enter/leave recovery, size PRR (RFC 6675, 8985, 6582, 6937)."""
        sb = self._sb
        mss = self.eff_mss
        dups_before = self._dupacks
        if dsack:
            self._reordering_seen = True
            if self._tlp_end is not None:
                self._tlp_retrans = False  # the probe was a duplicate: no loss (RFC 8985 §7.4)
        if self.sack_ok:
            if self.config.rack:
                for s in delivered:
                    self._rack_update(s, now)
                if sb.sacked_bytes or self._in_recovery:
                    self._rack_detect(now)
            lost = sb.mark_dupthresh_losses(mss)
            self.stats["lost_segments"] += lost
            if (is_dup and self._dupacks == 3 and not sb.sacked_bytes
                    and self._una >= self._recover):
                # A peer that negotiated SACK but reports nothing: the classic rule, once
                # per window (RFC 6582 recover), so forged duplicate ACKs cannot make
                # us resend the same segment over and over.
                self._mark_head_lost(fresh_only=True)
        elif self._in_recovery:
            if acked and self._una < self._recover:
                self._mark_head_lost()  # RFC 6582 §3.2 step 4: partial ACK
        elif is_dup and self._dupacks == 3 and self._una >= self._recover:
            self._mark_head_lost(fresh_only=True)  # RFC 5681 §3.2 fast retransmit
        if acked:
            self._dupacks = 0
        if sb.lost_bytes and not self._in_recovery and self._una >= self._pmtu_mark:
            # (Below the mark the losses are the segments too big for the path, resent
            # as the window allows: no congestion response, RFC 1191 §6.5.)
            self._enter_recovery(now)
        if self._in_recovery:
            if self._una >= self._recover:
                self._in_recovery = False
                self._cc.on_recovery_end(now)
                self._trace(now, "cc", event="recovery_end", cwnd=self._cc.cwnd,
                            ssthresh=self._cc.ssthresh)
            else:
                delivered_bytes = acked + (sacked if self.sack_ok else (mss if is_dup else 0))
                self._prr_update(delivered_bytes)
        elif acked:
            grow = acked
            if self.config.cwnd_count_delivered:
                # Linux grows cwnd by what this ACK newly delivered: data SACKed earlier,
                # or one segment per duplicate ACK without SACK, was counted already.
                earlier = -min(sacked, 0) if self.sack_ok else dups_before * mss
                grow = max(acked - earlier, min(acked, mss))
            self._cc.on_ack(grow, self._max - self._una, now)

    def _mark_head_lost(self, *, fresh_only: bool = False) -> None:
        head = self._sb.first()
        if head is None or (fresh_only and head.retrans):
            return
        if self._sb.mark_lost(head):
            self.stats["lost_segments"] += 1

    def _rack_update(self, s: SentSeg, now: float) -> None:
        """RFC 8985 §6.2 step 2: remember the most recently sent delivered segment."""
        rtt = now - s.xmit
        if s.retrans and rtt < self._min_rtt - 1e-9:
            return  # may be the ACK of the original transmission: ambiguous
        if rtt < self._min_rtt:
            self._min_rtt = rtt
        if s.xmit > self._rack_xmit or (s.xmit == self._rack_xmit and s.end > self._rack_end):
            self._rack_xmit = s.xmit
            self._rack_end = s.end
            self._rack_rtt = rtt

    def _reo_wnd(self) -> float:
        """RFC 8985 §6.2 step 4: the reordering window."""
        if not self._reordering_seen and (self._in_recovery or self._sb.sacked_bytes
                                          >= 3 * self.eff_mss):
            return 0.0
        min_rtt = self._min_rtt if self._min_rtt != math.inf else 0.0
        srtt = self.rtt.srtt or 0.0
        return min(min_rtt / 4, srtt)

    def _rack_detect(self, now: float) -> None:
        """RFC 8985 §6.2 step 5: a segment sent well before one that was delivered is lost.

        Only segments neither SACKed nor lost are candidates; the scoreboard keeps
        them in transmission order, so the walk ends at the first one sent after
        the RACK segment (as Linux's tsorted queue) instead of covering the window."""
        if self._rack_xmit < 0:
            return
        reo = self._reo_wnd()
        horizon = self._rack_rtt + reo
        wait = 0.0
        sb = self._sb
        rack_xmit = self._rack_xmit
        rack_end = self._rack_end
        for s in sb.by_xmit():
            if s.xmit > rack_xmit:
                break  # it and every later one were sent after the RACK segment
            if s.xmit == rack_xmit and s.end >= rack_end:
                continue
            remaining = s.xmit + horizon - now
            if remaining <= 0:
                if sb.mark_lost(s):
                    self.stats["rack_losses"] += 1
                    self.stats["lost_segments"] += 1
            elif remaining > wait:
                wait = remaining
        self._rack_at = now + wait if wait > 0 else None

    def _enter_recovery(self, now: float) -> None:
        """Loss found: reduce once and start PRR (RFC 6937 §3, RFC 6675 §5)."""
        self._in_recovery = True
        self._recover = self._max
        flight = self._max - self._una
        self._cc.on_loss(flight, now)
        self._recover_fs = max(flight, 1)
        self._prr_delivered = 0
        self._prr_out = 0
        self._prr_allow = self.eff_mss  # the fast retransmission itself
        self.stats["recoveries"] += 1
        self.stats["fast_retransmits"] += 1
        self._tlp_at = None
        if self.ecn_ok:  # RFC 3168 §6.1.2: the reduction covers ECE for this window too
            self._ecn_recover = self._max
            self._cwr_pending = True
        self._trace(now, "cc", event="fast_retransmit", cwnd=self._cc.cwnd,
                    ssthresh=self._cc.ssthresh)

    def _prr_update(self, delivered: int) -> None:
        """RFC 6937 §3: how much may be sent on this ACK during recovery."""
        self._prr_delivered += delivered
        pipe = self._pipe()
        ssthresh = self._cc.ssthresh
        if pipe > ssthresh:
            sndcnt = -(-self._prr_delivered * ssthresh // self._recover_fs) - self._prr_out
        else:  # PRR-SSRB
            limit = max(self._prr_delivered - self._prr_out, delivered) + self.eff_mss
            sndcnt = min(ssthresh - pipe, limit)
        if self._prr_out == 0 and self._sb.lost_bytes:
            sndcnt = max(sndcnt, self.eff_mss)  # always send the first retransmission
        self._prr_allow = max(sndcnt, 0)

    def _pipe(self) -> int:
        """RFC 6675 §4: bytes believed to be in the network."""
        sb = self._sb
        return self._max - self._una - sb.sacked_bytes - sb.lost_bytes

    def _on_ece(self, now: float) -> None:
        """RFC 3168 §6.1.2: reduce once per window on ECN-Echo, then say CWR."""
        if self._una <= self._ecn_recover or self._in_recovery:
            return
        self._ecn_recover = self._max
        self._cc.on_ecn(self._max - self._una, now)
        self._cwr_pending = True
        self.stats["ecn_reductions"] += 1
        self._trace(now, "cc", event="ecn_echo", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh)

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: schedule a tail loss probe instead of waiting for the RTO."""
        if not (self.sack_ok and self.config.tlp) or self._in_recovery \
                or self._tlp_end is not None or self.rtt.srtt is None:
            self._tlp_at = None
            return
        srtt = self.rtt.srtt
        pto = 2 * srtt
        if len(self._sb) == 1:
            pto += self.config.tlp_wc_delack  # one segment out: the peer may delay its ACK
        pto = max(pto, self.config.tlp_min)
        deadline = now + pto
        if self._rto_at is not None and deadline > self._rto_at:
            if self.config.tlp_clamp_to_rto and self._rto_at > now:
                self._tlp_at = self._rto_at  # probe in the RTO's place (Linux)
                return
            self._tlp_at = None
            return
        self._tlp_at = deadline

    def _tlp_done(self, now: float) -> None:
        """RFC 8985 §7.4: the probe's episode ended; if it repaired a loss, react."""
        if self._tlp_retrans and not self._in_recovery:
            self._cc.on_loss(self._max - self._una, now)
            self._cc.on_recovery_end(now)
            self._trace(now, "cc", event="tlp_recovery", cwnd=self._cc.cwnd,
                        ssthresh=self._cc.ssthresh)
        self._tlp_end = None
        self._tlp_retrans = False

    def _take_rtt_sample(self, ack_pos: int, now: float) -> None:
        if self._rtt_pos is not None and ack_pos >= self._rtt_pos:
            self._rtt_sample(now - self._rtt_time, now)
            self._rtt_pos = None

    def _rtt_from_ts(self, tsecr: int, now: float) -> None:
        """RTTM (RFC 7323 §4.1): RTT from the echoed timestamp, valid for any ACK."""
        elapsed = (self._ts_clock(now) - tsecr) & MASK
        if elapsed < 0x7FFFFFFF:
            self._rtt_sample(elapsed / 1000.0, now)

    def _rtt_sample(self, r: float, now: float) -> None:
        self.rtt.sample(r)
        self._cc.on_rtt_sample(r, now)
        if r < self._min_rtt:
            self._min_rtt = r
        if self._tr is not None:
            rt = self.rtt
            self._trace(now, "rtt", sample=rt.latest, srtt=rt.srtt, rttvar=rt.rttvar, rto=rt.rto)

    def _update_rate(self, now: float) -> None:
        """Delivery rate over the last round trip (bytes per second)."""
        if self._rate_t and now > self._rate_t:
            self.delivery_rate = (self._delivered - self._rate_delivered) / (now - self._rate_t)
        self._rate_t = now
        self._rate_delivered = self._delivered


def _covers(block: tuple[int, int], left: int, right: int) -> bool:
    """RFC 2883 §4: the first block lies inside the second (a D-SACK above the ACK)."""
    return seq.le(block[0], left) and seq.le(right, block[1])
