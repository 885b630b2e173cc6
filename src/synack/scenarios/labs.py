"""Guided scenarios: each concept of ``docs/concepts.md`` reproduced on demand.

Each lab makes one thing happen (lose the SYN-ACK, close from both ends at once, let
a stale segment reach a reconnected pair...) on :class:`~.lab.LabScript`; ``LABS``
holds them by name.  The machinery (:class:`~.lab.Lab`, :class:`~.lab.LabRun`,
:func:`~.lab.write_outputs`) is in :mod:`synack.scenarios.lab`.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from typing import Any

from ..sim import PathConfig
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.isn import fixed_isn
from ..tcp.seq import MASK
from ..wire import icmp, icmpv6
from ..wire.errors import WireError
from ..wire.ipv4 import PROTO_ICMP, ip_to_bytes
from ..wire.ipv6 import PROTO_ICMPV6
from ..wire.packet import decode_ip_tcp, encode_ip_tcp, encode_ipv4, encode_ipv6
from ..wire.segment import ACK, PSH, SYN, Segment
from .apps import Endpoint
from .lab import (
    LAB_CC,
    MSL,
    Lab,
    LabRun,
    LabScript,
    LabUnavailable,
    explained_lines,
    has_feature,
    json_lines,
    lab_config,
    write_outputs,
)
from .scenario import (
    Scenario,
    is_fin,
    is_pure_ack,
    is_rst,
    is_syn,
    is_synack,
)

__all__ = [
    "LABS",
    "Lab",
    "LabRun",
    "LabUnavailable",
    "explained_lines",
    "get",
    "json_lines",
    "write_outputs",
]


def _states(sc: Scenario, conn: Connection) -> str:
    return " -> ".join(sc.states(conn))


# ---------------------------------------------------------------------- the labs
def _handshake(lab: Lab) -> LabRun:
    x = LabScript(lab, 101)
    x.sc.listen(80, close_when_done=False)
    ep = x.sc.connect(80, b"", close_when_done=False)
    x.sc.run(until=1.0)
    srv = x.sc.server_endpoint
    x.facts.update(client=_states(x.sc, ep.conn), server=_states(x.sc, srv.conn))
    x.note(
        "three segments: SYN, SYN-ACK, ACK. The client is open after one RTT (0.1 s), the "
        "server half an RTT later, when the third segment arrives",
        ["C8", "C9", "C27"],
    )
    return x.done()


def _teardown(lab: Lab, by_client: bool) -> LabRun:
    x = LabScript(lab, 102 if by_client else 103)
    c, srv = x.open_pair()
    active, passive = (c, srv) if by_client else (srv, c)
    x.at(0.2, lambda now: active.send(b"last words " * 40))
    x.at(0.6, lambda now: active.shutdown(now))
    got = bytearray()

    def passive_reads_and_closes(now: float) -> None:
        got.extend(passive.recv())
        passive.close(now)

    x.at(1.0, passive_reads_and_closes)
    x.note_at(
        1.0,
        "the passive side has read everything and the end of stream; it closes now (C12)",
        ["C12"],
    )
    x.sc.run(until=10)
    x.facts.update(
        active=_states(x.sc, active), passive=_states(x.sc, passive), bytes_read=len(got)
    )
    x.note(
        f"the active closer waited 2*MSL = {2 * MSL:g} s in TIME-WAIT before CLOSED "
        "(C13); the passive side closed on the ACK of its FIN",
        ["C10", "C11", "C13"],
    )
    return x.done()


def _simultaneous_open(lab: Lab) -> LabRun:
    x = LabScript(lab, 104)
    sc = x.sc
    a = sc.client.connect(sc.server_ip, 6000, now=0.0, local_port=5000)
    b = sc.server.connect(sc.client_ip, 5000, now=0.0, local_port=6000)
    x.note("both ends call connect() to each other at t=0 with fixed ports; nobody listens", ["C6"])
    ea = sc.client_apps.add(Endpoint(a, b"from A " * 100), 0.0)
    eb = sc.server_apps.add(Endpoint(b, b"from B " * 100), 0.0)
    sc.net.kick()
    sc.run(until=10)
    x.facts.update(
        a=_states(sc, a), b=_states(sc, b), a_got=len(ea.received), b_got=len(eb.received)
    )
    x.note(
        "each SYN crossed the other: both went SYN-SENT -> SYN-RECEIVED -> ESTABLISHED "
        "with four segments, not three (RFC 9293 figure 7)",
        ["C7", "C8", "C9"],
    )
    return x.done()


def _simultaneous_close(lab: Lab) -> LabRun:
    x = LabScript(lab, 105)
    c, srv = x.open_pair()

    def both(now: float) -> None:
        c.shutdown(now)
        srv.shutdown(now)

    x.at(0.5, both)
    x.note_at(0.5, "both applications close at the same moment: the FINs cross", ["C10"])
    x.sc.run(until=10)
    x.facts.update(client=_states(x.sc, c), server=_states(x.sc, srv))
    x.note(
        "each end saw the other's FIN before the ACK of its own: FIN-WAIT-1 -> CLOSING -> "
        "TIME-WAIT on both sides, and both wait 2*MSL",
        ["C13"],
    )
    return x.done()


def _half_close(lab: Lab) -> LabRun:
    x = LabScript(lab, 106)
    up = bytes(i % 251 for i in range(4000))
    down = bytes(i % 241 for i in range(60000))
    x.sc.listen(80, down, send_after_eof=True)
    ep = x.sc.connect(80, up)
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    x.facts.update(
        client=_states(x.sc, ep.conn),
        server=_states(x.sc, srv.conn),
        request_ok=bytes(srv.received) == up,
        response_ok=bytes(ep.received) == down,
    )
    x.note(
        f"the client sent {len(up)} bytes and its FIN first; it then received all "
        f"{len(down)} bytes of the answer while in FIN-WAIT-2: a half-closed connection "
        "still carries data the other way",
        ["C11", "C5"],
    )
    return x.done()


def _lost(lab: Lab, what: str) -> LabRun:
    x = LabScript(lab, 107)
    sc = x.sc
    if what == "syn":
        sc.listen(80, b"S" * 1000)
        sc.drop_next(is_syn, 1)
        ep = sc.connect(80, b"C" * 1000)
        x.note("the network will lose the first SYN", ["C6"])
    elif what == "synack":
        sc.listen(80, b"S" * 1000)
        sc.drop_next(is_synack, 1)
        ep = sc.connect(80, b"C" * 1000)
        x.note("the network will lose the first SYN-ACK", ["C7"])
    elif what == "final_ack":
        sc.listen(80, b"S" * 1000, send_after_eof=True)
        sc.drop_next(is_pure_ack, 1, src=sc.client_ip)
        ep = sc.connect(80, b"", close_when_done=False)
        x.note("the network will lose the client's final ACK of the handshake", ["C9"])
        x.at(2.0, lambda now: ep.conn.shutdown(now))
    else:
        c, srv = x.open_pair()
        sc.drop_next(is_fin, 1, src=sc.client_ip)
        x.note_at(0.6, "the client closes; the network will lose its FIN", ["C10"])
        x.at(0.6, lambda now: c.shutdown(now))
        x.at(2.0, lambda now: srv.close(now))
        sc.run(until=10)
        x.facts.update(
            client=_states(sc, c), server=_states(sc, srv), retransmits=c.info()["retransmits"]
        )
        x.note(
            "the FIN occupies one sequence number, so it is acknowledged and, when lost, "
            "retransmitted at the RTO like data",
            ["C17"],
        )
        return x.done()
    sc.run(until=20)
    eps = sc.server_endpoints
    x.facts.update(
        client=_states(sc, ep.conn),
        server=_states(sc, eps[0].conn) if eps else "none",
        retransmits=ep.conn.info()["retransmits"] + sum(e.conn.info()["retransmits"] for e in eps),
    )
    x.note(
        "SYN and SYN-ACK each occupy a sequence number: they are acknowledged and "
        "retransmitted on the retransmission timer, same ISN each time",
        ["C17"],
    )
    return x.done()


def _time_wait(lab: Lab) -> LabRun:
    x = LabScript(lab, 108)
    c, srv = x.open_pair()

    def server_closes(now: float) -> None:
        x.sc.drop_next(is_pure_ack, 1, src=x.sc.client_ip)
        srv.close(now)

    x.at(0.6, lambda now: c.shutdown(now))
    x.at(1.0, server_closes)
    x.note_at(1.0, "the server closes; the network will lose the client's last ACK", ["C13"])
    x.sc.run(until=10)
    x.facts.update(client=_states(x.sc, c), server=_states(x.sc, srv))
    x.note(
        "the client was still in TIME-WAIT when the server's FIN came again: it ACKed it "
        "again and restarted its 2*MSL wait; without TIME-WAIT that FIN would have met an "
        "RST and the server an error",
        ["C13", "C17"],
    )
    return x.done()


def _stray_syn(sc: Scenario, sport: int = 40000, seq: int = 123456) -> bytes:
    seg = Segment(sport, 80, seq, 0, SYN, 65535, mss=1460)
    return encode_ip_tcp(ip_to_bytes(sc.client_ip), ip_to_bytes(sc.server_ip), seg)


def _old_duplicate_syn(lab: Lab, rst_lost: bool) -> LabRun:
    cfg = lab_config(synack_retries=2)
    x = LabScript(lab, 109, config=cfg)
    lst = x.sc.listen(80)
    x.note(
        "C25: a one-segment open would leave the client without the server's ISN; "
        "C26: with a two-segment open the server would now believe in a connection nobody "
        "wants. Watch what three segments do with an old duplicate SYN",
        ["C25", "C26"],
    )
    if rst_lost:
        x.sc.drop_next(is_rst, 1000, src=x.sc.client_ip)
    x.sc.inject(_stray_syn(x.sc), "an old duplicate SYN from a client that is long gone (C26)")
    x.sc.run(until=20)
    x.facts.update(
        accepted=len(x.sc.server_endpoints),
        half_open=lst.half_open,
        synacks=len(x.sc.sent(x.sc.server_ip, is_synack)),
        client_rsts=len(x.sc.sent(x.sc.client_ip, is_rst)),
    )
    if rst_lost:
        x.note(
            "every RST was lost: the server resent its SYN-ACK a bounded number of times "
            f"({cfg.synack_retries}), never got the final ACK, gave up and freed the "
            "half-open state; nothing was ever accepted",
            ["C27"],
        )
    else:
        x.note(
            "the client knows no such connection and resets the SYN-ACK; the server frees "
            "its half-open state; nothing was ever accepted",
            ["C27"],
        )
    return x.done()


def _stray_segment(lab: Lab, fixed: bool) -> LabRun:
    kw: dict[str, Any] = (
        {"client_isn": fixed_isn(1000), "server_isn": fixed_isn(5000)} if fixed else {}
    )
    # Timestamps off: this lab isolates what the ISN alone does (PAWS would also help).
    x = LabScript(lab, 110, config=lab_config(timestamps=False), **kw)
    sc = x.sc
    lst = sc.server.listen(80)
    held: list[bytes] = []
    client_b = ip_to_bytes(sc.client_ip)

    def keep_copy(
        now: float, kind: str, src: bytes, dst: bytes, pkt: bytes, _r: str | None
    ) -> None:
        if kind == "send" and src == client_b and not held and decode_ip_tcp(pkt)[2].payload:
            held.append(pkt)

    sc.net.add_tap(keep_copy)
    old, new = b"OLD-DATA" * 50, b"NEW-DATA" * 50
    c1 = sc.client.connect(sc.server_ip, 80, now=0.0, local_port=40000)
    sc.net.kick()
    sc.run(until=0.19)
    srv1 = lst.accept()
    assert srv1 is not None
    c1.send(old)
    sc.net.kick()
    x.note(
        "the network keeps a duplicate of the client's data segment (it will arrive late)", ["C15"]
    )
    sc.run(until=0.5)
    srv1.recv()
    x.note("the client aborts (RST) and at once reconnects from the same port", ["C15"])
    c1.abort(sc.now)
    sc.net.kick()
    c2 = sc.client.connect(sc.server_ip, 80, now=sc.now, local_port=40000)
    sc.net.kick()
    sc.run(until=0.69)
    srv2 = lst.accept()
    assert srv2 is not None
    sc.inject(held[0], "the late duplicate of the first connection's data (C15)")
    sc.run(until=0.8)
    c2.send(new)
    sc.net.kick()
    sc.run(until=5.0)
    got = srv2.recv()
    x.facts.update(same_isn=c1.iss == c2.iss, server_read=got[:16].decode(), corrupted=got != new)
    if got != new:
        x.note(
            "with the same ISN for both incarnations the stale segment fell exactly at "
            f"RCV.NXT and was accepted: the server application read {got[:8].decode()}..., "
            "and the real NEW-DATA was discarded as a duplicate. Silent corruption (C15)",
            ["C15"],
        )
    else:
        x.note(
            "the stale segment fell outside the new connection's window and was dropped; "
            "the server read exactly NEW-DATA"
            + (
                ", because the new ISN moved on (RFC 6528 clock + hash) (C15)"
                if not fixed
                else " (C15)"
            ),
            ["C15"],
        )
    return x.done()


def _wraparound(lab: Lab, paws: bool) -> LabRun:
    if paws and not has_feature("timestamps"):
        raise LabUnavailable(
            "this lab needs TCP timestamps and PAWS (RFC 7323): "
            "TcpConfig(timestamps=True) is not in this build yet"
        )
    cfg = lab_config(timestamps=paws)
    x = LabScript(lab, 111, config=cfg, client_isn=fixed_isn(2**32 - 3000))
    sc = x.sc
    lst = sc.server.listen(80)
    c = sc.client.connect(sc.server_ip, 80, now=0.0, local_port=40000)
    sc.net.kick()
    sc.run(until=0.19)
    srv = lst.accept()
    assert srv is not None
    x.note(
        "the client's ISN is 2**32 - 3000: its data crosses the 32-bit boundary; TCP "
        f"timestamps are {'on (RFC 7323)' if paws else 'off'}",
        ["C16"],
    )
    c.send(bytes(6000))
    sc.net.kick()
    sc.run(until=0.5)
    srv.recv()
    last_ts = None
    for w in reversed(sc.wire):
        if w.src == sc.client_ip and w.seg is not None and w.seg.tsval is not None:
            last_ts = w.seg
            break
    x.note(
        "a segment from one full wrap ago (2**32 bytes back: same 32-bit sequence number, "
        "an older timestamp if timestamps are on) now reaches the server. We inject it "
        "rather than send 4 GiB through the simulator",
        ["C16"],
    )
    kw: dict[str, Any] = {}
    if last_ts is not None and last_ts.tsval is not None:
        kw = {"tsval": (last_ts.tsval - 100000) & MASK, "tsecr": last_ts.tsecr}
    stale = Segment(40000, 80, c.snd_nxt, c.rcv_nxt, ACK | PSH, 65535, b"OLD!" * 25, **kw)
    sc.inject(
        encode_ip_tcp(ip_to_bytes(sc.client_ip), ip_to_bytes(sc.server_ip), stale),
        "a segment from the previous wrap of the sequence space (C16)",
    )
    sc.run(until=0.6)
    c.send(b"NEW!" * 25)
    sc.net.kick()
    sc.run(until=3.0)
    got = srv.recv()
    x.facts.update(
        server_read=got[:8].decode(errors="replace"),
        corrupted=got != b"NEW!" * 25,
        wrapped=c.snd_nxt < 2**32 - 3000,
    )
    if got == b"NEW!" * 25:
        x.note(
            "PAWS: the stale segment's timestamp was older than the last one seen, so it "
            "was discarded although its sequence number was in the window; the server "
            "read the real data (C16, RFC 7323 §5)",
            ["C16"],
        )
    else:
        x.note(
            "without timestamps the stale segment's sequence number was in the window: it "
            "was accepted and the real data then discarded as a duplicate. Sequence numbers "
            "alone cannot tell an old segment from a new one once the space wraps (C16)",
            ["C16"],
        )
    return x.done()


def _rst_closed_port(lab: Lab) -> LabRun:
    x = LabScript(lab, 112)
    x.sc.listen(80)
    ep = x.sc.connect(81, b"anyone?")
    x.note("the client connects to port 81; the server listens only on 80", ["C21"])
    x.sc.run(until=5)
    x.facts.update(
        error=errno.errorcode.get(ep.error.errno, "?") if ep.error else None,
        client=_states(x.sc, ep.conn),
    )
    x.note(
        "the answer is an RST within one RTT, and connect() fails with ECONNREFUSED; "
        "nobody retransmits anything",
        ["C21", "C19", "C3"],
    )
    return x.done()


def _rst_unread(lab: Lab) -> LabRun:
    x = LabScript(lab, 113)
    x.sc.listen(80, read=False, close_when_done=False)
    ep = x.sc.connect(80, b"q" * 3000, close_when_done=False)
    x.note(
        "the server application never reads the 3000 bytes it receives, then closes at t=1 s",
        ["C23"],
    )
    x.at(1.0, lambda now: x.sc.server_endpoint.conn.close(now))
    x.sc.run(until=10)
    x.facts.update(
        error=errno.errorcode.get(ep.error.errno, "?") if ep.error else None,
        fins=len(x.sc.sent(predicate=is_fin)),
    )
    x.note(
        "close() with unread data is an abortive close: RST, not FIN, so the client learns "
        "its data was not consumed (ECONNRESET)",
        ["C23", "C19"],
    )
    return x.done()


def _data_to_closed(lab: Lab) -> LabRun:
    x = LabScript(lab, 114)
    c, srv = x.open_pair()
    x.at(0.2, lambda now: c.send(b"hello"))

    def server_reads_and_closes(now: float) -> None:
        srv.recv()
        srv.close(now)

    x.at(0.5, server_reads_and_closes)
    x.note_at(
        0.5,
        "the server application reads and closes: its socket is gone, the "
        "connection lingers in FIN-WAIT-2",
        ["C10"],
    )
    x.at(1.0, lambda now: c.send(b"anyone there?" * 10))
    x.note_at(
        1.0,
        "the client, half-closed by the server but still able to send, sends more data",
        ["C11"],
    )
    x.sc.run(until=10)
    x.facts.update(client=_states(x.sc, c), server=_states(x.sc, srv))
    x.note(
        "data for a socket that is already closed is answered with RST: nobody will ever read it",
        ["C24", "C19"],
    )
    return x.done()


def _zero_window(lab: Lab) -> LabRun:
    cfg = TcpConfig(msl=MSL, mss=1024, rcv_buf=8192, congestion_control=LAB_CC)
    x = LabScript(lab, 115, config=cfg)
    x.sc.listen(80, read=False, close_when_done=False)
    data = random.Random(115).randbytes(20000)
    ep = x.sc.connect(80, data)
    x.note(
        "the server's receive buffer is 8192 bytes and its application does not read "
        "until t=8 s; the client has 20000 bytes to send",
        ["C4"],
    )

    def start_reading(now: float) -> None:
        srv = x.sc.server_endpoint
        srv.read = True
        srv.close_when_done = True
        srv.pump(now)

    x.at(8.0, start_reading)
    x.note_at(8.0, "the server application starts reading: the window reopens", ["C4"])
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    x.facts.update(intact=bytes(srv.received) == data, probes=ep.conn.info()["probes"])
    x.note(
        "the sender never sent past the advertised window; while it was zero it probed "
        "with one byte on a backed-off persist timer, until the window update",
        ["C4"],
    )
    return x.done()


def _slow_start(lab: Lab) -> LabRun:
    x = LabScript(lab, 116, path=PathConfig(delay=0.05, rate_bps=20e6))
    data = bytes(300_000)
    x.sc.listen(80, close_when_done=True)
    ep = x.sc.connect(80, data)
    x.note(
        "the client sends 300 kB over a 20 Mbit/s path with a 100 ms RTT; cwnd starts at "
        "10 segments (RFC 6928) and grows by one MSS per ACKed MSS (RFC 5681 §3.1)",
        ["C1", "C2"],
    )
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    x.facts.update(
        received=srv.received_count,
        cwnd_max=max(
            (r["cwnd"] for r in x.sc.trace if r["ev"] == "cc" and r.get("cwnd")), default=0
        ),
        retransmits=ep.conn.info()["retransmits"],
    )
    x.note(
        "slow start: each RTT the sender's window doubled, as the time-sequence and cwnd "
        "plots show",
        ["C1", "C20"],
    )
    return x.done()


def _fast_retransmit(lab: Lab) -> LabRun:
    x = LabScript(lab, 117, path=PathConfig(delay=0.05, rate_bps=10e6))
    data = bytes(60_000)
    count = {"n": 0}

    def twelfth_data(seg: Segment) -> bool:
        if not seg.payload:
            return False
        count["n"] += 1
        return count["n"] == 12

    x.sc.drop_next(twelfth_data, 1, src=x.sc.client_ip)
    x.sc.listen(80)
    ep = x.sc.connect(80, data)
    x.note(
        "the network will lose the client's 12th data segment; the ones after it arrive", ["C14"]
    )
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    info = ep.conn.info()
    x.facts.update(
        intact=bytes(srv.received) == data,
        fast=info["fast_retransmits"],
        timeouts=info["rto_fired"],
    )
    x.note(
        _loss_note(x, "client") + f"; the lost segment was resent before any timeout "
        f"({info['rto_fired']} timeouts) and the transfer finished intact",
        ["C14", "C18", "C20"],
    )
    return x.done()


def _loss_note(x: LabScript, who: str) -> str:
    """What the trace says the ``who`` sender's loss state did, in words (not assumed)."""
    from ..trace.narrate import loss_story

    states, causes = loss_story(x.sc.trace, x.roles).get(who, (["Open"], []))
    text = f"the {who}'s loss state went " + " → ".join(states)
    if causes:
        text += "; what decided the loss: " + "; then ".join(dict.fromkeys(causes))
    return text


