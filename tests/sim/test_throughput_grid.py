"""A throughput grid snapshot (the smoltcp netsim model): any behaviour change shows
up as a diff.

Rows: random loss 0 / 0.1 % / 1 % / 5 % (each direction); columns: RTT 10 / 50 /
200 ms; one cell per congestion control (NewReno, CUBIC, BBR).  Each cell is one 10 MB
transfer through a 20 Mbit/s bottleneck whose drop-tail queue holds one
bandwidth-delay product, seed 1, every TcpConfig knob explicit.  The simulator is
deterministic, so the committed numbers (tests/data/throughput_grid.json) must be
reproduced exactly.

After an intended change, regenerate the snapshot and its Markdown rendering
(docs/throughput-grid.md) and commit both with the change::

    UPDATE_GRID=1 .venv/bin/python -m pytest tests/sim/test_throughput_grid.py
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from typing import Any

import pytest

from helpers import ROOT, TESTS
from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig

SNAPSHOT = TESTS / "data" / "throughput_grid.json"
MARKDOWN = ROOT / "docs" / "throughput-grid.md"
UPDATE = os.environ.get("UPDATE_GRID") == "1"

LOSSES = (0.0, 0.001, 0.01, 0.05)
RTTS_MS = (10, 50, 200)
CCS = ("newreno", "cubic", "bbr")
RATE = 20_000_000  # bit/s
SIZE = 10_000_000  # bytes per cell
SEED = 1

CELLS = [(cc, loss, rtt) for cc in CCS for loss in LOSSES for rtt in RTTS_MS]

pytestmark = pytest.mark.slow


def grid_config(cc: str) -> TcpConfig:
    """Every knob that shapes a bulk transfer, explicit (the defaults may change)."""
    return TcpConfig(
        mss=1460,
        max_segment_payload=None,
        rcv_buf=4 << 20,
        snd_buf=4 << 20,
        rto_initial=1.0,
        rto_min=1.0,
        rto_max=60.0,
        syn_retries=6,
        synack_retries=5,
        max_retransmits=15,
        delayed_ack=0.2,
        nodelay=False,
        initial_window=10,
        congestion_control=cc,
        window_scaling=True,
        timestamps=True,
        sack=True,
        rack=True,
        tlp=True,
        ecn="off",
        keepalive=False,
        window_in_segments=True,
        max_ooo_blocks=64,
        tlp_min=0.01,
        abc_limit=2,
        tlp_wc_delack=0.2,
        quickack=0,
        psh_every_burst=False,
        user_timeout=None,
    )


def setup() -> dict[str, Any]:
    return {
        "rate_bps": RATE,
        "size_bytes": SIZE,
        "seed": SEED,
        "queue": "1 BDP drop-tail",
        "loss": "each direction",
        "losses": list(LOSSES),
        "rtts_ms": list(RTTS_MS),
        "mss": 1460,
        "buffers": 4 << 20,
        "options": "wscale, timestamps, SACK, RACK-TLP",
    }


def key(cc: str, loss: float, rtt_ms: int) -> str:
    return f"{cc} loss={loss:g} rtt={rtt_ms}ms"


@functools.cache
def run_cell(cc: str, loss: float, rtt_ms: int) -> dict[str, Any]:
    """One transfer; the figures recorded for its cell."""
    rtt = rtt_ms / 1000
    path = PathConfig(delay=rtt / 2, rate_bps=RATE, queue_bytes=int(RATE * rtt / 8), loss=loss)
    s = Scenario(SEED, path=path, config=grid_config(cc), record_wire=False)
    s.client.tracer = s.server.tracer = None
    data = random.Random(SEED).randbytes(SIZE)
    s.listen(80, keep_data=False)
    ep = s.connect(80, data, keep_data=False)

    def done() -> bool:
        eps = s.server_endpoints
        return bool(eps) and eps[0].received_count >= SIZE

    s.run(until=20_000.0, stop=done)
    assert done(), f"{key(cc, loss, rtt_ms)}: incomplete at {s.now} s"
    srv = s.server_endpoint
    assert srv.sha256 == hashlib.sha256(data).hexdigest(), "data corrupted"
    info = ep.conn.info()
    net = s.net.stats
    return {
        "seconds": round(s.now, 6),
        "goodput_mbps": round(SIZE * 8 / s.now / 1e6, 3),
        "retransmits": info["retransmits"],
        "rto_fired": info["rto_fired"],
        "recoveries": info["recoveries"],
        "tlp_probes": info["tlp_probes"],
        "net_dropped": net["dropped_loss"] + net["dropped_queue"],
        "ooo_discarded": srv.conn.info()["ooo_block_limit_drops"],
    }


def load() -> dict[str, Any]:
    if not SNAPSHOT.exists():
        pytest.fail(f"no snapshot at {SNAPSHOT}: run UPDATE_GRID=1 pytest {__file__}")
    data: dict[str, Any] = json.loads(SNAPSHOT.read_text())
    return data


@pytest.mark.parametrize(
    ("cc", "loss", "rtt_ms"), CELLS, ids=[key(*c).replace(" ", "-") for c in CELLS]
)
def test_grid_cell_matches_snapshot(cc: str, loss: float, rtt_ms: int) -> None:
    """Each cell reproduces its committed figures exactly (deterministic simulator)."""
    got = run_cell(cc, loss, rtt_ms)
    if UPDATE:
        return  # the snapshot is rewritten by test_grid_snapshot_is_complete
    want = load()["cells"].get(key(cc, loss, rtt_ms))
    assert got == want, (
        f"{key(cc, loss, rtt_ms)} changed: got {got}, snapshot {want}.  If intended, "
        "regenerate with UPDATE_GRID=1 and commit tests/data and docs/throughput-grid.md"
    )


def test_grid_snapshot_is_complete() -> None:
    """The snapshot has exactly these cells and this setup; with UPDATE_GRID=1 it (and
    the Markdown table in docs/) is rewritten from a fresh run."""
    if UPDATE:
        snap = {"setup": setup(), "cells": {key(*c): run_cell(*c) for c in CELLS}}
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
        MARKDOWN.write_text(render(snap))
    snap = load()
    assert snap["setup"] == setup()
    assert sorted(snap["cells"]) == sorted(key(*c) for c in CELLS)
    if UPDATE:
        assert MARKDOWN.read_text() == render(snap)


def render(snap: dict[str, Any]) -> str:
    """The grid as Markdown: goodput per cell, then loss-recovery counters."""
    cells = snap["cells"]
    lines = [
        "# Throughput grid",
        "",
        "Goodput of one 10 MB transfer over the simulated network, per congestion",
        f"control: {RATE // 1_000_000} Mbit/s bottleneck, drop-tail queue of one",
        "bandwidth-delay product, random loss in each direction, seed 1; window",
        "scaling, timestamps, SACK and RACK-TLP on, 4 MiB buffers, MSS 1460.",
        "",
        "Generated by `tests/sim/test_throughput_grid.py`, which checks the committed",
        "snapshot (`tests/data/throughput_grid.json`) for exact equality: the simulator is",
        "deterministic, so any behaviour change shows up as a diff.  Regenerate with",
        "`UPDATE_GRID=1 .venv/bin/python -m pytest tests/sim/test_throughput_grid.py`.",
        "",
        "## Goodput (Mbit/s), NewReno / CUBIC / BBR",
        "",
        "| loss \\ RTT | " + " | ".join(f"{r} ms" for r in RTTS_MS) + " |",
        "|---|" + "---:|" * len(RTTS_MS),
    ]
    for loss in LOSSES:
        row = [f"{loss * 100:g} %"]
        for rtt in RTTS_MS:
            row.append(" / ".join(f"{cells[key(cc, loss, rtt)]['goodput_mbps']:.2f}" for cc in CCS))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Retransmissions, timeouts (RTO) and receiver discards, NewReno / CUBIC / BBR",
        "",
        "`ooo` counts in-window segments the receiver discarded because they would",
        "have opened more than `max_ooo_blocks` holes.",
        "",
        "| loss \\ RTT | " + " | ".join(f"{r} ms" for r in RTTS_MS) + " |",
        "|---|" + "---|" * len(RTTS_MS),
    ]
    for loss in LOSSES:
        row = [f"{loss * 100:g} %"]
        for rtt in RTTS_MS:
            parts = []
            for cc in CCS:
                c = cells[key(cc, loss, rtt)]
                parts.append(
                    f"{c['retransmits']} rtx, {c['rto_fired']} RTO, {c['ooo_discarded']} ooo"
                )
            row.append(" / ".join(parts))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
