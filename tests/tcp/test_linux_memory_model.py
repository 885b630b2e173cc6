"""The Linux socket-memory knobs of TcpConfig, against one sans-IO Connection.

The packetdrill Linux profile turns them on; synack's defaults keep RFC behaviour.
Each test plays the peer by hand (our ISN 1000, the peer's 0, MSS 1000, no window
scaling) and checks exact windows, acknowledgements and SendSpace reports:

* ``accept_beyond_window``: Linux tcp_sequence()/tcp_data_queue() keep a segment
  that ends past the window whole when nothing waits to be read, drop it whole
  otherwise; RFC 9293 §3.10.7.4 trims it to the window.
* ``rcv_truesize_headroom``: receive memory counted in skb truesize; the window is
  the free memory scaled by payload/truesize (tcp_win_from_space()).
* ``snd_skb_overhead`` and ``snd_wake_ratio``: send memory counted per skb, and a
  waiting writer woken only once free memory is half of what is queued
  (sk_stream_write_space()).
"""

from __future__ import annotations

from collections import deque

import pytest

from synack.packetdrill.profiles import LINUX, RFC, config_from_sysctls
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.events import Event, SendSpace
from synack.tcp.memory import RFC as RFC_MEMORY
from synack.tcp.memory import LinuxMemory, for_config
from synack.tcp.states import State
from synack.wire.segment import ACK, FIN, PSH, SYN, Segment

LOCAL, REMOTE = bytes([192, 168, 0, 1]), bytes([192, 0, 2, 1])
LPORT, RPORT = 8080, 40000
ISS = 1000
MASK = 0xFFFFFFFF

#: What the profile sets, with no other Linux behaviour mixed in.
RCV_LINUX = {"accept_beyond_window": True, "rcv_truesize_headroom": 424}
SND_LINUX = {"snd_skb_overhead": 1280, "snd_wake_ratio": 0.5, "psh_burst_segments": 10}


class Peer:
    """A passive-open connection and the script's side of it (window scale 0)."""

    def __init__(self, cfg: TcpConfig, *, win: int = 50000) -> None:
        self.events: deque[Event] = deque()
        self.win = win
        syn = Segment(RPORT, LPORT, 0, 0, SYN, win, mss=1000, wscale=0)
        self.conn = Connection.open_passive(
            syn, LOCAL, REMOTE, iss=ISS, now=0.0, config=cfg, events=self.events
        )
        (self.synack,) = self.conn.segments_to_send(0.0)
        self.send(0.1, 0)

    def send(
        self, now: float, ack: int, data: int = 0, *, seq: int = 1, flags: int = ACK
    ) -> list[Segment]:
        """Our segment at ``now``: ``data`` pattern bytes at stream offset ``seq``,
        acknowledging synack's byte ``ack`` (relative); return what synack sends."""
        self.deliver(now, ack, data, seq=seq, flags=flags)
        return self.conn.segments_to_send(now)

    def deliver(
        self, now: float, ack: int, data: int = 0, *, seq: int = 1, flags: int = ACK
    ) -> None:
        """As :meth:`send`, without running synack's send path afterwards."""
        payload = bytes(i % 251 for i in range(seq - 1, seq - 1 + data))
        seg = Segment(
            RPORT,
            LPORT,
            seq & MASK,
            (ISS + 1 + ack) & MASK,
            flags | (PSH if data else 0),
            self.win,
            payload,
        )
        self.conn.receive(seg, now)

    def ack_of(self, out: list[Segment]) -> tuple[int, int]:
        """(relative ACK number, window field) of the one pure ACK synack sent."""
        (seg,) = out
        assert seg.flags & ACK and not seg.payload
        return seg.ack, seg.window  # the peer's ISN is 0: already relative

    def spaces(self) -> int:
        n = sum(isinstance(e, SendSpace) for e in self.events)
        self.events.clear()
        return n


def rcv_config(**kw: object) -> TcpConfig:
    base = TcpConfig(
        rcv_buf=20000,
        window_scaling=False,
        timestamps=False,
        sack=False,
        delayed_ack=0.04,
        quickack=16,
    )
    return base.replace(**kw)


def snd_config(**kw: object) -> TcpConfig:
    base = TcpConfig(
        snd_buf=42000,
        rcv_buf=65535,
        window_scaling=False,
        timestamps=False,
        sack=False,
        abc_limit=None,
        rack=False,
        tlp=False,
    )
    return base.replace(**kw)


