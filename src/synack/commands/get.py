"""``synack get URL``: an HTTP GET through synack.

The body goes to standard output, or to a file with ``-o``; a progress bar
(on stderr, when it is a terminal, or with ``--progress``) follows large
bodies, and a summary (status, bytes, time, rate, retransmissions; with
``--verify`` also the body's SHA-256, as ``sha256sum`` prints it) ends on
stderr.  If synack closed the connection first, it lingers in TIME-WAIT
(``--linger``, as ``connect``) before exiting.  URLs are ``http://ADDRESS[:PORT]/PATH`` with an
IPv4 address or a bracketed IPv6 one: synack resolves no names and has no TLS.

Exit status: 0 for a 2xx/3xx answer with its whole body; 1 when the
connection fails (refused, timed out, reset, ICMP error) or the response is
broken (a body cut short); 2 for bad arguments or setup errors; 22 (as
``curl --fail``) for an HTTP error status (4xx/5xx), whose body is then not
written to the output.

With ``--tun`` the request goes through a TUN device to the kernel (root);
without it, to synack's built-in HTTP server in-process (``/``,
``/bytes/N``) at the URL's address.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from types import TracebackType
from typing import IO, Any, TextIO

from ..services.http import ProtocolError, Response, Url, fetch, parse_url
from . import non_negative, own_command, unwritable
from .connect import describe_failure
from .net_options import add_linger_option, add_link_options
from .progress import print_summary, rich_available
from .realnet import NetSetup, open_network

NAME = "get"
HTTP_ERROR_STATUS = 22
BAR_THRESHOLD = 1 << 20  # bodies at least this big (or of unknown size) get a bar


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``get`` subcommand to ``sub`` (an argparse subparsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "get",
        help="HTTP GET through synack (body to stdout or a file)",
        description="Fetch an http:// URL through synack.  Without --tun the server is "
        "synack's built-in one in-process (try http://10.0.0.2/bytes/1000000).",
        epilog="exit status: 0 ok, 1 connection or protocol error, 2 usage, 22 HTTP error "
        "status.  example (as root): synack get http://10.77.0.1:8000/ --tun syn0 "
        "--ip 10.77.0.2 --kernel-ip 10.77.0.1/24",
    )
    p.add_argument(
        "url",
        help="http://ADDRESS[:PORT]/PATH (an IPv4 address or a bracketed "
        "IPv6 one, http://[2001:db8::1]:8000/; no names)",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the body to FILE (default: standard output)"
    )
    p.add_argument(
        "-I",
        "--head",
        action="store_true",
        help="send HEAD instead of GET and print the response header",
    )
    p.add_argument(
        "--timeout",
        type=non_negative(float),
        default=30.0,
        metavar="S",
        help="give up connecting, or waiting for data, after S seconds (default 30)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="print the SHA-256 of the body after the summary (hashing every byte costs CPU time)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no summary or notes")
    add_linger_option(p)
    add_link_options(p, client=True)
    return p


def retry_command(args: argparse.Namespace) -> str:
    """What to suggest (after ``sudo``) when the device needs privileges: the user's
    own command."""
    return own_command(args)


def run(args: argparse.Namespace) -> int:
    try:
        url = parse_url(args.url)
    except ValueError as exc:
        print(f"synack get: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(get_main(args, url, sys.stdout.buffer, sys.stderr))


class WallProgress:
    """A progress bar in wall-clock time (rich; nothing without it or when disabled)."""

    def __init__(self, stream: IO[str], enabled: bool, description: str) -> None:
        self.stream = stream
        self.enabled = enabled and rich_available()
        self.description = description
        self._progress: Any = None
        self._task: Any = None
        self._next = 0.0
        self.total: int | None = None
        self.updates = 0

    def __enter__(self) -> WallProgress:
        return self

    def update(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._progress is None:
            if total is not None and total < BAR_THRESHOLD:
                self.enabled = False
                return
            self._start(total)
        finished = total is not None and done >= total
        if now < self._next and not finished:
            return
        self._next = now + 0.1
        self._progress.update(self._task, completed=done, total=total)
        self.updates += 1

    def _start(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total)

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class _Output:
    """Where the body goes.  A file is opened (created or truncated) only once the
    status says success, so an HTTP error leaves an existing file alone."""

    def __init__(self, path: str | None, stdout: IO[bytes]) -> None:
        self.path = None if path in (None, "-") else path
        self.stdout = stdout
        self.fh: IO[bytes] | None = None
        self.error_body = bytearray()
        self.failed = False

    def check(self) -> str | None:
        """Why the output file could not be written, or None."""
        return None if self.path is None else unwritable(self.path)

    def open(self) -> None:
        self.fh = open(self.path, "wb") if self.path is not None else self.stdout  # noqa: SIM115

    def write(self, data: bytes) -> None:
        if self.failed:
            if len(self.error_body) < 4096:
                self.error_body += data[: 4096 - len(self.error_body)]
            return
        if self.fh is None:
            self.open()
        assert self.fh is not None
        self.fh.write(data)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.flush()
            if self.fh is not self.stdout:
                self.fh.close()


async def get_main(args: argparse.Namespace, url: Url, stdout: IO[bytes], err: TextIO) -> int:
    """The command's body (tests pass their own streams)."""
    out = _Output(args.output, stdout)
    problem = out.check()
    if problem is not None:
        print(f"synack get: cannot write the output: {problem}", file=err)
        return 2
    try:
        opened = await open_network(
            args,
            "get",
            url.host,
            retry_command(args),
            f"no --tun, so asking synack's built-in HTTP server at {url.host} in-process; "
            "--tun reaches real servers",
            err,
        )
        if isinstance(opened, int):
            return opened
        setup: NetSetup = opened
        setup.linger = args.linger
        show = args.progress if args.progress is not None else err.isatty() and not args.quiet
        try:
            with WallProgress(err, bool(show), url.target[:30]) as bar:
                resp = await fetch(
                    url,
                    open_connection=setup.host.open_connection,
                    sink=out.write,
                    progress=bar.update,
                    method="HEAD" if args.head else "GET",
                    connect_timeout=args.timeout or 1e9,
                    read_timeout=args.timeout or 1e9,
                    on_head=lambda r: _on_head(r, out),
                    verify=args.verify,
                )
        except (OSError, TimeoutError) as exc:
            print(
                f"synack get: {describe_failure(exc, url.host, url.port, args.timeout)}", file=err
            )
            return 1
        except ProtocolError as exc:
            print(f"synack get: {url}: broken response: {exc}", file=err)
            return 1
        finally:
            await setup.close(settle_timeout=3.0)
    finally:
        out.close()
    if args.head:  # as curl -I: the response header on standard output
        lines = [f"{resp.version} {resp.status} {resp.reason}"]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        stdout.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        stdout.flush()
    if not args.quiet:
        _summary(resp, setup, err, out)
    if resp.status >= 400:
        first = bytes(out.error_body).decode("utf-8", "replace").strip().splitlines()
        print(
            f"synack get: {url}: HTTP {resp.status} {resp.reason}"
            + (f": {first[0][:200]}" if first else ""),
            file=err,
        )
        return HTTP_ERROR_STATUS
    return 0


