"""``synack connect HOST PORT``: a TCP connection through synack, like ``nc``.

Standard input goes to the connection and the connection to standard
output.  At the end of standard input synack half-closes (sends FIN) and
keeps printing what arrives until the peer closes too; if the peer closes
first, synack stops reading standard input, closes its side and exits.
When synack closed first (its side is in TIME-WAIT) it keeps answering for
``--linger`` seconds (default 3) before exiting, so a FIN the peer resends
because our last ACK was lost is ACKed again (C13).
Exit status 0 when both sides closed in order; 1 with a message when the
connection is refused, times out, is reset or fails with an ICMP error;
2 for bad arguments or setup errors.

With ``--tun`` the connection goes through a TUN device to the kernel
(root); without it, to synack's built-in servers in-process (echo 7,
discard 9, chargen 19, http 80 at HOST), which needs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import sys
import threading
import time
from typing import Any, BinaryIO

from ..services.runner import synack_connection
from . import hostport, non_negative, own_command, port
from .net_options import add_linger_option, add_link_options
from .realnet import BUILTIN_SERVICES, NetSetup, open_network

NAME = "connect"
READ_CHUNK = 1 << 16


def _host(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an IP address: {text!r} (synack resolves no names)"
        ) from None


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``connect`` subcommand to ``sub`` (an argparse subparsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "connect",
        help="like nc: stdin to a TCP connection through synack, the connection to stdout",
        description="Open a TCP connection through synack: standard input goes to it, what "
        "arrives goes to standard output; at the end of standard input synack half-closes "
        "(FIN) and waits for the peer to close.  Without --tun the peer is synack's built-in "
        "servers in-process (echo 7, discard 9, chargen 19, http 80).",
        epilog="example (as root): synack connect 10.77.0.1 8000 --tun syn0 --ip 10.77.0.2 "
        "--kernel-ip 10.77.0.1/24",
    )
    p.add_argument("host", type=_host, help="IPv4 or IPv6 address to connect to")
    p.add_argument("port", type=port, help="TCP port")
    p.add_argument(
        "--timeout",
        type=non_negative(float),
        default=30.0,
        metavar="S",
        help="give up connecting after S seconds (default 30)",
    )
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="say when connected and print a summary on stderr",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no notes on stderr")
    add_linger_option(p)
    add_link_options(p, client=True)
    return p


def retry_command(args: argparse.Namespace) -> str:
    """What to suggest (after ``sudo``) when the device needs privileges: the user's
    own command."""
    return own_command(args)


def describe_failure(exc: BaseException, host: str, port_: int, timeout: float) -> str:
    """The message for a connection that could not be made or failed."""
    where = hostport(host, port_)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused (the peer answered our SYN with RST)"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {timeout:g}s (connection timed out)"
    if isinstance(exc, ConnectionResetError):
        return f"connection to {where} reset by the peer"
    if isinstance(exc, ConnectionAbortedError):
        return f"connection to {where} aborted: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{where}: {exc.strerror or os.strerror(exc.errno)} ({name})"
    return f"{where}: {exc}"


def run(args: argparse.Namespace) -> int:
    return asyncio.run(connect_main(args, sys.stdin.buffer, sys.stdout.buffer))


class _StdinPump:
    """Reads a binary stream on a daemon thread and hands chunks to the loop.

    A thread works for every kind of standard input (terminal, pipe, regular
    file) and, being a daemon, never holds up the exit when the peer closes
    first while standard input is still open.  At most a few chunks wait, so
    a slow connection slows the reading down.
    """

    def __init__(self, stream: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._slots = threading.Semaphore(4)  # chunks read but not yet taken
        self._thread = threading.Thread(target=self._run, name="synack-stdin", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):
            fd = -1  # not a real file (tests pass BytesIO): use its read()
        while True:
            self._slots.acquire()
            try:
                data = os.read(fd, READ_CHUNK) if fd >= 0 else self._stream.read(READ_CHUNK)
            except (OSError, ValueError):
                data = b""
            try:
                self._loop.call_soon_threadsafe(self.queue.put_nowait, data or b"")
            except RuntimeError:
                return  # the loop is gone
            if not data:
                return

    async def get(self) -> bytes:
        data = await self.queue.get()
        self._slots.release()
        return data


async def connect_main(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The command's body, with the streams given (tests pass their own)."""
    err = sys.stderr
    services = ", ".join(f"{n} {p}" for p, n in BUILTIN_SERVICES.items())
    opened = await open_network(
        args,
        "connect",
        args.host,
        retry_command(args),
        f"no --tun, so talking to synack's built-in servers at {args.host} in-process "
        f"({services}); --tun reaches real programs",
        err,
    )
    if isinstance(opened, int):
        return opened
    setup: NetSetup = opened
    setup.linger = args.linger
    started = time.monotonic()
    sent = received = 0
    status = 0
    stdout_gone = False
    conn = None
    try:
        try:
            async with asyncio.timeout(args.timeout or None):
                reader, writer = await setup.host.open_connection(args.host, args.port)
        except (OSError, TimeoutError) as exc:
            print(
                f"synack connect: {describe_failure(exc, args.host, args.port, args.timeout)}",
                file=err,
            )
            return 1
        conn = synack_connection(writer)
        if args.verbose:
            print(
                f"synack connect: connected to {hostport(args.host, args.port)} from "
                f"{hostport(*writer.get_extra_info('sockname')[:2])} {setup.description}",
                file=err,
            )
        pump = _StdinPump(stdin, asyncio.get_running_loop())

        async def upstream() -> None:
            nonlocal sent
            while data := await pump.get():
                writer.write(data)
                sent += len(data)
                await writer.drain()
            if not writer.transport.is_closing():
                writer.write_eof()  # half-close: FIN after the data (C10)

        up = asyncio.ensure_future(upstream())
        try:
            while data := await reader.read(1 << 18):
                received += len(data)
                try:
                    stdout.write(data)
                    stdout.flush()
                except BrokenPipeError:
                    raise _StdoutClosed from None
                if up.done() and not up.cancelled() and (failed := up.exception()):
                    raise failed
            # The peer closed: whatever we have not sent yet will not be read.
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            writer.close()
        except _StdoutClosed:
            up.cancel()
            writer.transport.abort()
            stdout_gone = True
        except (ConnectionError, TimeoutError, OSError) as exc:
            up.cancel()
            writer.transport.abort()
            print(
                f"synack connect: {describe_failure(exc, args.host, args.port, args.timeout)}",
                file=err,
            )
            status = 1
    finally:
        await setup.close(settle_timeout=3.0)
    if args.verbose:
        info = conn.info() if conn is not None else {}
        theirs = ""
        if setup.peer is not None:
            n = sum(
                int(r.conn.stats["retransmits"])
                for runner in setup.peer_runners
                for r in runner.records
                if r.conn is not None
            )
            theirs = f" by synack, {n} by the built-in server"
        print(
            f"synack connect: {sent} bytes sent, {received} received in "
            f"{time.monotonic() - started:.2f}s; {info.get('retransmits', 0)} retransmissions"
            f"{theirs}",
            file=err,
        )
        for name, path, note in setup.recordings():
            print(f"synack connect: {name} {path}: {note}", file=err)
    if stdout_gone:
        raise BrokenPipeError(errno.EPIPE, "standard output closed")  # cli: quiet exit 141
    return status


class _StdoutClosed(Exception):
    """Standard output went away (``synack connect ... | head``)."""
