"""The urgent pointer (RFC 9293 §3.8.5, MUST-30 to MUST-32, §3.10.7.4 sixth step) with
RFC 6093's advice: urgent bytes stay in the stream (in line), the pointer points to the
octet after the last urgent byte, the receiver tracks RCV.UP and tells the application.

Crafted segments against one Connection (the Tcb helpers of test_connection_crafted),
the raw-bytes demultiplexer of the Stack (test_fast_path's pair), a simulated transfer
between two stacks, the socket API and a scapy cross-check of the encoding.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from scapy.all import IP, TCP

import synack.tcp.events as ev
from helpers.crafted import IRS, ISS, MASK, Tcb, established
from helpers.pairs import A_IP, B_IP, connected, stack_pair
from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.trace.narrate import render
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import describe_packet, encode_ipv4_tcp
from synack.wire.segment import ACK, FIN, PSH, URG, Segment


def urgent_events(tcb: Tcb) -> list[int]:
    return [e.mark for e in tcb.events if isinstance(e, ev.Urgent)]


# ------------------------------------------------------------------ receiving
def test_must30_urgent_bytes_stay_in_line_and_the_mark_is_reported() -> None:
    """MUST-30/MUST-32, RFC 6093 §4-§6: a segment with URG and pointer 3 is data like any
    other (all five bytes readable, in order); RCV.UP = SEG.SEQ + 3, the octet after the
    last urgent byte, and the application is told once (an Urgent event)."""
    tcb = established()
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK | PSH | URG, payload=b"hello", urgent=3), 1.0)
    assert tcb.conn.readable == 5
    assert urgent_events(tcb) == [(IRS + 1 + 3) & MASK]
    assert tcb.conn.urgent_remaining == 3  # SHLD-13: how much urgent data is left to read
    assert out == [] or all(s.ack == IRS + 6 for s in out)
    assert tcb.conn.recv(2) == b"he"
    assert tcb.conn.urgent_remaining == 1  # the next byte is the last urgent one
    assert tcb.conn.recv() == b"llo"
    assert tcb.conn.urgent_remaining == 0


def test_must32_user_told_again_only_when_the_urgent_pointer_advances() -> None:
    """MUST-32: inform on a first urgent pointer and whenever it advances, not again for
    the same urgent data (§3.10.7.4 sixth step: RCV.UP <- max(RCV.UP, SEG.UP))."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK | URG, payload=b"ab", urgent=2), 1.0)
    tcb.feed(tcb.peer(IRS + 3, ISS + 1, ACK | URG, payload=b"cd", urgent=0), 1.1)  # behind
    tcb.feed(tcb.peer(IRS + 5, ISS + 1, ACK | URG, payload=b"ef", urgent=2), 1.2)  # advances
    tcb.feed(tcb.peer(IRS + 7, ISS + 1, ACK | URG, payload=b"gh", urgent=0), 1.3)  # same mark
    assert urgent_events(tcb) == [IRS + 3, IRS + 7]
    assert tcb.conn.recv() == b"abcdefgh"


def test_urgent_pointer_beyond_the_data_is_reported_before_the_data_arrives() -> None:
    """RFC 9293 §3.8.5: the urgent pointer may point past the segment's text; the mark
    is reported at once and RCV.UP waits for the bytes, which arrive in line."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK, payload=b"xy", urgent=0), 1.0)
    tcb.feed(tcb.peer(IRS + 3, ISS + 1, ACK | URG, payload=b"", urgent=100), 1.1)
    assert urgent_events(tcb) == [IRS + 103]
    assert tcb.conn.urgent_remaining == 102
    tcb.feed(tcb.peer(IRS + 3, ISS + 1, ACK, payload=bytes(100)), 1.2)
    assert tcb.conn.recv() == b"xy" + bytes(100)
    assert tcb.conn.urgent_remaining == 0


def test_urgent_pointer_on_data_already_read_is_ignored() -> None:
    """A mark at or before the bytes the application has read is no news (RFC 9293
    §3.10.7.4: signal only if RCV.UP is in advance of the data consumed)."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK, payload=b"abcd"), 1.0)
    assert tcb.conn.recv() == b"abcd"
    tcb.feed(tcb.peer(IRS + 5, ISS + 1, ACK | URG, payload=b"e", urgent=0), 1.1)
    assert urgent_events(tcb) == []
    tcb.feed(tcb.peer(IRS + 6, ISS + 1, ACK | URG, payload=b"f", urgent=1), 1.2)
    assert urgent_events(tcb) == [IRS + 7]
    assert tcb.conn.recv() == b"ef"


