"""The public packetdrill corpus (../shared/packetdrill) under --profile linux.

The corpus is GPL-2.0 test data and is only *read* from that folder.  The three runner
self-tests must fail exactly at the line their ``// Failure:`` comment names, with a
matching message.  Every other script's result must equal the line recorded in
``tests/packetdrill_corpus_expected.txt`` (PASS, or FAIL with its reason), so an
improvement shows up as clearly as a regression: when a core feature lands, regenerate
the file with ``synack packetdrill --profile linux --write-expectations
tests/packetdrill_corpus_expected.txt ../shared/packetdrill`` and review the diff.
"""

from __future__ import annotations

import pytest

from helpers import ROOT, TESTS
from synack.packetdrill import expectations
from synack.packetdrill.runner import RunResult, iter_scripts, run_script

CORPUS = ROOT.parent / "shared" / "packetdrill"
EXPECTED = TESTS / "packetdrill_corpus_expected.txt"
SELF_TESTS = {
    "packetdrill/gtests/net/packetdrill/tests/packet-timeout.pkt": 13,
    "packetdrill/gtests/net/packetdrill/tests/linux/packetdrill/socket_err.pkt": 6,
    "packetdrill/gtests/net/packetdrill/tests/linux/packetdrill/socket_wrong_err.pkt": 4,
}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")


@pytest.fixture(scope="module")
def results() -> dict[str, RunResult]:
    return {
        expectations.key(r, CORPUS): r
        for r in (run_script(p, "linux") for p in iter_scripts([CORPUS]))
    }


def test_the_whole_corpus_ran(results: dict[str, RunResult]) -> None:
    assert len(results) == 39


@pytest.mark.parametrize(("script", "line"), sorted(SELF_TESTS.items()))
def test_runner_self_tests_fail_where_their_comment_says(
    results: dict[str, RunResult], script: str, line: int
) -> None:
    res = results[script]
    assert res.expected_failure is not None and res.expected_failure.line == line
    assert res.status == "XFAIL", res.report()
    assert res.failure is not None and res.failure.line == line
    assert res.message_matches, res.report()


def test_results_match_the_recorded_expectations(results: dict[str, RunResult]) -> None:
    diffs = expectations.compare(results.values(), CORPUS, expectations.load(EXPECTED))
    assert not diffs, "\n".join(diffs)
