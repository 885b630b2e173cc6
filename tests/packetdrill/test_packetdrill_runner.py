"""The packetdrill runner: virtual time, tolerance, matching, syscalls, errors, the CLI."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from helpers import TESTS
from synack.commands.packetdrill import run_packetdrill
from synack.packetdrill import expectations
from synack.packetdrill.parser import parse
from synack.packetdrill.profiles import RFC
from synack.packetdrill.runner import Runner, RunOptions, RunResult, Sent, run_script
from synack.packetdrill.syscalls import pattern
from synack.stack import Stack
from synack.wire.segment import ACK, FIN, PSH, Segment

# A passive open every test builds on (lines 1-7); the peer's MSS is 1000.
PRE = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
"""


def run(text: str, profile: str = "rfc", **opts: Any) -> RunResult:
    return run_script(parse(text, "t.pkt"), profile, RunOptions(**opts))


def failed_at(res: RunResult, line: int, *fragments: str) -> None:
    assert res.status == "FAIL", res.report()
    assert res.failure is not None
    assert res.failure.line == line, res.report()
    for frag in fragments:
        assert frag in res.failure.message, res.report()


# ----------------------------------------------------------------------- basic matching
def test_a_correct_script_passes() -> None:
    res = run(PRE + "+0 write(4, ..., 1000) = 1000\n+0 > P. 1:1001(1000) ack 1\n")
    assert res.status == "PASS", res.report()
    assert res.ok and res.failure is None
    assert res.events_run == 9


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("+0 > P. 2:1002(1000) ack 1", ("live packet field tcp_seq: expected: 2", "actual: 1 ")),
        ("+0 > . 1:1001(1000) ack 1", ("tcp_flags: expected: . vs actual: P.",)),
        ("+0 > P. 1:1001(1000) ack 7", ("tcp_ack_seq: expected: 7",)),
        ("+0 > P. 1:1001(1000) ack 1 win 4", ("tcp_window: expected: 4",)),
        (
            "+0 > P. 1:1001(1000) ack 1 <nop,nop,TS val 1 ecr 0>",
            ("bad outbound TCP options: expected <nop,nop,TS val 1 ecr 0> vs actual no options",),
        ),
        ("+0 > P. 1:501(500) ack 1", ("live packet payload: expected 500 bytes vs actual 1000",)),
    ],
)
def test_mismatches_name_the_field_line_expected_and_actual(
    line: str, fragments: tuple[str, ...]
) -> None:
    res = run(PRE + "+0 write(4, ..., 1000) = 1000\n" + line + "\n")
    failed_at(res, 9, "error handling packet: ", *fragments)
    assert res.failure is not None
    assert res.failure.expected is not None and "> " in res.failure.expected
    assert res.failure.actual is not None and "P. 1:1001(1000) ack 1" in res.failure.actual
    assert "FAIL  t.pkt: line 9:" in res.report()


def test_option_wildcard_matches_any_options_and_explicit_list_is_exact() -> None:
    text = PRE.replace("> S. 0:0(0) ack 1 <mss 1460>", "> S. 0:0(0) ack 1 <...>")
    assert run(text).status == "PASS"
    res = run(PRE.replace("<mss 1460>", "<mss 1460,nop,wscale 7>"))
    failed_at(res, 5, "bad outbound TCP options")


def test_no_packet_times_out() -> None:
    res = run(PRE + "+0 > . 1:1(0) ack 1\n")
    failed_at(res, 8, "error handling packet: Timed out waiting for packet")
    assert res.failure is not None and res.failure.actual is not None
    assert "nothing sent" in res.failure.actual


# ------------------------------------------------------------------------------ timing
DELAYED_ACK = PRE + "+0 < P. 1:101(100) ack 1 win 65535\n"  # ACKed after the 200 ms timer


@pytest.mark.parametrize(
    ("when", "opts", "ok"),
    [
        ("+.2", {}, True),
        ("+.197", {}, True),  # 3 ms early: inside the default 4 ms
        ("+.195", {}, False),  # 5 ms early
        ("+.195", {"tolerance_usecs": 6000}, True),
        ("+.205", {}, False),
        ("*", {}, True),  # any time
        ("+.15~+.25", {}, True),
        ("+.21~+.3", {}, False),
    ],
)
def test_outbound_timing_and_tolerance(when: str, opts: dict[str, Any], ok: bool) -> None:
    # tolerance_percent=0 isolates the fixed tolerance (see the next test for the other).
    res = run(DELAYED_ACK + f"{when} > . 1:1(0) ack 101\n", tolerance_percent=0.0, **opts)
    if ok:
        assert res.status == "PASS", res.report()
    else:
        failed_at(res, 9, "timing error: expected outbound packet")
        assert res.failure is not None and "0.300000" in res.failure.message


