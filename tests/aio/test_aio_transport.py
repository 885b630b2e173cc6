"""SynackTransport as an asyncio.Transport, and the driver underneath it."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from synack.aio import SynackTransport, create_connection, create_server
from synack.aio.host import Host
from synack.links.memory import memory_pair
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.states import State
from synack.wire import icmp
from synack.wire.ipv4 import PROTO_ICMP, ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4

A, B = "10.0.0.1", "10.0.0.2"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition the core reports no event for (a window value, a state)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


class Recorder(asyncio.Protocol):
    """Records every callback; ``keep_open`` is what eof_received returns."""

    def __init__(self, keep_open: bool = True) -> None:
        self.keep_open = keep_open
        self.transport: SynackTransport | None = None
        self.data = bytearray()
        self.calls: list[str] = []
        self.exc: BaseException | None = None
        loop = asyncio.get_running_loop()
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, SynackTransport)
        self.transport = transport
        self.calls.append("made")
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.calls.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.exc = exc
        self.lost.set_result(exc)


class EchoServerProtocol(asyncio.Protocol):
    """The echo server from the asyncio documentation, unmodified but for the types."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.write(data)
        self.transport.close()


class EchoClientProtocol(asyncio.Protocol):
    def __init__(self, message: str, on_con_lost: asyncio.Future[bool]) -> None:
        self.message = message
        self.on_con_lost = on_con_lost
        self.received: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.message.encode())

    def data_received(self, data: bytes) -> None:
        self.received.append(data.decode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_con_lost.set_result(True)


async def accepted_pair(
    a: Host, b: Host, port: int = 80, **kw: Any
) -> tuple[Recorder, Recorder, Any]:
    """Connect A to a recording server on B; return (client, server, server object)."""
    servers: list[Recorder] = []

    def factory() -> Recorder:
        servers.append(Recorder(**kw))
        return servers[-1]

    server = await b.create_server(factory, port)
    _, client = await a.create_connection(Recorder, B, port)
    await until(lambda: bool(servers))
    await servers[0].made
    return client, servers[0], server


def test_unmodified_protocol_echo() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        server = await create_server(EchoServerProtocol, 8888, driver=b.driver)
        lost: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        transport, protocol = await create_connection(
            lambda: EchoClientProtocol("Hello World!", lost), B, 8888, driver=a.driver
        )
        assert await lost
        assert "".join(protocol.received) == "Hello World!"
        assert transport.is_closing()
        server.close()
        await server.wait_closed()
        await a.close()
        await b.close()

    run(main())


def test_extra_info_and_basic_properties() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        t = client.transport
        assert t is not None and srv.transport is not None
        assert t.get_extra_info("peername") == (B, 80)
        assert t.get_extra_info("sockname")[0] == A
        assert srv.transport.get_extra_info("peername") == t.get_extra_info("sockname")
        assert t.get_extra_info("socket") is None
        assert t.get_extra_info("nonsense", 42) == 42
        assert t.get_extra_info("synack_connection").state is State.ESTABLISHED
        assert t.can_write_eof() and t.is_reading() and not t.is_closing()
        assert t.get_protocol() is client
        assert t.get_write_buffer_limits() == (16384, 65536)
        t.set_write_buffer_limits(high=1000)
        assert t.get_write_buffer_limits() == (250, 1000)
        with pytest.raises(ValueError):
            t.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(TypeError):
            t.write("text")  # type: ignore[arg-type]
        t.close()
        await client.lost
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_pause_reading_closes_the_window_and_resume_reopens_it() -> None:
    mss = 1460
    cfg = TcpConfig(rcv_buf=40 * mss, timestamps=False)  # whole segments fill it exactly
    payload = bytes(range(256)) * 2000  # 512000 bytes, many windows' worth

    async def main() -> None:
        a, b = Host.memory_pair(A, B, config=cfg)
        client, srv, server = await accepted_pair(a, b)
        assert client.transport is not None and srv.transport is not None
        srv.transport.pause_reading()
        assert not srv.transport.is_reading()
        client.transport.write(payload)
        sender = client.transport.get_extra_info("synack_connection")
        receiver = srv.transport.get_extra_info("synack_connection")
        await until(lambda: sender.snd_wnd == 0)  # the peer sees a closed window (C4)
        assert receiver.rcv_wnd == 0
        assert receiver.readable == cfg.rcv_buf
        assert len(srv.data) == 0
        srv.transport.resume_reading()
        await until(lambda: len(srv.data) == len(payload))
        assert bytes(srv.data) == payload
        assert sender.snd_wnd > 0
        client.transport.close()
        await client.lost
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_write_buffer_watermarks_drive_pause_and_resume_writing() -> None:
    cfg = TcpConfig(rcv_buf=32768, snd_buf=32768)

    async def main() -> None:
        a, b = Host.memory_pair(A, B, config=cfg)
        client, srv, server = await accepted_pair(a, b)
        t, st = client.transport, srv.transport
        assert t is not None and st is not None
        st.pause_reading()
        t.set_write_buffer_limits(high=20000, low=5000)
        t.write(bytes(200_000))
        assert client.calls[-1] == "pause_writing"
        assert t.get_write_buffer_size() > 20000
        # The connection took what its send buffer holds; the rest waits in the transport.
        assert t.get_write_buffer_size() == 200_000 - cfg.snd_buf
        st.resume_reading()
        await until(lambda: "resume_writing" in client.calls)
        await until(lambda: len(srv.data) == 200_000)
        assert t.get_write_buffer_size() == 0
        assert client.calls.count("pause_writing") == 1
        t.close()
        await client.lost
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_write_eof_half_close_then_the_peer_answers() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        t, st = client.transport, srv.transport
        assert t is not None and st is not None
        t.write(b"request")
        t.write_eof()
        with pytest.raises(RuntimeError):
            t.write(b"more")
        await srv.eof  # the server sees all the data, then EOF, and stays open (keep_open)
        assert bytes(srv.data) == b"request"
        assert not st.is_closing()
        st.write(b"response")
        st.close()
        assert await srv.lost is None
        await client.eof  # keep_open: the client's transport stays open after EOF...
        assert not t.is_closing()
        t.close()  # ...until it closes it
        assert await client.lost is None
        assert bytes(client.data) == b"response"
        assert client.calls == ["made", "eof", "lost"]
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_eof_received_returning_false_closes_the_transport() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b, keep_open=False)
        assert client.transport is not None and srv.transport is not None
        client.transport.write_eof()
        await srv.eof
        assert srv.transport.is_closing()
        assert await srv.lost is None
        await client.eof  # our FIN reached the client
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_abort_resets_the_peer() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        assert client.transport is not None
        client.transport.write(b"x" * 100_000)
        client.transport.abort()
        assert client.transport.is_closing()
        assert await client.lost is None
        exc = await srv.lost
        assert isinstance(exc, ConnectionResetError) and exc.errno == errno.ECONNRESET
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_refused_connect_never_calls_the_factory() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        made: list[Recorder] = []

        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        with pytest.raises(ConnectionRefusedError):
            await a.create_connection(factory, B, 9)
        assert made == []
        assert a.stack.connections == []
        await a.close()
        await b.close()

    run(main())


