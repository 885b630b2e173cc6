"""Bulk rate through ``synack serve http`` and ``synack get``, and ``serve http``'s
connection rate (wrk, ab), over TUN in network namespaces (root).

Rows (each the best and the median of ``--reps`` runs):

* ``serve http``: the kernel's curl fetches ``/bytes/N`` from ``synack serve http``;
* ``get``: ``synack get`` fetches an ``N``-byte file from the kernel's
  ``python3 -m http.server`` (to /dev/null; without and with ``--verify``; a tree
  whose get has no ``--verify`` hashed every body);
* connection rate: bench_net.py's wrk/ab rows against ``serve http --workers 1``
  (requests/s, and the server's CPU time per request, which a busy machine moves
  least: the server's CPU seconds over the requests it answered).

The code measured is whatever ``synack`` the interpreter imports, so
``PYTHONPATH=/other/checkout/src`` measures another tree with the same script.
Prints one JSON line per row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_net import PY, SYNACK_ADDR, Bench, skip_reason  # noqa: E402
from netbench.lab import Lab  # noqa: E402

KERNEL_ADDR = "10.77.0.1"
_MBS = re.compile(r"(\d+(?:\.\d+)?) MB/s")


def serve_http_bulk(b: Bench, n: int) -> float:
    """MB/s of curl (kernel) fetching /bytes/n from ``synack serve http``."""
    srv, port = b.serve("http", None, ["--grace", "1"])
    try:
        res = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                b.ns,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{speed_download}",
                f"http://{SYNACK_ADDR}:{port}/bytes/{n}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        size, speed = res.stdout.split()
        if int(size) != n:
            raise RuntimeError(f"curl got {size} of {n} bytes")
        return float(speed) / 1e6
    finally:
        b.lab.retire(srv)


def get_bulk(b: Bench, path: Path, verify: bool) -> float:
    """MB/s that ``synack get`` reports fetching ``path`` from the kernel's http.server."""
    port = b.port()
    srv = b.lab.start(
        b.ns,
        [PY, "-m", "http.server", str(port), "--directory", str(path.parent)],
        "kernel http.server",
    )
    try:
        argv = [
            "ip",
            "netns",
            "exec",
            b.ns,
            PY,
            "-m",
            "synack",
            "get",
            f"http://{KERNEL_ADDR}:{port}/{path.name}",
            "-o",
            "/dev/null",
            "--no-progress",
            "--linger",
            "0",
            "--tun",
            b.tun(),
            "--ip",
            SYNACK_ADDR,
            "--kernel-ip",
            f"{KERNEL_ADDR}/24",
            *(["--verify"] if verify else []),
        ]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        m = _MBS.search(res.stderr)
        if res.returncode != 0 or m is None:
            raise RuntimeError(f"get said {res.returncode}: {res.stderr[-600:]}")
        return float(m.group(1))
    finally:
        b.lab.retire(srv)


def connection_rate(b: Bench, tool: str) -> dict[str, Any]:
    """bench_net's wrk/ab run against ``serve http --workers 1``, with the server's CPU
    time over the run (its start-up left out) per request answered."""
    srv, port = b.serve("http", None, ["--grace", "1"])
    try:
        cpu0 = srv.cpu_seconds()
        res = b.load(tool, b.ns, SYNACK_ADDR, port)
        cpu1 = srv.cpu_seconds()
        if cpu0 is not None and cpu1 is not None and res.get("rate"):
            res["cpu_us_per_req"] = 1e6 * (cpu1 - cpu0) / (res["rate"] * max(1, round(b.seconds)))
        return res
    finally:
        b.lab.retire(srv)


def get_has_verify() -> bool:
    """Whether this tree's ``get`` takes ``--verify`` (before it, get always hashed)."""
    res = subprocess.run([PY, "-m", "synack", "get", "--help"], capture_output=True, text=True)
    return "--verify" in res.stdout


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "best": round(max(values), 1),
        "median": round(statistics.median(values), 1),
        "runs": [round(v, 1) for v in values],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bytes", type=int, default=500_000_000, help="bytes per bulk transfer")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per wrk/ab run")
    p.add_argument("--http-conns", type=int, default=32)
    p.add_argument("--skip-cps", action="store_true", help="bulk rows only")
    a = p.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"bench_http: skipping: {reason}")
        return 0
    import synack

    print(f"bench_http: synack from {Path(synack.__file__).parent}", file=sys.stderr)
    rows: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp,
        Lab() as lab,
    ):
        body = Path(tmp) / "body.bin"
        with open(body, "wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(a.bytes >> 20):
                fh.write(block)
        b = Bench(lab, a)
        runs: dict[str, list[float]] = {}
        for _ in range(a.reps):
            runs.setdefault("serve_http_bulk_MBps", []).append(serve_http_bulk(b, a.bytes))
            runs.setdefault("get_bulk_MBps", []).append(get_bulk(b, body, False))
            if get_has_verify():
                runs.setdefault("get_bulk_verify_MBps", []).append(get_bulk(b, body, True))
        rows = {k: summary(v) for k, v in runs.items()}
        if not a.skip_cps:
            for tool in ("wrk", "ab"):
                results = [connection_rate(b, tool) for _ in range(a.reps)]
                rows[f"serve_http_{tool}_req_per_s"] = summary(
                    [r.get("rate") or 0.0 for r in results]
                )
                # CPU seconds of the server per request: what a busy machine moves least.
                rows[f"serve_http_{tool}_cpu_us_per_req"] = summary(
                    [r["cpu_us_per_req"] for r in results if r.get("cpu_us_per_req")]
                )
    for key, value in rows.items():
        print(json.dumps({"row": key, **value}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
