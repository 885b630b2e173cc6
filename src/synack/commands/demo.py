"""``synack demo``: a client and a server on the simulated network, explained.

The client sends a request and half-closes, the server answers and closes,
and the whole exchange is printed as a timeline tagged with concept IDs, then
summarised.  The exit status is 0 only if the data arrived intact both ways
and both ends reached CLOSED.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from typing import Any, TextIO

from ..scenarios.scenario import Scenario
from ..sim import PathConfig
from ..tcp.config import TcpConfig
from ..trace.narrate import render as explain_render
from ..trace.timeline import render
from . import check_outputs, non_negative, probability
from .progress import TransferProgress, print_summary

NAME = "demo"
#: The server's port: the demo sends random bytes, so not a well-known service's port
#: (on 80 Wireshark would read them as broken HTTP and warn); IANA leaves 47000 unassigned.
DEMO_PORT = 47000


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to ``sub`` (an argparse subparsers object)."""
    demo: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="client and server on the simulated network, explained",
        description="Transfer data both ways over the simulated network "
        "and print every segment, state change and retransmission.",
    )
    demo.add_argument(
        "--loss",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability each packet is lost, each direction (default 0)",
    )
    demo.add_argument(
        "--delay",
        type=non_negative(float),
        default=50.0,
        metavar="MS",
        help="one-way delay in milliseconds (default 50: RTT 100 ms)",
    )
    demo.add_argument(
        "--jitter",
        type=non_negative(float),
        default=0.0,
        metavar="MS",
        help="delay jitter in milliseconds (default 0)",
    )
    demo.add_argument(
        "--duplicate",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability a packet is duplicated (default 0)",
    )
    demo.add_argument(
        "--reorder",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability a packet is held back and overtaken (default 0)",
    )
    demo.add_argument(
        "--corrupt",
        type=probability,
        default=0.0,
        metavar="P",
        help="probability of bit flips, caught by the checksum (default 0)",
    )
    demo.add_argument(
        "--rate",
        type=non_negative(float),
        default=0.0,
        metavar="MBITS",
        help="bottleneck rate in Mbit/s (default: unlimited)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="N",
        help="random seed: same seed, same run (default 1)",
    )
    demo.add_argument(
        "--bytes",
        type=non_negative(int),
        default=8000,
        dest="nbytes",
        metavar="N",
        help="bytes to send in each direction (default 8000)",
    )
    demo.add_argument(
        "--msl",
        type=non_negative(float),
        default=30.0,
        metavar="S",
        help="maximum segment lifetime in seconds; TIME-WAIT is 2*MSL (default 30)",
    )
    demo.add_argument(
        "--ipv6",
        action="store_true",
        help="run over IPv6 (2001:db8::1 <-> 2001:db8::2) instead of IPv4",
    )
    demo.add_argument(
        "--absolute",
        action="store_true",
        help="show absolute sequence numbers instead of relative ones",
    )
    demo.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also show segments as received and congestion-window changes",
    )
    demo.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    demo.add_argument("--trace", metavar="FILE", help="write the trace as JSON lines")
    demo.add_argument(
        "--pcap",
        metavar="FILE",
        help="write every packet to a capture (.pcapng: with comments; else classic pcap)",
    )
    demo.add_argument(
        "--explain",
        action="store_true",
        help="narrate each event: what it is, why, concept ID and RFC section",
    )
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    return demo