def test_urg_after_the_peers_fin_is_ignored() -> None:
    """§3.10.7.4: the sixth step (URG) comes before the eighth (FIN), so a FIN segment's
    own mark counts; in CLOSE-WAIT (a FIN has arrived) the URG bit is ignored."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK | URG | FIN, payload=b"z", urgent=1), 1.0)
    assert tcb.state.name == "CLOSE_WAIT"
    tcb.feed(tcb.peer(IRS + 3, ISS + 1, ACK | URG, urgent=5), 1.1)
    assert urgent_events(tcb) == [IRS + 2]
    assert tcb.conn.recv() == b"z"


def test_urg_segment_from_the_stack_reaches_the_application_not_the_fast_path() -> None:
    """The raw-bytes demultiplexer never predicts a URG segment (it would skip the sixth
    step): the bytes reach the application in order and the mark is reported."""
    _, b, ca, cb = stack_pair()
    b.stats.clear()
    seg = Segment(
        ca.local_port,
        cb.local_port,
        (cb.irs + cb._rnxt) & MASK,
        (cb.iss + cb._una) & MASK,
        ACK | PSH | URG,
        cb.snd_wnd >> cb.snd_wscale,
        b"abc!def",
        urgent=4,
    )
    if cb.ts_ok:
        seg.tsval, seg.tsecr = cb.ts_recent, 0
    list(b.events())  # drain the handshake's events
    b.receive_packet(encode_ipv4_tcp(ip_to_bytes(A_IP), ip_to_bytes(B_IP), seg), 1.0)
    assert b.stats["segs_fast"] == 0
    events = list(b.events())
    assert cb.recv() == b"abc!def"
    assert [e.mark for e in events if isinstance(e, ev.Urgent)] == [(cb.irs + 5) & MASK]
    # Later plain data keeps taking the fast path and does not disturb the stream.
    seg2 = Segment(
        ca.local_port,
        cb.local_port,
        (cb.irs + cb._rnxt) & MASK,
        (cb.iss + cb._una) & MASK,
        ACK | PSH,
        cb.snd_wnd >> cb.snd_wscale,
        b"gh",
    )
    if cb.ts_ok:
        seg2.tsval, seg2.tsecr = cb.ts_recent, 0
    b.receive_packet(encode_ipv4_tcp(ip_to_bytes(A_IP), ip_to_bytes(B_IP), seg2), 1.1)
    assert b.stats["segs_fast"] == 1 and cb.recv() == b"gh"


# ------------------------------------------------------------------ sending
def test_must31_send_urgent_points_after_the_last_urgent_byte() -> None:
    """MUST-31 (RFC 6093 §4): SND.UP is the octet after the last urgent byte; every
    segment starting before it carries URG and the offset to it."""
    tcb = established()
    assert tcb.conn.send(b"abc", urgent=True) == 3
    out = tcb.out(1.0)
    assert len(out) == 1 and out[0].flags & URG and out[0].urgent == 3
    assert out[0].payload == b"abc"


def test_urgent_mark_rides_every_segment_until_acknowledged() -> None:
    """URG stays on every segment (new, retransmitted) until SND.UNA passes SND.UP."""
    tcb = established()
    tcb.conn.send(bytes(2000), urgent=True)
    out = tcb.out(1.0)
    assert [(len(s.payload), bool(s.flags & URG), s.urgent) for s in out] == [
        (1460, True, 2000),
        (540, True, 540),
    ]
    # RTO: the first segment goes again, still marked.
    resent = [s for _, s in tcb.run_timers(tcb.conn.next_timer() or 0)]
    assert resent and resent[0].seq == ISS + 1 and resent[0].flags & URG
    assert resent[0].urgent == 2000
    t = tcb.conn.next_timer() or 5.0
    tcb.feed(tcb.peer(IRS + 1, ISS + 2001), t - 0.001)
    tcb.conn.send(b"plain")
    later = tcb.out(t)
    assert later and not later[0].flags & URG and later[0].urgent == 0


def test_urgent_send_is_not_held_by_nagle() -> None:
    """Urgent data goes out at once (as Linux pushes MSG_OOB), Nagle notwithstanding."""
    tcb = established()
    tcb.conn.send(b"x")
    assert len(tcb.out(1.0)) == 1  # one small segment in flight: Nagle holds the next
    tcb.conn.send(b"!", urgent=True)
    out = tcb.out(1.0)
    assert len(out) == 1 and out[0].payload == b"!" and out[0].urgent == 1


def test_urgent_offset_past_65535_is_capped() -> None:
    """The 16-bit field cannot reach a mark more than 65535 octets ahead: such segments
    say 65535 (pointing into data not yet sent), as Linux does."""
    tcb = established(
        TcpConfig(
            snd_buf=1 << 20, rcv_buf=65535, window_scaling=False, timestamps=False, sack=False
        )
    )
    tcb.conn.send(bytes(100_000), urgent=True)
    out = tcb.out(1.0)
    assert out and all(s.flags & URG and s.urgent == 0xFFFF for s in out)


def test_scapy_decodes_our_urgent_segment() -> None:
    """Cross-check with scapy: the URG flag and the urgent pointer field as encoded."""
    tcb = established()
    tcb.conn.send(b"hello!", urgent=True)
    seg = tcb.out(1.0)[0]
    pkt = IP(encode_ipv4_tcp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), seg))
    assert "U" in str(pkt[TCP].flags) and pkt[TCP].urgptr == 6
    assert bytes(pkt[TCP].payload) == b"hello!"
    assert "urg 6" in describe_packet(
        encode_ipv4_tcp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), seg)
    )


# ------------------------------------------------------------------ trace
def test_trace_and_explain_show_the_urgent_pointer() -> None:
    """The trace's seg records carry ``urg`` (docs/trace.md) and explain shows urg=N."""
    tcb = established()
    tcb.conn.send(b"abc", urgent=True)
    tcb.out(1.0)
    recs = [r for r in tcb.trace if r["ev"] == "seg" and r["dir"] == "out"]
    assert recs[-1]["urg"] == 3
    tcb.trace.clear()
    tcb.feed(tcb.peer(IRS + 1, ISS + 4, ACK | URG, payload=b"xy", urgent=1), 1.1)
    ins = [r for r in tcb.trace if r["ev"] == "seg" and r["dir"] == "in"]
    assert ins[-1]["urg"] == 1
    assert any(r["ev"] == "urgent" and r["mark"] == IRS + 2 for r in tcb.trace)


