"""docs/concepts.md is the project's own catalogue of the concept IDs: every ID the
output can show is in it, it is current, and the report links each ID to it."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT
from synack.scenarios.lab import LabRun
from synack.trace.concepts import CONCEPTS
from synack.trace.narrate import render
from synack.trace.report import render_report
from synack.trace.timeline import render as timeline

ROOT = ROOT
ID = re.compile(r"\bC\d{1,3}\b")


def test_the_catalogue_has_c1_to_c27_in_order() -> None:
    assert list(CONCEPTS) == [f"C{n}" for n in range(1, 28)]
    assert all(len(text) > 40 for text in CONCEPTS.values())


def test_docs_concepts_md_is_generated_and_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "concepts_md.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = (ROOT / "docs" / "concepts.md").read_text()
    for cid, idea in CONCEPTS.items():
        assert f"| {cid} | {idea} |" in doc


def test_every_concept_id_the_output_shows_is_in_the_catalogue(
    lab_runs: dict[str, LabRun],
) -> None:
    """The trace records' ``concept`` fields, the labs' lists, the timeline and the
    explanation of every lab: any ID there must be catalogued."""
    shown: set[str] = set()
    for run in lab_runs.values():
        shown |= set(run.lab.concepts)
        for rec in run.trace:
            shown |= set(ID.findall(str(rec.get("concept") or "")))
            shown |= set(rec.get("concepts") or [])
        shown |= set(ID.findall("\n".join(render(run.trace, verbose=True))))
        shown |= set(ID.findall("\n".join(timeline(run.trace, verbose=True))))
    assert shown, "no concept ID at all: the check would be vacuous"
    assert shown <= CONCEPTS.keys(), sorted(shown - CONCEPTS.keys())
    assert len(shown) >= 25


def test_the_report_links_each_id_to_its_catalogue_entry(lab_runs: dict[str, LabRun]) -> None:
    run = lab_runs["handshake"]
    page = render_report(run.trace)
    for cid in ("C6", "C7", "C8", "C9"):
        assert f'<dt id="concept-{cid}">{cid}</dt><dd>{CONCEPTS[cid]}' in page.replace(
            "&#x27;", "'"
        )
        assert f'href="#concept-{cid}"' in page
