"""Figures, ratios and targets as a Markdown table; the section in docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Row", "fmt", "machine", "ratio_row", "render", "replace_section"]

START = "<!-- net:start -->"
END = "<!-- net:end -->"
HEADING = "## Network: synack against the kernel over TUN (`make bench`, as root)"


def fmt(value: float | None, unit: str) -> str:
    """``412.3, "Mbit/s"`` -> ``"412 Mbit/s"``; thousands separators; None -> ``"—"``."""
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:,.2f}x" if value < 10 else f"{value:,.0f}x"
    if unit == "%":
        return f"{value * 100:.0f}%"
    if abs(value) >= 100 or unit in ("conn/s", "req/s", "B"):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


@dataclass
class Row:
    """One line of the table.  ``met`` is None where there is no target or no figure."""

    measure: str
    synack: str
    reference: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        met = "—" if self.met is None else ("**yes**" if self.met else "**no**")
        return [self.measure, self.synack, self.reference, self.ratio, self.target, met]


def ratio_row(
    measure: str,
    value: float | None,
    unit: str,
    ref_label: str,
    ref: float | None,
    *,
    min_ratio: float | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    ratio_as: str = "%",
    error: str | None = None,
) -> Row:
    """A row comparing ``value`` with ``ref`` (same unit), judged against one target:
    ``min_ratio`` (value/ref at least), ``min_value`` or ``max_value`` (absolute)."""
    reference = "—" if ref_label == "—" else f"{ref_label}: {fmt(ref, unit)}"
    if error is not None:
        return Row(
            measure,
            error,
            reference,
            target=_target_text(unit, min_ratio, min_value, max_value, ratio_as),
        )
    ratio = value / ref if value is not None and ref else None
    met: bool | None = None
    if value is not None:
        if min_ratio is not None and ratio is not None:
            met = ratio >= min_ratio
        elif min_value is not None:
            met = value >= min_value
        elif max_value is not None:
            met = value < max_value
    return Row(
        measure,
        fmt(value, unit),
        reference,
        fmt(ratio, ratio_as) if ratio is not None else "—",
        _target_text(unit, min_ratio, min_value, max_value, ratio_as),
        met,
    )


def _target_text(
    unit: str,
    min_ratio: float | None,
    min_value: float | None,
    max_value: float | None,
    ratio_as: str,
) -> str:
    if min_ratio is not None:
        return f"≥ {fmt(min_ratio, ratio_as)}"
    if min_value is not None:
        return f"≥ {fmt(min_value, unit)}"
    if max_value is not None:
        return f"< {fmt(max_value, unit)}"
    return "—"


def machine() -> str:
    """CPU model, cores, kernel and Python, for the line above the table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def render(
    rows: Sequence[Row],
    *,
    command: str,
    notes: Sequence[str] = (),
    when: datetime.date | None = None,
    host: str | None = None,
) -> str:
    """The Markdown that goes between the markers (and is printed)."""
    when = when or datetime.date.today()
    head = ["figure", "synack", "reference (same run)", "ratio", "target", "met"]
    lines = [
        f"Machine: {host or machine()}, {when.isoformat()}. Command: `{command}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in row.cells()]
        lines.append("| " + " | ".join(cells) + " |")
    row_notes = [f"{r.measure}: {n}" for r in rows for n in r.notes]
    if notes or row_notes:
        lines.append("")
        lines.extend(f"- {n}" for n in (*notes, *row_notes))
    return "\n".join(lines)


def replace_section(
    doc: str, body: str, *, start: str = START, end: str = END, heading: str = HEADING
) -> str:
    """Put ``body`` between the markers (the net ones unless given); add the section,
    under ``heading``, before ``## History`` (or at the end) when the markers are not
    there yet.  Nothing else changes."""
    block = f"{start}\n{body}\n{end}"
    if start in doc and end in doc:
        before, rest = doc.split(start, 1)
        _, after = rest.split(end, 1)
        return before + block + after
    section = f"{heading}\n\n{block}\n\n"
    idx = doc.find("\n## History")
    if idx < 0:
        return doc.rstrip("\n") + "\n\n" + section
    return doc[: idx + 1] + section + doc[idx + 1 :]


def write_section(
    path: Path, body: str, *, start: str = START, end: str = END, heading: str = HEADING
) -> None:
    path.write_text(replace_section(path.read_text(), body, start=start, end=end, heading=heading))
