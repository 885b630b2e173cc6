"""RFC 7323 §5.4 timestamp offsets: one per address pair, so a new connection on a
4-tuple the peer holds in TIME-WAIT passes its PAWS check (RFC 6191) (C20, C25).

A per-connection random offset made the kernel reject such a SYN (PAWS), answer
with an ACK that synack reset, and the connection waited a whole SYN timeout.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synack.stack import Stack
from synack.wire.packet import decode_ipv4_tcp


def first_tsval(stack: Stack, remote: str, port: int, now: float) -> int:
    stack.connect(remote, 80, now=now, local_port=port)
    (syn,) = stack.packets_to_send(now)
    tsval = decode_ipv4_tcp(syn)[2].tsval
    assert tsval is not None
    return tsval


def test_tsvals_follow_one_clock_per_address_pair_c20() -> None:
    st = Stack("10.0.0.1", isn_secret=b"k" * 16, seed=1)
    a1 = first_tsval(st, "10.0.0.2", 40000, 1.000)
    a2 = first_tsval(st, "10.0.0.2", 40001, 1.250)
    assert (a2 - a1) & 0xFFFFFFFF == 250  # the same 1 ms clock, the same offset
    b = first_tsval(st, "10.0.0.3", 40002, 1.250)
    assert b != a2  # another pair: another offset (the clock is not revealed)
    other = Stack("10.0.0.1", isn_secret=b"j" * 16, seed=1)
    assert first_tsval(other, "10.0.0.2", 40000, 1.000) != a1  # keyed by the secret


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Any]:
    from helpers.netns import namespace, require

    require("ss")
    with namespace("tsoff", tmp_path) as n:
        yield n


CLIENT = textwrap.dedent("""
    import asyncio, json, sys, time
    from synack.aio.host import Host
    async def main():
        host = Host.tun("syn0", "10.77.0.2", kernel_ip="10.77.0.1/24")
        await asyncio.sleep(0.2)
        took = []
        for _ in range(5):
            t0 = time.monotonic()
            r, w = await host.open_connection("10.77.0.1", 5002, local_port=41000)
            w.write(b"ping")
            got = await r.read()
            w.close()
            took.append(time.monotonic() - t0)
            assert got == b"pong", got
            for _ in range(1000):  # our LAST-ACK ends when the kernel ACKs our FIN
                if not host.stack.connections:
                    break
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        rto = sum(c.stats["rto_fired"] for c in host.stack.connections)
        print(json.dumps({"took": took, "rto": rto, "stats": dict(host.stack.stats)}))
        await host.close()
    asyncio.run(main())
""")

SERVER = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 5002)); s.listen(8)
    print("ready", flush=True)
    for _ in range(5):
        c, _ = s.accept()
        c.recv(4)
        c.sendall(b"pong")
        c.close()  # the kernel closes first: its end of the 4-tuple is in TIME-WAIT
""")


def test_reusing_a_tuple_the_kernel_holds_in_time_wait_needs_no_syn_timeout_c25(ns: Any) -> None:
    import json

    from helpers.netns import PYTHON

    srv = ns.popen(PYTHON, "-c", SERVER, label="server")
    srv.wait_for("ready")
    res = ns.run(PYTHON, "-c", CLIENT, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    out = json.loads(res.stdout.decode().strip().splitlines()[-1])
    tw = ns.run("ss", "-Htan", "state", "time-wait").stdout.decode()
    assert "10.77.0.2:41000" in tw  # the kernel did hold the tuple in TIME-WAIT
    # Each reconnection is taken over at once: no 1 s SYN retransmission timeout.
    assert max(out["took"]) < 0.5, out
    assert out["stats"].get("rst_sent", 0) == 0, out
    srv.wait(10)