def _timeout(lab: Lab) -> LabRun:
    x = LabScript(lab, 118, config=TcpConfig(msl=MSL, max_retransmits=4, congestion_control=LAB_CC))
    x.sc.listen(80, close_when_done=False)
    ep = x.sc.connect(80, b"", close_when_done=False)
    x.sc.run(until=0.2)

    def path_dies(now: float) -> None:
        x.sc.net.add_filter(lambda now, src, dst, pkt: True)
        ep.conn.send(b"d" * 2000)

    x.at(0.5, path_dies)
    x.note_at(0.5, "the path dies (everything is dropped) just as the client sends data", ["C3"])
    x.sc.run(until=60)
    x.facts.update(error=errno.errorcode.get(ep.error.errno, "?") if ep.error else None)
    x.note(
        "after 4 retransmissions with doubling RTO the application gets ETIMEDOUT: TCP is "
        "reliable, not infallible, and says so; " + _loss_note(x, "client"),
        ["C3", "C2"],
    )
    return x.done()


def _full_duplex(lab: Lab) -> LabRun:
    x = LabScript(lab, 119)
    a = bytes(i % 199 for i in range(40000))
    b = bytes(i % 197 for i in range(40000))
    x.sc.listen(80, b)
    ep = x.sc.connect(80, a)
    x.note("client and server both send 40000 bytes at once", ["C5"])
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    x.facts.update(up=bytes(srv.received) == a, down=bytes(ep.received) == b)
    x.note(
        "both directions flowed at the same time, each data segment also acknowledging "
        "the other direction",
        ["C5", "C1"],
    )
    return x.done()


