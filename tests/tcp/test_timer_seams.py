"""Timers at the seams (issue #13): where a timer meets cork, a zero window, a withdrawn
probe, junk from the network, or an idle period.  Crafted segments against one
Connection, with the helpers of test_connection_crafted (ours ISN 1000, the peer's 5000)."""

from __future__ import annotations

import errno

import pytest

from helpers.crafted import IRS, ISS, S, Tcb, established
from synack.packetdrill.profiles import LINUX, config_from_sysctls
from synack.tcp.config import TcpConfig
from synack.tcp.events import ConnectionFailed


def peer_talks(tcb: Tcb, start: float, stop: float, every: float, size: int = 10) -> None:
    """The peer sends ``size`` bytes every ``every`` s from ``start`` to ``stop``, reads
    nothing of ours and acknowledges nothing new; our timers run in between."""
    t, k = start, 0
    while t <= stop:
        tcb.run_timers(t)
        tcb.feed(tcb.peer(IRS + 1 + k * size, tcb.conn.snd_una, payload=b"d" * size), t)
        t += every
        k += 1
    tcb.run_timers(stop)


# ------------------------------------------------- 2: held data arms no retransmission timer
@pytest.mark.parametrize("how", ["cork", "msg_more"])
def test_corked_data_with_nothing_in_flight_arms_no_rto_rfc6298_5_1_c18(how: str) -> None:
    """RFC 6298 §5.1: the retransmission timer runs while data is *outstanding*.  A partial
    segment held by TCP_CORK or MSG_MORE (RFC 9293 §3.7.4) with nothing in flight is not
    outstanding: 20 minutes of it, while the peer keeps talking, fire no RTO, leave cwnd
    alone and never time the connection out."""
    tcb = established(TcpConfig.classic(cork=how == "cork"))
    cwnd = tcb.conn.cwnd
    tcb.conn.send(b"h" * 100, more=how == "msg_more")
    assert tcb.out(0.0) == []
    peer_talks(tcb, 1.0, 1200.0, 30.0)
    assert tcb.state is S.ESTABLISHED
    assert not tcb.of(ConnectionFailed)
    assert tcb.conn.stats["rto_fired"] == 0
    assert tcb.conn.cwnd == cwnd
    assert tcb.conn.snd_nxt == ISS + 1  # still held
    assert not any(r["ev"] == "timer" and r.get("timer") == "rto" for r in tcb.trace)
    tcb.conn.push()
    out = tcb.out(1200.5)
    assert [len(s.payload) for s in out] == [100]


def test_corked_data_still_lets_keepalive_find_a_dead_peer_rfc1122_4_2_3_6_c3() -> None:
    """With no RTO armed for held data, keepalive (RFC 1122 §4.2.3.6) is what watches a
    corked connection: a silent peer fails it with ETIMEDOUT at idle + count*interval."""
    cfg = TcpConfig.classic(
        cork=True, keepalive=True, keepalive_idle=60.0, keepalive_interval=10.0, keepalive_count=3
    )
    tcb = established(cfg)
    tcb.conn.send(b"h" * 100)
    tcb.out(0.0)
    tcb.run_timers(1000.0)
    failed = tcb.of(ConnectionFailed)
    assert failed and failed[0].errno == errno.ETIMEDOUT
    assert tcb.conn.stats["keepalives"] == 3 and tcb.conn.stats["rto_fired"] == 0
    closed_at = [r["t"] for r in tcb.trace if r["ev"] == "state" and r["new"] == "CLOSED"]
    assert closed_at == [pytest.approx(90.0)]


# --------------------------------------- 3: a zero window that answers is a live receiver
def shrink_to_zero(max_retransmits: int) -> Tcb:
    """Three segments out; the peer takes the first and closes its window (shrinking it:
    the other two are refused)."""
    tcb = established(TcpConfig.classic(max_retransmits=max_retransmits))
    tcb.conn.send(b"z" * 3 * 1460)
    assert len(tcb.out(0.0)) == 3
    tcb.feed(tcb.peer(IRS + 1, ISS + 1 + 1460, window=0), 0.1)
    return tcb


