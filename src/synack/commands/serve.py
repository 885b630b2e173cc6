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
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ..aio.streams import Server
from ..host import Host
from ..links.impair import ImpairedLink
from ..progress import print_summary
from ..services.basic import chargen, discard, echo
from ..services.http import HttpService
from ..services.realnet import (
    DEFAULT_IP,
    QUIET_STATES,
    NetSetup,
    SetupError,
    add_link_options,
    drop_words,
    open_tun,
    settle,
)
from ..services.runner import ConnectionRecord, Handler, ServiceRunner
from ..wire.ipv6 import addr_to_str
from . import check_outputs, hostport, non_negative, own_command, port

NAME = "serve"

#: Service name -> well-known port.
SERVICES: dict[str, int] = {"echo": 7, "discard": 9, "chargen": 19, "http": 80}


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``sub`` (an argparse subparsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="serve echo, discard, chargen or HTTP on a TUN device (root)",
        description="Run a synack server that the kernel and its programs reach through a "
        "TUN device: echo (RFC 862), discard (RFC 863), chargen (RFC 864) or HTTP/1.1.  "
        "Runs until SIGINT/SIGTERM, then closes connections gracefully and prints a summary.",
        epilog="example (as root): synack serve echo --tun syn0 --ip 10.77.0.2 "
        "--kernel-ip 10.77.0.1/24   then: socat - TCP:10.77.0.2:7")
    p.add_argument("service", choices=list(SERVICES), help="what to serve")
    p.add_argument("--port", type=port, metavar="N",
                   help="port to listen on (default: the service's "
                   "well-known port: echo 7, discard 9, chargen 19, http 80)")
    p.add_argument("--bytes", type=non_negative(int), dest="nbytes", metavar="N",
                   help="chargen: send N bytes, then close (default: until the peer goes)")
    p.add_argument("--root", metavar="DIR",
                   help="http: serve the files under DIR (besides / and /bytes/N)")
    p.add_argument("--grace", type=non_negative(float), default=5.0, metavar="S",
                   help="seconds connections get to finish when stopping (default 5)")
    p.add_argument("--idle-timeout", type=non_negative(float), default=60.0, metavar="S",
                   help="http: close a persistent connection idle this long (default 60; "
                   "0: never)")
    p.add_argument("--verify", action="store_true",
                   help="echo, discard: keep a SHA-256 of what each connection sent us and "
                   "print it on the connection's line (hashing every byte costs CPU time)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no line per connection, only the summary")
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
        args.service, f"socat - TCP:{hostport(ip, port_)}")
    return (f"synack serve: serving needs a TUN device (--tun NAME) so that the kernel and "
            f"its programs can reach synack, and that needs root (or CAP_NET_ADMIN).\n"
            f"  try:  sudo {retry_command(args)}\n"
            f"  then: {client}\n"
            f"  (no root? `synack connect 10.0.0.2 7` and `synack get http://10.0.0.2/` talk "
            f"to synack's built-in servers in-process)")


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


async def start_service(host: Host, args: argparse.Namespace, *,
                        on_close: Any = None) -> tuple[Server, ServiceRunner, int]:
    """Listen on the service's port on ``host``; SetupError if the port is taken."""
    handler = make_handler(args)
    port_ = args.port or SERVICES[args.service]
    runner = ServiceRunner(args.service, handler, grace=args.grace,
                           hash_input=bool(getattr(args, "verify", False))
                           and args.service in ("echo", "discard"), on_close=on_close)
    try:
        server = await host.start_server(runner, port_)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SetupError(f"port {port_} is already in use on {host.ip}: pick another with "
                             f"--port") from None
        raise SetupError(f"cannot listen on port {port_}: {exc.strerror or exc}") from None
    return server, runner, port_


