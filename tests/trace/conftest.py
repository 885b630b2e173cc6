"""Fixtures of the trace tests."""

from __future__ import annotations

import pytest

from synack.scenarios.lab import LabRun
from synack.scenarios.labs import LABS


@pytest.fixture(scope="session")
def lab_runs() -> dict[str, LabRun]:
    """Every available lab, run once for the session (labs are deterministic, and the
    tests only read their traces)."""
    return {name: lab.run() for name, lab in LABS.items() if lab.available}
