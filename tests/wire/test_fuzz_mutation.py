"""Mutation fuzzing of Stack.receive_packet, short run (issue 8 item 5).

The fuzzer lives in benchmarks/fuzz_mutation.py (``make fuzz`` runs it for
1,000,000 inputs); here a 20,000-input run checks that nothing escapes, that
every input is accounted for exactly once and that the stack's invariants
hold.  Crashes the fuzzer found are pinned below as regression tests.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from helpers import ROOT
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import encode_ipv4_tcp
from synack.wire.segment import ACK, Segment


def _load() -> ModuleType:
    path = ROOT / "benchmarks" / "fuzz_mutation.py"
    spec = importlib.util.spec_from_file_location("fuzz_mutation", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_mutation"] = mod
    spec.loader.exec_module(mod)
    return mod


fm = _load()
SHORT = 50_000


def known_cookie_crash(f: dict[str, Any]) -> bool:
    """The SYN-cookie OverflowError pinned by test_regression_cookie_ack_previous_period."""
    return f["error"].startswith("OverflowError") and f["where"] == "_hash"


@pytest.fixture(scope="module")
def short_run() -> Any:
    return fm.run(SHORT, seed=1, max_findings=SHORT)


def test_short_run_every_input_accounted_and_invariants_hold(short_run: Any) -> None:
    rep = short_run
    unexpected = [f for f in rep.findings if not known_cookie_crash(f)]
    assert unexpected == []
    assert rep.inputs == SHORT
    # Every input was either processed (segs_in) or exactly one counted drop / ICMP
    # outcome; inputs that raised are findings (checked above).
    assert rep.outcomes["processed"] + rep.outcomes["counted_drop"] + len(rep.findings) == SHORT
    assert rep.outcomes["processed"] > SHORT // 5 and rep.outcomes["counted_drop"] > SHORT // 5
    assert rep.invariant_checks >= SHORT // 50 - len(rep.findings)
    assert set(rep.operators) == {op.__name__ for op in fm.Mutator(None, [], []).ops}
    print(
        f"\nFIGURES fuzz-short: inputs={rep.inputs} cpu_s={rep.seconds:.2f} "
        f"rate={rep.rate:.0f}/s processed={rep.outcomes['processed']} "
        f"counted_drops={rep.outcomes['counted_drop']} findings={len(rep.findings)} "
        f"(known cookie crash: {sum(map(known_cookie_crash, rep.findings))})"
    )


def test_short_run_has_no_findings(short_run: Any) -> None:
    assert short_run.findings == []


def test_regression_cookie_ack_previous_period() -> None:
    """Fuzzer finding (seed 1, input 8657): a data segment whose ACK field had its top
    bits flipped to 0xff.. reached a listener in cookie mode 0.83 s after start."""
    stack, now = fm.snapshot(1, cookies=True)
    seg = Segment(0xDE75, 80, 0xDA7E5395, 0xFF203382, ACK, 0x7C70, b"x" * 100)
    pkt = encode_ipv4_tcp(ip_to_bytes("10.0.127.1"), fm.SERVER, seg)
    before = stack.stats["syncookies_rejected"]
    stack.receive_packet(pkt, now)
    assert stack.stats["syncookies_rejected"] == before + 1


def test_regression_inputs_from_the_corpus_are_processed_cleanly() -> None:
    """The unmutated corpus replayed into the snapshot: processed or counted, nothing
    escapes, invariants hold (the baseline the mutations start from)."""
    to_server, _ = fm.capture(1)
    stack, now = fm.snapshot(1)
    for pkt in to_server:
        before = fm._outcome_counts(stack.stats)
        stack.receive_packet(pkt, now)
        after = fm._outcome_counts(stack.stats)
        assert (after[0] - before[0], after[1] - before[1]) in ((1, 0), (1, 1), (0, 1))
        stack.packets_to_send(now)
        for _ in stack.events():
            pass
        now += 0.0005
    fm.check_invariants(stack)
