"""Plots: time-sequence data, cwnd/RTT series, CSV always, PNG with matplotlib."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from synack.scenarios.labs import LABS
from synack.trace import plots
from synack.trace.model import analyze


def analysed(name: str):  # type: ignore[no-untyped-def]
    run = LABS[name].run()
    return analyze(run.trace, run.roles)


def test_time_sequence_marks_loss_retransmission_and_acks() -> None:
    run = analysed("fast-retransmit")
    ts = plots.time_sequence(run)
    assert ts is not None and run.role(ts.sender) == "client"
    kinds = [k for *_, k in ts.segments]
    assert kinds.count("lost") == 1 and kinds.count("retransmit") >= 1
    lost = next(s for s in ts.segments if s[3] == "lost")
    retx = next(s for s in ts.segments if s[3] == "retransmit")
    assert retx[1] == lost[1] and retx[0] > lost[0]  # same bytes, later
    acks = [a for _, a in ts.acks]
    assert acks == sorted(acks) and acks[-1] == 60002  # data + FIN, relative
    assert all(w >= a for (_, a), (_, w) in zip(ts.acks, ts.window, strict=True))


def test_zero_window_probes_and_window_edge() -> None:
    lab = LABS["zero-window"].run()
    ts = plots.time_sequence(analyze(lab.trace, lab.roles))
    assert ts is not None
    probes = [r for r in lab.trace if r.get("ev") == "seg" and r.get("why") == "zero-window probe"]
    assert sum(1 for *_, k in ts.segments if k == "probe") == len(probes) >= 1
    assert any(w == a for (_, a), (_, w) in zip(ts.acks, ts.window, strict=True))


def test_series_for_cwnd_and_rtt() -> None:
    run = analysed("slow-start")
    cc = plots.congestion_series(run)
    client = [w for _, c, w, _ in cc if c.startswith("10.0.0.1") and w]
    assert client[0] < max(client) and max(client) >= 4 * client[0]  # slow start grew it
    rtt = plots.rtt_series(run)
    assert rtt and all(r[5] >= 1.0 for r in rtt)  # RTO floor 1 s
    rto = plots.rtt_series(analysed("timeout"))
    assert [r[5] for r in rto if r[2] == "rto_backoff"] == [2.0, 4.0, 8.0, 16.0]


def test_csv_files_are_written_always(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    files, message = plots.write_plots(analysed("fast-retransmit"), tmp_path)
    assert message == plots.NO_MATPLOTLIB and ".venv/bin/pip install -e '.[plot]'" in message
    assert sorted(f.name for f in files) == ["cwnd.csv", "rtt.csv", "timeseq.csv"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "timeseq.csv").read_text())))
    assert {"segment", "ack", "window"} <= {r["what"] for r in rows}
    assert any(r["kind"] == "lost" for r in rows)
    assert not list(tmp_path.glob("*.png"))


def test_sack_blocks_are_plotted_when_the_trace_has_them() -> None:
    ts = plots.time_sequence(analysed("fast-retransmit"))
    assert ts is not None
    if not ts.sacks:
        pytest.skip("this build sends no SACK blocks")
    lost = next(s for s in ts.segments if s[3] == "lost")
    # every SACK block lies above the hole left by the lost segment
    assert all(left >= lost[2] for _, left, _ in ts.sacks)


def test_png_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    files, message = plots.write_plots(analysed("fast-retransmit"), tmp_path)
    assert message == ""
    for name in ("timeseq.png", "cwnd_rtt.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert (tmp_path / "timeseq.png") in files


def test_bbr_rate_series_and_plot(tmp_path: Path) -> None:
    """The BBR lab's trace has a rate record per round trip with BBR's state and its
    bandwidth and min-RTT estimates; rate.csv always, rate.png with matplotlib."""
    run = analysed("bbr-vs-cubic-random-loss")
    rows = plots.rate_series(run)
    states = {r[5] for r in rows if r[5]}
    assert {"Startup", "Drain", "ProbeBW_CRUISE"} <= states
    bbr = [r for r in rows if r[6]]
    assert bbr and max(r[6] for r in bbr) * 8 == pytest.approx(9.65e6, rel=0.05)
    assert all(0.05 <= r[8] <= 0.06 for r in bbr if r[8])
    files, _ = plots.write_plots(run, tmp_path)
    assert (tmp_path / "rate.csv") in files
    if plots.matplotlib_available():
        assert (tmp_path / "rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Labs without rate records get no rate files.
    files, _ = plots.write_plots(analysed("handshake"), tmp_path / "hs")
    assert not any(f.name.startswith("rate.") for f in files)