def _firewall(lab: Lab) -> LabRun:
    x = LabScript(lab, 120)
    sc = x.sc
    x.sc.listen(80)

    def firewall(now: float, src: bytes, dst: bytes, pkt: bytes) -> bool:
        try:
            seg = decode_ip_tcp(pkt)[2]
        except WireError:  # anything but TCP passes the firewall
            return False
        if seg.dst_port != 8080 or not seg.flags & SYN:
            return False
        server = ip_to_bytes(sc.server_ip)
        if len(server) == 16:  # ICMPv6 destination unreachable, code 1 (RFC 4443 §3.1)
            body6 = icmpv6.build_dest6_unreachable(server, src, icmpv6.UNREACH6_ADMIN, pkt)
            answer = encode_ipv6(server, src, PROTO_ICMPV6, body6)
        else:
            body = icmp.build_dest_unreachable(13, pkt)
            answer = encode_ipv4(server, src, PROTO_ICMP, body)
        sc.net.call_later(
            0.0,
            lambda now: sc.inject(
                answer, "a firewall answers: communication administratively prohibited (C22)"
            ),
        )
        return True

    sc.net.add_filter(firewall)
    ep = sc.connect(8080, b"blocked?")
    x.note(
        "a firewall in front of the server blocks port 8080 and answers with an ICMP "
        "destination unreachable (administratively prohibited)",
        ["C22"],
    )
    sc.run(until=5)
    x.facts.update(error=errno.errorcode.get(ep.error.errno, "?") if ep.error else None)
    x.note(
        "the connection attempt fails with a clear error at once: a firewall may answer "
        "with RST, with ICMP (here), or with silence (then the SYN times out, C3)",
        ["C22", "C3"],
    )
    return x.done()