def test_script_option_line_sets_tolerance() -> None:
    res = run(
        "--tolerance_usecs=6000\n--tolerance_percent=0\n"
        + DELAYED_ACK
        + "+.195 > . 1:1(0) ack 101\n"
    )
    assert res.status == "PASS", res.report()
    # By default the tolerance is 12.5 % of the 195 ms gap: 24 ms.
    assert run(DELAYED_ACK + "+.18 > . 1:1(0) ack 101\n").status == "PASS"
    assert run(DELAYED_ACK + "+.17 > . 1:1(0) ack 101\n").status == "FAIL"


def test_tolerance_grows_with_the_gap_between_events() -> None:
    # The data is retransmitted after the 1 s RTO; expecting it 1.1 s after the send is
    # 100 ms off, within 12.5 % of the 1.1 s gap (137.5 ms) but not 5 % (55 ms).
    body = (
        PRE + "+0 write(4, ..., 100) = 100\n+0 > P. 1:101(100) ack 1\n+1.1 > P. 1:101(100) ack 1\n"
    )
    assert run(body).status == "PASS"
    failed_at(run(body, tolerance_percent=5.0), 10, "timing error", "tolerance 0.055000")


def test_relative_time_counts_from_when_the_previous_packet_went_out() -> None:
    # The delayed ACK leaves at 0.3 s; "+0" after it means 0.3 s, not the 0.1 s of the
    # inbound segment before.
    res = run(
        DELAYED_ACK + "* > . 1:1(0) ack 101\n+0 write(4, ..., 10) = 10\n"
        "+0 > P. 1:11(10) ack 101\n+.1 < . 101:101(0) ack 11 win 65535\n"
        "0.4 %{ assert tcpi_bytes_acked == 10 }%\n"
    )
    assert res.status == "PASS", res.report()


def test_early_packet_is_a_timing_error() -> None:
    res = run(DELAYED_ACK + "+.5 > . 1:1(0) ack 101\n")
    failed_at(res, 9, "expected outbound packet at 0.600000 sec but happened at 0.300000 sec")


