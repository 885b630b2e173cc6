"""Digest everything a user sees from the simulated runs: lab output, traces, pcaps,
reports, the demo's timeline and the packetdrill results.

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

RUNS: list[tuple[str, list[str]]] = [
    ("demo", ["demo", "--no-progress"]),
    ("demo-explain", ["demo", "--no-progress", "--explain", "--loss", "0.1", "--seed", "3"]),
    ("demo-verbose-v6", ["demo", "--no-progress", "-v", "--ipv6", "--loss", "0.05"]),
    ("labs", ["lab", "--all"]),
    ("packetdrill-rfc", ["packetdrill", str(ROOT / "tests" / "packetdrill")]),
]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


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
            extra = ["--trace", "run.jsonl", "--pcap", "run.pcap"] if args[0] == "demo" else []
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