def _bbr_vs_cubic_random_loss(lab: Lab) -> LabRun:
    """CUBIC, then BBR, each alone for 4 s on one 10 Mbit/s, 50 ms path with 1 % random
    loss and no congestion at all: CUBIC halves (x0.7) on every loss, BBR keeps its
    model of the path (draft-ietf-ccwg-bbr) and loses only what it must resend."""
    rate, rtt, span = 10_000_000, 0.05, 4.0
    path = PathConfig(delay=rtt / 2, rate_bps=rate, queue_bytes=int(rate * rtt / 8), loss=0.01)
    x = LabScript(lab, 121, path=path, config=TcpConfig(msl=MSL, rcv_buf=1 << 21, snd_buf=1 << 21))
    sc = x.sc
    sc.listen(80, keep_data=False)
    got: dict[str, float] = {}

    def run(cc: str, port: int, t0: float) -> None:
        conn = sc.client.connect(
            sc.server_ip,
            80,
            now=sc.now,
            local_port=port,
            config=sc.client.config.replace(congestion_control=cc),
        )
        sc.client_apps.add(
            Endpoint(conn, bytes(int(rate * span / 8) * 2), keep_data=False, close_when_done=False),
            sc.now,
        )
        sc.net.kick()
        x.note(
            f"{cc.upper()} starts: 1 % of the packets are lost at random, the link is never full",
            ["C20"],
            "RFC 9438" if cc == "cubic" else "draft-ietf-ccwg-bbr",
        )
        sc.run(until=t0 + span)
        srv = next(e for e in sc.server_endpoints if e.conn.remote_port == port)
        got[cc] = srv.received_count * 8 / span / 1e6
        info = conn.info()
        x.note(
            f"{cc.upper()}: {got[cc]:.2f} Mbit/s of {rate / 1e6:g} in {span:g} s, "
            f"{info['retransmits']} retransmissions, {info['recoveries']} recoveries; "
            + (
                "each loss cut cwnd (CUBIC reads loss as congestion)"
                if cc == "cubic"
                else f"state {info.get('bbr_state')}, bandwidth estimate "
                f"{(info.get('bbr_max_bw') or 0) * 8e-6:.1f} Mbit/s, min RTT "
                f"{(info.get('bbr_min_rtt') or 0) * 1e3:.1f} ms"
            ),
            ["C20"],
        )
        conn.abort(sc.now, why="lab: next sender")
        sc.run(until=sc.now + 0.5)

    run("cubic", 40001, 0.0)
    run("bbr", 40002, sc.now)
    x.facts.update(
        cubic_mbps=round(got["cubic"], 3),
        bbr_mbps=round(got["bbr"], 3),
        ratio=round(got["bbr"] / max(got["cubic"], 1e-9), 1),
    )
    x.note(
        f"BBR delivered {x.facts['ratio']}x what CUBIC did through the same random loss: "
        "it paces at its bandwidth estimate and bounds the data in flight by the "
        "bandwidth-delay product, reacting to loss only above 2 % per round trip",
        ["C20"],
        "draft-ietf-ccwg-bbr",
    )
    return x.done()