def test_explain_labels_urgent_segments() -> None:
    sc = Scenario(3, path=PathConfig(delay=0.01))
    sc.listen(80, close_when_done=False)
    ep = sc.connect(80, close_when_done=False)
    sc.run(until=0.1)
    ep.conn.send(b"!", urgent=True)
    sc.net.kick()
    sc.run(until=0.5)
    text = "\n".join(render(sc.trace))
    assert "urg=1" in text


# ------------------------------------------------------------ two stacks, simulated
def test_urgent_transfer_between_two_stacks_survives_loss() -> None:
    """A simulated transfer: data, one urgent byte, more data; the urgent segment is lost
    once.  The receiver gets every byte in order (nothing taken out of band) and one
    Urgent event for the mark after the urgent byte."""
    sc = Scenario(7, path=PathConfig(delay=0.02))
    sc.listen(80, close_when_done=False)
    ep = sc.connect(80, close_when_done=False)
    sc.run(until=0.2)
    srv = sc.server_endpoint
    head, tail = bytes(range(200)) * 10, b"after" * 300
    sc.drop_next(lambda s: bool(s.flags & URG), src="10.0.0.1")
    conn = ep.conn
    assert conn.send(head) == len(head)
    assert conn.send(b"!", urgent=True) == 1
    assert conn.send(tail) == len(tail)
    sc.net.kick()
    sc.run(until=5.0)
    assert bytes(srv.received) == head + b"!" + tail
    marks = [r["mark"] for r in sc.records("urgent")]
    assert marks == [(srv.conn.irs + 1 + len(head) + 1) & MASK]
    urg = sc.sent(src="10.0.0.1", predicate=lambda s: bool(s.flags & URG))
    assert len(urg) >= 2  # the lost one and its retransmission both marked


# ------------------------------------------------------------------ socket API
def test_socket_msg_oob_in_line_with_sockatmark(hosts: Any) -> None:
    """The socket surface, Linux with SO_OOBINLINE: send(MSG_OOB) marks the last byte;
    recv stops short of it, sockatmark() is then true, and the urgent byte is read in
    line; recv(MSG_OOB) is EINVAL; SO_OOBINLINE reads 1 and cannot be turned off."""
    a, b = hosts
    client, server, listener = connected(a, b)
    try:
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE) == 1
        with pytest.raises(OSError) as info:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 0)
        assert info.value.errno == errno.EINVAL
        server.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        client.sendall(b"0123456789")
        assert client.send(b"ab!", socket.MSG_OOB) == 3
        client.sendall(b"tail")
        got = bytearray()
        while not server.sockatmark():
            got += server.recv(100)
            assert len(got) <= 12
        assert bytes(got) == b"0123456789ab"
        with pytest.raises(OSError) as info:
            server.recv(1, socket.MSG_OOB)
        assert info.value.errno == errno.EINVAL
        rest = bytearray()
        while len(rest) < 5:
            rest += server.recv(100)
        assert bytes(rest) == b"!tail" and not server.sockatmark()
    finally:
        for s in (client, server, listener):
            s.close()
