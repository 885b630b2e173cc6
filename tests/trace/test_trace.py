"""The structured trace records timers set and cancelled and every cwnd change."""

from __future__ import annotations

import itertools

from synack.scenarios.scenario import CLIENT_IP, Scenario, has_data, is_syn
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig


def test_timer_set_and_cancel_follow_the_rto_of_a_lost_syn() -> None:
    """C2, C17: the SYN arms the RTO for t=1 s; it fires, is re-armed for t=3 s
    (doubled), and is cancelled when the SYN-ACK arrives."""
    sc = Scenario(1, path=PathConfig(delay=0.05))
    sc.listen(80)
    sc.drop_next(is_syn)
    ep = sc.connect(80, b"x")
    sc.run(until=2)
    mine = [r for r in sc.trace if r["conn"] == ep.conn.name and r.get("timer") == "rto"]
    kinds = [
        (r["ev"], round(r["t"], 3), round(r.get("at", 0), 3))
        for r in mine
        if r["ev"] in ("timer_set", "timer", "timer_cancel")
    ]
    assert kinds[:4] == [
        ("timer_set", 0.0, 1.0),
        ("timer", 1.0, 0.0),
        ("timer_set", 1.0, 3.0),
        ("timer_cancel", 1.1, 0.0),
    ]


def test_every_cwnd_change_is_traced() -> None:
    """Slow start grows cwnd on ACKs (RFC 5681 §3.1); a loss cuts it; each change is a
    ``cwnd`` record and the last record equals the connection's final cwnd."""
    sc = Scenario(2, path=PathConfig(delay=0.02), config=TcpConfig(msl=1.0))
    sc.listen(80, send_after_eof=True)
    sc.drop_next(has_data, src=CLIENT_IP)
    sc.net.call_at(0.2, lambda t: sc.drop_next(has_data, src=CLIENT_IP))
    ep = sc.connect(80, bytes(300_000), close_when_done=False)
    sc.run(until=3)
    recs = [r for r in sc.trace if r["ev"] == "cwnd" and r["conn"] == ep.conn.name]
    values = [r["cwnd"] for r in recs]
    assert len(values) > 5
    assert any(b > a for a, b in itertools.pairwise(values))  # growth
    assert any(b < a for a, b in itertools.pairwise(values))  # reduction
    assert values[-1] == ep.conn.cwnd and recs[-1]["ssthresh"] == ep.conn.ssthresh
    assert all(a != b for a, b in itertools.pairwise(recs))  # only on change
