"""The byte stream: flow control, full duplex, sequence-number wrap and why the
ISN is random (C1, C4, C5, C14, C15, C16).

Every transfer is compared byte for byte; windows and sequence numbers are
checked on the wire.
"""

from __future__ import annotations

import itertools
import random

import pytest

from synack.scenarios.apps import Endpoint
from synack.scenarios.scenario import CLIENT_IP, SERVER_IP, Scenario, WireEvent
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.tcp.isn import fixed_isn
from synack.tcp.states import State
from synack.wire.packet import decode_ipv4_tcp

MSL = 1.0
MASK = 0xFFFFFFFF
CLIENT_B = bytes([10, 0, 0, 1])


def times(events: list[WireEvent]) -> list[float]:
    return [round(w.t, 9) for w in events]


def sdiff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number."""
    d = (a - b) & MASK
    return d - (1 << 32) if d >= 1 << 31 else d


def data_from(s: Scenario, src: str) -> list[WireEvent]:
    return s.sent(src, lambda g: bool(g.payload))


def check_within_advertised_window(s: Scenario, sender: str, receiver: str) -> int:
    """Every data segment ``sender`` puts on the wire lies inside the window the
    receiver last advertised to it (ACK + WIN of the latest segment delivered to
    the sender), except one-byte zero-window probes at the right edge (C4).
    Returns the number of probes seen."""
    right: int | None = None
    zero = False
    probes = 0
    checked = 0
    for w in s.wire:
        if w.seg is None:
            continue
        if w.kind == "deliver" and w.src == receiver and w.dst == sender and w.seg.flags & 0x10:
            right = (w.seg.ack + w.seg.window) & MASK
            zero = w.seg.window == 0
        elif w.kind == "send" and w.src == sender and w.seg.payload and right is not None:
            end = (w.seg.seq + len(w.seg.payload)) & MASK
            if zero and len(w.seg.payload) == 1 and w.seg.seq == right:
                probes += 1
                continue
            assert sdiff(end, right) <= 0, (
                f"segment {w.seg} at {w.t} ends {sdiff(end, right)} bytes past the window"
            )
            checked += 1
    assert checked > 0
    return probes


# ---------------------------------------------------------------------- C4 flow control
def reader_later(s: Scenario, at: float) -> None:
    """Make the (single) server endpoint start reading at virtual time ``at``."""

    def start(now: float) -> None:
        ep = s.server_endpoint
        ep.read = True
        ep.close_when_done = True
        ep.pump(now)

    s.net.call_at(at, start)


def test_c4_zero_window_persist_probes_and_resume() -> None:
    """C4: the server (rcv_buf 8192, MSS 1024) reads nothing while the client sends
    64 KB.  The client stops at exactly 8192 bytes delivered; the server's window
    falls to 0 (ACK arrives at 0.2 s); the client probes the zero window with
    backed-off intervals (1.2, 3.2, 7.2, 15.2, 31.2 s: 1, 2, 4, 8, 16 s); every
    data segment stays inside the last advertised window; when the application
    starts reading at 40 s the transfer resumes and completes byte-exact."""
    cfg = TcpConfig.classic(msl=MSL, mss=1024, rcv_buf=8192)
    s = Scenario(41, config=cfg)
    s.listen(80, read=False, close_when_done=False)
    data = random.Random(41).randbytes(64 * 1024)
    ep = s.connect(80, data)
    reader_later(s, 40.0)
    s.run(until=39.9)
    srv = s.server_endpoint
    assert srv.conn.readable == 8192 and srv.received == b""
    assert srv.conn.rcv_wnd == 0
    assert ep.conn.info()["bytes_acked"] == 8192
    assert ep.conn.unsent == len(data) - 8192
    assert sum(len(w.seg.payload) for w in data_from(s, CLIENT_IP) if w.t < 1) == 8192
    zero_acks = [w for w in s.sent(SERVER_IP) if w.seg.window == 0 and w.t < 1]
    assert times(zero_acks) == [0.15]
    probes = [w for w in data_from(s, CLIENT_IP) if len(w.seg.payload) == 1]
    assert times(probes) == [1.2, 3.2, 7.2, 15.2, 31.2]
    gaps = [round(b.t - a.t, 9) for a, b in itertools.pairwise(probes)]
    assert gaps == [2.0, 4.0, 8.0, 16.0]
    persist = s.records("timer", conn=ep.conn.name, timer="persist")
    assert [round(r["t"], 9) for r in persist] == [1.2, 3.2, 7.2, 15.2, 31.2]
    assert {r["concept"] for r in persist} == {"C4"}
    # Each probe is answered with ACK, window still 0 (RFC 9293 §3.8.6.1).
    answers = [w for w in s.sent(SERVER_IP) if w.t > 1]
    assert times(answers) == [1.25, 3.25, 7.25, 15.25, 31.25]
    assert {w.seg.window for w in answers} == {0}
    # Everything is queued, so the client's FIN is queued too, behind 56 KB of data.
    assert ep.conn.state is State.FIN_WAIT_1 and ep.error is None

    s.run(until=200)
    assert bytes(srv.received) == data
    assert ep.error is None and srv.error is None
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED
    resumed = [w for w in data_from(s, CLIENT_IP) if w.t >= 40]
    assert resumed and resumed[0].t == pytest.approx(40.05)  # on the window update
    assert check_within_advertised_window(s, CLIENT_IP, SERVER_IP) == 5


def test_c4_window_not_multiple_of_mss_is_filled_then_probed() -> None:
    """C4: rcv_buf 8192 with MSS 1460 (5 full segments = 7300 bytes leave an
    892-byte window).  Within a few seconds the client must fill the receiver's
    buffer to exactly 8192 bytes (RFC 9293 §3.8.6.2.1 rule 4: pushed data is sent
    when the override timeout, 0.1-1 s, expires) and then probe the zero window."""
    s = Scenario(42, server_config=TcpConfig.classic(msl=MSL, rcv_buf=8192))
    s.listen(80, read=False, close_when_done=False)
    data = random.Random(42).randbytes(64 * 1024)
    ep = s.connect(80, data)
    s.run(until=5.0)
    assert s.server_endpoint.conn.readable == 8192
    assert ep.conn.info()["probes"] >= 1


class RecordReader(Endpoint):
    """Reads only whole 8192-byte records (or what is left at EOF)."""

    def pump(self, now: float) -> None:
        self.read = self.conn.readable >= 8192 or self.conn.eof_received
        super().pump(now)


def test_c4_record_reader_does_not_deadlock() -> None:
    """C4, C1: the server reads only complete 8192-byte records and its buffer is
    8192 bytes; the client sends 64 KB with MSS 1460.  RFC 9293 forbids the sender
    from holding pushed data indefinitely, so the transfer must complete."""
    s = Scenario(43, server_config=TcpConfig.classic(msl=MSL, rcv_buf=8192))
    s.listen(80, factory=lambda conn: RecordReader(conn, b""))
    data = random.Random(43).randbytes(64 * 1024)
    ep = s.connect(80, data)
    s.run(until=120)
    assert bytes(s.server_endpoint.received) == data
    assert ep.conn.state is State.CLOSED


def test_c4_resume_after_zero_window_starts_at_snd_una() -> None:
    """C4: the probe byte was refused (the answer acks SND.UNA with window 0), so when
    the window opens the sender resumes at SND.UNA; on a lossless path the receiver
    sees no out-of-order data and the sender no retransmission or window cut."""
    cfg = TcpConfig.classic(msl=MSL, mss=1024, rcv_buf=8192)
    s = Scenario(44, config=cfg)
    s.listen(80, read=False, close_when_done=False)
    data = random.Random(44).randbytes(64 * 1024)
    ep = s.connect(80, data)
    reader_later(s, 10.0)
    s.run(until=60)
    assert bytes(s.server_endpoint.received) == data
    update = next(w for w in s.sent(SERVER_IP) if w.t >= 10)
    first = next(w for w in data_from(s, CLIENT_IP) if w.t >= 10)
    assert first.seg.seq == update.seg.ack
    assert s.server_endpoint.conn.info()["ooo_segs_in"] == 0
    assert ep.conn.info()["fast_retransmits"] == 0


# ------------------------------------------------------------------------ C5 full duplex
def test_c5_c1_full_duplex_4mb_each_way_with_loss() -> None:
    """C5, C1: both sides send 4 MB at once over a 0.5 % loss path; both streams
    arrive byte-exact, both ends close cleanly, and data segments of the two
    directions are in flight over the same period (most data segments carry an
    ACK that advances the other direction)."""
    n = 4 << 20
    rnd = random.Random(51)
    up, down = rnd.randbytes(n), rnd.randbytes(n)
    s = Scenario(51, path=PathConfig(delay=0.05, loss=0.005), config=TcpConfig.classic(msl=MSL))
    s.listen(80, payload=down)
    ep = s.connect(80, up)
    s.run(until=600)
    srv = s.server_endpoint
    assert len(srv.received) == n and bytes(srv.received) == up
    assert len(ep.received) == n and bytes(ep.received) == down
    assert ep.error is None and srv.error is None
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED
    assert any(w.kind == "drop" and w.reason == "loss" for w in s.wire)
    dc, ds = data_from(s, CLIENT_IP), data_from(s, SERVER_IP)
    start = max(dc[0].t, ds[0].t)
    end = min(dc[-1].t, ds[-1].t)
    span = max(dc[-1].t, ds[-1].t) - min(dc[0].t, ds[0].t)
    assert dc[0].t == pytest.approx(0.1) and ds[0].t == pytest.approx(0.15)
    assert end - start > 0.5 * span, (start, end, span)
    # Piggybacking: a large share of each side's acknowledgement progress rides on its
    # own data segments rather than on pure ACKs (RFC 9293 §3.10: every segment
    # carries the current acknowledgement).
    for src in (CLIENT_IP, SERVER_IP):
        segs = [w.seg for w in s.sent(src=src) if w.seg is not None and w.t >= start]
        on_data = on_pure = 0
        for prev, cur in itertools.pairwise(segs):
            if sdiff(cur.ack, prev.ack) > 0:
                if cur.payload:
                    on_data += 1
                else:
                    on_pure += 1
        assert on_data > 0.3 * (on_data + on_pure), (src, on_data, on_pure)


# ------------------------------------------------------------------ C16 sequence wrap
def test_c16_transfer_across_sequence_wrap_both_directions() -> None:
    """C16: ISNs 2**32 - 5000 (client) and 2**32 - 300 (server): 1 MB each way over a
    2 % loss path crosses 2**32 in both directions within the first segments;
    every byte arrives once, in order; acknowledgements wrap too."""
    n = 1 << 20
    rnd = random.Random(61)
    up, down = rnd.randbytes(n), rnd.randbytes(n)
    s = Scenario(
        61,
        path=PathConfig(delay=0.05, loss=0.02),
        config=TcpConfig.classic(msl=MSL),
        client_isn=fixed_isn(2**32 - 5000),
        server_isn=fixed_isn(2**32 - 300),
    )
    s.listen(80, payload=down)
    ep = s.connect(80, up)
    s.run(until=600)
    srv = s.server_endpoint
    assert ep.conn.iss == 2**32 - 5000 and srv.conn.iss == 2**32 - 300
    assert bytes(srv.received) == up and bytes(ep.received) == down
    assert ep.error is None and srv.error is None
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED
    assert any(w.kind == "drop" and w.reason == "loss" for w in s.wire)
    for src, isn in ((CLIENT_IP, 2**32 - 5000), (SERVER_IP, 2**32 - 300)):
        segs = data_from(s, src)
        assert any(w.seg.seq > isn for w in segs), "no data before the wrap"
        assert any(w.seg.seq < 1 << 20 for w in segs), "no data after the wrap"
        # One segment straddles 2**32 (seq before it, end after it) or one starts at 0.
        assert any(w.seg.seq + len(w.seg.payload) > 2**32 or w.seg.seq == 0 for w in segs)
        # Final cumulative ACK from the other side: ISN + 1 + n + 1 (FIN), mod 2**32.
        other = SERVER_IP if src == CLIENT_IP else CLIENT_IP
        final = (isn + n + 2) & MASK
        assert any(w.seg.ack == final for w in s.sent(other))
    retrans = ep.conn.info()["retransmits"] + srv.conn.info()["retransmits"]
    assert retrans > 0


# ------------------------------------------------------------------ C15 why random ISNs
def stale_segment_run(fixed: bool) -> tuple[bytes, bytes, Scenario]:
    """Connection 1 (client port 40000) sends OLD bytes; one of its data packets is
    duplicated by the network and held back.  The client aborts (RST) at 0.5 s and
    immediately reconnects from the same port; the held duplicate arrives in
    connection 2 at 0.74 s, before connection 2 sends its own NEW bytes (0.8 s).
    Returns (what the server application read on connection 2, the NEW bytes, s)."""
    kw = {"client_isn": fixed_isn(1000), "server_isn": fixed_isn(5000)} if fixed else {}
    s = Scenario(71, config=TcpConfig.classic(msl=MSL), **kw)
    lst = s.server.listen(80)
    held: list[bytes] = []

    def tap(now: float, kind: str, src: bytes, dst: bytes, pkt: bytes, _r: str | None) -> None:
        if kind == "send" and src == CLIENT_B and not held and decode_ipv4_tcp(pkt)[2].payload:
            held.append(pkt)

    s.net.add_tap(tap)
    old, new = b"OLD-DATA" * 100, b"NEW-DATA" * 100
    c1 = s.client.connect(SERVER_IP, 80, now=0.0, local_port=40000)
    s.net.kick()
    s.run(until=0.19)
    srv1 = lst.accept()
    assert srv1 is not None
    c1.send(old)
    s.net.kick()
    s.run(until=0.5)
    assert srv1.recv() == old
    c1.abort(s.now)
    s.net.kick()
    c2 = s.client.connect(SERVER_IP, 80, now=s.now, local_port=40000)
    s.net.kick()
    s.run(until=0.69)
    srv2 = lst.accept()
    assert srv2 is not None and srv2.state is State.ESTABLISHED
    assert srv1.state is State.CLOSED and c2.state is State.ESTABLISHED
    assert (c1.iss == c2.iss) is fixed
    s.net.inject(held[0])  # the stale duplicate, 0.05 s in flight
    s.run(until=0.8)
    c2.send(new)
    s.net.kick()
    s.run(until=5.0)
    assert c2.info()["bytes_acked"] == len(new)  # the client believes NEW was delivered
    return srv2.recv(), new, s


def test_c15_random_isn_keeps_stale_segment_out() -> None:
    """C15: with the RFC 6528 ISN, connection 2's ISN has moved on (clock term), the
    stale segment falls outside its window and is dropped; the server app reads
    exactly the NEW bytes."""
    got, new, s = stale_segment_run(fixed=False)
    assert got == new
    drops = [r for r in s.records("drop") if r["reason"] in ("duplicate", "out_of_window")]
    assert [round(r["t"], 9) for r in drops] == [0.74]


def test_c15_fixed_isn_lets_stale_segment_corrupt_new_connection() -> None:
    """C15: with the same ISN for both incarnations the stale segment lands exactly
    at connection 2's RCV.NXT and is accepted as new data; the real NEW bytes are
    then discarded as duplicates: the stream is silently corrupted."""
    got, new, s = stale_segment_run(fixed=True)
    assert got == b"OLD-DATA" * 100
    assert got != new and len(got) == len(new)
    dup = [r for r in s.records("drop") if r["reason"] == "duplicate"]
    assert [round(r["t"], 9) for r in dup] == [0.85]  # NEW arrives 0.85 s, dropped
