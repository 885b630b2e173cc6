"""What one ``synack serve`` process runs: the service on its host (:func:`start_service`),
the serving loop with its summary (:func:`serve`), and the signals that stop it
(:class:`Signals`); used by the command and by each ``--workers`` worker."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
import time
from collections.abc import Awaitable
from typing import Any

from ..aio.host import Host
from ..aio.streams import Server
from ..services.basic import chargen, discard, echo
from ..services.http import HttpService
from ..services.runner import ConnectionRecord, Handler, ServiceRunner
from ..wire.ipv6 import addr_to_str
from . import hostport, own_command
from .realnet import (
    QUIET_STATES,
    SetupError,
    open_tun,
    settle,
)
from .serve_summary import print_serve_summary, summary_counts

SERVICES: dict[str, int] = {"echo": 7, "discard": 9, "chargen": 19, "http": 80}


def retry_command(args: argparse.Namespace) -> str:
    """The command line to suggest when serving needs root or a device: the user's own,
    with what it lacks (--tun, --kernel-ip on a new device) added."""
    extra: list[str] = []
    if not args.tun:
        extra += ["--tun", "syn0"]
        if args.kernel_ip is None and args.create:
            extra += ["--kernel-ip", "10.77.0.1/24"]
    return own_command(args, *extra)


def make_handler(args: argparse.Namespace) -> Handler:
    """The service handler the options ask for (SetupError for a bad --root)."""
    if args.service == "echo":
        return echo
    if args.service == "discard":
        return discard
    if args.service == "chargen":
        return chargen(args.nbytes)
    try:
        return HttpService(args.root, idle_timeout=args.idle_timeout or None)
    except OSError as exc:
        raise SetupError(f"--root {args.root}: {exc}", 2) from None


async def start_service(
    host: Host, args: argparse.Namespace, *, on_close: Any = None, ids: Any = None
) -> tuple[Server, ServiceRunner, int]:
    """Listen on the service's port on ``host``; SetupError if the port is taken."""
    handler = make_handler(args)
    port_ = args.port or SERVICES[args.service]
    runner = ServiceRunner(
        args.service,
        handler,
        grace=args.grace,
        hash_input=bool(getattr(args, "verify", False)) and args.service in ("echo", "discard"),
        on_close=on_close,
        ids=ids,
    )
    try:
        server = await host.start_server(runner, port_)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SetupError(
                f"port {port_} is already in use on {host.ip}: pick another with --port"
            ) from None
        raise SetupError(f"cannot listen on port {port_}: {exc.strerror or exc}") from None
    return server, runner, port_


async def serve(args: argparse.Namespace, notes: tuple[str, ...] = ()) -> int:
    started = time.monotonic()
    try:
        setup = open_tun(args, retry_command(args))
    except SetupError as exc:
        print(f"synack serve: {exc}", file=sys.stderr)
        return exc.status
    host = setup.host
    out = sys.stdout
    setup.watch_checksums("serve", sys.stderr, args.corrupt)

    def log(record: ConnectionRecord) -> None:
        if not args.quiet:
            print(record.describe(), file=out, flush=True)

    signals = Signals(asyncio.get_running_loop())
    try:
        try:
            server, runner, port_ = await start_service(host, args, on_close=log)
        except SetupError as exc:
            print(f"synack serve: {exc}", file=sys.stderr)
            return exc.status
        where = where_text(host, port_)
        print(f"listening on {where} ({what(args)}) {setup.description}", file=out, flush=True)
        for note in (*notes, *setup.notes):
            print(note, file=sys.stderr, flush=True)
        reason = await signals.wait_first(host)
        print(f"stopping ({reason}): closing connections gracefully", file=sys.stderr, flush=True)
        left = await stop(args, host, server, runner, signals)
        counts = summary_counts(setup, runner, left)
        await setup.close(settle_timeout=0.0)
        print_serve_summary(
            args, counts, where, setup.description, time.monotonic() - started, setup.recordings()
        )
    finally:
        await setup.close(settle_timeout=0.0)
        signals.close()
    return 0


def what(args: argparse.Namespace) -> str:
    what: str = args.service
    if args.service == "chargen" and args.nbytes is not None:
        what += f", {args.nbytes} bytes per connection"
    return what


def where_text(host: Host, port_: int) -> str:
    return ", ".join(hostport(addr_to_str(a), port_) for a in host.stack.addresses)


async def stop(
    args: argparse.Namespace, host: Host, server: Server, runner: ServiceRunner, signals: Signals
) -> int:
    """Stop listening, let connections finish within --grace (unless a second signal
    comes), reset what is left; returns how many were still open."""
    server.close()
    runner.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.grace
    if not await signals.unless_second(runner.wait_idle(args.grace)):
        runner.abort_all()
        await runner.wait_idle(1.0)
    await signals.unless_second(settle([host], max(0.0, deadline - loop.time())))
    return sum(1 for c in host.stack.connections if c.state not in QUIET_STATES)


class Signals:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the second for an abrupt one.

    ``handle_signals=False`` (a worker of ``--workers``): no signal handlers; the
    supervisor's word comes through :meth:`watch_pipe` instead."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, handle_signals: bool = True, say: bool = True
    ) -> None:
        self.loop = loop
        self.count = 0
        self.name = ""
        self.say = say
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        self.handle_signals = handle_signals
        self._pipe: int | None = None
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig.name)

    def _on_signal(self, name: str) -> None:
        self.count += 1
        if self.count == 1:
            self.name = name
            self.first.set()
        else:
            if not self.second.is_set() and self.say:
                print("second signal: resetting what is left", file=sys.stderr, flush=True)
            self.second.set()

    def watch_pipe(self, fd: int) -> None:
        """Take stop requests from the supervisor: each byte is a signal's name's first
        letter (``I``, ``T``); the end of the pipe (the supervisor gone) is both."""
        self._pipe = fd
        os.set_blocking(fd, False)

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                return
            if not data:
                self.loop.remove_reader(fd)
                self._on_signal("the supervisor went away")
                self._on_signal("the supervisor went away")
                return
            for b in data:
                self._on_signal({ord("T"): "SIGTERM"}.get(b, "SIGINT"))

        self.loop.add_reader(fd, readable)

    async def wait_first(self, host: Host) -> str:
        """Until the first signal, or the device going away; returns why."""
        while not self.first.is_set():
            try:
                async with asyncio.timeout(0.5):
                    await self.first.wait()
            except TimeoutError:
                if host.driver.link_error is not None:
                    return f"the link failed: {host.driver.link_error}"
        return self.name

    async def unless_second(self, aw: Awaitable[bool]) -> bool:
        """``await aw`` unless a second signal comes first (then False)."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self.second.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            return False
        return bool(task.result())

    def close(self) -> None:
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.remove_signal_handler(sig)
        if self._pipe is not None:
            self.loop.remove_reader(self._pipe)
