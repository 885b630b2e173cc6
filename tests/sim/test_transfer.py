"""Bulk transfers over the simulated network (C1, C4): correct, and window-limited."""

from __future__ import annotations

import random

from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig


def test_c1_c4_ten_megabytes_over_100mbit_50ms_is_window_limited() -> None:
    """10 MB over 100 Mbit/s with a 50 ms RTT arrives intact; without window scaling the
    sender can never have more than 65535 bytes unacknowledged (C4), so the transfer
    cannot beat 65535 bytes per RTT, and it gets close to that bound."""
    data = random.Random(1).randbytes(10_000_000)
    sc = Scenario(
        1,
        path=PathConfig(delay=0.025, rate_bps=100e6, queue_bytes=1_000_000),
        config=TcpConfig.classic(),
    )
    sc.listen(80, send_after_eof=True)
    ep = sc.connect(80, data)
    sc.run(stop=lambda: bool(sc.server_endpoints) and sc.server_endpoint.eof, until=600)
    srv = sc.server_endpoint
    assert bytes(srv.received) == data
    elapsed = sc.now
    bound = len(data) / 65535 * 0.05  # one window per RTT
    assert elapsed >= bound
    assert elapsed < bound * 1.6, f"took {elapsed:.1f}s, window bound {bound:.1f}s"
    # Never more than one advertised window in flight: check every data segment sent.
    highest_ack = 0
    for w in sc.wire:
        if w.kind != "send" or w.seg is None:
            continue
        if w.src == "10.0.0.2":
            highest_ack = max(highest_ack, (w.seg.ack - ep.conn.iss) & 0xFFFFFFFF)
        elif w.seg.payload:
            end = (w.seg.seq - ep.conn.iss + len(w.seg.payload)) & 0xFFFFFFFF
            assert end - highest_ack <= 65535 + 1


def test_segments_larger_than_mss_out_and_in_for_offload_links() -> None:
    """A link with segmentation offload accepts 64 KB segments: the sender emits them,
    and the receiver takes a multi-MSS segment as one unit (TSO/GRO model)."""
    from synack.stack import Stack
    from synack.tcp.config import TcpConfig

    sc = Scenario(2, path=PathConfig(delay=0.01))
    big = Stack("10.0.0.1", max_segment_payload=65535, config=TcpConfig.classic())
    assert big.config.max_segment_payload == 65535
    sc.client.config = big.config
    data = random.Random(2).randbytes(500_000)
    sc.listen(80, send_after_eof=True)
    ep = sc.connect(80, data)
    sc.run(until=100)  # past the client's TIME-WAIT (2*MSL = 60 s)
    assert bytes(sc.server_endpoint.received) == data and ep.closed
    sizes = [len(w.seg.payload) for w in sc.sent(src="10.0.0.1") if w.seg and w.seg.payload]
    assert max(sizes) > 1460 * 4, "offload-sized segments expected"


def test_mtu_sets_the_mss() -> None:
    from synack.stack import Stack

    assert Stack("10.0.0.1", mtu=1280).config.mss == 1240
    import pytest

    with pytest.raises(ValueError, match="mtu"):
        Stack("10.0.0.1", mtu=20)


def test_a_10_mb_bandwidth_delay_product_is_usable() -> None:
    """RFC 7323 §2 (C4): with window scaling and a 12 MiB receive buffer, an 800 Mbit/s
    path with a 100 ms RTT (a 10 MB bandwidth-delay product) is filled after slow
    start: goodput over the last 60 MB is at least 90% of the link, which needs more
    than 9 MB in flight; the peer advertises a window larger than 65535 << 7 bytes.
    (The bottleneck queue holds two BDPs, so the receive window, not loss, bounds the
    flight: this test is about the window, not loss recovery.)"""
    rate, rtt = 800e6, 0.1
    bdp = int(rate / 8 * rtt)
    cfg = TcpConfig(rcv_buf=12 << 20, snd_buf=32 << 20, msl=1.0)
    sc = Scenario(
        3,
        path=PathConfig(delay=rtt / 2, rate_bps=rate, queue_bytes=2 * bdp),
        config=cfg,
        record_wire=False,
    )
    sc.client.tracer = sc.server.tracer = None
    sc.trace = []
    total = 80_000_000
    sc.listen(80, send_after_eof=True, keep_data=False)
    ep = sc.connect(80, bytes(total), keep_data=False)
    marks: dict[str, float] = {}

    def watch(now: float) -> None:
        if sc.server_endpoints:
            got = sc.server_endpoint.received_count
            if got >= 20_000_000 and "start" not in marks:
                marks["start"] = now
            if got >= total and "end" not in marks:
                marks["end"] = now

    sc.net.add_process(watch)
    sc.run(stop=lambda: "end" in marks, until=60)
    goodput = (total - 20_000_000) * 8 / (marks["end"] - marks["start"])
    assert goodput >= 0.9 * rate, f"{goodput / 1e6:.0f} Mbit/s"
    assert ep.conn.snd_wnd > 65535 << 7
    assert ep.conn.info()["rto_fired"] == 0 and ep.conn.info()["retransmits"] == 0
