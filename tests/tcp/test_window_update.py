"""C4 flow control: when reading sends a window update, and when it waits.

A SYN's window is never scaled (RFC 7323 §2.2), so with a 1 MB buffer the peer
first knows 64 KB.  The application's first read could then always "open" the
window by more than half, and answering that at once costs a pure ACK just
before the reply that would have carried the same window (an extra packet per
request/response connection).  While the peer still has four segments of window
it is not held up, so the update waits for the delayed-ACK timer; a peer that is
(nearly) out of window gets it at once (RFC 9293 §3.8.6.2.2).
"""

from __future__ import annotations

from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.wire.segment import FIN

A, B = b"\x0a\0\0\x01", b"\x0a\0\0\x02"


def _pair(cfg: TcpConfig) -> tuple[Connection, Connection]:
    c = Connection.open_active(A, 40000, B, 80, iss=100, now=0.0, config=cfg)
    s = Connection.open_passive(c.segments_to_send(0.0)[0], B, A, iss=900, now=0.0, config=cfg)
    for seg in s.segments_to_send(0.0):
        c.receive(seg, 0.0)
    for seg in c.segments_to_send(0.0):
        s.receive(seg, 0.0)
    assert s.state.name == "ESTABLISHED"
    return c, s


def test_c4_first_read_with_plenty_of_window_rides_on_the_reply() -> None:
    c, s = _pair(TcpConfig())
    c.send(b"GET\n")
    for seg in c.segments_to_send(0.01):
        s.receive(seg, 0.01)
    assert s.segments_to_send(0.01) == []  # delayed ACK
    assert s.recv() == b"GET\n"
    assert s.segments_to_send(0.01) == []  # no pure window update yet
    s.send(b"OK\n")
    s.close(0.01)
    out = s.segments_to_send(0.01)
    assert len(out) == 1 and out[0].flags & FIN and bytes(out[0].payload) == b"OK\n"
    assert out[0].window << s.rcv_wscale > 65535  # the opened window rode along


def test_c4_the_deferred_update_still_goes_out_without_a_reply() -> None:
    c, s = _pair(TcpConfig(delayed_ack=0.04))
    c.send(b"GET\n")
    for seg in c.segments_to_send(0.01):
        s.receive(seg, 0.01)
    s.recv()
    at = s.next_timer()
    assert at is not None and at <= 0.01 + 0.04 + 1e-9
    s.handle_timer(at)
    out = s.segments_to_send(at)
    assert len(out) == 1 and not out[0].payload
    assert out[0].window << s.rcv_wscale > 65535


def test_c4_a_peer_nearly_out_of_window_gets_the_update_at_once() -> None:
    cfg = TcpConfig(rcv_buf=8 * 1460, window_scaling=False)
    c, s = _pair(cfg)
    c.send(bytes(7 * 1460))
    now = 0.01
    for _ in range(5):
        for seg in c.segments_to_send(now):
            s.receive(seg, now)
        for seg in s.segments_to_send(now):
            c.receive(seg, now)
        now += 0.01
    assert s.readable >= 6 * 1460  # the peer knows little window now
    s.recv()
    out = s.segments_to_send(now)
    assert len(out) == 1 and not out[0].payload and out[0].window >= 6 * 1460