def run(args: argparse.Namespace) -> int:
    try:
        check_args(args)
    except SetupError as exc:
        print(f"synack serve: {exc}", file=sys.stderr)
        return exc.status
    bad = check_outputs("serve", {"--trace": args.trace, "--pcap": args.pcap})
    if bad is not None:
        return bad
    if not args.tun:
        print(no_tun_message(args), file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
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
        what = args.service
        if args.service == "chargen" and args.nbytes is not None:
            what += f", {args.nbytes} bytes per connection"
        where = ", ".join(hostport(addr_to_str(a), port_) for a in host.stack.addresses)
        print(f"listening on {where} ({what}) {setup.description}", file=out,
              flush=True)
        for note in setup.notes:
            print(note, file=sys.stderr, flush=True)
        reason = await signals.wait_first(host)
        print(f"stopping ({reason}): closing connections gracefully", file=sys.stderr,
              flush=True)
        server.close()
        runner.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.grace
        if not await signals.unless_second(runner.wait_idle(args.grace)):
            runner.abort_all()
            await runner.wait_idle(1.0)
        await signals.unless_second(settle([host], max(0.0, deadline - loop.time())))
        left = sum(1 for c in host.stack.connections if c.state not in QUIET_STATES)
        await setup.close(settle_timeout=0.0)
        _summary(args, setup, runner, port_, time.monotonic() - started, left)
    finally:
        await setup.close(settle_timeout=0.0)
        signals.close()
    return 0


class _Signals:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the second for an abrupt one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        self.name = ""
        self.first = asyncio.Event()
        self.second = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)

    def _on_signal(self, name: str) -> None:
        self.count += 1
        if self.count == 1:
            self.name = name
            self.first.set()
        else:
            if not self.second.is_set():
                print("second signal: resetting what is left", file=sys.stderr, flush=True)
            self.second.set()

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
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.remove_signal_handler(sig)


def _summary(args: argparse.Namespace, setup: NetSetup, runner: ServiceRunner, port_: int,
             elapsed: float, left: int) -> None:
    host = setup.host
    t = runner.totals()
    link = setup.tun.stats if setup.tun is not None else host.link.stats
    rows = [
        ("service", f"{args.service} on "
         + ", ".join(hostport(addr_to_str(a), port_) for a in host.stack.addresses),
         setup.description),
        ("connections", str(t["connections"]),
         f"{t['resets']} reset by the peer, {t['errors']} failed"
         + (f", {left} reset at exit" if left else "")),
        ("bytes in", str(t["bytes_in"]), ""),
        ("bytes out", str(t["bytes_out"]), ""),
        ("retransmissions", str(t["retransmits"]),
         f"timeouts {sum(int(r.conn.stats['rto_fired']) for r in runner.records if r.conn)}"),
    ]
    if args.service == "http":
        rows.append(("requests", str(t["requests"]), ""))
    rows.append(("packets on the link", f"in {link['rx_packets']}, out {link['tx_packets']}",
                 _drops(link)))
    imp = host.link.stats if isinstance(host.link, ImpairedLink) else None
    if imp is not None:
        rows.append(("impairment", f"lost in {imp['in_lost']}, out {imp['out_lost']}",
                     f"reordered {imp['in_reordered'] + imp['out_reordered']}, duplicated "
                     f"{imp['in_duplicated'] + imp['out_duplicated']}, corrupted "
                     f"{imp['in_corrupted'] + imp['out_corrupted']}"))
    st = host.stack.stats
    rows.append(("ping", f"{st['icmp_echo_replies']} echo replies", ""))
    conn_stats = [r.conn.stats for r in runner.records if r.conn is not None]
    sent = sum(int(c["challenge_acks"]) for c in conn_stats)
    held = sum(int(c["challenge_acks_suppressed"]) for c in conn_stats)
    rows.append(("SYN cookies", f"{st['syncookies_sent']} sent",
                 f"{st['syncookies_validated']} validated, {st['syncookies_rejected']} "
                 "rejected (RFC 4987)"))
    rows.append(("challenge ACKs", f"{sent} sent", f"{held} held back by the rate limit "
                 "(RFC 5961)"))
    dropped = {k[5:]: v for k, v in st.items() if k.startswith("drop_") and v}
    rows.append(("dropped by the stack", str(sum(dropped.values())),
                 ", ".join(f"{drop_words(k)} {v}" for k, v in sorted(dropped.items())[:6])))
    rows.append(("resets sent to strangers", str(st["rst_sent"]), "C21, C24"))
    rows.append(("run time", f"{elapsed:.1f} s", ""))
    rows += setup.recordings()
    print_summary(rows, sys.stdout, title=f"synack serve {args.service}")
    sys.stdout.flush()


def _drops(stats: Any) -> str:
    drops = {k: v for k, v in stats.items() if "drop" in k and v}
    return ", ".join(f"{_link_drop_words(k)} {v}" for k, v in sorted(drops.items()))


def _link_drop_words(key: str) -> str:
    """``tx_drop_full`` -> ``dropped going out (full)``."""
    way, _, why = key.partition("_drop_")
    where = {"tx": "dropped going out", "rx": "dropped coming in"}.get(way, key)
    return f"{where} ({why.replace('_', ' ')})" if why else key.replace("_", " ")
