"""asyncio streams and servers over two synack hosts joined by an in-process link."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from synack.aio import Server, open_connection, start_server
from synack.aio.host import Host
from synack.tcp.config import TcpConfig
from synack.tcp.states import State

A, B = "10.0.0.1", "10.0.0.2"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition the core reports no event for (a window value, a state)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


async def pair(**kw: Any) -> tuple[Host, Host]:
    return Host.memory_pair(A, B, **kw)


def test_echo_5mb_both_ways_is_intact() -> None:
    payload = random.Random(1).randbytes(5_000_000)

    async def main() -> float:
        a, b = await pair()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await b.start_server(echo, 7)
        reader, writer = await a.open_connection(B, 7)
        t0 = time.perf_counter()

        async def send() -> None:
            view = memoryview(payload)
            for i in range(0, len(view), 100_000):
                writer.write(view[i : i + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        digest, n = hashlib.sha256(), 0
        while chunk := await reader.read(1 << 20):
            digest.update(chunk)
            n += len(chunk)
        await sender
        elapsed = time.perf_counter() - t0
        assert n == len(payload)
        assert digest.digest() == hashlib.sha256(payload).digest()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        assert a.driver.stats["packets_in"] > 3000
        await a.close()
        await b.close()
        return elapsed

    elapsed = run(main())
    print(f"5 MB echoed both ways in {elapsed:.2f} s")


def test_drain_pauses_a_fast_writer_until_the_peer_reads() -> None:
    chunk = random.Random(2).randbytes(65536)
    total = 64 * len(chunk)  # 4 MiB, far more than all the buffers on the way
    cfg = TcpConfig(rcv_buf=64 * 1024, snd_buf=128 * 1024)
    # What may be written before drain() blocks: the peer's receive buffer and
    # StreamReader (2 * limit), our send buffer, our transport's high-water mark
    # and the chunk that crossed it.
    bound = cfg.rcv_buf + 2 * 65536 + cfg.snd_buf + 65536 + len(chunk)

    async def main() -> None:
        a, b = await pair(config=cfg)
        accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.set_result((r, w))

        server = await b.start_server(handler, 9)
        _reader, writer = await a.open_connection(B, 9)
        peer_reader, peer_writer = await accepted
        written = 0

        async def fast_writer() -> None:
            nonlocal written
            for _ in range(64):
                writer.write(chunk)
                await writer.drain()
                written += len(chunk)

        task = asyncio.create_task(fast_writer())
        conn = writer.get_extra_info("synack_connection")
        # Stalled: the peer's window is (all but) closed and our transport holds more
        # than its high-water mark, so drain() blocks.
        await until(
            lambda: conn.snd_wnd < conn.eff_mss and writer.transport.get_write_buffer_size() > 65536
        )
        stalled_at = written
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not task.done()
        assert written == stalled_at <= bound, "the writer kept going: no back-pressure"
        assert writer.transport.get_write_buffer_size() > 0
        data = await peer_reader.readexactly(total)  # the peer reads: the writer resumes
        await task
        assert data == chunk * 64
        writer.close()
        peer_writer.close()
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_refused_connect_is_connection_refused_error() -> None:
    async def main() -> None:
        a, b = await pair()
        with pytest.raises(ConnectionRefusedError) as exc:
            await a.open_connection(B, 4242)
        assert exc.value.errno == errno.ECONNREFUSED
        await a.close()
        await b.close()

    run(main())


def test_unanswered_syn_is_timeout_error() -> None:
    cfg = TcpConfig(rto_min=0.02, rto_initial=0.05, syn_retries=2)

    async def main() -> None:
        a, b = await pair(config=cfg)
        with pytest.raises(TimeoutError) as exc:
            await a.open_connection("10.0.0.99", 80)  # B drops it: not its address
        assert exc.value.errno == errno.ETIMEDOUT
        assert b.stack.stats["drop_ip_not_for_us"] == 3
        await a.close()
        await b.close()

    run(main())


def test_names_are_not_resolved() -> None:
    async def main() -> None:
        a, b = await pair()
        with pytest.raises(socket.gaierror):
            await a.open_connection("example.invalid", 80)
        await a.close()
        await b.close()

    run(main())


def test_reset_reaches_the_reader_as_connection_reset_error() -> None:
    async def main() -> None:
        a, b = await pair()
        got: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got.set_result(w)

        server = await b.start_server(handler, 80)
        reader, writer = await a.open_connection(B, 80)
        (await got).transport.abort()
        with pytest.raises(ConnectionResetError):
            await reader.read(100)
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_stream_extra_info_names_both_ends() -> None:
    async def main() -> None:
        a, b = await pair()
        seen: list[Any] = []

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            seen.append(w.get_extra_info("peername"))
            w.write(await r.readline())
            await w.drain()
            w.close()

        server = await start_server(handler, 0, driver=b.driver)
        assert 49152 <= server.port <= 65535
        assert server.sockname == (B, server.port)
        reader, writer = await open_connection(B, server.port, driver=a.driver, local_port=40000)
        assert writer.get_extra_info("sockname") == (A, 40000)
        assert writer.get_extra_info("peername") == (B, server.port)
        assert writer.get_extra_info("socket") is None
        writer.write(b"line\n")
        assert await reader.readline() == b"line\n"
        assert await reader.read() == b""
        assert seen == [(A, 40000)]
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        await a.close()
        await b.close()

    run(main())


def test_server_lifecycle_close_wait_closed_and_clients() -> None:
    async def main() -> None:
        a, b = await pair()
        handlers_done = 0

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            nonlocal handlers_done
            await r.read()  # until the server closes us (close_clients) or EOF
            handlers_done += 1

        server = await b.start_server(handler, 5000)
        assert isinstance(server, Server) and server.is_serving()
        assert server.sockets == ()
        r1, w1 = await a.open_connection(B, 5000)
        r2, w2 = await a.open_connection(B, 5000)
        await until(lambda: len(server.connections) == 2)
        server.close()
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):  # no longer listening
            await a.open_connection(B, 5000)
        waiter = asyncio.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiter.done(), "wait_closed returned with connections still open"
        server.close_clients()
        assert await r1.read() == b"" and await r2.read() == b""  # FIN, not RST
        w1.close()
        w2.close()
        await asyncio.wait_for(waiter, 5)
        assert server.connections == []
        await a.close()
        await b.close()

    run(main())


def test_serve_forever_and_async_with() -> None:
    async def main() -> None:
        a, b = await pair()

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"hi")
            await w.drain()
            w.close()

        server = await b.start_server(handler, 21, start_serving=False)
        assert not server.is_serving()
        async with server:
            task = asyncio.create_task(server.serve_forever())
            reader, writer = await a.open_connection(B, 21)
            assert await reader.read() == b"hi"
            writer.close()
            await writer.wait_closed()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not server.is_serving()
        with pytest.raises(RuntimeError):
            await server.start_serving()
        await a.close()
        await b.close()

    run(main())


def test_connections_queue_in_the_backlog_until_serving_starts() -> None:
    async def main() -> None:
        a, b = await pair()
        served: list[bytes] = []

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            served.append(await r.read())
            w.close()

        server = await b.start_server(handler, 22, start_serving=False)
        reader, writer = await a.open_connection(B, 22)  # the handshake completes anyway
        writer.write(b"early")
        writer.write_eof()
        await asyncio.sleep(0.02)
        assert served == []
        await server.start_serving()
        assert await reader.read() == b""
        assert served == [b"early"]
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_host_close_aborts_connections_with_rst() -> None:
    async def main() -> None:
        a, b = await pair()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ready.set_result(None)
            await r.read()

        await b.start_server(handler, 23)
        reader, writer = await a.open_connection(B, 23)
        await ready
        conn = writer.get_extra_info("synack_connection")
        await b.close()  # RST to A
        with pytest.raises(ConnectionResetError):
            await reader.read()
        assert conn.state is State.CLOSED
        await a.close()

    run(main())
