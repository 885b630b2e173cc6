"""Every per-stack and per-connection limit under an adversary that keeps pushing (issue 8
item 4).

For each limit: the test reaches it, shows the counted drop or the clear error,
then measures memory with tracemalloc after a warm-up and keeps pushing ten
times as much: the retained growth must stay under a small bound.  Run with
``-s`` for the figures quoted in docs/security.md.
"""

from __future__ import annotations

import errno
import gc
import random
import tracemalloc
import weakref
from collections.abc import Callable

import pytest

from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import encode_ipv4_tcp
from synack.wire.segment import ACK, SYN, Segment

C, S = ip_to_bytes("10.0.0.1"), ip_to_bytes("10.0.0.2")
MASK = 0xFFFFFFFF
FIGURES: dict[str, object] = {}


def growth(push: Callable[[int], None], warm: int, more: int) -> tuple[int, int]:
    """Push ``warm`` units, then measure while pushing ``more``: (retained, peak) bytes
    allocated during the measured phase (tracemalloc started after the warm-up)."""
    push(warm)
    gc.collect()
    tracemalloc.start()
    try:
        push(more)
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return retained, peak


def report(name: str, **figs: object) -> None:
    FIGURES[name] = figs
    print(f"\nFIGURES bounds-{name}: " + " ".join(f"{k}={v}" for k, v in figs.items()))


def syn_from(i: int, rng: random.Random) -> bytes:
    src = (0xC6120000 + i).to_bytes(4, "big")  # 198.18.0.0/15, one source per SYN
    seg = Segment(rng.randrange(1024, 65536), 80, rng.getrandbits(32), 0, SYN, 65535, mss=1460)
    return encode_ipv4_tcp(src, S, seg)


class SynPusher:
    """An adversary sending SYNs from ever new addresses to a stack, at a fixed time."""

    def __init__(self, st: Stack) -> None:
        self.st = st
        self.i = 0
        self.rng = random.Random(7)

    def __call__(self, n: int) -> None:
        st = self.st
        for _ in range(n):
            st.receive_packet(syn_from(self.i, self.rng), 1.0)
            self.i += 1
            if self.i % 64 == 0:
                st.packets_to_send(1.0)
                for _ in st.events():  # a driver drains events
                    pass
        st.packets_to_send(1.0)
        for _ in st.events():
            pass


# --------------------------------------------------------------------------- connections
def test_connection_table_limit() -> None:
    st = Stack(S, max_connections=100, seed=1)
    st.listen(80)
    push = SynPusher(st)
    retained, peak = growth(push, 500, 5_000)
    assert len(st.connections) == 100
    assert st.stats["drop_connection_table_full"] == 5_500 - 100
    with pytest.raises(OSError) as exc:
        st.connect("10.0.0.9", 80, now=1.0)
    assert exc.value.errno == errno.ENOBUFS
    assert retained < 64 << 10
    report(
        "connections",
        limit=100,
        syns=5_500,
        dropped=st.stats["drop_connection_table_full"],
        retained=retained,
        peak=peak,
    )


# --------------------------------------------------------------------------- half-open
@pytest.mark.parametrize("cookies", [True, False])
def test_half_open_limit(cookies: bool) -> None:
    st = Stack(S, seed=2, syncookies=cookies)
    lst = st.listen(80)
    push = SynPusher(st)
    retained, peak = growth(push, 1000, 10_000)
    assert lst.half_open == st.max_half_open == 256
    assert len(st.connections) == 256
    over = 11_000 - 256
    if cookies:
        assert st.stats["syncookies_sent"] == over
    else:
        assert st.stats["drop_syn_backlog_full"] == over
    assert retained < 64 << 10
    report(
        f"half-open-cookies-{'on' if cookies else 'off'}",
        limit=256,
        syns=11_000,
        cookies_sent=st.stats["syncookies_sent"],
        dropped=st.stats["drop_syn_backlog_full"],
        retained=retained,
        peak=peak,
    )


# --------------------------------------------------------------------------- out of order
def crafted(config: TcpConfig, *, peer_window: int = 65535) -> Connection:
    """An established active connection (ISS 1000, peer ISN 5000), output drained."""
    conn = Connection.open_active(C, 40000, S, 80, iss=1000, now=0.0, config=config)
    conn.segments_to_send(0.0)
    conn.receive(Segment(80, 40000, 5000, 1001, SYN | ACK, peer_window, mss=1460), 0.0)
    conn.segments_to_send(0.0)
    assert conn.state is State.ESTABLISHED
    return conn


