"""The packetdrill lexer and parser: the grammar the corpus uses, and clear errors."""

from __future__ import annotations

import pytest

from helpers import ROOT
from synack.packetdrill.lexer import Kind, PacketdrillSyntaxError, tokenize
from synack.packetdrill.parser import (
    BinaryExpr,
    CallExpr,
    CodeSpec,
    CommandSpec,
    EllipsisExpr,
    IntExpr,
    ListExpr,
    PacketSpec,
    Script,
    StringExpr,
    StructExpr,
    SyscallSpec,
    TcpOption,
    TimeKind,
    WordExpr,
    parse,
    parse_file,
)

CORPUS = ROOT.parent / "shared" / "packetdrill"


def packets(sc: Script) -> list[PacketSpec]:
    out = [e.action for e in sc.events]
    assert all(isinstance(a, PacketSpec) for a in out)
    return [a for a in out if isinstance(a, PacketSpec)]


def syscalls(sc: Script) -> list[SyscallSpec]:
    out = [e.action for e in sc.events]
    assert all(isinstance(a, SyscallSpec) for a in out)
    return [a for a in out if isinstance(a, SyscallSpec)]


def kinds(text: str) -> list[tuple[Kind, str]]:
    return [(t.kind, t.text) for t in tokenize(text).tokens[:-1]]


# ------------------------------------------------------------------------------ lexer
def test_lexer_splits_time_specs_without_eating_ellipses() -> None:
    toks = kinds("+0...0.200 +.01~+.015 * 0x2")
    assert toks == [
        (Kind.PUNCT, "+"),
        (Kind.NUMBER, "0"),
        (Kind.PUNCT, "..."),
        (Kind.NUMBER, "0.200"),
        (Kind.PUNCT, "+"),
        (Kind.NUMBER, ".01"),
        (Kind.PUNCT, "~"),
        (Kind.PUNCT, "+"),
        (Kind.NUMBER, ".015"),
        (Kind.PUNCT, "*"),
        (Kind.NUMBER, "0x2"),
    ]
    values = [t.value for t in tokenize("0x2 .5 7").tokens[:-1]]
    assert values == [2, 0.5, 7]


def test_lexer_keeps_raw_blocks_and_comments_with_lines() -> None:
    text = (
        '// first\n--mss=1000\n`a\n b`\n/* block\ncomment */ %{ x = 1\n}% "s\\n"\n'
        "+0 > S. 0:0(0) // trailing\n"
    )
    lexed = tokenize(text)
    toks = lexed.tokens
    assert (toks[0].kind, toks[0].text, toks[0].line) == (Kind.OPTION, "mss=1000", 2)
    assert (toks[1].kind, toks[1].text, toks[1].line) == (Kind.COMMAND, "a\n b", 3)
    assert (toks[2].kind, toks[2].text, toks[2].line) == (Kind.CODE, " x = 1\n", 6)
    assert (toks[3].kind, toks[3].text, toks[3].line) == (Kind.STRING, "s\n", 7)
    assert toks[4].line == 8
    assert [(c.line, c.text) for c in lexed.comments] == [
        (1, "first"),
        (5, "block\ncomment"),
        (8, "trailing"),
    ]
    # "S." is a word and an adjacent dot; the dot after whitespace is separate.
    s_tok, dot = toks[7], toks[8]
    assert (s_tok.text, dot.text, dot.spaced) == ("S", ".", False)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("+0 `never closed\n\n", 1, "unterminated backtick command"),
        ("\n\n+0 %{ assert 1\n", 3, "unterminated %{ block"),
        ("0\n+0 @\n", 2, "unexpected character '@'"),
        ("+0 read(3, ..., 12ab) = 1\n", 1, "malformed number '12ab'"),
        ('+0 write(3, "abc\n', 1, "unterminated string"),
        ("/* open\n\n", 1, "unterminated /* comment"),
    ],
)
def test_lexer_errors_name_file_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(PacketdrillSyntaxError) as exc:
        tokenize(text, "x.pkt")
    assert exc.value.line == line
    assert problem in exc.value.problem
    assert str(exc.value).startswith(f"x.pkt:{line}: ")


# ----------------------------------------------------------------------------- parser
def test_script_layout_options_init_events_cleanup() -> None:
    sc = parse(
        "--tolerance_usecs=10000\n--strict_segments\n`init one`\n`init two`\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+1 `timed command`\n+0 %{ assert tcpi_snd_cwnd == 10 }%\n`cleanup`\n"
    )
    assert sc.options == [("tolerance_usecs", "10000", 1), ("strict_segments", "", 2)]
    assert [c.text for c, _ in sc.init_commands] == ["init one", "init two"]
    assert [c.text for c, _ in sc.cleanup_commands] == ["cleanup"]
    assert [e.line for e in sc.events] == [5, 6, 7]
    assert isinstance(sc.events[1].action, CommandSpec)
    code = sc.events[2].action
    assert isinstance(code, CodeSpec)
    assert "tcpi_snd_cwnd" in code.text


