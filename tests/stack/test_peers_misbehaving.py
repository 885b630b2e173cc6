"""Peers that vanish or misbehave (issue 8 item 6).

A peer that stops answering (retransmission limit, keepalive), one that
shrinks its window, one that acknowledges data never sent, one that never
reads.  Each ends in a clear error at the predicted time, or in correct
behaviour with bounded memory.  Run with ``-s`` for the figures quoted in
docs/security.md.
"""

from __future__ import annotations

import errno
import gc
import itertools
import random
import tracemalloc
from collections import deque
from typing import Any

from synack.scenarios.scenario import CLIENT_IP, SERVER_IP, Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.segment import ACK, SYN, Segment

C, S = ip_to_bytes(CLIENT_IP), ip_to_bytes(SERVER_IP)
MASK = 0xFFFFFFFF


def blackhole(sc: Scenario, src: str) -> None:
    """From now on every packet sent by ``src`` disappears (the host is gone)."""
    want = ip_to_bytes(src)
    sc.net.add_filter(lambda now, s, d, p: s == want)


# --------------------------------------------------------------------------- vanishing peers
def test_peer_stops_answering_mid_transfer_retransmission_limit() -> None:
    """The server vanishes mid-transfer: the client retransmits on the RFC 6298 schedule
    (RTO doubling, capped at rto_max) max_retransmits times, then fails with ETIMEDOUT at
    exactly the time that schedule predicts."""
    cfg = TcpConfig(max_retransmits=6, rto_max=16.0, rcv_buf=65536)
    sc = Scenario(61, config=cfg, path=PathConfig(delay=0.02))
    sc.listen(80, send_after_eof=True)
    ep = sc.connect(80, random.Random(61).randbytes(8_000_000))
    sc.run(until=0.5)
    assert ep.conn.state is State.ESTABLISHED and ep.conn.unsent > 0
    rto0 = ep.conn.rtt.rto
    srtt = ep.conn.rtt.srtt
    assert srtt is not None
    t_gone = sc.now
    blackhole(sc, SERVER_IP)
    sc.run(until=t_gone + 400)
    assert ep.error is not None and ep.error.errno == errno.ETIMEDOUT
    assert "6 retransmissions" in ep.error.message
    t_err = next(r["t"] for r in sc.records("error") if r["conn"] == ep.conn.name)
    fires = [
        r for r in sc.records("timer", timer="rto") if r["conn"] == ep.conn.name and r["t"] > t_gone
    ]
    assert len(fires) == cfg.max_retransmits
    # Each expiry comes one (backed-off) RTO after the previous one, doubling to rto_max.
    for prev, nxt in itertools.pairwise(fires):
        assert abs((nxt["t"] - prev["t"]) - prev["rto"]) < 1e-6
        assert nxt["rto"] == min(2 * prev["rto"], cfg.rto_max)
    assert abs(t_err - (fires[-1]["t"] + fires[-1]["rto"])) < 1e-6
    # The whole schedule from the moment the peer vanished: at most a tail loss probe
    # (2*SRTT + delayed ACK allowance) plus the sum of the backed-off timeouts.
    schedule = sum(min(rto0 * 2**i, cfg.rto_max) for i in range(cfg.max_retransmits + 1))
    bound = 2 * srtt + cfg.delayed_ack + schedule
    assert t_err - t_gone <= bound + 1e-6
    print(
        f"\nFIGURES peer-gone-rto: rto0={rto0:.3f} max_retransmits={cfg.max_retransmits} "
        f"rto_max={cfg.rto_max} etimedout_after={t_err - t_gone:.3f}s "
        f"predicted_bound={bound:.3f}s fires={[round(f['t'] - t_gone, 3) for f in fires]}"
    )


def test_idle_connection_keepalive_detects_a_vanished_peer() -> None:
    """Keepalive on (idle 10 s, interval 2 s, 3 probes): the peer vanishes while the
    connection is idle; ETIMEDOUT comes exactly idle + count * interval after the last
    segment received, after exactly 3 probes."""
    cfg = TcpConfig(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3)
    sc = Scenario(62, config=cfg, path=PathConfig(delay=0.05))
    sc.listen(80, close_when_done=False)
    ep = sc.connect(80, b"hello", close_when_done=False)
    sc.run(until=1.0)
    assert ep.conn.state is State.ESTABLISHED
    blackhole(sc, SERVER_IP)
    sc.run(until=100)
    assert ep.error is not None and ep.error.errno == errno.ETIMEDOUT
    assert "keepalive" in ep.error.message
    name = ep.conn.name
    last_in = max(r["t"] for r in sc.records("seg", conn=name, dir="in"))
    t_err = next(r["t"] for r in sc.records("error") if r["conn"] == name)
    expected = last_in + cfg.keepalive_idle + cfg.keepalive_count * cfg.keepalive_interval
    assert abs(t_err - expected) < 1e-6
    probes = [r["t"] for r in sc.records("timer", timer="keepalive") if r["conn"] == name]
    assert [round(t - last_in, 6) for t in probes] == [10.0, 12.0, 14.0]
    print(
        f"\nFIGURES peer-gone-keepalive: idle=10 interval=2 count=3 "
        f"etimedout_after_last_segment={t_err - last_in:.3f}s probes={len(probes)}"
    )


