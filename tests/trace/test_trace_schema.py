"""The typed trace schema (synack.trace.schema) against what the writers emit and
against docs/trace.md."""

from __future__ import annotations

import re
from typing import Any

import pytest

from helpers import ROOT
from synack.scenarios.labs import LABS
from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.trace import schema
from synack.trace.load import REQUIRED

DOC = ROOT / "docs" / "trace.md"


def _check(records: list[dict[str, Any]]) -> set[str]:
    bad = [f"{r}: {p}" for r in records for p in schema.problems(r)]
    assert not bad, "\n".join(bad[:10])
    return {str(r["ev"]) for r in records}


def test_every_record_of_every_lab_matches_its_type() -> None:
    seen: set[str] = set()
    for lab in LABS.values():
        if lab.available:
            seen |= _check(lab.run().trace)
    # the labs write most kinds; the rest are checked below or by the command tests
    assert seen >= {"open", "seg", "state", "timer", "timer_set", "timer_cancel", "cwnd",
                    "ca_state", "rtt", "cc", "drop", "note", "net_drop", "net_inject", "lab"}


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
    rec: dict[str, Any] = {"t": 0.0, "ev": "state", "conn": "a", "old": "LISTEN",
                           "new": "SYN-RECEIVED", "concept": "C7", "why": ""}
    assert schema.problems(rec) == []
    assert schema.problems({**rec, "old": 3}) == ["state: old=3 is not <class 'str'>"]
    assert schema.problems({k: v for k, v in rec.items() if k != "new"}) == \
        ["state: no 'new'"]
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
    assert documented == set(schema.KINDS), (documented ^ set(schema.KINDS))
    missing = [f"{kind}.{name}" for kind in schema.KINDS
               for name in schema.fields(kind) - fields_of_every_record
               if f"`{name}`" not in rows[kind]]
    assert not missing, f"fields in the schema but not in docs/trace.md: {missing}"
