"""``synack serve --workers N``: the multi-queue device, one worker process per queue, and
the supervisor that starts them, adds up their summaries and stops them (docs/design.md,
"Both cores")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..links.steering import attach_steering, ephemeral_ports, load_steering_program
from ..links.tun import TunLink
from ..services.runner import ConnectionRecord
from .realnet import (
    SetupError,
    offload_choice,
    open_tun,
    resolve_ip,
    tun_error,
)
from .serve_runtime import (
    Signals,
    retry_command,
    serve,
    start_service,
    stop,
    what,
    where_text,
)
from .serve_summary import merge_counts, print_serve_summary, summary_counts


# ------------------------------------------------------------------ --workers N
@dataclass
class Worker:
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


def run_workers(args: argparse.Namespace, workers: int, asked: bool) -> int:
    """``serve --workers N``: open the queues, fork a worker per queue, supervise."""
    try:
        queues, notes = open_queues(args, workers)
    except SetupError as exc:
        if not asked and "single-queue" in str(exc):
            # An existing single-queue device (ip tuntap add without multi_queue).
            return asyncio.run(
                serve(
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
    children: list[Worker] = []
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
                        worker(args, i, workers, queue, secret, control_r, reports_w)
                    )
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(status)
            os.close(control_r)
            os.close(reports_w)
            children.append(Worker(i, pid, control_w, reports_r))
    finally:
        for q in queues:
            q.close()  # the workers hold the queues now (the device lives while they do)
    try:
        return asyncio.run(supervise(args, children, notes, description, started))
    finally:
        reap(children)


def reap(children: list[Worker]) -> None:
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


def tell(w: Worker, what: bytes) -> None:
    with contextlib.suppress(OSError):  # the worker may have gone already
        os.write(w.control, what)


async def supervise(
    args: argparse.Namespace,
    children: list[Worker],
    notes: list[str],
    description: str,
    started: float,
) -> int:
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def on_report(w: Worker) -> None:
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

    signals = Signals(loop)
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
                tell(w, b"II")
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
            f"listening on {ready.get('where')} ({what(args)}) {description}",
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
            tell(w, b"T" if reason == "SIGTERM" else b"I")

        async def abrupt() -> None:
            await signals.second.wait()
            for w in children:
                tell(w, b"I")

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


async def worker(
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

    signals = Signals(asyncio.get_running_loop(), handle_signals=False, say=False)
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
        report(ready=True, where=where_text(host, port_), notes=setup.notes if index == 0 else [])
        await signals.wait_first(host)
        left = await stop(args, host, server, runner, signals)
        counts = summary_counts(setup, runner, left)
        await setup.close(settle_timeout=0.0)
        counts = summary_counts(setup, runner, left)
        report(counts=counts)
    finally:
        await setup.close(settle_timeout=0.0)
        signals.close()
        rep.close()
    return 0
