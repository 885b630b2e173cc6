"""synack's end of the network benchmarks, through the public API only.

Each mode opens ``Host.tun(NAME, "10.77.0.2", kernel_ip="10.77.0.1/24",
mtu=..., offload=...)`` in the namespace it is run in and uses asyncio
protocols or streams on it::

    synack_agent.py bulk-recv --port 5001 [--mtu M] [--offload]   # discard, count
    synack_agent.py bulk-send 10.77.0.1 5001 --seconds 3           # write + drain
    synack_agent.py bulk-send fd77::1 5001 --ipv6 --bytes N --loss 0.01  # seeded data

``--ipv6`` gives the stack fd77::2 too (the kernel fd77::1/64); ``--loss P``
drops that share of packets each way (``Host.tun(impair=...)``, no offloads);
``--bytes N`` sends exactly N bytes of the data ``kernel_agent.payload`` makes,
and ``bulk-recv --data-seed S`` checks that data arrived intact.
    synack_agent.py cps-server --port 5002                         # request, response, close
    synack_agent.py cps-client 10.77.0.1 5002 --seconds 3 --concurrency 16
    synack_agent.py echo-server --port 5003                        # 1-byte ping-pong
    synack_agent.py idle-server --port 5004 --expect 10000 [--tracemalloc]

``READY {json}`` once listening (with whether offloads are active),
``RESULT {json}`` at the end (servers on SIGTERM, or when done).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import inspect
import json
import os
import random
import signal
import sys
import time
import tracemalloc
from typing import Any

from synack.aio.host import Host
from synack.sim.path import PathConfig
from synack.tcp.config import TcpConfig

SYNACK_IP = "10.77.0.2"
KERNEL_IP = "10.77.0.1/24"
SYNACK_IP6 = "fd77::2"
KERNEL_IP6 = "fd77::1/64"
REQUEST = b"GET\n"
RESPONSE = b"OK\n"
CHUNK = 1 << 18


def payload(nbytes: int, seed: int) -> bytes:
    """``nbytes`` of seeded pseudo-random data, the same as ``kernel_agent.payload``."""
    return random.Random(seed).randbytes(nbytes)


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(fields, default=str)}\n")
    sys.stdout.flush()


def offload_keyword() -> bool:
    """Whether ``Host.tun`` takes ``offload=`` (being added; absent in older trees)."""
    return "offload" in inspect.signature(Host.tun).parameters


def open_host(a: argparse.Namespace) -> Host:
    ipv6 = getattr(a, "ipv6", False)
    kwargs: dict[str, Any] = {
        "kernel_ip": f"{KERNEL_IP},{KERNEL_IP6}" if ipv6 else KERNEL_IP,
        "mtu": a.mtu,
    }
    if offload_keyword():
        kwargs["offload"] = bool(a.offload)
    elif a.offload:
        raise NotImplementedError("not available yet: Host.tun has no offload= keyword")
    if getattr(a, "loss", 0.0):
        kwargs["impair"] = PathConfig(loss=a.loss)
        kwargs["impair_seed"] = a.impair_seed
    return Host.tun(a.tun, f"{SYNACK_IP},{SYNACK_IP6}" if ipv6 else SYNACK_IP, **kwargs)


def describe(host: Host) -> dict[str, Any]:
    link = host.link
    return {
        "offload": bool(getattr(link, "offload", False)),
        "mtu": getattr(link, "mtu", None),
        "max_segment_payload": getattr(link, "max_segment_payload", None),
    }


def counters(host: Host) -> dict[str, Any]:
    """The link's, driver's and stack's counters (for the report's diagnostics)."""
    out: dict[str, Any] = {}
    for name, obj in (("link", host.link), ("driver", host.driver), ("stack", host.stack)):
        stats = getattr(obj, "stats", None)
        if stats:
            out[name] = dict(stats)
    return out


async def until_term() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# ------------------------------------------------------------------ bulk
class Discard(asyncio.Protocol):
    """Counts what arrives (and hashes it, given ``digest``); resolves ``done`` at the
    peer's FIN."""

    def __init__(self, done: asyncio.Future[tuple[int, float, float]], digest: Any = None) -> None:
        self.done = done
        self.digest = digest
        self.nbytes = 0
        self.first = 0.0
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.nbytes:
            self.first = time.monotonic()
        self.nbytes += len(data)
        if self.digest is not None:
            self.digest.update(data)

    def eof_received(self) -> bool:
        if not self.done.done():
            self.done.set_result((self.nbytes, self.first, time.monotonic()))
        return False  # let the transport close: our FIN goes out

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost before FIN: {exc!r}"))