def test_time_specs() -> None:
    sc = parse(
        "0 close(3) = 0\n1.5 close(3) = 0\n+.1 close(3) = 0\n*  > . 1:1(0) ack 1\n"
        "+.01~+.015 > . 1:1(0) ack 1\n2~3 > . 1:1(0) ack 1\n"
        "+.1...0.200 read(3, ..., 10) = 10\n"
    )
    t = [e.time for e in sc.events]
    assert (t[0].kind, t[0].usecs) == (TimeKind.ABSOLUTE, 0)
    assert (t[1].kind, t[1].usecs) == (TimeKind.ABSOLUTE, 1_500_000)
    assert (t[2].kind, t[2].usecs) == (TimeKind.RELATIVE, 100_000)
    assert t[3].kind is TimeKind.ANY
    assert (t[4].kind, t[4].usecs, t[4].end_usecs) == (TimeKind.RELATIVE_RANGE, 10_000, 15_000)
    assert (t[5].kind, t[5].usecs, t[5].end_usecs) == (
        TimeKind.ABSOLUTE_RANGE,
        2_000_000,
        3_000_000,
    )
    call = sc.events[6].action
    assert isinstance(call, SyscallSpec)
    assert call.blocking
    assert call.end is not None and call.end.usecs == 200_000
    assert sc.events[6].time.usecs == 100_000


def test_packet_lines() -> None:
    sc = parse(
        "0 < S 0:0(0) win 32792 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>\n"
        "+0 > S. 0:0(0) ack 1 <...>\n"
        "+0 < . 1:1(0) ack 1 win 257 <sack 1461:2921 3001:4001,nop,nop>\n"
        "+0 > P. 1:1001(1000) ack 1\n+0 < - 1:1001(1000) win 20000\n"
        "+0 < 40000>8081 FP. 7:9(2) ack 3 win 5 urg 1 <eol>\n"
        "+0 > R 1:1(0)\n"
    )
    syn, synack, sack, data, noflags, ports, rst = packets(sc)
    assert (syn.direction, syn.flags, syn.seq, syn.end, syn.length, syn.ack, syn.win) == (
        "<",
        "S",
        0,
        0,
        0,
        None,
        32792,
    )
    assert syn.options == (
        TcpOption("mss", 1000),
        TcpOption("sackOK"),
        TcpOption("TS", val=100, ecr=0),
        TcpOption("nop"),
        TcpOption("wscale", 7),
    )
    assert (synack.flags, synack.ack, synack.options) == ("S.", 1, None)
    assert sack.options is not None
    assert sack.options[0] == TcpOption("sack", blocks=((1461, 2921), (3001, 4001)))
    assert (data.flags, data.seq, data.end, data.length, data.options) == ("P.", 1, 1001, 1000, ())
    assert noflags.flags == ""
    assert (ports.src_port, ports.dst_port, ports.flags, ports.urg) == (40000, 8081, "FP.", 1)
    assert (rst.flags, rst.ack) == ("R", None)
    assert "sack 1461:2921 3001:4001" in sack.describe()


def test_ip_ecn_codepoints() -> None:
    inbound, outbound = packets(
        parse("0 < [ce] P. 1:2(1) ack 1 win 5\n+0 > (ect01) WP. 1:2(1) ack 2\n")
    )
    assert (inbound.ecn, outbound.ecn, outbound.flags) == ("ce", "ect01", "PW.")
    assert inbound.describe().startswith("< [ce] P. 1:2(1)")


def test_syscall_arguments_results_errnos_and_notes() -> None:
    sc = parse(
        "0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n"
        "+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
        "+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n"
        "+0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1100], [4]) = 0\n"
        '+0 write(4, "abc"..., 9) = 9\n'
        "+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080)}, 16) = 0\n"
        "+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)\n"
    )
    setopt, fcntl, connect, getopt, write, bind, getfl = syscalls(sc)
    assert setopt.args == (
        IntExpr(3, "3"),
        WordExpr("SOL_SOCKET"),
        WordExpr("SO_REUSEADDR"),
        ListExpr((IntExpr(1, "1"),)),
        IntExpr(4, "4"),
    )
    assert fcntl.args[2] == BinaryExpr("|", WordExpr("O_RDWR"), WordExpr("O_NONBLOCK"))
    assert connect.args[1] == EllipsisExpr()
    assert (connect.result, connect.errno, connect.note) == (
        IntExpr(-1, "-1"),
        "EINPROGRESS",
        "Operation now in progress",
    )
    assert getopt.args[4] == ListExpr((IntExpr(4, "4"),))
    assert write.args[1] == StringExpr("abc", repeat=True)
    addr = bind.args[1]
    assert isinstance(addr, StructExpr)
    port = addr.items[1]
    assert port == BinaryExpr(
        "=", WordExpr("sin_port"), CallExpr("htons", (IntExpr(8080, "8080"),))
    )
    assert (getfl.result, getfl.note) == (IntExpr(2, "0x2"), "flags O_RDWR")
    assert not setopt.blocking


