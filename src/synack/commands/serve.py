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
import os
import sys
from pathlib import Path
from typing import Any

from . import check_outputs, hostport, in_range, non_negative, port
from .net_options import DEFAULT_IP, add_link_options
from .realnet import SetupError
from .serve_runtime import (
    SERVICES,
    retry_command,
    serve,
)
from .serve_workers import run_workers

NAME = "serve"

#: Service name -> well-known port.
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


def check_args(args: argparse.Namespace) -> None:
    """Option combinations that make no sense (SetupError, status 2)."""
    if args.nbytes is not None and args.service != "chargen":
        raise SetupError("--bytes applies to chargen only", 2)
    if args.root is not None:
        if args.service != "http":
            raise SetupError("--root applies to http only", 2)
        if not Path(args.root).is_dir():
            raise SetupError(f"--root {args.root}: not a directory", 2)


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
        return run_workers(args, workers, asked)
    return asyncio.run(serve(args))