async def bulk_recv(a: argparse.Namespace) -> None:
    host = open_host(a)
    try:
        done: asyncio.Future[tuple[int, float, float]] = asyncio.get_running_loop().create_future()
        digest = hashlib.sha256() if a.data_seed is not None else None
        await host.create_server(lambda: Discard(done, digest), a.port)
        emit("READY", **describe(host))
        nbytes, first, last = await asyncio.wait_for(done, a.timeout)
        await asyncio.sleep(0.05)  # let our FIN and the last ACK go out
        extra: dict[str, Any] = {}
        if digest is not None:
            want = hashlib.sha256(payload(nbytes, a.data_seed)).hexdigest()
            extra["intact"] = digest.hexdigest() == want
        emit(
            "RESULT",
            bytes=nbytes,
            seconds=last - first,
            **describe(host),
            counters=counters(host),
            **extra,
        )
    finally:
        await host.close()


async def bulk_send(a: argparse.Namespace) -> None:
    host = open_host(a)
    try:
        emit("READY", **describe(host))
        reader, writer = await asyncio.wait_for(host.open_connection(a.host, a.port), 10)
        sent = 0
        if a.bytes is not None:  # exactly this data, however long it takes
            data = memoryview(payload(a.bytes, a.data_seed))
            t0 = time.monotonic()
            for i in range(0, len(data), CHUNK):
                writer.write(data[i : i + CHUNK])
                await writer.drain()
            sent = len(data)
        else:
            chunk = bytes(CHUNK)
            t0 = time.monotonic()
            end = t0 + a.seconds
            while time.monotonic() < end:
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
        writer.write_eof()
        # The kernel receiver closes after reading everything: that is delivery.
        await asyncio.wait_for(reader.read(), a.timeout)
        t1 = time.monotonic()
        writer.close()
        emit("RESULT", bytes=sent, seconds=t1 - t0, **describe(host), counters=counters(host))
    finally:
        await host.close()


# ------------------------------------------------------- connection rate
async def cps_server(a: argparse.Namespace) -> None:
    host = open_host(a)
    served = 0
    errors = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served, errors
        try:
            await reader.readexactly(len(REQUEST))
            writer.write(RESPONSE)
            writer.close()
            served += 1
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            errors += 1
            writer.close()

    try:
        await host.start_server(handle, a.port, backlog=4096, config=TcpConfig(nodelay=True))
        emit("READY", **describe(host))
        await until_term()
        emit("RESULT", served=served, errors=errors, counters=counters(host))
    finally:
        await host.close()


async def cps_client(a: argparse.Namespace) -> None:
    host = open_host(a)
    count = 0
    errors = 0
    first_error: list[str] = []
    cfg = TcpConfig(nodelay=True)

    async def worker(end: float) -> None:
        nonlocal count, errors
        while time.monotonic() < end:
            try:
                reader, writer = await asyncio.wait_for(
                    host.open_connection(a.host, a.port, config=cfg), 5
                )
                writer.write(REQUEST)
                got = await asyncio.wait_for(reader.read(), 5)
                writer.close()
                if got == RESPONSE:
                    count += 1
                else:
                    errors += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                errors += 1
                if not first_error:
                    first_error.append(repr(exc))

    try:
        emit("READY", **describe(host))
        await asyncio.sleep(0.2)  # the kernel's side of the TUN device comes up
        t0 = time.monotonic()
        await asyncio.gather(*(worker(t0 + a.seconds) for _ in range(a.concurrency)))
        t1 = time.monotonic()
        emit(
            "RESULT",
            count=count,
            errors=errors,
            seconds=t1 - t0,
            first_error=first_error[0] if first_error else None,
            counters=counters(host),
        )
    finally:
        await host.close()


# ----------------------------------------------------------------- latency
async def echo_server(a: argparse.Namespace) -> None:
    host = open_host(a)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
        writer.close()

    try:
        await host.start_server(handle, a.port, config=TcpConfig(nodelay=True))
        emit("READY", **describe(host))
        await until_term()
        emit("RESULT", counters=counters(host))
    finally:
        await host.close()