def test_keepalive_with_a_live_peer_never_fails() -> None:
    """Control: the same idle connection with the peer present stays up, its probes
    answered."""
    cfg = TcpConfig(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3)
    sc = Scenario(63, config=cfg, path=PathConfig(delay=0.05))
    sc.listen(80, close_when_done=False)
    ep = sc.connect(80, b"hello", close_when_done=False)
    sc.run(until=200)
    assert ep.error is None and ep.conn.state is State.ESTABLISHED
    assert ep.conn.stats["keepalives"] >= 15


# --------------------------------------------------------------------------- shrinking window
def test_peer_that_shrinks_its_window() -> None:
    """A crafted peer ACKs in random steps and advertises random windows, often moving
    its right edge left (RFC 9293 §3.8.6: the sender must cope).  The sender never sends
    new data beyond the latest right edge (a 1-byte zero-window probe excepted), never
    crashes, and the stream arrives intact once the peer opens up."""
    rng = random.Random(64)
    conn = Connection.open_active(C, 40000, S, 80, iss=1000, now=0.0, config=TcpConfig.classic())
    conn.segments_to_send(0.0)
    conn.receive(Segment(80, 40000, 5000, 1001, SYN | ACK, 65535, mss=1460), 0.0)
    conn.segments_to_send(0.0)
    data = rng.randbytes(400_000)
    queued = 0
    got = bytearray()
    highest = 1001  # highest sequence number the sender has sent new data up to
    acked = 1001
    wnd = 65535
    shrinks = probes = 0
    now = 0.0
    pending: deque[Segment] = deque()
    for step in range(20_000):
        now += 0.01
        queued += conn.send(data[queued : queued + 65536])
        t = conn.next_timer()
        if t is not None and t <= now:
            conn.handle_timer(now)
        for s in conn.segments_to_send(now):
            end = (s.seq + len(s.payload)) & MASK
            right = (acked + wnd) & MASK
            if s.payload and ((end - highest) & MASK) < 1 << 31 and end != highest:
                # New data: must fit the right edge, except a 1-byte probe.
                over = (end - right) & MASK
                if over and over < 1 << 31:
                    assert len(s.payload) == 1 and wnd == 0, (step, s, acked, wnd)
                    probes += 1
                highest = end
            pending.append(s)
        # The peer takes the in-order bytes that fit what it offered.
        while pending:
            s = pending.popleft()
            off = (s.seq - 1001) & MASK
            if off <= len(got) < off + len(s.payload):
                got += s.payload[len(got) - off :]
        if len(got) == len(data):
            break
        # ACK some of it with a new, often smaller, window.
        done = (acked - 1001) & MASK
        new_acked = (1001 + rng.randint(done, min(len(got), done + 2000))) & MASK
        # Random windows, often moving the right edge left; open up at the end.
        new_wnd = 65535 if step > 5_000 else rng.choice((0, 1, 100, 1460, 5000, 30000, 65535))
        if (((new_acked + new_wnd) - (acked + wnd)) & MASK) >= 1 << 31:
            shrinks += 1
        acked, wnd = new_acked, new_wnd
        conn.receive(Segment(80, 40000, 5001, acked, ACK, wnd), now)
    assert bytes(got) == data
    assert conn.state is State.ESTABLISHED
    assert shrinks > 100
    print(
        f"\nFIGURES shrinking-window: acks={step} right_edge_shrinks={shrinks} "
        f"zero_window_probes={probes} bytes={len(data)} intact=True"
    )


# --------------------------------------------------------------------------- ACK of unsent data
def _established_with_data() -> tuple[Connection, list[Segment]]:
    conn = Connection.open_active(C, 40000, S, 80, iss=1000, now=0.0, config=TcpConfig.classic())
    conn.segments_to_send(0.0)
    conn.receive(Segment(80, 40000, 5000, 1001, SYN | ACK, 65535, mss=1460), 0.0)
    conn.segments_to_send(0.0)
    conn.send(bytes(10_000))
    return conn, conn.segments_to_send(0.1)


