"""explain: the narration of a trace names what happened, why, and the concept IDs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synack.commands.main import main
from synack.scenarios.labs import LABS
from synack.scenarios.scenario import Scenario, is_synack
from synack.tcp.config import TcpConfig
from synack.trace.load import load_trace
from synack.trace.model import analyze
from synack.trace.narrate import explain, render


def lab_text(name: str, **kw: bool) -> str:
    run = LABS[name].run()
    return "\n".join(render(run.trace, run.roles, **kw))


def test_handshake_segments_are_named_with_concepts_and_rfc() -> None:
    text = lab_text("handshake")
    assert re.search(
        r"-> server\s+\[S\] seq=0 len=0 .*\n\s+SYN: asks to open.*\[C6 C17; "
        r"RFC 9293 §3\.5",
        text,
    )
    assert re.search(r"\[S\.\] seq=0 ack=1 .*\n\s+SYN-ACK: our own ISN .*\[C7 C25", text)
    assert re.search(r"\[\.\] seq=1 ack=1 len=0.*\n\s+ACK of the SYN-ACK: third segment.*C8", text)
    assert "state SYN-RECEIVED -> ESTABLISHED" in text and "[C9;" in text


def test_retransmission_reason_names_the_timer_and_backoff() -> None:
    text = lab_text("timeout")
    found = re.findall(r"retransmission: the RTO fired \(backoff (\d), next RTO (\d+)s\)", text)
    assert found == [("1", "2"), ("2", "4"), ("3", "8"), ("4", "16")]
    assert "ERROR ETIMEDOUT" in text and "[C3; RFC 9293 §3.8.3]" in text


def test_lost_segments_and_fast_retransmit_are_explained() -> None:
    text = lab_text("fast-retransmit")
    assert "LOST client -> server" in text
    assert text.count("duplicate ACK (") >= 3
    assert re.search(
        r"loss state Disorder → Recovery: .*\n\s+three duplicate ACKs.*fast "
        r"retransmit.*\[C14 C18; RFC 5681 §3\.2",
        text,
        re.I,
    )
    assert "retransmission" in text


@pytest.mark.parametrize(
    ("lab", "concept", "phrase"),
    [
        ("rst-closed-port", "C21", "nobody listens"),
        ("rst-unread-data", "C23", "abortive close"),
        ("data-to-closed-socket", "C24", "already closed"),
        ("old-duplicate-syn", "C27", "belongs to no connection we know"),
    ],
)
def test_every_rst_says_why_it_was_sent(lab: str, concept: str, phrase: str) -> None:
    text = lab_text(lab)
    steps = re.split(r"\n(?=\s{0,4}\d+\.\d{4}s )", text)
    rst = [b for b in steps if "[R" in b.split("\n")[0]]
    assert rst, text
    assert any(
        phrase in b
        and concept in b
        and "never acknowledged and never retransmitted" in b
        and "C19" in b
        for b in rst
    ), rst


def test_relative_by_default_absolute_on_request() -> None:
    sc = Scenario(4, config=TcpConfig(msl=1.0))
    sc.listen(80, b"x" * 100, send_after_eof=True)
    ep = sc.connect(80, b"y" * 100)
    sc.run(until=10)
    rel = "\n".join(render(sc.trace))
    ab = "\n".join(render(sc.trace, absolute=True))
    assert "[S] seq=0 len=0" in rel
    assert f"[S] seq={ep.conn.iss} len=0" in ab
    synack = sc.sent(predicate=is_synack)[0].seg
    assert f"ack={synack.ack}" in ab and f"ack={synack.ack}" not in rel


def test_analysis_matches_sends_arrivals_and_losses() -> None:
    run = LABS["lost-synack"].run()
    a = analyze(run.trace, run.roles)
    synacks = [s for s in a.segments if s.kind == "SYN-ACK"]
    assert [s.lost for s in synacks][:1] == ["filter"]
    assert all(s.t_arrive is not None for s in synacks[1:])
    assert all(s.t_arrive > s.t for s in a.segments if s.t_arrive and s.t is not None)
    syn = next(s for s in a.segments if s.kind == "SYN")
    assert syn.t_arrive == pytest.approx(0.05)  # from the passive open
    assert {a.role(ip) for ip in a.hosts} == {"client", "server"}


def test_stray_and_wrapped_segments_are_called_out() -> None:
    text = lab_text("stray-segment-fixed-isn")
    assert "(not sent by any connection)" in text and "C15" in text
    text = lab_text("wraparound")
    assert re.search(r"sequence numbers have wrapped: .*\[C1 C18 C20 C16;", text)


def test_snapshots_give_both_ends_state_and_window() -> None:
    run = LABS["zero-window"].run()
    a = analyze(run.trace, run.roles)
    zero = [s for s in a.segments if s.win == 0 and s.kind == "ACK"]
    assert zero
    snap = zero[0].snapshot
    assert snap["10.0.0.2"]["rcv_wnd"] == 0 and snap["10.0.0.1"]["state"] == "FIN-WAIT-1"
    first = a.segments[0].snapshot
    assert first["10.0.0.2"]["state"] == "LISTEN"


def test_explain_command_reads_a_demo_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    assert main(["demo", "-q", "--loss", "0.2", "--seed", "3", "--trace", str(trace)]) == 0
    capsys.readouterr()
    svg, mmd, pcap = tmp_path / "d.svg", tmp_path / "d.mmd", tmp_path / "r.pcapng"
    assert (
        main(["explain", str(trace), "--svg", str(svg), "--mermaid", str(mmd), "--pcap", str(pcap)])
        == 0
    )
    out = capsys.readouterr().out
    assert "SYN: asks to open" in out and "[C6 C17" in out and "concepts" in out
    assert svg.read_text().startswith("<svg") and mmd.read_text().startswith("sequenceDiagram")
    assert pcap.stat().st_size > 100
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0}\n')
    assert main(["explain", str(bad)]) == 2
    assert "not a trace record" in capsys.readouterr().err


def test_demo_explain_flag_narrates() -> None:
    import io

    from synack.commands.demo import run_demo
    from synack.commands.main import build_parser

    out = io.StringIO()
    assert run_demo(build_parser().parse_args(["demo", "--explain", "--bytes", "500"]), out) == 0
    text = out.getvalue()
    assert "SYN: asks to open" in text and "RFC 9293" in text and "summary" in text


def test_load_trace_round_trips(tmp_path: Path) -> None:
    run = LABS["handshake"].run()
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in run.trace) + "\n")
    assert load_trace(p) == json.loads(json.dumps(run.trace))
    _, steps = explain(load_trace(p))
    assert steps and all(s.render() for s in steps)


def test_progress_bar_draws_and_does_not_change_the_run() -> None:
    import io

    pytest.importorskip("rich")
    from synack.commands.progress import TransferProgress, print_summary
    from synack.sim import PathConfig

    def run(with_bar: bool) -> tuple[list[dict[str, object]], str]:
        sc = Scenario(9, path=PathConfig(delay=0.01, loss=0.02), config=TcpConfig(msl=1.0))
        sc.listen(80, b"s" * 200_000, send_after_eof=True)
        ep = sc.connect(80, b"c" * 200_000)
        stream = io.StringIO()
        bar = TransferProgress(
            400_000,
            lambda: ep.received_count + sum(e.received_count for e in sc.server_endpoints),
            lambda: 7,
            stream=stream,
            enabled=with_bar,
            interval=0.0,
        )
        with bar:
            sc.net.add_process(bar)
            sc.run(until=200)
            bar.finish(sc.now)
        return sc.trace, stream.getvalue()

    plain, _ = run(False)
    traced, drawn = run(True)
    assert plain == traced
    assert "400.0/400.0" in drawn and "retx 7" in drawn and "Mbit/s (virtual)" in drawn
    out = io.StringIO()
    print_summary([("bytes", "10", "intact")], out, title="summary")
    assert "summary" in out.getvalue() and "intact" in out.getvalue()
