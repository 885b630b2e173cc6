"""Every concept of shared/concepts.md is shown by at least one test that names it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import TESTS

CONCEPT = re.compile(r"\bC([1-9]|1\d|2[0-7])\b", re.IGNORECASE)
NAME = re.compile(r"(?:^|_)c(\d{1,2})(?=_|$)")


def concepts_named_by_tests() -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for path in TESTS.rglob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids = {int(m) for m in NAME.findall(node.name)}
                ids |= {int(m) for m in CONCEPT.findall(ast.get_docstring(node) or "")}
                for cid in ids:
                    if 1 <= cid <= 27:
                        found.setdefault(cid, set()).add(f"{path.name}::{node.name}")
    return found


def test_every_concept_c1_to_c27_has_a_test() -> None:
    found = concepts_named_by_tests()
    missing = sorted(set(range(1, 28)) - set(found))
    assert not missing, f"concepts without a test naming them: {[f'C{c}' for c in missing]}"


def test_every_concept_has_a_test_whose_name_carries_its_id() -> None:
    """Names, not only docstrings, so `pytest -k c15` finds a concept's tests."""
    by_name: set[int] = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                by_name |= {int(m) for m in NAME.findall(node.name)}
    missing = sorted(set(range(1, 28)) - by_name)
    assert not missing, f"no test name carries: {[f'C{c}' for c in missing]}"
