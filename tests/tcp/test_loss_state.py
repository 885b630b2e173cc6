"""The sender's loss state (Open, Disorder, CWR, Recovery, Loss) and the seams between
timeout recovery, fast recovery and the tail loss probe (issue 13 faults 1 and 5).

Crafted segments against one Connection (the helpers of test_modern_crafted), and
one run on the simulated network for the blackout figure.  C18: lost data is
retransmitted; C2: the retransmission timeout."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import ROOT
from helpers.crafted import MSS_TS, Tcb
from helpers.modern import cfg, data_segs, established, seg_at
from synack.scenarios.scenario import Scenario
from synack.sim.path import PathConfig
from synack.tcp.config import TcpConfig
from synack.tcp.loss_state import (
    TRANSITIONS,
    TRIGGERS,
    CaState,
    IllegalLossTransition,
    LossState,
    check,
)
from synack.wire.segment import ACK, ECE

O, D, C, R, L = CaState  # noqa: E741 - the five states by initial


def ca(tcb: Tcb) -> CaState:
    return CaState(tcb.conn.info()["ca_state"])


def moves(tcb: Tcb) -> list[tuple[str, str, str]]:
    return [(r["old"], r["new"], r["trigger"]) for r in tcb.trace if r["ev"] == "ca_state"]


# ------------------------------------------------------------------ the table
def test_states_carry_linux_numbers_for_tcpi_ca_state() -> None:
    assert [int(s) for s in (O, D, C, R, L)] == [0, 1, 2, 3, 4]
    assert str(R) == "Recovery"


def test_every_trigger_in_the_table_is_explained() -> None:
    assert {t for _, t in TRANSITIONS} == set(TRIGGERS)


@pytest.mark.parametrize(
    ("old", "trigger", "new"),
    [
        (L, "loss_marked", R),  # RFC 6582 §4: no fast retransmit for pre-timeout losses
        (R, "loss_marked", R),  # one reduction per loss event
        (R, "ece", C),  # the recovery's cut answers ECE for that window too
        (O, "exit", O),  # nothing to end
        (L, "disorder", D),
    ],
)
def test_illegal_moves_raise(old: CaState, trigger: str, new: CaState) -> None:
    with pytest.raises(IllegalLossTransition):
        check(old, trigger, new)
    ls = LossState()
    ls.state = old
    with pytest.raises(IllegalLossTransition):
        ls.move(trigger, new)
    assert ls.state is old  # a refused move changes nothing


# ------------------------------------------------------------------ fault 1
def rto_then_acks(cc: str) -> tuple[Tcb, int, int]:
    """20 segments out, no ACK until the RTO fires; returns (tcb, cwnd, flight) at RTO."""
    tcb = established(cfg(congestion_control=cc, tlp=False))
    assert len(data_segs(tcb.send(bytes(20 * MSS_TS), 1.0))) == 10  # IW10
    cwnd = tcb.conn.cwnd
    flight = tcb.conn.info()["unacked"]
    t = tcb.conn.next_timer()
    assert t is not None
    tcb.fire(t)  # RTO: Loss, everything outstanding marked lost, one segment resent
    return tcb, cwnd, flight


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_first_acks_after_a_timeout_start_no_fast_recovery(cc: str) -> None:
    """Fault 1 (RFC 6582 §4, RFC 5681 §3.1, RFC 9438 §4.8): after an RTO the ACKs of the
    retransmissions, with SACK blocks for the originals that did arrive, must not start
    a second reduction; the sender stays in Loss, slow-starting from one segment, until
    SND.UNA passes the SND.NXT of the timeout."""
    tcb, cwnd, flight = rto_then_acks(cc)
    conn = tcb.conn
    assert ca(tcb) is L and conn.cwnd == MSS_TS
    ssthresh = conn.ssthresh
    if cc == "cubic":
        assert ssthresh == max(int(cwnd * 0.7), 2 * MSS_TS)
    else:
        assert ssthresh == max(flight // 2, 2 * MSS_TS)
    high = seg_at(10)  # the RTO-time SND.NXT (cwnd 10 segments went out)
    t = 4.0
    una = 1
    # The first segment's retransmission arrives; the peer also holds 3..9 (SACKed).
    for una in range(1, 10):
        t += 0.01
        tcb.ack(seg_at(una), t, sack=((seg_at(una + 2), high),) if una < 8 else ())
        assert conn.stats["recoveries"] == 0, f"fast recovery after RTO at una={una}"
        assert conn.ssthresh == ssthresh  # one reduction per loss event
        assert ca(tcb) is L
    tcb.ack(high, t + 0.01)
    assert ca(tcb) in (O, D)
    assert conn.ssthresh == ssthresh and conn.cwnd > MSS_TS  # slow start from 1 MSS
    assert ("Open", "Loss", "rto") in moves(tcb)
    assert any(m[0] == "Loss" and m[2] == "exit" for m in moves(tcb))


def test_cubic_wmax_survives_the_timeout_acks() -> None:
    """Fault 1, CUBIC: W_max is the window before the timeout, not a fraction of one
    segment left by a second reduction from cwnd = 1 MSS (RFC 9438 §4.6-4.8)."""
    tcb, cwnd, _ = rto_then_acks("cubic")
    for i in range(1, 11):
        tcb.ack(seg_at(i), 4.0 + i / 100)
    cc = tcb.conn.congestion
    assert cc.w_max == pytest.approx(cwnd / MSS_TS)  # type: ignore[attr-defined]


def test_timeout_inside_fast_recovery_keeps_its_ssthresh() -> None:
    """One reduction per loss event: an RTO while recovering cuts cwnd to one segment
    but keeps the recovery's ssthresh (Linux tcp_enter_loss); a repeated RTO without
    progress keeps it too."""
    tcb = established(cfg(tlp=False, rack=False))
    tcb.send(bytes(10 * MSS_TS), 1.0)
    for i in range(3):  # three SACKed duplicates: S0 lost, recovery
        tcb.ack(seg_at(0), 1.1 + i / 100, sack=((seg_at(1), seg_at(2 + i)),))
    conn = tcb.conn
    assert ca(tcb) is R
    ssthresh = conn.ssthresh
    t = conn.next_timer()
    assert t is not None
    tcb.fire(t)
    assert ca(tcb) is L and conn.ssthresh == ssthresh and conn.cwnd == MSS_TS
    t2 = conn.next_timer()
    assert t2 is not None
    tcb.fire(t2)  # backed off, no progress in between
    assert ca(tcb) is L and conn.ssthresh == ssthresh
    assert moves(tcb)[-2:] == [("Recovery", "Loss", "rto"), ("Loss", "Loss", "rto")]


# ------------------------------------------------------------------ fault 5
def probe_sent(cc: str = "newreno") -> tuple[Tcb, int]:
    """Five segments out; every ACK lost; the tail loss probe resends the last one."""
    tcb = established(cfg(congestion_control=cc))
    tcb.ack(seg_at(0), 0.2)  # an RTT sample so the PTO is armed
    tcb.send(bytes(5 * MSS_TS), 1.0)
    t = tcb.conn.next_timer()
    assert t is not None
    out = tcb.fire(t)
    assert data_segs(out) == [(seg_at(4), MSS_TS)]  # the probe: the last segment again
    assert tcb.conn.stats["tlp_probes"] == 1
    return tcb, t


def test_dsack_of_the_probe_means_nothing_was_lost() -> None:
    """Fault 5 (RFC 8985 §7.4.1): the ACK of everything arrives, then the D-SACK of the
    probe: only ACKs were lost, so no reduction.  Judging the probe before the SACK
    blocks, or at the ACK of exactly its end, cut ssthresh to 2 MSS."""
    tcb, t = probe_sent()
    conn = tcb.conn
    cwnd, ssthresh = conn.cwnd, conn.ssthresh
    tcb.ack(seg_at(5), t + 0.1)
    assert conn.ssthresh == ssthresh
    tcb.ack(seg_at(5), t + 0.11, sack=((seg_at(4), seg_at(5)),))  # the D-SACK
    assert conn.ssthresh == ssthresh and conn.cwnd >= cwnd
    assert not [r for r in tcb.trace if r.get("event") == "tlp_recovery"]
    assert conn.info()["dsacks_in"] == 1


def test_dsack_in_the_same_ack_as_the_probe_end() -> None:
    """The same, with the cumulative ACK and the D-SACK in one segment."""
    tcb, t = probe_sent()
    ssthresh = tcb.conn.ssthresh
    tcb.ack(seg_at(5), t + 0.1, sack=((seg_at(4), seg_at(5)),))
    tcb.send(bytes(MSS_TS), t + 0.2)
    tcb.ack(seg_at(6), t + 0.3)
    assert tcb.conn.ssthresh == ssthresh


def test_probe_that_repaired_a_loss_reduces_once_sized_on_its_flight() -> None:
    """RFC 8985 §7.4.2: the last segment was really lost and the probe repaired it: no
    D-SACK comes, and once data beyond the probe is acknowledged the sender reduces
    once, as fast recovery would, from the flight the probe covered (five segments),
    not from what was left after SND.UNA moved (RFC 5681 eq. 4)."""
    tcb, t = probe_sent()
    conn = tcb.conn
    tcb.ack(seg_at(5), t + 0.1)  # the probe's ACK: wait, a D-SACK may follow
    ssthresh = conn.ssthresh
    assert not [r for r in tcb.trace if r.get("event") == "tlp_recovery"]
    tcb.send(bytes(MSS_TS), t + 0.2)
    tcb.ack(seg_at(6), t + 0.3)  # beyond the probe, no D-SACK came: a loss was repaired
    assert conn.ssthresh < ssthresh
    assert conn.ssthresh == max(5 * MSS_TS // 2, 2 * MSS_TS)
    assert [r["trigger"] for r in tcb.trace if r["ev"] == "ca_state"][-2:] == ["tlp_repair", "exit"]


# ------------------------------------------------------------------ CWR and Disorder
def test_ecn_echo_is_cwr_until_the_window_is_acknowledged() -> None:
    """RFC 3168 §6.1.2: ECE reduces once and the sender is in CWR until SND.UNA passes
    the SND.NXT of that moment; a further ECE inside that window changes nothing."""
    tcb = established(cfg(ecn="on", tlp=False), flags=ECE)
    tcb.send(bytes(10 * MSS_TS), 1.0)
    tcb.ack(seg_at(1), 1.1, flags=ACK | ECE)
    assert ca(tcb) is C
    ssthresh = tcb.conn.ssthresh
    tcb.ack(seg_at(2), 1.11, flags=ACK | ECE)
    assert tcb.conn.ssthresh == ssthresh and tcb.conn.stats["ecn_reductions"] == 1
    tcb.ack(seg_at(10), 1.2)
    assert ca(tcb) is O


def test_duplicate_ack_is_disorder_then_open_again() -> None:
    """A SACK below DupThresh is Disorder (no loss decided); the ACK that fills the
    hole returns to Open without any reduction."""
    tcb = established(cfg(tlp=False, rack=False))
    tcb.send(bytes(6 * MSS_TS), 1.0)
    tcb.ack(seg_at(0), 1.1, sack=((seg_at(1), seg_at(2)),))
    assert ca(tcb) is D
    cwnd = tcb.conn.cwnd
    tcb.ack(seg_at(2), 1.12)
    assert ca(tcb) is O and tcb.conn.cwnd >= cwnd
    assert moves(tcb) == [("Open", "Disorder", "disorder"), ("Disorder", "Open", "in_order")]


# ------------------------------------------------------------------ blackout figure
BLACKOUT_RATE = 50_000_000


def blackout_run(cc: str) -> int:
    """Fault 1's figure: 50 Mbit/s, 40 ms RTT, one-BDP drop-tail queue; after 3 s every
    packet in both directions is lost for 0.6 s; bytes delivered in the 9.4 s after."""
    path = PathConfig(delay=0.02, rate_bps=BLACKOUT_RATE, queue_bytes=int(BLACKOUT_RATE * 0.04 / 8))
    config = TcpConfig(congestion_control=cc, rcv_buf=8 << 20, snd_buf=8 << 20, rto_min=0.2)
    s = Scenario(3, path=path, config=config, record_wire=False)
    s.client.tracer = s.server.tracer = None
    s.listen(80, keep_data=False)
    s.connect(80, bytes(100 << 20), keep_data=False)
    start, end = 3.0, 3.6

    def blackout(now: float, *_: Any) -> bool:
        return start <= now < end

    s.net.add_filter(blackout)
    s.run(until=end)
    (ep,) = s.server_endpoints
    before = ep.received_count
    s.run(until=end + 9.4)
    return ep.received_count - before


@pytest.mark.parametrize("cc", ["cubic", "newreno"])
def test_blackout_recovers_in_slow_start_not_a_second_reduction(cc: str) -> None:
    """After a 0.6 s blackout the sender times out once and slow-starts back; with the
    second fast recovery of fault 1 it crawled (measured 20.8 MB of a possible 58.8 in
    the 9.4 s after, against 51.4 MB without)."""
    got = blackout_run(cc)
    assert got >= 0.75 * BLACKOUT_RATE * 9.4 / 8, f"{got / 1e6:.1f} MB in 9.4 s"


def test_zero_window_acks_between_timeouts_are_no_new_loss_event() -> None:
    """Seam of faults 1 and 3: a peer that answers every retransmission with a zero
    window resets the retry count (it is alive) but acknowledges nothing, so the next
    timeout is the same loss event: ssthresh is kept, not recomputed from an empty
    pipe (which would leave 2 MSS)."""
    tcb, _, _ = rto_then_acks("newreno")
    conn = tcb.conn
    ssthresh = conn.ssthresh
    t = 4.0
    for _ in range(3):
        tcb.ack(seg_at(0), t, window=0)
        nxt = conn.next_timer()
        assert nxt is not None
        t = nxt
        tcb.fire(t)
        assert conn.ssthresh == ssthresh
    tcb.ack(seg_at(1), t + 0.1)  # progress
    nxt = conn.next_timer()
    assert nxt is not None
    tcb.fire(nxt)  # a timeout after progress in Loss: a new loss event
    assert conn.ssthresh != ssthresh


# ------------------------------------------------------------------ cwnd validation
@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_application_limited_sender_does_not_grow_cwnd(cc: str) -> None:
    """RFC 7661 §4, RFC 9438 §5.8 (Linux tcp_is_cwnd_limited): a sender that writes two
    segments per round trip never uses its initial window of ten, so fifty round trips
    of ACKs are no evidence for a larger one: cwnd stays at IW."""
    tcb = established(cfg(congestion_control=cc, tlp=False))
    iw = tcb.conn.cwnd
    t = 1.0
    for _ in range(50):
        tcb.send(bytes(2 * MSS_TS), t)
        tcb.ack(tcb.conn.snd_nxt, t + 0.1)
        t += 0.2
    assert tcb.conn.cwnd == iw


def test_cwnd_limited_sender_grows_and_validation_can_be_turned_off() -> None:
    """The same ACK clock with data waiting beyond cwnd grows cwnd (slow start), and with
    cwnd_validation off the application-limited sender grows as before."""
    tcb = established(cfg(tlp=False))
    iw = tcb.conn.cwnd
    tcb.send(bytes(40 * MSS_TS), 1.0)
    tcb.ack(seg_at(10), 1.1)
    assert tcb.conn.cwnd > iw
    tcb = established(cfg(tlp=False, cwnd_validation=False))
    tcb.send(bytes(2 * MSS_TS), 1.0)
    tcb.ack(tcb.conn.snd_nxt, 1.1)
    assert tcb.conn.cwnd > iw


def test_loss_state_picture_is_drawn_from_the_current_table() -> None:
    """docs/images/loss-states.svg is generated from TRANSITIONS: it must be current,
    and it must show every state and every trigger of the table."""
    import importlib.util

    root = ROOT
    spec = importlib.util.spec_from_file_location(
        "loss_states_svg", root / "scripts" / "loss_states_svg.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    svg = mod.render()
    assert (root / "docs" / "images" / "loss-states.svg").read_text() == svg, (
        "stale picture: run .venv/bin/python scripts/loss_states_svg.py"
    )
    for state in CaState:
        assert f">{state}</text>" in svg
    for trigger in TRIGGERS:
        assert trigger in svg


@pytest.mark.parametrize("cc", ["newreno", "cubic"])
def test_late_old_ack_does_not_shrink_cwnd(cc: str) -> None:
    """An ACK below SND.UNA (reordered in the network, still within the window of
    RFC 5961 §5.2) acknowledges nothing; counted as negative progress it shrank cwnd
    in slow start, below zero on a reordering path, and the sender stalled forever."""
    tcb = established(cfg(congestion_control=cc, tlp=False))
    tcb.send(bytes(30 * MSS_TS), 1.0)
    tcb.ack(seg_at(6), 1.1)
    cwnd = tcb.conn.cwnd
    for i in range(5):
        tcb.ack(seg_at(2), 1.11 + i / 100)  # late copies of an older ACK
    assert tcb.conn.cwnd == cwnd