def test_icmp_host_unreachable_fails_the_connect_with_ehostunreach() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine, wire = memory_pair()
        host = Host(Stack(A, mtu=mine.mtu), mine)
        router = ip_to_bytes("10.0.0.254")

        def answer() -> None:  # a router on the wire: "host unreachable" for every SYN
            for pkt in wire.read_batch():
                decode_ipv4_tcp(pkt)
                body = icmp.build_dest_unreachable(icmp.UNREACH_HOST, pkt)
                wire.write(encode_ipv4(router, ip_to_bytes(A), PROTO_ICMP, body))

        loop.add_reader(wire.fileno(), answer)
        with pytest.raises(OSError) as exc:
            await host.create_connection(Recorder, "10.0.9.9", 80)
        assert exc.value.errno == errno.EHOSTUNREACH
        assert "unreachable" in str(exc.value)
        loop.remove_reader(wire.fileno())
        await host.close()
        wire.close()

    run(main())


def test_a_failing_protocol_callback_is_reported_and_aborts() -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ZeroDivisionError("bug in the application")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        a, b = Host.memory_pair(A, B)
        brokens: list[Broken] = []

        def factory() -> Broken:
            brokens.append(Broken())
            return brokens[-1]

        server = await b.create_server(factory, 80)
        _, client = await a.create_connection(Recorder, B, 80)
        assert client.transport is not None
        client.transport.write(b"boom")
        exc = await client.lost
        assert isinstance(exc, ConnectionResetError)
        assert isinstance(await brokens[0].lost, ZeroDivisionError)
        assert any(isinstance(c.get("exception"), ZeroDivisionError) for c in reported)
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_peer_fin_while_paused_waits_behind_the_data() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        assert client.transport is not None and srv.transport is not None
        srv.transport.pause_reading()
        client.transport.write(b"data before the FIN")
        client.transport.write_eof()
        receiver = srv.transport.get_extra_info("synack_connection")
        await until(lambda: receiver.eof_received)
        await asyncio.sleep(0.01)
        assert srv.calls == ["made"]  # neither data nor EOF while paused
        srv.transport.resume_reading()
        await srv.eof
        assert bytes(srv.data) == b"data before the FIN"
        srv.transport.close()
        await client.eof
        client.transport.close()
        await client.lost
        server.close()
        await a.close()
        await b.close()

    run(main())