def test_time_must_start_at_zero_and_never_go_backward() -> None:
    failed_at(run("1 close(3) = -1\n"), 1, "first event should be at time 0")
    failed_at(
        run(
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n2 close(3) = 0\n"
            "1 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        ),
        3,
        "time goes backward",
    )


# ---------------------------------------------------------------------- aggregation
def test_consecutive_segments_aggregate_unless_strict() -> None:
    body = PRE + "+0 write(4, ..., 3000) = 3000\n+0 > P. 1:3001(3000) ack 1\n"
    assert run(body).status == "PASS"
    failed_at(
        run("--strict_segments\n" + body),
        10,
        "live packet payload: expected 3000 bytes vs actual 1000 bytes",
    )
    failed_at(run(body, strict_segments=True), 9, "expected 3000 bytes vs actual 1000")
    # The last piece may be shorter (TCP_NODELAY: Nagle would hold it back otherwise).
    assert run(
        PRE + "+0 setsockopt(4, SOL_TCP, TCP_NODELAY, [1], 4) = 0\n"
        "+0 write(4, ..., 2500) = 2500\n+0 > P. 1:2501(2500) ack 1\n"
    ).ok


def _sent(seq: int, n: int, flags: int = ACK, ack: int = 1, win: int = 100) -> Sent:
    return Sent(0, Segment(8080, 40000, seq, ack, flags, win, bytes(n)), [])


@pytest.mark.parametrize(
    ("prev", "cur", "total", "need", "why"),
    [
        (_sent(1, 1000), _sent(1001, 1000), 1000, 3000, None),
        (_sent(1, 1000), _sent(1001, 500), 1000, 1500, None),  # the last may be short
        (_sent(1, 1000), _sent(1001, 500), 1000, 3000, "fragment payload"),
        (_sent(1, 1000), _sent(2001, 1000), 1000, 3000, "not contiguous"),
        (_sent(1, 1000), _sent(1001, 1000, ack=5), 1000, 3000, "headers differ"),
        (_sent(1, 1000, ACK | FIN), _sent(1002, 10), 1000, 1010, "SYN or FIN"),
        (_sent(1, 1000), _sent(1001, 1000, ACK | PSH), 1000, 2000, None),
    ],
)
def test_fragment_rules(prev: Sent, cur: Sent, total: int, need: int, why: str | None) -> None:
    r = Runner(parse("0 close(3) = -1\n"), RFC, RunOptions())
    problem = r._fragment_problem(prev, cur, total, need)
    if why is None:
        assert problem is None
    else:
        assert problem is not None and why in problem


# ------------------------------------------------------------------------ syscalls
def test_blocking_call_returns_when_its_end_time_says() -> None:
    ok = run(PRE + "+0...0.5 read(4, ..., 100) = 100\n+.5 < P. 1:101(100) ack 1 win 65535\n")
    assert ok.status == "PASS", ok.report()
    early = run(PRE + "+0...0.5 read(4, ..., 100) = 100\n+.2 < P. 1:101(100) ack 1 win 65535\n")
    failed_at(early, 8, "expected system call return at 0.600000 sec but happened at 0.300000")


def test_blocking_call_checks_its_result_and_errno() -> None:
    res = run(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0...0.1 connect(3, ..., ...) = -1 ETIMEDOUT (Connection timed out)\n"
        "+0 > S 0:0(0) <...>\n+.1 < R. 0:0(0) ack 1 win 0\n+1 close(3) = 0\n"
    )
    failed_at(
        res,
        2,
        "runtime error in connect call: Expected errno 110",
        "but got 111 (Connection refused)",
    )


def test_blocking_call_still_running_at_the_end_fails() -> None:
    res = run(PRE + "+0...5 read(4, ..., 100) = 100\n")
    failed_at(res, 8, "exiting while a blocking system call is in progress")


def test_second_blocking_call_while_one_is_running_fails() -> None:
    res = run(PRE + "+0...5 read(4, ..., 100) = 100\n+1...2 read(4, ..., 100) = 100\n")
    failed_at(res, 9, "another blocking system call is already in progress")


def test_call_without_end_time_must_not_block() -> None:
    failed_at(run(PRE + "+0 read(4, ..., 100) = 0\n"), 8, "the call blocks")


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        ("close(9) = 0", ("Expected result 0 but got -1 with errno 9 (Bad file descriptor)",)),
        ("close(9) = -1 EINVAL", ("Expected errno 22 (Invalid argument) but got 9",)),
        (
            "getsockopt(4, SOL_TCP, TCP_MAXSEG, [1460], [4]) = 0",
            ("getsockopt TCP_MAXSEG: expected optval 1460 but got 1000",),
        ),
        ("setsockopt(4, SOL_TCP, TCP_QUICKACK, [1], 4) = 0", ("TCP_QUICKACK is not supported",)),
        ("frobnicate(4) = 0", ("Unknown system call: 'frobnicate'",)),
        ("read(4, ...) = 0", ("Expected 3 args but got 2",)),
        ("ioctl(4, SIOCINQ, [5]) = 0", ("ioctl SIOCINQ: expected 5 but got 0",)),
        (
            "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0",
            ("structured socket option values",),
        ),
    ],
)
def test_syscall_errors(call: str, fragments: tuple[str, ...]) -> None:
    res = run(PRE + f"+0 {call}\n")
    name = call.split("(")[0]
    failed_at(res, 8, f"runtime error in {name} call: ", *fragments)


def test_fds_follow_the_script_and_socket_errors_match_linux() -> None:
    res = run(
        "0 socket(..., SOCK_STREAM, IPPROTO_UDP) = -1 EPROTONOSUPPORT (x)\n"
        "+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n+0 close(4) = 0\n"
        "+0 close(4) = -1 EBADF (Bad file descriptor)\n"
    )
    assert res.status == "PASS", res.report()


def test_socket_layer_semantics_eof_epipe_nonblocking() -> None:
    res = run(
        PRE + "+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
        "+0 fcntl(4, F_GETFL) = 0x802\n"
        "+0 read(4, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)\n"
        "+0 < F. 1:1(0) ack 1 win 65535\n+0 > . 1:1(0) ack 2\n"
        "+0 read(4, ..., 10) = 0\n+0 shutdown(4, SHUT_WR) = 0\n+0 > F. 1:1(0) ack 2\n"
        "+0 write(4, ..., 10) = -1 EPIPE (Broken pipe)\n"
    )
    assert res.status == "PASS", res.report()


