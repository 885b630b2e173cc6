"""Digest everything a user sees from the simulated runs: every lab's files over IPv4
and IPv6 (trace, pcap, pcapng, diagrams, plots, report), demo timelines, traces and
captures under loss, reordering, corruption and rate limits, the simulator
benchmark's run (traced and untraced, both network modes) and the packetdrill results.

Used to show that a refactor changes nothing a user can see::

    python scripts/output_digest.py --save before.json     # on the old tree
    python scripts/output_digest.py --compare before.json  # on the new one

Every run is on the simulated network with fixed seeds, so the same code gives
the same bytes; the script lists every file whose digest differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "packetdrill"

#: Demo variants (each with --verbose, a trace and a capture): loss, reordering,
#: duplication, jitter, corruption, a rate limit, IPv6.
DEMOS: list[list[str]] = [
    [],
    ["--ipv6"],
    ["--explain", "--loss", "0.1", "--seed", "3"],
    ["--loss", "0.05", "--seed", "3"],
    ["--loss", "0.1", "--seed", "7", "--bytes", "60000"],
    ["--reorder", "0.1", "--duplicate", "0.05", "--jitter", "5", "--seed", "2", "--bytes", "40000"],
    ["--corrupt", "0.05", "--seed", "4", "--bytes", "30000"],
    ["--rate", "10", "--bytes", "300000", "--delay", "10"],
    ["--rate", "100", "--bytes", "2000000", "--delay", "25", "--loss", "0.01", "--seed", "5"],
    ["--ipv6", "--loss", "0.02", "--bytes", "200000", "--seed", "9"],
]

RUNS: list[tuple[str, list[str]]] = [
    *(
        (f"demo {' '.join(d) or '(default)'}", ["demo", "--no-progress", "--verbose", *d])
        for d in DEMOS
    ),
    ("labs", ["lab", "--all"]),
    ("labs-ipv6", ["lab", "--all", "--ipv6"]),
    ("packetdrill-rfc", ["packetdrill", str(ROOT / "tests" / "packetdrill")]),
]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def bench_sim() -> dict[str, str]:
    """The simulator benchmark's run (bench_core: 3 MB over 100 Mbit/s, 50 ms RTT),
    traced and untraced, in both network modes: its trace, packet counts, final clock."""
    sys.path.insert(0, str(ROOT / "src"))
    import random

    from synack.scenarios.scenario import Scenario
    from synack.sim import PathConfig

    out = {}
    for segments in (False, True):
        for traced in (True, False):
            data = random.Random(1).randbytes(3_000_000)
            sc = Scenario(
                1,
                path=PathConfig(delay=0.025, rate_bps=100e6, queue_bytes=200_000),
                record_wire=False,
                segments=segments,
            )
            if not traced:
                sc.trace = None  # type: ignore[assignment]
                sc.client.tracer = sc.server.tracer = None
            sc.listen(80, send_after_eof=True, keep_data=False)
            sc.connect(80, data)
            sc.run(
                stop=lambda sc=sc: bool(sc.server_endpoints) and sc.server_endpoint.eof, until=600
            )
            end = sc.server_endpoint
            trace = "".join(json.dumps(r, sort_keys=True) + "\n" for r in (sc.trace or []))
            stats = json.dumps([sc.now, dict(sc.net.stats), end.received_count, end.sha256])
            key = f"sim segments={segments} traced={traced}"
            out[f"{key}:trace"] = _digest(trace.encode())
            out[f"{key}:stats"] = _digest(stats.encode())
    return out


def collect() -> dict[str, str]:
    """Run everything in a scratch folder and digest stdout and every file written."""
    out: dict[str, str] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="120", NO_COLOR="1")
    runs = list(RUNS)
    if SHARED.is_dir():
        runs.append(("packetdrill-linux", ["packetdrill", "--profile", "linux", str(SHARED)]))
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in runs:
            work = Path(tmp) / name
            work.mkdir()
            extra = ["--trace", "run.jsonl", "--pcap", "run.pcapng"] if args[0] == "demo" else []
            if args[0] == "lab":
                extra = ["-o", "out"]
            proc = subprocess.run(
                [sys.executable, "-m", "synack", *args, *extra],
                cwd=work,
                env=env,
                capture_output=True,
                check=False,
            )
            stdout = proc.stdout.replace(str(work).encode(), b"WORK")
            out[f"{name}:stdout"] = _digest(stdout.replace(str(ROOT).encode(), b"ROOT"))
            out[f"{name}:rc"] = str(proc.returncode)
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    data = path.read_bytes().replace(str(work).encode(), b"WORK")
                    out[f"{name}:{path.relative_to(work)}"] = _digest(data)
    out.update(bench_sim())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="FILE", help="write the digests to FILE")
    group.add_argument("--compare", metavar="FILE", help="compare with the digests in FILE")
    opts = ap.parse_args()
    now = collect()
    if opts.save:
        Path(opts.save).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{len(now)} digests written to {opts.save}")
        return 0
    before = json.loads(Path(opts.compare).read_text())
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for key in differ:
        print(f"differs: {key}  {before.get(key)} -> {now.get(key)}")
    print(f"{len(now)} outputs, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
