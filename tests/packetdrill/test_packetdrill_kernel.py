"""packetdrill scripts against the live Linux kernel (``--target kernel``), and agreement.

The kernel target runs each script in a network namespace and TUN device of its own
(root only: skipped otherwise, a failure under CI=true).  Three checks:

* the shared corpus passes on this machine's kernel, except the scripts listed in
  ``tests/packetdrill_kernel_exceptions.txt`` (written for other kernel versions), each
  of which must still fail at the line listed;
* the kernel-agreement test: every script (corpus and tests/packetdrill/*.pkt) the kernel
  passes, synack ``--profile linux`` passes too, except the accepted departures in
  ``tests/packetdrill_departures.txt``, each with its RFC reason;
* off root, ``synack packetdrill --target kernel`` refuses with a clear error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from helpers import TESTS
from helpers.capabilities import missing, root_tun_problem
from synack.commands.packetdrill import run_packetdrill
from synack.packetdrill.kernel import run_script_kernel
from synack.packetdrill.kernel_syscalls import decode_tcp_info
from synack.packetdrill.runner import RunResult, iter_scripts, run_script

HERE = TESTS
CORPUS = HERE.resolve().parents[1] / "shared" / "packetdrill"
OURS = HERE / "packetdrill"
#: Our scripts for Linux behaviour and calls (epoll, MSG_EOR, TCP_NOTSENT_LOWAT, ...):
#: the kernel and synack --profile linux, not the RFC profile.
LINUX_OURS = HERE / "packetdrill_linux"
EXCEPTIONS = HERE / "packetdrill_kernel_exceptions.txt"
DEPARTURES = HERE / "packetdrill_departures.txt"


def _table(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, *rest = line.split("\t")
        out[key] = rest
    return out


def _key(script: Path) -> str:
    if script.is_relative_to(CORPUS):
        return str(script.relative_to(CORPUS))
    return str(Path("tests") / script.parent.name / script.name)


def _all_scripts() -> list[Path]:
    scripts = sorted(OURS.glob("*.pkt")) + sorted(LINUX_OURS.glob("*.pkt"))
    if CORPUS.is_dir():
        scripts = iter_scripts([CORPUS]) + scripts
    return scripts


@pytest.fixture(scope="module")
def kernel_results() -> dict[str, RunResult]:
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)
    return {_key(s): run_script_kernel(s) for s in _all_scripts()}


def test_lists_are_well_formed() -> None:
    for key, rest in _table(EXCEPTIONS).items():
        assert key.endswith(".pkt") and len(rest) == 2 and rest[0].isdigit() and rest[1], key
    for key, rest in _table(DEPARTURES).items():
        assert key.endswith(".pkt") and len(rest) == 1 and "RFC" in rest[0], key


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")
def test_the_corpus_passes_on_the_kernel(kernel_results: dict[str, RunResult]) -> None:
    exceptions = _table(EXCEPTIONS)
    problems = []
    for script in iter_scripts([CORPUS]):
        key = _key(script)
        res = kernel_results[key]
        if key in exceptions:
            line = int(exceptions[key][0])
            if res.ok or res.failure is None or res.failure.line != line:
                problems.append(
                    f"{key}: listed as failing at line {line} on this kernel, but: {res.report()}"
                )
        elif not res.ok:
            problems.append(res.report(verbose=True))
    assert not problems, "\n".join(problems)


def test_synack_linux_passes_what_the_kernel_passes(kernel_results: dict[str, RunResult]) -> None:
    departures = _table(DEPARTURES)
    disagree = []
    kernel_passed = 0
    for script in _all_scripts():
        key = _key(script)
        if not kernel_results[key].ok:
            continue
        kernel_passed += 1
        res = run_script(script, "linux")
        if not res.ok and key not in departures:
            disagree.append(
                f"{key}: the kernel passes, synack --profile linux does not: {res.reason()}"
            )
    assert kernel_passed >= 5
    assert not disagree, "\n".join(disagree)


def test_our_linux_scripts_pass_on_the_kernel(kernel_results: dict[str, RunResult]) -> None:
    """The kernel is the judge of tests/packetdrill_linux: every script must pass on it."""
    scripts = sorted(LINUX_OURS.glob("*.pkt"))
    assert len(scripts) >= 5
    failed = [
        kernel_results[_key(s)].report(verbose=True)
        for s in scripts
        if kernel_results[_key(s)].status != "PASS"
    ]
    assert not failed, "\n".join(failed)


def test_the_fuzzers_regression_scripts_pass_on_the_kernel() -> None:
    """tests/packetdrill_linux/diff/*.pkt carry the kernel's packets as expectations:
    the kernel passes them (synack passes the fixed ones: test_packetdrill_ours)."""
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)
    scripts = sorted((LINUX_OURS / "diff").glob("*.pkt"))
    assert len(scripts) >= 20
    failed = [r.report() for r in map(run_script_kernel, scripts) if r.status != "PASS"]
    assert not failed, "\n".join(failed)


FAST_OPEN = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000,nop,nop,sackOK,nop,nop,FO,nop,nop>
+0 > S. 0:0(0) ack 1 <...>
"""


def test_fast_open_option_runs_on_the_kernel_and_is_named_on_synack(tmp_path: Path) -> None:
    """The FO option parses on both targets; the kernel takes it (a cookie request),
    synack fails at that line naming the feature."""
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)
    script = tmp_path / "fo.pkt"
    script.write_text(FAST_OPEN)
    assert run_script_kernel(script).status == "PASS"
    res = run_script(script, "linux")
    assert res.failure is not None and res.failure.line == 5
    assert res.failure.message == (
        "the FO option needs TCP Fast Open (RFC 7413), which synack does not implement"
    )


def test_the_kernel_target_refuses_without_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    args = argparse.Namespace(
        paths=[str(OURS / "keepalive.pkt")],
        target="kernel",
        profile="rfc",
        tolerance_usecs=None,
        tolerance_percent=None,
        strict_segments=False,
        check_ts_ecr=False,
        verbose=False,
        show_profile=False,
        expectations=None,
        write_expectations=None,
    )
    assert run_packetdrill(args, io.StringIO()) == 2
    assert "needs root" in capsys.readouterr().err
    res = run_script_kernel(OURS / "keepalive.pkt")
    assert res.status == "FAIL" and res.failure is not None
    assert "needs root" in res.failure.message


def test_tcp_info_is_decoded_by_field_position() -> None:
    head = struct.pack("@BBBBBBBB", 1, 3, 0, 0, 2, 7, 0x75, 1)
    words = list(range(100, 124))  # tcpi_rto .. tcpi_total_retrans
    raw = head + struct.pack("@24I", *words)
    info = decode_tcp_info(raw)
    assert info["tcpi_state"] == 1 and info["tcpi_ca_state"] == 3 and info["tcpi_backoff"] == 2
    assert info["tcpi_snd_wscale"] == 5 and info["tcpi_rcv_wscale"] == 7
    assert info["tcpi_rto"] == 100 and info["tcpi_snd_cwnd"] == 118
    assert info["tcpi_total_retrans"] == 123
    assert "tcpi_bytes_acked" not in info  # a short buffer gives only what it holds


def test_kernel_run_writes_its_packets_to_pcap_and_trace(tmp_path: Path) -> None:
    """--pcap and --trace with --target kernel hold the run, which happens in a forked
    child: every packet in and out, as pcapng and as trace ``seg`` records."""
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)
    from synack.commands.main import main

    script = LINUX_OURS / "diff" / "win.pkt"
    trace, pcap = tmp_path / "t.jsonl", tmp_path / "p.pcapng"
    assert (
        main(
            [
                "packetdrill",
                "--target",
                "kernel",
                str(script),
                "--trace",
                str(trace),
                "--pcap",
                str(pcap),
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    segs = [(r["dir"], r["flags"]) for r in records if r["ev"] == "seg"]
    # SYN in, SYN-ACK out, ACK in, then the kernel's FIN and its retransmission.
    assert segs == [("in", 0x02), ("out", 0x12), ("in", 0x10), ("out", 0x11), ("out", 0x11)]
    assert all(
        r["script"] == str(script) and r["conn"] == "192.168.0.1:8080>192.0.2.1:40000"
        for r in records
    )
    tshark = shutil.which("tshark")
    if tshark is None:
        missing("tshark")
    count = subprocess.run(
        [tshark, "-r", str(pcap)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(count) == 5