def test_read_data_is_checked_byte_for_byte() -> None:
    res = run(
        PRE + "+0 < P. 1001:2001(1000) ack 1 win 65535\n+0 > . 1:1(0) ack 1\n"
        "+0 < P. 1:1001(1000) ack 1 win 65535\n+0 > . 1:1(0) ack 2001\n"
        "+0 read(4, ..., 3000) = 2000\n"
    )
    assert res.status == "PASS", res.report()
    assert pattern(250, 3) == bytes([250, 0, 1])


# ---------------------------------------------------------------- commands and code
def test_sysctl_commands_configure_the_stack_and_others_are_skipped() -> None:
    offer = "+0 < S 0:0(0) win 65535 <mss 1000,sackOK,nop,nop>\n"
    base = (
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
        "+0 listen(3, 1) = 0\n" + offer
    )
    with_sack = run(base + "+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK>\n")
    assert with_sack.status == "PASS", with_sack.report()
    no_sack = run(
        "`sysctl -q net.ipv4.tcp_sack=0\nethtool -K tun0 tso off`\n"
        + base
        + "+0 > S. 0:0(0) ack 1 <mss 1460>\n"
    )
    assert no_sack.status == "PASS", no_sack.report()
    assert any("skipped `ethtool -K tun0 tso off`" in n for n in no_sack.notes)


def test_timed_command_changes_later_connections(tmp_path: Path) -> None:
    (tmp_path / "set.sh").write_text(
        "sysctl -q net.ipv4.tcp_timestamps=0 net.ipv4.tcp_sack=0 net.ipv4.tcp_window_scaling=0\n"
    )
    script = tmp_path / "s.pkt"
    script.write_text(
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 `./set.sh`\n"
        "+0...0.1 connect(3, ..., ...) = 0\n+0 > S 0:0(0) <mss 1460>\n"
        "+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>\n+0 > . 1:1(0) ack 1\n"
    )
    res = run_script(script)
    assert res.status == "PASS", res.report()


def test_code_blocks_assert_against_tcp_info() -> None:
    ok = run(
        PRE + "+0 %{\nassert tcpi_snd_mss == 1000\nassert tcpi_state == TCP_ESTABLISHED\n"
        "x = tcpi_snd_cwnd\nassert x == 10, x\n}%\n"
    )
    assert ok.status == "PASS", ok.report()
    bad = run(PRE + "+0 %{ assert tcpi_snd_cwnd == 11, tcpi_snd_cwnd }%\n")
    failed_at(bad, 8, "assertion failed: tcpi_snd_cwnd == 11 (10)")
    skipped = run(PRE + "+0 %{ assert tcpi_reordering == 3 }%\n")
    assert skipped.status == "PASS"
    assert any("tcpi_reordering is not available" in n for n in skipped.notes)
    unsafe = run(PRE + "+0 %{ __import__('os').system('true') }%\n")
    failed_at(unsafe, 8, "error in %{ }% block")


def test_socket_options_set_late_reach_the_live_connection() -> None:
    # Keepalive switched on after accept() arms at once (Connection.configure).
    res = run(
        PRE + "+0 setsockopt(4, SOL_TCP, TCP_KEEPIDLE, [10], 4) = 0\n"
        "+0 setsockopt(4, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0\n"
        "+0 getsockopt(4, SOL_TCP, TCP_KEEPIDLE, [10], [4]) = 0\n"
        "+10 > . 0:0(0) ack 1\n"
    )
    assert res.status == "PASS", res.report()


# ------------------------------------------------------------------------- profiles
def test_linux_profile_doubles_socket_buffers_rfc_profile_does_not() -> None:
    body = (
        PRE + "+0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [21000], 4) = 0\n"
        "+0 getsockopt(4, SOL_SOCKET, SO_SNDBUF, [{}], [4]) = 0\n"
    )
    assert run(body.format(21000)).status == "PASS"
    linux = body.replace("> S. 0:0(0) ack 1 <mss 1460>", "> S. 0:0(0) ack 1 <...>")
    assert run(linux.format(42000), "linux").status == "PASS"
    failed_at(run(body.format(42000)), 9, "expected optval 42000 but got 21000")


