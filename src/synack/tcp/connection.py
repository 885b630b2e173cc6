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

The send side keeps a scoreboard of transmitted segments
(:mod:`synack.tcp.scoreboard`): losses are found by duplicate ACKs (RFC 5681,
NewReno RFC 6582) or, with SACK, by RACK's time rule (RFC 8985) and the
RFC 6675 DupThresh rule; recovery is paced by PRR (RFC 6937); only segments
that were sent are ever resent.  A segment handed to the link may be larger
than one MSS when the link does segmentation offload, and an incoming one may
be larger than one MSS (receive offload).
"""

from __future__ import annotations

import bisect
import errno
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import seq
from ..wire.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, Segment
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
from .recvbuf import RecvBuffer
from .rtt import RttEstimator
from .sackgen import SackGenerator
from .scoreboard import Scoreboard, SentSeg
from .sendbuf import SendBuffer
from .states import CAN_RECEIVE, CAN_SEND, State, check_transition
from .stats import ConnStats

MASK = seq.MASK
DEFAULT_PEER_MSS = 536  # RFC 9293 §3.7.1 (IPv4) when the peer sends no MSS option
TS_OPTION_LEN = 12  # NOP, NOP, kind 8 len 10: taken out of each segment's payload
PAWS_IDLE = 24 * 24 * 3600.0  # RFC 7323 §5.5: TS.Recent older than 24 days is invalid
ECT0 = 0b10
CE = 0b11
SKB_STRUCT = 256  # Linux: SKB_DATA_ALIGN(sizeof(struct sk_buff)), part of every truesize
GSO_MAX_SIZE = 65536  # Linux GSO_LEGACY_MAX_SIZE: the largest skb tcp_sendmsg builds

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
_PREDICTED_STATES = frozenset({S_ESTABLISHED, S_FIN_WAIT_1, S_FIN_WAIT_2})  # header prediction


def window_shift(buffer: int) -> int:
    """RFC 7323 §2.3: the smallest shift that lets ``buffer`` be advertised (max 14)."""
    shift = 0
    while shift < 14 and (buffer >> shift) > 65535:
        shift += 1
    return shift


class Connection:
    """A TCP connection endpoint.  Create with :meth:`open_active` or :meth:`open_passive`."""

    __slots__ = (
        "__weakref__",
        "_ack_now",
        "_ack_pending",
        "_buf",
        "_buf_pos",
        "_cc",
        "_challenge_count",
        "_challenge_window",
        "_cwr_pending",
        "_dack_at",
        "_delivered",
        "_dupacks",
        "_ece_echo",
        "_ecn_recover",
        "_events",
        "_fin_pos",
        "_fw2_at",
        "_in_recovery",
        "_ka_at",
        "_ka_probes",
        "_last_ack_sent",
        "_last_oow_ack",
        "_max",
        "_max_snd_wnd",
        "_min_rtt",
        "_more",
        "_name",
        "_now",
        "_ooo",
        "_orphan",
        "_out",
        "_persisting",
        "_pmtu_mark",
        "_probe",
        "_progress_at",
        "_prr_allow",
        "_prr_delivered",
        "_prr_out",
        "_push_now",
        "_quickack",
        "_rack_at",
        "_rack_end",
        "_rack_rtt",
        "_rack_xmit",
        "_radv",
        "_rate_delivered",
        "_rate_t",
        "_rbuf",
        "_recover",
        "_recover_fs",
        "_reordering_seen",
        "_retries",
        "_rfin_pos",
        "_rmem",
        "_rmem_segs",
        "_rnxt",
        "_round_end",
        "_rto_at",
        "_rtt_pos",
        "_rtt_time",
        "_sackgen",
        "_sb",
        "_scaling",
        "_send_full",
        "_send_wait",
        "_skb_ends",
        "_tlp_at",
        "_tlp_end",
        "_tlp_retrans",
        "_tr",
        "_traced",
        "_ts_offset",
        "_tw_at",
        "_una",
        "_wake",
        "_wl1",
        "_wl2",
        "config",
        "delivery_rate",
        "ecn_ok",
        "eff_mss",
        "irs",
        "iss",
        "local_ip",
        "local_port",
        "passive",
        "peer_mss",
        "rcv_wscale",
        "remote_ip",
        "remote_port",
        "rtt",
        "sack_ok",
        "snd_wnd",
        "snd_wscale",
        "soft_error",
        "state",
        "stats",
        "ts_ok",
        "ts_recent",
        "ts_recent_age",
        "user_data",
        "ws_ok",
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
        ts_offset: int | None = None,
    ) -> None:
        cfg = config or TcpConfig()
        self.config = cfg
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self._name: str | None = None  # "a.b.c.d:p>e.f.g.h:q", built when first asked for
        self.state = S_CLOSED
        self.passive = False
        self.user_data: Any = None
        self.soft_error: int | None = None  # last ICMP soft error (errno), RFC 1122
        self._events: deque[Event] = events if events is not None else deque()
        self._tr = tracer
        self._traced: dict[str, Any] | None = None  # timers and windows as last traced
        self._wake = wake
        self._out: list[Segment] = []
        self._now = 0.0  # the latest time a caller gave us, for app calls without one
        # --- negotiated options (RFC 7323, RFC 2018, RFC 3168) ---
        self.ws_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_age = 0.0
        # RFC 7323 §5.4: the stack gives one offset per address pair; alone, one from ISS.
        self._ts_offset = (ts_offset if ts_offset is not None
                           else (iss * 2654435761 + 0x5BD1E995) & MASK)
        self.sack_ok = False
        self.ecn_ok = False
        self._ece_echo = False
        self._cwr_pending = False
        self._ecn_recover = 0
        # --- send side (positions: 0 = SYN) ---
        self.iss = iss & MASK
        self._una = 0
        self._max = 0  # SND.NXT: the next new position to send
        self._buf = SendBuffer()
        self._buf_pos = 1
        self._fin_pos: int | None = None
        self._send_full = False
        self._send_wait = False  # a short send() waits for SendSpace (snd_wake_ratio)
        self._skb_ends: list[int] | None = None  # skb ends, with snd_skb_overhead
        self._sb = Scoreboard()
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._wl1 = 0
        self._wl2 = 0
        self.peer_mss = DEFAULT_PEER_MSS
        self.eff_mss = min(cfg.mss, DEFAULT_PEER_MSS)
        self.rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self._rtt_pos: int | None = None
        self._rtt_time = 0.0
        self._min_rtt = math.inf
        self._retries = 0
        self._persisting = False
        self._pmtu_mark = 0  # SND.NXT when a smaller path MTU made us resend the flight
        self._probe: SentSeg | None = None
        self._dupacks = 0
        self._in_recovery = False
        self._recover = 0
        self._recover_fs = 0
        self._prr_delivered = 0
        self._prr_out = 0
        self._prr_allow = 0
        self._rack_xmit = -1.0
        self._rack_end = 0
        self._rack_rtt = 0.0
        self._reordering_seen = False
        self._tlp_end: int | None = None
        self._tlp_retrans = False
        self._round_end = 0
        self._delivered = 0
        self._rate_t = 0.0
        self._rate_delivered = 0
        self.delivery_rate = 0.0
        self._cc = congestion.create(cfg.congestion_control, self.eff_mss, cfg.initial_window)
        self._cc.abc_limit = cfg.abc_limit
        self._progress_at = 0.0  # last time the peer acknowledged new data (user timeout)
        # --- receive side (positions: 0 = peer's SYN) ---
        self.irs = 0
        self._rnxt = 0
        self._rbuf = RecvBuffer()
        self._radv = 0
        self._ooo = Reassembly()
        self._sackgen = SackGenerator()
        self._rfin_pos: int | None = None
        # Receive memory with rcv_truesize_headroom: truesize charged, (end, truesize) of
        # each segment not yet wholly read, payload/truesize ratio in 1/256 (Linux 50 %).
        self._rmem = 0
        self._rmem_segs: deque[tuple[int, int]] | None = None
        self._scaling = 128
        self._ack_now = False
        self._ack_pending = 0
        self._quickack = cfg.quickack
        self._more = False  # the last send() said MSG_MORE: hold its partial segment
        self._push_now = False  # push() asked to send what cork/MSG_MORE/Nagle hold
        self._last_ack_sent = 0
        self._orphan = False
        # --- timers (absolute times or None) ---
        self._rto_at: float | None = None
        self._dack_at: float | None = None
        self._tw_at: float | None = None
        self._fw2_at: float | None = None
        self._rack_at: float | None = None
        self._tlp_at: float | None = None
        self._ka_at: float | None = None
        self._ka_probes = 0
        # --- RFC 5961 §7 challenge ACK rate limit ---
        self._challenge_window = -1.0
        self._challenge_count = 0
        self._last_oow_ack = -1e9
        # Counters are stored once incremented (most stay zero): see tcp/stats.py.
        self.stats = ConnStats()

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
        conn._accept_peer_syn(syn, now)
        conn.state = State.LISTEN  # the listener's state, which this TCB leaves at once
        conn._set_state(S_SYN_RECEIVED, now)
        conn._send_syn(now, retransmit=False)
        return conn

    @classmethod
    def from_cookie(cls, ack: Segment, local_ip: bytes, remote_ip: bytes, *, iss: int,
                    mss: int, wscale: int | None, sack: bool, ecn: bool, now: float,
                    **kw: Any) -> Connection:
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
        syn = Segment(ack.src_port, ack.dst_port, (ack.seq - 1) & MASK, 0,
                      SYN | (ECE | CWR if ecn else 0), ack.window, mss=mss, wscale=wscale,
                      sack_permitted=sack,
                      tsval=ack.tsval if ack.tsecr else None, tsecr=None)
        conn._accept_peer_syn(syn, now)
        conn.snd_wnd = ack.window << conn.snd_wscale
        conn._max_snd_wnd = conn.snd_wnd
        conn._radv = 1 + min(cfg.rcv_buf, 65535)  # what our SYN-ACK offered
        conn._una = conn._max = 1
        conn.state = State.LISTEN
        conn._set_state(S_SYN_RECEIVED, now)
        conn._trace(now, "note", concept="C9", text="ACK returned a valid SYN cookie: "
                    "connection rebuilt without stored state (RFC 4987)")
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
            self.rcv_wscale = window_shift(cfg.rcv_buf)
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
        self.peer_mss = syn.mss if syn.mss else DEFAULT_PEER_MSS
        self.eff_mss = max(min(cfg.mss, self.peer_mss) - (TS_OPTION_LEN if self.ts_ok else 0),
                           64)
        self._cc = congestion.create(cfg.congestion_control, self.eff_mss, cfg.initial_window)
        self._cc.abc_limit = cfg.abc_limit
        self.snd_wnd = syn.window  # never scaled on a SYN (RFC 7323 §2.2)
        self._max_snd_wnd = self.snd_wnd
        self._wl1 = 0

    def _send_syn(self, now: float, *, retransmit: bool) -> None:
        cfg = self.config
        synack = self.state is S_SYN_RECEIVED
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
                seg.wscale = window_shift(cfg.rcv_buf)
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
        if self._rto_at is None or retransmit:
            self._rto_at = now + self.rtt.rto

    # --------------------------------------------------------------- app calls
    def send(self, data: bytes | bytearray | memoryview, *, more: bool = False) -> int:
        """Queue bytes for sending; return how many fit in the send buffer (C1).

        ``more`` (MSG_MORE) says more data follows: a partial last segment is held, as
        under TCP_CORK, until a later send without it or :meth:`push`, and the data
        queued so far ends without PSH.
        """
        if self.state not in CAN_SEND or self._fin_pos is not None:
            raise BrokenPipeError(errno.EPIPE, f"cannot send in state {self.state}")
        if isinstance(data, memoryview):
            data = _byte_view(data)  # lengths below count bytes, not items
        cfg = self.config
        if self._send_wait:
            return 0  # asleep until SendSpace (snd_wake_ratio, sk_stream_wait_memory)
        if cfg.snd_skb_overhead is not None:
            n = self._queue_skbs(data, more, cfg.snd_skb_overhead)
        else:
            room = cfg.snd_buf - len(self._buf)
            n = min(room, len(data))
            if n > 0:
                self._buf.append(data if n == len(data) else memoryview(data)[:n])
                self._more = more
                self._poke()
            if n < len(data) or n == room:
                self._send_full = True  # SendSpace will be reported when ACKs free room
        if n < len(data) and cfg.snd_wake_ratio > 0:
            self._send_wait = True
        return n

    def _queue_skbs(self, data: bytes | bytearray | memoryview, more: bool,
                    overhead: int) -> int:
        """send() under Linux's send memory accounting (``snd_skb_overhead``), as
        tcp_sendmsg_locked(): fill the unsent last skb up to the size goal, start a new
        skb only while the memory used (payload plus ``overhead`` per skb) is below
        snd_buf, and transmit every skb that fills before filling the next
        (tcp_push_one()), so the send path can split it (see :meth:`_split_skbs`)."""
        ends = self._skbs()
        goal = self._size_goal()
        total = len(data)
        taken = 0
        output = self.state in _OUTPUT_STATES
        while taken < total:
            data_end = self._buf_pos + len(self._buf)
            start = ends[-2] if len(ends) > 1 else self._buf_pos
            if ends and start >= self._max and data_end - start < goal:
                n = min(goal - (data_end - start), total - taken)  # the unsent tail skb
                ends[-1] = data_end + n
            elif len(self._buf) + overhead * len(ends) < self.config.snd_buf:
                start = data_end
                n = min(goal, total - taken)
                ends.append(data_end + n)
            else:
                break
            self._buf.append(data if n == total else memoryview(data)[taken:taken + n])
            taken += n
            if output and taken < total and data_end + n - start >= goal:
                push, self._push_now = self._push_now, False
                self._more = True  # more of this write follows: no PSH, as Linux
                self._send_data(self._now)
                self._push_now = push
        if taken:
            self._more = more
            self._poke()
        if taken < total or len(self._buf) + overhead * len(ends) >= self.config.snd_buf:
            self._send_full = True
        return taken

    def _skbs(self) -> list[int]:
        """End positions of the send queue's skbs (``snd_skb_overhead``), oldest first."""
        ends = self._skb_ends
        if ends is None:
            ends = self._skb_ends = [self._buf_pos + len(self._buf)] if self._buf else []
        return ends

    def _size_goal(self) -> int:
        """Bytes per skb (Linux tcp_xmit_size_goal()): 64 KB, cut to half the largest
        window the peer offered (tcp_bound_to_half_wnd()), in whole segments."""
        mss = self.eff_mss
        wnd = self._max_snd_wnd
        cutoff = wnd >> 1 if wnd > DEFAULT_PEER_MSS else wnd
        goal = min(GSO_MAX_SIZE, cutoff) if cutoff else GSO_MAX_SIZE
        return max(goal - goal % mss, mss)

    def _split_skbs(self, start: int, end: int) -> None:
        """Sending ``[start, end)`` splits skbs as Linux's tcp_write_xmit() does with
        tso_fragment(): where the send stops inside one, and into TSO packets of
        psh_burst_segments segments counted from each skb's first unsent byte."""
        ends = self._skb_ends
        end = min(end, self._buf_pos + len(self._buf))
        if ends is None or end <= start:
            return
        size = self.config.psh_burst_segments * self.eff_mss
        cuts: list[int] = []
        i = bisect.bisect_right(ends, start)
        first = ends[i - 1] if i else self._buf_pos
        while i < len(ends) and first < end:
            last = ends[i]
            piece = max(first, start)
            if piece > first:
                cuts.append(piece)  # an earlier probe sent the head of this skb
            if size:
                cuts.extend(range(piece + size, min(last, end), size))
            if end < last:
                cuts.append(end)
            first = last
            i += 1
        if cuts:
            ends.extend(cuts)
            ends.sort()

    def _wmem_queued(self) -> int:
        """Send memory in use: payload bytes, plus the skb overheads when modelled."""
        overhead = self.config.snd_skb_overhead
        if overhead is None:
            return len(self._buf)
        return len(self._buf) + overhead * len(self._skbs())

    def _writable(self) -> bool:
        """Whether a writer waiting for room is told of it (SendSpace): memory in use
        below snd_buf and, with snd_wake_ratio, free memory at least that fraction of
        it (Linux sk_stream_write_space(): sk_stream_wspace() >= sk_stream_min_wspace())."""
        queued = self._wmem_queued()
        limit = self.config.snd_buf
        return queued < limit and limit - queued >= int(queued * self.config.snd_wake_ratio)

    @property
    def send_space(self) -> int:
        """Bytes :meth:`send` would take now (so that taking them fills the buffer and
        SendSpace follows): the free send buffer; with ``snd_skb_overhead``, the room
        in the unsent last skb plus the whole skbs that may still be started; 0 while a
        short send waits for SendSpace."""
        if self._send_wait:
            return 0
        cfg = self.config
        overhead = cfg.snd_skb_overhead
        if overhead is None:
            return cfg.snd_buf - len(self._buf)
        ends = self._skbs()
        goal = self._size_goal()
        room = 0
        queued = self._wmem_queued()
        if ends:
            start = ends[-2] if len(ends) > 1 else self._buf_pos
            if start >= self._max:
                room = max(goal - (ends[-1] - start), 0)
                queued += room
        if queued < cfg.snd_buf:
            room += -(-(cfg.snd_buf - queued) // (goal + overhead)) * goal
        return room

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
        if data and self._rmem_segs:
            self._rcv_release()
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
            if free - offered >= self._sws_threshold() and free >= 2 * offered:
                if offered < 4 * self.eff_mss or self.config.delayed_ack <= 0:
                    self._ack_now = True
                    self._poke()
                elif self._dack_at is None:
                    self._dack_at = self._now + self.config.delayed_ack
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
        if config.keepalive and self.state in (S_ESTABLISHED, S_CLOSE_WAIT):
            if self._ka_at is None:
                self._ka_at = now + config.keepalive_idle
        elif not config.keepalive:
            self._ka_at = None
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
        if self._ka_at is not None:
            self._ka_at = now + self.config.keepalive_idle
            self._ka_probes = 0
        if self._tr is not None:
            self._trace_changes(now)

    def receive_data_fast(self, seqno: int, ackno: int, window: int, tsval: int | None,
                          payload: memoryview, now: float) -> bool:
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
        if (self.state not in _PREDICTED_STATES or self._tr is not None or end == rnxt
                or seqno != (self.irs + rnxt) & MASK
                or ackno != (self.iss + self._una) & MASK
                or end > self._radv or window << self.snd_wscale != self.snd_wnd
                or self._wl1 > rnxt or self._ooo or self._rfin_pos is not None or self._orphan
                or self._in_recovery or self._persisting
                or self._sb.sacked_bytes or self._sb.lost_bytes
                or self.config.rcv_truesize_headroom is not None):  # (Linux memory model)
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
        if self._ka_at is not None:
            self._ka_at = now + self.config.keepalive_idle
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
                self._fail(now, errno.ECONNREFUSED, "connection refused (RST in answer to SYN)",
                           "refused")
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
            self._rto_at = None
            if self.rtt.backoff:
                self.rtt.reset_for_data()
            self._wl1, self._wl2 = 0, self._una
            self._set_state(S_ESTABLISHED, now)
            self._ack_now = True
            if seg.payload:
                self._accept_data(1, seg.payload, now, seg.ecn)
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

        # PAWS (RFC 7323 §5.3 R1): an older timestamp marks an old duplicate (C16).
        if (self.ts_ok and seg.tsval is not None and not flags & RST
                and seq.lt(seg.tsval, self.ts_recent)):
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
            if (ok and wnd and pos + dlen > rnxt + wnd and self._rbuf
                    and self.config.accept_beyond_window):
                ok = False  # Linux tcp_sequence(): past the edge while data waits unread
        if not ok:
            self.stats["unacceptable_in"] += 1
            if flags & RST:
                self._drop(now, "rst_out_of_window")
                return
            if flags & SYN:  # RFC 5961 §4.2: any SYN, whatever its sequence number
                self._drop(now, "syn_challenge")
                self._challenge_ack(now)
                return
            if st is S_TIME_WAIT and flags & FIN:
                self._trace(now, "note", concept="C13",
                            text="retransmitted FIN in TIME-WAIT: ACK it again, restart 2*MSL")
                self._tw_at = now + 2 * self.config.msl
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
        if self.ts_ok and seg.tsval is not None and pos <= self._last_ack_sent \
                and not seq.lt(seg.tsval, self.ts_recent):
            self.ts_recent = seg.tsval
            self.ts_recent_age = now

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

        # ECN (RFC 3168 §6.1.3): CWR from the sender ends our echo of congestion.
        if flags & CWR and self.ecn_ok:
            self._ece_echo = False

        # Seventh: segment text.
        if dlen:
            if st in CAN_RECEIVE:
                if self._orphan:
                    # C24: the application is gone; data for it is answered with RST.
                    why = "data for a closed socket (C24)"
                    if self.config.orphan_rst_from_ack:
                        # Linux: drop the connection, then answer as for none (RFC 9293
                        # §3.10.7.1 form <SEQ=SEG.ACK><CTL=RST>).
                        self._send_rst_raw(now, seg.ack, 0, RST, why=why)
                    else:
                        self._send_rst(now, self._max, why=why)
                    self._set_state(S_CLOSED, now, "abort")
                    return
                self._accept_data(pos, seg.payload, now, seg.ecn)
            else:
                self._drop(now, "data_after_fin")
        # Eighth: FIN (held until every byte before it has arrived).
        if flags & FIN:
            fin_pos = pos + dlen
            if fin_pos < self._radv or fin_pos == self._rnxt:
                self._rfin_pos = fin_pos
                if fin_pos != self._rnxt:
                    self._ack_now = True  # held FIN: duplicate ACK now; else _check_fin
                elif not dlen and self._rcv_mem_over():
                    self._ack_now = True
        if self._rfin_pos is not None:
            self._check_fin(now)

    def _reply_unacceptable(self, slen: int, now: float) -> None:
        """RFC 9293: reply <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.  Replies to pure ACKs
        are rate limited (as Linux's tcp_invalid_ratelimit) so two confused ends
        cannot ACK each other forever; replies to data are not (its sender needs them)."""
        if slen == 0 and now - self._last_oow_ack < self.config.oow_ack_interval:
            self.stats["oow_acks_suppressed"] += 1
            return
        self._last_oow_ack = now
        self._ack_now = True

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
            self.snd_wnd = seg.window << self.snd_wscale
            self._max_snd_wnd = max(self._max_snd_wnd, self.snd_wnd)
            self._wl1, self._wl2 = pos, ack_pos
            if self.ts_ok and seg.tsecr:
                self._rtt_from_ts(seg.tsecr, now)
                self._rtt_pos = None
            self._una = ack_pos
            self._take_rtt_sample(ack_pos, now)
            self._retries = 0
            self._rto_at = None
            self._set_state(S_ESTABLISHED, now)
            una = self._una
        if ack_pos > self._max or ack_pos < una - max(self._max_snd_wnd, 1):
            # RFC 9293: ACK for data never sent; RFC 5961 §5.2: ACK too old.  Reply with
            # a (rate-limited) challenge ACK and drop.
            self._drop(now, "ack_unsent" if ack_pos > self._max else "ack_too_old")
            self._challenge_ack(now)
            return False
        window = seg.window << self.snd_wscale
        sacked_before = self._sb.sacked_bytes
        delivered: list[SentSeg] = []
        dsack = False
        if ack_pos > una:
            delivered = self._on_new_ack(ack_pos, seg, now)
        if self.sack_ok and seg.sack_blocks:
            dsack = self._process_sack(seg.sack_blocks, delivered)
        is_dup = (ack_pos == una and not seg.payload and not seg.flags & (SYN | FIN)
                  and self._max > una and window == self.snd_wnd and not self._persisting)
        if is_dup:
            self.stats["dup_acks_in"] += 1
            self._dupacks += 1
        # Send window update (RFC 9293 §3.10.7.4, SND.WL1/SND.WL2 rule).
        if self._wl1 < pos or (self._wl1 == pos and self._wl2 <= ack_pos):
            opened = self.snd_wnd == 0 and window > 0
            self.snd_wnd = window
            self._wl1, self._wl2 = pos, ack_pos
            if window > self._max_snd_wnd:
                self._max_snd_wnd = window
            if opened:
                self._window_opened(now, window)
        if self._persisting:
            self._retries = 0  # the peer answers our probes: keep waiting (RFC 9293 §3.8.6.1)
        self._detect_losses(now, ack_pos - una, self._sb.sacked_bytes - sacked_before,
                            is_dup, delivered, dsack)
        if self.ecn_ok and seg.flags & ECE:
            self._on_ece(now)  # after loss detection: one reduction per event
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
            ends = self._skb_ends
            if ends is not None:  # wholly acknowledged skbs are freed (tcp_clean_rtx_queue)
                del ends[:bisect.bisect_right(ends, self._buf_pos)]
            if self._send_full and self._writable():
                self._wake_writer()
        done = self._sb.ack(ack_pos)
        if self._probe is not None and self._probe.end <= ack_pos:
            self._probe = None
        self._delivered += ack_pos - old_una
        if self.ts_ok and seg.tsecr:
            self._rtt_from_ts(seg.tsecr, now)
        else:
            self._take_rtt_sample(ack_pos, now)
        self._retries = 0
        self._progress_at = now
        if self._tlp_end is not None and ack_pos >= self._tlp_end:
            self._tlp_done(now)
        if self._max > ack_pos:
            self._rto_at = self._rto_deadline(now)  # RFC 6298 §5.3
            self._arm_tlp(now)
        else:
            self._rto_at = self._tlp_at = self._rack_at = None
        if ack_pos >= self._round_end:
            self._round_end = self._max
            self._cc.on_round_start(now)
            self._update_rate(now)
        return done

    def _wake_writer(self) -> None:
        """Report SendSpace to a writer that found the send buffer full."""
        self._send_full = self._send_wait = False
        self._events.append(SendSpace(self))

    def _window_opened(self, now: float, window: int) -> None:
        """The peer's window reopened after zero (C4): leave persist mode."""
        self._persisting = False
        probe = self._probe
        if probe is not None and probe.end > self._una and probe is self._sb.last():
            # The probe byte was refused; withdraw it so sending resumes at SND.UNA
            # instead of leaving a one-byte hole (RFC 9293 §3.8.6.1).
            self._sb.pop_last()
            self._max = probe.start
        self._probe = None
        self.rtt.backoff = 0
        if self._max == self._una:
            self._rto_at = None
        self._trace(now, "note", concept="C4", text=f"peer window opened to {window}")

    # ------------------------------------------------------------ loss detection
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
            newly = self._sb.sack(max(lpos, una), rpos)
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

    # -------------------------------------------------------------- receiving data
    def _accept_data(self, pos: int, payload: bytes | memoryview, now: float,
                     ecn: int = 0) -> None:
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
        if end > right:
            if cfg.accept_beyond_window and right > rnxt and not self._rbuf:
                # Linux keeps it whole (tcp_sequence(), tcp_data_queue()); out of order,
                # only while receive memory is not over rcv_buf (tcp_try_rmem_schedule()).
                used = (self._rmem if cfg.rcv_truesize_headroom is not None
                        else self._ooo.nbytes)
                if pos > rnxt and used > cfg.rcv_buf:
                    self._drop(now, "out_of_window", concept="C14")
                    self._ack_now = True
                    return
            else:  # trim what lies past the window we offered (RFC 9293 §3.10.7.4)
                payload = payload[:right - pos]
                end = right
        if pos < rnxt:  # trim what we already have
            if self.sack_ok:
                self._sackgen.duplicate(pos, min(end, rnxt))
            payload = payload[rnxt - pos:]
            pos = rnxt
        if end <= pos:
            self._ack_now = True
            return
        if self.sack_ok and self._ooo:
            dup = self._ooo.first_overlap(pos, end)
            if dup is not None:
                self._sackgen.duplicate(*dup)  # RFC 2883: part of it was already held
        if pos == rnxt:
            self._rbuf.append(payload)
            self._rnxt = end
            if cfg.rcv_truesize_headroom is not None:
                self._rcv_charge(end, size)
            if self._ooo:
                self._ack_now = True  # filling a hole: ACK at once (RFC 5681 §4.2)
                while (more := self._ooo.pop_ready(self._rnxt)) is not None:
                    self._rbuf.append(more)
                    self._rnxt += len(more)
            self._delivered_in_order(self._rnxt - rnxt, len(payload), now)
        else:
            self.stats["ooo_segs_in"] += 1
            if (len(self._ooo) >= self._ooo_limit()
                    and self._ooo.adds_block(pos, end)):
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
                if cfg.rcv_truesize_headroom is not None:
                    self._rcv_charge(end, size)
                if self.sack_ok:
                    self._sackgen.arrived(pos)
            self._trace(now, "note", concept="C14",
                        text=f"out-of-order segment held ({len(self._ooo)} blocks)")
            self._ack_now = True  # duplicate ACK tells the sender of the hole

    def _rcv_charge(self, end: int, size: int) -> None:
        """Charge one kept segment of ``size`` bytes ending at ``end`` to the receive
        memory (``rcv_truesize_headroom``; Linux sk_rmem_alloc), and measure the
        payload/truesize ratio on a segment of at least one MSS (tcp_measure_rcv_mss()).
        If the memory was already over rcv_buf, ACK at once (:meth:`_rcv_mem_over`).

        Every path that keeps a received segment must call this (when that knob is
        set) with the segment's full payload length: the skb keeps all of it."""
        headroom = self.config.rcv_truesize_headroom
        assert headroom is not None
        if self._rmem > self.config.rcv_buf:
            self._ack_now = True
        truesize = (1 << (size + headroom - 1).bit_length()) + SKB_STRUCT
        self._rmem += truesize
        segs = self._rmem_segs
        if segs is None:
            segs = self._rmem_segs = deque()
        if not segs or segs[-1][0] <= end:
            segs.append((end, truesize))
        else:  # out of order: keep the list sorted by end for _rcv_release
            i = len(segs)
            while i and segs[i - 1][0] > end:
                i -= 1
            segs.insert(i, (end, truesize))
        if size >= self.eff_mss:
            self._scaling = max((size << 8) // truesize, 1)

    def _rcv_mem_over(self) -> bool:
        """Receive memory already over rcv_buf (``rcv_truesize_headroom``): Linux's
        tcp_try_rmem_schedule() fails for anything queued now and asks for an ACK at
        once (ICSK_ACK_NOW), which also carries a zero window."""
        return (self.config.rcv_truesize_headroom is not None
                and self._rmem > self.config.rcv_buf)

    def _rcv_release(self) -> None:
        """Free the truesize of segments the application has read to the end (Linux
        frees an skb when tcp_recvmsg() has consumed all of it)."""
        segs = self._rmem_segs
        assert segs is not None
        read = self._rnxt - len(self._rbuf) - (1 if self.eof_received else 0)
        while segs and segs[0][0] <= read:
            self._rmem -= segs.popleft()[1]

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
            events.append(DataReceived(self, n))
        self._ack_pending += 1
        if self._quickack > 0:
            self._quickack -= 1
            self._ack_now = True
        if (self.config.delayed_ack == 0 or self._ack_pending >= 2
                or seg_len > self.eff_mss):
            self._ack_now = True
        elif self._dack_at is None:
            self._dack_at = now + self.config.delayed_ack

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
            if self._dack_at is None:
                self._dack_at = now + cfg.delayed_ack
        else:
            self._ack_now = True
        self._events.append(EndOfStream(self))
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
        self._rto_at = self._fw2_at = self._dack_at = self._tlp_at = self._rack_at = None
        self._ka_at = None
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
            # The MSS is the MTU less 40 (RFC 9293 §3.7.1); the timestamp option comes
            # out of it as out of the negotiated one (RFC 6691 §2).
            mss = next_hop_mtu - 40 - (TS_OPTION_LEN if self.ts_ok else 0)
            if next_hop_mtu >= 128 and mss < self.eff_mss:
                self.eff_mss = mss
                self._cc.mss = mss
                self._trace(now, "note", concept="", text=f"path MTU {next_hop_mtu}: MSS "
                            f"lowered to {mss}")
                self._resend_oversized(now)
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

    def _resend_oversized(self, now: float) -> None:
        """After the MSS fell: the segments in flight that were too big for the path were
        dropped by the router that said so (offloaded, any record longer than the new
        MSS went out in pieces of the old one).  Resend them now, cut to the new size,
        without a congestion response (RFC 1191 §6.5 permits the immediate resend; the
        loss is not congestion; as Linux's ``tcp_simple_retransmit``)."""
        mss = self.eff_mss
        marked = 0
        for s in self._sb.live():
            if s.end - s.start - (1 if s.fin else 0) > mss and self._sb.mark_lost(s):
                marked += 1
        if marked:
            self._pmtu_mark = self._max
            self._trace(now, "note", concept="C18",
                        text=f"{marked} segment(s) larger than the new MSS resent")
            self._poke()

    # ----------------------------------------------------------- segment output
    def segments_to_send(self, now: float) -> list[Segment]:
        """Run the send path and return every segment it wants on the wire now."""
        self._now = now
        if self.state in _OUTPUT_STATES:
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
        if self._in_recovery:
            allow = self._prr_allow
        else:
            allow = self._cc.cwnd - self._pipe()
            if not self.sack_ok and self._dupacks in (1, 2):
                allow += self._dupacks * mss  # limited transmit (RFC 3042)
        seg_max = self.config.max_segment_payload or mss
        seg_max = max(seg_max - seg_max % mss, mss)  # whole MSS pieces once offloaded
        # 1. Retransmissions, oldest first: only ever segments that were sent.  A record
        # larger than the window allows (a 64 KB offloaded one after a timeout, or one
        # sent before the MSS fell) is cut first, so the resend fits.
        if sb.lost_bytes:
            for s in sb.lost_segments():
                if allow <= 0:
                    break
                limit = min(seg_max, max(allow - allow % mss, mss))
                if s.end - s.start - (1 if s.fin else 0) > limit:  # the FIN rides along
                    sb.split(s, s.start + limit)
                allow -= self._resend(s, now, "retransmit: lost" if self._in_recovery
                                      else "retransmit")
        # 2. New data, and the FIN after it.
        buf_pos = self._buf_pos
        data_end = buf_pos + len(self._buf)
        fin_pos = self._fin_pos
        rwnd_end = self._una + self.snd_wnd
        sent_new = False
        push = self._push_now
        self._push_now = False
        # Segments limited transmit sends on a duplicate ACK close no burst (Linux).
        limited = self._dupacks > 0 and not self._in_recovery
        burst = 0
        first_new = self._max
        while True:
            nxt = self._max
            if nxt < data_end:
                room = min(rwnd_end - nxt, data_end - nxt, seg_max)
                if room <= 0:
                    break
                n = room
                if n > allow:
                    if allow < mss:
                        break
                    n = allow - allow % mss
                end = nxt + n
                # Sender SWS avoidance (RFC 9293 §3.8.6.2.1): no small segment while more
                # queued data waits for window, unless half the peer's max window fits.
                if n < mss and end < data_end and n < self._max_snd_wnd // 2:
                    break
                # Nagle (RFC 9293 §3.7.4) unless TCP_NODELAY; TCP_CORK and MSG_MORE hold
                # a partial last segment even with nothing in flight.  push() overrides.
                if (n < mss and not push and not (fin_pos is not None and end == data_end)
                        and ((not self.config.nodelay and self._max > self._una)
                             or (end == data_end and (self.config.cork or self._more)))):
                    break
                more = min(rwnd_end - end, data_end - end)
                burst_end = False
                if self.config.psh_every_burst and not limited:
                    burst += 1
                    chunk = self.config.psh_burst_segments if self.config.nodelay else 0
                    burst_end = (more <= 0 or allow - n < min(mss, more)
                                 or (chunk > 0 and burst % chunk == 0))
                held = end == data_end and self._more and fin_pos is None  # MSG_MORE
                self._send_new(nxt, end, end == data_end and not held, now,
                               burst_end=burst_end and not held)
                allow -= n
                sent_new = True
            elif fin_pos is not None and nxt == fin_pos:
                self._send_new(nxt, nxt, True, now)
                sent_new = True
            else:
                break
        if self._in_recovery:
            self._prr_allow = max(allow, 0)
        if sent_new and self._skb_ends is not None:
            self._split_skbs(first_new, self._max)
        # 3. Timers: retransmission, tail loss probe, persist.
        if self._max > self._una:
            if self._rto_at is None:
                self._rto_at = self._rto_deadline(now)
            if sent_new:
                self._arm_tlp(now)  # RFC 8985 §7.2: (re)schedule on each new send
        elif self._max < data_end and self._rto_at is None:
            # Window closed or too small to use (SWS): the persist timer will probe it
            # or send what fits (RFC 9293 §3.8.6.1 and §3.8.6.2.1 override).
            self._persisting = self.snd_wnd == 0
            self._rto_at = self._rto_deadline(now)

    def _send_new(self, start: int, end: int, last: bool, now: float, why: str = "",
                  burst_end: bool = False) -> None:
        """Send data ``[start, end)`` for the first time, with FIN if it ends the stream."""
        off = start - self._buf_pos
        flags = ACK
        fin = last and self._fin_pos is not None
        if (last or burst_end) and end > start:
            flags |= PSH
        if fin:
            flags |= FIN
        seg = self._make(flags, start, self._payload(off, end - start), now)
        if self.ecn_ok and end > start and not why.startswith("zero-window"):
            seg.ecn = ECT0  # RFC 3168 §6.1.2: new data is ECN-capable
            if self._cwr_pending:
                seg.flags |= CWR
                self._cwr_pending = False
        stop = end + (1 if fin else 0)
        if self._max == self._una:
            self._progress_at = now  # data goes outstanding: the user timeout starts
        self._sb.add(start, stop, now, fin)
        if self._rtt_pos is None and not self.ts_ok:
            self._rtt_pos, self._rtt_time = stop, now
        self.stats["bytes_sent"] += end - start
        if self._in_recovery:
            self._prr_out += end - start
        self._emit(seg, now, why)
        self._max = stop

    def _resend(self, s: SentSeg, now: float, why: str, *, count: bool = True) -> int:
        """Retransmit one recorded segment (C17, C18); return its length."""
        data_end = min(s.end, self._buf_pos + len(self._buf))
        off = s.start - self._buf_pos
        payload = self._payload(off, data_end - s.start) if data_end > s.start else b""
        flags = ACK | (FIN if s.fin else 0)
        if payload and data_end == self._buf_pos + len(self._buf):
            flags |= PSH
        self._sb.retransmitted(s, now)
        if count:
            self.stats["retransmits"] += 1
        self._rtt_pos = None  # Karn's rule (RFC 6298 §3)
        if self._in_recovery:
            self._prr_out += len(payload) or 1
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
        seg = Segment(self.local_port, self.remote_port, (self.iss + pos) & MASK, ack, flags,
                      window, payload)
        if self.ts_ok:
            seg.tsval = self._ts_clock(now)
            seg.tsecr = self.ts_recent
        if (self.sack_ok and flags & ACK and not flags & (SYN | RST)
                and (self._ooo or self._sackgen.pending)):
            blocks = self._sackgen.blocks(self._ooo, self._rnxt, 3 if self.ts_ok else 4)
            if blocks:
                irs = self.irs
                seg.sack_blocks = tuple(((irs + a) & MASK, (irs + b) & MASK) for a, b in blocks)
        return seg

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
        right = rnxt + self._offerable(syn)
        if right - self._radv >= self._sws_threshold() or self._radv < rnxt:
            self._radv = max(right, self._radv)
        shift = 0 if syn else self.rcv_wscale
        field = min((max(self._radv - rnxt, 0) + (1 << shift) - 1) >> shift, 65535)
        self._radv = rnxt + (field << shift)
        return field

    def _offerable(self, syn: bool = False) -> int:
        """The window we could offer now: free buffer, capped at what the header can
        carry (65535 << shift), in whole segments if configured.

        With ``rcv_truesize_headroom`` (Linux __tcp_select_window()): the free receive
        memory scaled by the payload/truesize ratio (tcp_space()), rounded down to whole
        segments, so 0 below one segment; on a SYN to our own MSS, as
        tcp_select_initial_window() does."""
        cfg = self.config
        if cfg.rcv_truesize_headroom is None:
            free = max(cfg.rcv_buf - len(self._rbuf), 0)
            if cfg.window_in_segments and free >= self.eff_mss:
                free -= free % self.eff_mss  # round first, then cap (tcp_select_initial_window)
            return min(free, 65535 << self.rcv_wscale)
        free = (max(cfg.rcv_buf - self._rmem, 0) * self._scaling) >> 8
        if cfg.window_in_segments:
            mss = cfg.mss - (TS_OPTION_LEN if self.ts_ok else 0) if syn else self.eff_mss
            mss = max(min(mss, (cfg.rcv_buf * self._scaling) >> 8), 1)
            free -= free % mss
        return min(free, 65535 << self.rcv_wscale)

    def _sws_threshold(self) -> int:
        if self.config.rcv_truesize_headroom is not None:
            return 1  # Linux: whole segments from RCV.NXT are its SWS avoidance
        return max(min(self.config.rcv_buf // 2, self.eff_mss), 1)

    def _emit(self, seg: Segment, now: float, why: str) -> None:
        if seg.flags & ACK:
            self._ack_now = False
            self._ack_pending = 0
            self._dack_at = None
            self._last_ack_sent = self._rnxt
        self.stats["segs_out"] += 1
        self._out.append(seg)
        if self._tr is not None:
            self._trace_seg(now, "out", seg, why)

    def _send_rst(self, now: float, pos: int, *, why: str) -> None:
        """Send <SEQ=pos><ACK=RCV.NXT><CTL=RST,ACK>; an RST is never retransmitted (C19)."""
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
        if now - self._challenge_window >= 1.0:
            self._challenge_window = now
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            self.stats["challenge_acks_suppressed"] += 1
            return
        self._challenge_count += 1
        self.stats["challenge_acks"] += 1
        self._emit(self._make(ACK, self._max, b"", now), now, "challenge ACK (RFC 5961)")

    # ------------------------------------------------------------------ timers
    def next_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must be called."""
        best: float | None = None
        for t in (self._rto_at, self._dack_at, self._tw_at, self._fw2_at, self._rack_at,
                  self._tlp_at, self._ka_at):
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
        if self._rack_at is not None and now >= self._rack_at:
            self._rack_at = None
            self._trace(now, "timer", timer="rack_reorder")
            self._rack_detect(now)
            if self._sb.lost_bytes and not self._in_recovery:
                self._enter_recovery(now)
        if self._tlp_at is not None and now >= self._tlp_at:
            self._tlp_at = None
            self._send_tlp(now)
        if self._rto_at is not None and now >= self._rto_at:
            self._rto_at = None
            self._on_rto(now)
        if self._ka_at is not None and now >= self._ka_at:
            self._on_keepalive(now)
        if self._tr is not None:
            self._trace_changes(now)

    def _send_tlp(self, now: float) -> None:
        """RFC 8985 §7.3: probe the tail: new data if allowed, else the last segment."""
        if self._max <= self._una or self._in_recovery:
            return
        self.stats["tlp_probes"] += 1
        data_end = self._buf_pos + len(self._buf)
        if self._max < data_end and self._una + self.snd_wnd > self._max:
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
        self._rto_at = self._rto_deadline(now)

    def _on_rto(self, now: float) -> None:
        """Retransmission timer expiry (RFC 6298 §5.4-5.6), also the persist timer."""
        st = self.state
        cfg = self.config
        if st is S_SYN_SENT or st is S_SYN_RECEIVED:
            self._retries += 1
            self.stats["rto_fired"] += 1
            self.rtt.back_off()
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
        outstanding = self._max - self._una
        data_end = self._buf_pos + len(self._buf)
        if outstanding <= 0 and self._max >= data_end:
            return  # nothing left to time
        self._retries += 1
        if cfg.user_timeout is not None and self._max > self._una \
                and now - self._progress_at >= cfg.user_timeout:
            self._fail(now, errno.ETIMEDOUT, f"user timeout: no acknowledgement for "
                       f"{cfg.user_timeout:g} s (RFC 5482)", "timeout")
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
        if only_probe and self.snd_wnd < self.eff_mss and (self._max < data_end or probe):
            self._persist(now)
            return
        self.stats["rto_fired"] += 1
        concept = "C17" if self._fin_pos is not None and self._una == self._fin_pos else "C18"
        self._trace(now, "timer", timer="rto", concept=concept, retries=self._retries,
                    rto=self.rtt.rto)
        self._cc.on_timeout(self._pipe(), now)
        self._in_recovery = False
        self._dupacks = 0
        self._recover = self._max  # RFC 6582 §4: no fast retransmit for pre-timeout losses
        self._rtt_pos = None  # Karn
        self._tlp_at = self._rack_at = None
        self._tlp_end = None
        self._sb.mark_all_lost(forget_sacks=True)  # RFC 2018 §8, RFC 6675 §5.1
        if self.ecn_ok:
            self._ecn_recover = self._max
            self._cwr_pending = True
        self._trace(now, "cc", event="rto", cwnd=self._cc.cwnd, ssthresh=self._cc.ssthresh)
        self._send_data(now)
        if self._rto_at is None:
            self._rto_at = self._rto_deadline(now)

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
        self._trace(now, "timer", timer="persist", concept="C4", retries=self._retries,
                    rto=self.rtt.rto)
        probe = self._probe
        if probe is not None and probe.end > self._una:
            self._resend(probe, now, "zero-window probe", count=False)
        else:
            data_end = self._buf_pos + len(self._buf)
            start = self._max
            n = max(min(self.snd_wnd - (start - self._una), data_end - start), 1)
            zero = self.snd_wnd == 0
            self._send_new(start, start + n, start + n == data_end, now,
                           "zero-window probe" if zero else "persist: send what fits")
            self._probe = self._sb.last() if zero else None
        self._rto_at = self._rto_deadline(now)

    def _on_keepalive(self, now: float) -> None:
        """Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): an ACK with SEG.SEQ = SND.NXT-1."""
        cfg = self.config
        if self.state not in (S_ESTABLISHED, S_CLOSE_WAIT):
            self._ka_at = None
            return
        if self._max > self._una or self._buf:
            self._ka_at = now + cfg.keepalive_idle  # data in flight: the RTO watches
            return
        if self._ka_probes >= cfg.keepalive_count:
            self._fail(now, errno.ETIMEDOUT,
                       f"connection timed out: {cfg.keepalive_count} keepalive probes "
                       "unanswered (peer gone)", "timeout")
            return
        self._ka_probes += 1
        self.stats["keepalives"] += 1
        self._trace(now, "timer", timer="keepalive", concept="C3", retries=self._ka_probes,
                    rto=cfg.keepalive_interval)
        probe = self._make(ACK, self._max - 1, b"", now)
        self._emit(probe, now, "keepalive probe")
        self._ka_at = now + cfg.keepalive_interval

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
                self._ka_at = now + self.config.keepalive_idle
        elif new is S_CLOSED:
            self._rto_at = self._dack_at = self._tw_at = self._fw2_at = None
            self._rack_at = self._tlp_at = self._ka_at = None
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

    _TIMERS = (("rto", "_rto_at"), ("delayed_ack", "_dack_at"), ("time_wait", "_tw_at"),
               ("fin_wait_2", "_fw2_at"), ("rack_reorder", "_rack_at"), ("tlp", "_tlp_at"),
               ("keepalive", "_ka_at"))

    def _trace_changes(self, now: float) -> None:
        """Trace timers set or cancelled and congestion-window changes since the last
        call (issue: every timer set and every cwnd/ssthresh change is in the trace)."""
        seen = self._traced
        if seen is None:  # created on first use: untraced connections never need it
            seen = self._traced = {}
        for name, attr in self._TIMERS:
            at = getattr(self, attr)
            if seen.get(name) != at:
                seen[name] = at
                if at is None:
                    self._trace(now, "timer_cancel", timer=name)
                else:
                    self._trace(now, "timer_set", timer=name, at=at, after=at - now,
                                rto=self.rtt.rto)
        cc = self._cc
        if seen.get("cwnd") != cc.cwnd or seen.get("ssthresh") != cc.ssthresh:
            seen["cwnd"], seen["ssthresh"] = cc.cwnd, cc.ssthresh
            self._trace(now, "cwnd", cwnd=cc.cwnd, ssthresh=cc.ssthresh,
                        slow_start=cc.in_slow_start, in_recovery=self._in_recovery,
                        pipe=self._pipe())

    def _trace_seg(self, now: float, direction: str, seg: Segment, why: str) -> None:
        assert self._tr is not None
        rec: dict[str, Any] = {
            "t": now, "ev": "seg", "dir": direction, "conn": self.name, "flags": seg.flags,
            "seq": seg.seq, "ack": seg.ack, "len": len(seg.payload), "win": seg.window,
            "mss": seg.mss, "why": why, "state": self.state.value, "iss": self.iss,
            "irs": self.irs}
        shift = 0 if seg.flags & SYN else (self.rcv_wscale if direction == "out"
                                             else self.snd_wscale)
        rec["wnd"] = seg.window << shift  # the window in bytes (RFC 7323 §2.3)
        if seg.sack_blocks:
            rec["sack"] = [list(b) for b in seg.sack_blocks]
        if seg.tsval is not None:
            rec["tsval"], rec["tsecr"] = seg.tsval, seg.tsecr
        if seg.wscale is not None:
            rec["wscale"] = seg.wscale
        if seg.sack_permitted:
            rec["sack_permitted"] = True
        if seg.ecn:
            rec["ecn"] = seg.ecn
        if direction == "out" and seg.payload:
            rec["cwnd"] = self._cc.cwnd
        self._tr(rec)

    # ------------------------------------------------------------- inspection
    @property
    def name(self) -> str:
        """``local:port>remote:port``, as traces name the connection."""
        name = self._name
        if name is None:
            name = self._name = (f"{_ip(self.local_ip)}:{self.local_port}>"
                                 f"{_ip(self.remote_ip)}:{self.remote_port}")
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
    def congestion(self) -> congestion.CongestionControl:
        return self._cc

    def info(self) -> dict[str, Any]:
        """A snapshot in the spirit of Linux ``tcp_info``."""
        r = self.rtt
        sb = self._sb
        return {
            "state": self.state.value, "snd_una": self.snd_una, "snd_nxt": self.snd_nxt,
            "rcv_nxt": self.rcv_nxt, "snd_wnd": self.snd_wnd, "rcv_wnd": self.rcv_wnd,
            "mss": self.eff_mss, "peer_mss": self.peer_mss, "srtt": r.srtt,
            "rttvar": r.rttvar, "rto": r.rto, "min_rtt": None if self._min_rtt == math.inf
            else self._min_rtt, "backoff": r.backoff, "cwnd": self._cc.cwnd,
            "ssthresh": self._cc.ssthresh, "congestion_control": self._cc.name,
            "unacked": self._max - self._una, "sacked": sb.sacked_bytes, "lost": sb.lost_bytes,
            "pipe": self._pipe(), "in_recovery": self._in_recovery,
            "delivery_rate": self.delivery_rate, "reordering_seen": self._reordering_seen,
            "wscale": (self.snd_wscale, self.rcv_wscale), "timestamps": self.ts_ok,
            "sack": self.sack_ok, "ecn": self.ecn_ok, **self.stats.full(),
        }

    def __repr__(self) -> str:
        return f"<Connection {self.name} {self.state.value}>"


def _byte_view(data: memoryview) -> memoryview:
    """``data`` as a flat view of bytes (a view of ``array('I')`` counts items)."""
    view = memoryview(data)
    if view.ndim == 1 and view.itemsize == 1 and view.format == "B":
        return view
    return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())


def _covers(block: tuple[int, int], left: int, right: int) -> bool:
    """RFC 2883 §4: the first block lies inside the second (a D-SACK above the ACK)."""
    return seq.le(block[0], left) and seq.le(right, block[1])


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
