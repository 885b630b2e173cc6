"""The frame every part of :class:`~synack.tcp.connection.Connection` is written on: the
variables of the transmission control block (RFC 9293 §3.3.1), as slots with their types,
and the methods one part calls in another, declared for the type checker only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from ..wire.segment import Segment
    from .config import TcpConfig
    from .congestion import CongestionControl
    from .conn_const import Tracer
    from .connection import Connection
    from .events import Event
    from .loss_state import CaState, LossState
    from .memory import RfcMemory
    from .pacing import Pacer
    from .prr import Prr
    from .rack import Rack
    from .rate_sample import RateSampler
    from .reassembly import Reassembly
    from .recvbuf import RecvBuffer
    from .rtt import RttEstimator
    from .sackgen import SackGenerator
    from .scoreboard import Scoreboard, SentSeg
    from .sendbuf import SendBuffer
    from .states import State
    from .stats import ConnStats
    from .timers import Timers


class ConnBase:
    """The TCB's variables, shared by every mixin of Connection; ``Connection.__init__``
    sets them.  Each is declared once, as an annotation here, and the slots are made
    from the annotations: so mypy checks the type of every assignment in every mixin.
    (mypy's own check that an assigned name is a slot needs a literal ``__slots__``;
    tests/tcp/test_conn_fields.py checks instead that every ``self.X =`` in the
    connection's modules names a declared variable, and that ``__init__`` sets each.)
    The variables that belong together have their own owners: the timers
    (:mod:`.timers`), the loss state (:mod:`.loss_state`), PRR (:mod:`.prr`), RACK
    (:mod:`.rack`) and the socket-memory model (:mod:`.memory`)."""

    # --- identity, driver and application hooks ---
    config: TcpConfig
    local_ip: bytes
    local_port: int
    remote_ip: bytes
    remote_port: int
    _name: str | None
    state: State
    passive: bool
    user_data: Any
    soft_error: int | None
    _events: deque[Event]
    _tr: Tracer | None
    _traced: dict[str, Any] | None
    _wake: Callable[[Connection], None] | None
    _out: list[Segment]
    _now: float
    # --- negotiated options (RFC 7323, RFC 2018, RFC 3168) ---
    ws_ok: bool
    snd_wscale: int
    rcv_wscale: int
    ts_ok: bool
    ts_recent: int
    ts_recent_age: float
    _ts_offset: int
    sack_ok: bool
    ecn_ok: bool
    _ece_echo: bool
    _cwr_pending: bool
    # --- send side (positions: 0 = SYN) ---
    iss: int
    _una: int
    _max: int
    _buf: SendBuffer
    _buf_pos: int
    _mem: RfcMemory  # the socket-memory model (memory.py), for both directions
    _fin_pos: int | None
    _sup: int | None  # SND.UP: the position after the last urgent byte, until acked
    _send_full: bool
    _sb: Scoreboard
    snd_wnd: int
    _max_snd_wnd: int
    _wl1: int
    _wl2: int
    peer_mss: int
    eff_mss: int
    rtt: RttEstimator
    _rtt_pos: int | None
    _rtt_time: float
    _min_rtt: float
    _retries: int
    _persisting: bool
    _pmtu_mark: int
    _probe: SentSeg | None
    _dupacks: int
    _ls: LossState
    _prr: Prr | None  # only during fast recovery
    _rack: Rack
    _tlp_end: int | None
    _tlp_retrans: bool
    _tlp_flight: int
    _round_end: int
    _rsr: RateSampler  # delivery-rate samples (draft-ietf-ccwg-bbr §4.1)
    _pacer: Pacer | None  # None: not paced
    _rate_trace_at: int
    _cc: CongestionControl
    _progress_at: float
    # --- receive side (positions: 0 = peer's SYN) ---
    irs: int
    _rnxt: int
    _rbuf: RecvBuffer
    _radv: int
    _ooo: Reassembly
    _sackgen: SackGenerator
    _rfin_pos: int | None
    _rup: int | None  # RCV.UP: the position after the last urgent byte (RFC 6093 §4)
    _ack_now: bool
    _ack_pending: int
    _quickack: int
    _snd_sml: int
    _more: bool
    _eor: list[int] | None  # made on the first MSG_EOR
    _psh_marks: set[int] | None  # made on the first psh_write_end mark
    _pushed_pos: int
    _psh_sent: set[int] | None  # ends of segments sent with PSH (psh_retrans_kept)
    _push_now: bool
    _last_ack_sent: int
    _orphan: bool
    _rd_shut: bool
    # --- timers ---
    _timers: Timers  # every deadline (timers.py)
    _ka_probes: int
    # --- RFC 5961 §7 challenge ACK rate limit ---
    _challenge_window: float
    _challenge_count: int
    _last_oow_ack: float
    stats: ConnStats

    # The slots are the annotations above: each variable is declared once, here.
    __slots__ = ("__weakref__", *__annotations__)

    if TYPE_CHECKING:
        # connection.py
        @property
        def name(self) -> str: ...
        @property
        def eof_received(self) -> bool: ...
        def _accept_peer_syn(self, syn: Segment, now: float) -> None: ...
        def _send_syn(self, now: float, *, retransmit: bool) -> None: ...
        def _set_state(self, new: State, now: float, reason: str | None = None) -> None: ...
        def _fail(self, now: float, err: int, message: str, reason: str) -> None: ...
        def _drop(self, now: float, reason: str, concept: str = "") -> None: ...
        def _poke(self) -> None: ...

        # conn_receive.py
        def _read_pos(self) -> int: ...
        def _urgent_in(self, mark: int, now: float) -> None: ...
        def _accept_data(
            self, pos: int, payload: bytes | memoryview, now: float, ecn: int = 0
        ) -> None: ...
        def _delivered_in_order(self, n: int, seg_len: int, now: float) -> None: ...
        def _check_fin(self, now: float) -> None: ...
        def _enter_time_wait(self, now: float) -> None: ...

        # conn_recovery.py
        def _process_sack(
            self, blocks: tuple[tuple[int, int], ...], delivered: list[SentSeg]
        ) -> bool: ...
        def _detect_losses(
            self,
            now: float,
            acked: int,
            sacked: int,
            is_dup: bool,
            delivered: list[SentSeg],
            dsack: bool,
        ) -> None: ...
        def _rack_detect(self, now: float) -> None: ...
        def _enter_recovery(self, now: float) -> None: ...
        def _maybe_enter_recovery(self, now: float) -> None: ...
        def _ca_move(self, trigger: str, new: CaState, now: float) -> None: ...
        def _pipe(self) -> int: ...
        def _on_ece(self, now: float) -> None: ...
        def _arm_tlp(self, now: float) -> None: ...
        def _tlp_ack(self, ack_pos: int, advanced: bool, dsack: bool, now: float) -> None: ...
        def _take_rtt_sample(self, ack_pos: int, now: float) -> None: ...
        def _rtt_from_ts(self, tsecr: int, now: float) -> None: ...

        # conn_rate.py
        def _rate_ack(
            self, delivered: list[SentSeg], newly: int, ece: bool, now: float
        ) -> None: ...
        def _pace_budget(self, now: float) -> int | None: ...
        def _paced(self, sent: int, held: bool, now: float) -> None: ...

        # conn_output.py
        def _send_data(self, now: float) -> None: ...
        def _send_new(
            self,
            start: int,
            end: int,
            last: bool,
            now: float,
            why: str = "",
            burst_end: bool = False,
        ) -> None: ...
        def _resend(self, s: SentSeg, now: float, why: str, *, count: bool = True) -> int: ...
        def _make(
            self, flags: int, pos: int, payload: bytes | memoryview, now: float
        ) -> Segment: ...
        def _ts_clock(self, now: float) -> int: ...
        def _emit(self, seg: Segment, now: float, why: str) -> None: ...
        def _send_rst(self, now: float, pos: int, *, why: str) -> None: ...
        def _fin_held(self) -> bool: ...
        def _send_rst_raw(
            self, now: float, seq_no: int, ack: int, flags: int, *, why: str
        ) -> None: ...
        def _challenge_ack(self, now: float) -> None: ...
        def _mark_push(self, end: int) -> None: ...
        def _forced_push(self, end: int) -> None: ...

        # conn_timers.py
        def _rto_deadline(self, now: float) -> float: ...

        # conn_trace.py
        def _trace(self, now: float, ev: str, **fields: Any) -> None: ...
        def _trace_changes(self, now: float) -> None: ...
        def _trace_seg(
            self, now: float, direction: Literal["in", "out"], seg: Segment, why: str
        ) -> None: ...