def test_zero_window_peer_answering_retransmissions_never_times_out_rfc1122_4_2_2_17_c4() -> None:
    """RFC 1122 §4.2.2.17: the sender must not close the connection while the receiver
    keeps answering its probes, here the retransmissions of data sent before the window
    closed, with zero-window ACKs: many times max_retransmits expiries pass."""
    tcb = shrink_to_zero(max_retransmits=3)
    fired = 0
    t = 0.1
    while fired < 20:
        nxt = tcb.conn.next_timer()
        if nxt is None:
            break  # closed
        out = tcb.fire(nxt)
        if any(s.payload for s in out):
            fired += 1
            t = nxt + 0.05
            tcb.feed(tcb.peer(IRS + 1, ISS + 1 + 1460, window=0), t)  # alive, still full
    assert tcb.state is S.ESTABLISHED, tcb.of(ConnectionFailed)
    # The window opens: the backed-off timer restarts at one plain RTO (RFC 6298 §5.7
    # ends backoff), and what was refused goes again from SND.UNA.
    tcb.feed(tcb.peer(IRS + 1, ISS + 1 + 1460, window=8192), t + 1.0)
    nxt = tcb.conn.next_timer()
    assert nxt is not None and nxt <= t + 1.0 + tcb.conn.rtt.rto
    out = tcb.fire(nxt)
    assert out and out[0].seq == ISS + 1 + 1460


def test_zero_window_peer_that_falls_silent_still_times_out_rfc9293_3_8_3_c3() -> None:
    """RFC 9293 §3.8.3 R2: once the zero-window receiver stops answering, the
    retransmissions count again and the connection fails with ETIMEDOUT."""
    tcb = shrink_to_zero(max_retransmits=3)
    tcb.run_timers(10_000.0)
    assert tcb.state is S.CLOSED
    failed = tcb.of(ConnectionFailed)
    assert failed and failed[0].errno == errno.ETIMEDOUT


# ---------------------------------------- 6: Karn's rule and the withdrawn window probe
def test_withdrawn_zero_window_probe_is_not_timed_rfc6298_3_karn_c2() -> None:
    """RFC 6298 §3 (Karn): a refused probe byte that is withdrawn when the window opens
    and sent again as data must not give an RTT sample from its first transmission.
    Timestamps off, true RTT 0.1 s: the sample after the window opens is ~0.1 s."""
    tcb = established(window=0, t_syn=0.0, t_synack=0.1)  # classic: no timestamps
    assert tcb.conn.rtt.srtt == pytest.approx(0.1)
    tcb.conn.send(b"k" * 1000)
    assert tcb.out(0.1) == []
    t = tcb.conn.next_timer()
    assert t is not None
    out = tcb.fire(t)
    assert [len(s.payload) for s in out] == [1]  # the probe byte
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=0), t + 0.1)  # refused: still zero
    opened = t + 0.6
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=8192), opened)
    assert out and out[0].seq == ISS + 1  # the probe byte was withdrawn: resend from UNA
    tcb.feed(tcb.peer(IRS + 1, ISS + 1 + 1000), opened + 0.1)
    assert tcb.conn.rtt.latest == pytest.approx(0.1)
    assert tcb.conn.rtt.srtt == pytest.approx(0.1)


# ----------------------------------------- 9: keepalive counts only proof of a live peer
def test_out_of_window_junk_does_not_rearm_keepalive_rfc1122_4_2_3_6_c3() -> None:
    """RFC 1122 §4.2.3.6 / RFC 9293 §3.8.4: keepalive finds a dead peer.  Only a segment
    that passes the acceptability test (RFC 9293 §3.10.7.4) shows the peer alive; an
    out-of-window segment every few minutes (forged or stale) must not keep a dead
    connection open: it fails with ETIMEDOUT at idle + count*interval."""
    cfg = TcpConfig.classic(
        keepalive=True, keepalive_idle=600.0, keepalive_interval=75.0, keepalive_count=9
    )
    tcb = established(cfg)
    deadline = 600.0 + 9 * 75.0
    t = 0.0
    while tcb.state is S.ESTABLISHED and t < 4 * deadline:
        t += 170.0
        tcb.run_timers(t)
        if tcb.state is S.ESTABLISHED:
            junk = tcb.peer(IRS + 1 + 10_000_000, ISS + 1, payload=b"junk")
            tcb.feed(junk, t)
    assert tcb.state is S.CLOSED
    failed = tcb.of(ConnectionFailed)
    assert failed and failed[0].errno == errno.ETIMEDOUT
    closed_at = [r["t"] for r in tcb.trace if r["ev"] == "state" and r["new"] == "CLOSED"]
    assert closed_at == [pytest.approx(deadline)]