def test_linux_profile_syn_layout_and_window_scale_from_tcp_rmem() -> None:
    res = run(
        '`sysctl -q net.ipv4.tcp_rmem="4096 540000 15728640"`\n'
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0...0.1 connect(3, ..., ...) = 0\n"
        "+0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>\n"
        "+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK>\n"
        "+0 > . 1:1(0) ack 1\n",
        "linux",
    )
    assert res.status == "PASS", res.report()


def test_ip_ecn_is_set_inbound_and_checked_outbound() -> None:
    text = (
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
        "+0 listen(3, 1) = 0\n+0 < SEW 0:0(0) win 65535 <mss 1000>\n"
        "+0 > SE. 0:0(0) ack 1 <mss 1460>\n+.1 < . 1:1(0) ack 1 win 65535\n"
        "+0 accept(3, ..., ...) = 4\n+0 < [ce] P. 1:101(100) ack 1 win 65535\n"
        "+0 > E. 1:1(0) ack 101\n+0 write(4, ..., 10) = 10\n+0 > [{}] PE. 1:11(10) ack 101\n"
    )
    assert run(text.format("ect0")).status == "PASS"
    assert run(text.format("ect01")).status == "PASS"
    failed_at(run(text.format("no_ecn")), 11, "ip_ecn: expected: no_ecn vs actual: ect0")


# ------------------------------------------------------------- timestamps mapping
def test_inbound_ts_ecr_must_echo_a_known_outbound_tsval() -> None:
    text = (
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
        "+0 listen(3, 1) = 0\n+0 < S 0:0(0) win 65535 <mss 1000,nop,nop,TS val 7 ecr 0>\n"
        "+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,TS val 50 ecr 7>\n"
        "+.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 8 ecr {}>\n"
        "+0 accept(3, ..., ...) = 4\n"
    )
    assert run(text.format(50), check_ts_ecr=True).status == "PASS"
    failed_at(run(text.format(49)), 6, "unable to infer live TS ecr for script TS ecr 49")


# ------------------------------------------------------------- expected failures
def test_failure_comment_turns_a_failure_at_that_line_into_xfail() -> None:
    res = run(
        "0 socket(..., SOCK_STREAM, IPPROTO_UDP) = -1\n"
        "// Failure: runtime error in socket call: Expected non-negative result but "
        "got -1 with errno 93 \\(Protocol not supported\\)\n"
        "+0 socket(..., SOCK_STREAM, IPPROTO_UDP) = 3\n"
    )
    assert res.status == "XFAIL" and res.ok and res.message_matches, res.report()
    assert res.report().startswith("XFAIL (expected) t.pkt:3: runtime error in socket call")
    elsewhere = run("0 close(5) = 0\n// Failure: anything\n+0 close(3) = -1\n")
    assert elsewhere.status == "FAIL"
    assert elsewhere.reason().startswith("expected to fail at line 3, failed at line 1")
    passing = run("0 close(5) = -1\n// Failure: anything\n+0 close(3) = -1\n")
    assert passing.status == "FAIL"
    assert passing.reason() == "expected to fail at line 3 but passed"


# ----------------------------------------------------------- errors never escape
def test_malformed_script_file_reports_file_line_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pkt"
    bad.write_text("0 close(3) = 0\n+0 < S 0:10(5) win 1\n")
    res = run_script(bad)
    assert res.status == "FAIL" and res.failure is not None
    assert res.failure.line == 2
    assert "parse error: inconsistent sequence numbers" in res.failure.message
    assert f"{bad}: line 2: parse error" in res.report()


def test_unknown_option_line_fails_at_its_line() -> None:
    failed_at(run("--frobnicate=1\n0 close(3) = -1\n"), 1, "unknown option --frobnicate")


def test_a_crash_inside_synack_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Stack, packet: bytes, now: float) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Stack, "receive_packet", boom)
    res = run(PRE)
    failed_at(res, 4, "internal error: RuntimeError: kaboom")


