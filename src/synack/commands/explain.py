"""``synack explain TRACE``: narrate a recorded trace in plain language.

Reads the JSON lines written by ``--trace`` (docs/trace.md) from any run and
prints what each segment is and why each thing happened, citing concept IDs
and RFC sections (:mod:`synack.trace.narrate`).  It can also draw the sequence
diagram, the plots and rebuild a capture from the same trace.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..trace.load import load_trace
from ..trace.narrate import explain
from ..trace.schema import TraceRecord
from . import check_outputs

NAME = "explain"


def roles_arg(text: str) -> tuple[str, str]:
    """argparse type: ``IP=NAME``."""
    ip, sep, name = text.partition("=")
    if not sep or not ip or not name:
        raise argparse.ArgumentTypeError(f"expected IP=NAME, got {text!r}")
    return ip, name


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that render a trace."""
    p.add_argument(
        "--absolute", action="store_true", help="absolute sequence numbers instead of relative ones"
    )
    p.add_argument(
        "--role",
        type=roles_arg,
        action="append",
        default=[],
        metavar="IP=NAME",
        help="name a host (default: the first active opener is the client)",
    )
    p.add_argument(
        "--pcap",
        metavar="FILE",
        help="rebuild a capture from the trace (.pcapng with comments, else pcap; "
        "payload bytes are zeros since traces keep no data)",
    )
    p.add_argument(
        "--trace-out",
        metavar="FILE",
        dest="trace_out",
        help="write the trace back out (normalised JSON lines)",
    )


def write_copies(
    records: list[TraceRecord], args: argparse.Namespace, rows: list[tuple[str, str, str]]
) -> None:
    """The ``--pcap`` and ``--trace-out`` files of a rendering command (OSError on failure);
    a summary row for each is appended to ``rows``."""
    from ..scenarios.labs import json_lines
    from ..trace.capture import write_trace_capture

    if args.pcap:
        n = write_trace_capture(records, args.pcap)
        rows.append(("capture", args.pcap, f"{n} packets rebuilt from the trace"))
    if args.trace_out:
        Path(args.trace_out).write_text(json_lines(records), encoding="utf-8")
        rows.append(("trace", args.trace_out, f"{len(records)} records"))


def register(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="narrate a trace: what each segment is and why",
        description="Explain a trace written by --trace, line by line, with concept IDs "
        "(docs/concepts.md) and RFC sections.",
    )
    p.add_argument("trace", metavar="TRACE", help="JSON-lines trace file ('-' for stdin)")
    add_output_options(p)
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also segments as received, connection opens and every cwnd change",
    )
    p.add_argument("--svg", metavar="FILE", help="write the sequence diagram as SVG")
    p.add_argument("--mermaid", metavar="FILE", help="write the sequence diagram as Mermaid")
    p.add_argument("--plots", metavar="DIR", help="write the plots (PNG with matplotlib, CSV)")
    return p


def read_trace(path: str, command: str = "explain") -> list[TraceRecord] | None:
    """The trace's records, or None after one line on stderr saying why not."""
    try:
        records = load_trace(sys.stdin if path == "-" else path)
    except OSError as exc:
        print(f"synack {command}: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    except ValueError as exc:
        print(f"synack {command}: {path}: {exc}", file=sys.stderr)
        return None
    if not records:
        print(
            f"synack {command}: {path}: no trace records (write one with --trace FILE on "
            "demo, lab, get, connect or serve)",
            file=sys.stderr,
        )
        return None
    return records


def check_render_outputs(
    args: argparse.Namespace,
    command: str,
    files: dict[str, object] | None = None,
    folders: dict[str, object] | None = None,
) -> int | None:
    """check_outputs for the options of :func:`add_output_options` and ``files``."""
    return check_outputs(
        command, {"--pcap": args.pcap, "--trace-out": args.trace_out, **(files or {})}, folders
    )


def run(args: argparse.Namespace) -> int:
    from ..trace.diagram import render_mermaid, render_svg
    from ..trace.plots import write_plots
    from .progress import print_summary

    bad = check_render_outputs(
        args, "explain", {"--svg": args.svg, "--mermaid": args.mermaid}, {"--plots": args.plots}
    )
    if bad is not None:
        return bad
    records = read_trace(args.trace)
    if records is None:
        return 2
    roles = dict(args.role) or None
    run_, steps = explain(records, roles, absolute=args.absolute, verbose=args.verbose)
    out = sys.stdout
    for st in steps:
        print(st.render(), file=out)
    print(file=out)
    rows = [
        ("records", str(len(records)), ""),
        (
            "segments",
            str(len(run_.segments)),
            f"{sum(1 for s in run_.segments if s.retransmit)} retransmitted, "
            f"{sum(1 for s in run_.segments if s.lost)} lost",
        ),
        ("hosts", ", ".join(f"{run_.role(ip)} {ip}" for ip in run_.hosts), ""),
        ("concepts", " ".join(run_.concepts), "see docs/concepts.md"),
    ]
    try:
        if args.svg:
            Path(args.svg).write_text(render_svg(run_, absolute=args.absolute), encoding="utf-8")
            rows.append(("diagram (SVG)", args.svg, ""))
        if args.mermaid:
            Path(args.mermaid).write_text(
                render_mermaid(run_, absolute=args.absolute), encoding="utf-8"
            )
            rows.append(("diagram (Mermaid)", args.mermaid, ""))
        if args.plots:
            files, msg = write_plots(run_, args.plots)
            rows.append(("plots", args.plots, msg or ", ".join(f.name for f in files)))
        write_copies(records, args, rows)
    except OSError as exc:
        print(f"synack explain: cannot write: {exc}", file=sys.stderr)
        return 2
    print_summary(rows, out)
    return 0
