"""The socket-memory model of one connection: how much its buffers hold and so what it
offers and accepts.

A strategy object the connection holds one of and asks at a few narrow points.  The
default, :data:`RFC` (an :class:`RfcMemory`, shared by every connection: it keeps no
state), gives RFC 9293's answers: the buffers count payload bytes, the window is the
free receive buffer (§3.8.6.2.2), a segment past the window is trimmed to it
(§3.10.7.4).  :class:`LinuxMemory` models what Linux counts instead, one knob of
:class:`~synack.tcp.config.TcpConfig` each (docs/packetdrill.md, "The Linux memory
model"): ``accept_beyond_window`` (tcp_sequence(), tcp_data_queue()),
``rcv_truesize_headroom`` (sk_rmem_alloc, tcp_win_from_space()),
``snd_skb_overhead`` (sk_wmem_queued, tcp_sendmsg_locked(), tso_fragment()) and
``snd_wake_ratio`` (sk_stream_write_space()); a knob left at its default keeps the
RFC answer for its part.  :func:`for_config` picks the model."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .conn_const import _OUTPUT_STATES, DEFAULT_PEER_MSS, GSO_MAX_SIZE, SKB_STRUCT, TS_OPTION_LEN

if TYPE_CHECKING:
    from .config import TcpConfig
    from .conn_base import ConnBase

#: What to do with a segment that ends past the right edge of the window offered.
TRIM, KEEP, DROP = 0, 1, 2


class RfcMemory:
    """RFC 9293's buffers: payload bytes only.  Stateless; every hook does nothing or
    returns the RFC answer."""

    __slots__ = ()

    #: Receive memory counted in truesize: header prediction must step aside.
    counts_truesize = False
    #: A short send() sleeps until SendSpace (never, here).
    send_wait = False

    # ------------------------------------------------------------- receive side
    def refuses_past_window(self, unread: int) -> bool:
        """Is a segment in the window but ending past its edge unacceptable?  No: RFC 9293
        §3.10.7.4 accepts it and keeps the part inside."""
        return False

    def past_window(
        self, pos: int, rnxt: int, right: int, unread: int, ooo_bytes: int, rcv_buf: int
    ) -> int:
        """:data:`TRIM`, :data:`KEEP` or :data:`DROP` for data ``pos..`` ending past the
        edge ``right``: trimmed to the window (RFC 9293 §3.10.7.4)."""
        return TRIM

    def charge(self, end: int, size: int, mss: int, rcv_buf: int) -> bool:
        """A received segment of ``size`` bytes ending at ``end`` is kept; True when an
        ACK must go at once because memory was already over ``rcv_buf``."""
        return False

    def take_quick(self) -> int:
        """Quick ACKs the first data allows (once), or -1: no limit."""
        return -1

    def rcv_over(self, rcv_buf: int) -> bool:
        """Is the receive memory already over ``rcv_buf`` (so a FIN is ACKed at once)?"""
        return False

    def on_read(self, read_pos: Callable[[], int]) -> None:
        """The application read up to ``read_pos()``."""

    def window(
        self, cfg: TcpConfig, unread: int, mss: int, ts_ok: bool, syn: bool, cap: int
    ) -> int:
        """The window that could be offered now: the free buffer (RFC 9293 §3.8.6.2.2),
        in whole segments if configured, at most ``cap``."""
        free = max(cfg.rcv_buf - unread, 0)
        if cfg.window_in_segments and free >= mss:
            free -= free % mss  # round first, then cap (tcp_select_initial_window)
        return min(free, cap)

    def syn_edge(self, field: int) -> int:
        """The window a SYN's ``field`` commits us to (never moved left): the field."""
        return field

    def sws_threshold(self, rcv_buf: int, mss: int) -> int:
        """Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge moves by at least
        min(buffer/2, MSS)."""
        return max(min(rcv_buf // 2, mss), 1)

    # ---------------------------------------------------------------- send side
    def queue(self, conn: ConnBase, data: bytes | bytearray | memoryview, more: bool) -> int:
        """send(): queue what fits in the send buffer; return how much was taken."""
        room = conn.config.snd_buf - len(conn._buf)
        n = min(room, len(data))
        if n > 0:
            conn._buf.append(data if n == len(data) else memoryview(data)[:n])
            conn._more = more
            conn._poke()
        if n < len(data) or n == room:
            conn._send_full = True  # SendSpace will be reported when ACKs free room
        return n

    def send_space(self, conn: ConnBase) -> int:
        """Bytes send() would take now: the free send buffer."""
        return conn.config.snd_buf - len(conn._buf)

    def writable(self, conn: ConnBase) -> bool:
        """Is a writer waiting for room told of it (SendSpace)?  When there is room."""
        return len(conn._buf) < conn.config.snd_buf

    def woken(self) -> None:
        """SendSpace was reported."""

    def on_sent(self, start: int, end: int, buf_pos: int, data_end: int, tso: int) -> None:
        """New data ``[start, end)`` went out (``tso``: bytes per offloaded packet)."""

    def on_acked(self, buf_pos: int) -> None:
        """The send buffer now starts at ``buf_pos``."""


#: The RFC model, shared: it keeps no state.
RFC = RfcMemory()


class LinuxMemory(RfcMemory):
    """Linux's socket memory, each part by its knob (None or 0: the RFC answer)."""

    __slots__ = (
        "advmss",
        "beyond",
        "counts_truesize",
        "headroom",
        "overhead",
        "quick",
        "rcv_mss",
        "rmem",
        "scaling",
        "segs",
        "send_wait",
        "skb_ends",
        "space_max",
        "ssthresh",
        "wake_ratio",
        "wnd",
    )

    def __init__(self, cfg: TcpConfig) -> None:
        self.set_knobs(cfg)
        #: Receive memory charged (sk_rmem_alloc), (end, truesize) of each segment not
        #: yet wholly read, and the payload/truesize ratio in 1/256 (Linux: 50 % at first).
        self.rmem = 0
        self.segs: deque[tuple[int, int]] | None = None
        self.scaling = 128
        #: With rcv_ssthresh: Linux's rcv_ssthresh, rcv_mss, advmss and last window
        #: (tcp_sock.rcv_wnd), set by the first window computed (the SYN's).
        self.ssthresh: int | None = None
        self.rcv_mss = 0
        self.advmss = 0
        self.wnd = 0
        self.quick = -1
        #: End positions of the send queue's skbs, oldest first; built on first use.
        self.skb_ends: list[int] | None = None
        self.send_wait = False

    def set_knobs(self, cfg: TcpConfig) -> None:
        """Take the four knobs from ``cfg`` (at creation, and when reconfigured: the
        memory already counted stays)."""
        self.beyond = cfg.accept_beyond_window
        self.headroom = cfg.rcv_truesize_headroom
        self.counts_truesize = self.headroom is not None
        self.overhead = cfg.snd_skb_overhead
        self.wake_ratio = cfg.snd_wake_ratio
        #: Receive-window slow start (rcv_ssthresh), and tcp_rmem[2] for its growth, when set.
        self.space_max = (
            max(cfg.rcv_buf, cfg.rcv_wscale_space or 0)
            if cfg.rcv_ssthresh and self.headroom is not None
            else 0
        )

    # ------------------------------------------------------------- receive side
    def refuses_past_window(self, unread: int) -> bool:
        """Linux tcp_sequence(): past the edge while data waits unread."""
        return self.beyond and unread > 0

    def past_window(
        self, pos: int, rnxt: int, right: int, unread: int, ooo_bytes: int, rcv_buf: int
    ) -> int:
        """Linux keeps it whole (tcp_sequence(), tcp_data_queue()) when the window is
        open and nothing waits unread; out of order, only while receive memory is not
        over rcv_buf (tcp_try_rmem_schedule())."""
        if not (self.beyond and right > rnxt and not unread):
            return TRIM
        used = self.rmem if self.headroom is not None else ooo_bytes
        return DROP if pos > rnxt and used > rcv_buf else KEEP

    def charge(self, end: int, size: int, mss: int, rcv_buf: int) -> bool:
        """Charge the segment's truesize to the receive memory (Linux sk_rmem_alloc) and
        measure the payload/truesize ratio on one of at least an MSS
        (tcp_measure_rcv_mss()).  Every path that keeps a received segment calls this
        with its full payload length: the skb keeps all of it."""
        headroom = self.headroom
        if headroom is None:
            return False
        over = self.rmem > rcv_buf
        truesize = (1 << (size + headroom - 1).bit_length()) + SKB_STRUCT
        self.rmem += truesize
        segs = self.segs
        if segs is None:
            segs = self.segs = deque()
        if not segs or segs[-1][0] <= end:
            segs.append((end, truesize))
        else:  # out of order: keep the list sorted by end for on_read
            i = len(segs)
            while i and segs[i - 1][0] > end:
                i -= 1
            segs.insert(i, (end, truesize))
        if self.space_max:
            self._measure_grow(size, truesize, mss, rcv_buf)
        elif size >= mss:
            self.scaling = max((size << 8) // truesize, 1)
        return over

    def _measure_grow(self, size: int, truesize: int, mss: int, rcv_buf: int) -> None:
        """Linux tcp_measure_rcv_mss(): a segment of at least rcv_mss and of another size
        sets the payload/truesize ratio and, if that changed, clamps rcv_ssthresh to the
        full space; then tcp_grow_window() for a segment of 128 bytes or more."""
        ss = self.ssthresh
        if ss is None:
            return  # no window offered yet
        rcv_mss = self.rcv_mss
        first = not rcv_mss
        if first:  # tcp_initialize_rcv_mss()
            rcv_mss = self.rcv_mss = max(min(self.advmss, mss, ss // 2, 536), 88)
        if size >= rcv_mss:
            if size != rcv_mss:
                ratio = max((size << 8) // truesize, 1)
                if ratio != self.scaling:
                    self.scaling = ratio
                    ss = min(ss, (rcv_buf * ratio) >> 8)  # tcp_set_window_clamp()
            self.rcv_mss = min(size, self.advmss)
        if first:  # the first data: quick ACKs for half the window (tcp_incr_quickack())
            self.quick = max(self.wnd // (2 * self.rcv_mss), 2)
        if size >= 128:
            ss += self._grow(size, truesize, ss, rcv_buf)
        self.ssthresh = ss

    def _grow(self, size: int, truesize: int, ss: int, rcv_buf: int) -> int:
        """Linux tcp_grow_window(), __tcp_grow_window(): by two segments (at least twice
        the segment) while below the free space, if a segment of this truesize fits the
        window it would take, or would once the window is a power-of-two fraction of
        tcp_rmem[2]; never past the free space."""
        scaling = self.scaling
        room = (min(rcv_buf, max(rcv_buf - self.rmem, 0)) * scaling >> 8) - ss
        if room <= 0:
            return 0
        win = (truesize * scaling) >> 8
        if win <= size:
            incr = 2 * self.advmss
        else:
            incr = 0
            win >>= 1
            top = ((self.space_max * scaling) >> 8) >> 1
            while ss <= top:
                if win <= size:
                    incr = 2 * self.rcv_mss
                    break
                win >>= 1
                top >>= 1
        return min(room, max(incr, 2 * size)) if incr else 0

    def take_quick(self) -> int:
        """Linux tcp_incr_quickack() on the first data: half the window in rcv_mss
        segments (at least 2), once."""
        q, self.quick = self.quick, -1
        return q

    def rcv_over(self, rcv_buf: int) -> bool:
        """Linux's tcp_try_rmem_schedule() fails for anything queued now and asks for an
        ACK at once (ICSK_ACK_NOW), which also carries a zero window."""
        return self.headroom is not None and self.rmem > rcv_buf

    def on_read(self, read_pos: Callable[[], int]) -> None:
        """Free the truesize of segments read to the end (Linux frees an skb when
        tcp_recvmsg() has consumed all of it)."""
        segs = self.segs
        if not segs:
            return
        read = read_pos()
        while segs and segs[0][0] <= read:
            self.rmem -= segs.popleft()[1]

    def window(
        self, cfg: TcpConfig, unread: int, mss: int, ts_ok: bool, syn: bool, cap: int
    ) -> int:
        """Linux __tcp_select_window(): the free receive memory scaled by the
        payload/truesize ratio (tcp_space()), rounded down to whole segments, so 0 below
        one segment; on a SYN to our own MSS, as tcp_select_initial_window() does."""
        if self.headroom is None:
            return super().window(cfg, unread, mss, ts_ok, syn, cap)
        if self.space_max:
            return self._select_window(cfg, ts_ok, syn, cap)
        free = (max(cfg.rcv_buf - self.rmem, 0) * self.scaling) >> 8
        if cfg.window_in_segments:
            if syn:
                mss = cfg.mss - (TS_OPTION_LEN if ts_ok else 0)
            mss = max(min(mss, (cfg.rcv_buf * self.scaling) >> 8), 1)
            free -= free % mss
        return min(free, cap)

    def _select_window(self, cfg: TcpConfig, ts_ok: bool, syn: bool, cap: int) -> int:
        """Linux __tcp_select_window() (``cap`` is 65535 << the window scale): the free
        space (tcp_space()), 0 when under half the full space and under rcv_mss or 1/16
        of it, at most rcv_ssthresh; with window scaling as it is (the caller rounds up
        to the scale), without it in whole rcv_mss segments unless the last window is
        within one of it.  The first call sets the window and rcv_ssthresh to the full
        space rounded down to our MSS (tcp_select_initial_window())."""
        rcv_buf = cfg.rcv_buf
        full = (rcv_buf * self.scaling) >> 8
        ss = self.ssthresh
        if ss is None:
            adv = self.advmss = max(cfg.mss - (TS_OPTION_LEN if ts_ok else 0), 1)
            ss = self.ssthresh = self.wnd = full - full % adv if full > adv else full
        if syn:
            return min(ss, cap)
        shift = (cap // 65535).bit_length() - 1
        mss = min(self.rcv_mss or max(min(self.advmss, ss // 2, 536), 88), full)
        free = (max(rcv_buf - self.rmem, 0) * self.scaling) >> 8
        if free < full >> 1:
            free -= free % (1 << shift)
            if free < full >> 4 or free < mss or mss <= 0:
                self.wnd = 0
                return 0
        free = min(free, ss)
        if not shift:
            wnd = self.wnd
            if wnd <= free - mss or wnd > free:
                free -= free % mss
            else:
                free = wnd
        self.wnd = free
        return min(free, cap)

    def syn_edge(self, field: int) -> int:
        """Linux keeps the whole initial window as tcp_sock.rcv_wnd, though the SYN's
        field carries at most 65535, and never offers less after it (tcp_select_window())."""
        return max(field, self.wnd) if self.space_max else field

    def sws_threshold(self, rcv_buf: int, mss: int) -> int:
        """Linux: whole segments from RCV.NXT are its SWS avoidance."""
        if self.headroom is None:
            return super().sws_threshold(rcv_buf, mss)
        return 1

    # ---------------------------------------------------------------- send side
    def queue(self, conn: ConnBase, data: bytes | bytearray | memoryview, more: bool) -> int:
        """send() under Linux's send memory accounting (``snd_skb_overhead``), as
        tcp_sendmsg_locked(): fill the unsent last skb up to the size goal, start a new
        skb only while the memory used (payload plus the overhead per skb) is below
        snd_buf, and transmit every skb that fills before filling the next
        (tcp_push_one()), so the send path can split it (see :meth:`on_sent`).  A
        short write then waits for SendSpace when ``snd_wake_ratio`` is set."""
        overhead = self.overhead
        if overhead is None:
            n = super().queue(conn, data, more)
        else:
            n = self._queue_skbs(conn, data, more, overhead)
        if n < len(data) and self.wake_ratio > 0:
            self.send_wait = True  # asleep until SendSpace (sk_stream_wait_memory)
        return n

    def _queue_skbs(
        self, conn: ConnBase, data: bytes | bytearray | memoryview, more: bool, overhead: int
    ) -> int:
        buf = conn._buf
        ends = self.skbs(conn._buf_pos, len(buf))
        goal = self.size_goal(conn.eff_mss, conn._max_snd_wnd)
        snd_buf = conn.config.snd_buf
        total = len(data)
        taken = 0
        output = conn.state in _OUTPUT_STATES
        while taken < total:
            data_end = conn._buf_pos + len(buf)
            start = ends[-2] if len(ends) > 1 else conn._buf_pos
            if (
                ends
                and start >= conn._max
                and data_end - start < goal
                and not (conn._eor and conn._eor[-1] == data_end)
            ):  # MSG_EOR
                n = min(goal - (data_end - start), total - taken)  # the unsent tail skb
                ends[-1] = data_end + n
            elif len(buf) + overhead * len(ends) < snd_buf:
                start = data_end
                n = min(goal, total - taken)
                ends.append(data_end + n)
            else:
                break
            buf.append(data if n == total else memoryview(data)[taken : taken + n])
            taken += n
            if output and taken < total and data_end + n - start >= goal:
                push, conn._push_now = conn._push_now, False
                conn._more = True  # more of this write follows: no PSH, as Linux
                if conn.config.psh_write_end:
                    conn._forced_push(data_end + n)
                conn._send_data(conn._now)
                conn._push_now = push
        if taken:
            conn._more = more
            conn._poke()
        if taken < total or len(buf) + overhead * len(ends) >= snd_buf:
            conn._send_full = True
        return taken

    def skbs(self, buf_pos: int, queued: int) -> list[int]:
        """End positions of the send queue's skbs, oldest first: at first use, one skb
        holding what is queued."""
        ends = self.skb_ends
        if ends is None:
            ends = self.skb_ends = [buf_pos + queued] if queued else []
        return ends

    @staticmethod
    def size_goal(mss: int, max_snd_wnd: int) -> int:
        """Bytes per skb (Linux tcp_xmit_size_goal()): 64 KB, cut to half the largest
        window the peer offered (tcp_bound_to_half_wnd()), in whole segments."""
        cutoff = max_snd_wnd >> 1 if max_snd_wnd > DEFAULT_PEER_MSS else max_snd_wnd
        goal = min(GSO_MAX_SIZE, cutoff) if cutoff else GSO_MAX_SIZE
        return max(goal - goal % mss, mss)

    def wmem_queued(self, buf_pos: int, queued: int) -> int:
        """Send memory in use: payload bytes, plus the skb overheads when modelled."""
        overhead = self.overhead
        if overhead is None:
            return queued
        return queued + overhead * len(self.skbs(buf_pos, queued))

    def send_space(self, conn: ConnBase) -> int:
        """The room in the unsent last skb plus the whole skbs that may still be started;
        0 while a short send waits for SendSpace."""
        if self.send_wait:
            return 0
        if self.overhead is None:
            return super().send_space(conn)
        snd_buf = conn.config.snd_buf
        ends = self.skbs(conn._buf_pos, len(conn._buf))
        goal = self.size_goal(conn.eff_mss, conn._max_snd_wnd)
        room = 0
        queued = self.wmem_queued(conn._buf_pos, len(conn._buf))
        if ends:
            start = ends[-2] if len(ends) > 1 else conn._buf_pos
            if start >= conn._max:
                room = max(goal - (ends[-1] - start), 0)
                queued += room
        if queued < snd_buf:
            room += -(-(snd_buf - queued) // (goal + self.overhead)) * goal
        return room

    def writable(self, conn: ConnBase) -> bool:
        """Memory in use below snd_buf and, with snd_wake_ratio, free memory at least
        that fraction of it (Linux sk_stream_write_space(): sk_stream_wspace() >=
        sk_stream_min_wspace())."""
        queued = self.wmem_queued(conn._buf_pos, len(conn._buf))
        limit = conn.config.snd_buf
        return queued < limit and limit - queued >= int(queued * self.wake_ratio)

    def woken(self) -> None:
        self.send_wait = False

    def on_sent(self, start: int, end: int, buf_pos: int, data_end: int, tso: int) -> None:
        """Sending ``[start, end)`` splits skbs as Linux's tcp_write_xmit() does with
        tso_fragment(): where the send stops inside one, and into TSO packets of ``tso``
        bytes counted from each skb's first unsent byte."""
        ends = self.skb_ends
        end = min(end, data_end)
        if ends is None or end <= start:
            return
        cuts: list[int] = []
        i = bisect.bisect_right(ends, start)
        first = ends[i - 1] if i else buf_pos
        while i < len(ends) and first < end:
            last = ends[i]
            piece = max(first, start)
            if piece > first:
                cuts.append(piece)  # an earlier probe sent the head of this skb
            if tso:
                cuts.extend(range(piece + tso, min(last, end), tso))
            if end < last:
                cuts.append(end)
            first = last
            i += 1
        if cuts:
            ends.extend(cuts)
            ends.sort()

    def on_acked(self, buf_pos: int) -> None:
        """Wholly acknowledged skbs are freed (tcp_clean_rtx_queue)."""
        ends = self.skb_ends
        if ends is not None:
            del ends[: bisect.bisect_right(ends, buf_pos)]


def for_config(cfg: TcpConfig, current: RfcMemory | None = None) -> RfcMemory:
    """The model ``cfg`` asks for: :data:`RFC` when every Linux knob is at its default.
    A connection reconfigured (``current``) keeps its Linux model and what it counted,
    with the new knobs."""
    if isinstance(current, LinuxMemory):
        current.set_knobs(cfg)
        return current
    if (
        not cfg.accept_beyond_window
        and cfg.rcv_truesize_headroom is None
        and cfg.snd_skb_overhead is None
        and not cfg.snd_wake_ratio
    ):
        return RFC
    return LinuxMemory(cfg)