# ------------------------------------------------------------------ memory
class Idle(asyncio.Protocol):
    """Holds nothing but what the server itself keeps for a connection."""

    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Idle.made += 1

    def data_received(self, data: bytes) -> None:
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def buffer_bytes(host: Host) -> int:
    """Bytes held in the connections' send and receive buffers (zero when idle)."""
    total = 0
    for conn in stack_connections(host):
        for name in _slot_names(type(conn)):
            if "buf" not in name:
                continue
            buf = getattr(conn, name, None)
            if isinstance(buf, (bytes, bytearray, memoryview)):
                total += len(buf)
            elif buf is not None and hasattr(buf, "__len__"):
                with contextlib.suppress(TypeError):
                    total += len(buf)
    return total


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return names


def stack_connections(host: Host) -> list[Any]:
    """The stack's connections (a method in older trees, a property in newer ones)."""
    conns = host.stack.connections
    return list(conns() if callable(conns) else conns)


async def idle_server(a: argparse.Namespace) -> None:
    host = open_host(a)
    try:
        await host.create_server(Idle, a.port, backlog=a.expect)
        await asyncio.sleep(0.1)
        gc.collect()
        if a.tracemalloc:
            tracemalloc.start(1)
        rss0 = rss_bytes()
        traced0 = tracemalloc.get_traced_memory()[0] if a.tracemalloc else 0
        snap0 = tracemalloc.take_snapshot() if a.tracemalloc else None
        emit("READY", **describe(host))
        deadline = time.monotonic() + a.timeout
        while Idle.made < a.expect and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last ACKs; delayed-ACK timers run out
        n = Idle.made
        conns = len(stack_connections(host))
        gc.collect()
        rss1 = rss_bytes()
        out: dict[str, Any] = {
            "connections": n,
            "stack_connections": conns,
            "rss_per_conn": (rss1 - rss0) / n if n else None,
            "buffers": buffer_bytes(host),
        }
        if a.tracemalloc and snap0 is not None:
            traced1 = tracemalloc.get_traced_memory()[0]
            snap1 = tracemalloc.take_snapshot()
            stats = snap1.compare_to(snap0, "filename")
            top = [
                (
                    os.path.relpath(
                        s.traceback[0].filename,
                        os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                    ),
                    s.size_diff,
                )
                for s in stats[:8]
            ]
            synack_part = sum(
                s.size_diff for s in stats if f"{os.sep}synack{os.sep}" in s.traceback[0].filename
            )
            out.update(
                traced_per_conn=(traced1 - traced0 - out["buffers"]) / n if n else None,
                synack_files_per_conn=synack_part / n if n else None,
                top=top,
            )
            tracemalloc.stop()
        emit("RESULT", **out)
        await until_term()
    finally:
        await host.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tun", default="sb0")
    common.add_argument("--mtu", type=int, default=1500)
    common.add_argument("--offload", action="store_true")
    common.add_argument("--timeout", type=float, default=60.0)
    common.add_argument("--ipv6", action="store_true", help="also fd77::2 (kernel fd77::1)")
    common.add_argument("--loss", type=float, default=0.0, help="packet loss each way")
    common.add_argument("--impair-seed", type=int, default=1)
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("bulk-recv", "cps-server", "echo-server", "idle-server"):
        sv = sub.add_parser(name, parents=[common])
        sv.add_argument("--port", type=int, required=True)
        if name == "bulk-recv":
            sv.add_argument(
                "--data-seed",
                type=int,
                help="check the bytes are kernel_agent's --bytes data of this seed",
            )
        if name == "idle-server":
            sv.add_argument("--expect", type=int, default=10000)
            sv.add_argument("--tracemalloc", action="store_true")
    for name in ("bulk-send", "cps-client"):
        cl = sub.add_parser(name, parents=[common])
        cl.add_argument("host")
        cl.add_argument("port", type=int)
        cl.add_argument("--seconds", type=float, default=3.0)
        if name == "bulk-send":
            cl.add_argument("--bytes", type=int, help="send exactly this much seeded data")
            cl.add_argument("--data-seed", type=int, default=1)
        if name == "cps-client":
            cl.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args(argv)
    modes = {
        "bulk-recv": bulk_recv,
        "bulk-send": bulk_send,
        "cps-server": cps_server,
        "cps-client": cps_client,
        "echo-server": echo_server,
        "idle-server": idle_server,
    }
    try:
        asyncio.run(modes[a.mode](a))
    except Exception as exc:  # reported to the orchestrator, which names the agent
        emit("RESULT", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