def test_one_event_may_span_lines_and_events_need_no_newlines() -> None:
    sc = parse("0 setsockopt(3,\n  SOL_SOCKET,\n  SO_REUSEADDR, [1], 4) = 0 +0 close(3) = 0\n")
    assert [e.line for e in sc.events] == [1, 3]


def test_failure_comment_names_the_next_event() -> None:
    sc = parse("0 close(3) = 0\n\n// Failure: runtime error in close call: .*\n\n+0 close(3) = 0\n")
    ef = sc.expected_failure
    assert ef is not None
    assert (ef.line, ef.comment_line) == (5, 3)
    assert ef.matches("runtime error in close call: Expected result 0 but got -1")
    assert not ef.matches("error handling packet: Timed out waiting for packet")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("0 < S 0:10(5) win 1\n", 1, "inconsistent sequence numbers: 0:10 is 10 bytes"),
        ("0 close(3) = 0\n+0 < . 1:1(0) win 257\n", 2, "inbound packet with the ACK flag"),
        ("0 close(3) = 0\n+0 < . 1:1(0) ack 1\n", 2, "window must be specified for inbound"),
        ("0 close(3) = 0\n+0~+1 < S 0:0(0) win 1\n", 2, "only allowed on outbound packets"),
        ("0 close(3) = 0\n* < S 0:0(0) win 1\n", 2, "only allowed on outbound packets"),
        ("0 close(3) = 0\n+0...1 > S 0:0(0)\n", 2, "'...' (blocking) is only allowed on system"),
        ("0 close(3) = 0\n+0 > S 0:0(0) <mss 1460,fastopen>\n", 2, "unsupported TCP option"),
        ("0 close(3) = 0\n+0 > SX. 0:0(0)\n", 2, "bad TCP flags 'SX'"),
        ("0 close(3) = 0\n--mss=1000\n", 2, "must come before the first event"),
        ("0 close(3) = 0\n`untimed`\n+0 close(3) = 0\n", 2, "needs a time"),
        ("0 close(3) 0\n", 1, "expected '= RESULT'"),
        ("// nothing\n", 1, "script has no events"),
        ("0 close(3) = 0\n+2~+1 > . 1:1(0) ack 1\n", 2, "must not end before it starts"),
        ("0 close(3) = 0\n+0 > . 1:1(0) ack 1 <mss 1460\n", 2, "expected ',' or '>'"),
        ("0 close(3) = 0\nclose(3) = 0\n", 2, "expected a time at the start of an event"),
        ("0 close(3) = 0\n+0 > . 1:1(0) win 70000\n", 2, "window 70000 out of range"),
        ("0 close(3) = 0\n+0 > . 1:1(0) <sack>\n", 2, "needs at least one block"),
        ("0 close(3) = 0\n+0 > [cee] . 1:1(0)\n", 2, "unknown IP ECN codepoint 'cee'"),
        ("0 close(3) = 0\n+0 < [ect01] . 1:1(0) ack 1 win 1\n", 2, "only be used with outbound"),
        ("// Failure: x\n", 1, "script has no events"),
    ],
)
def test_parse_errors_name_file_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(PacketdrillSyntaxError) as exc:
        parse(text, "bad.pkt")
    assert (exc.value.path, exc.value.line) == ("bad.pkt", line)
    assert problem in exc.value.problem, exc.value.problem
    assert str(exc.value) == f"bad.pkt:{line}: {exc.value.problem}"


def test_describe_round_trips_the_essentials() -> None:
    sc = parse("0 > P. 1:1001(1000) ack 1 win 5 <nop,nop,TS val 1 ecr 2>\n")
    assert sc.events[0].describe() == "0 > P. 1:1001(1000) ack 1 win 5 <nop,nop,TS val 1 ecr 2>"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")
def test_every_corpus_script_parses() -> None:
    scripts = sorted(CORPUS.rglob("*.pkt"))
    assert len(scripts) == 39
    failures = {p.name: parse_file(p).expected_failure for p in scripts}
    assert {k for k, v in failures.items() if v is not None} == {
        "packet-timeout.pkt",
        "socket_err.pkt",
        "socket_wrong_err.pkt",
    }
    assert all(parse_file(p).events for p in scripts)
