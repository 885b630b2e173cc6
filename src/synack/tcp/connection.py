"""One TCP connection: the transmission control block and its rules (RFC 9293).

The object is pure: no sockets, no threads, no clock reads.  Every entry point
that depends on time takes ``now`` (seconds, any monotonic origin); the driver
asks :meth:`Connection.next_timer` for the earliest deadline and calls
:meth:`Connection.handle_timer` when it passes.  Segments go in through
:meth:`Connection.receive` and come out of :meth:`Connection.segments_to_send`;
what happened is reported as :mod:`synack.tcp.events` objects.

Sequence numbers are 32-bit and wrap (C16).  At the boundary every incoming
sequence or acknowledgement number is turned into an unbounded *stream
position* with :func:`synack.tcp.seq.sub` relative to a position we already know,
so the rest of the logic is plain integer arithmetic and a transfer that
crosses 2**32 behaves exactly like one that does not.  On the send side
position 0 is our SYN (sequence ``iss``), data byte *k* is at ``1 + k`` and the
FIN follows the last byte; the receive side mirrors this from ``irs``.

The send side keeps a scoreboard of transmitted segments
(:mod:`synack.tcp.scoreboard`): losses are found by duplicate ACKs (RFC 5681,
NewReno RFC 6582) or, with SACK, by RACK's time rule (RFC 8985) and the
RFC 6675 DupThresh rule; recovery is paced by PRR (RFC 6937); only segments
that were sent are ever resent.  A segment handed to the link may be larger
than one MSS when the link does segmentation offload, and an incoming one may
be larger than one MSS (receive offload).

The rules are written as mixins, one module a part: segment input
(:mod:`.conn_input`), receiving data (:mod:`.conn_receive`), loss detection and
recovery (:mod:`.conn_recovery`), the send path (:mod:`.conn_output`), timers
(:mod:`.conn_timers`), ICMP errors (:mod:`.conn_icmp`) and tracing
(:mod:`.conn_trace`), on the typed frame of :mod:`.conn_base` with the constants
of :mod:`.conn_const`.  State that belongs together has an owner of its own: the
timers' deadlines (:mod:`.timers`), the loss state (:mod:`.loss_state`), PRR
(:mod:`.prr`), RACK (:mod:`.rack`) and the socket-memory model (:mod:`.memory`).
This module holds ``__init__``, the constructors, the application's calls, the state
changes and the inspection properties.
"""

from __future__ import annotations

import errno
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from ..wire.ipv6 import ip6_to_str
from ..wire.segment import ACK, CWR, ECE, SYN, Segment
from . import algorithms, memory
from .config import TcpConfig
from .congestion import CongestionControl
from .conn_const import (
    DEFAULT_PEER_MSS,
    DEFAULT_PEER_MSS6,
    MASK,
    S_CLOSE_WAIT,
    S_CLOSED,
    S_ESTABLISHED,
    S_FIN_WAIT_1,
    S_FIN_WAIT_2,
    S_LAST_ACK,
    S_LISTEN,
    S_SYN_RECEIVED,
    S_SYN_SENT,
    S_TIME_WAIT,
    TS_OPTION_LEN,
)
from .conn_const import Tracer as Tracer
from .conn_icmp import IcmpMixin
from .conn_input import InputMixin
from .conn_output import OutputMixin
from .conn_rate import RateMixin
from .conn_receive import ReceiveMixin
from .conn_recovery import RecoveryMixin
from .conn_timers import TimersMixin
from .conn_trace import TraceMixin
from .events import Closed, Connected, ConnectionFailed, ConnectionReset, Event, StateChanged
from .loss_state import CA_RECOVERY, LossState
from .pacing import Pacer
from .prr import Prr
from .rack import Rack
from .rate_sample import RateSampler
from .reassembly import Reassembly
from .recvbuf import RecvBuffer
from .rtt import RttEstimator
from .sackgen import SackGenerator
from .scoreboard import Scoreboard
from .sendbuf import SendBuffer
from .states import CAN_RECEIVE, CAN_SEND, State, check_transition
from .stats import ConnStats
from .timers import Timers


