"""Per-connection tunables, with RFC-first defaults.

Every number a connection uses comes from here, so a test, a profile (for
example the Linux one used by the packetdrill runner) or a user can change
it without touching protocol code.  Values are validated on construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Tunables; times in seconds, sizes in bytes."""

    #: MSS we advertise and the largest payload we put on the wire (RFC 9293 §3.7.1).
    mss: int = 1460
    #: Largest payload handed to the link in one segment; None means one MSS.  A
    #: link with segmentation offload sets this up to 65535 (the link splits).
    max_segment_payload: int | None = None
    #: Receive and send buffer sizes (C4: the receive window is the free receive space).
    rcv_buf: int = 1 << 20
    snd_buf: int = 1 << 20
    #: RFC 6298: initial RTO 1 s, lower bound 1 s, upper bound at least 60 s.
    rto_initial: float = 1.0
    rto_min: float = 1.0
    rto_max: float = 60.0
    #: Retransmission limits (RFC 9293 §3.8.3 R2) for SYN, SYN-ACK and data/FIN.
    syn_retries: int = 6
    synack_retries: int = 5
    max_retransmits: int = 15
    #: Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2, C13).
    msl: float = 30.0
    #: How long an orphaned connection may sit in FIN-WAIT-2 (Linux tcp_fin_timeout).
    fin_wait_2_timeout: float = 60.0
    #: Delayed ACK timeout (RFC 9293 §3.8.6.3: under 0.5 s); 0 disables delayed ACKs.
    delayed_ack: float = 0.2
    #: Nagle's algorithm off (TCP_NODELAY) when True (RFC 9293 §3.7.4).
    nodelay: bool = False
    #: RFC 5961 §7: challenge ACKs allowed per connection per second.
    challenge_ack_limit: int = 10
    #: Minimum spacing of ACKs sent in reply to out-of-window pure ACKs (Linux
    #: tcp_invalid_ratelimit); stops ACK storms between confused ends.
    oow_ack_interval: float = 0.5
    #: Initial congestion window in segments (RFC 6928).
    initial_window: int = 10
    #: Congestion control algorithm, by registered name ("cubic", "newreno").  CUBIC
    #: (RFC 9438) is the default for real networks, as on Linux, Windows and macOS;
    #: ``classic()`` and the labs use NewReno (RFC 5681), the textbook algorithm.
    congestion_control: str = "cubic"
    #: Pacing (see tcp/pacing.py): True releases data at the congestion control's
    #: rate or Linux's default (cwnd/SRTT x 2 in slow start, x 1.2 after) in ~1 ms
    #: quanta through the stack's timer; False never paces; None (the default) paces
    #: when the congestion control asks for it (BBR), as Linux does without fq.
    pacing: bool | None = None
    #: RFC 7323 §2 window scaling: offered on SYN; the shift comes from rcv_buf.
    window_scaling: bool = True
    #: RFC 7323 §3-5 timestamps: RTT measurement and PAWS.
    timestamps: bool = True
    #: RFC 2018 selective acknowledgements (and RFC 2883 D-SACK, RFC 6675 recovery).
    sack: bool = True
    #: RFC 8985 RACK loss detection and tail loss probes (used when SACK is on).
    rack: bool = True
    tlp: bool = True
    #: RFC 3168 ECN: "off"; "passive" (accept when the peer asks, as Linux's
    #: default tcp_ecn=2); "on" (also ask on our SYNs).
    ecn: str = "passive"
    #: Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): off by default as in Linux.
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    #: RFC 5681 §4.1 restart window: before sending after no data went out for longer
    #: than the RTO, cwnd = min(cwnd, IW).  Linux net.ipv4.tcp_slow_start_after_idle
    #: (default 1); the packetdrill corpus's defaults.sh sets it to 0.
    slow_start_after_idle: bool = True
    #: Congestion-window validation (RFC 7661 §4, RFC 9438 §5.8; Linux
    #: tcp_is_cwnd_limited): cwnd grows only while the sender uses it, not while the
    #: application, the receive window or the send buffer hold it back.
    cwnd_validation: bool = True
    #: Offer the receive window in whole segments (as Linux's __tcp_select_window),
    #: so a sender never sees a sliver it would refuse to use (SWS) and stall.
    window_in_segments: bool = True
    #: Linux-compatible knobs (the packetdrill Linux profile sets them):
    #: ACK the first N data segments at once ("quick ACK" at connection start).
    quickack: int = 0
    #: Set PSH on the last segment of every burst, not only where written data ends.
    psh_every_burst: bool = False
    #: With psh_every_burst: a burst is cut into packets of at most this many segments,
    #: each ending with PSH, with or without Nagle (Linux sends TSO packets of
    #: tcp_tso_autosize() segments, tcp_min_tso_segs at low pacing rates, and
    #: tcp_gso_segment() keeps PSH on each packet's last segment); 0 = no cut.  With
    #: psh_every_burst, segments that limited transmit (RFC 3042) sends on a duplicate
    #: ACK close no burst.  The send
    #: memory model (snd_skb_overhead) splits its skbs at the same packet boundaries.
    psh_burst_segments: int = 0
    #: Segments no larger than half the largest window the peer offered, once that is
    #: above 536 bytes (Linux tcp_bound_to_half_wnd() in tcp_sync_mss(); RFC 9293
    #: §3.8.6.2.1's sender SWS rule with Fs = 1/2 applied to the segment size).
    mss_half_window: bool = False
    #: rto_min floors RTO's variance term, RTO = SRTT + max(4*RTTVAR, rto_min) (Linux
    #: tcp_rtt_estimator(), __tcp_set_rto()), not the whole RTO (RFC 6298 §2.4).
    rto_min_on_rttvar: bool = False
    #: PSH on the segment that ends each write (and every half of the peer's largest
    #: window written), however much is queued behind it when it leaves (Linux
    #: tcp_mark_push() at the end of tcp_sendmsg_locked(), forced_push()).
    psh_write_end: bool = False
    #: A retransmission shorter than the MSS takes in the lost records after it while
    #: the whole still fits one MSS and the window, and carries their flags (FIN too):
    #: Linux tcp_retrans_try_collapse() with net.ipv4.tcp_retrans_collapse = 1.
    retrans_collapse: bool = False
    #: A retransmission carries PSH when data it resends was first sent with PSH (Linux
    #: resends the skb with the tcp_flags it was sent with: tcp_retransmit_skb(); a split
    #: leaves PSH on the tail, tcp_fragment(); a collapse ORs them, tcp_collapse_retrans()).
    #: False: PSH when the retransmission reaches the end of the queued data.
    psh_retrans_kept: bool = False
    #: The FIN is sent only when its sequence number fits the peer's window, as data
    #: (Linux tcp_snd_wnd_test() counts it); a zero window is then probed until it does.
    #: False: the FIN follows the data at once (it carries no data to overrun the window).
    fin_needs_window: bool = False
    #: A tail loss probe that sends new data leaves the RTO where the oldest outstanding
    #: segment's transmission put it, unless that time has come (Linux tcp_rearm_rto()
    #: offset by tcp_rto_delta_us() while the probe timer is pending); False: the RTO
    #: restarts at the probe (RFC 8985 §7.3).
    tlp_new_data_rto_from_head: bool = False
    #: Each segment sent takes at least one MSS of the congestion window, however short
    #: (Linux counts cwnd in packets: tcp_packets_in_flight() < tcp_snd_cwnd() in
    #: tcp_write_xmit() and tcp_xmit_retransmit_queue()); False: bytes (RFC 5681).
    cwnd_in_packets: bool = False
    #: Data held back with nothing in flight (TCP_CORK, MSG_MORE) arms the probe timer
    #: (one RTO, at least rto_min), which sends one segment of it with PSH (Linux
    #: tcp_check_probe_timer(), tcp_probe_timer() -> tcp_write_wakeup(): the "200 ms
    #: ceiling" of TCP_CORK); False: it waits for the application's push.
    held_data_probe: bool = False
    #: A segment with none of ACK, RST and SYN is dropped before the sequence check, so
    #: one outside the window gets no ACK (Linux tcp_rcv_established(),
    #: tcp_rcv_state_process()); False: RFC 9293 §3.10.7.4 order (answered, then
    #: dropped at the ACK step).
    drop_no_ack_first: bool = False
    #: A zero window is probed with a bare ACK carrying SEG.SEQ = SND.UNA - 1, which the
    #: peer must answer with an ACK (RFC 9293 §3.10.7.4), instead of one new byte of
    #: data (§3.8.6.1): Linux tcp_write_wakeup() -> tcp_xmit_probe_skb().
    zero_window_probe_old_seq: bool = False
    #: A passive open's largest peer window starts from the window of the ACK that
    #: completes the handshake, not the SYN's (Linux tcp_create_openreq_child() builds
    #: the socket from that ACK: max_window = snd_wnd); it bounds segments and pushes.
    max_window_from_ack: bool = False
    #: RFC 5961 §5.2's acceptable ACKs reach below SND.UNA only as far as the bytes
    #: acknowledged so far, not MAX.SND.WND alone: older ones get a challenge ACK and
    #: are dropped with their data and FIN (Linux tcp_ack(), min(max_window, bytes_acked)).
    old_ack_bytes_acked: bool = False
    #: Challenge ACKs share the out-of-window replies' per-connection interval
    #: (oow_ack_interval), data-bearing triggers included (Linux tcp_send_challenge_ack()
    #: -> __tcp_oow_rate_limited(); the host-wide limit is off by default since 6.0).
    challenge_ack_oow_limit: bool = False
    #: After shutdown(SHUT_RD), new data in FIN-WAIT-1/2 is answered with RST and the
    #: connection fails with ECONNRESET, as after close() (Linux tcp_rcv_state_process()
    #: tests RCV_SHUTDOWN, which both set; RFC 1122 §4.2.2.13 asks it after CLOSE); so is
    #: a FIN past RCV.NXT there, after either (end_seq - fin after rcv_nxt).
    rst_on_data_after_shut_rd: bool = False
    #: The error an RST leaves for the application depends on the state (Linux
    #: tcp_reset()): EPIPE in CLOSE-WAIT, ECONNRESET in CLOSING and LAST-ACK too (RFC
    #: 9293 §3.10.7.3 only closes those quietly).
    reset_errno_by_state: bool = False
    #: After the peer's FIN, an RST at RCV.NXT - 1 (the FIN's own number) resets the
    #: connection too instead of drawing a challenge ACK (Linux tcp_reset_check(), RFC
    #: 5961 §3.2 extended to a sender that had not seen our ACK of its FIN).
    rst_after_fin_match: bool = False
    #: Minshall's variant of Nagle's algorithm (draft-minshall-nagle, Linux
    #: tcp_minshall_check()): a partial segment waits only while the last *small*
    #: segment sent is unacknowledged, not while any data is (RFC 9293 §3.7.4's rule).
    nagle_minshall: bool = False
    #: TCP_CORK: hold a partial last segment until uncorked, pushed or the data fills
    #: a segment (Nagle's rule without the "nothing in flight" exception).
    cork: bool = False
    #: ACK an in-order FIN with the delayed-ACK timer instead of at once, once data has
    #: been received; Linux then also leaves quick-ACK mode ("pingpong", interactive
    #: mode).  RFC 1122 §4.2.3.2 allows the delay; RFC 9293 only asks for the ACK.
    delayed_ack_fin: bool = False
    #: When the retransmission timer would expire before the loss probe, send the probe
    #: at the RTO's time instead (Linux tcp_schedule_loss_probe: PTO = min(PTO, RTO)),
    #: so the first expiry probes without backing off.  False: the RTO fires as usual.
    tlp_clamp_to_rto: bool = False
    #: Forget receiver SACK state, including a pending D-SACK (RFC 2883 reports are
    #: optional), when the peer's FIN is processed in order (Linux tcp_fin).
    sack_reset_on_fin: bool = False
    #: Data for a closed (orphaned) socket (C24): drop the connection first and answer
    #: as for no connection, <SEQ=SEG.ACK><CTL=RST> (Linux); False: <SEQ=SND.NXT>
    #: <ACK=RCV.NXT><CTL=RST,ACK> from the still-known connection.
    orphan_rst_from_ack: bool = False
    #: Appropriate byte counting limit L (RFC 3465), in segments per ACK; None = no cap.
    abc_limit: int | None = 2
    #: Slow start and congestion avoidance count only what an ACK newly delivers: bytes
    #: SACKed earlier, or one segment per duplicate ACK without SACK, were delivered
    #: already (Linux's delivered count).  False: every cumulatively acknowledged byte
    #: counts (RFC 5681 / RFC 3465 "newly acknowledged").
    cwnd_count_delivered: bool = False
    #: RFC 8985 §7.2 WCDelAckT: added to the probe timeout when one segment is out.
    tlp_wc_delack: float = 0.2
    #: RFC 5482 / RFC 9293 USER TIMEOUT: fail when sent data stays unacknowledged this
    #: long (seconds); None leaves it to max_retransmits.
    user_timeout: float | None = None
    #: Out-of-order queue bound: separate blocks (holes) held at most; a segment that
    #: would open one more is dropped and counted.  Bytes are bounded by the window.
    #: None: two per MSS that fits in rcv_buf (a window's worth of holes, at least 64).
    max_ooo_blocks: int | None = None
    #: Minimum RTO used by the persist timer and TLP computations (seconds).
    tlp_min: float = 0.01
    #: A segment that starts inside the window offered but ends past its right edge is
    #: kept whole when no in-order data waits to be read, and dropped whole (with an ACK)
    #: otherwise (Linux tcp_sequence() and tcp_data_queue(); an out-of-order one is kept
    #: only while the receive memory is within rcv_buf).  A zero window still takes no
    #: data.  False: RFC 9293 §3.10.7.4 keeps the part inside the window (the "idealized
    #: segment"); Linux never trims a segment to its window.
    accept_beyond_window: bool = False
    #: Linux receive memory accounting (sk_rmem_alloc); None: the receive buffer holds
    #: rcv_buf payload bytes and the window is its free space (RFC 9293 §3.8.6.2).  Set,
    #: every kept segment costs its truesize: the buffer a TUN device allocates for the
    #: whole packet, payload plus this headroom (headers, NET_SKB_PAD, skb_shared_info)
    #: rounded up to a power of two (kmalloc), plus struct sk_buff, until the application
    #: has read all of it.  The window offered is the free memory scaled by the
    #: payload/truesize ratio of the segments received (Linux tcp_win_from_space() with
    #: the scaling_ratio of tcp_measure_rcv_mss(), 50 % before any data), in whole
    #: segments measured from RCV.NXT (__tcp_select_window(); that rounding is its
    #: receiver SWS avoidance), and the SYN's window is rounded to our own MSS
    #: (tcp_select_initial_window()).  Data or a FIN arriving while the memory is
    #: already over rcv_buf is ACKed at once (tcp_try_rmem_schedule() failing).
    rcv_truesize_headroom: int | None = None
    #: Linux send memory accounting (sk_wmem_queued); None: the send buffer holds snd_buf
    #: payload bytes.  Set, written data is queued in skbs of up to the size goal (half
    #: the peer's largest window, at most 64 KB, in whole segments: tcp_xmit_size_goal()),
    #: each costing its payload plus this overhead; a write may start a new skb while the
    #: memory used is below snd_buf, fills it up to the size goal, and transmits each skb
    #: as it fills (tcp_sendmsg_locked(), tcp_push_one()).  Sending splits skbs where a
    #: burst stops and at every psh_burst_segments segments (TSO packets: tso_fragment()),
    #: each piece costing the overhead again; acknowledged bytes free their payload, and a
    #: wholly acknowledged skb its overhead.
    snd_skb_overhead: int | None = None
    #: A send() that could not take all it was given waits (takes nothing, send_space 0)
    #: until SendSpace, which is reported once the free send memory is at least this
    #: fraction of the memory in use (Linux sk_stream_write_space(): sk_stream_wspace() >=
    #: sk_stream_min_wspace(), 0.5), checked when an ACK frees memory.  0: SendSpace as
    #: soon as there is room, and send() never waits.
    snd_wake_ratio: float = 0.0
    #: The window scale is chosen for this buffer size when it exceeds rcv_buf (Linux
    #: tcp_select_initial_window(): max(tcp_rmem[2], rmem_max), what autotuning may grow
    #: the buffer to); None: for rcv_buf (RFC 7323 §2.3).
    rcv_wscale_space: int | None = None
    #: With rcv_truesize_headroom: the window is Linux's receive-window slow start.  It
    #: starts at the free space rounded down to our MSS (tcp_select_initial_window()),
    #: is capped by rcv_ssthresh, which starts there, is clamped to the full space when
    #: the payload/truesize ratio changes (tcp_measure_rcv_mss()) and grows by two
    #: segments for data that fits its truesize (tcp_grow_window()); below half the
    #: full space it is 0 under one segment or 1/16 of the space, and with window
    #: scaling it is not rounded to segments (__tcp_select_window()).
    rcv_ssthresh: bool = False
    #: An RST sent from a connection (abort, close with unread data) carries the window
    #: offered after the unread data is freed (Linux tcp_close(), tcp_send_active_reset());
    #: False: window 0 (RFC 9293 gives an RST no window).
    rst_window: bool = False

    def __post_init__(self) -> None:
        if not 88 <= self.mss <= 65495:
            raise ValueError(f"mss must be in 88..65495, got {self.mss}")
        if self.max_segment_payload is not None and not (
            self.mss <= self.max_segment_payload <= 65535
        ):
            raise ValueError("max_segment_payload must be between mss and 65535")
        for name in ("rcv_buf", "snd_buf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.rcv_buf > 65535 and not self.window_scaling:
            raise ValueError("rcv_buf above 65535 needs window_scaling=True (RFC 7323)")
        if self.rcv_buf > (65535 << 14) or self.snd_buf > (1 << 31):
            raise ValueError("rcv_buf may be at most 65535 << 14 bytes (RFC 7323 §2.3)")
        if self.ecn not in ("off", "passive", "on"):
            raise ValueError(f"ecn must be 'off', 'passive' or 'on', got {self.ecn!r}")
        if self.keepalive_idle <= 0 or self.keepalive_interval <= 0 or self.keepalive_count < 1:
            raise ValueError("keepalive_idle/interval must be > 0 and keepalive_count >= 1")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise ValueError("need 0 < rto_min <= rto_initial <= rto_max")
        for name in ("syn_retries", "synack_retries", "max_retransmits", "challenge_ack_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.oow_ack_interval < 0:
            raise ValueError("oow_ack_interval must be >= 0")
        if self.msl < 0 or self.fin_wait_2_timeout < 0 or self.delayed_ack < 0:
            raise ValueError("times must be >= 0")
        if self.delayed_ack >= 0.5:
            raise ValueError("delayed_ack must be under 0.5 s (RFC 9293 §3.8.6.3)")
        if self.user_timeout is not None and self.user_timeout <= 0:
            raise ValueError("user_timeout must be > 0 or None")
        if self.abc_limit is not None and self.abc_limit < 1:
            raise ValueError("abc_limit must be >= 1 or None")
        if self.max_ooo_blocks is not None and self.max_ooo_blocks < 1:
            raise ValueError("max_ooo_blocks must be >= 1")
        if self.psh_burst_segments < 0:
            raise ValueError("psh_burst_segments must be >= 0")
        if self.initial_window < 1:
            raise ValueError("initial_window must be >= 1")
        for name in ("rcv_truesize_headroom", "snd_skb_overhead"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65536:
                raise ValueError(f"{name} must be None or in 0..65536")
        if not 0.0 <= self.snd_wake_ratio <= 4.0:
            raise ValueError("snd_wake_ratio must be in 0..4")
        if self.rcv_wscale_space is not None and not 1 <= self.rcv_wscale_space <= (1 << 31):
            raise ValueError("rcv_wscale_space must be None or in 1..2**31")

    @classmethod
    def classic(cls, **changes: object) -> TcpConfig:
        """The RFC 9293 baseline: only the MSS option (no window scaling, timestamps
        or SACK), a 64 KiB receive buffer and no Nagle delay.  Segment-by-segment
        behaviour is then exactly the textbook one: for teaching, and for tests
        that pin exact windows and timings."""
        base: dict[str, object] = {
            "window_scaling": False,
            "timestamps": False,
            "sack": False,
            "rcv_buf": 65535,
            "snd_buf": 262144,
            "nodelay": True,
            "window_in_segments": False,
            "congestion_control": "newreno",
        }
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> TcpConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
