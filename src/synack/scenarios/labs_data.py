"""The labs of resets, flow control and congestion: RSTs (C19, C21, C23, C24), the
zero window (C4), slow start, fast retransmit and timeouts (C1-C3, C14, C18, C20),
full duplex (C5), a firewall (C22) and BBR against CUBIC.  Registered by name in
:mod:`.labs`."""

from __future__ import annotations

import errno
import random

from ..sim import PathConfig
from ..tcp.config import TcpConfig
from ..wire import icmp, icmpv6
from ..wire.errors import WireError
from ..wire.ipv4 import PROTO_ICMP, ip_to_bytes
from ..wire.ipv6 import PROTO_ICMPV6
from ..wire.packet import decode_ip_tcp, encode_ipv4, encode_ipv6
from ..wire.segment import SYN, Segment
from .apps import Endpoint
from .lab import (
    LAB_CC,
    MSL,
    Lab,
    LabRun,
    LabScript,
)
from .labs_connection import states
from .scenario import (
    is_fin,
)


def rst_closed_port(lab: Lab) -> LabRun:
    x = LabScript(lab, 112)
    x.sc.listen(80)
    ep = x.sc.connect(81, b"anyone?")
    x.note("the client connects to port 81; the server listens only on 80", ["C21"])
    x.sc.run(until=5)
    x.facts.update(
        error=errno.errorcode.get(ep.error.errno, "?") if ep.error else None,
        client=states(x.sc, ep.conn),
    )
    x.note(
        "the answer is an RST within one RTT, and connect() fails with ECONNREFUSED; "
        "nobody retransmits anything",
        ["C21", "C19", "C3"],
    )
    return x.done()


def rst_unread(lab: Lab) -> LabRun:
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


def data_to_closed(lab: Lab) -> LabRun:
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
    x.facts.update(client=states(x.sc, c), server=states(x.sc, srv))
    x.note(
        "data for a socket that is already closed is answered with RST: nobody will ever read it",
        ["C24", "C19"],
    )
    return x.done()


def zero_window(lab: Lab) -> LabRun:
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


def slow_start(lab: Lab) -> LabRun:
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


def fast_retransmit(lab: Lab) -> LabRun:
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
        loss_note(x, "client") + f"; the lost segment was resent before any timeout "
        f"({info['rto_fired']} timeouts) and the transfer finished intact",
        ["C14", "C18", "C20"],
    )
    return x.done()


def loss_note(x: LabScript, who: str) -> str:
    """What the trace says the ``who`` sender's loss state did, in words (not assumed)."""
    from ..trace.narrate import loss_story

    states, causes = loss_story(x.sc.trace, x.roles).get(who, (["Open"], []))
    text = f"the {who}'s loss state went " + " → ".join(states)
    if causes:
        text += "; what decided the loss: " + "; then ".join(dict.fromkeys(causes))
    return text


def timeout(lab: Lab) -> LabRun:
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
        "reliable, not infallible, and says so; " + loss_note(x, "client"),
        ["C3", "C2"],
    )
    return x.done()


def full_duplex(lab: Lab) -> LabRun:
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


def firewall(lab: Lab) -> LabRun:
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


def bbr_vs_cubic_random_loss(lab: Lab) -> LabRun:
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
