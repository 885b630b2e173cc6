"""The README's sample output and sequence diagram, generated from the code.

``python scripts/readme_sample.py --write`` rewrites the sample of ``synack demo``
in README.md (between the ``sample:`` markers) and docs/images/lost-synack.svg;
``--check`` exits 1 when either differs from what the code prints now (the test
suite runs the same comparison).  ``make readme`` and ``make images`` call it.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

README = ROOT / "README.md"
SVG = ROOT / "docs" / "images" / "lost-synack.svg"
COMMAND = ["demo", "--bytes", "3000"]
BEGIN = "<!-- sample: synack demo --bytes 3000; `make readme` regenerates it -->"
END = "<!-- end of sample -->"
HEAD_LINES = 8  # timeline lines shown before the "..."


def demo_sample() -> str:
    """The console block: the command, the first timeline lines, ..., the last one."""
    from synack.commands.demo import run_demo
    from synack.commands.main import build_parser

    args = build_parser().parse_args(COMMAND)
    out = io.StringIO()
    run_demo(args, out)
    lines = out.getvalue().splitlines()
    timeline = [
        ln
        for ln in lines
        if ln[:12].strip().endswith("s") and ln[:10].strip() and ln[:10].strip()[0].isdigit()
    ]
    shown = [*timeline[:HEAD_LINES], "    ...", *timeline[-1:]]
    return "\n".join(["```console", "$ .venv/bin/synack " + " ".join(COMMAND), *shown, "```"])


def diagram() -> str:
    """The lost-synack lab's sequence diagram, as `synack lab lost-synack` writes it."""
    from synack.scenarios.labs import LABS
    from synack.trace.diagram import render_svg
    from synack.trace.model import analyze

    lab = LABS["lost-synack"]
    run = lab.run()
    return render_svg(analyze(run.trace, run.roles), title=f"{lab.name}: {lab.title}")


def readme_with(sample: str, text: str) -> str:
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    return text[:start] + "\n" + sample + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="update README.md and the SVG")
    p.add_argument("--check", action="store_true", help="exit 1 if they are out of date")
    args = p.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    want_readme = readme_with(demo_sample(), text)
    want_svg = diagram()
    stale = [
        str(f.relative_to(ROOT))
        for f, ok in (
            (README, want_readme == text),
            (SVG, SVG.exists() and SVG.read_text(encoding="utf-8") == want_svg),
        )
        if not ok
    ]
    if args.write:
        README.write_text(want_readme, encoding="utf-8")
        SVG.write_text(want_svg, encoding="utf-8")
        print("updated: " + (", ".join(stale) or "nothing (already current)"))
        return 0
    if stale:
        print("out of date (make readme): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
