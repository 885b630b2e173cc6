"""Pure helpers of the impaired-path goodput benchmark (benchmarks/bench_impair.py).

No root and no network: the options, the bridge specs of each cell, the parsing of
what the tools print, the table and the docs section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import ROOT

BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_impair as bi  # noqa: E402
from netbench import report  # noqa: E402


def test_defaults_are_the_full_table() -> None:
    a = bi.parse_args([])
    assert (a.reps, a.seconds, a.loss, a.write) == (3, 20.0, [0.0, 0.1, 1.0, 5.0], False)
    assert a.impair_dir == bi.ROOT.parent / "shared" / "tools" / "impair"


def test_quick_is_short_and_explicit_options_win() -> None:
    q = bi.parse_args(["--quick"])
    assert (q.reps, q.seconds, q.loss) == (1, 8.0, [0.0, 1.0])
    a = bi.parse_args(
        [
            "--quick",
            "--reps",
            "2",
            "--seconds",
            "3",
            "--loss",
            "5",
            "--impair-dir",
            "/x/impair",
            "--write",
        ]
    )
    assert (a.reps, a.seconds, a.loss, a.impair_dir, a.write) == (
        2,
        3.0,
        [5.0],
        Path("/x/impair"),
        True,
    )


def test_trace_dir_and_the_send_buffer_given_to_synack() -> None:
    assert bi.parse_args([]).trace_dir is None
    assert bi.parse_args(["--bbr", "--trace-dir", "/tmp/t"]).trace_dir == Path("/tmp/t")
    wmem = Path("/proc/sys/net/ipv4/tcp_wmem")
    expected = int(wmem.read_text().split()[2]) if wmem.exists() else 4 << 20
    assert bi.linux_snd_buf_max() == expected


def test_queue_is_one_bdp() -> None:
    """100 Mbit/s x 50 ms / 8 = 625000 bytes."""
    assert bi.bdp_bytes() == 625_000
    assert bi.bdp_bytes(10, 200) == 250_000


def test_cell_specs_loss_on_the_data_direction_only() -> None:
    base = "rate=100mbit,queue=625000,delay=25ms"
    assert bi.cell_specs(0.0) == (base, base)
    assert bi.cell_specs(0.1) == (base, base + ",loss=0.1%")
    assert bi.cell_specs(1.0) == (base, base + ",loss=1%")
    assert bi.cell_specs(5.0) == (base, base + ",loss=5%")


def test_parse_tool_output() -> None:
    assert bi.parse_recv("20.001234 250000000\n") == (20.001234, 250_000_000)
    plain = "retransmissions          40                           timeouts 2\n"
    boxed = "│ retransmissions          │ 40                      │ timeouts 2          │"
    assert bi.parse_synack_summary(plain) == (40, 2)
    assert bi.parse_synack_summary(boxed) == (40, 2)
    assert bi.parse_synack_summary("no summary") == (None, None)
    snmp = "Tcp: RtoAlgorithm RetransSegs InErrs\nTcp: 1 271 0\n"
    netstat = "TcpExt: SyncookiesSent TCPTimeouts\nTcpExt: 0 3\n"
    assert bi.parse_kernel_counters(snmp, netstat) == {"RetransSegs": 271, "TCPTimeouts": 3}


def _cells() -> list[bi.Cell]:
    zero = bi.Cell(
        0.0,
        {
            "linux": [bi.Run(95.0, retrans=271, timeouts=0, bridge_cpu=0.3)],
            "cubic": [bi.Run(94.9, retrans=0, timeouts=0, bridge_cpu=0.25)],
            "newreno": [bi.Run(96.0, retrans=0, timeouts=0)],
        },
    )
    one = bi.Cell(
        1.0,
        {
            "linux": [bi.Run(2.0), bi.Run(3.0, retrans=10), bi.Run(2.5)],
            "cubic": [bi.Run(3.0), bi.Run(None, error="x"), bi.Run(2.0)],
            "newreno": [],
        },
    )
    return [zero, one]


def test_median_skips_failed_runs() -> None:
    _, one = _cells()
    assert one.median("linux") == 2.5
    assert one.median("cubic") == 2.5
    assert one.median("newreno") is None
    assert one.median("linux", "retrans") == 10


def test_render_table() -> None:
    text = bi.render(
        _cells(),
        command="make bench-impair",
        seconds=20,
        reps=3,
        notes=["a note"],
        host="test host",
        when="2026-01-02",
    )
    lines = text.splitlines()
    assert lines[0] == "Machine: test host, 2026-01-02. Command: `make bench-impair`."
    assert "one BDP (625,000 bytes)" in text and "median of 3" in text
    assert (
        "| 0% | 95.0 Mbit/s | 94.9 Mbit/s | 0.999x | 0.999x | **no** | 96.0 Mbit/s | 1.011x "
        "| 1.011x | **yes** |"
    ) in lines
    assert "| 1% | 2.50 Mbit/s | 2.50 Mbit/s | 1.000x | 1.150x | **yes** | — | — | — | — |" in lines
    assert "| 0% | 271 / 0 | 0 / 0 | 0 / 0 | 30% |" in lines
    assert "| 1% | 10 / — | — / — | — / — | — |" in lines
    assert lines[-1] == "- a note"


def test_bbr_mode_senders_and_table() -> None:
    """--bbr: Linux BBR against synack BBR, target 0.9x, its own markers."""
    assert bi.parse_args(["--bbr"]).bbr and not bi.parse_args([]).bbr
    assert [(s.key, s.cc, s.linux) for s in bi.BBR_SENDERS] == [
        ("linux-bbr", "bbr", True),
        ("bbr", "bbr", False),
    ]
    cells = [
        bi.Cell(
            0.0,
            {
                "linux-bbr": [bi.Run(93.4, retrans=3078, timeouts=0)],
                "bbr": [bi.Run(92.3, retrans=17, timeouts=0)],
            },
        ),
        bi.Cell(1.0, {"linux-bbr": [bi.Run(91.2)], "bbr": [bi.Run(12.9)]}),
    ]
    text = bi.render_bbr(
        cells, command="make bench-impair-bbr", seconds=20, reps=3, host="h", when="2026-01-02"
    )
    lines = text.splitlines()
    assert "| 0% | 93.4 Mbit/s | 92.3 Mbit/s | 0.988x | **yes** | 3,078 / 0 | 17 / 0 |" in lines
    assert "| 1% | 91.2 Mbit/s | 12.9 Mbit/s | 0.141x | **no** | — / — | — / — |" in lines
    assert bi.BBR_START != bi.START and bi.BBR_END != bi.END


def test_docs_section_replaced_between_impair_markers_only() -> None:
    doc = f"# B\n\n{report.START}\nnet table\n{report.END}\n\n## History\n\nold\n"
    added = report.replace_section(doc, "first", start=bi.START, end=bi.END, heading=bi.HEADING)
    assert f"{bi.HEADING}\n\n{bi.START}\nfirst\n{bi.END}\n\n## History" in added
    assert "net table" in added
    again = report.replace_section(added, "second", start=bi.START, end=bi.END, heading=bi.HEADING)
    assert "first" not in again and f"{bi.START}\nsecond\n{bi.END}" in again
    assert again.count(bi.HEADING) == 1
    assert again.replace("second", "first") == added
    # the net section keeps its own markers: replacing it leaves this one alone
    net = report.replace_section(again, "n2")
    assert "net table" not in net and f"{bi.START}\nsecond\n{bi.END}" in net


def test_main_without_root_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bi.os, "geteuid", lambda: 1000)
    assert bi.main(["--quick"]) == 2
    assert "needs root" in capsys.readouterr().err


def test_help_prints() -> None:
    """--help renders (a bare % in a help string made argparse raise)."""
    with pytest.raises(SystemExit) as e:
        bi.parse_args(["--help"])
    assert e.value.code == 0


def test_paired_ratio_compares_the_same_seed() -> None:
    """The per-seed ratio pairs repetition i of each sender (same loss draws); it can
    differ from the ratio of medians when the senders' orders differ, and a failed
    transfer drops its pair."""
    c = bi.Cell(
        0.1,
        {
            "linux": [bi.Run(10.9), bi.Run(18.1), bi.Run(14.1)],
            "cubic": [bi.Run(12.8), bi.Run(20.8), bi.Run(12.9)],
        },
    )
    assert round(c.median("cubic") / c.median("linux"), 3) == 0.915
    assert round(c.paired_ratio("cubic", "linux") or 0, 3) == round(20.8 / 18.1, 3)
    c.runs["cubic"][1] = bi.Run(None, error="x")
    assert c.paired_ratio("cubic", "linux") == (12.8 / 10.9 + 12.9 / 14.1) / 2