# ------------------------------------------------------------------------------ CLI
def _cli(paths: list[str], **kw: object) -> tuple[int, str]:
    ns = argparse.Namespace(
        paths=paths,
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
    for k, v in kw.items():
        setattr(ns, k, v)
    out = io.StringIO()
    return run_packetdrill(ns, out), out.getvalue()


def test_cli_reports_each_script_and_the_total(tmp_path: Path) -> None:
    (tmp_path / "good.pkt").write_text(PRE)
    (tmp_path / "bad.pkt").write_text(PRE + "+0 > . 1:1(0) ack 1\n")
    status, out = _cli([str(tmp_path)])
    assert status == 1
    lines = out.splitlines()
    assert lines[-1] == "1 passed, 1 failed"
    assert any(ln.startswith("FAIL  ") and "bad.pkt: line 8:" in ln for ln in lines)
    assert any(ln.startswith("      expected: ") for ln in lines)
    assert any(ln.startswith("PASS  ") and ln.endswith("good.pkt") for ln in lines)
    status, out = _cli([str(tmp_path / "good.pkt")])
    assert (status, out.splitlines()[-1]) == (0, "1 passed, 0 failed")


def test_cli_expectations_round_trip(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.pkt").write_text(PRE)
    (corpus / "bad.pkt").write_text(PRE + "+0 > . 1:1(0) ack 1\n")
    exp = tmp_path / "expected.txt"
    status, _ = _cli([str(corpus)], write_expectations=exp)
    assert status == 1
    text = exp.read_text()
    assert "good.pkt\tPASS\n" in text
    assert "bad.pkt\tFAIL\tline 8: error handling packet: Timed out waiting for packet" in text
    # Annotations survive a rewrite while the script still fails.
    exp.write_text(text.replace("for packet\n", "for packet\n#\tneeds: a miracle\n"))
    status, out = _cli([str(corpus)], expectations=exp)
    assert status == 0, out
    _cli([str(corpus)], write_expectations=exp)
    assert "#\tneeds: a miracle" in exp.read_text()
    (corpus / "bad.pkt").write_text(PRE)
    status, out = _cli([str(corpus)], expectations=exp)
    assert status == 1
    assert "bad.pkt: expected FAIL (line 8:" in out and "got PASS" in out
    loaded = expectations.load(exp)
    assert loaded["good.pkt"].status == "PASS"


def test_cli_writes_trace_and_capture_for_every_script(tmp_path: Path) -> None:
    """--trace and --pcap (issue 5: on every command): JSON lines naming each script,
    and a pcapng that tshark reads without a malformed packet."""
    import json
    import shutil
    import subprocess

    from synack.commands.main import main

    scripts = sorted(TESTS.joinpath("packetdrill").glob("c0*.pkt"))[:2]
    trace, pcap = tmp_path / "t.jsonl", tmp_path / "p.pcapng"
    rc = main(["packetdrill", *map(str, scripts), "--trace", str(trace), "--pcap", str(pcap)])
    assert rc == 0
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {r["script"] for r in records} == {str(s) for s in scripts}
    assert any(r["ev"] == "state" for r in records)
    assert pcap.stat().st_size > 100
    tshark = shutil.which("tshark")
    if tshark is None:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail("tshark missing under CI=true")
        pytest.skip("tshark not installed")
    bad = "_ws.malformed || _ws.expert.severity == error"
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-Y", bad], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
    count = subprocess.run(
        [tshark, "-r", str(pcap)], capture_output=True, text=True, check=True, timeout=60
    ).stdout.count("\n")
    assert count >= 6  # both scripts' handshakes at least


# ----------------------------------------------------- features synack does not have
@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "+0 < S. 0:0(0) ack 1 win 65535 <mss 1000,FO abcd1234abcd1234,nop,nop>",
            "the FO option needs TCP Fast Open (RFC 7413), which synack does not implement",
        ),
        (
            "+0 setsockopt(4, SOL_TCP, TCP_FASTOPEN, [1], 4) = 0",
            "setsockopt TCP_FASTOPEN needs TCP Fast Open (RFC 7413)",
        ),
        (
            "+0 setsockopt(4, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0",
            "setsockopt SO_ZEROCOPY needs MSG_ZEROCOPY",
        ),
        ("+0 send(4, ..., 100, MSG_ZEROCOPY) = 100", "needs MSG_ZEROCOPY"),
        (
            "+0 setsockopt(4, SOL_TCP, TCP_MD5SIG, [1], 4) = 0",
            "needs TCP MD5 signatures (RFC 2385)",
        ),
    ],
)
def test_a_missing_feature_fails_with_one_line_naming_it(line: str, message: str) -> None:
    res = run(PRE + line + "\n")
    assert res.failure is not None and res.failure.line == 8, res.report()
    assert message in res.failure.message and "\n" not in res.failure.message
    assert "parse error" not in res.failure.message