def _all_labs() -> list[Lab]:
    def lab(
        name: str,
        title: str,
        concepts: tuple[str, ...],
        rfc: str,
        summary: str,
        script: Callable[[Lab], LabRun],
        requires: str = "",
    ) -> Lab:
        return Lab(name, title, concepts, rfc, summary, script, requires)

    return [
        lab(
            "handshake",
            "three-way handshake",
            ("C6", "C7", "C8", "C9"),
            "RFC 9293 §3.5",
            "SYN, SYN-ACK, ACK; both ISNs exchanged",
            _handshake,
        ),
        lab(
            "teardown-client",
            "teardown started by the client",
            ("C10", "C11", "C12", "C13"),
            "RFC 9293 §3.6",
            "the client closes first and waits in TIME-WAIT",
            lambda la: _teardown(la, True),
        ),
        lab(
            "teardown-server",
            "teardown started by the server",
            ("C10", "C11", "C12", "C13"),
            "RFC 9293 §3.6",
            "the server closes first and waits in TIME-WAIT",
            lambda la: _teardown(la, False),
        ),
        lab(
            "simultaneous-open",
            "simultaneous open",
            ("C6", "C7", "C9"),
            "RFC 9293 §3.5 figure 7",
            "two SYNs cross; four segments open the connection",
            _simultaneous_open,
        ),
        lab(
            "simultaneous-close",
            "simultaneous close",
            ("C10", "C13"),
            "RFC 9293 §3.6 figure 13",
            "two FINs cross: CLOSING on both sides",
            _simultaneous_close,
        ),
        lab(
            "half-close",
            "half-close",
            ("C11", "C5"),
            "RFC 9293 §3.6.1",
            "the client sends and closes; the server answers afterwards",
            _half_close,
        ),
        lab(
            "lost-syn",
            "lost SYN",
            ("C6", "C17"),
            "RFC 9293 §3.8.1, RFC 6298 §5",
            "the first SYN is lost and resent at RTO",
            lambda la: _lost(la, "syn"),
        ),
        lab(
            "lost-synack",
            "lost SYN-ACK",
            ("C7", "C17"),
            "RFC 9293 §3.8.1, RFC 6298 §5",
            "the first SYN-ACK is lost; both sides retransmit",
            lambda la: _lost(la, "synack"),
        ),
        lab(
            "lost-final-ack",
            "lost final ACK of the handshake",
            ("C9", "C17"),
            "RFC 9293 §3.5",
            "the server stays in SYN-RECEIVED and resends its SYN-ACK",
            lambda la: _lost(la, "final_ack"),
        ),
        lab(
            "lost-fin",
            "lost FIN",
            ("C10", "C17"),
            "RFC 9293 §3.6",
            "the FIN is lost and retransmitted like data",
            lambda la: _lost(la, "fin"),
        ),
        lab(
            "time-wait",
            "TIME-WAIT and a retransmitted FIN",
            ("C13", "C17"),
            "RFC 9293 §3.6",
            "the last ACK is lost; TIME-WAIT answers the repeated FIN",
            _time_wait,
        ),
        lab(
            "old-duplicate-syn",
            "old duplicate SYN: why three segments",
            ("C25", "C26", "C27"),
            "RFC 9293 §3.5 figure 8",
            "a stale SYN reaches the server; the client resets the SYN-ACK",
            lambda la: _old_duplicate_syn(la, False),
        ),
        lab(
            "old-duplicate-syn-no-rst",
            "old duplicate SYN, every RST lost",
            ("C25", "C26", "C27"),
            "RFC 9293 §3.5, §3.8.3",
            "the server retransmits its SYN-ACK a bounded number of times, then frees it",
            lambda la: _old_duplicate_syn(la, True),
        ),
        lab(
            "stray-segment-random-isn",
            "stray segment after reset and reconnect, random ISN",
            ("C15",),
            "RFC 6528, RFC 9293 §3.4.1",
            "a late duplicate of the old connection's data is rejected",
            lambda la: _stray_segment(la, False),
        ),
        lab(
            "stray-segment-fixed-isn",
            "stray segment after reset and reconnect, fixed ISN",
            ("C15",),
            "RFC 9293 §3.4.1",
            "the same late duplicate is accepted as new data: why ISNs must not repeat",
            lambda la: _stray_segment(la, True),
        ),
        lab(
            "wraparound",
            "sequence wraparound without PAWS",
            ("C16",),
            "RFC 9293 §3.4",
            "data crosses 2**32; a segment from one wrap ago is accepted",
            lambda la: _wraparound(la, False),
        ),
        lab(
            "wraparound-paws",
            "sequence wraparound with PAWS",
            ("C16",),
            "RFC 7323 §5",
            "the same old segment is rejected by its timestamp",
            lambda la: _wraparound(la, True),
            requires="timestamps",
        ),
        lab(
            "rst-closed-port",
            "RST for a closed port",
            ("C21", "C19"),
            "RFC 9293 §3.10.7.1",
            "connect() to a port nobody listens on",
            _rst_closed_port,
        ),
        lab(
            "rst-unread-data",
            "RST for close with unread data",
            ("C23", "C19"),
            "RFC 9293 §3.10.4, RFC 2525 §2.17",
            "close() with unread data aborts",
            _rst_unread,
        ),
        lab(
            "data-to-closed-socket",
            "data to a closed socket",
            ("C24", "C19"),
            "RFC 9293 §3.10.7.4",
            "data for a closed socket is answered with RST",
            _data_to_closed,
        ),
        lab(
            "zero-window",
            "zero window and probes",
            ("C4",),
            "RFC 9293 §3.8.6.1",
            "a receiver that does not read closes the window; the sender probes",
            _zero_window,
        ),
        lab(
            "slow-start",
            "slow start",
            ("C1", "C2", "C20"),
            "RFC 5681 §3.1",
            "cwnd doubles every RTT from the initial window",
            _slow_start,
        ),
        lab(
            "fast-retransmit",
            "fast retransmit",
            ("C14", "C18", "C20"),
            "RFC 5681 §3.2, RFC 6582",
            "duplicate ACKs (or RACK) resend a lost segment early",
            _fast_retransmit,
        ),
        lab(
            "timeout",
            "retransmissions exhausted",
            ("C3",),
            "RFC 9293 §3.8.3",
            "the path dies; the application gets ETIMEDOUT",
            _timeout,
        ),
        lab(
            "full-duplex",
            "full duplex",
            ("C5", "C1"),
            "RFC 9293 §3.8",
            "both directions carry data at once",
            _full_duplex,
        ),
        lab(
            "firewall",
            "a firewall answers with ICMP",
            ("C22",),
            "RFC 1122 §4.2.3.9",
            "the SYN is blocked; the client gets a clear error",
            _firewall,
        ),
        lab(
            "bbr-vs-cubic-random-loss",
            "BBR against CUBIC under random loss",
            ("C20",),
            "draft-ietf-ccwg-bbr, RFC 9438",
            "1 % random loss: CUBIC backs off on every loss, BBR keeps the link busy",
            _bbr_vs_cubic_random_loss,
        ),
    ]


LABS: dict[str, Lab] = {lab.name: lab for lab in _all_labs()}


def get(name: str) -> Lab:
    """The lab called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return LABS[name]
    except KeyError:
        raise KeyError(f"no lab named {name!r}; known: {', '.join(LABS)}") from None