# ------------------------------------------------------------------- defaults
def test_defaults_are_rfc_and_the_linux_profile_sets_the_knobs() -> None:
    cfg = TcpConfig()
    assert (
        cfg.accept_beyond_window,
        cfg.rcv_truesize_headroom,
        cfg.snd_skb_overhead,
        cfg.snd_wake_ratio,
    ) == (False, None, None, 0.0)
    assert config_from_sysctls(RFC, {}).config == TcpConfig()
    linux = config_from_sysctls(LINUX, LINUX.sysctls).config
    assert (
        linux.accept_beyond_window,
        linux.rcv_truesize_headroom,
        linux.snd_skb_overhead,
        linux.snd_wake_ratio,
    ) == (True, 424, 1280, 0.5)


@pytest.mark.parametrize(
    "field,bad",
    [("rcv_truesize_headroom", -1), ("snd_skb_overhead", 70000), ("snd_wake_ratio", -0.1)],
)
def test_knobs_are_validated(field: str, bad: object) -> None:
    with pytest.raises(ValueError):
        TcpConfig(**{field: bad})  # type: ignore[arg-type]


# ------------------------------------------------------ accept_beyond_window
def test_rfc_trims_a_segment_to_the_window() -> None:
    p = Peer(rcv_config(rcv_buf=40000))
    assert p.synack.window == 40000
    assert p.ack_of(p.send(0.2, 0, 60000)) == (40001, 0)  # the idealized segment only
    assert p.conn.readable == 40000


def test_beyond_window_kept_whole_when_nothing_waits_to_be_read() -> None:
    p = Peer(rcv_config(rcv_buf=40000, accept_beyond_window=True))
    ack, _ = p.ack_of(p.send(0.2, 0, 60000))
    assert ack == 60001 and p.conn.readable == 60000


def test_beyond_window_dropped_whole_while_data_waits() -> None:
    p = Peer(rcv_config(accept_beyond_window=True))
    p.send(0.2, 0, 4000)
    right = p.conn.rcv_nxt + p.conn.rcv_wnd
    out = p.send(0.3, 0, 50000, seq=4001)  # starts in the window, ends past it
    assert p.ack_of(out)[0] == 4001 and p.conn.readable == 4000
    assert p.conn.rcv_nxt + p.conn.rcv_wnd == right
    # Out of order past the edge: dropped whole too (nothing held for reassembly).
    assert p.ack_of(p.send(0.4, 0, 50000, seq=5001))[0] == 4001
    assert p.conn.readable == 4000 and p.conn.segments_to_send(0.4) == []
    # Once read, the same segment is taken whole.
    assert len(p.conn.recv()) == 4000
    assert p.ack_of(p.send(0.5, 0, 50000, seq=4001))[0] == 54001


def test_rfc_keeps_the_in_window_part_while_data_waits() -> None:
    p = Peer(rcv_config())
    p.send(0.2, 0, 4000)
    wnd = p.conn.rcv_wnd
    assert p.ack_of(p.send(0.3, 0, 50000, seq=4001))[0] == 4001 + wnd


def test_beyond_window_at_zero_window_takes_nothing() -> None:
    p = Peer(rcv_config(rcv_buf=4000, accept_beyond_window=True))
    assert p.ack_of(p.send(0.2, 0, 4000)) == (4001, 0)
    assert len(p.conn.recv(1)) == 1  # queue not empty, window still zero
    assert p.ack_of(p.send(0.3, 0, 1000, seq=4001))[0] == 4001


# ----------------------------------------------------- rcv_truesize_headroom
def test_truesize_window_as_linux() -> None:
    """tcp_rcv_big_endseq: SO_RCVBUF 10000 (20000), 4000 bytes queued -> window 5000."""
    p = Peer(rcv_config(**RCV_LINUX))
    # SYN-ACK: half of rcv_buf (default ratio), in segments of our own MSS 1460.
    assert p.synack.window == 8760
    # 4000 bytes cost 8192 + 256 (kmalloc buffer + sk_buff); ratio 4000/8448 = 121/256.
    assert p.ack_of(p.send(0.2, 0, 4000)) == (4001, 5000)
    # Reading frees it all: 20000 * 121 / 256 = 9453 -> 9000, less than twice the
    # 5000 offered, so no window update (tcp_cleanup_rbuf).
    assert len(p.conn.recv()) == 4000
    assert p.conn.segments_to_send(0.25) == []
    # The next ACK offers it.
    assert p.ack_of(p.send(0.3, 0, 1000, seq=4001)) == (5001, 7000)


