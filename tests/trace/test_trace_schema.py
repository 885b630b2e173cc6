"""The typed trace schema (synack.trace.schema) against what the writers emit and
against docs/trace.md."""

from __future__ import annotations

import io
import json
import re
from typing import Any, Literal, get_args, get_type_hints

import pytest

from helpers import ROOT
from synack.scenarios.lab import LabRun
from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.trace import schema
from synack.trace.capture import packets_from_trace
from synack.trace.load import REQUIRED, load_trace
from synack.trace.narrate import explain
from synack.trace.report import render_report
from synack.trace.timeline import render as timeline_render
from synack.wire.segment import SYN

DOC = ROOT / "docs" / "trace.md"


def _check(records: list[dict[str, Any]]) -> set[str]:
    bad = [f"{r}: {p}" for r in records for p in schema.problems(r)]
    assert not bad, "\n".join(bad[:10])
    return {str(r["ev"]) for r in records}


def test_every_record_of_every_lab_matches_its_type(lab_runs: dict[str, LabRun]) -> None:
    seen: set[str] = set()
    for run in lab_runs.values():
        seen |= _check(run.trace)
    # the labs write most kinds; the rest are checked below or by the command tests
    assert seen >= {
        "open",
        "seg",
        "state",
        "timer",
        "timer_set",
        "timer_cancel",
        "cwnd",
        "ca_state",
        "rtt",
        "cc",
        "drop",
        "note",
        "net_drop",
        "net_inject",
        "lab",
    }


@pytest.mark.parametrize("cc", ["cubic", "bbr"])
def test_a_lossy_transfer_writes_only_typed_records(cc: str) -> None:
    cfg = TcpConfig(congestion_control=cc)
    sc = Scenario(4, path=PathConfig(delay=0.02, loss=0.05, rate_bps=20e6), config=cfg)
    sc.listen(80, b"s" * 200_000)
    sc.connect(80, b"c" * 200_000)
    sc.run(until=60)
    kinds = _check(sc.trace)
    assert "seg" in kinds and "cwnd" in kinds
    if cc == "bbr":
        assert "rate" in kinds


def test_problems_names_a_missing_field_an_unknown_one_and_a_wrong_type() -> None:
    rec: dict[str, Any] = {
        "t": 0.0,
        "ev": "state",
        "conn": "a",
        "old": "LISTEN",
        "new": "SYN-RECEIVED",
        "concept": "C7",
        "why": "",
    }
    assert schema.problems(rec) == []
    assert schema.problems({**rec, "old": 3}) == ["state: old=3 is not <class 'str'>"]
    assert schema.problems({k: v for k, v in rec.items() if k != "new"}) == ["state: no 'new'"]
    assert schema.problems({**rec, "colour": "red"}) == ["state: unknown field 'colour'"]
    assert schema.problems({"t": 0.0, "ev": "from_the_future"}) == []  # readers skip it


def test_the_loader_needs_no_field_the_schema_does_not_promise() -> None:
    for kind, needed in REQUIRED.items():
        assert set(needed) <= schema.required(kind), kind


def _doc_rows() -> dict[str, str]:
    """ev -> the text of its rows in docs/trace.md's tables (continuation rows too)."""
    rows: dict[str, str] = {}
    current = None
    for line in DOC.read_text().splitlines():
        m = re.match(r"\| `([a-z_]+)` \|", line)
        if m:
            current = m.group(1)
            rows[current] = rows.get(current, "") + line
        elif line.startswith("| |") and current:
            rows[current] += line
        elif not line.startswith("|"):
            current = None
    return rows


def test_docs_trace_md_describes_every_kind_and_field_of_the_schema() -> None:
    rows = _doc_rows()
    fields_of_every_record = {"t", "ev", "conn"}
    documented = set(rows) - fields_of_every_record
    assert documented == set(schema.KINDS), documented ^ set(schema.KINDS)
    missing = [
        f"{kind}.{name}"
        for kind in schema.KINDS
        for name in schema.fields(kind) - fields_of_every_record
        if f"`{name}`" not in rows[kind]
    ]
    assert not missing, f"fields in the schema but not in docs/trace.md: {missing}"


def test_each_type_names_its_kind_in_ev_so_a_checker_can_narrow_on_it() -> None:
    for kind, cls in schema.KINDS.items():
        assert get_type_hints(cls)["ev"] == Literal[kind], kind
    assert set(schema.KINDS.values()) == set(get_args(schema.TraceRecord))


def test_the_run_record_of_a_real_link_has_no_conn_and_is_typed() -> None:
    run = {"t": 1200.0, "ev": "run", "clock": "wall", "started": 0.0, "command": "get"}
    assert schema.problems(run) == []
    assert schema.problems({**run, "clock": "virtual"}) != []


def test_bbr_model_fields_are_typed_not_just_prefixed() -> None:
    rate = {
        "t": 1.0,
        "ev": "rate",
        "conn": "a:1>b:2",
        "delivery_rate": 1e6,
        "pacing_rate": 1e6,
        "app_limited": False,
        "cwnd": 14480,
        "bbr_state": "Startup",
        "bbr_bw": 1e6,
        "bbr_min_rtt": None,
    }
    assert schema.problems(rate) == []
    assert schema.problems({**rate, "bbr_bw": "fast"}) == [
        "rate: bbr_bw='fast' is not <class 'float'>"
    ]
    assert schema.problems({**rate, "bbr_colour": 1}) == ["rate: unknown field 'bbr_colour'"]


def test_the_loader_leaves_out_unknown_kinds_and_takes_older_records() -> None:
    """A record of a kind this version does not know is skipped; a ``seg`` record with
    only the fields the loader needs (an older trace: no mss, why, state, iss, irs,
    wnd) loads and every reader renders it."""
    lines = [
        {"t": 0.0, "ev": "open", "conn": "10.0.0.1:5000>10.0.0.2:80", "mode": "active", "iss": 100},
        {"t": 0.0, "ev": "from_the_future", "conn": "10.0.0.9:1>10.0.0.8:2", "text": "C9"},
        {
            "t": 0.0,
            "ev": "seg",
            "conn": "10.0.0.1:5000>10.0.0.2:80",
            "dir": "out",
            "flags": SYN,
            "seq": 100,
            "ack": 0,
            "len": 0,
            "win": 65535,
        },
        {
            "t": 0.1,
            "ev": "seg",
            "conn": "10.0.0.2:80>10.0.0.1:5000",
            "dir": "in",
            "flags": SYN,
            "seq": 100,
            "ack": 0,
            "len": 0,
            "win": 65535,
        },
    ]
    records = load_trace(io.StringIO("".join(json.dumps(r) + "\n" for r in lines)))
    assert [r["ev"] for r in records] == ["open", "seg", "seg"]
    run, steps = explain(records)
    assert run.hosts == ["10.0.0.1", "10.0.0.2"]  # none from the unknown record
    assert [s.kind for s in steps] == ["seg"] and steps[0].text.startswith("SYN: ")
    assert "[S]" in "\n".join(timeline_render(records, verbose=True))
    assert "<svg" in render_report(records)
    assert len(list(packets_from_trace(records))) == 1
