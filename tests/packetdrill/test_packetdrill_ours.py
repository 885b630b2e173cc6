"""Our own packetdrill scripts (tests/packetdrill/*.pkt) pass in the RFC profile.

Each script names the concepts it shows (C4-C27 in ../shared/concepts.md) or the
modern-TCP feature it checks; together they cover every behavioural concept C6-C27.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import TESTS
from synack.packetdrill.runner import run_script

SCRIPTS = sorted((TESTS / "packetdrill").glob("*.pkt"))
#: Scripts of Linux calls and behaviour, checked against the kernel (test_packetdrill_kernel)
#: and here against synack --profile linux.
LINUX_SCRIPTS = sorted((TESTS / "packetdrill_linux").glob("*.pkt"))
CONCEPT = re.compile(r"\bC(\d+)\b")


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_passes_in_the_rfc_profile(script: Path) -> None:
    res = run_script(script, "rfc")
    assert res.status == "PASS", res.report(verbose=True)


#: Differences the fuzzer found (make difftest) and synack now agrees on: the shrunk
#: scripts, with the kernel's packets as expectations, are regression tests.
FIXED_DIFFS = [
    "count_synack_f",
    "count_synack_p",
    "flags_p_fp",
    "seq_s_s",
    "time_f",
    # tcp_retrans_try_collapse(): data and FIN (or two small segments) resent as one
    "flags_f_p",
    "flags_fp",
    "flags_fp_p",
    "seq_p_p",
    # tcp_xmit_probe_skb(): zero-window probes are bare ACKs at SND.UNA - 1
    "flags_p",
    "seq",
    # tcp_ack(): an ACK below SND.UNA - min(max_window, bytes_acked) is
    # challenged and dropped with its FIN
    "ack",
    "count_kernel",
    "flags_f",
    "flags_r",
    "flags_f_r",
    # tcp_rcv_state_process(): data after shutdown(SHUT_RDWR) is answered with RST
    "call_shutdown_shut_rdwr_107_ok",
    # the receive window (rcv_ssthresh, tcp_select_initial_window), the RST's
    # window (rst_window), the FIN with the first data (delayed_ack_fin)
    "win",
    "time",
    "time_p",
    "flags_r_p",
    # corked data leaves on the probe timer (held_data_probe)
    "count_kernel_p",
]


@pytest.mark.parametrize("name", FIXED_DIFFS)
def test_fixed_fuzzer_difference_stays_fixed(name: str) -> None:
    script = TESTS / "packetdrill_linux" / "diff" / f"{name}.pkt"
    res = run_script(script, "linux")
    assert res.status == "PASS", res.report(verbose=True)


@pytest.mark.parametrize("script", LINUX_SCRIPTS, ids=[s.stem for s in LINUX_SCRIPTS])
def test_linux_script_passes_in_the_linux_profile(script: Path) -> None:
    res = run_script(script, "linux")
    assert res.status == "PASS", res.report(verbose=True)


@pytest.mark.parametrize(
    "script", SCRIPTS + LINUX_SCRIPTS, ids=[s.stem for s in SCRIPTS + LINUX_SCRIPTS]
)
def test_script_names_its_concepts_in_a_comment(script: Path) -> None:
    header = script.read_text().split("\n\n", 1)[0]
    assert header.startswith("//")
    assert CONCEPT.search(header), f"{script.name}: no concept ID (Cn) in its header comment"


def test_every_concept_c6_to_c27_has_a_script() -> None:
    covered: set[int] = set()
    for s in SCRIPTS:
        comments = "\n".join(
            ln for ln in s.read_text().splitlines() if ln.lstrip().startswith("//")
        )
        covered.update(int(n) for n in CONCEPT.findall(comments))
    missing = sorted(set(range(6, 28)) - covered)
    assert not missing, f"concepts without a script: {missing}"


def test_modern_features_have_scripts() -> None:
    names = {s.stem for s in SCRIPTS}
    for feature in (
        "sack_generation",
        "paws",
        "keepalive",
        "challenge_ack",
        "c04_zero_window_probe",
        "window_scaling",
        "sack_recovery",
        "tail_loss_probe",
        "c16_wraparound",
        "c15_stray_segment_after_reconnect",
        "c26_c27_old_duplicate_syn",
        "c10_c11_c13_active_close",
    ):
        assert feature in names