def test_rfc_window_is_the_free_buffer() -> None:
    p = Peer(rcv_config())
    assert p.synack.window == 20000
    assert p.ack_of(p.send(0.2, 0, 4000)) == (4001, 16000)


def test_memory_over_rcv_buf_acks_a_fin_at_once() -> None:
    """tcp_rcv_zero_wnd_fin: with receive memory over rcv_buf, the FIN is ACKed at
    once (tcp_try_rmem_schedule() fails: ICSK_ACK_NOW), though delayed_ack_fin."""
    cfg = rcv_config(rcv_buf=40000, delayed_ack_fin=True, **RCV_LINUX)
    p = Peer(cfg)
    assert p.ack_of(p.send(0.2, 0, 60000)) == (60001, 0)
    assert p.ack_of(p.send(0.2, 0, 0, seq=60001, flags=ACK | FIN)) == (60002, 0)
    assert p.conn.state is State.CLOSE_WAIT
    # Without the memory model the same FIN waits for the delayed-ACK timer.
    q = Peer(rcv_config(rcv_buf=40000, delayed_ack_fin=True, accept_beyond_window=True))
    q.send(0.2, 0, 60000)
    assert q.send(0.2, 0, 0, seq=60001, flags=ACK | FIN) == []


def test_rcv_charge_is_per_segment_and_freed_when_read() -> None:
    p = Peer(rcv_config(**RCV_LINUX))
    p.send(0.2, 0, 1000)
    p.send(0.2, 0, 1000, seq=1001)
    conn = p.conn
    assert conn._mem.rmem == 2 * (2048 + 256)  # 1000 + 424 -> a 2 KB buffer each
    conn.recv(1500)
    assert conn._mem.rmem == 2048 + 256  # the first skb is consumed, the second not yet
    conn.recv()
    assert conn._mem.rmem == 0


# ------------------------------------------------ snd_skb_overhead, wake ratio
def size_goal(conn: Connection) -> int:
    return LinuxMemory.size_goal(conn.eff_mss, conn._max_snd_wnd)


def mem_queued(conn: Connection) -> int:
    mem = conn._mem
    assert isinstance(mem, LinuxMemory)
    return mem.wmem_queued(conn._buf_pos, conn.unsent)


def test_blocking_write_as_linux() -> None:
    """blocking-write.pkt: 61000 bytes into a 42000-byte send buffer; the writer may
    finish after the ACK of 36001, not after 30001, nor 35001."""
    p = Peer(snd_config(**SND_LINUX))
    conn = p.conn
    assert conn.send(bytes(61000)) == 60000  # skbs of 25000 (half of 50000), pushed
    # The first skb went out at once and was split where the initial window ended;
    # its unsent rest took 10000 more bytes; a second skb started below snd_buf.
    assert conn._mem.skb_ends == [10001, 35001, 60001]
    assert conn.send(b"x") == 0 and conn.send_space == 0  # waits for SendSpace
    sent = conn.segments_to_send(0.2)
    assert sum(len(s.payload) for s in sent) == 10000
    p.send(0.3, 10000)
    assert p.spaces() == 0 and conn.send(b"x") == 0
    p.send(0.4, 30000)
    assert p.spaces() == 0 and conn.send(b"x") == 0
    # 35001 would not do: 25000 + 3 * 1280 queued, 13160 free < half.
    probe = Peer(snd_config(**SND_LINUX))
    probe.conn.send(bytes(61000))
    probe.conn.segments_to_send(0.2)
    probe.send(0.3, 10000)
    probe.send(0.4, 30000)
    probe.send(0.5, 35000)
    assert probe.spaces() == 0
    # 36001: 24000 + 3 * 1280 = 27840 queued, 14160 free >= 13920.
    p.send(0.5, 36000)
    assert p.spaces() == 1
    assert conn.send(bytes(1000)) == 1000


def test_blocking_write_rfc_wakes_on_any_room() -> None:
    p = Peer(snd_config())
    conn = p.conn
    assert conn.send(bytes(61000)) == 42000
    conn.segments_to_send(0.2)
    p.send(0.3, 10000)
    assert p.spaces() == 1 and conn.send(bytes(19000)) == 10000


def test_wake_ratio_alone_counts_payload_bytes() -> None:
    p = Peer(snd_config(snd_wake_ratio=0.5))
    conn = p.conn
    assert conn.send(bytes(61000)) == 42000
    conn.segments_to_send(0.2)
    p.send(0.3, 10000)  # 32000 queued, 10000 free < 16000
    assert p.spaces() == 0 and conn.send(b"x") == 0
    p.send(0.4, 14000)  # 28000 queued, 14000 free >= 14000
    assert p.spaces() == 1 and conn.send(bytes(19000)) == 14000


