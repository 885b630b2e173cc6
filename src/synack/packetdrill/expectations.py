"""Recorded corpus results: which scripts pass, and why the others fail.

The file has one line per script, tab-separated::

    path/relative/to/the/corpus.pkt<TAB>STATUS<TAB>reason

STATUS is PASS, FAIL or XFAIL (a runner self-test failing where its
``// Failure:`` comment says).  Lines starting with ``#`` are comments; a
comment right after a script's line annotates it (for example which core
feature the script needs) and is kept when the file is rewritten while that
script still fails.  Comparing a run against the file shows improvements and
regressions alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .runner import RunResult

HEADER = (
    "# Expected results of `synack packetdrill --profile linux` on ../shared/packetdrill.\n"
    "# One script per line: PATH<TAB>STATUS<TAB>REASON (STATUS: PASS, FAIL, or XFAIL for a\n"
    "# runner self-test that fails where its // Failure: comment says).  '#' lines after a\n"
    "# script annotate it (what the core needs); regenerate with\n"
    "#   synack packetdrill --profile linux --write-expectations FILE ../shared/packetdrill\n"
)


@dataclass(slots=True)
class Expectation:
    status: str
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def load(path: Path) -> dict[str, Expectation]:
    out: dict[str, Expectation] = {}
    last: Expectation | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        if raw.startswith("#"):
            if last is not None:
                last.notes.append(raw)
            continue
        parts = raw.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}: bad line {raw!r}: want PATH<TAB>STATUS<TAB>REASON")
        last = Expectation(parts[1].strip(), parts[2].strip() if len(parts) > 2 else "")
        out[parts[0].strip()] = last
    return out


def key(result: RunResult, root: Path) -> str:
    p = Path(result.path)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def actual(result: RunResult) -> Expectation:
    status = result.status
    return Expectation(status, "" if status == "PASS" else result.reason())


def compare(
    results: Iterable[RunResult], root: Path, expected: dict[str, Expectation]
) -> list[str]:
    """Differences between a run and the recorded expectations (empty if none)."""
    diffs: list[str] = []
    seen: set[str] = set()
    for r in results:
        k = key(r, root)
        seen.add(k)
        got = actual(r)
        want = expected.get(k)
        if want is None:
            diffs.append(f"{k}: not in the expectations file (now {got.status}: {got.reason})")
        elif (want.status, want.reason) != (got.status, got.reason):
            diffs.append(
                f"{k}: expected {want.status}"
                + (f" ({want.reason})" if want.reason else "")
                + f", got {got.status}"
                + (f" ({got.reason})" if got.reason else "")
            )
    diffs.extend(f"{k}: in the expectations file but not run" for k in expected if k not in seen)
    return diffs


def render(
    results: Iterable[RunResult], root: Path, previous: dict[str, Expectation] | None = None
) -> str:
    lines = [HEADER.rstrip("\n")]
    for r in sorted(results, key=lambda r: key(r, root)):
        k = key(r, root)
        got = actual(r)
        lines.append("\t".join([k, got.status, got.reason]).rstrip("\t"))
        old = (previous or {}).get(k)
        if old is not None and got.status != "PASS":
            lines.extend(old.notes)
    return "\n".join(lines) + "\n"


__all__ = ["Expectation", "actual", "compare", "key", "load", "render"]
