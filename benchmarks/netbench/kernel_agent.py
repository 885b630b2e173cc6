"""The kernel's end of the network benchmarks: plain sockets, standard library only.

Run inside a namespace by ``bench_net.py``::

    kernel_agent.py send HOST PORT --seconds 3        # bulk sender (large sendall)
    kernel_agent.py send HOST PORT --bytes N          # exactly N bytes of seeded data
    kernel_agent.py recv --port 5001 [--ipv6] [--data-seed S]  # bulk receiver (recv_into)
    kernel_agent.py drain HOST PORT --seconds 3       # connect, read for a while, close
    kernel_agent.py cps-client HOST PORT --seconds 3 --threads 8
    kernel_agent.py cps-server --port 5002            # asyncio: request, response, close
    kernel_agent.py echo-server --port 5003           # asyncio echo (ping-pong)
    kernel_agent.py pingpong HOST PORT --count 5000   # 1-byte round trips
    kernel_agent.py hold HOST PORT --count 10000      # open and keep idle connections

Each prints ``READY {json}`` once it listens (servers, ``hold``) and
``RESULT {json}`` with its figures; servers report on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import resource
import signal
import socket
import sys
import threading
import time
from typing import Any

CHUNK = 1 << 20
REQUEST = b"GET\n"
RESPONSE = b"OK\n"


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(fields)}\n")
    sys.stdout.flush()


def _listener(port: int, bind: str = "0.0.0.0", backlog: int = 4096) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(backlog)
    return s


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """Connect, retrying for a while if nothing listens yet (the peer is starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except (ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def payload(nbytes: int, seed: int) -> bytes:
    """``nbytes`` of seeded pseudo-random data: what a ``--bytes`` transfer carries (the
    receiver, given the seed too, checks it arrived intact)."""
    return random.Random(seed).randbytes(nbytes)


def do_send(a: argparse.Namespace) -> None:
    s = connect(a.host, a.port)
    s.settimeout(a.seconds + 30 if a.bytes is None else a.timeout)
    sent = 0
    t0 = time.monotonic()
    if a.bytes is not None:  # exactly this data, however long it takes
        data = memoryview(payload(a.bytes, a.data_seed))
        t0 = time.monotonic()
        for i in range(0, len(data), a.chunk):
            s.sendall(data[i : i + a.chunk])
        sent = len(data)
    else:
        buf = memoryview(bytes(a.chunk))
        end = t0 + a.seconds
        while time.monotonic() < end:
            s.sendall(buf)
            sent += len(buf)
    s.shutdown(socket.SHUT_WR)
    # Wait for the receiver's close so the figure covers delivery, not buffering.
    with_eof = s.recv(1) == b""
    t1 = time.monotonic()
    s.close()
    emit("RESULT", bytes=sent, seconds=t1 - t0, clean_close=with_eof)


def do_recv(a: argparse.Namespace) -> None:
    ls = _listener(a.port, "::" if a.ipv6 else "0.0.0.0")
    emit("READY", port=a.port)
    ls.settimeout(a.timeout)
    conn, _ = ls.accept()
    conn.settimeout(a.timeout)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    got = 0
    first = None
    digest = hashlib.sha256() if a.data_seed is not None else None
    while True:
        n = conn.recv_into(view)
        if not n:
            break
        if first is None:
            first = time.monotonic()
        got += n
        if digest is not None:
            digest.update(view[:n])
    t1 = time.monotonic()
    conn.close()
    ls.close()
    extra: dict[str, Any] = {}
    if digest is not None:
        want = hashlib.sha256(payload(got, a.data_seed)).hexdigest()
        extra["intact"] = digest.hexdigest() == want
    emit("RESULT", bytes=got, seconds=(t1 - first) if first is not None else 0.0, **extra)


def do_drain(a: argparse.Namespace) -> None:
    """Connect to a sender (chargen) and read what it sends for ``--seconds``; the rate
    counts from the first byte to the last read."""
    s = connect(a.host, a.port)
    s.settimeout(30)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    got = 0
    first = last = time.monotonic()
    end = first + a.seconds
    while True:
        n = s.recv_into(view)
        if not n:
            break
        if not got:
            first = time.monotonic()
            end = first + a.seconds
        got += n
        last = time.monotonic()
        if last >= end:
            break
    s.close()
    emit("RESULT", bytes=got, seconds=last - first)


def do_cps_client(a: argparse.Namespace) -> None:
    counts = [0] * a.threads
    errors = [0] * a.threads
    first_error: list[str] = []
    start = threading.Event()
    addr = (a.host, a.port)

    def worker(i: int) -> None:
        start.wait()
        end = time.monotonic() + a.seconds
        n = e = 0
        while time.monotonic() < end:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5.0)
            try:
                s.connect(addr)
                s.sendall(REQUEST)
                got = b""
                while True:
                    part = s.recv(64)
                    if not part:
                        break
                    got += part
                if got == RESPONSE:
                    n += 1
                else:
                    e += 1
            except OSError as exc:
                e += 1
                if not first_error:
                    first_error.append(repr(exc))
            finally:
                s.close()
        counts[i] = n
        errors[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start.set()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    emit(
        "RESULT",
        count=sum(counts),
        errors=sum(errors),
        seconds=t1 - t0,
        first_error=first_error[0] if first_error else None,
    )


async def _serve_until_term(handler: Any, port: int) -> int:
    served = [0]

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
            served[0] += 1
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "0.0.0.0", port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    emit("READY", port=port)
    await stop.wait()
    server.close()
    return served[0]


async def _request_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(len(REQUEST))
    writer.write(RESPONSE)
    await writer.drain()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)


def do_cps_server(a: argparse.Namespace) -> None:
    served = asyncio.run(_serve_until_term(_request_response, a.port))
    emit("RESULT", served=served)


def do_echo_server(a: argparse.Namespace) -> None:
    served = asyncio.run(_serve_until_term(_echo, a.port))
    emit("RESULT", served=served)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list."""
    if not sorted_values:
        raise ValueError("no values")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def do_pingpong(a: argparse.Namespace) -> None:
    s = connect(a.host, a.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5.0)
    one = b"x"
    times: list[float] = []
    clock = time.perf_counter
    for i in range(a.warmup + a.count):
        t0 = clock()
        s.sendall(one)
        if not s.recv(1):
            raise ConnectionError("peer closed during ping-pong")
        if i >= a.warmup:
            times.append(clock() - t0)
    s.close()
    times.sort()
    emit(
        "RESULT",
        n=len(times),
        p50_us=percentile(times, 50) * 1e6,
        p99_us=percentile(times, 99) * 1e6,
        mean_us=sum(times) / len(times) * 1e6,
    )


def do_hold(a: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    socks = []
    t0 = time.monotonic()
    for _ in range(a.count):
        s = connect(a.host, a.port, timeout=10.0)
        socks.append(s)
    emit("READY", held=len(socks), seconds=time.monotonic() - t0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(a.hold)
    for s in socks:
        s.close()
    emit("RESULT", held=len(socks))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--seconds", type=float, default=3.0)
    s.add_argument("--chunk", type=int, default=CHUNK)
    s.add_argument("--bytes", type=int, help="send exactly this much seeded data (not --seconds)")
    s.add_argument("--data-seed", type=int, default=1)
    s.add_argument("--timeout", type=float, default=600.0)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--timeout", type=float, default=60.0)
    r.add_argument("--ipv6", action="store_true", help="listen on :: (IPv6 and IPv4)")
    r.add_argument(
        "--data-seed", type=int, help="check the bytes are the sender's --bytes data of this seed"
    )
    d = sub.add_parser("drain")
    d.add_argument("host")
    d.add_argument("port", type=int)
    d.add_argument("--seconds", type=float, default=3.0)
    c = sub.add_parser("cps-client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--seconds", type=float, default=3.0)
    c.add_argument("--threads", type=int, default=8)
    for name in ("cps-server", "echo-server"):
        sv = sub.add_parser(name)
        sv.add_argument("--port", type=int, required=True)
    pp = sub.add_parser("pingpong")
    pp.add_argument("host")
    pp.add_argument("port", type=int)
    pp.add_argument("--count", type=int, default=5000)
    pp.add_argument("--warmup", type=int, default=200)
    h = sub.add_parser("hold")
    h.add_argument("host")
    h.add_argument("port", type=int)
    h.add_argument("--count", type=int, default=10000)
    h.add_argument("--hold", type=float, default=120.0)
    a = p.parse_args(argv)
    handlers = {
        "send": do_send,
        "recv": do_recv,
        "drain": do_drain,
        "cps-client": do_cps_client,
        "cps-server": do_cps_server,
        "echo-server": do_echo_server,
        "pingpong": do_pingpong,
        "hold": do_hold,
    }
    try:
        handlers[a.mode](a)
    except Exception as exc:  # reported to the orchestrator, which names the agent
        emit("RESULT", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
