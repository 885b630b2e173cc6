"""Loss detection and recovery for :class:`~synack.tcp.connection.Connection`: SACK
(RFC 2018, D-SACK RFC 2883), duplicate ACKs (RFC 5681, NewReno RFC 6582), RACK and the
tail loss probe (RFC 8985), DupThresh and pipe (RFC 6675), PRR (RFC 6937), the ECN-Echo
response (RFC 3168 §6.1.2), RTT samples (RFC 6298, RFC 7323 §4.1) and delivery rate.

Each piece of state has one owner: the loss state (:mod:`.loss_state`), PRR
(:mod:`.prr`) and RACK (:mod:`.rack`) are small objects; this module decides when
they act, in the order Linux's ``tcp_ack`` and ``tcp_fastretrans_alert`` do."""

from __future__ import annotations

from . import seq
from .conn_base import ConnBase
from .conn_const import MASK
from .loss_state import CA_CWR, CA_DISORDER, CA_OPEN, CA_RECOVERY, CaState
from .prr import Prr
from .scoreboard import SentSeg


class RecoveryMixin(ConnBase):
    """Loss detection, recovery, RTT and delivery-rate samples."""

    __slots__ = ()

    def _process_sack(self, blocks: tuple[tuple[int, int], ...], delivered: list[SentSeg]) -> bool:
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
            rack = self._rack
            for s in newly:
                self._rsr.delivered += s.end - s.start
                if s.end < rack.end and not s.retrans:
                    rack.reordering_seen = True  # delivered below a later segment
            delivered.extend(newly)
        return dsack

    def _detect_losses(
        self,
        now: float,
        acked: int,
        sacked: int,
        is_dup: bool,
        delivered: list[SentSeg],
        dsack: bool,
    ) -> None:
        """Find lost segments and move the loss state (RFC 6675, 8985, 6582, 6937).

        The order: mark losses; start fast recovery only from Open, Disorder or CWR
        (never in Loss: RFC 6582 §4); end an episode whose high_seq SND.UNA has
        passed; then size what may be sent.  A loss marked while an episode runs
        belongs to it; one still marked after it ended starts the next episode on
        the next ACK.  (Ending first and re-entering on the same ACK, as Linux's
        ``tcp_fastretrans_alert`` may, cut two CUBIC flows' fairness from 0.87 to
        0.68 in tests/sim/test_modern_sim.py.)"""
        sb = self._sb
        ls = self._ls
        if not (
            acked or is_dup or delivered or dsack or ls.state or sb.sacked_bytes or sb.lost_bytes
        ):
            return  # in Open, an ACK of nothing new with no SACK news: nothing to decide
        mss = self.eff_mss
        dups_before = self._dupacks
        if dsack:
            self._rack.reordering_seen = True
        if self.sack_ok:
            if self.config.rack:
                for s in delivered:
                    self._rack_update(s, now)
                if sb.sacked_bytes or ls.state is CA_RECOVERY:
                    self._rack_detect(now)
            lost = sb.mark_dupthresh_losses(mss)
            self.stats["lost_segments"] += lost
            if is_dup and self._dupacks == 3 and not sb.sacked_bytes and ls.state < CA_RECOVERY:
                # A peer that negotiated SACK but reports nothing: the classic rule, once
                # per window (RFC 6582 recover), so forged duplicate ACKs cannot make
                # us resend the same segment over and over.
                self._mark_head_lost(fresh_only=True)
        elif ls.state is CA_RECOVERY:
            if acked and self._una < ls.high_seq:
                self._mark_head_lost()  # RFC 6582 §3.2 step 4: partial ACK
        elif is_dup and self._dupacks == 3 and ls.state < CA_RECOVERY:
            self._mark_head_lost(fresh_only=True)  # RFC 5681 §3.2 fast retransmit
        if acked:
            self._dupacks = 0
        # The ACK that ends fast recovery sets cwnd = ssthresh and grows nothing.
        grow_ok = True
        if ls.state < CA_RECOVERY:
            self._maybe_enter_recovery(now)
        if ls.state >= CA_CWR and self._una >= ls.high_seq:
            grow_ok = ls.state is not CA_RECOVERY
            self._end_episode(now)
        if self._prr is not None:
            delivered_bytes = acked + (sacked if self.sack_ok else (mss if is_dup else 0))
            self._prr.on_ack(
                delivered_bytes, self._pipe(), self._cc.ssthresh, mss, bool(sb.lost_bytes)
            )
        else:
            cc = self._cc
            if acked and grow_ok and (not self.config.cwnd_validation or cc.may_grow()):
                grow = acked
                if self.config.cwnd_count_delivered:
                    # Linux grows cwnd by what this ACK newly delivered: data SACKed
                    # earlier, or one segment per duplicate ACK without SACK, was
                    # counted already.
                    earlier = -min(sacked, 0) if self.sack_ok else dups_before * mss
                    grow = max(acked - earlier, min(acked, mss))
                cc.on_ack(grow, self._max - self._una, now)
            if ls.state <= CA_DISORDER:
                disorder = bool(self._dupacks or sb.sacked_bytes or sb.lost_bytes)
                if disorder != (ls.state is CA_DISORDER):
                    self._ca_move(
                        "disorder" if disorder else "in_order",
                        CA_DISORDER if disorder else CA_OPEN,
                        now,
                    )

    def _ca_move(self, trigger: str, new: CaState, now: float) -> None:
        """Change the loss state through its table (:mod:`.loss_state`) and trace it."""
        old = self._ls.state
        why = self._ls.move(trigger, new)
        if self._tr is not None:
            self._trace(
                now,
                "ca_state",
                old=str(old),
                new=str(new),
                trigger=trigger,
                why=why,
                high_seq=self._ls.high_seq,
                cwnd=self._cc.cwnd,
                ssthresh=self._cc.ssthresh,
            )

    def _end_episode(self, now: float) -> None:
        """SND.UNA passed high_seq: CWR, Recovery or Loss is over (RFC 6582 §3.2 step 3,
        RFC 6937: cwnd = ssthresh on leaving recovery)."""
        ls = self._ls
        was = ls.state
        sb = self._sb
        after = CA_DISORDER if self._dupacks or sb.sacked_bytes or sb.lost_bytes else CA_OPEN
        if was is CA_RECOVERY:
            self._prr = None
            self._cc.on_recovery_end(now)
            self._trace(
                now, "cc", event="recovery_end", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh
            )
        self._ca_move("exit", after, now)

    def _maybe_enter_recovery(self, now: float) -> None:
        """Start fast recovery if something is marked lost (from Open, Disorder or CWR).

        Below the path-MTU mark the losses are the segments too big for the path,
        resent as the window allows: no congestion response (RFC 1191 §6.5)."""
        if self._sb.lost_bytes and self._una >= self._pmtu_mark:
            self._enter_recovery(now)

    def _mark_head_lost(self, *, fresh_only: bool = False) -> None:
        head = self._sb.first()
        if head is None or (fresh_only and head.retrans):
            return
        if self._sb.mark_lost(head):
            self.stats["lost_segments"] += 1

    def _rack_update(self, s: SentSeg, now: float) -> None:
        """RFC 8985 §6.2 step 2, and the minimum RTT it keeps (its Minimum RTT filter)."""
        if not (s.retrans and now - s.xmit < self._min_rtt - 1e-9) and now - s.xmit < self._min_rtt:
            self._min_rtt = now - s.xmit
        self._rack.update(s, now, self._min_rtt)

    def _rack_detect(self, now: float) -> None:
        """RFC 8985 §6.2 steps 4-5: mark what RACK finds lost; arm its reordering timer."""
        rack = self._rack
        reo = rack.reo_wnd(
            self._ls.state is CA_RECOVERY,
            self._sb.sacked_bytes,
            self.eff_mss,
            self._min_rtt,
            self.rtt.srtt,
        )
        marked, self._timers.rack_reorder = rack.detect(self._sb, now, reo)
        if marked:
            self.stats["rack_losses"] += marked
            self.stats["lost_segments"] += marked

    def _enter_recovery(self, now: float) -> None:
        """Loss found: reduce once and start PRR (RFC 6937 §3, RFC 6675 §5).

        From CWR the window was already cut for this round trip (RFC 3168 §6.1.2:
        no second reduction within one window); recovery then runs at the
        reduced window without cutting it again."""
        ls = self._ls
        flight = self._max - self._una
        if ls.state is not CA_CWR or self._una >= ls.high_seq:
            self._cc.on_loss(flight, now)
        ls.high_seq = self._max
        self._prr = Prr(flight, self.eff_mss) if self._cc.uses_prr else None
        self.stats["recoveries"] += 1
        self.stats["fast_retransmits"] += 1
        self._timers.tlp = None
        if self.ecn_ok:  # RFC 3168 §6.1.2: the reduction answers ECE for this window too
            self._cwr_pending = True
        self._ca_move("loss_marked", CA_RECOVERY, now)
        self._trace(
            now, "cc", event="fast_retransmit", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh
        )

    def _pipe(self) -> int:
        """RFC 6675 §4: bytes believed to be in the network."""
        sb = self._sb
        return self._max - self._una - sb.sacked_bytes - sb.lost_bytes

    def _on_ece(self, now: float) -> None:
        """RFC 3168 §6.1.2: reduce once per window on ECN-Echo, then say CWR."""
        ls = self._ls
        if ls.state >= CA_CWR or self._una <= ls.high_seq:
            # Already reduced for this window (CWR, Recovery or Loss), or an echo of
            # CE from the window that reduction answered: the peer echoes until our
            # CWR reaches it.
            return
        self._cc.on_ecn(self._max - self._una, now)
        ls.high_seq = self._max
        self._cwr_pending = True
        self.stats["ecn_reductions"] += 1
        self._ca_move("ece", CA_CWR, now)
        self._trace(now, "cc", event="ecn_echo", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh)

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: schedule a tail loss probe instead of waiting for the RTO
        ("not in loss recovery": Recovery and Loss retransmit on their own; CWR
        probes, as Linux's tcp_schedule_loss_probe)."""
        if (
            not (self.sack_ok and self.config.tlp)
            or self._ls.state >= CA_RECOVERY
            or self._tlp_end is not None
            or self.rtt.srtt is None
        ):
            self._timers.tlp = None
            return
        srtt = self.rtt.srtt
        pto = 2 * srtt
        if len(self._sb) == 1:
            pto += self.config.tlp_wc_delack  # one segment out: the peer may delay its ACK
        pto = max(pto, self.config.tlp_min)
        deadline = now + pto
        timers = self._timers
        rto = timers.rto
        if rto is not None and deadline > rto:
            if self.config.tlp_clamp_to_rto and rto > now:
                timers.tlp = rto  # probe in the RTO's place (Linux)
                return
            timers.tlp = None
            return
        timers.tlp = deadline

    def _tlp_ack(self, ack_pos: int, advanced: bool, dsack: bool, now: float) -> None:
        """RFC 8985 §7.4: did the probe's episode end, and did it repair a loss?

        Read after the SACK blocks, so the D-SACK that shows the probe was a needless
        copy is seen.  An ACK of exactly the probe's end may be followed by that
        D-SACK, so the episode waits for an ACK beyond it (or a duplicate ACK)
        before deciding (as Linux's ``tcp_process_tlp_ack``).  A repaired loss is
        answered by one reduction sized on the flight when the probe went out, not
        on what remains after SND.UNA moved."""
        end = self._tlp_end
        if end is None or ack_pos < end:
            return
        if not self._tlp_retrans:
            self._tlp_end = None  # the probe was new data: nothing to judge
        elif dsack:
            self._tlp_end = None  # the peer had the original: only ACKs were lost
            self._tlp_retrans = False
            self._trace(
                now,
                "note",
                concept="C18",
                text="D-SACK for the tail loss probe: nothing was lost, no reduction",
            )
        elif ack_pos > end:
            self._tlp_end = None
            self._tlp_retrans = False
            if self._ls.state <= CA_DISORDER:
                self._cc.on_loss(self._tlp_flight, now)
                self._cc.on_recovery_end(now)
                self._ls.high_seq = self._max
                self._ca_move("tlp_repair", CA_CWR, now)
                self._trace(
                    now, "cc", event="tlp_recovery", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh
                )
        elif not advanced:
            self._tlp_end = None  # a duplicate ACK: original and probe both arrived
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


def _covers(block: tuple[int, int], left: int, right: int) -> bool:
    """RFC 2883 §4: the first block lies inside the second (a D-SACK above the ACK)."""
    return seq.le(block[0], left) and seq.le(right, block[1])