def _snapshot(conn: Connection) -> dict[str, Any]:
    info = conn.info()
    keep = (
        "state",
        "snd_una",
        "snd_nxt",
        "rcv_nxt",
        "snd_wnd",
        "cwnd",
        "ssthresh",
        "unacked",
        "bytes_received",
    )
    return {k: info[k] for k in keep} | {
        "unsent": conn.unsent,
        "readable": conn.readable,
        "timer": conn.next_timer(),
    }


def test_ack_for_data_never_sent_is_acked_and_dropped() -> None:
    """RFC 9293 §3.10.7.4 (and RFC 5961 §5.2): SEG.ACK > SND.NXT: send an ACK, drop the
    segment (with its data), change nothing."""
    conn, sent = _established_with_data()
    assert sent
    before = _snapshot(conn)
    for delta, payload in ((1, b""), (1000, b""), (70_000, b"data"), (1 << 30, b"x" * 100)):
        seg = Segment(80, 40000, 5001, (conn.snd_nxt + delta) & MASK, ACK, 65535, payload)
        conn.receive(seg, 0.2)
        out = conn.segments_to_send(0.2)
        assert len(out) == 1
        (ack,) = out
        assert ack.flags == ACK and not ack.payload
        assert ack.seq == conn.snd_nxt and ack.ack == conn.rcv_nxt
        assert _snapshot(conn) == before
    # Same for an ACK older than SND.UNA - MAX.SND.WND (RFC 5961 §5.2).
    seg = Segment(80, 40000, 5001, (conn.snd_una - 200_000) & MASK, ACK, 65535, b"old")
    conn.receive(seg, 0.3)
    assert [s.flags for s in conn.segments_to_send(0.3)] == [ACK]
    assert _snapshot(conn) == before


def test_ack_for_data_never_sent_with_nothing_in_flight() -> None:
    conn, _ = _established_with_data()
    conn.receive(Segment(80, 40000, 5001, conn.snd_nxt, ACK, 65535), 0.2)  # all acked
    conn.segments_to_send(0.2)
    before = _snapshot(conn)
    conn.receive(Segment(80, 40000, 5001, (conn.snd_nxt + 5) & MASK, ACK, 100), 0.3)
    assert [s.flags for s in conn.segments_to_send(0.3)] == [ACK]
    assert _snapshot(conn) == before


# --------------------------------------------------------------------------- never reads
def test_peer_that_never_reads() -> None:
    """The server's application never reads.  The client's application writes forever:
    its writes stop being accepted at snd_buf, the zero-window probes go on for good with
    the backoff capped at rto_max (the connection does not time out: the peer answers),
    and memory stays flat while the writer keeps trying."""
    cfg = TcpConfig(rcv_buf=65536, snd_buf=262_144)
    sc = Scenario(65, config=cfg, path=PathConfig(delay=0.02), record_wire=False)
    probes: list[float] = []

    def tracer(rec: dict[str, Any]) -> None:
        if rec["ev"] == "timer" and rec.get("timer") == "persist":
            probes.append(rec["t"])

    sc.client.tracer = tracer
    sc.server.tracer = None
    sc.listen(80, read=False, close_when_done=False)
    conn = sc.client.connect(SERVER_IP, 80, now=0.0)
    chunk = bytes(65536)
    accepted = {"n": 0, "calls": 0}

    def writer(now: float) -> None:  # runs after every simulated event
        if conn.state is State.ESTABLISHED:
            accepted["n"] += conn.send(chunk)
            accepted["calls"] += 1

    sc.net.add_process(writer)
    sc.net.kick()
    sc.run(until=600.0)
    srv = sc.server.find(CLIENT_IP, conn.local_port, 80)
    assert srv is not None and 0 < srv.readable <= cfg.rcv_buf and srv.rcv_wnd == 0
    held = srv.readable
    assert accepted["n"] == cfg.snd_buf + held  # what the peer holds + our buffer, no more
    assert conn.unsent == cfg.snd_buf and conn.send(chunk) == 0
    gc.collect()
    tracemalloc.start()
    try:
        sc.run(until=6000.0)
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert conn.state is State.ESTABLISHED and conn.stats["probes"] == len(probes)
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert all(g <= cfg.rto_max + 1e-6 for g in gaps)
    assert all(abs(g - cfg.rto_max) < 1e-6 for g in gaps[-50:])  # capped, forever
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(gaps))  # backoff
    assert accepted["n"] == cfg.snd_buf + held and srv.readable == held
    assert retained < 64 << 10
    print(
        f"\nFIGURES never-reads: snd_buf={cfg.snd_buf} rcv_buf={cfg.rcv_buf} "
        f"write_calls={accepted['calls']} accepted={accepted['n']} probes={len(probes)} "
        f"first_gaps={[round(g, 2) for g in gaps[:8]]} last_gap={gaps[-1]:.1f} "
        f"sim_seconds=6000 retained={retained} peak={peak}"
    )
