"""``synack report TRACE -o report.html``: one self-contained page for a run.

The page holds the sequence diagram, the plots, the explained timeline and a
step-through control (:mod:`synack.trace.report`); it needs no network to view.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .explain import add_output_options, check_render_outputs, read_trace, write_copies

NAME = "report"


def register(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a trace",
        description="Write one HTML file (no network access needed) with the sequence "
        "diagram, plots, explained timeline and a segment-by-segment stepper.",
    )
    p.add_argument("trace", metavar="TRACE", help="JSON-lines trace file ('-' for stdin)")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="report.html",
        help="where to write the page (default report.html)",
    )
    p.add_argument(
        "--title", default="", metavar="TEXT", help="page title (default: the trace's name)"
    )
    add_output_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..trace.model import analyze
    from ..trace.report import write_report
    from .progress import print_summary

    bad = check_render_outputs(args, "report", {"-o": args.output})
    if bad is not None:
        return bad
    records = read_trace(args.trace, "report")
    if records is None:
        return 2
    roles = dict(args.role) or None
    title = args.title or f"synack report: {Path(args.trace).name}"
    rows: list[tuple[str, str, str]] = []
    try:
        write_report(records, args.output, roles=roles, title=title, absolute=args.absolute)
        run_ = analyze(records, roles)
        rows.append(("report", args.output, f"{len(run_.segments)} segments to step through"))
        write_copies(records, args, rows)
    except OSError as exc:
        print(f"synack report: cannot write: {exc}", file=sys.stderr)
        return 2
    rows.append(("concepts", " ".join(run_.concepts), ""))
    print_summary(rows, sys.stdout)
    return 0
