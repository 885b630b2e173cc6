"""Compare two source trees on ``bench_core.py``'s rows, in turns, in one process.

On a busy machine, CPU time moves by a third from one run to the next, so two
trees measured minutes apart cannot be compared.  This loads both trees'
``synack`` packages into one process (each copied under its own name), runs
each chosen ``bench_core`` function on one tree and then the other, swapping
the order every round, and prints the median and range of every row::

    git worktree add /tmp/base main    # or any checkout
    python benchmarks/bench_ab.py /tmp/base/src src --rounds 10

Both trees must be laid out as this one is (``synack.scenarios``, ``synack.sim``...).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent / "bench_core.py"
FUNCS = "bench_codec,bench_stack,bench_connection,bench_sim"


def _load(tree: Path, alias: str, scratch: Path) -> ModuleType:
    """``bench_core`` bound to ``tree``'s package, imported as ``alias``."""
    shutil.copytree(tree / "synack", scratch / alias, ignore=shutil.ignore_patterns("__pycache__"))
    importlib.import_module(alias)
    saved = {k: v for k, v in sys.modules.items() if k == "synack" or k.startswith("synack.")}
    for k in saved:
        del sys.modules[k]
    try:
        # bench_core imports synack.*: point those names at the copy while it loads.
        for sub in (
            "",
            ".scenarios.scenario",
            ".sim",
            ".stack",
            ".tcp.connection",
            ".wire.ipv4",
            ".wire.packet",
            ".wire.segment",
        ):
            sys.modules["synack" + sub] = importlib.import_module(alias + sub)
        spec = importlib.util.spec_from_file_location(f"bench_core_{alias}", BENCH)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        for k in [k for k in sys.modules if k == "synack" or k.startswith("synack.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _lower_is_better(label: str) -> bool:
    return label.startswith(("decode", "encode", "stack")) or "CPU seconds" in label


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("base", type=Path, help="the first tree's src/ folder")
    ap.add_argument("new", type=Path, help="the second tree's src/ folder")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--funcs", default=FUNCS, help=f"bench_core functions (default {FUNCS})")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        mods = {
            "base": _load(args.base, "synack_ab_base", Path(tmp)),
            "new": _load(args.new, "synack_ab_new", Path(tmp)),
        }
        res: dict[str, dict[str, list[float]]] = {"base": {}, "new": {}}
        for r in range(args.rounds):
            for key in ("base", "new") if r % 2 == 0 else ("new", "base"):
                for name in args.funcs.split(","):
                    for label, value in getattr(mods[key], name)():
                        number = float(value.split()[0].replace(",", ""))
                        res[key].setdefault(label, []).append(number)
            print(f"round {r + 1} of {args.rounds}", file=sys.stderr)
    print(
        f"| measure | base: median (range) | new: median (range) | speed-up, {args.rounds} "
        "rounds |\n|---|---|---|---|"
    )
    for label, base in res["base"].items():
        new = res["new"][label]
        mb, mn = statistics.median(base), statistics.median(new)
        gain = mb / mn if _lower_is_better(label) else mn / mb
        print(
            f"| {label} | {mb:,.2f} ({min(base):,.2f}-{max(base):,.2f}) | "
            f"{mn:,.2f} ({min(new):,.2f}-{max(new):,.2f}) | {gain:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
