"""Impairment of real links with the simulator's model, in real time."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Coroutine
from typing import Any

import pytest

from synack.aio.host import Host
from synack.links import ImpairedLink, Link, LinkClosedError, memory_pair
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.wire.errors import WireError
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp
from synack.wire.segment import ACK, Segment

A, B = "10.0.0.1", "10.0.0.2"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def tcp_packet(i: int, size: int = 100) -> bytes:
    seg = Segment(1000, 80, i * size, 0, ACK, 65535, bytes([i % 256]) * size)
    return encode_ipv4_tcp(ip_to_bytes(A), ip_to_bytes(B), seg)


async def receive(link: Link, n: int, timeout: float = 5.0) -> list[tuple[float, bytes]]:
    """Read ``n`` packets from ``link`` as they arrive, with their arrival times."""
    loop = asyncio.get_running_loop()
    got: list[tuple[float, bytes]] = []
    done = loop.create_future()

    def on_readable() -> None:
        now = loop.time()
        got.extend((now, p) for p in link.read_batch())
        if len(got) >= n and not done.done():
            done.set_result(None)

    loop.add_reader(link.fileno(), on_readable)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(link.fileno())
    return got


def test_loss_one_drops_everything_at_once() -> None:
    async def main() -> None:
        a, b = memory_pair()
        imp = ImpairedLink(a, outbound=PathConfig(loss=1.0), seed=1)
        for i in range(20):
            imp.write(tcp_packet(i))
        assert imp.stats["out_packets"] == 20 and imp.stats["out_lost"] == 20
        assert a.stats["tx_packets"] == 0
        assert b.read_batch() == []
        imp.close()
        b.close()

    run(main())


def test_delay_holds_packets_for_the_configured_time_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = memory_pair()
        imp = ImpairedLink(a, outbound=PathConfig(delay=0.03, jitter=0.01), seed=2)
        t0 = loop.time()
        sent = [tcp_packet(i) for i in range(30)]
        for p in sent:
            imp.write(p)
        assert imp.held == 30 and imp.stats["out_delayed"] == 30
        got = await receive(b, 30)
        assert [p for _, p in got] == sent  # jitter never reorders
        assert min(t for t, _ in got) >= t0 + 0.02
        assert imp.held == 0 and imp.stats["out_delivered"] == 30
        imp.close()
        b.close()

    run(main())


def test_duplication_and_corruption_are_applied_and_counted() -> None:
    async def main() -> None:
        a, b = memory_pair()
        imp = ImpairedLink(a, outbound=PathConfig(duplicate=1.0, corrupt=1.0), seed=3)
        original = tcp_packet(7)
        imp.write(original)
        got = [p for _, p in await receive(b, 2)]
        assert len(got) == 2 and got[0] == got[1] != original
        with pytest.raises(WireError):
            decode_ipv4_tcp(got[0])  # the flips are always caught (a checksum, at the latest)
        assert imp.stats["out_duplicated"] == 1 and imp.stats["out_corrupted"] == 1
        imp.close()
        b.close()

    run(main())


def test_reordering_lets_later_packets_overtake() -> None:
    async def main() -> None:
        a, b = memory_pair()
        imp = ImpairedLink(a, outbound=PathConfig(reorder=0.3, reorder_delay=0.01), seed=4)
        sent = [tcp_packet(i) for i in range(40)]
        for p in sent:
            imp.write(p)
        got = [p for _, p in await receive(b, 40)]
        assert sorted(got) == sorted(sent)
        assert got != sent
        assert 0 < imp.stats["out_reordered"] < 40
        imp.close()
        b.close()

    run(main())


def test_inbound_impairment_applies_to_what_the_link_reads() -> None:
    async def main() -> None:
        a, b = memory_pair()
        imp_b = ImpairedLink(b, inbound=PathConfig(loss=0.5, delay=0.005), seed=5)
        assert imp_b.fileno() != b.fileno()  # the driver waits on the released packets
        for i in range(100):
            a.write(tcp_packet(i))
        while imp_b.stats["in_packets"] < 100:  # the wrapper pulls on the inner link's readiness
            await asyncio.sleep(0.001)
        lost = imp_b.stats["in_lost"]
        assert 20 < lost < 80
        got = await receive(imp_b, 100 - lost)
        assert len(got) == 100 - lost == imp_b.stats["in_delivered"]
        assert imp_b.stats["rx_packets"] == len(got)
        imp_b.close()
        a.close()

    run(main())


def test_rate_limit_serialises_and_the_queue_drops_tail() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = memory_pair()
        cfg = PathConfig(rate_bps=800_000, queue_bytes=6_000)  # 100 kB/s, 6 kB queue
        imp = ImpairedLink(a, outbound=cfg, seed=6)
        t0 = loop.time()
        for i in range(10):
            imp.write(tcp_packet(i, size=960))  # 1000-byte packets: 10 ms each
        assert imp.stats["out_queue_dropped"] == 4
        got = await receive(b, 6)
        assert len(got) == 6
        assert got[-1][0] - t0 >= 0.055  # six packets take 60 ms to serialise
        imp.close()
        b.close()

    run(main())


def test_same_seed_same_decisions() -> None:
    def decisions(seed: int) -> dict[str, int]:
        async def main() -> dict[str, int]:
            a, b = memory_pair()
            imp = ImpairedLink(
                a, outbound=PathConfig(loss=0.3, duplicate=0.2, corrupt=0.1), seed=seed
            )
            for i in range(200):
                imp.write(tcp_packet(i))
            stats = dict(imp.stats)
            imp.close()
            b.close()
            return stats

        result: dict[str, int] = run(main())
        return result

    assert decisions(9) == decisions(9)
    assert decisions(9) != decisions(10)


def test_close_drops_held_packets_and_stops_timers() -> None:
    async def main() -> None:
        a, b = memory_pair()
        imp = ImpairedLink(a, outbound=PathConfig(delay=0.01), inbound=PathConfig(delay=0.01))
        imp.write(tcp_packet(1))
        assert imp.held == 1
        imp.close()
        imp.close()
        await asyncio.sleep(0.03)  # well past the delay: the held packet must not appear
        assert a.closed
        with pytest.raises(LinkClosedError):  # the end of the link, with nothing before it
            b.read_batch()
        b.close()

    run(main())


def test_configs_must_be_path_configs() -> None:
    async def main() -> None:
        a, b = memory_pair()
        with pytest.raises(TypeError, match="PathConfig"):
            ImpairedLink(a, outbound={"loss": 0.1})  # type: ignore[arg-type]
        a.close()
        b.close()

    run(main())


def test_one_megabyte_survives_loss_and_reordering_both_ways() -> None:
    impair = PathConfig(loss=0.05, reorder=0.05, reorder_delay=0.002)
    cfg = TcpConfig(rto_min=0.05, rto_initial=0.2)
    payload = random.Random(7).randbytes(1_000_000)

    async def main() -> None:
        a, b = Host.memory_pair(A, B, impair=impair, impair_seed=11, config=cfg)
        assert isinstance(a.link, ImpairedLink)

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()
            writer.write(hashlib.sha256(data).hexdigest().encode())
            await writer.drain()
            writer.close()

        server = await b.start_server(sink, 9)
        reader, writer = await a.open_connection(B, 9)
        writer.write(payload)
        writer.write_eof()
        assert await reader.read() == hashlib.sha256(payload).hexdigest().encode()
        stats = a.link.stats
        assert stats["out_lost"] > 0 and stats["in_lost"] > 0
        assert stats["out_reordered"] > 0 and stats["in_reordered"] > 0
        writer.close()
        server.close()
        await a.close()
        await b.close()

    run(main())
