"""``synack serve echo|discard|chargen|http``: a synack server on a TUN device.

The kernel, and so every program on the machine (or in the network
namespace), reaches it at ``--ip`` through the device::

    sudo synack serve echo --tun syn0 --ip 10.77.0.2 --kernel-ip 10.77.0.1/24
    socat - TCP:10.77.0.2:7

It prints the address it listens on, one line per finished connection
(bytes each way, retransmissions; with ``--verify`` also the SHA-256 of what
arrived for echo and discard, which costs a hash of every byte), and runs
until SIGINT or SIGTERM.  Then it stops listening, lets each connection
finish gracefully (FIN, and the peer's FIN, within ``--grace`` seconds; an
HTTP response in progress completes), resets what is left, and prints a
summary table.  A second signal stops at once.

Serving needs a TUN device (and so root or CAP_NET_ADMIN): without
``--tun`` the command explains how to run it.

``--workers N`` (default: the number of CPUs) serves from N processes: the device
is opened multi-queue, one queue per worker, each worker with its own ``Stack`` on
the same address and the same secret (so ISNs, SYN cookies and timestamp offsets
agree), and a steering program (:mod:`synack.links.steering`) keeps every
connection on one worker.  The first process supervises: it prints the listening
line, passes SIGINT/SIGTERM on to its workers through a pipe each (the workers
ignore the signals themselves, so a terminal's Ctrl-C, which reaches the whole
process group, counts once), and prints one summary that adds up the workers'.
See docs/design.md, "Both cores".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import itertools
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aio.host import Host
from ..aio.streams import Server
from ..links.steering import attach_steering, ephemeral_ports, load_steering_program
from ..links.tun import TunLink
from ..services.basic import chargen, discard, echo
from ..services.http import HttpService
from ..services.runner import ConnectionRecord, Handler, ServiceRunner
from ..wire.ipv6 import addr_to_str
from . import check_outputs, hostport, in_range, non_negative, own_command, port
from .realnet import (
    DEFAULT_IP,
    QUIET_STATES,
    SetupError,
    add_link_options,
    offload_choice,
    open_tun,
    resolve_ip,
    settle,
    tun_error,
)
from .serve_summary import merge_counts, print_serve_summary, summary_counts

NAME = "serve"

#: Service name -> well-known port.
SERVICES: dict[str, int] = {"echo": 7, "discard": 9, "chargen": 19, "http": 80}
#: The most queues a TUN device has (MAX_TAP_QUEUES in include/linux/if_tun.h).
MAX_WORKERS = 256


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``sub`` (an argparse subparsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="serve echo, discard, chargen or HTTP on a TUN device (root)",
        description="Run a synack server that the kernel and its programs reach through a "
        "TUN device: echo (RFC 862), discard (RFC 863), chargen (RFC 864) or HTTP/1.1.  "
        "Runs until SIGINT/SIGTERM, then closes connections gracefully and prints a summary.",
        epilog="example (as root): synack serve echo --tun syn0 --ip 10.77.0.2 "
        "--kernel-ip 10.77.0.1/24   then: socat - TCP:10.77.0.2:7",
    )
    p.add_argument("service", choices=list(SERVICES), help="what to serve")
    p.add_argument(
        "--port",
        type=port,
        metavar="N",
        help="port to listen on (default: the service's "
        "well-known port: echo 7, discard 9, chargen 19, http 80)",
    )
    p.add_argument(
        "--bytes",
        type=non_negative(int),
        dest="nbytes",
        metavar="N",
        help="chargen: send N bytes, then close (default: until the peer goes)",
    )
    p.add_argument(
        "--root", metavar="DIR", help="http: serve the files under DIR (besides / and /bytes/N)"
    )
    p.add_argument(
        "--grace",
        type=non_negative(float),
        default=5.0,
        metavar="S",
        help="seconds connections get to finish when stopping (default 5)",
    )
    p.add_argument(
        "--idle-timeout",
        type=non_negative(float),
        default=60.0,
        metavar="S",
        help="http: close a persistent connection idle this long (default 60; 0: never)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="echo, discard: keep a SHA-256 of what each connection sent us and "
        "print it on the connection's line (hashing every byte costs CPU time)",
    )
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no line per connection, only the summary"
    )
    p.add_argument(
        "--workers",
        type=in_range(int, 1, MAX_WORKERS, "--workers", not_a="not a number of workers"),
        default=None,
        metavar="N",
        help="serve from N processes, one queue each of a multi-queue TUN "
        "device (default: the number of CPUs; 1 with --trace or --pcap, or on "
        "an existing single-queue device)",
    )
    add_link_options(p)
    return p


def retry_command(args: argparse.Namespace) -> str:
    """The command line to suggest when serving needs root or a device: the user's own,
    with what it lacks (--tun, --kernel-ip on a new device) added."""
    extra: list[str] = []
    if not args.tun:
        extra += ["--tun", "syn0"]
        if args.kernel_ip is None and args.create:
            extra += ["--kernel-ip", "10.77.0.1/24"]
    return own_command(args, *extra)


def no_tun_message(args: argparse.Namespace) -> str:
    port_ = args.port or SERVICES[args.service]
    ip = (args.ip or DEFAULT_IP).split(",")[0]
    client = {"http": f"curl http://{hostport(ip, port_)}/"}.get(
        args.service, f"socat - TCP:{hostport(ip, port_)}"
    )
    return (
        f"synack serve: serving needs a TUN device (--tun NAME) so that the kernel and "
        f"its programs can reach synack, and that needs root (or CAP_NET_ADMIN).\n"
        f"  try:  sudo {retry_command(args)}\n"
        f"  then: {client}\n"
        f"  (no root? `synack connect 10.0.0.2 7` and `synack get http://10.0.0.2/` talk "
        f"to synack's built-in servers in-process)"
    )


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


def check_args(args: argparse.Namespace) -> None:
    """Option combinations that make no sense (SetupError, status 2)."""
    if args.nbytes is not None and args.service != "chargen":
        raise SetupError("--bytes applies to chargen only", 2)
    if args.root is not None:
        if args.service != "http":
            raise SetupError("--root applies to http only", 2)
        if not Path(args.root).is_dir():
            raise SetupError(f"--root {args.root}: not a directory", 2)


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


def worker_count(args: argparse.Namespace) -> tuple[int, bool]:
    """How many workers to run, and whether the number was asked for (``--workers``)
    rather than chosen (the CPUs; 1 when recording, since a trace or capture is one
    file of one process)."""
    if args.workers is not None:
        return args.workers, True
    if args.trace or args.pcap:
        return 1, False
    return max(1, os.cpu_count() or 1), False


def run(args: argparse.Namespace) -> int:
    try:
        check_args(args)
        if args.workers is not None and args.workers > 1 and (args.trace or args.pcap):
            raise SetupError("--trace and --pcap record one process: use them with --workers 1", 2)
    except SetupError as exc:
        print(f"synack serve: {exc}", file=sys.stderr)
        return exc.status
    bad = check_outputs("serve", {"--trace": args.trace, "--pcap": args.pcap})
    if bad is not None:
        return bad
    if not args.tun:
        print(no_tun_message(args), file=sys.stderr)
        return 2
    workers, asked = worker_count(args)
    if workers > 1:
        return _run_workers(args, workers, asked)
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace, notes: tuple[str, ...] = ()) -> int:
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

    signals = _Signals(asyncio.get_running_loop())
    try:
        try:
            server, runner, port_ = await start_service(host, args, on_close=log)
        except SetupError as exc:
            print(f"synack serve: {exc}", file=sys.stderr)
            return exc.status
        where = _where(host, port_)
        print(f"listening on {where} ({_what(args)}) {setup.description}", file=out, flush=True)
        for note in (*notes, *setup.notes):
            print(note, file=sys.stderr, flush=True)
        reason = await signals.wait_first(host)
        print(f"stopping ({reason}): closing connections gracefully", file=sys.stderr, flush=True)
        left = await _stop(args, host, server, runner, signals)
        counts = summary_counts(setup, runner, left)
        await setup.close(settle_timeout=0.0)
        print_serve_summary(
            args, counts, where, setup.description, time.monotonic() - started, setup.recordings()
        )
    finally:
        await setup.close(settle_timeout=0.0)
        signals.close()
    return 0


def _what(args: argparse.Namespace) -> str:
    what: str = args.service
    if args.service == "chargen" and args.nbytes is not None:
        what += f", {args.nbytes} bytes per connection"
    return what


def _where(host: Host, port_: int) -> str:
    return ", ".join(hostport(addr_to_str(a), port_) for a in host.stack.addresses)


async def _stop(
    args: argparse.Namespace, host: Host, server: Server, runner: ServiceRunner, signals: _Signals
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


class _Signals:
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


# ------------------------------------------------------------------ --workers N
@dataclass
class _Worker:
    """A worker process as its supervisor sees it."""

    index: int
    pid: int
    control: int  # write end: stop requests
    reports: int  # read end: JSON lines from the worker
    buffer: bytearray = field(default_factory=bytearray)
    ready: dict[str, Any] | None = None
    counts: dict[str, int] | None = None
    error: str | None = None
    status: int | None = None
    eof: bool = False


def open_queues(args: argparse.Namespace, workers: int) -> tuple[list[TunLink], list[str]]:
    """The device opened multi-queue, one queue per worker, with the steering program
    attached; and the notes to print.  SetupError when it cannot be done."""
    notes: list[str] = []
    ip_note = resolve_ip(args)
    if ip_note is not None:
        notes.append(ip_note)
    offload, why_not = offload_choice(args)
    try:
        first = TunLink(
            args.tun,
            create=args.create,
            kernel_ip=args.kernel_ip,
            mtu=args.mtu,
            path=args.tun_path,
            offload=offload,
            multi_queue=True,
        )
    except (OSError, ValueError) as exc:
        raise tun_error(exc, retry_command(args)) from None
    queues = [first]
    try:
        for _ in range(workers - 1):
            queues.append(first.add_queue())
        prog = load_steering_program(workers)
        try:
            attach_steering(first.fileno(), prog)
        finally:
            os.close(prog)
    except OSError as exc:
        for q in queues:
            q.close()
        raise SetupError(
            f"cannot serve from {workers} queues of {first.name}: "
            f"{exc.strerror or exc} (--workers 1 serves from one)"
        ) from None
    del why_not  # worker 1 says it, with its other notes
    return queues, notes


def _run_workers(args: argparse.Namespace, workers: int, asked: bool) -> int:
    """``serve --workers N``: open the queues, fork a worker per queue, supervise."""
    try:
        queues, notes = open_queues(args, workers)
    except SetupError as exc:
        if not asked and "single-queue" in str(exc):
            # An existing single-queue device (ip tuntap add without multi_queue).
            return asyncio.run(
                _serve(
                    args,
                    (
                        f"note: {args.tun} is a single-queue device: "
                        f"one worker (`ip tuntap add dev {args.tun} "
                        f"mode tun multi_queue` makes one for "
                        f"--workers)",
                    ),
                )
            )
        print(f"synack serve: {exc}", file=sys.stderr)
        return exc.status
    started = time.monotonic()
    description = (
        f"via {queues[0].name}"
        + (" with offloads" if queues[0].offload else "")
        + f", {workers} workers"
    )
    secret = os.urandom(32)  # shared: any worker can check any worker's SYN cookie
    children: list[_Worker] = []
    try:
        for i, queue in enumerate(queues):
            control_r, control_w = os.pipe()
            reports_r, reports_w = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the worker
                status = 1
                try:
                    for other in children:
                        os.close(other.control)
                        os.close(other.reports)
                    for q in queues:
                        if q is not queue:
                            q.close()
                    os.close(control_w)
                    os.close(reports_r)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    status = asyncio.run(
                        _worker(args, i, workers, queue, secret, control_r, reports_w)
                    )
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(status)
            os.close(control_r)
            os.close(reports_w)
            children.append(_Worker(i, pid, control_w, reports_r))
    finally:
        for q in queues:
            q.close()  # the workers hold the queues now (the device lives while they do)
    try:
        return asyncio.run(_supervise(args, children, notes, description, started))
    finally:
        _reap(children)


def _reap(children: list[_Worker]) -> None:
    """Wait for every worker; a worker still running after 10 s is killed (by its PID:
    only processes this command started)."""
    deadline = time.monotonic() + 10.0
    for w in children:
        if w.status is not None:
            continue
        while True:
            pid, status = os.waitpid(w.pid, os.WNOHANG)
            if pid:
                w.status = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(w.pid, signal.SIGKILL)
                os.waitpid(w.pid, 0)
                w.status = -signal.SIGKILL
                break
            time.sleep(0.02)
    for w in children:
        for fd in (w.control, w.reports):
            with contextlib.suppress(OSError):
                os.close(fd)


def _tell(w: _Worker, what: bytes) -> None:
    with contextlib.suppress(OSError):  # the worker may have gone already
        os.write(w.control, what)


async def _supervise(
    args: argparse.Namespace,
    children: list[_Worker],
    notes: list[str],
    description: str,
    started: float,
) -> int:
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def on_report(w: _Worker) -> None:
        try:
            data = os.read(w.reports, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            w.eof = True
            loop.remove_reader(w.reports)
        w.buffer += data
        while b"\n" in w.buffer:
            line, _, rest = bytes(w.buffer).partition(b"\n")
            w.buffer[:] = rest
            msg = json.loads(line)
            if "ready" in msg:
                w.ready = msg
            elif "counts" in msg:
                w.counts = msg["counts"]
            elif "error" in msg:
                w.error = msg["error"]
        changed.set()

    for w in children:
        os.set_blocking(w.reports, False)
        loop.add_reader(w.reports, on_report, w)

    async def until(cond: Callable[[], bool]) -> None:
        while not cond():
            changed.clear()
            await changed.wait()

    signals = _Signals(loop)
    try:
        # Every worker listening, or one failing.
        waiting = asyncio.ensure_future(
            until(lambda: all(w.ready or w.eof or w.error for w in children))
        )
        first = asyncio.ensure_future(signals.first.wait())
        await asyncio.wait({waiting, first}, return_when=asyncio.FIRST_COMPLETED)
        failed = [w for w in children if w.error or (w.eof and not w.ready)]
        if failed or not waiting.done():
            waiting.cancel()
            first.cancel()
            for w in children:
                _tell(w, b"II")
            await until(lambda: all(w.eof for w in children))
            for w in failed[:1]:
                print(
                    f"synack serve: {w.error or f'worker {w.index + 1} failed'}",
                    file=sys.stderr,
                    flush=True,
                )
            return 2 if any((w.error or "").startswith("port ") for w in failed) else 1
        first.cancel()
        ready = children[0].ready or {}
        print(
            f"listening on {ready.get('where')} ({_what(args)}) {description}",
            file=sys.stdout,
            flush=True,
        )
        for note in (*notes, *ready.get("notes", [])):
            print(note, file=sys.stderr, flush=True)
        # Until a signal, or a worker ending on its own (its link failed, say).
        gone = asyncio.ensure_future(until(lambda: any(w.eof for w in children)))
        first = asyncio.ensure_future(signals.first.wait())
        await asyncio.wait({gone, first}, return_when=asyncio.FIRST_COMPLETED)
        reason = signals.name if signals.first.is_set() else "a worker stopped"
        gone.cancel()
        first.cancel()
        print(f"stopping ({reason}): closing connections gracefully", file=sys.stderr, flush=True)
        for w in children:
            _tell(w, b"T" if reason == "SIGTERM" else b"I")

        async def abrupt() -> None:
            await signals.second.wait()
            for w in children:
                _tell(w, b"I")

        second = asyncio.ensure_future(abrupt())
        try:
            await until(lambda: all(w.eof for w in children))
        finally:
            second.cancel()
        parts = [w.counts or {} for w in children]
        ready = children[0].ready or {}
        print_serve_summary(
            args,
            merge_counts(parts),
            str(ready.get("where")),
            description,
            time.monotonic() - started,
            [],
            per_worker=parts,
        )
        missing = [w for w in children if w.counts is None]
        for w in missing:
            print(
                f"synack serve: worker {w.index + 1} ended without its summary",
                file=sys.stderr,
                flush=True,
            )
        return 1 if missing else 0
    finally:
        for w in children:
            if not w.eof:
                loop.remove_reader(w.reports)
        signals.close()


async def _worker(
    args: argparse.Namespace,
    index: int,
    workers: int,
    queue: TunLink,
    secret: bytes,
    control: int,
    reports: int,
) -> int:
    """One worker: serve on ``queue`` until the supervisor says stop; report as JSON
    lines (ready, then the summary counts) on ``reports``."""
    out = sys.stdout
    rep = os.fdopen(reports, "w", buffering=1)

    def report(**msg: Any) -> None:
        rep.write(json.dumps(msg) + "\n")
        rep.flush()

    signals = _Signals(asyncio.get_running_loop(), handle_signals=False, say=False)
    signals.watch_pipe(control)
    try:
        setup = open_tun(
            args,
            retry_command(args),
            queue=queue,
            stack_options={
                "isn_secret": secret,
                "ephemeral_ports": ephemeral_ports(index, workers),
            },
        )
    except SetupError as exc:
        report(error=str(exc))
        return exc.status
    host = setup.host
    setup.watch_checksums("serve", sys.stderr, args.corrupt)

    def log(record: ConnectionRecord) -> None:
        if not args.quiet:
            print(record.describe(), file=out, flush=True)

    try:
        try:
            server, runner, port_ = await start_service(
                host, args, on_close=log, ids=itertools.count(index + 1, workers)
            )
        except SetupError as exc:
            report(error=str(exc))
            return exc.status
        report(ready=True, where=_where(host, port_), notes=setup.notes if index == 0 else [])
        await signals.wait_first(host)
        left = await _stop(args, host, server, runner, signals)
        counts = summary_counts(setup, runner, left)
        await setup.close(settle_timeout=0.0)
        counts = summary_counts(setup, runner, left)
        report(counts=counts)
    finally:
        await setup.close(settle_timeout=0.0)
        signals.close()
        rep.close()
    return 0
