"""Sequence diagrams: SVG (hand-written, well-formed XML) and Mermaid text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from synack.scenarios.labs import LABS
from synack.trace.diagram import render_mermaid, render_svg
from synack.trace.model import analyze

SVG = "{http://www.w3.org/2000/svg}"


def lab_run(name: str):  # type: ignore[no-untyped-def]
    run = LABS[name].run()
    return analyze(run.trace, run.roles)


def groups(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "seg" in (g.get("class") or "").split()]


def test_svg_has_two_timelines_arrows_states_and_timers() -> None:
    run = lab_run("lost-fin")
    root = ET.fromstring(render_svg(run, title="lost-fin"))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "client" in texts and "server" in texts
    assert len([ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "tl"]) == 2
    segs = groups(root)
    assert len(segs) == len(run.segments)
    assert [g.get("id") for g in segs] == [f"seg-{s.index}" for s in run.segments]
    states = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "state"]
    assert states[:3] == ["SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert "TIME-WAIT" in states and states.count("CLOSED") == 2
    timers = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "timer"]
    assert any("TIME-WAIT timer fired" in (t or "") for t in timers)
    # the lost FIN is drawn lost (dashed class, a cross) and its retransmission coloured
    lost = [g for g in segs if "lost" in (g.get("class") or "")]
    assert len(lost) == 1 and "F" in "".join(t.text or "" for t in lost[0].iter(f"{SVG}text"))
    assert lost[0].find(f"{SVG}path") is not None
    assert any("retx" in (g.get("class") or "") for g in segs)
    # each arrow carries flags, seq, ack, len and a tooltip with the narration
    label = "".join(t.text or "" for t in segs[0].iter(f"{SVG}text"))
    assert label.startswith("[S] seq=0") and "len=0" in label
    assert "SYN" in (segs[0].findtext(f"{SVG}title") or "")


def test_arrows_point_from_sender_to_receiver_and_down_in_time() -> None:
    run = lab_run("handshake")
    root = ET.fromstring(render_svg(run))
    xs = {}
    for ln in root.iter(f"{SVG}line"):
        if ln.get("class") == "tl":
            xs[len(xs)] = float(ln.get("x1") or 0)
    client_x, server_x = xs[0], xs[1]
    for g, s in zip(groups(root), run.segments, strict=True):
        line = g.find(f"{SVG}line")
        assert line is not None
        x1, y1, x2, y2 = (float(line.get(k) or 0) for k in ("x1", "y1", "x2", "y2"))
        assert y2 > y1
        assert (x1, x2) == ((client_x, server_x) if s.src == "10.0.0.1" else (server_x, client_x))


def test_long_pauses_are_folded_and_big_runs_elided() -> None:
    svg = render_svg(lab_run("timeout"))
    assert "s later" in svg
    big = lab_run("slow-start")
    root = ET.fromstring(render_svg(big, max_segments=40))
    assert len(groups(root)) == 40
    assert "more segments" in render_svg(big, max_segments=40)


def test_mermaid_sequence_diagram() -> None:
    run = lab_run("lost-synack")
    text = render_mermaid(run)
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert lines[1].startswith("    participant H0 as client 10.0.0.1")
    assert any(
        ln.startswith("    H0->>H1: [S] seq=0 len=0 win=65535 mss 1460,sackOK,TS val ")
        and ln.endswith(",wscale 5")
        for ln in lines
    )
    assert any(ln.startswith("    H1-xH0: [S.] seq=0 ack=1") and "LOST" in ln for ln in lines)
    assert any("(retransmission)" in ln for ln in lines)
    assert any(ln.startswith("    Note right of H1: SYN-RECEIVED") for ln in lines)
    assert any("retransmission timer (RTO) fired" in ln for ln in lines)
    assert not any(";" in ln.split(":", 1)[-1] for ln in lines[1:])


def test_stray_segment_is_drawn_as_stray() -> None:
    svg = render_svg(lab_run("old-duplicate-syn"))
    assert 'class="seg stray"' in svg and "(stray)" in svg
    assert "--)" in render_mermaid(lab_run("old-duplicate-syn"))
