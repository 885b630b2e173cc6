"""The differential fuzzer (benchmarks/difftest.py, ``make difftest``): generated scripts
parse and run on synack; the comparison finds a difference planted in a recording; and,
as root, a short smoke run of a few scripts against the kernel.  The long run is not
part of ``make test``."""

from __future__ import annotations

import sys

from helpers import ROOT
from helpers.capabilities import missing, root_tun_problem
from synack.packetdrill.parser import parse
from synack.packetdrill.results import RunResult
from synack.packetdrill.runner import RunOptions, run_script

sys.path.insert(0, str(ROOT / "benchmarks"))
import difftest


def test_generated_scripts_parse_and_run_on_synack() -> None:
    cases = difftest.generate(0, 20)
    assert len(cases) >= 10
    for case in cases:
        text = difftest.render(case)
        parse(text, "gen.pkt")  # raises on a grammar error
        res = run_script(parse(text, "gen.pkt"), "linux", RunOptions(record=True))
        assert res.failure is None, res.report(verbose=True) + "\n" + text
        assert res.outbound and res.outbound[0][1] == "S."  # the SYN-ACK, recorded


def _rec(win: int = 100, flags: str = ".", t: int = 0) -> tuple[int, str, int, int, int, int, str]:
    return (t, flags, 1, 1, 0, win, "nop,nop,TS val 5 ecr 7")


def test_compare_names_the_first_difference() -> None:
    k = RunResult("k", "kernel", outbound=[_rec(), _rec(flags="F.")])
    same = RunResult("s", "linux", outbound=[_rec(), _rec(flags="F.")])
    assert difftest.compare(k, same) is None
    flags = RunResult("s", "linux", outbound=[_rec(), _rec(flags="P.")])
    assert difftest.compare(k, flags)[0] == "flags:F./P."  # type: ignore[index]
    win = RunResult("s", "linux", outbound=[_rec(win=7), _rec(flags="F.")])
    assert difftest.compare(k, win)[0] == "win"  # type: ignore[index]
    late = RunResult("s", "linux", outbound=[_rec(), _rec(flags="F.", t=90_000)])
    assert difftest.compare(k, late)[0] == "time:F."  # type: ignore[index]
    fewer = RunResult("s", "linux", outbound=[_rec()])
    assert difftest.compare(k, fewer)[0] == "count:kernel:F."  # type: ignore[index]


def test_smoke_against_the_kernel() -> None:
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)
    for case in difftest.generate(1, 4):
        kern, syn = difftest.run_pair(difftest.render(case))
        assert kern.failure is None, kern.report(verbose=True)
        assert kern.outbound and kern.outbound[0][1] == "S."
        difftest.compare(kern, syn)  # a difference is a finding, not a test failure
