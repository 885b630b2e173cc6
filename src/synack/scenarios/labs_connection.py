"""The labs of a connection's life: opening and closing, TIME-WAIT, lost handshake and
teardown segments, old duplicate SYNs and stray segments, sequence wraparound
(C5-C17, C25-C27).  Registered by name in :mod:`.labs`."""

from __future__ import annotations

from typing import Any

from ..tcp.connection import Connection
from ..tcp.isn import fixed_isn
from ..tcp.seq import MASK
from ..wire.ipv4 import ip_to_bytes
from ..wire.packet import decode_ip_tcp, encode_ip_tcp
from ..wire.segment import ACK, PSH, SYN, Segment
from .apps import Endpoint
from .lab import (
    MSL,
    Lab,
    LabRun,
    LabScript,
    LabUnavailable,
    has_feature,
    lab_config,
)
from .scenario import (
    Scenario,
    is_fin,
    is_pure_ack,
    is_rst,
    is_syn,
    is_synack,
)


def states(sc: Scenario, conn: Connection) -> str:
    return " -> ".join(sc.states(conn))


# ---------------------------------------------------------------------- the labs
def handshake(lab: Lab) -> LabRun:
    x = LabScript(lab, 101)
    x.sc.listen(80, close_when_done=False)
    ep = x.sc.connect(80, b"", close_when_done=False)
    x.sc.run(until=1.0)
    srv = x.sc.server_endpoint
    x.facts.update(client=states(x.sc, ep.conn), server=states(x.sc, srv.conn))
    x.note(
        "three segments: SYN, SYN-ACK, ACK. The client is open after one RTT (0.1 s), the "
        "server half an RTT later, when the third segment arrives",
        ["C8", "C9", "C27"],
    )
    return x.done()


def teardown(lab: Lab, by_client: bool) -> LabRun:
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
    x.facts.update(active=states(x.sc, active), passive=states(x.sc, passive), bytes_read=len(got))
    x.note(
        f"the active closer waited 2*MSL = {2 * MSL:g} s in TIME-WAIT before CLOSED "
        "(C13); the passive side closed on the ACK of its FIN",
        ["C10", "C11", "C13"],
    )
    return x.done()


def simultaneous_open(lab: Lab) -> LabRun:
    x = LabScript(lab, 104)
    sc = x.sc
    a = sc.client.connect(sc.server_ip, 6000, now=0.0, local_port=5000)
    b = sc.server.connect(sc.client_ip, 5000, now=0.0, local_port=6000)
    x.note("both ends call connect() to each other at t=0 with fixed ports; nobody listens", ["C6"])
    ea = sc.client_apps.add(Endpoint(a, b"from A " * 100), 0.0)
    eb = sc.server_apps.add(Endpoint(b, b"from B " * 100), 0.0)
    sc.net.kick()
    sc.run(until=10)
    x.facts.update(a=states(sc, a), b=states(sc, b), a_got=len(ea.received), b_got=len(eb.received))
    x.note(
        "each SYN crossed the other: both went SYN-SENT -> SYN-RECEIVED -> ESTABLISHED "
        "with four segments, not three (RFC 9293 figure 7)",
        ["C7", "C8", "C9"],
    )
    return x.done()


def simultaneous_close(lab: Lab) -> LabRun:
    x = LabScript(lab, 105)
    c, srv = x.open_pair()

    def both(now: float) -> None:
        c.shutdown(now)
        srv.shutdown(now)

    x.at(0.5, both)
    x.note_at(0.5, "both applications close at the same moment: the FINs cross", ["C10"])
    x.sc.run(until=10)
    x.facts.update(client=states(x.sc, c), server=states(x.sc, srv))
    x.note(
        "each end saw the other's FIN before the ACK of its own: FIN-WAIT-1 -> CLOSING -> "
        "TIME-WAIT on both sides, and both wait 2*MSL",
        ["C13"],
    )
    return x.done()


def half_close(lab: Lab) -> LabRun:
    x = LabScript(lab, 106)
    up = bytes(i % 251 for i in range(4000))
    down = bytes(i % 241 for i in range(60000))
    x.sc.listen(80, down, send_after_eof=True)
    ep = x.sc.connect(80, up)
    x.sc.run(until=30)
    srv = x.sc.server_endpoint
    x.facts.update(
        client=states(x.sc, ep.conn),
        server=states(x.sc, srv.conn),
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


def lost(lab: Lab, what: str) -> LabRun:
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
            client=states(sc, c), server=states(sc, srv), retransmits=c.info()["retransmits"]
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
        client=states(sc, ep.conn),
        server=states(sc, eps[0].conn) if eps else "none",
        retransmits=ep.conn.info()["retransmits"] + sum(e.conn.info()["retransmits"] for e in eps),
    )
    x.note(
        "SYN and SYN-ACK each occupy a sequence number: they are acknowledged and "
        "retransmitted on the retransmission timer, same ISN each time",
        ["C17"],
    )
    return x.done()


def time_wait(lab: Lab) -> LabRun:
    x = LabScript(lab, 108)
    c, srv = x.open_pair()

    def server_closes(now: float) -> None:
        x.sc.drop_next(is_pure_ack, 1, src=x.sc.client_ip)
        srv.close(now)

    x.at(0.6, lambda now: c.shutdown(now))
    x.at(1.0, server_closes)
    x.note_at(1.0, "the server closes; the network will lose the client's last ACK", ["C13"])
    x.sc.run(until=10)
    x.facts.update(client=states(x.sc, c), server=states(x.sc, srv))
    x.note(
        "the client was still in TIME-WAIT when the server's FIN came again: it ACKed it "
        "again and restarted its 2*MSL wait; without TIME-WAIT that FIN would have met an "
        "RST and the server an error",
        ["C13", "C17"],
    )
    return x.done()


def stray_syn(sc: Scenario, sport: int = 40000, seq: int = 123456) -> bytes:
    seg = Segment(sport, 80, seq, 0, SYN, 65535, mss=1460)
    return encode_ip_tcp(ip_to_bytes(sc.client_ip), ip_to_bytes(sc.server_ip), seg)


def old_duplicate_syn(lab: Lab, rst_lost: bool) -> LabRun:
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
    x.sc.inject(stray_syn(x.sc), "an old duplicate SYN from a client that is long gone (C26)")
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


def stray_segment(lab: Lab, fixed: bool) -> LabRun:
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


def wraparound(lab: Lab, paws: bool) -> LabRun:
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