def test_size_goal_is_half_the_peer_window_in_segments() -> None:
    p = Peer(snd_config(snd_skb_overhead=1280), win=33000)
    assert size_goal(p.conn) == 16000
    q = Peer(snd_config(snd_skb_overhead=1280), win=65535)
    assert size_goal(q.conn) == 32000


def test_sending_splits_skbs_into_tso_packets() -> None:
    p = Peer(snd_config(snd_skb_overhead=1280, psh_burst_segments=2))
    conn = p.conn
    assert conn.send(bytes(25000)) == 25000 and conn._mem.skb_ends == [25001]
    assert len(conn.segments_to_send(0.2)) == 10  # the initial window
    # Packets of two segments, and the rest of the skb where the burst stopped.
    assert conn._mem.skb_ends == [2001, 4001, 6001, 8001, 10001, 25001]
    assert mem_queued(conn) == 25000 + 6 * 1280
    p.deliver(0.3, 5000)  # frees two skbs and half of a third: its overhead stays
    assert conn._mem.skb_ends == [6001, 8001, 10001, 25001]
    assert mem_queued(conn) == 20000 + 4 * 1280


def test_send_space_is_what_send_takes() -> None:
    """Taking send_space bytes fills the buffer, so SendSpace follows (apps rely on it)."""
    p = Peer(snd_config(snd_buf=8000, snd_skb_overhead=1280))
    conn = p.conn
    room = conn.send_space
    assert room == 25000  # one skb of the size goal may start below snd_buf
    assert conn.send(bytes(room)) == room
    assert conn.send_space == 0 and conn.send(b"x") == 0
    conn.segments_to_send(0.2)
    p.send(0.3, 10000)  # 15000 + 2 * 1280 still queued (split where the burst stopped)
    assert p.spaces() == 0 and conn.send_space == 0
    p.send(0.4, 25000)
    assert p.spaces() == 1 and conn.send_space == 25000


def test_out_of_order_past_the_window_needs_memory() -> None:
    p = Peer(rcv_config(rcv_buf=4000, accept_beyond_window=True, **{"rcv_truesize_headroom": 424}))
    assert p.synack.window == 1460  # half of 4000, in segments of our MSS
    # Out of order, starting in the window: kept whole while memory is within rcv_buf.
    assert p.ack_of(p.send(0.2, 0, 3000, seq=501))[0] == 1
    assert p.conn._mem.rmem == 4096 + 256
    # Memory now over rcv_buf: a second one is dropped, and ACKed at once.
    assert p.ack_of(p.send(0.3, 0, 1000, seq=3501))[0] == 1
    assert p.conn._mem.rmem == 4096 + 256
    # The hole filled: everything held is delivered.
    p.send(0.4, 0, 500)
    assert len(p.conn.recv()) == 3500


# ------------------------------------------------------------ the strategy object
@pytest.mark.parametrize(
    "knob,value",
    [
        ("accept_beyond_window", True),
        ("rcv_truesize_headroom", 424),
        ("snd_skb_overhead", 1280),
        ("snd_wake_ratio", 0.5),
    ],
)
def test_any_knob_picks_the_linux_model_and_none_the_shared_rfc_one(
    knob: str, value: object
) -> None:
    assert for_config(TcpConfig()) is RFC_MEMORY
    assert Peer(rcv_config()).conn._mem is RFC_MEMORY
    mem = for_config(TcpConfig(**{knob: value}))  # type: ignore[arg-type]
    assert isinstance(mem, LinuxMemory)
    assert mem.counts_truesize is (knob == "rcv_truesize_headroom")


def test_reconfigured_connection_keeps_the_memory_it_counted() -> None:
    """configure() (a late socket option) keeps the Linux model's counts, as the fields
    on the connection were kept before the model was an object of its own."""
    p = Peer(rcv_config(**RCV_LINUX))
    p.send(0.2, 0, 1000)
    mem = p.conn._mem
    assert isinstance(mem, LinuxMemory) and mem.rmem == 2048 + 256
    p.conn.configure(rcv_config(rcv_buf=30000, **RCV_LINUX), 0.25)
    assert p.conn._mem is mem and mem.rmem == 2048 + 256
    p.conn.recv()
    assert mem.rmem == 0