def test_driver_keeps_one_timer_at_the_stacks_next_deadline() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        assert client.transport is not None
        for _ in range(50):
            client.transport.write(b"x" * 3000)
            await asyncio.sleep(0)
            assert a.driver.timer_deadline == a.stack.next_timer()
        await until(lambda: len(srv.data) == 150_000)
        assert a.driver.stats["timer_rearms"] < a.driver.stats["packets_out"]
        client.transport.close()
        await client.lost
        server.close()
        await a.close()
        await b.close()
        assert a.driver.timer_deadline is None

    run(main())


def test_driver_drains_reads_until_eagain_with_a_cap_per_wakeup() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mine, wire = memory_pair()
        host = Host(Stack(B, mtu=mine.mtu), mine)
        ping = encode_ipv4(
            ip_to_bytes(A), ip_to_bytes(B), PROTO_ICMP, icmp.build_echo_request(1, 1, b"x")
        )
        for _ in range(300):
            wire.write(ping)
        replies: list[bytes] = []
        done = loop.create_future()

        def collect() -> None:
            replies.extend(wire.read_batch(1000))
            if len(replies) >= 300 and not done.done():
                done.set_result(None)

        loop.add_reader(wire.fileno(), collect)
        await done
        assert host.stack.stats["icmp_echo_replies"] == 300
        assert host.driver.stats["max_batch"] == 256  # the cap
        assert host.driver.stats["wakeups_read"] == 2  # 256, then the other 44
        loop.remove_reader(wire.fileno())
        await host.close()
        wire.close()

    run(main())


def test_driver_stamps_each_batch_with_the_time_of_its_read() -> None:
    """A wake-up reads up to 256 packets in batches of 64, processing each batch before
    reading the next: a packet of a later batch may have arrived after the wake-up, so
    it gets the time of its own read, not the wake-up's (else its ACK gives an RTT short
    by the processing time: 17 ms of a 50 ms path on a busy host, which BBR's min-RTT
    filter kept).  The clock here counts its readings."""

    async def main() -> None:
        mine, wire = memory_pair()
        host = Host(Stack(B, mtu=mine.mtu), mine)
        ticks = iter(range(1, 1_000_000))
        host.driver.now = lambda: float(next(ticks))  # type: ignore[method-assign]
        seen: list[float] = []
        receive = host.stack.receive_packet

        def spy(packet: bytes, now: float) -> None:
            seen.append(now)
            receive(packet, now)

        host.stack.receive_packet = spy  # type: ignore[method-assign]
        ping = encode_ipv4(
            ip_to_bytes(A), ip_to_bytes(B), PROTO_ICMP, icmp.build_echo_request(1, 1, b"x")
        )
        for _ in range(256):
            wire.write(ping)
        await until(lambda: len(seen) == 256)
        assert host.driver.stats["wakeups_read"] == 1
        assert seen == sorted(seen)
        assert len(set(seen)) == 4  # one reading per batch of 64
        await host.close()
        wire.close()

    run(main())


def test_driver_close_aborts_transports_with_connection_aborted_error() -> None:
    async def main() -> None:
        a, b = Host.memory_pair(A, B)
        client, srv, server = await accepted_pair(a, b)
        a.driver.close()
        assert isinstance(await client.lost, ConnectionAbortedError)
        assert isinstance(await srv.lost, ConnectionResetError)
        with pytest.raises(RuntimeError):
            a.driver.connect(B, 80)
        server.close()
        a.link.close()
        await b.close()

    run(main())
