"""The simulator's segments mode (#18) changes the cost, never the result.

``Network(segments=True)`` lets two stacks hand each other decoded segments
instead of encoded packets.  Each seeded scenario here runs twice, with the mode
off and on, over a path that delays, jitters, loses, duplicates, reorders,
queues and (in some runs) corrupts and ECN-marks packets, with random TCP
options, several connections, data both ways, a slow reader and a close from
either end.  Every packet either stack sends (encoded after the fact in segments
mode), every byte either application reads, every trace record and every
counter of the network, the stacks and the connections must be the same.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.wire.packet import encode_ip_tcp


def _config(rng: random.Random) -> TcpConfig:
    scaling = rng.random() < 0.7
    return TcpConfig(
        timestamps=rng.random() < 0.7,
        sack=rng.random() < 0.7,
        window_scaling=scaling,
        ecn=rng.choice(["on", "passive", "off"]),
        delayed_ack=rng.choice([0.0, 0.04, 0.2]),
        rcv_buf=rng.choice([4096, 20000, 65535] + ([1 << 20] if scaling else [])),
        snd_buf=rng.choice([8192, 1 << 16, 1 << 20]),
        keepalive=rng.random() < 0.2,
        keepalive_idle=2.0,
        keepalive_interval=1.0,
        rto_min=0.2,
        rto_initial=0.5,
    )


def _path(rng: random.Random) -> PathConfig:
    rate = rng.choice([None, 2e6, 20e6])
    return PathConfig(
        delay=rng.choice([0.001, 0.01, 0.03]),
        jitter=rng.choice([0.0, 0.0, 0.003]),
        loss=rng.choice([0.0, 0.0, 0.01, 0.05]),
        duplicate=rng.choice([0.0, 0.01]),
        reorder=rng.choice([0.0, 0.02]),
        corrupt=rng.choice([0.0, 0.0, 0.005]),
        rate_bps=rate,
        queue_bytes=rng.choice([None, 30_000]) if rate else None,
        ecn_mark=rate is not None and rng.random() < 0.3,
        ecn_threshold_bytes=6000,
    )


def _record_output(st: Stack, out: list[bytes]) -> None:
    """Log every packet ``st`` sends, whichever way the network asks for it."""
    whole, segs = st.packets_to_send, st.segments_to_send

    def packets_to_send(now: float) -> list[bytes]:
        pkts = whole(now)
        out.extend(pkts)
        return pkts

    def segments_to_send(now: float) -> list[Any]:
        items = segs(now)
        out.extend(encode_ip_tcp(*i) if isinstance(i, tuple) else i for i in items)
        return items

    st.packets_to_send = packets_to_send  # type: ignore[method-assign]
    st.segments_to_send = segments_to_send  # type: ignore[method-assign]


def _run(
    seed: int, segments: bool, *, ipv6: bool = False, slow_path: bool = False
) -> dict[str, Any]:
    rng = random.Random(seed)
    sc = Scenario(
        seed,
        path=_path(rng),
        client_config=_config(rng),
        server_config=_config(rng),
        record_wire=False,
        ipv6=ipv6,
        segments=segments,
    )
    if slow_path:
        sc.server.fast_path = False
    sent: dict[str, list[bytes]] = {"client": [], "server": []}
    _record_output(sc.client, sent["client"])
    _record_output(sc.server, sent["server"])
    reply = rng.randbytes(rng.choice([0, 5000, 60_000]))
    sc.listen(80, reply, read=rng.random() < 0.9, send_after_eof=rng.random() < 0.5)
    eps = [
        sc.connect(80, rng.randbytes(rng.randrange(1, 300_000)))
        for _ in range(rng.choice([1, 1, 2, 3]))
    ]
    if rng.random() < 0.3:
        sc.net.call_later(rng.uniform(0.05, 1.0), lambda now: eps[0].conn.abort(why="test"))
    sc.run(until=30.0)
    out: dict[str, Any] = {
        "now": sc.now,
        "sent": sent,
        "trace": sc.trace,
        "net": dict(sc.net.stats),
    }
    for name, st in (("client", sc.client), ("server", sc.server)):
        out[name + "_stats"] = dict(st.stats)
        out[name + "_conns"] = sorted(
            (c.name, c.state.name, c.stats.full()) for c in st.connections
        )
    out["client_eps"] = [(ep.sha256, ep.received_count, ep.closed, repr(ep.error)) for ep in eps]
    out["server_eps"] = sorted(
        (ep.sha256, ep.received_count, ep.closed, repr(ep.error)) for ep in sc.server_endpoints
    )
    return out


CASES = (
    [(seed, False, False) for seed in range(30)]
    + [(seed, True, False) for seed in range(30, 42)]
    + [(seed, False, True) for seed in range(42, 48)]
)


@pytest.mark.parametrize(("seed", "ipv6", "slow_path"), CASES)
def test_segments_mode_changes_nothing_observable(seed: int, ipv6: bool, slow_path: bool) -> None:
    codec = _run(seed, False, ipv6=ipv6, slow_path=slow_path)
    direct = _run(seed, True, ipv6=ipv6, slow_path=slow_path)
    for key in codec:
        assert direct[key] == codec[key], key
    assert codec["net"]["delivered"] > 5


def test_segments_mode_skips_the_codec_for_data() -> None:
    """In segments mode established data and ACKs travel undecoded (receive_segment
    takes them without decoding); in the default mode every packet is decoded."""
    calls = {True: 0, False: 0}
    for segments in (False, True):
        sc = Scenario(1, path=PathConfig(delay=0.01), record_wire=False, segments=segments)

        def counting(
            packet: bytes,
            now: float,
            *,
            _seg: bool = segments,
            _decoded: Any = sc.server.receive_packet,
        ) -> None:
            calls[_seg] += 1
            _decoded(packet, now)

        sc.server.receive_packet = counting  # type: ignore[method-assign]
        sc.listen(80)
        sc.connect(80, bytes(200_000))
        sc.run(until=10.0)
        assert sc.server_endpoint.received_count == 200_000
    assert calls[False] > 100
    assert calls[True] <= 4  # the handshake's ACK and the FINs' peers: to a listener


def test_a_tap_sees_every_packet_in_segments_mode() -> None:
    """A tap (a capture, record_wire) asks for bytes: it gets the same packets."""
    runs = []
    for segments in (False, True):
        sc = Scenario(3, path=PathConfig(delay=0.01, loss=0.02), segments=segments)
        sc.listen(80, b"x" * 3000)
        sc.connect(80, bytes(50_000))
        sc.run(until=20.0)
        runs.append([(w.t, w.kind, w.src, w.dst, w.seg, w.reason) for w in sc.wire])
    assert runs[0] == runs[1]
    assert len(runs[0]) > 50
