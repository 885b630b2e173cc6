"""``synack packetdrill``: run packetdrill scripts against synack in virtual time.

Each script prints PASS, FAIL (with the failing line, what the script
expected and what synack did) or XFAIL for a runner self-test that failed
exactly where its ``// Failure:`` comment says; the run ends with the plain
line ``N passed, M failed`` and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..packetdrill import expectations
from ..packetdrill.kernel import KERNEL_TOLERANCE_USECS, kernel_problem, run_script_kernel
from ..packetdrill.profiles import PROFILES, config_from_sysctls, get_profile
from ..packetdrill.runner import IP_VERSIONS, RunOptions, RunResult, iter_scripts, run_script
from ..trace.capture import CaptureWriter, PcapngWriter, PcapWriter
from ..trace.schema import TraceRecord
from . import check_outputs, non_negative

NAME = "packetdrill"


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``packetdrill`` subcommand to ``sub`` (an argparse subparsers object)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "packetdrill",
        help="run packetdrill scripts against synack (virtual time, no root)",
        description="Run packetdrill-syntax scripts against a synack stack in virtual time. "
        "Directories are searched for *.pkt files.",
    )
    p.add_argument("paths", nargs="+", metavar="SCRIPT_OR_DIR", help="scripts or directories")
    p.add_argument(
        "--target",
        choices=("synack", "kernel"),
        default="synack",
        help="what runs the scripts: synack in virtual time (the default), or "
        "this machine's Linux kernel in a network namespace of its own with a TUN "
        "device, in real time (root only)",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="rfc",
        help="stack configuration: synack's RFC defaults (rfc, the default) or the "
        "Linux kernel the public corpus was written against (linux)",
    )
    p.add_argument(
        "--ip_version",
        "--ip-version",
        choices=IP_VERSIONS,
        dest="ip_version",
        help="the family scripts run in unless they have an --ip_version line: "
        "ipv4 (the default); ipv4-mapped-ipv6 (AF_INET6 sockets, IPv4 packets); "
        "ipv6 (local fd3d:a0b:17d6::1, remote fd3d:fa7b:d17d::1, MTU 1520 so the "
        "MSS is 1460)",
    )
    p.add_argument(
        "--tolerance_usecs",
        "--tolerance-usecs",
        type=non_negative(int),
        dest="tolerance_usecs",
        metavar="US",
        help="timing tolerance (default 4000; a script's own --tolerance_usecs "
        "line wins; on the kernel target it is at least "
        f"{KERNEL_TOLERANCE_USECS}, or this value if larger)",
    )
    p.add_argument(
        "--tolerance_percent",
        "--tolerance-percent",
        type=non_negative(float),
        dest="tolerance_percent",
        metavar="PCT",
        help="tolerance as a percentage of the gap between events (default 12.5)",
    )
    p.add_argument(
        "--strict_segments",
        "--strict-segments",
        action="store_true",
        dest="strict_segments",
        help="one emitted segment per expected line (no aggregation)",
    )
    p.add_argument(
        "--check-ts-ecr",
        action="store_true",
        help="also compare the TS ecr of outbound packets (upstream does not)",
    )
    p.add_argument(
        "--trace",
        metavar="FILE",
        type=Path,
        help="write the stack's trace as JSON lines (each record names its script)",
    )
    p.add_argument(
        "--pcap",
        metavar="FILE",
        type=Path,
        help="write every packet in and out as pcapng (.pcap: classic pcap); each "
        "script gets its own 1000 s time range and its name in the comments",
    )
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print notes: skipped commands, unmet profile needs",
    )
    p.add_argument(
        "--show-profile",
        action="store_true",
        help="print the profile's configuration and unmet needs, then run",
    )
    p.add_argument(
        "--expectations",
        metavar="FILE",
        type=Path,
        help="compare the results with FILE (see --write-expectations); exit "
        "status 0 only if they match",
    )
    p.add_argument(
        "--write-expectations",
        metavar="FILE",
        type=Path,
        help="record the results in FILE (paths relative to the single directory given)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    return run_packetdrill(args, sys.stdout)


def run_packetdrill(args: argparse.Namespace, out: TextIO) -> int:
    scripts = iter_scripts(args.paths)
    missing = [s for s in scripts if not s.exists()]
    if missing:
        print(f"synack packetdrill: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    if not scripts:
        print("synack packetdrill: no *.pkt scripts found", file=sys.stderr)
        return 2
    bad = check_outputs(
        "packetdrill",
        {
            "--trace": getattr(args, "trace", None),
            "--pcap": getattr(args, "pcap", None),
            "--write-expectations": getattr(args, "write_expectations", None),
        },
    )
    if bad is not None:
        return bad
    exp = getattr(args, "expectations", None)
    if exp is not None and not Path(exp).is_file():
        print(f"synack packetdrill: --expectations {exp}: no such file", file=sys.stderr)
        return 2
    profile = get_profile(args.profile)
    target = getattr(args, "target", "synack")
    if target == "kernel":
        problem = kernel_problem()
        if problem is not None:
            print(f"synack packetdrill: {problem}", file=sys.stderr)
            return 2
        tol = max(args.tolerance_usecs or 0, KERNEL_TOLERANCE_USECS)
        print(
            f"target: the Linux kernel {os.uname().release} (namespace and TUN per script); "
            f"timing tolerance at least {tol} us (--tolerance-usecs)",
            file=out,
        )
    if args.show_profile:
        _show_profile(args.profile, out)
    trace_path = getattr(args, "trace", None)  # optional for programmatic callers
    pcap_path = getattr(args, "pcap", None)
    trace_file = open(trace_path, "w", encoding="utf-8") if trace_path else None  # noqa: SIM115
    writer: CaptureWriter | None = None
    if pcap_path:
        writer = (
            PcapWriter(pcap_path) if Path(pcap_path).suffix == ".pcap" else PcapngWriter(pcap_path)
        )
    results: list[RunResult] = []
    try:
        for index, path in enumerate(scripts):
            name = str(path)
            base = 1000.0 * index  # each script in its own range of capture time

            def trace(rec: TraceRecord, name: str = name) -> None:
                assert trace_file is not None
                trace_file.write(json.dumps({**rec, "script": name}, sort_keys=True) + "\n")

            def capture(
                pkt: bytes, t: float, why: str, name: str = name, base: float = base
            ) -> None:
                assert writer is not None
                writer.record(pkt, base + t, f"{name}: {why}")

            opts = RunOptions(
                tolerance_usecs=args.tolerance_usecs,
                tolerance_percent=args.tolerance_percent,
                strict_segments=args.strict_segments,
                check_ts_ecr=args.check_ts_ecr,
                ip_version=getattr(args, "ip_version", None),
                tracer=trace if trace_file is not None else None,
                capture=capture if writer is not None else None,
            )
            res = (
                run_script_kernel(path, opts)
                if target == "kernel"
                else run_script(path, profile, opts)
            )
            results.append(res)
            print(res.report(verbose=args.verbose), file=out)
    finally:
        if trace_file is not None:
            trace_file.close()
        if writer is not None:
            writer.close()
    passed = sum(1 for r in results if r.ok)
    failed = len(results) - passed
    root = (
        Path(args.paths[0]) if len(args.paths) == 1 and Path(args.paths[0]).is_dir() else Path.cwd()
    )
    status = 0 if failed == 0 else 1
    if args.write_expectations is not None:
        previous = None
        if args.write_expectations.exists():
            previous = expectations.load(args.write_expectations)
        args.write_expectations.write_text(
            expectations.render(results, root, previous), encoding="utf-8"
        )
        print(f"wrote {args.write_expectations}", file=out)
    if args.expectations is not None:
        diffs = expectations.compare(results, root, expectations.load(args.expectations))
        for d in diffs:
            print(f"differs from {args.expectations}: {d}", file=out)
        status = 1 if diffs else 0
    print(f"{passed} passed, {failed} failed", file=out)
    return status


def _show_profile(name: str, out: TextIO) -> None:
    profile = get_profile(name)
    res = config_from_sysctls(profile, profile.sysctls)
    print(f"profile {profile.name}: {profile.description}", file=out)
    for line in res.applied:
        print(f"  applied: {line}", file=out)
    for line in res.ignored:
        print(f"  no effect: {line}", file=out)
    for line in res.unmet:
        print(f"  unmet: {line}", file=out)