def test_acceptable_segment_still_rearms_keepalive_rfc9293_3_8_4_c3() -> None:
    """The other side of the rule: an acceptable segment (here a pure ACK at RCV.NXT)
    proves the peer alive and restarts the idle period and the probe count."""
    cfg = TcpConfig.classic(
        keepalive=True, keepalive_idle=600.0, keepalive_interval=75.0, keepalive_count=2
    )
    tcb = established(cfg)
    tcb.run_timers(700.0)  # two probes out (600, 675)
    assert tcb.conn.stats["keepalives"] == 2
    tcb.feed(tcb.peer(IRS + 1, ISS + 1), 700.0)  # the answer
    assert tcb.conn.next_timer() == pytest.approx(1300.0)
    tcb.run_timers(1300.0 + 2 * 75.0 - 1)
    assert tcb.state is S.ESTABLISHED


# ------------------------------------------------------ 11: restart after idle (cwnd)
def grow_cwnd(tcb: Tcb, t: float) -> float:
    """Send 120 segments, ACKing each 1 ms after it leaves: slow start grows cwnd.
    Returns the time when everything is acknowledged (nothing in flight)."""
    c = tcb.conn
    c.send(b"g" * 120 * 1460)
    pending = tcb.out(t)
    while pending:
        seg = pending.pop(0)
        t += 0.001
        pending += tcb.feed(tcb.peer(IRS + 1, (seg.seq + len(seg.payload)) & 0xFFFFFFFF), t)
        pending = [s for s in pending if s.payload]
    assert c.snd_una == c.snd_nxt
    return t


def test_cwnd_restarts_after_idle_longer_than_rto_rfc5681_4_1_c18() -> None:
    """RFC 5681 §4.1: after no data was sent for longer than the RTO, cwnd is cut to
    the restart window min(IW, cwnd) before sending; the first flight after 30 s of
    idle is at most IW (10 segments here), and the trace names the restart."""
    tcb = established(TcpConfig.classic(), window=65535)
    c = tcb.conn
    t = grow_cwnd(tcb, 0.0)
    assert c.cwnd > 20 * 1460
    tcb.trace.clear()
    t += 30.0
    tcb.run_timers(t)
    c.send(b"i" * 200 * 1460)
    out = tcb.out(t)
    assert sum(len(s.payload) for s in out) <= 10 * 1460
    assert c.cwnd == 10 * 1460
    cc = [r for r in tcb.trace if r["ev"] == "cc"]
    assert cc and cc[0]["event"] == "idle_restart"


def test_restart_after_idle_can_be_turned_off_like_linux_sysctl() -> None:
    """slow_start_after_idle=False (Linux net.ipv4.tcp_slow_start_after_idle=0, which the
    packetdrill corpus's defaults.sh sets): the old cwnd stays after idle."""
    tcb = established(TcpConfig.classic(slow_start_after_idle=False), window=65535)
    c = tcb.conn
    t = grow_cwnd(tcb, 0.0)
    grown = c.cwnd
    assert grown > 20 * 1460
    t += 30.0
    tcb.run_timers(t)
    c.send(b"i" * 100 * 1460)
    out = tcb.out(t)
    assert c.cwnd == grown
    assert sum(len(s.payload) for s in out) > 10 * 1460


def test_linux_sysctl_slow_start_after_idle_maps_to_the_knob() -> None:
    """packetdrill: defaults.sh's net.ipv4.tcp_slow_start_after_idle=0 turns the restart
    off; a fresh kernel (no such line) keeps it on, as Linux's default 1."""
    off = config_from_sysctls(LINUX, {"net.ipv4.tcp_slow_start_after_idle": "0"})
    assert off.config.slow_start_after_idle is False
    assert not [u for u in off.unmet if "slow_start" in u]
    assert any("slow_start_after_idle=False" in a for a in off.applied)
    assert config_from_sysctls(LINUX, dict(LINUX.sysctls)).config.slow_start_after_idle
