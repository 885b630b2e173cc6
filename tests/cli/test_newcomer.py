"""A newcomer's first hour (issue 16): each place one tripped, held by a test.

Every command is run as a person runs it (``python -m synack`` in a subprocess)
where what matters is what reaches the terminal: one line on stderr, exit status
2, never a traceback.  The explanations are checked against what the trace
records, never against hard-coded expectations.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import synack.links.tun as tun_module
from helpers import ROOT
from synack.commands import realnet, unwritable
from synack.commands.get import _Output
from synack.commands.main import main
from synack.scenarios.labs import LABS
from synack.trace.narrate import explain, loss_story, render

PYTHON = sys.executable
SRC = str(ROOT / "src")


def synack(
    *argv: str, stdin: bytes = b"", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [PYTHON, "-m", "synack", *argv],
        input=stdin.decode(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ------------------------------------------------------------ item 5: one line, exit 2
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "pcapng": d / "run.pcapng",
        "pcap": d / "run.pcap",
        "fields": d / "fields.jsonl",
        "binary": d / "binary.jsonl",
        "empty": d / "empty.jsonl",
        "notjson": d / "notjson.jsonl",
    }
    files["pcapng"].write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(60))
    files["pcap"].write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    files["fields"].write_text('{"t": 0.1, "ev": "seg", "conn": "a:1>b:2", "dir": "out"}\n')
    files["binary"].write_bytes(bytes(range(128, 256)))
    files["empty"].write_text("\n")
    files["notjson"].write_text("hello\n")
    return files


MISSING = "/nonexistent/folder/x"

BAD_PATHS = [
    ("demo", "--trace", f"{MISSING}.jsonl"),
    ("demo", "--pcap", f"{MISSING}.pcapng"),
    ("packetdrill", "PKT", "--trace", f"{MISSING}.jsonl"),
    ("packetdrill", "PKT", "--pcap", f"{MISSING}.pcapng"),
    ("packetdrill", "PKT", "--write-expectations", f"{MISSING}.txt"),
    ("packetdrill", "PKT", "--expectations", f"{MISSING}.txt"),
    ("packetdrill", f"{MISSING}.pkt"),
    ("explain", f"{MISSING}.jsonl"),
    ("explain", "TRACE", "--svg", f"{MISSING}.svg"),
    ("explain", "TRACE", "--mermaid", f"{MISSING}.mmd"),
    ("explain", "TRACE", "--plots", f"{MISSING}/plots"),
    ("explain", "TRACE", "--pcap", f"{MISSING}.pcapng"),
    ("explain", "TRACE", "--trace-out", f"{MISSING}.jsonl"),
    ("report", f"{MISSING}.jsonl"),
    ("report", "TRACE", "-o", f"{MISSING}.html"),
    ("report", "TRACE", "--pcap", f"{MISSING}.pcap"),
    ("lab", "handshake", "-o", f"{MISSING}/out"),
    ("lab", "handshake", "--no-files", "--pcap", f"{MISSING}.pcap"),
    ("lab", "handshake", "--no-files", "--trace", f"{MISSING}.jsonl"),
    ("get", "http://10.0.0.2/", "-o", f"{MISSING}.bin"),
    ("get", "http://10.0.0.2/", "--trace", f"{MISSING}.jsonl"),
    ("get", "http://10.0.0.2/", "--pcap", f"{MISSING}.pcap"),
    ("connect", "10.0.0.2", "7", "--trace", f"{MISSING}.jsonl"),
    ("connect", "10.0.0.2", "7", "--pcap", f"{MISSING}.pcap"),
    ("serve", "echo", "--trace", f"{MISSING}.jsonl"),
    ("serve", "echo", "--pcap", f"{MISSING}.pcap"),
]


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("synack "), lines
    return lines[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("good")
    trace = d / "t.jsonl"
    assert main(["demo", "-q", "--bytes", "100", "--trace", str(trace)]) == 0
    pkt = d / "ok.pkt"
    pkt.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
    return {"TRACE": str(trace), "PKT": str(pkt)}


@pytest.mark.parametrize("argv", BAD_PATHS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_paths_give_one_line_and_status_2(argv: tuple[str, ...], good: dict[str, str]) -> None:
    words = [good.get(w, w) for w in argv]
    line = one_line_error(synack(*words))
    assert "/nonexistent" in line


@pytest.mark.parametrize("command", ["explain", "report"])
@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("pcapng", "packet capture (pcapng)"),
        ("pcap", "packet capture (pcap)"),
        ("fields", "without 'flags', 'seq', 'ack', 'len', 'win'"),
        ("binary", "not a text file"),
        ("empty", "no trace records"),
        ("notjson", "not JSON"),
    ],
)
def test_bad_trace_files_give_one_line_and_status_2(
    command: str, kind: str, says: str, bad_files: dict[str, Path], tmp_path: Path
) -> None:
    argv = [command, str(bad_files[kind])]
    if command == "report":
        argv += ["-o", str(tmp_path / "r.html")]
    line = one_line_error(synack(*argv))
    assert says in line
    assert not (tmp_path / "r.html").exists()  # no empty page either


def test_plots_folder_is_made_one_level_only(tmp_path: Path, good: dict[str, str]) -> None:
    assert unwritable(tmp_path / "a" / "b", folder=True) == f"no folder {tmp_path / 'a'}"
    assert unwritable(tmp_path / "a", folder=True) is None
    assert main(["explain", good["TRACE"], "--plots", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "timeseq.csv").exists()


# --------------------------------------------------- item 4: -o on an existing file
def test_output_to_an_existing_writable_file_needs_no_writable_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a normal user: /dev/null is writable, its folder /dev is not."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == "/dev" else real(p, m))
    assert _Output("/dev/null", sys.stdout.buffer).check() is None
    assert unwritable("/dev/null") is None
    assert "/dev is not writable" in (unwritable("/dev/new-file") or "")


# ------------------------------------------------------------- item 1: offload state
def fake_tun(monkeypatch: pytest.MonkeyPatch, refuse: int = 0) -> list[tuple[int, Any]]:
    calls: list[tuple[int, Any]] = []
    real_open = os.open

    def fake_open(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        return real_open("/dev/null", os.O_RDWR)

    def fake_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        calls.append((request, arg))
        if request == tun_module.TUNSETIFF:
            return arg
        if request == tun_module.TUNSETOFFLOAD and refuse:
            raise OSError(refuse, os.strerror(refuse))
        if request == tun_module.SIOCGIFMTU:
            return struct.pack("16si20x", b"synq0", 1500)
        return 0

    import fcntl

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(fcntl, "ioctl", fake_ioctl)
    monkeypatch.setattr(
        tun_module.TunLink, "_ioctl_inet", lambda self, req, arg, what: fake_ioctl(-1, req, arg)
    )
    return calls


def test_a_plain_attach_turns_the_devices_offloads_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_tun(monkeypatch)
    with tun_module.TunLink("synq0") as link:
        assert not link.offload
    assert (tun_module.TUNSETOFFLOAD, 0) in calls


def test_a_driver_refusing_to_clear_offloads_is_noted_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_tun(monkeypatch, refuse=errno.EINVAL)
    with tun_module.TunLink("synq0") as link:
        assert "TUNSETOFFLOAD(0)" in (link.offload_error or "")


class _Stats(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> int:
        return 0


def test_one_warning_line_for_bad_checksums_on_a_tun_link() -> None:
    import io

    async def scenario() -> str:
        err = io.StringIO()
        stack = argparse.Namespace(stats=_Stats())
        host = argparse.Namespace(stack=stack)
        setup = realnet.NetSetup(host, "via syn9", tun=argparse.Namespace(name="syn9"))  # type: ignore[arg-type]
        setup.watch_checksums("get", err)
        await asyncio.sleep(0.3)
        assert err.getvalue() == ""
        stack.stats["drop_tcp_bad_checksum"] += 3
        for _ in range(100):
            await asyncio.sleep(0.05)
            if err.getvalue():
                break
        stack.stats["drop_tcp_bad_checksum"] += 3
        await asyncio.sleep(0.6)
        assert setup.watcher is not None
        setup.watcher.cancel()
        return err.getvalue()

    text = asyncio.run(scenario())
    assert text.count("\n") == 1
    assert (
        text.startswith("synack get: warning: dropped 3 packets from syn9 with a bad checksum")
        and "checksum offload" in text
    )


# -------------------------------------------------------- items 2 and 3: addresses, hints
def test_ip_is_derived_from_the_devices_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    monkeypatch.setattr(
        realnet, "interface_address", lambda name: ipaddress.IPv4Interface("10.91.0.1/24")
    )
    args = argparse.Namespace(tun="syn0", ip=None, kernel_ip=None)
    note = realnet.resolve_ip(args)
    assert args.ip == "10.91.0.2" and note is not None and "10.91.0.1/24" in note
    args = argparse.Namespace(tun="syn0", ip="10.77.0.2", kernel_ip=None)
    with pytest.raises(realnet.SetupError) as exc:
        realnet.resolve_ip(args)
    assert exc.value.status == 2
    assert "10.77.0.2 is outside 10.91.0.0/24" in str(exc.value)
    assert "syn0's address, 10.91.0.1/24" in str(exc.value)
    args = argparse.Namespace(tun="syn0", ip=None, kernel_ip="10.5.0.9/24")
    assert realnet.resolve_ip(args) is None and args.ip == "10.5.0.1"


def test_hints_start_from_the_users_own_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def denied(*a: Any, **kw: Any) -> Any:
        raise PermissionError(errno.EPERM, "not permitted")

    monkeypatch.setattr(realnet, "TunLink", denied)
    monkeypatch.setattr(realnet, "interface_address", lambda name: None)
    argv = [
        "get",
        "http://10.91.0.1:8000/",
        "--tun",
        "tun7",
        "--no-create",
        "--ip",
        "10.91.0.5",
        "-o",
        "/dev/null",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "try: sudo synack " + " ".join(argv) in err
    assert "10.77" not in err
    # serve without --tun: the user's words, plus only what is missing
    assert (
        main(["serve", "echo", "--port", "7007", "--ip", "10.9.0.2", "--kernel-ip", "10.9.0.1/24"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "sudo synack serve echo --port 7007 --ip 10.9.0.2 --kernel-ip 10.9.0.1/24 --tun syn0"
    ) in err
    assert "socat - TCP:10.9.0.2:7007" in err


def test_serve_no_create_on_a_missing_device_speaks_command_line() -> None:
    err = realnet.tun_error(
        OSError(
            errno.ENODEV,
            "TUN device 'x' does not exist: create it "
            "with `ip tuntap add dev x mode tun`, or pass create=True",
        ),
        "synack serve echo",
    )
    assert "create=True" not in str(err) and "leave out --no-create" in str(err)


def test_serve_summary_names_drops_in_words() -> None:
    assert "other than 4 and 6" in realnet.drop_words("ip_bad_version")
    assert "multicast" in realnet.drop_words("ip6_multicast_ignored")
    assert "_" not in realnet.drop_words("tcp_bad_checksum")


# --------------------------------------------------------- items 7, 8, 9: explanations
def steps_of(records: list[dict[str, Any]], **kw: Any) -> list[Any]:
    return explain(records, **kw)[1]


def test_fin_wait_1_says_fin_queued_when_data_leaves_first() -> None:
    from synack.scenarios.scenario import Scenario

    sc = Scenario(1)
    sc.listen(80, b"r" * 8000, send_after_eof=True)
    sc.connect(80, b"q" * 8000)
    sc.run(until=100)
    recs = sc.trace
    steps = steps_of(recs)
    st = next(s for s in steps if s.header == "state ESTABLISHED -> FIN-WAIT-1")
    later = [
        r
        for r in recs[st.rec + 1 :]
        if r.get("ev") == "seg" and r.get("dir") == "out" and r["conn"] == recs[st.rec]["conn"]
    ]
    data_first = sum(
        r["len"] for r in later[: next(i for i, r in enumerate(later) if r["flags"] & 1) + 1]
    )
    assert data_first > 0  # the trace: data leaves before (or with) the FIN
    assert "FIN sent" not in st.text and f"after the {data_first} bytes" in st.text
    text = "\n".join(render(recs))
    assert "FIN-WAIT-1: application closed: FIN sent" not in text


def test_lost_synack_answers_to_the_repeated_syn_are_not_timer_driven() -> None:
    run = LABS["lost-synack"].run()
    steps = steps_of(run.trace, roles=run.roles)
    synacks = [s for s in steps if s.kind == "seg" and "[S.]" in s.header and "again" in s.text]
    drops = [s for s in steps if s.kind == "drop" and "SYN again" in s.header]
    timers = [
        s
        for s in steps
        if s.kind == "timer" and s.who == "server" and "retransmission timer" in s.header
    ]
    assert drops, "the trace records the server discarding the repeated SYN"
    # As many timer-driven SYN-ACKs as server timers fired, and the others answer SYNs.
    by_timer = [s for s in synacks if "timer fired" in s.text]
    by_syn = [s for s in synacks if "repeated its SYN" in s.text]
    assert len(by_timer) == len(timers) and len(by_syn) == len(drops)
    assert all(run.trace[s.rec - 1]["ev"] == "drop" for s in by_syn)


def test_a_fin_that_arrived_is_not_narrated_as_lost() -> None:
    res = synack("demo", "--loss", "0.2", "--seed", "3", "--explain")
    blocks = re.split(r"\n(?=\s{0,4}\d+\.\d{4}s )", res.stdout)
    fins = [b for b in blocks if "FIN again" in b]
    assert fins
    for b in fins:
        assert "lost" not in b.split("\n")[0]  # the header: it was not lost on the wire
        assert "had arrived" in b and "spurious" in b


def test_fast_retransmit_names_what_the_trace_says_decided_the_loss() -> None:
    """ "Three duplicate ACKs" only when three arrived; a RACK timer when one fired."""
    for name_or_demo in ("fast-retransmit", "demo"):
        if name_or_demo == "demo":
            from synack.scenarios.scenario import Scenario
            from synack.sim import PathConfig

            sc = Scenario(3, path=PathConfig(delay=0.05, loss=0.2))
            sc.listen(80, bytes(8000), send_after_eof=True)
            sc.connect(80, bytes(8000))
            sc.run(until=100)
            recs, roles = sc.trace, None
        else:
            run = LABS[name_or_demo].run()
            recs, roles = run.trace, run.roles
        steps = steps_of(recs, roles=roles)
        marks = [
            s
            for s in steps
            if s.kind == "ca_state" and "Recovery" in s.header and "loss was marked" in s.header
        ]
        assert marks, name_or_demo
        for st in marks:
            conn = recs[st.rec]["conn"]
            rack = any(
                r.get("ev") == "timer"
                and r.get("timer") == "rack_reorder"
                and r["t"] == recs[st.rec]["t"]
                and r.get("conn") == conn
                for r in recs[: st.rec]
            )
            assert ("RACK reordering timer" in st.text) == rack, st.text
            if not rack:
                m = re.match(r"(\w+) (duplicate )?ACKs?", st.text)
                assert m is not None, st.text
        assert "three duplicate ACKs: a segment" not in "\n".join(s.text for s in steps)


def test_lab_narration_names_the_loss_states_it_went_through() -> None:
    """From the trace: every ca_state move appears in the narration, and the lab's
    closing note lists the states in the order the trace records them."""
    for name in ("fast-retransmit", "timeout"):
        run = LABS[name].run()
        moves = [
            (r["old"], r["new"])
            for r in run.trace
            if r.get("ev") == "ca_state" and r["conn"].startswith("10.0.0.1:")
        ]
        assert moves, name
        text = "\n".join(render(run.trace, run.roles))
        for old, new in moves:
            assert (
                f"loss state {old} → {new}" in text
                if old != new
                else f"loss state stays {new}" in text
            )
        expected = [moves[0][0]]
        for old, new in moves:
            for s in (old, new):
                if expected[-1] != s:
                    expected.append(s)
        assert f"the client's loss state went {' → '.join(expected)}" in text
        states, _ = loss_story(run.trace, run.roles)["client"]
        assert states == expected


def test_internal_names_do_not_reach_the_reader() -> None:
    for name in ("fast-retransmit", "lost-synack", "timeout", "zero-window", "lost-fin"):
        run = LABS[name].run()
        text = "\n".join(render(run.trace, run.roles))
        for internal in (
            "rack_reorder",
            "syn_challenge",
            "syn challenge",
            "(1 blocks)",
            "(lost: loss)",
            "retransmitted_syn",
            "delayed_ack timer",
            "time_wait timer",
        ):
            assert internal not in text, (name, internal)
        assert not re.search(r"\(\d+ blocks\)", text)
    demo = synack("demo", "--loss", "0.2", "--seed", "3", "--explain").stdout
    for internal in ("rack_reorder", "(1 blocks)", "(lost: loss)"):
        assert internal not in demo


def test_one_rendering_of_a_segment_in_every_view() -> None:
    from synack.trace.diagram import render_svg
    from synack.trace.model import analyze
    from synack.trace.report import render_report
    from synack.trace.timeline import render as timeline

    run = LABS["fast-retransmit"].run()
    analysed = analyze(run.trace, run.roles)
    syn = next(s for s in analysed.segments if s.kind == "SYN")
    label = syn.label()
    assert "sackOK" in label and "wscale" in label and "TS val" in label
    views = {
        "explain": "\n".join(render(run.trace, run.roles)),
        "timeline": "\n".join(timeline(run.trace, run.roles)),
        "svg": render_svg(analysed).replace("&lt;", "<").replace("&gt;", ">"),
        "report": render_report(run.trace, roles=run.roles)
        .replace("&lt;", "<")
        .replace("&gt;", ">"),
    }
    for view, text in views.items():
        assert label in text, view
    # The SYN's explanation names what it offers.
    syn_step = next(s for s in steps_of(run.trace, roles=run.roles) if s.seg == syn.index)
    for offer in ("MSS 1460", "SACK", "timestamps", "window scale"):
        assert offer in syn_step.text
    # SACK blocks are relative when sequence numbers are.
    sacked = next(s for s in analysed.segments if s.sack)
    rel = sacked.sack_blocks()
    assert all(a < 1 << 24 for a, _ in rel)
    assert f"sack {rel[0][0]}-{rel[0][1]}" in views["explain"]


# ------------------------------------------------ items 1 and 2 against the kernel
@pytest.fixture
def kernel_ns(tmp_path: Path) -> Any:
    from helpers.netns import namespace, require

    require("ip", "ss")
    with namespace("newcomer", tmp_path) as ns:
        yield ns


def test_offload_left_on_a_device_and_a_foreign_subnet_do_not_stall_get(
    kernel_ns: Any, tmp_path: Path
) -> None:
    """A persistent device in 10.91.0.0/24: `get --no-create` finds synack's address by
    itself; after a run with offloads (the default), the same command with --no-offload
    still works (the device's checksum offload is turned off again on attach) and warns
    of nothing."""
    from helpers.netns import PYTHON as NS_PYTHON

    ns = kernel_ns
    ns.tun_device("syn0", "10.91.0.1/24")
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.txt").write_text("hello from the kernel\n")
    ns.popen(
        NS_PYTHON,
        "-m",
        "http.server",
        "8000",
        "--bind",
        "10.91.0.1",
        "--directory",
        str(www),
        label="http.server",
    )
    ns.wait_listening(8000)
    url = "http://10.91.0.1:8000/f.txt"
    first = ns.synack("get", url, "--tun", "syn0", "--no-create", "--timeout", "20")
    err = first.stderr.decode()
    assert first.returncode == 0, err
    assert first.stdout == b"hello from the kernel\n"
    assert "synack takes 10.91.0.2" in err
    off = ns.synack("get", url, "--tun", "syn0", "--no-create", "--timeout", "20")  # auto: on
    assert off.returncode == 0, off.stderr.decode()
    again = ns.synack(
        "get",
        url,
        "--tun",
        "syn0",
        "--no-create",
        "--no-offload",
        "--timeout",
        "20",
        "--trace",
        str(tmp_path / "t.jsonl"),
    )
    err = again.stderr.decode()
    assert again.returncode == 0, err
    assert again.stdout == b"hello from the kernel\n"
    assert "bad checksum" not in err
    trace = (tmp_path / "t.jsonl").read_text()
    assert "bad_checksum" not in trace
    # A wrong --ip is refused at once, in words, instead of a 30 s timeout.
    wrong = ns.synack("get", url, "--tun", "syn0", "--no-create", "--ip", "10.77.0.2", timeout=20)
    assert wrong.returncode == 2
    assert "outside 10.91.0.0/24" in wrong.stderr.decode()


# ------------------------------------------------------------- item 13: the capture
def test_demo_capture_opens_in_tshark_without_warnings(tmp_path: Path) -> None:
    """The demo's random bytes go to a port no dissector claims, so Wireshark shows no
    'HTTP: Illegal characters found in header name' (nor any other warning)."""
    import shutil

    from helpers.capabilities import missing

    if shutil.which("tshark") is None:
        missing("tshark is not installed (apt-get install tshark; scripts/install-system-deps.sh)")
    cap = tmp_path / "demo.pcapng"
    assert main(["demo", "-q", "--pcap", str(cap)]) == 0
    res = subprocess.run(
        ["tshark", "-r", str(cap), "-q", "-z", "expert"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "Warns" not in res.stdout and "Errors" not in res.stdout, res.stdout
    assert "Illegal characters" not in res.stdout


# ------------------------------------------------------------------ item 12: help
def _options() -> list[tuple[str, str, argparse.Action, str]]:
    from synack.commands.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for name, sp in sub.choices.items():
        for group in sp._action_groups:
            for a in group._group_actions:
                if (
                    a.option_strings
                    and a.help != argparse.SUPPRESS
                    and not isinstance(a, argparse._HelpAction)
                ):
                    out.append((name, a.option_strings[-1], a, group.title or ""))
    return out


def test_help_shows_every_default_and_one_metavar_per_option() -> None:
    metavars: dict[str, set[str]] = {}
    for command, opt, a, _ in _options():
        if a.nargs == 0:
            continue
        if a.default not in (None, False, True, []):
            assert "default" in (a.help or ""), (command, opt, a.default)
        if opt != "--output":  # a FILE for get and report, a DIR for lab
            metavars.setdefault(opt, set()).add(
                str(a.metavar or ("{choices}" if a.choices else ""))
            )
    mixed = {k: v for k, v in metavars.items() if len(v) > 1 or "" in v}
    assert mixed == {}


def test_root_is_not_claimed_for_clients_attaching_with_no_create() -> None:
    for command, opt, _, title in _options():
        if opt == "--tun" and command in ("get", "connect"):
            assert "--no-create" in title and "needs root" not in title
        if opt == "--tun" and command == "serve":
            assert "root" in title


def _doc_block(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


@pytest.mark.parametrize(
    ("heading", "prints"),
    [
        ("### Streams", "b'hello world\\n'"),
        ("### The standard library on synack", "served by the standard library"),
    ],
)
def test_api_examples_run_as_written(heading: str, prints: str, tmp_path: Path) -> None:
    """docs/api.md's examples, pasted into a file and run, work and print what they say."""
    code = _doc_block(ROOT / "docs" / "api.md", heading)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=SRC)
    res = subprocess.run(
        [PYTHON, str(script)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    assert prints in res.stdout


def test_readme_sample_and_diagram_are_what_the_code_prints_now() -> None:
    """The README's `synack demo` sample and docs/images/lost-synack.svg come from the
    code (`make readme`); this fails when a change to the output leaves them behind."""
    import runpy

    script = ROOT / "scripts" / "readme_sample.py"
    mod = runpy.run_path(str(script))
    assert mod["main"](["--check"]) == 0, "run `make readme` (scripts/readme_sample.py --write)"


# ------------------------------------------------------------- item 10: the report
def test_report_of_a_one_sided_trace_steps_every_segment_and_invents_no_state() -> None:
    """As on a real link, only synack's end is traced: the stepper has one step per
    segment the header counts, the other end is "not traced", times are measured."""
    from synack.trace.report import render_report

    run = LABS["fast-retransmit"].run()
    client = [
        r
        for r in run.trace
        if not (r.get("conn") or "").startswith("10.0.0.2:")
        and r.get("ev") not in ("net_drop", "net_inject", "lab")
    ]
    records = [{"t": 1200.0, "ev": "run", "clock": "wall", "started": 0.0, "command": "get"}]
    records += [dict(r, t=r["t"] + 1200.0) for r in client]
    page = render_report(records, roles=run.roles)
    assert "1200." not in page.split("<main>")[1].split("<svg")[0]  # counted from the start
    text = "\n".join(render(records, run.roles))
    assert re.match(r"\s+0\.\d{4}s ", text) and "1200." not in text
    m = re.search(r"; (\d+) segments, ", page)
    assert m is not None
    steps = re.search(r'id="steps-data">(.*?)</script>', page, re.S)
    assert steps is not None
    import json

    data = json.loads(steps.group(1))
    assert len(data) == int(m.group(1))
    assert all(d["ends"]["10.0.0.2"]["state"].startswith("not traced") for d in data)
    assert "(virtual)" not in page and "measured (seconds since the command started)" in page