def run(args: argparse.Namespace) -> int:
    return run_demo(args, sys.stdout)


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run the demo exchange; return 0 if the data arrived intact and both ends closed."""
    bad = check_outputs(
        "demo", {"--trace": getattr(args, "trace", None), "--pcap": getattr(args, "pcap", None)}
    )
    if bad is not None:
        return bad
    try:
        path = PathConfig(
            delay=args.delay / 1000,
            jitter=args.jitter / 1000,
            loss=args.loss,
            duplicate=args.duplicate,
            reorder=args.reorder,
            corrupt=args.corrupt,
            rate_bps=args.rate * 1e6 if args.rate else None,
        )
        config = TcpConfig(msl=args.msl)
    except ValueError as exc:
        print(f"synack demo: {exc}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    request = rng.randbytes(args.nbytes)
    response = rng.randbytes(args.nbytes)
    sc = Scenario(args.seed, path=path, config=config, ipv6=getattr(args, "ipv6", False))
    capture = None
    if getattr(args, "pcap", None):
        try:
            capture = sc.capture(args.pcap)
        except OSError as exc:
            print(f"synack demo: cannot write {args.pcap}: {exc.strerror}", file=sys.stderr)
            return 2
    sc.listen(DEMO_PORT, response, send_after_eof=True)
    client = sc.connect(DEMO_PORT, request)
    show = getattr(args, "progress", None)
    if show is None:
        show = sys.stderr.isatty() and not args.quiet
    bar = TransferProgress(
        2 * args.nbytes,
        lambda: client.received_count + sum(e.received_count for e in sc.server_endpoints),
        lambda: (
            client.conn.stats["retransmits"]
            + sum(e.conn.stats["retransmits"] for e in sc.server_endpoints)
        ),
        enabled=bool(show),
        description="demo",
    )
    with bar:
        sc.net.add_process(bar)
        sc.run(
            stop=lambda: (
                client.closed
                and all(e.closed for e in sc.server_endpoints)
                and not sc.client.connections
                and not sc.server.connections
            ),
            until=sc.now + 3600,
        )
        bar.finish(sc.now)
    if capture is not None:
        capture.close()
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as fh:
            for rec in sc.trace:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
    roles = {sc.client_ip: "client", sc.server_ip: "server"}
    if not args.quiet:
        print(
            f"synack demo: client {sc.client_ip} <-> server {sc.server_ip}, one-way delay "
            f"{args.delay:g} ms, loss {args.loss:g}, seed {args.seed}",
            file=out,
        )
        print(
            "Relative sequence numbers (0 = the ISN); [Cn] = concept in docs/concepts.md.\n",
            file=out,
        )
        lines = (explain_render if getattr(args, "explain", False) else render)(
            sc.trace, roles, absolute=args.absolute, verbose=args.verbose
        )
        for text in lines:
            print(text, file=out)
        print(file=out)
    server = sc.server_endpoints[0] if sc.server_endpoints else None
    up_ok = (
        server is not None
        and hashlib.sha256(request).hexdigest() == server.sha256
        and server.received_count == len(request)
    )
    down_ok = hashlib.sha256(
        response
    ).hexdigest() == client.sha256 and client.received_count == len(response)
    closed = (
        client.closed
        and server is not None
        and server.closed
        and client.error is None
        and server.error is None
    )
    extra = []
    if capture is not None:
        extra.append(("capture", str(args.pcap), f"{capture.count} packets"))
    if args.trace:
        extra.append(("trace", str(args.trace), f"{len(sc.trace)} records"))
    _summary(out, sc, client, server, up_ok, down_ok, closed, extra)
    return 0 if up_ok and down_ok and closed else 1


def _summary(
    out: TextIO,
    sc: Scenario,
    client: Any,
    server: Any,
    up_ok: bool,
    down_ok: bool,
    closed: bool,
    extra: list[tuple[str, str, str]] | None = None,
) -> None:
    c_info = client.conn.info()
    s_info = server.conn.info() if server is not None else {}
    rows = [
        (
            "bytes client -> server",
            f"{server.received_count if server else 0} of {len(client._payload)}",
            "intact (sha256)" if up_ok else "NOT INTACT",
        ),
        (
            "bytes server -> client",
            f"{client.received_count} of {len(server._payload) if server else 0}",
            "intact (sha256)" if down_ok else "NOT INTACT",
        ),
        ("segments sent", f"client {c_info['segs_out']}, server {s_info.get('segs_out', 0)}", ""),
        (
            "retransmissions",
            f"client {c_info['retransmits']}, server {s_info.get('retransmits', 0)}",
            f"timeouts {c_info['rto_fired'] + s_info.get('rto_fired', 0)}, fast "
            f"{c_info['fast_retransmits'] + s_info.get('fast_retransmits', 0)}",
        ),
        (
            "lost in the network",
            str(sc.net.stats["dropped_loss"]),
            f"corrupted {sc.net.stats['corrupted']}, duplicated {sc.net.stats['duplicated']}",
        ),
        ("RTT estimate (client)", _ms(c_info["srtt"]), f"RTO {c_info['rto']:.3f}s"),
        (
            "RTT estimate (server)",
            _ms(s_info.get("srtt")),
            f"RTO {s_info['rto']:.3f}s" if s_info else "",
        ),
        ("both ends closed", "yes" if closed else "NO", f"finished at t={sc.now:.3f}s (virtual)"),
    ]
    print_summary(rows + (extra or []), out)


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.1f} ms"