def test_ipv6_runs_and_an_unknown_ip_version_is_named() -> None:
    """IPv6 runs (tests/test_packetdrill_ipv6.py has the rest); a value packetdrill
    does not know fails at its line."""
    assert run("--ip_version=ipv6\n" + PRE).failure is None
    res = run("--ip_version=ipv5\n" + PRE)
    assert res.failure is not None and res.failure.line == 1
    assert res.failure.message == (
        "option --ip_version needs one of ipv4, ipv4-mapped-ipv6, ipv6, got 'ipv5'"
    )


def test_fast_open_option_parses_with_and_without_cookie() -> None:
    script = parse(
        "0 < S 0:0(0) win 1000 <mss 1000,FO,nop,nop>\n"
        "+0 < S 0:0(0) win 1000 <FO 0xabcdef0123456789,FOEXP>\n"
    )
    opts = [o for ev in script.events for o in ev.action.options]  # type: ignore[union-attr]
    fo = [o for o in opts if o.kind in ("FO", "FOEXP")]
    assert [(o.kind, o.cookie.hex()) for o in fo] == [
        ("FO", ""),
        ("FO", "abcdef0123456789"),
        ("FOEXP", ""),
    ]


def test_print_and_constants_in_code_blocks_are_reported() -> None:
    res = run(
        PRE + "+0 %{\nprint('ca', tcpi_ca_state, TCP_CA_Loss)\n"
        "assert tcpi_snd_ssthresh == TCP_INFINITE_SSTHRESH\n}%\n"
    )
    assert res.status == "PASS", res.report()
    assert any(n.endswith("print: ca 0 4") for n in res.notes), res.notes


def test_msghdr_iovecs_are_summed_and_noecn_is_no_ecn() -> None:
    res = run(
        PRE + "+0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{iov_base=..., "
        "iov_len=300}, {iov_base=..., iov_len=200}], msg_flags=0}, 0) = 500\n"
        "+0 >[noecn] P. 1:501(500) ack 1\n"
    )
    assert res.status == "PASS", res.report()


def test_epoll_wait_names_the_events_it_got() -> None:
    res = run(
        PRE + "+0 epoll_create(1) = 5\n"
        "+0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLOUT|EPOLLET, fd=4}) = 0\n"
        "+0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1\n"
    )
    assert res.failure is not None and res.failure.line == 10
    assert (
        "expected [{events=EPOLLIN, fd=4}] but got [{events=EPOLLOUT, fd=4}]" in res.failure.message
    )


@pytest.mark.parametrize("profile", ["rfc", "linux"])
def test_msg_eor_keeps_records_apart(profile: str) -> None:
    """Corked, two writes coalesce into one segment unless the first ends a record."""
    corked = PRE + "+0 setsockopt(4, SOL_TCP, TCP_CORK, [1], 4) = 0\n"
    two = (
        "+0 send(4, ..., 300, {}) = 300\n+0 write(4, ..., 300) = 300\n"
        "+0 setsockopt(4, SOL_TCP, TCP_CORK, [0], 4) = 0\n"
    )
    together = run(corked + two.format(0) + "+0 > P. 1:601(600) ack 1\n", profile)
    assert together.status == "PASS", together.report()
    apart = run(
        corked + two.format("MSG_EOR") + "+0 > P. 1:301(300) ack 1\n+0 > P. 301:601(300) ack 1\n",
        profile,
    )
    assert apart.status == "PASS", apart.report()


def test_minshall_nagle_sends_a_tail_when_no_small_segment_is_out() -> None:
    """Linux (tcp_minshall_check): a full segment in flight does not hold a partial one;
    the RFC profile's Nagle (RFC 9293 §3.7.4) would, were Nagle on there."""
    script = (
        PRE + "+0 write(4, ..., 1200) = 1200\n+0 > . 1:1001(1000) ack 1\n"
        "+0 > P. 1001:1201(200) ack 1\n"
    )
    assert run(script, "linux").status == "PASS"
    res = run(
        PRE + "+0 write(4, ..., 300) = 300\n+0 > P. 1:301(300) ack 1\n"
        "+0 write(4, ..., 300) = 300\n+0 > P. 301:601(300) ack 1\n",
        "linux",
    )
    failed_at(res, 11)  # the second small one waits for the first's ACK: the first's
    assert res.failure is not None and res.failure.actual is not None  # RTO comes first
    assert " 1:301(300)" in res.failure.actual
