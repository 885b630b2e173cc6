"""Scale: many connections in one stack, big windows (issue 7, "Scale").

* Memory: 10,000 idle ESTABLISHED connections in one :class:`Stack` cost well
  under 4 KB each beyond their send and receive buffers (tracemalloc), and a
  connection in TIME-WAIT (RFC 9293 §3.10.7.4) keeps no more than that.
* Loss detection: RACK (RFC 8985 §6.2) and the RFC 6675 §4 IsLost() scan cost
  per ACK what the ACK changed, not the size of the window; the scoreboard
  counts the records its scans visit, which the test bounds per ACK.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import State
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp
from synack.wire.segment import ACK, FIN, SYN, Segment

SERVER = ip_to_bytes("10.0.0.2")
CLIENT = ip_to_bytes("10.0.0.1")
N = 10_000
BUDGET = 4096  # bytes per connection beyond its buffers (issue 7 target)


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and what it alone refers to (for a buffer object)."""
    if obj is None or isinstance(obj, (int, float, bool, type)) or id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if not isinstance(obj, (bytes, bytearray, memoryview)):
        size += sum(deep_size(r, seen) for r in gc.get_referents(obj))
    return size


def buffers(conn: Connection) -> int:
    """What the send and receive buffers hold (the part the budget excludes)."""
    return deep_size(conn._buf, set()) + deep_size(conn._rbuf, set())


def establish(stack: Stack, count: int, now: float) -> list[Connection]:
    """Open ``count`` connections to ``stack`` from crafted client segments (a SYN
    with MSS, window scale, SACK-permitted and timestamps, then the final ACK)."""
    lst = stack.listen(80, backlog=count)
    out: list[Connection] = []
    batch = 250
    for first in range(0, count, batch):
        ports = range(1024 + first, 1024 + min(first + batch, count))
        for port in ports:
            syn = Segment(
                port,
                80,
                port * 7919,
                0,
                SYN,
                65535,
                mss=1460,
                wscale=7,
                sack_permitted=True,
                tsval=1000,
                tsecr=0,
            )
            stack.receive_packet(encode_ipv4_tcp(CLIENT, SERVER, syn), now)
        for pkt in stack.packets_to_send(now):
            _, _, synack = decode_ipv4_tcp(pkt)
            assert synack.flags == SYN | ACK
            ack = Segment(
                synack.dst_port,
                80,
                (synack.ack) & 0xFFFFFFFF,
                (synack.seq + 1) & 0xFFFFFFFF,
                ACK,
                512,
                tsval=1001,
                tsecr=synack.tsval,
            )
            stack.receive_packet(encode_ipv4_tcp(CLIENT, SERVER, ack), now)
        assert not stack.packets_to_send(now)
        while (conn := lst.accept()) is not None:
            out.append(conn)
        for _ in stack.events():
            pass
    return out


def test_ten_thousand_idle_connections_fit_in_4kb_each_beyond_buffers() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        stack = Stack(SERVER, isn_secret=b"k" * 16, seed=1, max_half_open=N, max_connections=N + 10)
        base = tracemalloc.get_traced_memory()[0]
        conns = establish(stack, N, 1.0)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(conns) == N and all(c.state is State.ESTABLISHED for c in conns)
    assert stack.next_timer() is None  # idle: no timer entries held
    beyond = (used - sum(map(buffers, conns)) - sys.getsizeof(conns)) / N
    assert beyond < BUDGET, f"{beyond:.0f} B per idle connection beyond its buffers"


def test_time_wait_costs_less_than_established() -> None:
    """Connections the server closed first wait in TIME-WAIT (RFC 9293 §3.10.7.4) with
    what that state needs (4-tuple, sequence numbers, TS.Recent, the 2*MSL timer): no
    send records, nothing beyond an idle connection but the timer entry."""
    count = 2000
    gc.collect()
    tracemalloc.start()
    try:
        stack = Stack(SERVER, isn_secret=b"k" * 16, seed=1, max_half_open=count)
        base = tracemalloc.get_traced_memory()[0]
        conns = establish(stack, count, 1.0)
        for conn in conns:
            conn.send(b"z" * 3000)
            conn.close(2.0)
        for pkt in stack.packets_to_send(2.0):
            _, _, seg = decode_ipv4_tcp(pkt)
            if seg.flags & FIN:  # acknowledge the data and FIN, and close our side
                end = (seg.seq + len(seg.payload) + 1) & 0xFFFFFFFF
                fin = Segment(
                    seg.dst_port, 80, seg.ack, end, ACK | FIN, 512, tsval=1002, tsecr=seg.tsval
                )
                stack.receive_packet(encode_ipv4_tcp(CLIENT, SERVER, fin), 2.1)
        stack.packets_to_send(2.1)
        for _ in stack.events():
            pass
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert all(c.state is State.TIME_WAIT for c in conns)
    assert all(not c._sb.segs for c in conns)  # acknowledged records released at once
    per_tw = (used - sum(map(buffers, conns)) - sys.getsizeof(conns)) / count
    assert per_tw < BUDGET * 3 / 4, f"{per_tw:.0f} B per TIME-WAIT connection"


def test_big_window_recovery_costs_per_ack_what_changed() -> None:
    """Slow start overshoots a 1-BDP queue: hundreds of segments are lost from a window
    of thousands.  Records visited by the loss-detection scans stay a small number per
    ACK (they used to be the whole window each time: quadratic in the window)."""
    rate, rtt = 400e6, 0.04
    path = PathConfig(delay=rtt / 2, rate_bps=rate, queue_bytes=int(rate * rtt / 8))
    cfg = TcpConfig(rcv_buf=32 << 20, snd_buf=32 << 20)
    s = Scenario(1, path=path, config=cfg, record_wire=False)
    s.client.tracer = s.server.tracer = None
    size = 12_000_000
    s.listen(80, keep_data=False)
    ep = s.connect(80, b"\0" * size, keep_data=False)
    sb = ep.conn._sb
    peak = 0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, len(sb))
        eps = s.server_endpoints
        return bool(eps) and eps[0].received_count >= size

    s.run(until=60.0, stop=done)
    assert done()
    info = ep.conn.info()
    assert info["lost_segments"] > 100 and info["rto_fired"] == 0
    assert peak > 3000  # a window of thousands of segments was outstanding
    per_ack = sb.examined / info["segs_in"]
    assert per_ack < 20, f"{per_ack:.1f} scoreboard records examined per ACK"
