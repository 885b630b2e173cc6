"""``synack lab [NAME]``: list the guided scenarios, or run one and explain it.

Each lab reproduces one or more concepts of docs/concepts.md
deterministically (:mod:`synack.scenarios.labs`), prints the explained timeline and
writes the diagram (SVG, Mermaid), the plots, the pcap/pcapng capture, the
trace and a report page into an output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "lab"


def register(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "lab",
        help="list or run the guided scenarios (one per concept)",
        description="Without NAME, list the labs.  With NAME, run it, print the explained "
        "timeline and write diagram, plots, capture and report into the output folder.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="the lab to run")
    p.add_argument("--all", action="store_true", help="run every lab (files in OUTDIR/NAME)")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=None,
        help="output folder (default lab-output/NAME)",
    )
    p.add_argument("--no-files", action="store_true", help="print only, write nothing")
    p.add_argument(
        "--ipv6",
        action="store_true",
        help="run over IPv6 (2001:db8::1 <-> 2001:db8::2) instead of IPv4",
    )
    p.add_argument(
        "--absolute", action="store_true", help="absolute sequence numbers instead of relative ones"
    )
    p.add_argument("--verbose", "-v", action="store_true", help="more detail in the timeline")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    p.add_argument("--pcap", metavar="FILE", help="also write the capture to FILE")
    p.add_argument("--trace", metavar="FILE", help="also write the trace to FILE")
    return p


def run(args: argparse.Namespace) -> int:
    from ..scenarios import labs
    from . import check_outputs
    from .progress import print_summary

    out = sys.stdout
    bad = check_outputs(
        "lab",
        {"--pcap": args.pcap, "--trace": args.trace},
        {"-o": None if args.no_files else args.output},
    )
    if bad is not None:
        return bad
    if args.all:
        base = Path(args.output or "lab-output")
        rows = []
        status = 0
        for lab in labs.LABS.values():
            rc, note = _run_one(lab, base / lab.name, args, quiet=True, summary=False)
            status = max(status, rc)
            rows.append((lab.name, "ok" if rc == 0 else "not run", note))
        print_summary(rows, out, title="labs")
        return status
    if not args.name:
        rows = [
            (
                lab.name,
                " ".join(lab.concepts),
                lab.title + ("" if lab.available else f" (needs {lab.requires})"),
            )
            for lab in labs.LABS.values()
        ]
        print_summary(rows, out, title="synack labs (run one: synack lab NAME)")
        return 0
    try:
        lab = labs.get(args.name)
    except KeyError as exc:
        print(f"synack lab: {exc.args[0]}", file=sys.stderr)
        return 2
    rc, _ = _run_one(
        lab,
        Path(args.output or Path("lab-output") / lab.name),
        args,
        quiet=args.quiet,
        summary=True,
    )
    return rc


def _run_one(
    lab: Any, outdir: Path, args: argparse.Namespace, *, quiet: bool, summary: bool
) -> tuple[int, str]:
    from ..scenarios import labs
    from .progress import print_summary

    out = sys.stdout
    try:
        result = lab.run(ipv6=bool(getattr(args, "ipv6", False)))
    except labs.LabUnavailable as exc:
        print(f"synack lab {lab.name}: not available: {exc}", file=sys.stderr)
        return 1, str(exc)
    if not quiet:
        print(f"lab {lab.name}: {lab.title}  [{' '.join(lab.concepts)}; {lab.rfc}]", file=out)
        print(
            "Relative sequence numbers (0 = the ISN) unless --absolute; [Cn] = concept in "
            "docs/concepts.md.\n",
            file=out,
        )
        for line in labs.explained_lines(result, absolute=args.absolute, verbose=args.verbose):
            print(line, file=out)
        print(file=out)
    rows = [(k.replace("_", " "), str(v), "") for k, v in result.facts.items()]
    note = ""
    try:
        if not args.no_files:
            files, msg = labs.write_outputs(result, outdir, absolute=args.absolute)
            rows.append(("files", str(outdir), ", ".join(f.name for f in files)))
            if msg:
                rows.append(("plots", msg, ""))
            note = str(outdir)
        if args.pcap:
            n = result.packets.save(args.pcap)
            rows.append(("capture", args.pcap, f"{n} packets"))
        if args.trace:
            Path(args.trace).write_text(labs.json_lines(result.trace), encoding="utf-8")
            rows.append(("trace", args.trace, f"{len(result.trace)} records"))
    except OSError as exc:
        print(f"synack lab: cannot write: {exc}", file=sys.stderr)
        return 2, str(exc)
    if summary:
        rows.insert(0, ("concepts", " ".join(lab.concepts), lab.rfc))
        print_summary(rows, out, title=f"lab {lab.name}")
    return 0, note
