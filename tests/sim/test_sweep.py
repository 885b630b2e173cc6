"""Randomized sweep: many seeds x impairment profiles, full-duplex transfers (C1, C5,
C14, C3, C10-C13).

Each seed derives one impairment profile (a named mix, with magnitudes drawn
from the seed: loss up to 20 %, duplication, reordering, corruption, jitter, a
bottleneck) and two random payloads of at least 256 KB that both ends send at
the same time.  Every byte must arrive exactly once and in order, both ends
must reach CLOSED without an error, and no exception may escape.  A failure
names the seed and the profile; replay one with

    pytest "tests/sim/test_sweep.py::test_c1_c5_c14_sweep_full_duplex[seed-17]"

Seeds from 400 on run the same sweep over IPv6 (2001:db8::1 <-> 2001:db8::2, MSS
1440): ``[v6-seed-431]``.
"""

from __future__ import annotations

import random

import pytest

from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.tcp.states import State

SEEDS = 400
#: IPv6 seeds: eight per profile, after the IPv4 ones (issue #17).
SEEDS6 = range(SEEDS, SEEDS + 8 * 11)
MIN_BYTES = 256 * 1024

#: Which impairments each named profile turns on; magnitudes come from the seed.
KINDS: dict[str, tuple[str, ...]] = {
    "loss": ("loss",),
    "heavy-loss": ("heavy_loss",),
    "duplicate": ("duplicate",),
    "reorder": ("reorder",),
    "corrupt": ("corrupt",),
    "jitter": ("jitter",),
    "loss+reorder": ("loss", "reorder", "jitter"),
    "dup+corrupt": ("duplicate", "corrupt"),
    "everything": ("loss", "duplicate", "reorder", "corrupt", "jitter"),
    "harsh": ("heavy_loss", "duplicate", "reorder", "corrupt", "jitter"),
    "bottleneck": ("bottleneck", "loss"),
}
NAMES = sorted(KINDS)


def profile(seed: int) -> tuple[str, PathConfig, int, int]:
    """(profile name, path config, bytes client->server, bytes server->client)."""
    rnd = random.Random(f"sweep-profile-{seed}")
    name = NAMES[seed % len(NAMES)]
    kinds = KINDS[name]
    delay = rnd.uniform(0.005, 0.02)
    kw: dict[str, float | int] = {"delay": delay}
    if "loss" in kinds:
        kw["loss"] = rnd.uniform(0.02, 0.08)
    if "heavy_loss" in kinds:
        kw["loss"] = rnd.uniform(0.1, 0.2)
    if "duplicate" in kinds:
        kw["duplicate"] = rnd.uniform(0.03, 0.15)
    if "reorder" in kinds:
        kw["reorder"] = rnd.uniform(0.03, 0.15)
        kw["reorder_delay"] = rnd.uniform(0.001, 0.01)
    if "corrupt" in kinds:
        kw["corrupt"] = rnd.uniform(0.03, 0.1)
    if "jitter" in kinds:
        kw["jitter"] = rnd.uniform(0.001, delay / 2)
    if "bottleneck" in kinds:
        kw["rate_bps"] = rnd.choice([2e6, 10e6, 50e6])
        kw["queue_bytes"] = rnd.choice([20_000, 60_000, 200_000])
    up = MIN_BYTES + rnd.randrange(0, 256 * 1024)
    down = MIN_BYTES + rnd.randrange(0, 256 * 1024)
    return name, PathConfig(**kw), up, down  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(SEEDS), ids=lambda seed: f"seed-{seed}")
def test_c1_c5_c14_sweep_full_duplex(seed: int) -> None:
    """C1, C5, C14 (and C10-C13 at the end): both directions at once over an
    impaired path; byte-exact, exactly once, in order; both ends CLOSED, no error."""
    sweep(seed, ipv6=False)


@pytest.mark.parametrize("seed", SEEDS6, ids=lambda seed: f"v6-seed-{seed}")
def test_c1_c5_c14_sweep_full_duplex_ipv6(seed: int) -> None:
    """The same sweep over IPv6: every packet IPv6, the same guarantees."""
    s = sweep(seed, ipv6=True)
    sent = [w for w in s.wire if w.kind == "send"]  # (corruption may hit the version)
    assert sent and all(":" in w.src and ":" in w.dst for w in sent)  # IPv6 only
    assert s.server.stats["segs_in"] > 0


def sweep(seed: int, *, ipv6: bool) -> Scenario:
    name, path, n_up, n_down = profile(seed)
    where = f"seed={seed} {'IPv6 ' if ipv6 else ''}profile={name} {path} up={n_up} down={n_down}"
    rnd = random.Random(seed)
    up, down = rnd.randbytes(n_up), rnd.randbytes(n_down)
    s = Scenario(seed, path=path, config=TcpConfig(msl=1.0), ipv6=ipv6)
    s.listen(80, payload=down)
    ep = s.connect(80, up)
    s.run(until=3600)
    srv_eps = s.server_endpoints
    assert len(srv_eps) == 1, f"{len(srv_eps)} accepted connections; {where}"
    srv = srv_eps[0]
    assert ep.error is None, f"client error {ep.error}; {where}"
    assert srv.error is None, f"server error {srv.error}; {where}"
    assert len(srv.received) == n_up, f"server got {len(srv.received)} of {n_up}; {where}"
    assert len(ep.received) == n_down, f"client got {len(ep.received)} of {n_down}; {where}"
    assert bytes(srv.received) == up, f"client->server stream differs; {where}"
    assert bytes(ep.received) == down, f"server->client stream differs; {where}"
    assert ep.eof and srv.eof, where
    assert ep.conn.state is State.CLOSED and srv.conn.state is State.CLOSED, (
        f"states {ep.conn.state}/{srv.conn.state}; {where}"
    )
    assert ep.closed and srv.closed, where
    assert s.client.connections == [] and s.server.connections == [], where
    # No live connection ever resets (no abort, no C23/C24 case here).  With
    # TIME-WAIT only 2 s long, a peer's backed-off retransmission may reach a stack
    # after the 4-tuple is gone: the stack's RST for it is legitimate (C24).
    rsts = [r for r in s.records("seg", dir="out") if r["flags"] & 0x04]
    assert all(r["iss"] is None and r["state"] == "CLOSED" for r in rsts), (
        f"a connection sent RST: {rsts}; {where}"
    )
    assert len(rsts) == s.client.stats["rst_sent"] + s.server.stats["rst_sent"], where
    # The sweep is not vacuous: every enabled impairment actually happened.
    st = s.net.stats
    if path.loss:
        assert st["dropped_loss"] > 0, where
    if path.duplicate:
        assert st["duplicated"] > 0, where
    if path.reorder:
        assert st["reordered"] > 0, where
    if path.corrupt:
        assert st["corrupted"] > 0, where
        bad = sum(v for k, v in (s.client.stats + s.server.stats).items() if "checksum" in k)
        assert bad > 0, f"corrupted packets were not caught by checksums; {where}"
    return s


def test_c1_c14_sweep_covers_every_profile() -> None:
    """C1, C14: the seed range exercises every named impairment profile (loss up to
    20 %, duplication, reordering, corruption, jitter, bottleneck) and sizes >= 256 KB."""
    names = {profile(seed)[0] for seed in range(SEEDS)}
    assert names == set(KINDS)
    assert {profile(seed)[0] for seed in SEEDS6} == set(KINDS)
    assert max(profile(seed)[1].loss for seed in range(SEEDS)) > 0.18
    assert min(min(profile(seed)[2:]) for seed in range(SEEDS)) >= MIN_BYTES