def _on_head(resp: Response, out: _Output) -> None:
    if resp.status >= 400:
        out.failed = True
    elif out.fh is None:
        out.open()  # even for an empty body: the file exists afterwards, as with curl


def _retransmissions(info: dict[str, Any], setup: NetSetup) -> str:
    """Retransmissions by our end and, when the server is synack's built-in one
    in-process, by that end too: both are synack, so both are counted."""
    ours = f"{info.get('retransmits', 0)} by synack"
    if setup.peer is None:
        return ours
    theirs = sum(
        int(r.conn.stats["retransmits"])
        for runner in setup.peer_runners
        for r in runner.records
        if r.conn is not None
    )
    return f"{ours} (client), {theirs} by the built-in server"


def _summary(resp: Response, setup: NetSetup, err: TextIO, out: _Output) -> None:
    rate = resp.body_bytes / resp.elapsed if resp.elapsed > 0 else 0.0
    info = resp.tcp_info or {}
    dest = out.path or "standard output"
    if out.failed:
        dest = "not written (error status)"
    rows = [
        ("URL", str(resp.url), setup.description),
        ("status", f"{resp.status} {resp.reason}", resp.version),
        ("body", f"{resp.body_bytes} bytes", f"{resp.framing}; to {dest}"),
        (
            "time",
            f"{resp.elapsed:.3f} s",
            f"connect {resp.connect_time * 1000:.1f} ms, "
            f"first byte {resp.first_byte_time * 1000:.1f} ms",
        ),
        ("rate", f"{rate * 8 / 1e6:.1f} Mbit/s", f"{rate / 1e6:.2f} MB/s"),
        (
            "retransmissions",
            _retransmissions(info, setup),
            f"srtt {info['srtt'] * 1000:.2f} ms" if info.get("srtt") else "",
        ),
    ]
    rows += setup.recordings()
    print_summary(rows, err, title="synack get")
    if resp.sha256 and not out.failed:  # as sha256sum prints it, to compare at a glance
        print(f"{resp.sha256}  {out.path or '-'}", file=err)