def window_shift(buffer: int) -> int:
    """RFC 7323 §2.3: the smallest shift that lets ``buffer`` be advertised (max 14)."""
    shift = 0
    while shift < 14 and (buffer >> shift) > 65535:
        shift += 1
    return shift


class Connection(
    InputMixin,
    ReceiveMixin,
    RecoveryMixin,
    OutputMixin,
    TimersMixin,
    IcmpMixin,
    TraceMixin,
    RateMixin,
):
    """A TCP connection endpoint.  Create with :meth:`open_active` or :meth:`open_passive`."""

    __slots__ = ()

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
        ts_offset: int | None = None,
    ) -> None:
        cfg = config or TcpConfig()
        self.config = cfg
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self._name = None  # "a.b.c.d:p>e.f.g.h:q", built when first asked for
        self.state = S_CLOSED
        self.passive = False
        self.user_data = None
        self.soft_error = None  # last ICMP soft error (errno), RFC 1122
        self._events = events if events is not None else deque()
        self._tr = tracer
        self._traced = None  # timers and windows as last traced
        self._wake = wake
        self._out = []
        self._now = 0.0  # the latest time a caller gave us, for app calls without one
        # --- negotiated options (RFC 7323, RFC 2018, RFC 3168) ---
        self.ws_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_age = 0.0
        # RFC 7323 §5.4: the stack gives one offset per address pair; alone, one from ISS.
        self._ts_offset = (
            ts_offset if ts_offset is not None else (iss * 2654435761 + 0x5BD1E995) & MASK
        )
        self.sack_ok = False
        self.ecn_ok = False
        self._ece_echo = False
        self._cwr_pending = False
        # --- send side (positions: 0 = SYN) ---
        self.iss = iss & MASK
        self._una = 0
        self._max = 0  # SND.NXT: the next new position to send
        self._buf = SendBuffer()
        self._buf_pos = 1
        self._mem = memory.for_config(cfg)  # the socket-memory model (RFC or Linux)
        self._fin_pos = None
        self._sup = None
        self._send_full = False
        self._sb = Scoreboard()
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._wl1 = 0
        self._wl2 = 0
        self.peer_mss = DEFAULT_PEER_MSS if len(remote_ip) == 4 else DEFAULT_PEER_MSS6
        self.eff_mss = min(cfg.mss, self.peer_mss)
        self.rtt = RttEstimator(
            cfg.rto_initial, cfg.rto_min, cfg.rto_max, floor_variance=cfg.rto_min_on_rttvar
        )
        self._rtt_pos = None
        self._rtt_time = 0.0
        self._min_rtt = math.inf
        self._retries = 0
        self._persisting = False
        self._pmtu_mark = 0  # SND.NXT when a smaller path MTU made us resend the flight
        self._probe = None
        self._dupacks = 0
        self._ls = LossState()
        self._prr: Prr | None = None
        self._rack = Rack()
        self._tlp_end = None
        self._tlp_retrans = False
        self._tlp_flight = 0
        self._round_end = 0
        self._rsr = RateSampler()
        self._rate_trace_at = 0
        self._cc = algorithms.create(cfg.congestion_control, self.eff_mss, cfg.initial_window)
        self._cc.abc_limit = cfg.abc_limit
        self._snd_sml = 0  # end of the last segment sent shorter than the MSS (Minshall)
        self._cc.seed(self.iss)
        # Pacing as the config says, or (None) when the congestion control asks for it.
        self._pacer = (
            Pacer() if (cfg.pacing if cfg.pacing is not None else self._cc.paces) else None
        )
        self._progress_at = 0.0  # last time the peer acknowledged new data (user timeout)
        # --- receive side (positions: 0 = peer's SYN) ---
        self.irs = 0
        self._rnxt = 0
        self._rbuf = RecvBuffer()
        self._radv = 0
        self._ooo = Reassembly()
        self._sackgen = SackGenerator()
        self._rfin_pos = None
        self._rup = None
        self._ack_now = False
        self._ack_pending = 0
        self._quickack = cfg.quickack
        self._more = False  # the last send() said MSG_MORE: hold its partial segment
        self._eor = None  # stream positions that end a record (MSG_EOR), ascending
        self._psh_marks = None  # stream positions a write ended at (psh_write_end)
        self._pushed_pos = 0  # Linux tp->pushed_seq: where the last PSH mark was
        self._psh_sent = None
        self._push_now = False  # push() asked to send what cork/MSG_MORE/Nagle hold
        self._last_ack_sent = 0
        self._orphan = False
        self._rd_shut = False
        # --- timers (absolute times or None) ---
        self._timers = Timers()
        self._ka_probes = 0
        # --- RFC 5961 §7 challenge ACK rate limit ---
        self._challenge_window = -1.0
        self._challenge_count = 0
        self._last_oow_ack = -1e9
        # Counters are stored once incremented (most stay zero): see tcp/stats.py.
        self.stats = ConnStats()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_active(
        cls,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        *,
        iss: int,
        now: float,
        **kw: Any,
    ) -> Connection:
        """Active OPEN (RFC 9293 §3.10.1): send SYN, CLOSED -> SYN-SENT (C6)."""
        conn = cls(local_ip, local_port, remote_ip, remote_port, iss=iss, **kw)
        conn._now = now
        conn._trace(now, "open", mode="active", iss=conn.iss)
        conn._set_state(S_SYN_SENT, now)
        conn._send_syn(now, retransmit=False)
        return conn

    @classmethod
    def open_passive(
        cls, syn: Segment, local_ip: bytes, remote_ip: bytes, *, iss: int, now: float, **kw: Any
    ) -> Connection:
        """A listener's answer to a SYN (RFC 9293 §3.10.7.2): SYN-ACK, -> SYN-RECEIVED (C7)."""
        conn = cls(local_ip, syn.dst_port, remote_ip, syn.src_port, iss=iss, **kw)
        conn.passive = True
        conn._now = now
        conn._trace(now, "open", mode="passive", iss=conn.iss, irs=syn.seq)
        conn._accept_peer_syn(syn, now)
        conn.state = S_LISTEN  # the listener's state, which this TCB leaves at once
        conn._set_state(S_SYN_RECEIVED, now)
        conn._send_syn(now, retransmit=False)
        return conn

    @classmethod
    def from_cookie(
        cls,
        ack: Segment,
        local_ip: bytes,
        remote_ip: bytes,
        *,
        iss: int,
        mss: int,
        wscale: int | None,
        sack: bool,
        ecn: bool,
        now: float,
        **kw: Any,
    ) -> Connection:
        """Rebuild a connection from the ACK that returned a valid SYN cookie
        (RFC 4987 §3.6): LISTEN -> SYN-RECEIVED -> ESTABLISHED at once (C7, C9).

        ``mss``, ``wscale``, ``sack`` and ``ecn`` are what the cookie encoded of
        the client's SYN.  The ACK itself (and any data on it) should then be
        given to :meth:`receive`.
        """
        conn = cls(local_ip, ack.dst_port, remote_ip, ack.src_port, iss=iss, **kw)
        cfg = conn.config
        conn.passive = True
        conn._now = now
        conn._trace(now, "open", mode="syncookie", iss=conn.iss, irs=(ack.seq - 1) & MASK)
        syn = Segment(
            ack.src_port,
            ack.dst_port,
            (ack.seq - 1) & MASK,
            0,
            SYN | (ECE | CWR if ecn else 0),
            ack.window,
            mss=mss,
            wscale=wscale,
            sack_permitted=sack,
            tsval=ack.tsval if ack.tsecr else None,
            tsecr=None,
        )
        conn._accept_peer_syn(syn, now)
        conn.snd_wnd = ack.window << conn.snd_wscale
        conn._max_snd_wnd = conn.snd_wnd
        conn._radv = 1 + min(cfg.rcv_buf, 65535)  # what our SYN-ACK offered
        conn._una = conn._max = 1
        conn.state = S_LISTEN
        conn._set_state(S_SYN_RECEIVED, now)
        conn._trace(
            now,
            "note",
            concept="C9",
            text="ACK returned a valid SYN cookie: "
            "connection rebuilt without stored state (RFC 4987)",
        )
        conn._set_state(S_ESTABLISHED, now)
        return conn

    def _accept_peer_syn(self, syn: Segment, now: float) -> None:
        """Take the peer's ISN and negotiate options from its SYN (or SYN-ACK)."""
        cfg = self.config
        self.irs = syn.seq
        self._rnxt = 1
        if cfg.window_scaling and syn.wscale is not None:  # RFC 7323 §2.2: both must send it
            self.ws_ok = True
            self.snd_wscale = min(syn.wscale, 14)  # §2.3: larger values are treated as 14
            self.rcv_wscale = window_shift(max(cfg.rcv_buf, cfg.rcv_wscale_space or 0))
        self.sack_ok = cfg.sack and syn.sack_permitted
        if cfg.timestamps and syn.tsval is not None:
            self.ts_ok = True
            self.ts_recent = syn.tsval
            self.ts_recent_age = now
        if cfg.ecn != "off":
            if syn.flags & ACK:  # a SYN-ACK answering our ECN-setup SYN (RFC 3168 §6.1.1)
                self.ecn_ok = cfg.ecn == "on" and syn.flags & (ECE | CWR) == ECE
            else:
                self.ecn_ok = syn.flags & (ECE | CWR) == ECE | CWR
        self._radv = 1
        self.peer_mss = (
            syn.mss
            if syn.mss
            else (DEFAULT_PEER_MSS if len(self.remote_ip) == 4 else DEFAULT_PEER_MSS6)
        )
        self.eff_mss = max(min(cfg.mss, self.peer_mss) - (TS_OPTION_LEN if self.ts_ok else 0), 64)
        self._cc = algorithms.create(cfg.congestion_control, self.eff_mss, cfg.initial_window)
        self._cc.abc_limit = cfg.abc_limit
        self._cc.seed(self.iss)
        self.snd_wnd = syn.window  # never scaled on a SYN (RFC 7323 §2.2)
        self._max_snd_wnd = self.snd_wnd
        self._wl1 = 0

    def _send_syn(self, now: float, *, retransmit: bool) -> None:
        cfg = self.config
        synack = self.state is not S_SYN_SENT  # (FIN-WAIT-1 too after a close in SYN-RECEIVED)
        flags = SYN | ACK if synack else SYN
        if synack:
            if self.ecn_ok:
                flags |= ECE
        elif cfg.ecn == "on":
            flags |= ECE | CWR  # ECN-setup SYN (RFC 3168 §6.1.1)
        seg = self._make(flags, 0, b"", now)
        seg.mss = cfg.mss
        if synack:  # answer only what the peer offered (RFC 7323 §2.2, RFC 2018 §2)
            if self.ws_ok:
                seg.wscale = self.rcv_wscale
            seg.sack_permitted = self.sack_ok
        else:
            if cfg.window_scaling:
                seg.wscale = window_shift(max(cfg.rcv_buf, cfg.rcv_wscale_space or 0))
            seg.sack_permitted = cfg.sack
            if cfg.timestamps:
                seg.tsval, seg.tsecr = self._ts_clock(now), 0
        if retransmit:
            self.stats["retransmits"] += 1
            self._rtt_pos = None  # Karn's rule (RFC 6298 §3)
        else:
            self._rtt_pos, self._rtt_time = 1, now
        self._emit(seg, now, "retransmit" if retransmit else "")
        self._max = max(self._max, 1)
        if self._timers.rto is None or retransmit:
            self._timers.rto = now + self.rtt.rto

    # --------------------------------------------------------------- app calls
    def send(
        self,
        data: bytes | bytearray | memoryview,
        *,
        more: bool = False,
        urgent: bool = False,
        eor: bool = False,
    ) -> int:
        """Queue bytes for sending; return how many fit in the send buffer (C1).

        ``more`` (MSG_MORE) says more data follows: a partial last segment is held, as
        under TCP_CORK, until a later send without it or :meth:`push`, and the data
        queued so far ends without PSH.

        ``urgent`` (MSG_OOB) marks the last byte queued as the end of urgent data: SND.UP
        is set after it (MUST-31, RFC 6093 §4), every segment that starts before SND.UP
        carries URG and the pointer until SND.UNA reaches it, and the data is pushed
        at once.  The bytes stay in the stream; the peer reads them in line.

        ``eor`` (MSG_EOR) ends a record after the bytes queued: no segment ever carries
        bytes from both sides of that boundary, and later data is not coalesced into the
        record's last segment (Linux TCP_SKB_CB(skb)->eor, tcp_skb_can_collapse_to()).
        """
        if self.state not in CAN_SEND or self._fin_pos is not None:
            raise BrokenPipeError(errno.EPIPE, f"cannot send in state {self.state}")
        sb = self._sb
        self._rsr.check_app_limited(  # tcp_sendmsg: was the sender waiting for this write?
            self._buf_pos + len(self._buf) - self._max,
            self.eff_mss,
            self._max - self._una - sb.sacked_bytes - sb.lost_bytes,
            self._cc.cwnd,
            sb.lost_bytes,
        )
        if isinstance(data, memoryview):
            data = _byte_view(data)  # lengths below count bytes, not items
        mem = self._mem
        if mem.send_wait:
            return 0  # asleep until SendSpace (snd_wake_ratio, sk_stream_wait_memory)
        n = mem.queue(self, data, more)
        cfg = self.config
        if cfg.psh_write_end and n > 0:
            end = self._buf_pos + len(self._buf)
            if more:
                self._forced_push(end)
            else:
                self._mark_push(end)  # the write's last skb
        if eor and n == len(data) and n > 0:
            if self._eor is None:
                self._eor = []
            self._eor.append(self._buf_pos + len(self._buf))
        if urgent and n > 0:
            self._sup = self._buf_pos + len(self._buf)
            self._push_now = True
            self._poke()
        return n

    @property
    def size_goal(self) -> int:
        """Bytes the send path puts in one send-queue buffer (Linux tcp_xmit_size_goal())."""
        return memory.LinuxMemory.size_goal(self.eff_mss, self._max_snd_wnd)

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` would take now (so that taking them fills the buffer and
        SendSpace follows): the free send buffer; with ``snd_skb_overhead``, the room
        in the unsent last skb plus the whole skbs that may still be started; 0 while a
        short send waits for SendSpace."""
        return self._mem.send_space(self)

    @property
    def max_wire_segment(self) -> int:
        """TCP header and payload bytes one wire segment may carry: the MSS plus a bare
        20-byte header (RFC 6691 §2); the timestamp option comes out of ``eff_mss``."""
        return self.eff_mss + 20 + (TS_OPTION_LEN if self.ts_ok else 0)

    @property
    def readable(self) -> int:
        """In-order bytes waiting for :meth:`recv`."""
        return len(self._rbuf)

    @property
    def urgent_remaining(self) -> int:
        """Bytes to read up to and including the last urgent byte the peer marked, 0 when
        no urgent data is pending (RFC 9293 SHLD-13; RCV.UP less the read position).
        May exceed :attr:`readable` when the mark came before the data (§3.8.5)."""
        rup = self._rup
        return 0 if rup is None else max(rup - self._read_pos(), 0)

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
        data = self._rbuf.take(max_bytes)
        if data and self._mem.counts_truesize:
            self._mem.on_read(self._read_pos)
        if data and self.state in CAN_RECEIVE:
            # Send an explicit window update only when the window the peer knows is
            # less than half of what we could offer now (as Linux's tcp_cleanup_rbuf);
            # smaller openings ride on the next ACK.  A zero window always reopens.
            # While the peer still has four segments of window it is not held up:
            # the update waits for the delayed-ACK timer and so rides on any reply
            # sent meanwhile (a SYN's unscaled 64 KB would otherwise cost a pure ACK
            # on the first read, where Linux's rcv_ssthresh keeps its window small).
            offered = max(self._radv - self._rnxt, 0)
            free = self._offerable()
            if free >= 2 * offered and free - offered >= self._mem.sws_threshold(
                self.config.rcv_buf, self.eff_mss
            ):
                if offered < 4 * self.eff_mss or self.config.delayed_ack <= 0:
                    self._ack_now = True
                    self._poke()
                elif self._timers.delayed_ack is None:
                    self._timers.delayed_ack = self._now + self.config.delayed_ack
                    self._poke()
        return data

    def configure(self, config: TcpConfig, now: float | None = None) -> None:
        """Change the tunables of an open connection (socket options set late).

        Keepalive is armed or disarmed at once; turning Nagle off sends what it
        was holding, as Linux does for TCP_NODELAY, and so does clearing ``cork``
        (TCP_CORK).  Negotiated options (window scale, timestamps, SACK, MSS) are
        fixed by the handshake and not changed.
        """
        now = self._now if now is None else now
        if self.config.cork and not config.cork:
            self._push_now = True  # uncorking pushes what the cork held
        self.config = config
        self._mem = memory.for_config(config, self._mem)
        if config.keepalive and self.state in (S_ESTABLISHED, S_CLOSE_WAIT):
            if self._timers.keepalive is None:
                self._timers.keepalive = now + config.keepalive_idle
        elif not config.keepalive:
            self._timers.keepalive = None
        self._poke()

    def push(self) -> None:
        """Send what cork, MSG_MORE or Nagle hold back, once (Linux does this when
        TCP_NODELAY is set, even when it was already set, and when TCP_CORK is cleared).
        Window and congestion limits still apply."""
        self._push_now = True
        self._poke()

    def shutdown(self, now: float | None = None) -> None:
        """Half-close: send FIN after the queued data; we can still receive (C10, C11)."""
        now = self._now if now is None else now
        st = self.state
        if st is S_SYN_SENT:
            self._set_state(S_CLOSED, now, "close")
            self._poke()  # the stack must forget it (a later SYN-ACK then gets RST)
            return
        if self._fin_pos is not None or st not in (S_SYN_RECEIVED, S_ESTABLISHED, S_CLOSE_WAIT):
            return
        self._fin_pos = self._buf_pos + len(self._buf)
        self._set_state(S_LAST_ACK if st is S_CLOSE_WAIT else S_FIN_WAIT_1, now)
        self._poke()

    def shutdown_read(self) -> None:
        """shutdown(SHUT_RD): the application reads no more.  With
        ``rst_on_data_after_shut_rd`` new data arriving in FIN-WAIT-1/2 then resets
        the connection (Linux tcp_rcv_state_process(), RCV_SHUTDOWN); otherwise it is
        still accepted (RFC 9293 has no receive-side shutdown)."""
        if self.config.rst_on_data_after_shut_rd:
            self._rd_shut = True

    def close(self, now: float | None = None) -> None:
        """Socket-style close: the application will neither send nor read any more.

        With unread received data this aborts with RST instead of FIN (C23,
        RFC 9293 §3.10.4 and RFC 2525 §2.17).  Otherwise a FIN is sent and the
        connection finishes the teardown on its own; data that still arrives
        from the peer is answered with RST (C24).  Data held out of order is not
        "unread": the application could never have read it (as Linux's
        ``tcp_close``, which counts only the in-order receive queue), so it alone
        does not turn the FIN into a RST; if the hole is filled later, that data
        meets the closed socket and gets the RST of C24.
        """
        now = self._now if now is None else now
        if self.state is S_CLOSED:
            return
        if self._rbuf:
            self.abort(now, why="close with unread received data (C23)")
            return
        self._orphan = True
        self.shutdown(now)
        if self.state is S_FIN_WAIT_2:
            self._timers.fin_wait_2 = now + self.config.fin_wait_2_timeout

    def abort(self, now: float | None = None, *, why: str = "application abort") -> None:
        """ABORT (RFC 9293 §3.10.5): send RST if synchronised, drop all state (C19)."""
        t = self._now if now is None else now
        if self.state in (S_CLOSED, S_TIME_WAIT, S_SYN_SENT, S_LISTEN):
            if self.state is not S_CLOSED:
                self._set_state(S_CLOSED, t, "abort")
                self._poke()
            return
        self._send_rst(t, self._max, why=why)
        self._set_state(S_CLOSED, t, "abort")
        self._poke()

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
            self._round_end = self._max
            if self.config.keepalive:
                self._timers.keepalive = now + self.config.keepalive_idle
        elif new is S_CLOSED:
            self._timers.cancel_all()
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

    # ------------------------------------------------------------- inspection
    @property
    def name(self) -> str:
        """``local:port>remote:port``, as traces name the connection."""
        name = self._name
        if name is None:
            name = self._name = (
                f"{_ip(self.local_ip)}:{self.local_port}>{_ip(self.remote_ip)}:{self.remote_port}"
            )
        return name

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

    @property
    def congestion(self) -> CongestionControl:
        return self._cc

    def info(self) -> dict[str, Any]:
        """A snapshot in the spirit of Linux ``tcp_info``."""
        r = self.rtt
        sb = self._sb
        return {
            "state": self.state.value,
            "snd_una": self.snd_una,
            "snd_nxt": self.snd_nxt,
            "rcv_nxt": self.rcv_nxt,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": self.rcv_wnd,
            "mss": self.eff_mss,
            "peer_mss": self.peer_mss,
            "srtt": r.srtt,
            "rttvar": r.rttvar,
            "rto": r.rto,
            "min_rtt": None if self._min_rtt == math.inf else self._min_rtt,
            "backoff": r.backoff,
            "cwnd": self._cc.cwnd,
            "ssthresh": self._cc.ssthresh,
            "congestion_control": self._cc.name,
            "unacked": self._max - self._una,
            "sacked": sb.sacked_bytes,
            "lost": sb.lost_bytes,
            "pipe": self._pipe(),
            "ca_state": int(self._ls.state),
            "ca_state_name": str(self._ls.state),
            "in_recovery": self._ls.state is CA_RECOVERY,
            "delivery_rate": self._rsr.info_rate,
            "app_limited": self._rsr.info_app_limited,
            "pacing_rate": self._pacer.rate if self._pacer is not None else None,
            "reordering_seen": self._rack.reordering_seen,
            "wscale": (self.snd_wscale, self.rcv_wscale),
            "timestamps": self.ts_ok,
            "sack": self.sack_ok,
            "ecn": self.ecn_ok,
            **self._cc.info(),
            **self.stats.full(),
        }

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"


def _byte_view(data: memoryview) -> memoryview:
    """``data`` as a flat view of bytes (a view of ``array('I')`` counts items)."""
    view = memoryview(data)
    if view.ndim == 1 and view.itemsize == 1 and view.format == "B":
        return view
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


def _ip(b: bytes) -> str:
    """Dotted quad, or a bracketed IPv6 address (RFC 5952 §6) so ``:port`` stays apart."""
    return ".".join(str(x) for x in b) if len(b) == 4 else f"[{ip6_to_str(b)}]"
