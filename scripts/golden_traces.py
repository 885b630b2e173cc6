"""Hash the traces and captures of every lab and a set of demo runs (fixed seeds).

Used to check that a hot-path optimisation changes nothing observable: run it
before and after and compare.  ``python scripts/golden_traces.py > before.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

from synack.commands.demo import register, run_demo
from synack.scenarios.labs import LABS


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def labs() -> list[str]:
    out = []
    for name, lab in LABS.items():
        if not lab.available:
            continue
        for ipv6 in (False, True):
            run = lab.run(ipv6=ipv6)
            trace = "".join(
                json.dumps(r, sort_keys=True, default=repr) + "\n" for r in run.trace
            ).encode()
            with tempfile.TemporaryDirectory() as d:
                run.packets.save(Path(d) / "c.pcapng")
                run.packets.save(Path(d) / "c.pcap")
                pcapng = (Path(d) / "c.pcapng").read_bytes()
                pcap = (Path(d) / "c.pcap").read_bytes()
            facts = json.dumps(run.facts, sort_keys=True, default=repr).encode()
            out.append(
                f"lab {name} ipv6={ipv6}: trace {_h(trace)} pcap {_h(pcap)} "
                f"pcapng {_h(pcapng)} facts {_h(facts)} records {len(run.trace)}"
            )
    return out


DEMOS = [
    [],
    ["--ipv6"],
    ["--loss", "0.05", "--seed", "3"],
    ["--loss", "0.1", "--seed", "7", "--bytes", "60000"],
    ["--reorder", "0.1", "--duplicate", "0.05", "--jitter", "5", "--seed", "2", "--bytes", "40000"],
    ["--corrupt", "0.05", "--seed", "4", "--bytes", "30000"],
    ["--rate", "10", "--bytes", "300000", "--delay", "10"],
    ["--rate", "100", "--bytes", "2000000", "--delay", "25", "--loss", "0.01", "--seed", "5"],
    ["--ipv6", "--loss", "0.02", "--bytes", "200000", "--seed", "9"],
]


def demos() -> list[str]:
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    out = []
    for extra in DEMOS:
        with tempfile.TemporaryDirectory() as d:
            args = ap.parse_args(
                [
                    "demo",
                    "--no-progress",
                    "--verbose",
                    "--trace",
                    f"{d}/t.jsonl",
                    "--pcap",
                    f"{d}/c.pcapng",
                    *extra,
                ]
            )
            text = io.StringIO()
            rc = run_demo(args, text)
            trace = Path(f"{d}/t.jsonl").read_bytes()
            pcap = Path(f"{d}/c.pcapng").read_bytes()
            # the summary names the temporary directory: drop it before hashing
            printed = text.getvalue().replace(d, "DIR").encode()
        out.append(
            f"demo {' '.join(extra) or '(default)'}: rc {rc} trace {_h(trace)} "
            f"pcapng {_h(pcap)} text {_h(printed)}"
        )
    return out


def bench_sim() -> list[str]:
    """The simulator benchmark's run (bench_core), 3 MB, traced and untraced, both
    network modes: the trace (when on), the packet counts and the final clock."""
    import random

    from synack.scenarios.scenario import Scenario
    from synack.sim import PathConfig

    out = []
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
            trace = "".join(
                json.dumps(r, sort_keys=True, default=repr) + "\n" for r in (sc.trace or [])
            ).encode()
            stats = json.dumps(
                [
                    sc.now,
                    dict(sc.net.stats),
                    sc.server_endpoint.received_count,
                    sc.server_endpoint.sha256,
                ],
                sort_keys=True,
            ).encode()
            out.append(
                f"sim segments={segments} traced={traced}: trace {_h(trace)} "
                f"stats {_h(stats)} delivered {sc.net.stats['delivered']}"
            )
    return out


def main() -> int:
    for line in labs() + demos() + bench_sim():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
