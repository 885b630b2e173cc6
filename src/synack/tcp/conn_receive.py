"""Receiving data for :class:`~synack.tcp.connection.Connection`: in-order data and
reassembly, when to ACK (RFC 9293 §3.10.7.4 seventh and eighth steps, RFC 5681 §4.2),
and the peer's FIN; what the memory model (:mod:`.memory`) says about memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from .congestion import Finished
from .conn_base import ConnBase
from .conn_const import (
    CE,
    MASK,
    S_CLOSE_WAIT,
    S_CLOSING,
    S_ESTABLISHED,
    S_FIN_WAIT_1,
    S_FIN_WAIT_2,
    S_SYN_RECEIVED,
    S_TIME_WAIT,
)
from .events import DataReceived, EndOfStream, Urgent
from .memory import DROP, TRIM
from .rack import Rack
from .reassembly import Reassembly

if TYPE_CHECKING:
    from .connection import Connection


#: The empty out-of-order queue every TIME-WAIT connection shares: nothing is
#: added in that state (data after the FIN is dropped before the queue).
_NO_OOO = Reassembly()
#: RACK as a TIME-WAIT connection reports it (``info()["reordering_seen"]``); no ACK
#: or timer reaches RACK in that state, so two shared instances serve every one.
_RACK_DONE = (Rack(), Rack())
_RACK_DONE[1].reordering_seen = True


class ReceiveMixin(ConnBase):
    """Segment text and FIN."""

    __slots__ = ()

    def _accept_data(self, pos: int, payload: bytes | memoryview, now: float, ecn: int = 0) -> None:
        """Seventh step: in-order data to the buffer, the rest to reassembly (C14, C4)."""
        rnxt = self._rnxt
        size = len(payload)
        end = pos + size
        cfg = self.config
        if ecn == CE and self.ecn_ok:
            self.stats["ecn_ce_in"] += 1
            self._ece_echo = True  # RFC 3168 §6.1.3: echo until CWR arrives
            self._ack_now = True
        right = max(self._radv, rnxt)
        mem = self._mem
        if end > right:
            verdict = mem.past_window(
                pos, rnxt, right, len(self._rbuf), self._ooo.nbytes, cfg.rcv_buf
            )
            if verdict == TRIM:  # keep what lies inside the window (RFC 9293 §3.10.7.4)
                payload = payload[: right - pos]
                end = right
            elif verdict == DROP:  # (Linux: out of order while memory is over rcv_buf)
                self._drop(now, "out_of_window", concept="C14")
                self._ack_now = True
                return
        if pos < rnxt:  # trim what we already have
            if self.sack_ok:
                self._sackgen.duplicate(pos, min(end, rnxt))
            payload = payload[rnxt - pos :]
            pos = rnxt
        if end <= pos:
            self._ack_now = True
            return
        if self.sack_ok and self._ooo.nbytes:
            dup = self._ooo.first_overlap(pos, end)
            if dup is not None:
                self._sackgen.duplicate(*dup)  # RFC 2883: part of it was already held
        if pos == rnxt:
            self._rbuf.append(payload)
            self._rnxt = end
            if mem.counts_truesize:
                if mem.charge(end, size, self.eff_mss, cfg.rcv_buf):
                    self._ack_now = True  # memory was already over rcv_buf (Linux)
                quick = mem.take_quick()
                if quick >= 0:  # Linux: quick ACKs for the first data's window
                    self._quickack = min(self._quickack, quick)
            if self._ooo.nbytes:
                self._ack_now = True  # filling a hole: ACK at once (RFC 5681 §4.2)
                while (more := self._ooo.pop_ready(self._rnxt)) is not None:
                    self._rbuf.append(more)
                    self._rnxt += len(more)
            self._delivered_in_order(self._rnxt - rnxt, len(payload), now)
        else:
            self.stats["ooo_segs_in"] += 1
            if len(self._ooo) >= self._ooo_limit() and self._ooo.adds_block(pos, end):
                self.stats["ooo_block_limit_drops"] += 1  # hardening: bounded holes
                self._drop(now, "ooo_block_limit")
                self._ack_now = True
                return
            added = self._ooo.add(pos, payload)
            if added == 0:
                self.stats["dup_segs_in"] += 1
                if self.sack_ok:
                    self._sackgen.duplicate(pos, end)
            else:
                if mem.counts_truesize and mem.charge(end, size, self.eff_mss, cfg.rcv_buf):
                    self._ack_now = True
                if self.sack_ok:
                    self._sackgen.arrived(pos)
            self._trace(
                now,
                "note",
                concept="C14",
                text=f"out-of-order segment held ({len(self._ooo)} blocks)",
            )
            self._ack_now = True  # duplicate ACK tells the sender of the hole

    def _read_pos(self) -> int:
        """The stream position of the next byte the application will read."""
        return self._rnxt - len(self._rbuf) - (1 if self.eof_received else 0)

    def _urgent_in(self, mark: int, now: float) -> None:
        """Sixth step, "check the URG bit" (RFC 9293 §3.10.7.4): RCV.UP <- max(RCV.UP,
        SEG.UP), where ``mark`` is the position SEG.SEQ + SEG.UP, the octet after the
        last urgent byte (RFC 6093 §4).  The user is told when there was no urgent
        data pending or the pointer advanced (MUST-32), never when the mark is at or
        behind what was read.  The bytes themselves stay in line (RFC 6093 §6)."""
        rup = self._rup
        if mark <= self._read_pos() or (rup is not None and mark <= rup):
            return
        self._rup = mark
        seqno = (self.irs + mark) & MASK
        self._events.append(Urgent(cast("Connection", self), seqno))
        if self._tr is not None:
            self._trace(now, "urgent", mark=seqno, pending=mark - self._read_pos())

    def _delivered_in_order(self, n: int, seg_len: int, now: float) -> None:
        """``n`` new in-order bytes reached the receive buffer from a segment of
        ``seg_len`` bytes: count them, tell the application (one event per batch of
        segments, not per segment) and decide when to ACK (RFC 9293 §3.8.6.3, RFC
        5681 §4.2: at once for every second segment, a segment larger than the MSS,
        quick-ACK mode or no delayed ACKs; else on the delayed-ACK timer)."""
        self.stats["bytes_received"] += n
        events = self._events
        last = events[-1] if events else None
        if type(last) is DataReceived and last.conn is self:
            last.nbytes += n
        else:
            # (self is the Connection; no typing.cast() call per segment)
            events.append(DataReceived(self, n))  # type: ignore[arg-type]
        self._ack_pending += 1
        if self._quickack > 0:
            self._quickack -= 1
            self._ack_now = True
        if self.config.delayed_ack == 0 or self._ack_pending >= 2 or seg_len > self.eff_mss:
            self._ack_now = True
        elif self._timers.delayed_ack is None:
            self._timers.delayed_ack = now + self.config.delayed_ack

    def _ooo_limit(self) -> int:
        """Out-of-order blocks allowed: the configured bound, or by default two per
        segment that fits in the receive buffer (a window's worth of holes)."""
        limit = self.config.max_ooo_blocks
        return limit if limit is not None else max(64, 2 * self.config.rcv_buf // self.eff_mss)

    def _check_fin(self, now: float) -> None:
        """Eighth step: act on the peer's FIN once every byte before it has arrived."""
        fpos = self._rfin_pos
        if fpos is None or self._rnxt != fpos:
            return
        self._rnxt = fpos + 1
        st = self.state
        cfg = self.config
        if cfg.sack_reset_on_fin and self.sack_ok:
            self._sackgen.reset()  # Linux tcp_fin: tcp_sack_reset() forgets a pending D-SACK
        if cfg.delayed_ack_fin and cfg.delayed_ack > 0 and st is S_ESTABLISHED and fpos > 1:
            # Linux: the peer's FIN ends quick-ACK mode ("pingpong"); the ACK waits for
            # the delayed-ACK timer (or rides on our FIN if the application closes).
            # Before any data arrived Linux's ACK timeout (ato) is still 0: ACK at once.
            self._quickack = 0
            if (
                self._ack_pending == 1
                and not self._ooo.nbytes
                and not self._mem.rcv_over(cfg.rcv_buf)
            ):
                # The FIN came with this segment's data: quick-ACK mode alone asked for
                # an ACK now, and pingpong mode ends it (tcp_in_quickack_mode()).
                self._ack_now = False
            if self._timers.delayed_ack is None:
                self._timers.delayed_ack = now + cfg.delayed_ack
        else:
            self._ack_now = True
        self._events.append(EndOfStream(cast("Connection", self)))
        if st in (S_SYN_RECEIVED, S_ESTABLISHED):
            self._set_state(S_CLOSE_WAIT, now)
        elif st is S_FIN_WAIT_1:
            if self._fin_pos is not None and self._una > self._fin_pos:
                self._enter_time_wait(now)
            else:
                self._set_state(S_CLOSING, now)
        elif st is S_FIN_WAIT_2:
            self._enter_time_wait(now)

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(S_TIME_WAIT, now)
        # A TIME-WAIT connection keeps what that state needs (4-tuple, sequence numbers,
        # TS.Recent, the 2*MSL timer), as Linux swaps in a small tcp_timewait_sock:
        # nothing more is sent (keep only cwnd/ssthresh), nothing more is sampled, and
        # no data is queued again (the peer's FIN came after all of it).
        self._rsr.release()
        self._psh_sent = None
        self._cc = Finished(self._cc)
        assert not self._ooo
        self._ooo = _NO_OOO
        self._rack = _RACK_DONE[self._rack.reordering_seen]  # only info() reads it now
        timers = self._timers
        timers.cancel_all()
        timers.time_wait = now + 2 * self.config.msl
