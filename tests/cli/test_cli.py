"""The ``synack`` command line: the demo's exit status, timeline and errors."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from synack.commands.demo import run_demo
from synack.commands.main import build_parser, main


def demo(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = run_demo(build_parser().parse_args(["demo", *argv]), out)
    return rc, out.getvalue()


def test_demo_succeeds_and_tags_every_phase_with_concepts() -> None:
    rc, text = demo()
    assert rc == 0
    for cid in ("C1", "C2", "C6", "C7", "C8", "C9", "C10", "C11", "C12", "C13", "C20"):
        assert f"[{cid}]" in text, cid
    assert "intact (sha256)" in text and "NOT INTACT" not in text
    # The state sequence of the active closer, in order.
    states = re.findall(r"client  state ([A-Z0-9-]+) -> ([A-Z0-9-]+)", text)
    assert [b for _, b in states] == [
        "SYN-SENT",
        "ESTABLISHED",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "CLOSED",
    ]


def test_demo_with_heavy_loss_recovers_visibly() -> None:
    """The acceptance run: synack demo --loss 0.2 --seed 3 exits 0 after recovery (C17, C18)."""
    rc, text = demo("--loss", "0.2", "--seed", "3")
    assert rc == 0
    assert "LOST" in text
    assert re.search(r"retransmit.*\[C1[78]\]", text)
    assert "timer fired" in text


def test_demo_is_deterministic_per_seed() -> None:
    assert demo("--loss", "0.1", "--seed", "9")[1] == demo("--loss", "0.1", "--seed", "9")[1]
    assert demo("--loss", "0.1", "--seed", "9")[1] != demo("--loss", "0.1", "--seed", "10")[1]


def test_demo_fails_with_status_1_when_the_path_is_dead() -> None:
    """C3: nothing gets through; the client reports a timeout and the demo says so."""
    rc, text = demo("--loss", "1", "--bytes", "100")
    assert rc == 1
    assert "ETIMEDOUT" in text
    assert "NO" in text


def test_demo_absolute_sequence_numbers() -> None:
    rel = demo("--bytes", "10")[1]
    ab = demo("--bytes", "10", "--absolute")[1]
    assert "[S] seq=0 " in rel
    assert "[S] seq=0 " not in ab


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (["--loss", "2"], "between 0 and 1"),
        (["--loss", "x"], "not a number"),
        (["--bytes", "-5"], "must be >= 0"),
        (["--delay", "abc"], "not a valid float"),
    ],
)
def test_bad_arguments_are_clear_errors(
    argv: list[str], msg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err


def test_trace_file_is_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rc, _ = demo("-q", "--trace", str(path))
    assert rc == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = {r["ev"] for r in records}
    assert {"seg", "state", "rtt", "open"} <= kinds
    assert all(isinstance(r["t"], float | int) for r in records)


def test_python_dash_m_entry_point() -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "synack", "demo", "-q", "--bytes", "100"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "both ends closed" in proc.stdout


def test_demo_ipv6_runs_over_ipv6_and_says_so(tmp_path: Path) -> None:
    out = io.StringIO()
    args = build_parser().parse_args(
        ["demo", "--ipv6", "--loss", "0.1", "--seed", "2", "--trace", str(tmp_path / "t.jsonl")]
    )
    assert run_demo(args, out) == 0
    text = out.getvalue()
    assert "client 2001:db8::1 <-> server 2001:db8::2" in text
    assert "<mss 1440," in text  # the IPv6 MSS (MTU 1500 less 60)
    assert "-> server" in text and "[2001" not in text
    conns = {json.loads(line).get("conn") for line in (tmp_path / "t.jsonl").open()}
    assert "[2001:db8::1]:" in " ".join(c for c in conns if c)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "echo", "--ip", "2001:db8::2", "--kernel-ip", "2001:db8::1/64"],
        [
            "serve",
            "http",
            "--ip",
            "10.77.0.2,[2001:db8::2]",
            "--kernel-ip",
            "10.77.0.1/24,2001:db8::1/64",
        ],
        ["connect", "[2001:db8::1]", "7", "--ip", "2001:db8::2", "--kernel-ip", "2001:db8::1/64"],
        ["connect", "2001:db8::1", "7"],
        ["get", "http://[2001:db8::1]:8000/x", "--ip", "2001:db8::2"],
    ],
)
def test_real_network_commands_parse_ipv6_where_they_parse_ipv4(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert "2001:db8::2" in (args.ip or "") or args.command != "serve"
    if args.command == "connect":
        assert args.host == "2001:db8::1"  # brackets gone, RFC 5952 text


def test_hints_bracket_ipv6_endpoints() -> None:
    from synack.commands.connect import describe_failure
    from synack.commands.serve import no_tun_message

    args = build_parser().parse_args(["serve", "http", "--ip", "2001:db8::2,10.77.0.2"])
    assert "curl http://[2001:db8::2]:80/" in no_tun_message(args)
    assert "[2001:db8::1]:7 refused" in describe_failure(
        ConnectionRefusedError(), "2001:db8::1", 7, 1.0
    )


def test_without_h11_the_core_commands_run_and_the_http_ones_say_what_is_missing() -> None:
    """h11 (the cli extra) frames HTTP for serve/get/connect; without it, demo and
    the labs still run, and those commands name the library and the extra."""
    code = (
        "import sys; sys.modules['h11'] = None\n"
        "from synack.commands.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    demo = subprocess.run(
        [sys.executable, "-c", code, "demo", "--bytes", "100", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    got = subprocess.run(
        [sys.executable, "-c", code, "get", "http://10.0.0.1/"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert got.returncode == 2
    assert "needs the h11 library" in got.stderr and "synack[cli]" in got.stderr
    helptext = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, env=env, timeout=120
    ).stdout
    assert "serve" in helptext and "needs h11" in helptext