def test_out_of_order_holes_limit() -> None:
    """1-byte segments with gaps (every other byte of the window, then again and again):
    at most max_ooo_blocks holes are held, the rest are counted drops; bytes held stay
    within the window."""
    cfg = TcpConfig.classic(max_ooo_blocks=64)
    conn = crafted(cfg)
    rng = random.Random(3)
    sent = 0

    def push(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            off = 2 + 2 * rng.randrange(32_000)  # never RCV.NXT: the holes stay open
            conn.receive(Segment(80, 40000, (5001 + off) & MASK, 1001, ACK, 65535, b"z"), 1.0)
            conn.segments_to_send(1.0)
            sent += 1

    retained, peak = growth(push, 2_000, 20_000)
    held = conn._ooo  # the reassembly queue (private; this is a white-box bound)
    assert len(held) == 64
    blocks, held_bytes = len(held), held.nbytes
    assert held.nbytes <= cfg.rcv_buf
    assert conn.stats["ooo_block_limit_drops"] > 0
    assert conn.stats["ooo_block_limit_drops"] + conn.stats["dup_segs_in"] + 64 >= sent - 64
    assert retained < 64 << 10
    # Bytes: an adversary extending the held blocks with big segments fills at most the
    # window (bytes past the right edge are trimmed).
    for k in range(64):
        conn.receive(
            Segment(80, 40000, (5001 + 2 + 1000 * k) & MASK, 1001, ACK, 65535, b"Z" * 4000), 2.0
        )
        conn.segments_to_send(2.0)
    assert held.nbytes + conn.readable <= cfg.rcv_buf
    report(
        "ooo",
        limit=64,
        segments=sent,
        held_blocks=blocks,
        held_bytes=held_bytes,
        bytes_after_fill=held.nbytes + conn.readable,
        rcv_buf=cfg.rcv_buf,
        drops=conn.stats["ooo_block_limit_drops"],
        retained=retained,
        peak=peak,
    )


# --------------------------------------------------------------------------- send buffer
def test_send_buffer_limit() -> None:
    """An application writing forever to a peer that never reads (and so never acks past
    its window): writes are accepted up to snd_buf, then send() returns 0."""
    cfg = TcpConfig.classic(snd_buf=262_144)
    conn = crafted(cfg, peer_window=65535)
    chunk = bytes(65536)
    accepted = 0
    now = 1.0

    def push(n: int) -> None:
        nonlocal accepted, now
        for _ in range(n):
            accepted += conn.send(chunk)
            conn.segments_to_send(now)
            now += 0.01
            t = conn.next_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
                conn.segments_to_send(now)

    retained, peak = growth(push, 100, 1000)
    assert accepted == cfg.snd_buf  # nothing is ever acked: exactly the buffer
    assert conn.send(chunk) == 0 and conn.send_space == 0
    assert conn.unsent == cfg.snd_buf
    assert retained < 64 << 10
    report(
        "send-buffer",
        snd_buf=cfg.snd_buf,
        writes=1100,
        offered=1100 * len(chunk),
        accepted=accepted,
        retained=retained,
        peak=peak,
    )


# --------------------------------------------------------------------------- receive buffer
def test_receive_buffer_limit_against_a_peer_that_ignores_the_window() -> None:
    """The application never reads; the peer keeps sending in sequence past the window:
    data beyond the right edge is trimmed, the buffer never exceeds rcv_buf."""
    cfg = TcpConfig.classic(rcv_buf=65535)
    conn = crafted(cfg)
    nxt = 5001
    pushed = 0

    def push(n: int) -> None:
        nonlocal nxt, pushed
        for _ in range(n):
            conn.receive(Segment(80, 40000, nxt & MASK, 1001, ACK, 65535, b"d" * 1460), 1.0)
            conn.segments_to_send(1.0)
            nxt += 1460  # the peer pretends every byte was taken
            pushed += 1460

    retained, peak = growth(push, 500, 5_000)
    assert conn.readable == cfg.rcv_buf and conn.rcv_wnd == 0
    assert conn.stats["bytes_received"] == cfg.rcv_buf
    assert conn.stats["unacceptable_in"] > 0
    assert retained < 64 << 10
    report(
        "receive-buffer",
        rcv_buf=cfg.rcv_buf,
        pushed=pushed,
        held=conn.readable,
        unacceptable=conn.stats["unacceptable_in"],
        retained=retained,
        peak=peak,
    )


# --------------------------------------------------------------------------- TIME-WAIT
def pump(a: Stack, b: Stack, now: float) -> None:
    for _ in range(50):
        moved = False
        for x, y in ((a, b), (b, a)):
            for p in x.packets_to_send(now):
                y.receive_packet(p, now)
                moved = True
        if not moved:
            return


class TimeWaitPusher:
    """A peer that makes the server close first again and again: each connection leaves
    a TIME-WAIT entry on the server (the client side ends in CLOSED)."""

    def __init__(self) -> None:
        self.server = Stack(S, max_time_wait=50, seed=4)
        self.client = Stack(C, seed=5, max_time_wait=1)
        self.lst = self.server.listen(80)
        self.now = 1.0
        self.count = 0
        self.reused = 0

    def __call__(self, n: int) -> None:
        server, client = self.server, self.client
        for _ in range(n):
            now = self.now
            c = client.connect(S, 80, now=now)
            old = server.find(C, c.local_port, 80)
            if old is not None and old.state is State.TIME_WAIT:
                self.reused += 1  # a newer SYN takes over a TIME-WAIT tuple (RFC 6191)
            pump(client, server, now)
            s = self.lst.accept()
            assert s is not None and s.state is State.ESTABLISHED
            s.close(now)  # the server closes first
            pump(client, server, now)
            c.close(now)
            pump(client, server, now)
            assert s.state is State.TIME_WAIT
            for st in (client, server):
                for _ in st.events():
                    pass
            self.now += 0.001
            self.count += 1


def test_time_wait_limit_recycles_the_oldest() -> None:
    """Past max_time_wait the oldest TIME-WAIT entry is recycled and counted (as Linux
    does at tcp_max_tw_buckets); the table stays at the limit."""
    push = TimeWaitPusher()
    push(1100)
    server = push.server
    tw = [c for c in server.connections if c.state is State.TIME_WAIT]
    assert len(tw) == 50 and len(server.connections) == 50
    assert server.stats["time_wait_recycled"] + push.reused == 1100 - 50
    report(
        "time-wait",
        limit=50,
        connections=1100,
        time_wait=len(tw),
        recycled=server.stats["time_wait_recycled"],
        reused_by_new_syn=push.reused,
    )


def test_time_wait_memory_stays_flat() -> None:
    """The TIME-WAIT table is bounded by max_time_wait and recycled connections are
    released: memory measured after 1,000 and again after 10,000 more closes is the same
    (within a small bound), and only max_time_wait connections stay alive."""
    push = TimeWaitPusher()
    push(100)
    gc.collect()
    tracemalloc.start()
    try:
        push(1000)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        held = [weakref.ref(c) for c in push.server.connections]
        push(10_000)
        gc.collect()
        second, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    released = sum(1 for r in held if r() is None)
    print(
        f"\nFIGURES bounds-time-wait-memory: connections=11000 working_set={first} "
        f"after_10x_more={second} peak={peak} heap_entries={len(push.server._heap)} "
        f"recycled_and_released={released}/{len(held)}"
    )
    assert len(held) == push.server.max_time_wait
    assert released == len(held)  # recycled entries are freed, not pinned by timers
    assert len(push.server.connections) == push.server.max_time_wait
    assert second - first < 64 << 10, (first, second)
    assert len(push.server._heap) < 2 * push.server.max_time_wait + 100


# --------------------------------------------------------------------------- timer heap
def test_stack_timer_heap_stays_bounded_with_keepalive() -> None:
    server = Stack(S, seed=6, config=TcpConfig(keepalive=True))
    client = Stack(C, seed=7, config=TcpConfig(keepalive=True))
    server.listen(80)
    conn = client.connect(S, 80, now=0.0, local_port=40000)
    pump(client, server, 0.0)
    assert conn.state is State.ESTABLISHED
    rng = random.Random(8)
    now = 1.0
    sconn = next(iter(server.connections))
    ack_seq, ack_ack = sconn.rcv_nxt, sconn.snd_nxt

    def push(n: int) -> None:
        """A forged segment, which must not move the keepalive deadline (RFC 1122
        §4.2.3.6: only an acceptable segment shows the peer alive), then a genuine ACK,
        which does: every step leaves one deadline behind in the heap."""
        nonlocal now
        for _ in range(n):
            now += 0.0001
            before = sconn.next_timer()
            forged = Segment(40000, 80, rng.getrandbits(32), 0, ACK, 1000)
            server.receive_packet(encode_ipv4_tcp(C, S, forged), now)
            server.packets_to_send(now)
            assert sconn.next_timer() == before
            now += 0.0001
            genuine = Segment(40000, 80, ack_seq, ack_ack, ACK, 1000)
            server.receive_packet(encode_ipv4_tcp(C, S, genuine), now)
            server.packets_to_send(now)
            assert sconn.next_timer() == now + 7200.0
            server.handle_timer(now)

    retained, _ = growth(push, 2000, 20_000)
    assert len(server._heap) < 100, len(server._heap)
    assert retained < 64 << 10, retained
