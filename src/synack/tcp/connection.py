"""One TCP connection: the transmission control block and its rules (RFC 9293).

The object is pure: no sockets, no threads, no clock reads.  Every entry point
that depends on time takes ``now`` (seconds, any monotonic origin); the driver
asks :meth:`Connection.next_timer` for the earliest deadline and calls
:meth:`Connection.handle_timer` when it passes.  Segments go in through
:meth:`Connection.receive` and come out of :meth:`Connection.segments_to_send`;
what happened is reported as :mod:`synack.tcp.events` objects.

Sequence numbers are 32-bit and wrap (C16).  At the boundary every incoming
sequence or acknowledgement number is turned into an unbounded *stream
position* with :func:`synack.seq.sub` relative to a position we already know,
so the rest of the logic is plain integer arithmetic and a transfer that
crosses 2**32 behaves exactly like one that does not.  On the send side
position 0 is our SYN (sequence ``iss``), data byte *k* is at ``1 + k`` and the
FIN follows the last byte; the receive side mirrors this from ``irs``.

A segment handed to the link may be larger than one MSS when the link does
segmentation offload (``TcpConfig.max_segment_payload``), and an incoming
segment may be larger than one MSS (receive offload): nothing here assumes
one segment is one packet.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import seq
from ..wire.segment import ACK, FIN, PSH, RST, SYN, Segment
from . import congestion
from .config import TcpConfig
from .events import (
    Closed,
    Connected,
    ConnectionFailed,
    ConnectionReset,
    DataReceived,
    EndOfStream,
    Event,
    SendSpace,
    StateChanged,
)
from .reassembly import Reassembly
from .rtt import RttEstimator
from .states import CAN_RECEIVE, CAN_SEND, State, check_transition

MASK = seq.MASK
DEFAULT_PEER_MSS = 536  # RFC 9293 §3.7.1 (IPv4) when the peer sends no MSS option

#: A tracer receives one flat dict per event (see docs/trace.md for the schema).
Tracer = Callable[[dict[str, Any]], None]

S_CLOSED = State.CLOSED
S_SYN_SENT = State.SYN_SENT
S_SYN_RECEIVED = State.SYN_RECEIVED
S_ESTABLISHED = State.ESTABLISHED
S_FIN_WAIT_1 = State.FIN_WAIT_1
S_FIN_WAIT_2 = State.FIN_WAIT_2
S_CLOSE_WAIT = State.CLOSE_WAIT
S_CLOSING = State.CLOSING
S_LAST_ACK = State.LAST_ACK
S_TIME_WAIT = State.TIME_WAIT

#: States whose send path may emit data and FIN.
_OUTPUT_STATES = frozenset({S_ESTABLISHED, S_CLOSE_WAIT, S_FIN_WAIT_1, S_CLOSING, S_LAST_ACK})


class Connection:
    """A TCP connection endpoint.  Create with :meth:`open_active` or :meth:`open_passive`."""

    __slots__ = (
        "_ack_now", "_ack_pending", "_buf", "_buf_pos", "_cc", "_challenge_count",
        "_challenge_window", "_dack_at", "_dupacks", "_events", "_fin_pos", "_fw2_at",
        "_in_recovery", "_last_oow_ack", "_max", "_max_snd_wnd", "_now", "_nxt", "_ooo",
        "_orphan", "_out", "_persisting",
        "_radv", "_rbuf", "_recover", "_retries", "_rfin_pos", "_rnxt", "_rto_at", "_rtt_pos",
        "_rtt_time", "_send_full", "_tr", "_tw_at", "_una", "_wake", "_wl1", "_wl2", "config",
        "eff_mss", "irs", "iss", "local_ip", "local_port", "name", "passive", "peer_mss",
        "remote_ip", "remote_port", "rtt", "snd_wnd", "soft_error", "state", "stats",
        "user_data",
    )

    def __init__(
        self,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        *,
        iss: int,
        config: TcpConfig | None = None,
        events: deque[Event] | None = None,
        tracer: Tracer | None = None,
        wake: Callable[[Connection], None] | None = None,
    ) -> None:
        cfg = config or TcpConfig()
        self.config = cfg
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.name = (f"{_ip(local_ip)}:{local_port}>{_ip(remote_ip)}:{remote_port}")
        self.state = S_CLOSED
        self.passive = False
        self.user_data: Any = None
        self.soft_error: int | None = None  # last ICMP soft error (errno), RFC 1122
        self._events: deque[Event] = events if events is not None else deque()
        self._tr = tracer
        self._wake = wake
        self._out: list[Segment] = []
        self._now = 0.0  # the latest time a caller gave us, for app calls without one
        # --- send side (positions: 0 = SYN) ---
        self.iss = iss & MASK
        self._una = 0
        self._nxt = 0
        self._max = 0
        self._buf = bytearray()
        self._buf_pos = 1
        self._fin_pos: int | None = None
        self._send_full = False
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._wl1 = 0
        self._wl2 = 0
        self.peer_mss = DEFAULT_PEER_MSS
        self.eff_mss = min(cfg.mss, DEFAULT_PEER_MSS)
        self.rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self._rtt_pos: int | None = None
        self._rtt_time = 0.0
        self._retries = 0
        self._persisting = False
        self._dupacks = 0
        self._in_recovery = False
        self._recover = 0
        self._cc = congestion.create(cfg.congestion_control, self.eff_mss, cfg.initial_window)
        # --- receive side (positions: 0 = peer's SYN) ---
        self.irs = 0
        self._rnxt = 0
        self._rbuf = bytearray()
        self._radv = 0
        self._ooo = Reassembly()
        self._rfin_pos: int | None = None
        self._ack_now = False
        self._ack_pending = 0
        self._orphan = False
        # --- timers (absolute times or None) ---
        self._rto_at: float | None = None
        self._dack_at: float | None = None
        self._tw_at: float | None = None
        self._fw2_at: float | None = None
        # --- RFC 5961 §7 challenge ACK rate limit ---
        self._challenge_window = -1.0
        self._challenge_count = 0
        self._last_oow_ack = -1e9
        self.stats: dict[str, int] = dict.fromkeys(
            ("segs_in", "segs_out", "bytes_sent", "bytes_acked", "bytes_received",
             "retransmits", "rto_fired", "fast_retransmits", "dup_acks_in", "dup_segs_in",
             "ooo_segs_in", "unacceptable_in", "challenge_acks", "challenge_acks_suppressed",
             "oow_acks_suppressed", "probes", "icmp_errors"), 0)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_active(cls, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int,
                    *, iss: int, now: float, **kw: Any) -> Connection:
        """Active OPEN (RFC 9293 §3.10.1): send SYN, CLOSED -> SYN-SENT (C6)."""
        conn = cls(local_ip, local_port, remote_ip, remote_port, iss=iss, **kw)
        conn._now = now
        conn._trace(now, "open", mode="active", iss=conn.iss)
        conn._set_state(S_SYN_SENT, now)
        conn._send_syn(now, retransmit=False)
        return conn

    @classmethod
    def open_passive(cls, syn: Segment, local_ip: bytes, remote_ip: bytes,
                     *, iss: int, now: float, **kw: Any) -> Connection:
        """A listener's answer to a SYN (RFC 9293 §3.10.7.2): SYN-ACK, -> SYN-RECEIVED (C7)."""
        conn = cls(local_ip, syn.dst_port, remote_ip, syn.src_port, iss=iss, **kw)
        conn.passive = True
        conn._now = now
        conn._trace(now, "open", mode="passive", iss=conn.iss, irs=syn.seq)
        conn._accept_peer_syn(syn)
        conn.state = State.LISTEN  # the listener's state, which this TCB leaves at once
        conn._set_state(S_SYN_RECEIVED, now)
        conn._send_syn(now, retransmit=False)
        return conn

    def _accept_peer_syn(self, syn: Segment) -> None:
        self.irs = syn.seq
        self._rnxt = 1
        self._radv = 1 + self.config.rcv_buf
        self.peer_mss = syn.mss if syn.mss else DEFAULT_PEER_MSS
        self.eff_mss = max(min(self.config.mss, self.peer_mss), 64)
        self._cc = congestion.create(self.config.congestion_control, self.eff_mss,
                                     self.config.initial_window)
        self.snd_wnd = syn.window  # never scaled on a SYN (RFC 7323 §2.2)
        self._max_snd_wnd = self.snd_wnd
        self._wl1 = 0

    def _send_syn(self, now: float, *, retransmit: bool) -> None:
        flags = SYN | ACK if self.state is S_SYN_RECEIVED else SYN
        seg = self._make(flags, 0)
        seg.mss = self.config.mss
        if retransmit:
            self.stats["retransmits"] += 1
            self._rtt_pos = None  # Karn's rule (RFC 6298 §3)
        else:
            self._rtt_pos, self._rtt_time = 1, now
        self._emit(seg, now, "retransmit" if retransmit else "")
        self._nxt = self._max = max(self._max, 1)
        if self._rto_at is None or retransmit:
            self._rto_at = now + self.rtt.rto

    # --------------------------------------------------------------- app calls
    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue bytes for sending; return how many fit in the send buffer (C1)."""
        if self.state not in CAN_SEND or self._fin_pos is not None:
            raise BrokenPipeError(errno.EPIPE, f"cannot send in state {self.state}")
        room = self.config.snd_buf - len(self._buf)
        n = min(room, len(data))
        if n > 0:
            self._buf += data[:n] if n < len(data) else data
            self._poke()
        if n < len(data) or n == room:
            self._send_full = True  # SendSpace will be reported when ACKs free room
        return n

    @property
    def send_space(self) -> int:
        """Free bytes in the send buffer."""
        return self.config.snd_buf - len(self._buf)

    @property
    def readable(self) -> int:
        """In-order bytes waiting for :meth:`recv`."""
        return len(self._rbuf)

    @property
    def eof_received(self) -> bool:
        """The peer's FIN has been received in order."""
        return self._rfin_pos is not None and self._rnxt > self._rfin_pos

    @property
    def unsent(self) -> int:
        """Queued bytes not yet acknowledged by the peer."""
        return len(self._buf)

    def recv(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` in-order received bytes (all if negative).

        Reading frees receive buffer space; when the window can open by a
        worthwhile amount a window update is sent (C4, RFC 9293 §3.8.6.2.2).
        """
        rb = self._rbuf
        if max_bytes < 0 or max_bytes >= len(rb):
            data = bytes(rb)
            rb.clear()
        else:
            data = bytes(rb[:max_bytes])
            del rb[:max_bytes]
        if data and self.state in CAN_RECEIVE:
            # Send an explicit window update only when the window the peer knows is
            # less than half of what we could offer now (as Linux's tcp_cleanup_rbuf);
            # smaller openings ride on the next ACK.  A zero window always reopens.
            offered = max(self._radv - self._rnxt, 0)
            free = self.config.rcv_buf - len(rb)
            if free - offered >= self._sws_threshold() and free >= 2 * offered:
                self._ack_now = True
                self._poke()
        return data

    def shutdown(self, now: float | None = None) -> None:
        """Half-close: send FIN after the queued data; we can still receive (C10, C11)."""
        now = self._now if now is None else now
        st = self.state
        if st is S_SYN_SENT:
            self._set_state(S_CLOSED, now, "close")
            return
        if self._fin_pos is not None or st not in (S_SYN_RECEIVED, S_ESTABLISHED, S_CLOSE_WAIT):
            return
        self._fin_pos = self._buf_pos + len(self._buf)
        self._set_state(S_LAST_ACK if st is S_CLOSE_WAIT else S_FIN_WAIT_1, now)
        self._poke()

    def close(self, now: float | None = None) -> None:
        """Socket-style close: the application will neither send nor read any more.

        With unread received data this aborts with RST instead of FIN (C23,
        RFC 9293 §3.10.4 and RFC 2525 §2.17).  Otherwise a FIN is sent and the
        connection finishes the teardown on its own; data that still arrives
        from the peer is answered with RST (C24).
        """
        now = self._now if now is None else now
        if self.state is S_CLOSED:
            return
        if self._rbuf or self._ooo:
            self.abort(now, why="close with unread received data (C23)")
            return
        self._orphan = True
        self.shutdown(now)
        if self.state is S_FIN_WAIT_2:
            self._fw2_at = now + self.config.fin_wait_2_timeout

    def abort(self, now: float | None = None, *, why: str = "application abort") -> None:
        """ABORT (RFC 9293 §3.10.5): send RST if synchronised, drop all state (C19)."""
        t = self._now if now is None else now
        if self.state in (S_CLOSED, S_TIME_WAIT, S_SYN_SENT) or self.state is State.LISTEN:
            if self.state is not S_CLOSED:
                self._set_state(S_CLOSED, t, "abort")
                self._poke()
            return
        self._send_rst(t, self._max, why=why)
        self._set_state(S_CLOSED, t, "abort")
        self._poke()

    # ------------------------------------------------------------ segment input
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
                self._fail(now, errno.ECONNREFUSED, "connection refused (RST in answer to SYN)",
                           "refused")
            else:
                self._drop(now, "rst_without_ack_syn_sent")
            return
        if not flags & SYN:
            self._drop(now, "no_syn_syn_sent")
            return
        self._accept_peer_syn(seg)
        if flags & ACK:
            self._una = seq.sub(seg.ack, self.iss)
            self._take_rtt_sample(self._una, now)
            self._retries = 0
            self._rto_at = None
            if self.rtt.backoff:
                self.rtt.reset_for_data()
            self._wl1, self._wl2 = 0, self._una
            self._set_state(S_ESTABLISHED, now)
            self._ack_now = True
            if seg.payload:
                self._accept_data(1, seg.payload, now)
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

        if st is S_SYN_RECEIVED and flags & SYN and not flags & (ACK | RST) and pos == 0:
            # The peer retransmitted its SYN: our SYN-ACK was lost; send it again.
            self._drop(now, "retransmitted_syn")
            self._send_syn(now, retransmit=True)
            return
        if st is S_SYN_RECEIVED and flags & SYN and flags & ACK and pos == 0:
            # Simultaneous open: the peer's SYN-ACK repeats the SYN we hold and acks
            # ours; drop the SYN part and process the rest (RFC 9293 §3.5 figure 7).
            flags &= ~SYN
            pos, slen = 1, slen - 1
            self._ack_now = True

        # First: the acceptability test (§3.10.7.4 table), widened to "overlaps the
        # window" as Linux does, plus a zero-window allowance at RCV.NXT exactly.
        rnxt = self._rnxt
        wnd = max(self._radv - rnxt, 0)
        if slen == 0:
            ok = pos == rnxt if wnd == 0 else rnxt <= pos < rnxt + wnd
        else:
            ok = (pos == rnxt) if wnd == 0 else (pos + slen > rnxt and pos < rnxt + wnd)
        if not ok:
            self.stats["unacceptable_in"] += 1
            if flags & RST:
                self._drop(now, "rst_out_of_window")
                return
            if st is S_TIME_WAIT and flags & FIN:
                self._trace(now, "note", concept="C13",
                            text="retransmitted FIN in TIME-WAIT: ACK it again, restart 2*MSL")
                self._tw_at = now + 2 * self.config.msl
            elif pos + slen <= rnxt and slen:
                self.stats["dup_segs_in"] += 1
                self._drop(now, "duplicate", concept="C14")
            else:
                self._drop(now, "out_of_window", concept="C14")
            # RFC 9293: reply <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.  Replies to pure ACKs
            # are rate limited (as Linux's tcp_invalid_ratelimit) so two confused ends
            # cannot ACK each other forever; replies to data are not (its sender needs them).
            if slen == 0 and now - self._last_oow_ack < self.config.oow_ack_interval:
                self.stats["oow_acks_suppressed"] += 1
                return
            self._last_oow_ack = now
            self._ack_now = True
            return

        # Second: RST (RFC 5961 §3.2: exact match resets, in-window gets a challenge ACK).
        if flags & RST:
            if pos != rnxt:
                self._drop(now, "rst_in_window_challenge")
                self._challenge_ack(now)
                return
            if st is S_SYN_RECEIVED and self.passive:
                self._trace(now, "note", concept="C27",
                            text="RST for our SYN-ACK: the SYN was stale; half-open state freed")
                self._set_state(S_CLOSED, now, "reset")
            elif st is S_SYN_RECEIVED:
                self._fail(now, errno.ECONNREFUSED, "connection refused", "reset")
            elif st in (S_CLOSING, S_LAST_ACK, S_TIME_WAIT):
                self._set_state(S_CLOSED, now, "reset")
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

        # Seventh: segment text.
        if dlen:
            if st in CAN_RECEIVE:
                if self._orphan:
                    # C24: the application is gone; data for it is answered with RST.
                    self._send_rst(now, self._max, why="data for a closed socket (C24)")
                    self._set_state(S_CLOSED, now, "abort")
                    return
                self._accept_data(pos, seg.payload, now)
            else:
                self._drop(now, "data_after_fin")
        # Eighth: FIN (held until every byte before it has arrived).
        if flags & FIN:
            fin_pos = pos + dlen
            if fin_pos < self._radv or fin_pos == self._rnxt:
                self._rfin_pos = fin_pos
                self._ack_now = True
        if self._rfin_pos is not None:
            self._check_fin(now)

    def _process_ack(self, seg: Segment, pos: int, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth step; returns False when the segment is dropped."""
        st = self.state
        una = self._una
        ack_pos = una + seq.sub(seg.ack, (self.iss + una) & MASK)
        if st is S_SYN_RECEIVED:
            if not una < ack_pos <= self._max:
                self._send_rst_raw(now, seg.ack, 0, RST, why="unacceptable ACK in SYN-RECEIVED")
                self._drop(now, "bad_ack_syn_received")
                return False
            self.snd_wnd = seg.window
            self._max_snd_wnd = max(self._max_snd_wnd, self.snd_wnd)
            self._wl1, self._wl2 = pos, ack_pos
            self._on_new_ack(ack_pos, now)
            self._set_state(S_ESTABLISHED, now)
            una = self._una
        if ack_pos > self._max or ack_pos < una - max(self._max_snd_wnd, 1):
            # RFC 9293: ACK for data never sent; RFC 5961 §5: ACK too old.  ACK and drop.
            self._drop(now, "ack_unsent" if ack_pos > self._max else "ack_too_old")
            self._ack_now = True
            return False
        window = seg.window
        if ack_pos > una:
            self._on_new_ack(ack_pos, now)
        elif (ack_pos == una and not seg.payload and not seg.flags & (SYN | FIN)
              and self._max > una and window == self.snd_wnd and not self._persisting):
            self._on_dup_ack(now)
        # Send window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2 rule).
        if self._wl1 < pos or (self._wl1 == pos and self._wl2 <= ack_pos):
            opened = self.snd_wnd == 0 and window > 0
            self.snd_wnd = window
            self._wl1, self._wl2 = pos, ack_pos
            if window > self._max_snd_wnd:
                self._max_snd_wnd = window
            if opened:
                self._persisting = False
                if self._nxt == self._una:
                    self._rto_at = None
                self._trace(now, "note", concept="C4", text=f"peer window opened to {window}")
        if self._persisting:
            self._retries = 0  # the peer answers our probes: keep waiting (RFC 9293 §3.8.6.1)
        # State-specific ACK consequences (FIN acknowledged?).
        fin_acked = self._fin_pos is not None and self._una > self._fin_pos
        if fin_acked:
            if st is S_FIN_WAIT_1:
                self._set_state(S_FIN_WAIT_2, now)
                if self._orphan:
                    self._fw2_at = now + self.config.fin_wait_2_timeout
            elif st is S_CLOSING:
                self._enter_time_wait(now)
            elif st is S_LAST_ACK:
                self._set_state(S_CLOSED, now)
                return False
        return True

    def _on_new_ack(self, ack_pos: int, now: float) -> None:
        """Cumulative ACK advanced SND.UNA (RFC 9293; RFC 6298 §5.2-5.3; RFC 6582)."""
        old_una = self._una
        acked = ack_pos - old_una
        self._una = ack_pos
        if self._nxt < ack_pos:
            self._nxt = ack_pos
        data_end = self._buf_pos + len(self._buf)
        drop = min(ack_pos, data_end) - self._buf_pos
        if drop > 0:
            del self._buf[:drop]
            self._buf_pos += drop
            self.stats["bytes_acked"] += drop
            if self._send_full and len(self._buf) < self.config.snd_buf:
                self._send_full = False
                self._events.append(SendSpace(self))
        self._take_rtt_sample(ack_pos, now)
        self._retries = 0
        flight = self._max - ack_pos
        if self._in_recovery:
            if ack_pos >= self._recover:
                self._in_recovery = False
                self._dupacks = 0
                self._cc.on_recovery_end(now)
                self._trace(now, "cc", event="recovery_end", cwnd=self._cc.cwnd,
                            ssthresh=self._cc.ssthresh)
            else:
                # RFC 6582 §3.2 step 4: partial ACK, retransmit the next hole, deflate.
                self._retransmit_una(now, "partial ACK in fast recovery")
                self._cc.cwnd = max(self._cc.cwnd - acked + self.eff_mss, self.eff_mss)
        else:
            self._dupacks = 0
            if drop > 0:
                self._cc.on_ack(drop, flight, now)
        self._rto_at = now + self.rtt.rto if flight > 0 else None

    def _on_dup_ack(self, now: float) -> None:
        """RFC 5681 §3.2 fast retransmit / fast recovery with RFC 6582 ``recover``."""
        self.stats["dup_acks_in"] += 1
        self._dupacks += 1
        if self._in_recovery:
            self._cc.cwnd += self.eff_mss  # inflate for each segment that left the network
            return
        if self._dupacks == 3 and self._una >= self._recover:
            flight = self._max - self._una
            self._in_recovery = True
            self._recover = self._max
            self._cc.on_loss(flight, now)
            self.stats["fast_retransmits"] += 1
            self._trace(now, "cc", event="fast_retransmit", cwnd=self._cc.cwnd,
                        ssthresh=self._cc.ssthresh)
            self._retransmit_una(now, "3 duplicate ACKs (fast retransmit)")
            self._rto_at = now + self.rtt.rto

    def _take_rtt_sample(self, ack_pos: int, now: float) -> None:
        if self._rtt_pos is not None and ack_pos >= self._rtt_pos:
            self.rtt.sample(now - self._rtt_time)
            self._rtt_pos = None
            if self._tr is not None:
                r = self.rtt
                self._trace(now, "rtt", sample=r.latest, srtt=r.srtt, rttvar=r.rttvar, rto=r.rto)

    def _accept_data(self, pos: int, payload: bytes | memoryview, now: float) -> None:
        """Seventh step: in-order data to the buffer, the rest to reassembly (C14, C4)."""
        rnxt = self._rnxt
        end = pos + len(payload)
        right = max(self._radv, rnxt)
        if end > right:  # trim what lies past the window we offered
            payload = payload[:right - pos]
            end = right
        if pos < rnxt:  # trim what we already have
            payload = payload[rnxt - pos:]
            pos = rnxt
        if end <= pos:
            self._ack_now = True
            return
        if pos == rnxt:
            self._rbuf += payload
            self._rnxt = end
            if self._ooo:
                self._ack_now = True  # filling a hole: ACK at once (RFC 5681 §4.2)
                while (more := self._ooo.pop_ready(self._rnxt)) is not None:
                    self._rbuf += more
                    self._rnxt += len(more)
            n = self._rnxt - rnxt
            self.stats["bytes_received"] += n
            self._events.append(DataReceived(self, n))
            self._ack_pending += 1
            if (self.config.delayed_ack == 0 or self._ack_pending >= 2
                    or len(payload) > self.eff_mss):
                self._ack_now = True
            elif self._dack_at is None:
                self._dack_at = now + self.config.delayed_ack
        else:
            self.stats["ooo_segs_in"] += 1
            added = self._ooo.add(pos, payload)
            if added == 0:
                self.stats["dup_segs_in"] += 1
            self._trace(now, "note", concept="C14",
                        text=f"out-of-order segment held ({len(self._ooo)} blocks)")
            self._ack_now = True  # duplicate ACK tells the sender of the hole

    def _check_fin(self, now: float) -> None:
        """Eighth step: act on the peer's FIN once every byte before it has arrived."""
        fpos = self._rfin_pos
        if fpos is None or self._rnxt != fpos:
            return
        self._rnxt = fpos + 1
        self._ack_now = True
        self._events.append(EndOfStream(self))
        st = self.state
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
        self._rto_at = self._fw2_at = self._dack_at = None
        self._tw_at = now + 2 * self.config.msl

    # ------------------------------------------------------------- ICMP errors
    def icmp_unreachable(self, code: int, quoted_seq: int, now: float, *,
                         next_hop_mtu: int = 0) -> bool:
        """An ICMP destination unreachable quoting one of our segments (C22).

        RFC 5927 §4.1: accepted only if the quoted sequence number lies in
        [SND.UNA, SND.NXT), so a blind attacker must guess the window.  While the
        connection is being opened the error is hard and ends the attempt (as
        Linux does); once established it is soft (RFC 1122 §4.2.3.9): remembered
        and reported only if the connection later times out.  "Fragmentation
        needed" lowers the MSS (RFC 1191).  Returns whether it was accepted.
        """
        self._now = now
        pos = self._una + seq.sub(quoted_seq, (self.iss + self._una) & MASK)
        if not self._una <= pos < max(self._max, self._una + 1):
            self._drop(now, "icmp_out_of_window")
            return False
        self.stats["icmp_errors"] += 1
        err, text = _ICMP_ERRORS.get(code, (errno.EHOSTUNREACH, f"unreachable (code {code})"))
        if code == 4:  # fragmentation needed: path MTU discovery
            if next_hop_mtu >= 128 and next_hop_mtu - 40 < self.eff_mss:
                self.eff_mss = next_hop_mtu - 40
                self._trace(now, "note", concept="", text=f"path MTU {next_hop_mtu}: MSS "
                            f"lowered to {self.eff_mss}")
            return True
        if self.state is S_SYN_SENT or (self.state is S_SYN_RECEIVED and not self.passive):
            self._trace(now, "note", concept="C22", text=f"ICMP {text} for our SYN")
            self._fail(now, err, f"{text} (ICMP)", "unreachable")
            self._poke()
        else:
            self.soft_error = err
            self._trace(now, "note", concept="C22", text=f"ICMP {text}: soft error, "
                        "connection kept (RFC 1122 §4.2.3.9)")
        return True

    # ----------------------------------------------------------- segment output
    def segments_to_send(self, now: float) -> list[Segment]:
        """Run the send path and return every segment it wants on the wire now."""
        self._now = now
        if self.state in _OUTPUT_STATES:
            self._send_data(now)
        if self._ack_now and self.state is not S_CLOSED and self.state is not S_SYN_SENT:
            # A pure ACK carries the highest sequence sent (RFC 9293 SND.NXT), not the
            # go-back retransmission point, or the peer would find it out of window.
            self._emit(self._make(ACK, self._max), now, "")
        out = self._out
        if out:
            self._out = []
        return out

    def _send_data(self, now: float) -> None:
        """Fill the usable window in one go (RFC 9293 §3.8.6; RFC 5681 cwnd)."""
        buf_pos = self._buf_pos
        data_end = buf_pos + len(self._buf)
        fin_pos = self._fin_pos
        mss = self.eff_mss
        seg_max = max(self.config.max_segment_payload or mss, mss)
        limit = self._una + min(self.snd_wnd, self._cc.cwnd)
        nxt = self._nxt
        while True:
            if nxt < data_end:
                room = limit - nxt
                if room <= 0:
                    break
                n = min(data_end - nxt, room, seg_max)
                end = nxt + n
                # Sender SWS avoidance (RFC 9293 §3.8.6.2.1): no small segment while more
                # queued data waits for window, unless half the peer's max window fits.
                if n < mss and end < data_end and n < self._max_snd_wnd // 2:
                    break
                # Nagle (RFC 9293 §3.7.4) unless TCP_NODELAY.
                if (not self.config.nodelay and n < mss and self._max > self._una
                        and not (fin_pos is not None and end == data_end)):
                    break
                flags = ACK
                if end == data_end:
                    flags |= PSH
                    if fin_pos is not None:
                        flags |= FIN
                off = nxt - buf_pos
                seg = self._make(flags, nxt, bytes(self._buf[off:off + n]))
                why = ""
                if nxt < self._max:
                    why = "retransmit"
                    self.stats["retransmits"] += 1
                elif self._rtt_pos is None:
                    self._rtt_pos, self._rtt_time = end, now
                self.stats["bytes_sent"] += n
                self._emit(seg, now, why)
                nxt = end + (1 if flags & FIN else 0)
                if nxt > self._max:
                    self._max = nxt
            elif fin_pos is not None and nxt == fin_pos:
                why = "retransmit" if nxt < self._max else ""
                if why:
                    self.stats["retransmits"] += 1
                self._emit(self._make(FIN | ACK, nxt), now, why)
                nxt += 1
                if nxt > self._max:
                    self._max = nxt
            else:
                break
        self._nxt = nxt
        if self._rto_at is None:
            if self._max > self._una:
                self._rto_at = now + self.rtt.rto
            elif nxt < data_end and self.snd_wnd == 0:
                self._persisting = True  # zero window: the persist timer (RFC 9293 §3.8.6.1)
                self._rto_at = now + self.rtt.rto

    def _retransmit_una(self, now: float, why: str) -> None:
        """Resend the first unacknowledged segment without moving SND.NXT."""
        una = self._una
        data_end = self._buf_pos + len(self._buf)
        self.stats["retransmits"] += 1
        self._rtt_pos = None  # Karn
        if una < data_end:
            n = min(data_end - una, self.eff_mss)
            off = una - self._buf_pos
            flags = ACK | (PSH if una + n == data_end else 0)
            if una + n == data_end and self._fin_pos is not None and self._max > data_end:
                flags |= FIN
            self._emit(self._make(flags, una, bytes(self._buf[off:off + n])), now,
                       f"retransmit: {why}")
        elif self._fin_pos is not None and una == self._fin_pos:
            self._emit(self._make(FIN | ACK, una), now, f"retransmit: {why}")

    def _make(self, flags: int, pos: int, payload: bytes = b"") -> Segment:
        """Build a segment at send position ``pos`` carrying our current ACK and window."""
        if flags & ACK:
            ack = (self.irs + self._rnxt) & MASK
            window = self._advertise()
        else:
            ack = 0
            window = min(self.config.rcv_buf, 65535) if flags & SYN else self._advertise()
        return Segment(self.local_port, self.remote_port, (self.iss + pos) & MASK, ack, flags,
                       window, payload)

    def _advertise(self) -> int:
        """The window to offer: free space, moved right only in worthwhile steps.

        Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge advances when
        it can move by at least min(buffer/2, MSS); it never moves left.
        """
        rnxt = self._rnxt
        right = rnxt + self.config.rcv_buf - len(self._rbuf)
        if right - self._radv >= self._sws_threshold() or self._radv < rnxt:
            self._radv = right
        return min(max(self._radv - rnxt, 0), 65535)

    def _sws_threshold(self) -> int:
        return max(min(self.config.rcv_buf // 2, self.eff_mss), 1)

    def _emit(self, seg: Segment, now: float, why: str) -> None:
        if seg.flags & ACK:
            self._ack_now = False
            self._ack_pending = 0
            self._dack_at = None
        self.stats["segs_out"] += 1
        self._out.append(seg)
        if self._tr is not None:
            self._trace_seg(now, "out", seg, why)

    def _send_rst(self, now: float, pos: int, *, why: str) -> None:
        """Send <SEQ=pos><ACK=RCV.NXT><CTL=RST,ACK>; an RST is never retransmitted (C19)."""
        seg = self._make(RST | ACK, pos)
        seg.window = 0
        self._emit(seg, now, why)

    def _send_rst_raw(self, now: float, seq_no: int, ack: int, flags: int, *, why: str) -> None:
        seg = Segment(self.local_port, self.remote_port, seq_no & MASK, ack, flags, 0)
        self.stats["segs_out"] += 1
        self._out.append(seg)
        if self._tr is not None:
            self._trace_seg(now, "out", seg, why)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2 challenge ACK, rate limited per connection (§7)."""
        if now - self._challenge_window >= 1.0:
            self._challenge_window = now
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            self.stats["challenge_acks_suppressed"] += 1
            return
        self._challenge_count += 1
        self.stats["challenge_acks"] += 1
        self._emit(self._make(ACK, self._max), now, "challenge ACK (RFC 5961)")

    # ------------------------------------------------------------------ timers
    def next_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must be called."""
        best: float | None = None
        for t in (self._rto_at, self._dack_at, self._tw_at, self._fw2_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is ``<= now``."""
        self._now = now
        if self._tw_at is not None and now >= self._tw_at:
            self._tw_at = None
            self._trace(now, "timer", timer="time_wait", concept="C13")
            self._set_state(S_CLOSED, now)
            return
        if self._fw2_at is not None and now >= self._fw2_at:
            self._fw2_at = None
            if self.state is S_FIN_WAIT_2:
                self._trace(now, "timer", timer="fin_wait_2")
                self._set_state(S_CLOSED, now, "fin_wait_2_timeout")
                return
        if self._dack_at is not None and now >= self._dack_at:
            self._dack_at = None
            self._trace(now, "timer", timer="delayed_ack")
            self._ack_now = True
        if self._rto_at is not None and now >= self._rto_at:
            self._rto_at = None
            self._on_rto(now)

    def _on_rto(self, now: float) -> None:
        """Retransmission timer expiry (RFC 6298 §5.4-5.6), also the persist timer."""
        st = self.state
        cfg = self.config
        self._retries += 1
        self.stats["rto_fired"] += 1
        self.rtt.back_off()
        if st is S_SYN_SENT or st is S_SYN_RECEIVED:
            limit = cfg.syn_retries if st is S_SYN_SENT else cfg.synack_retries
            self._trace(now, "timer", timer="rto", concept="C17", retries=self._retries,
                        rto=self.rtt.rto)
            if self._retries > limit:
                if st is S_SYN_SENT:
                    self._fail(now, errno.ETIMEDOUT, "connection timed out (no SYN-ACK)",
                               "timeout")
                else:
                    self._trace(now, "note", concept="C27",
                                text=f"no final ACK after {limit} SYN-ACK retransmissions")
                    self._set_state(S_CLOSED, now, "synack_timeout")
                return
            self._send_syn(now, retransmit=True)
            return
        if self._retries > cfg.max_retransmits:
            msg = f"connection timed out after {cfg.max_retransmits} retransmissions"
            if self.soft_error is not None:
                msg += f" (last ICMP error: {errno.errorcode.get(self.soft_error, '?')})"
            self._fail(now, errno.ETIMEDOUT, msg, "timeout")
            return
        flight = self._max - self._una
        if self.snd_wnd == 0 and self._una < self._buf_pos + len(self._buf):
            # Persist timer: probe the zero window with one byte (RFC 9293 §3.8.6.1).
            self.stats["probes"] += 1
            self._persisting = True
            self._trace(now, "timer", timer="persist", concept="C4", retries=self._retries,
                        rto=self.rtt.rto)
            off = self._una - self._buf_pos
            probe = self._make(ACK, self._una, bytes(self._buf[off:off + 1]))
            self._emit(probe, now, "zero-window probe")
            if self._max < self._una + 1:
                self._max = self._nxt = self._una + 1
            self._rto_at = now + self.rtt.rto
            return
        if flight <= 0:
            return
        concept = "C17" if self._fin_pos is not None and self._una == self._fin_pos else "C18"
        self._trace(now, "timer", timer="rto", concept=concept, retries=self._retries,
                    rto=self.rtt.rto)
        self._cc.on_timeout(flight, now)
        self._in_recovery = False
        self._dupacks = 0
        self._recover = self._max  # RFC 6582 §4: no fast retransmit for pre-timeout losses
        self._rtt_pos = None  # Karn
        self._nxt = self._una  # go back: everything outstanding is presumed lost
        self._trace(now, "cc", event="rto", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh)
        self._send_data(now)
        if self._rto_at is None:
            self._rto_at = now + self.rtt.rto

    # ------------------------------------------------------------ state changes
    def _set_state(self, new: State, now: float, reason: str | None = None) -> None:
        old = self.state
        concept, why = check_transition(old, new, reason)
        self.state = new
        if self._tr is not None:
            self._trace(now, "state", old=old.value, new=new.value, concept=concept, why=why)
        self._events.append(StateChanged(self, old, new, concept, why))
        if new is S_ESTABLISHED:
            self._events.append(Connected(self))
        elif new is S_CLOSED:
            self._rto_at = self._dack_at = self._tw_at = self._fw2_at = None
            self._ack_now = False
            self._events.append(Closed(self))

    def _fail(self, now: float, err: int, message: str, reason: str) -> None:
        cls = ConnectionReset if err == errno.ECONNRESET else ConnectionFailed
        self._events.append(cls(self, err, message))
        self._trace(now, "error", errno=errno.errorcode.get(err, str(err)), message=message)
        self._set_state(S_CLOSED, now, reason)

    def _drop(self, now: float, reason: str, concept: str = "") -> None:
        if self._tr is not None:
            self._trace(now, "drop", reason=reason, concept=concept)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake(self)

    # ----------------------------------------------------------------- tracing
    def _trace(self, now: float, ev: str, **fields: Any) -> None:
        if self._tr is not None:
            fields["t"] = now
            fields["ev"] = ev
            fields["conn"] = self.name
            self._tr(fields)

    def _trace_seg(self, now: float, direction: str, seg: Segment, why: str) -> None:
        assert self._tr is not None
        self._tr({"t": now, "ev": "seg", "dir": direction, "conn": self.name,
                  "flags": seg.flags, "seq": seg.seq, "ack": seg.ack, "len": len(seg.payload),
                  "win": seg.window, "mss": seg.mss, "why": why, "state": self.state.value,
                  "iss": self.iss, "irs": self.irs})

    # ------------------------------------------------------------- inspection
    @property
    def snd_una(self) -> int:
        """SND.UNA as a 32-bit sequence number."""
        return (self.iss + self._una) & MASK

    @property
    def snd_nxt(self) -> int:
        """SND.NXT as a 32-bit sequence number."""
        return (self.iss + self._max) & MASK

    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT as a 32-bit sequence number."""
        return (self.irs + self._rnxt) & MASK

    @property
    def rcv_wnd(self) -> int:
        """The receive window last offered (C4)."""
        return max(self._radv - self._rnxt, 0)

    @property
    def cwnd(self) -> int:
        return self._cc.cwnd

    @property
    def ssthresh(self) -> int:
        return self._cc.ssthresh

    def info(self) -> dict[str, Any]:
        """A snapshot in the spirit of Linux ``tcp_info``."""
        r = self.rtt
        return {
            "state": self.state.value, "snd_una": self.snd_una, "snd_nxt": self.snd_nxt,
            "rcv_nxt": self.rcv_nxt, "snd_wnd": self.snd_wnd, "rcv_wnd": self.rcv_wnd,
            "mss": self.eff_mss, "srtt": r.srtt, "rttvar": r.rttvar, "rto": r.rto,
            "backoff": r.backoff, "cwnd": self._cc.cwnd, "ssthresh": self._cc.ssthresh,
            "congestion_control": self._cc.name, "unacked": self._max - self._una,
            "in_recovery": self._in_recovery, **self.stats,
        }

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"


#: ICMP destination-unreachable code -> (errno, text), after Linux's icmp_err_convert.
_ICMP_ERRORS: dict[int, tuple[int, str]] = {
    0: (errno.ENETUNREACH, "network unreachable"),
    1: (errno.EHOSTUNREACH, "host unreachable"),
    2: (errno.ENOPROTOOPT, "protocol unreachable"),
    3: (errno.ECONNREFUSED, "port unreachable"),
    5: (errno.EOPNOTSUPP, "source route failed"),
    6: (errno.ENETUNREACH, "destination network unknown"),
    7: (errno.EHOSTDOWN, "destination host unknown"),
    9: (errno.ENETUNREACH, "network administratively prohibited"),
    10: (errno.EHOSTUNREACH, "host administratively prohibited"),
    13: (errno.EHOSTUNREACH, "communication administratively prohibited"),
}


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)
