"""Modern TCP, one rule at a time, on crafted segments against one Connection.

Window scaling, timestamps and PAWS (RFC 7323), SACK and D-SACK (RFC 2018,
RFC 2883), the sender's scoreboard with RFC 6675 DupThresh and RACK-TLP
(RFC 8985), NewReno (RFC 6582), limited transmit (RFC 3042), PRR (RFC 6937),
ECN (RFC 3168), delayed ACK, Nagle, the persist timer, keepalive, and unit
tests of the congestion controllers (RFC 5681, RFC 9438 CUBIC, RFC 9406
HyStart++).

Every test plays the peer by hand with fixed ISNs (ours 1000, the peer's
5000), fixed times and an explicit :class:`TcpConfig` (never the defaults,
which change).  Concept IDs (C2, C3, C4, C14, C16...) are those of
shared/concepts.md.
"""

from __future__ import annotations

import errno
import itertools
import math
from collections import deque

import pytest

from helpers.crafted import CE, CPORT, D0, ECT0, IRS, ISS, MASK, MSS_TS, SPORT, U0, S, Tcb, peer_ts
from helpers.modern import cfg, data_segs, established, flow, new_conn, passive, seg_at
from synack.tcp import algorithms, congestion, seq
from synack.tcp.connection import window_shift
from synack.tcp.events import ConnectionFailed, ConnectionReset
from synack.wire.segment import ACK, CWR, ECE, PSH, RST, SYN, Segment


# ============================================================ window scaling (RFC 7323 §2)
@pytest.mark.parametrize(
    ("rcv_buf", "shift"), [(65535, 0), (65536, 1), (1 << 20, 5), (4 << 20, 7), (65535 << 14, 14)]
)
def test_wscale_shift_from_rcv_buf_offered_on_syn(rcv_buf: int, shift: int) -> None:
    """RFC 7323 §2.3: the smallest shift that lets rcv_buf be advertised; the SYN
    carries it and an unscaled window field (a SYN window is never scaled, §2.2)."""
    assert window_shift(rcv_buf) == shift
    tcb = new_conn(cfg(rcv_buf=rcv_buf))
    syn = tcb.sent[0][1]
    assert syn.flags == SYN
    assert syn.wscale == shift
    assert syn.window == min(rcv_buf, 65535)


def test_wscale_negotiated_when_both_syns_carry_it() -> None:
    """RFC 7323 §2.2: both SYNs carry the option -> both shifts apply from now on."""
    tcb = established(cfg(rcv_buf=1 << 20), peer_ws=7)
    c = tcb.conn
    assert (c.ws_ok, c.snd_wscale, c.rcv_wscale) == (True, 7, 5)
    assert c.info()["wscale"] == (7, 5)


def test_wscale_not_used_when_the_syn_ack_lacks_it() -> None:
    """RFC 7323 §2.2: offered but not answered -> no scaling in either direction; our
    window (field = bytes) never exceeds 65535 although 1 MiB is free."""
    tcb = established(cfg(rcv_buf=1 << 20), peer_ws=None)
    c = tcb.conn
    assert (c.ws_ok, c.snd_wscale, c.rcv_wscale) == (False, 0, 0)
    out = tcb.feed(tcb.peer(D0, U0, window=1000, payload=b"x" * 100, t=0.2), 0.2)
    assert c.snd_wnd == 1000  # the peer's field taken as it is
    tcb.conn.recv()
    out = out + tcb.fire(0.4)
    # The right edge stays where it was (it may move only by >= 1 MSS, RFC 9293
    # §3.8.6.2.2): 65535 offered before, 100 bytes taken.
    assert [s.window for s in out] == [65535 - 100]
    assert c.rcv_wnd == 65535 - 100


def test_wscale_not_offered_when_disabled_and_peer_option_ignored() -> None:
    """RFC 7323 §2.2: we did not offer it, so a SYN-ACK carrying it changes nothing."""
    tcb = established(cfg(window_scaling=False, rcv_buf=65535), peer_ws=7)
    assert tcb.conn.ws_ok is False and tcb.conn.snd_wscale == 0
    tcb2 = new_conn(cfg(window_scaling=False, rcv_buf=65535))
    assert tcb2.sent[0][1].wscale is None


@pytest.mark.parametrize("offered", [True, False])
def test_passive_answers_wscale_only_if_offered(offered: bool) -> None:
    """RFC 7323 §2.2: a SYN-ACK carries the option only when the SYN did; its window
    field is not scaled."""
    tcb, synack = passive(cfg(rcv_buf=1 << 20), wscale=6 if offered else None)
    assert synack.flags == SYN | ACK
    assert synack.wscale == (5 if offered else None)
    assert synack.window == 65535
    assert tcb.conn.ws_ok is offered
    assert tcb.conn.snd_wscale == (6 if offered else 0)


def test_peer_window_scaled_on_every_segment_but_the_syn_ack() -> None:
    """RFC 7323 §2.2/§2.3: the SYN-ACK's window field is taken unscaled; every later
    segment's field is shifted by the peer's scale.  1810 << 3 = 10 segments."""
    tcb = established(cfg(), peer_ws=3, window=1810, sync=False)
    c = tcb.conn
    assert c.snd_wnd == 1810  # not 1810 << 3
    data = bytes(12 * MSS_TS)
    out = tcb.send(data, 1.0)
    # One segment fits; the 362-byte rest is held (sender SWS avoidance).
    assert data_segs(out) == [(seg_at(0), MSS_TS)]
    out = tcb.ack(seg_at(1), 1.1, window=1810)
    assert c.snd_wnd == 1810 << 3 == 10 * MSS_TS
    assert data_segs(out) == [(seg_at(i), MSS_TS) for i in range(1, 11)]


def test_our_window_field_is_scaled_on_every_segment_after_the_syn() -> None:
    """RFC 7323 §2.3: after the handshake the field we send is the window >> shift
    (rounded up so the right edge never moves left); the SYN's field is not."""
    tcb = new_conn(cfg(rcv_buf=1 << 20))
    assert tcb.sent[0][1].window == 65535
    syn_ack = Segment(
        SPORT,
        CPORT,
        IRS,
        ISS + 1,
        SYN | ACK,
        65535,
        mss=1460,
        wscale=2,
        sack_permitted=True,
        tsval=peer_ts(0.1),
        tsecr=tcb.sent[0][1].tsval,
    )
    (ack,) = tcb.feed(syn_ack, 0.1)
    assert ack.window == (1 << 20) >> 5
    assert ack.window << 5 == tcb.conn.rcv_wnd == 1 << 20
    (ack2,) = tcb.feed(tcb.peer(D0, U0, window=100, payload=b"y" * 1000, t=0.2), 0.2) + tcb.fire(
        0.4
    )
    assert ack2.ack == D0 + 1000
    assert ack2.window == math.ceil(((1 << 20) - 1000) / 32)
    assert tcb.conn.rcv_wnd == ack2.window << 5


def test_peer_wscale_above_14_is_treated_as_14() -> None:
    """RFC 7323 §2.3: a shift above 14 MUST be used as 14."""
    tcb = established(cfg(), peer_ws=15)
    assert tcb.conn.snd_wscale == 14


# ====================================================== timestamps (RFC 7323 §3-§4)
def test_timestamps_negotiated_and_carried_on_every_segment() -> None:
    """RFC 7323 §3.2: SYN carries TSval (TSecr 0); once both SYNs carried the option
    every segment does, echoing TS.Recent; the option takes 12 bytes of each MSS."""
    tcb = new_conn(cfg())
    syn = tcb.sent[0][1]
    assert syn.tsval == tcb.ts(0.0) and syn.tsecr == 0
    (ack,) = tcb.feed(
        Segment(
            SPORT,
            CPORT,
            IRS,
            ISS + 1,
            SYN | ACK,
            65535,
            mss=1460,
            wscale=7,
            sack_permitted=True,
            tsval=peer_ts(0.1),
            tsecr=syn.tsval,
        ),
        0.1,
    )
    assert tcb.conn.ts_ok
    assert (ack.tsval, ack.tsecr) == (tcb.ts(0.1), peer_ts(0.1))
    assert tcb.conn.eff_mss == MSS_TS
    out = tcb.send(b"d" * 100, 0.5)
    assert [(s.tsval, s.tsecr) for s in out] == [(tcb.ts(0.5), peer_ts(0.1))]
    assert tcb.conn.info()["timestamps"] is True


def test_timestamps_off_when_the_syn_ack_lacks_them() -> None:
    """RFC 7323 §3.2: no TSopt on the SYN-ACK -> never send one; the full MSS is data."""
    tcb = established(cfg(), peer_tsopt=False)
    assert tcb.conn.ts_ok is False
    assert tcb.conn.eff_mss == 1460
    out = tcb.send(b"d" * 3000, 0.5)
    assert [len(s.payload) for s in out] == [1460, 1460, 80]
    assert all(s.tsval is None and s.tsecr is None for s in out)


@pytest.mark.parametrize("offered", [True, False])
def test_passive_answers_timestamps_only_if_offered(offered: bool) -> None:
    """RFC 7323 §3.2: the SYN-ACK carries TSopt (echoing the SYN's TSval) only if the
    SYN did."""
    kw = {"tsval": 4242, "tsecr": 0} if offered else {}
    tcb, synack = passive(cfg(), **kw)
    assert tcb.conn.ts_ok is offered
    if offered:
        assert synack.tsecr == 4242 and synack.tsval == tcb.ts(0.0)
    else:
        assert synack.tsval is None


def test_tsval_is_a_1ms_clock_with_a_per_connection_offset() -> None:
    """RFC 7323 §5.4: TSval ticks once per ms and starts at a per-connection offset, so
    two connections opened at the same instant do not share a clock."""
    tcb = new_conn(cfg(rto_initial=1.0))
    syn0 = tcb.sent[0][1]
    sent = tcb.run_timers(3.5)  # SYN retransmitted at 1 s and 3 s (RFC 6298 backoff)
    assert [(t, s.tsval) for t, s in sent] == [
        (1.0, (syn0.tsval + 1000) & MASK),
        (3.0, (syn0.tsval + 3000) & MASK),
    ]
    other = new_conn(cfg(), iss=77_777)
    assert other.sent[0][1].tsval != syn0.tsval


def test_ts_recent_delayed_ack_echoes_the_earlier_segment() -> None:
    """RFC 7323 §4.3 (case A): TS.Recent is taken only from a segment with
    SEG.SEQ <= Last.ACK.sent, so an ACK covering two segments echoes the first one's
    TSval (the conservative RTT)."""
    tcb = established(cfg())
    assert (
        tcb.feed(
            tcb.peer(D0, U0, payload=b"a" * MSS_TS, tsval=1_000_100, tsecr=tcb.last_tsval), 1.0
        )
        == []
    )  # delayed
    (ack,) = tcb.feed(
        tcb.peer(D0 + MSS_TS, U0, payload=b"b" * MSS_TS, tsval=1_000_150, tsecr=tcb.last_tsval),
        1.05,
    )
    assert ack.ack == D0 + 2 * MSS_TS
    assert ack.tsecr == 1_000_100
    assert tcb.conn.ts_recent == 1_000_100


def test_ts_recent_not_taken_from_out_of_order_data_but_from_the_filling_segment() -> None:
    """RFC 7323 §4.3 (cases B, C): data beyond a hole does not update TS.Recent (the
    duplicate ACK echoes the older value); the segment that fills the hole does."""
    tcb = established(cfg())
    before = tcb.conn.ts_recent
    assert before == peer_ts(0.1)
    (dup,) = tcb.feed(
        tcb.peer(D0 + 500, U0, payload=b"c" * 500, tsval=1_000_200, tsecr=tcb.last_tsval), 1.0
    )
    assert dup.ack == D0 and dup.tsecr == before
    (ack,) = tcb.feed(
        tcb.peer(D0, U0, payload=b"a" * 500, tsval=1_000_300, tsecr=tcb.last_tsval), 1.1
    )
    assert ack.ack == D0 + 1000
    assert ack.tsecr == 1_000_300


def test_rttm_rtt_sample_from_tsecr() -> None:
    """RFC 7323 §4.1 (RTTM): the RTT is now minus the echoed TSval, ms resolution."""
    tcb = established(cfg(), t_synack=0.1)
    assert tcb.conn.rtt.latest == pytest.approx(0.1, abs=0.001)
    tcb.send(b"r" * 100, 1.0)
    tcb.feed(tcb.peer(D0, U0 + 100, tsval=peer_ts(1.25), tsecr=tcb.ts(1.0)), 1.25)
    assert tcb.conn.rtt.latest == pytest.approx(0.25, abs=0.001)
    assert tcb.conn.rtt.samples == 2


def test_rttm_measures_a_retransmission_unambiguously() -> None:
    """RFC 7323 §4 (vs Karn's rule, RFC 6298 §3): an ACK echoing the retransmission's
    TSval measures the RTT of the retransmission, not the time since the original."""
    tcb = established(cfg(tlp=False), t_synack=0.1)
    tcb.send(b"k" * 100, 1.0)
    sent = tcb.run_timers(2.0)
    assert [t for t, s in sent if s.payload] == [2.0]  # RTO retransmission at 1 + 1 s
    tcb.feed(tcb.peer(D0, U0 + 100, tsval=peer_ts(2.1), tsecr=tcb.ts(2.0)), 2.1)
    assert tcb.conn.rtt.latest == pytest.approx(0.1, abs=0.001)


# ============================================================= PAWS (RFC 7323 §5), C16
def test_paws_drops_an_older_timestamp_and_acks_c16() -> None:
    """C16, RFC 7323 §5.3 R1: an in-window segment whose TSval is older than TS.Recent
    is an old duplicate (a wrapped sequence number could put it in the window): drop it,
    send an ACK, deliver nothing."""
    tcb = established(cfg())
    tcb.feed(tcb.peer(D0, U0, payload=b"new", tsval=2_000_000, tsecr=tcb.last_tsval), 1.0)
    tcb.fire(1.2)  # delayed ACK
    assert tcb.conn.ts_recent == 2_000_000
    tcb.conn.recv()
    out = tcb.feed(tcb.peer(D0 + 3, U0, payload=b"OLD", tsval=1_999_999, tsecr=0), 1.3)
    assert len(out) == 1
    assert (out[0].flags, out[0].seq, out[0].ack, out[0].payload) == (ACK, U0, D0 + 3, b"")
    assert out[0].tsecr == 2_000_000  # TS.Recent unchanged
    assert tcb.conn.readable == 0 and tcb.conn.rcv_nxt == D0 + 3
    assert tcb.conn.stats["paws_drops"] == 1
    drops = [r for r in tcb.trace if r["ev"] == "drop"]
    assert [(r["reason"], r["concept"]) for r in drops] == [("paws", "C16")]
    # The same bytes with a current timestamp are accepted.
    tcb.feed(tcb.peer(D0 + 3, U0, payload=b"NEW", tsval=2_000_001, tsecr=0), 1.4)
    assert tcb.conn.recv() == b"NEW"


def test_paws_compares_timestamps_modulo_2_32() -> None:
    """RFC 7323 §5.3: TSval comparison is in 32-bit sequence space: 0x10 is newer than
    0xFFFFFFF0 (the peer's clock wrapped)."""
    tcb = established(cfg(delayed_ack=0))
    assert tcb.conn.ts_recent == peer_ts(0.1)
    # the peer's clock runs on (each step less than 2**31 ahead) and wraps
    for i, tsval in enumerate((0x80000000, 0xFFFFFFF0, 0x10)):
        tcb.feed(tcb.peer(D0 + i, U0, payload=b"abc"[i : i + 1], tsval=tsval, tsecr=0), 1 + i)
        assert tcb.conn.ts_recent == tsval
    assert tcb.conn.stats["paws_drops"] == 0
    assert tcb.conn.recv() == b"abc"
    # and 0xFFFFFFF0 is now older than 0x10: PAWS drops it
    tcb.feed(tcb.peer(D0 + 3, U0, payload=b"d", tsval=0xFFFFFFF0, tsecr=0), 5.0)
    assert tcb.conn.stats["paws_drops"] == 1 and tcb.conn.readable == 0


def test_rst_is_not_subject_to_paws() -> None:
    """RFC 7323 §5.3 R1 applies to non-RST segments only: an RST at RCV.NXT with an old
    TSval still resets the connection."""
    tcb = established(cfg())
    tcb.feed(tcb.peer(D0, U0, payload=b"a", tsval=2_000_000, tsecr=0), 1.0)
    tcb.fire(1.2)
    assert tcb.feed(tcb.peer(D0 + 1, 0, RST, 0, tsval=5, tsecr=0), 1.3) == []
    assert tcb.state is S.CLOSED
    assert len(tcb.of(ConnectionReset)) == 1
    assert tcb.conn.stats["paws_drops"] == 0


def test_paws_ts_recent_invalid_after_24_days_idle() -> None:
    """RFC 7323 §5.5: after more than 24 days idle TS.Recent is no longer trusted and
    a segment with an older TSval is accepted."""
    tcb = established(cfg())
    tcb.feed(tcb.peer(D0, U0, payload=b"a", tsval=2_000_000, tsecr=0), 1.0)
    tcb.fire(1.2)
    later = 1.2 + 25 * 24 * 3600.0
    tcb.feed(tcb.peer(D0 + 1, U0, payload=b"b", tsval=1_000, tsecr=0), later)
    assert tcb.conn.stats["paws_drops"] == 0
    assert tcb.conn.recv() == b"ab"


def test_final_handshake_ack_without_timestamp_does_not_stall() -> None:
    """Linux leniency (RFC 7323 §3.2 says SHOULD drop): a final ACK lacking TSopt after
    TSopt was negotiated still completes the handshake, and data flows."""
    tcb, synack = passive(cfg(), tsval=4242, tsecr=0)
    assert tcb.conn.ts_ok
    assert tcb.feed(Segment(CPORT, SPORT, IRS + 1, ISS + 1, ACK, 65535), 0.1) == []
    assert tcb.state is S.ESTABLISHED
    tcb.feed(
        Segment(
            CPORT,
            SPORT,
            IRS + 1,
            ISS + 1,
            ACK | PSH,
            65535,
            b"hello",
            tsval=4342,
            tsecr=synack.tsval,
        ),
        0.2,
    )
    assert tcb.conn.recv() == b"hello"
    out = tcb.send(b"world", 0.3)
    assert [(s.payload, s.tsecr) for s in out] == [(b"world", 4342)]


# ==================================================== SACK negotiation (RFC 2018 §2)
@pytest.mark.parametrize(
    ("ours", "theirs", "ok"), [(True, True, True), (True, False, False), (False, True, False)]
)
def test_sack_permitted_negotiation(ours: bool, theirs: bool, ok: bool) -> None:
    """RFC 2018 §2: SACK is used only when both SYNs carried SACK-permitted; otherwise
    an out-of-order arrival is answered by a plain duplicate ACK."""
    tcb = new_conn(cfg(sack=ours))
    assert tcb.sent[0][1].sack_permitted is ours
    tcb.sent.clear()
    tcb.feed(
        Segment(
            SPORT,
            CPORT,
            IRS,
            ISS + 1,
            SYN | ACK,
            65535,
            mss=1460,
            wscale=7,
            sack_permitted=theirs,
            tsval=peer_ts(0.1),
            tsecr=tcb.ts(0.0),
        ),
        0.1,
    )
    assert tcb.conn.sack_ok is ok
    (dup,) = tcb.feed(tcb.peer(D0 + 100, U0, payload=b"z" * 100, t=0.2), 0.2)
    assert dup.ack == D0
    assert dup.sack_blocks == (((D0 + 100, D0 + 200),) if ok else ())


@pytest.mark.parametrize("offered", [True, False])
def test_passive_answers_sack_permitted_only_if_offered(offered: bool) -> None:
    tcb, synack = passive(cfg(), sack_permitted=offered)
    assert synack.sack_permitted is offered
    assert tcb.conn.sack_ok is offered


# ================================================ SACK generation (RFC 2018 §4, 2883)
def blocks(out: list[Segment]) -> list[tuple[tuple[int, int], ...]]:
    """SACK blocks of each segment, relative to the peer's first data byte."""
    return [tuple(((a - D0) & MASK, (b - D0) & MASK) for a, b in s.sack_blocks) for s in out]


def test_sack_first_block_is_the_most_recent_arrival() -> None:
    """RFC 2018 §4: the first block holds the segment that triggered the ACK; the
    others repeat the most recently reported blocks, newest first."""
    tcb = established(cfg())
    acks = []
    for i, start in enumerate((1000, 3000, 2000, 1100)):
        acks += tcb.feed(tcb.peer(D0 + start, U0, payload=b"o" * 100, t=1 + i / 100), 1 + i / 100)
    assert [s.ack for s in acks] == [D0] * 4  # each one an immediate duplicate ACK
    assert blocks(acks) == [
        ((1000, 1100),),
        ((3000, 3100), (1000, 1100)),
        ((2000, 2100), (3000, 3100), (1000, 1100)),
        ((1000, 1200), (2000, 2100), (3000, 3100)),  # the block it extended comes first
    ]


@pytest.mark.parametrize(("timestamps", "limit"), [(True, 3), (False, 4)])
def test_sack_block_count_limited_by_option_space(timestamps: bool, limit: int) -> None:
    """RFC 2018 §3: 40 option bytes hold 4 blocks, 3 next to the timestamp option."""
    tcb = established(cfg(timestamps=timestamps), peer_tsopt=timestamps)
    out: list[Segment] = []
    for i in range(6):
        out = tcb.feed(
            tcb.peer(D0 + 1000 * (i + 1), U0, payload=b"o" * 10, t=1 + i / 100), 1 + i / 100
        )
    assert blocks(out) == [tuple((1000 * k, 1000 * k + 10) for k in range(6, 6 - limit, -1))]


def test_dsack_for_a_duplicate_below_rcv_nxt() -> None:
    """RFC 2883 §4 (1): a duplicate of data already acknowledged is reported as the
    first block, lying below the cumulative ACK; reported once."""
    tcb = established(cfg(delayed_ack=0))
    tcb.feed(tcb.peer(D0, U0, payload=b"d" * 500, t=1.0), 1.0)
    (ack,) = tcb.feed(tcb.peer(D0, U0, payload=b"d" * 500, t=1.1), 1.1)
    assert ack.ack == D0 + 500
    assert blocks([ack]) == [((0, 500),)]
    assert tcb.conn.stats["dup_segs_in"] == 1
    (ack2,) = tcb.feed(tcb.peer(D0 + 500, U0, payload=b"e" * 10, t=1.2), 1.2)
    assert ack2.sack_blocks == ()  # the D-SACK is not repeated


def test_dsack_for_a_duplicate_inside_the_out_of_order_queue() -> None:
    """RFC 2883 §4 (2): a duplicate above RCV.NXT: the first block is the duplicate,
    the second the (larger) block that contains it."""
    tcb = established(cfg())
    for i in range(3):
        tcb.feed(tcb.peer(D0 + 1000 + 100 * i, U0, payload=b"o" * 100, t=1.0), 1.0)
    (ack,) = tcb.feed(tcb.peer(D0 + 1100, U0, payload=b"o" * 100, t=1.1), 1.1)
    assert ack.ack == D0
    assert blocks([ack]) == [((1100, 1200), (1000, 1300))]
    (ack2,) = tcb.feed(tcb.peer(D0 + 2000, U0, payload=b"p" * 100, t=1.2), 1.2)
    assert blocks([ack2]) == [((2000, 2100), (1000, 1300))]


def test_dsack_for_a_partly_old_segment_reports_only_the_old_part() -> None:
    """RFC 2883 §4: a segment overlapping RCV.NXT: only the duplicate part is D-SACKed,
    the new part is delivered."""
    tcb = established(cfg(delayed_ack=0))
    tcb.feed(tcb.peer(D0, U0, payload=b"a" * 300, t=1.0), 1.0)
    (ack,) = tcb.feed(tcb.peer(D0 + 200, U0, payload=b"b" * 300, t=1.1), 1.1)
    assert ack.ack == D0 + 500
    assert blocks([ack]) == [((200, 300),)]
    assert tcb.conn.recv() == b"a" * 300 + b"b" * 200


# ================================================ the sender's scoreboard (RFC 6675)
def test_scoreboard_marks_sacked_ranges_and_retransmits_only_holes() -> None:
    """RFC 6675 §5: with S1 and S5 lost and the rest SACKed, exactly S1 and S5 are
    retransmitted (the SACKed segments never are), before any timeout."""
    tcb = established(cfg(rack=False, tlp=False))
    data = flow(tcb, 10)
    tcb.sent.clear()
    blk = ((seg_at(2), seg_at(5)), (seg_at(6), seg_at(10)))
    out = tcb.ack(seg_at(1), 1.1, sack=blk)
    info = tcb.conn.info()
    assert info["sacked"] == 7 * MSS_TS
    assert info["lost"] == 0  # both retransmitted already
    assert data_segs(out) == [(seg_at(1), MSS_TS), (seg_at(5), MSS_TS)]
    assert out[0].payload == data[MSS_TS : 2 * MSS_TS]
    out = tcb.ack(seg_at(5), 1.2, sack=((seg_at(6), seg_at(10)),))
    assert data_segs(out) == []
    out = tcb.ack(seg_at(10), 1.3)
    assert tcb.run_timers(10.0) == []
    retrans = [s.seq for _, s in tcb.sent if s.payload]
    assert retrans == [seg_at(1), seg_at(5)]
    assert tcb.conn.stats["retransmits"] == 2 and tcb.conn.stats["rto_fired"] == 0
    assert tcb.conn.stats["sack_blocks_in"] == 3


def test_dupthresh_three_sacked_segments_above_a_hole_retransmit_it() -> None:
    """RFC 6675 §4 IsLost / §5: two segments SACKed above the hole are not enough (it may
    be reordering); the third one marks it lost and it is retransmitted at once."""
    tcb = established(cfg(rack=False, tlp=False))
    flow(tcb, 10)
    assert tcb.ack(seg_at(1), 1.1, sack=((seg_at(2), seg_at(3)),)) == []
    assert tcb.ack(seg_at(1), 1.11, sack=((seg_at(2), seg_at(4)),)) == []
    out = tcb.ack(seg_at(1), 1.12, sack=((seg_at(2), seg_at(5)),))
    assert data_segs(out) == [(seg_at(1), MSS_TS)]
    st = tcb.conn.stats
    assert (st["fast_retransmits"], st["recoveries"], st["rto_fired"]) == (1, 1, 0)
    assert tcb.conn.info()["in_recovery"] is True
    assert tcb.conn.ssthresh == 9 * MSS_TS // 2  # RFC 5681 eq. 4 with FlightSize 9 MSS


def test_dupthresh_counts_discontiguous_sacked_small_segments() -> None:
    """RFC 6675 §4 IsLost(SeqNum): lost when DupThresh (3) discontiguous SACKed sequences
    lie above it, whatever their size: three small segments SACKed above a small hole
    trigger a retransmission (without RACK) instead of waiting for the RTO."""
    tcb = established(cfg(rack=False, tlp=False))
    for i in range(5):
        tcb.send(bytes([65 + i]) * 200, 1.0 + i / 1000)
    # the segment at 200 is lost; 400, 600 and 800 arrive and are SACKed separately
    # (the receiver reports each, so: three blocks seen one after the other)
    tcb.ack(U0 + 200, 1.1, sack=((U0 + 400, U0 + 600),))
    tcb.ack(U0 + 200, 1.11, sack=((U0 + 600, U0 + 800), (U0 + 400, U0 + 600)))
    out = tcb.ack(U0 + 200, 1.12, sack=((U0 + 800, U0 + 1000), (U0 + 400, U0 + 600)))
    assert data_segs(out) == [(U0 + 200, 200)]


def test_classic_dupack_rule_for_a_peer_that_sacks_nothing() -> None:
    """RFC 6675 §5 with a SACK-permitted peer that sends no blocks: three duplicate ACKs
    still trigger a fast retransmission (RFC 5681 §3.2)."""
    tcb = established(cfg(rack=False, tlp=False))
    flow(tcb, 10)
    tcb.ack(seg_at(1), 1.1)
    assert tcb.ack(seg_at(1), 1.11) == []
    assert tcb.ack(seg_at(1), 1.12) == []
    out = tcb.ack(seg_at(1), 1.13)
    assert data_segs(out) == [(seg_at(1), MSS_TS)]


def test_dsack_received_is_counted_and_marks_reordering() -> None:
    """RFC 2883 §5, RFC 8985 §6.2: a D-SACK tells the sender a retransmission was
    spurious; it is counted and widens RACK's reordering window."""
    tcb = established(cfg(tlp=False))
    flow(tcb, 2)
    sent = tcb.run_timers(2.0)  # RTO: S0 resent (go-back: the whole flight is lost)
    assert next(s.seq for _, s in sent if s.payload) == seg_at(0)
    tcb.ack(seg_at(2), 2.05)
    assert tcb.conn.info()["reordering_seen"] is False
    tcb.ack(seg_at(2), 2.1, sack=((seg_at(0), seg_at(1)),))  # D-SACK below the ACK
    assert tcb.conn.stats["dsacks_in"] == 1
    assert tcb.conn.info()["reordering_seen"] is True


# ===================================================================== RACK (RFC 8985)
def test_rack_hole_older_than_rtt_plus_reo_wnd_is_lost_at_once() -> None:
    """RFC 8985 §6.2: S1, sent 50 ms before S2, is still unacknowledged when S2's SACK
    arrives one RTT after S2 was sent: S1 is older than RTT + reo_wnd (min_rtt/4 =
    25 ms) -> lost and retransmitted immediately, with one SACKed segment (no DupThresh)."""
    tcb = established(cfg(tlp=False), t_synack=0.1)
    tcb.send(b"1" * MSS_TS, 1.0)
    tcb.send(b"2" * MSS_TS, 1.05)
    out = tcb.ack(seg_at(0), 1.15, sack=((seg_at(1), seg_at(2)),))
    assert data_segs(out) == [(seg_at(0), MSS_TS)]
    assert tcb.conn.stats["rack_losses"] == 1
    assert tcb.conn.stats["rto_fired"] == 0


def test_rack_reorder_timer_waits_for_the_reordering_window() -> None:
    """RFC 8985 §6.2-6.3: S1 sent only 10 ms before S2: when S2 is SACKed it may just be
    reordered; RACK arms its timer for S1.xmit + RTT + reo_wnd (1.0 + 0.1 + 0.025) and
    retransmits S1 only when it fires."""
    tcb = established(cfg(tlp=False), t_synack=0.1)
    tcb.send(b"1" * MSS_TS, 1.0)
    tcb.send(b"2" * MSS_TS, 1.01)
    assert tcb.ack(seg_at(0), 1.11, sack=((seg_at(1), seg_at(2)),)) == []
    when = tcb.conn.next_timer()
    assert when == pytest.approx(1.125, abs=1e-6)
    assert data_segs(tcb.fire(when - 0.001)) == []
    out = tcb.fire(when)
    assert data_segs(out) == [(seg_at(0), MSS_TS)]
    assert tcb.conn.stats["rack_losses"] == 1 and tcb.conn.stats["rto_fired"] == 0


def test_rack_reordered_segment_arriving_in_time_is_not_retransmitted() -> None:
    """RFC 8985 §6.2: if the 'missing' segment arrives within the reordering window the
    timer is disarmed and nothing is resent."""
    tcb = established(cfg(tlp=False), t_synack=0.1)
    tcb.send(b"1" * MSS_TS, 1.0)
    tcb.send(b"2" * MSS_TS, 1.01)
    tcb.ack(seg_at(0), 1.11, sack=((seg_at(1), seg_at(2)),))
    assert tcb.ack(seg_at(2), 1.12) == []
    assert tcb.run_timers(5.0) == []
    assert tcb.conn.stats["retransmits"] == 0


# ====================================================================== TLP (RFC 8985 §7)
def test_tlp_probe_at_two_srtt_repairs_a_tail_loss() -> None:
    """RFC 8985 §7: the last two segments of a flight are lost.  After the ACK of the
    rest a probe timeout of 2*SRTT (0.2 s) is armed, far before the RTO (1 s); the probe
    resends the last segment, whose SACK lets RACK repair the other at once."""
    tcb = established(cfg(), t_synack=0.1)
    flow(tcb, 5)
    assert tcb.ack(seg_at(3), 1.1) == []
    assert tcb.conn.rtt.srtt == pytest.approx(0.1, abs=0.001)
    pto = tcb.conn.next_timer()
    assert pto == pytest.approx(1.1 + 2 * tcb.conn.rtt.srtt, abs=1e-9)
    out = tcb.fire(pto)
    assert data_segs(out) == [(seg_at(4), MSS_TS)]  # the probe: the last segment again
    assert tcb.conn.stats["tlp_probes"] == 1
    out = tcb.ack(seg_at(3), pto + 0.1, sack=((seg_at(4), seg_at(5)),))
    assert data_segs(out) == [(seg_at(3), MSS_TS)]  # RACK: S3 lost, resent at once
    tcb.ack(seg_at(5), pto + 0.2)
    assert tcb.conn.snd_una == seg_at(5)
    assert tcb.conn.stats["rto_fired"] == 0
    assert pto + 0.2 < 1.1 + 1.0  # repaired before the RTO would even have fired


@pytest.mark.parametrize("wc_delack", [0.2, 0.05])
def test_tlp_with_one_segment_out_allows_for_a_delayed_ack(wc_delack: float) -> None:
    """RFC 8985 §7.2: with one segment in flight PTO = 2*SRTT + WCDelAckT, the worst-case
    delayed-ACK time of the peer (tlp_wc_delack)."""
    tcb = established(cfg(tlp_wc_delack=wc_delack), t_synack=0.1)
    tcb.send(b"x" * 100, 1.0)
    assert tcb.conn.next_timer() == pytest.approx(1.0 + 0.2 + wc_delack, abs=1e-6)


def test_tlp_sends_new_data_when_there_is_some() -> None:
    """RFC 8985 §7.3: if new data may be sent the probe is new data, not a resend."""
    tcb = established(cfg(initial_window=2), t_synack=0.1)
    data = bytes(4 * MSS_TS)
    out = tcb.send(data, 1.0)
    assert data_segs(out) == [(seg_at(0), MSS_TS), (seg_at(1), MSS_TS)]
    pto = tcb.conn.next_timer()
    assert pto is not None and pto < 2.0
    out = tcb.fire(pto)
    assert data_segs(out) == [(seg_at(2), MSS_TS)]
    assert tcb.conn.stats["tlp_probes"] == 1 and tcb.conn.stats["retransmits"] == 0


# ====================================================== NewReno without SACK (RFC 6582)
def test_newreno_partial_ack_retransmits_the_next_hole_at_once() -> None:
    """RFC 6582 §3.2: without SACK, S1 and S5 lost: three duplicate ACKs resend S1; the
    partial ACK that follows (up to S5) resends S5 at once, staying in recovery; the
    full ACK ends recovery with cwnd = ssthresh."""
    tcb = established(cfg(sack=False, tlp=False), peer_sack=False)
    flow(tcb, 10)
    tcb.ack(seg_at(1), 1.10)  # S0
    outs = [tcb.ack(seg_at(1), 1.11 + i / 100) for i in range(3)]  # S2, S3, S4
    assert [data_segs(o) for o in outs] == [[], [], [(seg_at(1), MSS_TS)]]
    ssthresh = 9 * MSS_TS // 2
    assert tcb.conn.ssthresh == ssthresh
    for i in range(4):  # S6..S9: more duplicates, nothing to send
        assert data_segs(tcb.ack(seg_at(1), 1.2 + i / 100)) == []
    out = tcb.ack(seg_at(5), 1.3)  # the retransmitted S1 arrived: partial ACK
    assert data_segs(out) == [(seg_at(5), MSS_TS)]
    assert tcb.conn.info()["in_recovery"] is True
    tcb.ack(seg_at(10), 1.4)
    assert tcb.conn.info()["in_recovery"] is False
    assert tcb.conn.cwnd == ssthresh
    st = tcb.conn.stats
    assert (st["retransmits"], st["fast_retransmits"], st["rto_fired"]) == (2, 1, 0)


def test_limited_transmit_one_new_segment_per_early_dupack() -> None:
    """RFC 3042: the first and second duplicate ACKs each send one new segment (cwnd
    unchanged); the third triggers the fast retransmission."""
    tcb = established(cfg(sack=False, tlp=False), peer_sack=False)
    data = bytes(20 * MSS_TS)
    out = tcb.send(data, 1.0)
    assert len(data_segs(out)) == 10  # IW10 (RFC 6928)
    cwnd = tcb.conn.cwnd
    assert cwnd == 10 * MSS_TS
    out1 = tcb.ack(U0, 1.1)
    out2 = tcb.ack(U0, 1.11)
    assert data_segs(out1) == [(seg_at(10), MSS_TS)]
    assert data_segs(out2) == [(seg_at(11), MSS_TS)]
    assert tcb.conn.cwnd == cwnd  # RFC 3042: cwnd is not changed by limited transmit
    out3 = tcb.ack(U0, 1.12)
    assert data_segs(out3) == [(seg_at(0), MSS_TS)]
    assert tcb.conn.stats["fast_retransmits"] == 1


def test_sack_pipe_releases_a_new_segment_for_each_sacked_one() -> None:
    """RFC 6675 §5 (limited transmit through the pipe): before recovery each SACKed
    segment leaves the pipe and lets one new segment out."""
    tcb = established(cfg(rack=False, tlp=False))
    data = bytes(20 * MSS_TS)
    tcb.send(data, 1.0)
    out1 = tcb.ack(U0, 1.1, sack=((seg_at(1), seg_at(2)),))
    out2 = tcb.ack(U0, 1.11, sack=((seg_at(1), seg_at(3)),))
    assert data_segs(out1) == [(seg_at(10), MSS_TS)]
    assert data_segs(out2) == [(seg_at(11), MSS_TS)]


# ============================================================= PRR (RFC 6937)
class SackPeer:
    """A receiver that SACKs whatever arrived (one contiguous block above a hole)."""

    def __init__(self, tcb: Tcb) -> None:
        self.tcb = tcb
        self.got: set[int] = set()

    def blocks_and_ack(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        una = seq.sub(self.tcb.conn.snd_una, U0)
        cum = una
        while cum in self.got:
            cum += MSS_TS
        above = sorted(p for p in self.got if p > cum)
        runs: list[list[int]] = []
        for p in above:
            if runs and runs[-1][1] == p:
                runs[-1][1] = p + MSS_TS
            else:
                runs.append([p, p + MSS_TS])
        return cum, tuple(((U0 + a) & MASK, (U0 + b) & MASK) for a, b in reversed(runs))

    def deliver(self, s: Segment, now: float) -> list[Segment]:
        self.got.add(seq.sub(s.seq, U0))
        cum, blk = self.blocks_and_ack()
        return self.tcb.ack((U0 + cum) & MASK, now, sack=blk[:3])


def grow_to_20(tcb: Tcb) -> list[Segment]:
    """Slow start from IW10 to cwnd = 20 segments (five ACKs of two segments, +2 MSS
    each, RFC 3465 L = 2); return the 20 segments then in flight."""
    tcb.send(bytes(80 * MSS_TS), 1.0)
    for i in range(5):
        tcb.ack(seg_at(2 * i + 2), 1.1 + i / 1000)
    assert tcb.conn.cwnd == 20 * MSS_TS
    flight = [s for _, s in tcb.sent if s.payload][10:]
    assert [s.seq for s in flight] == [seg_at(i) for i in range(10, 30)]
    tcb.sent.clear()
    return flight


def test_prr_spreads_recovery_sending_over_the_acks() -> None:
    """RFC 6937 §3: 20 segments in flight, the first lost.  Two SACKs each release one
    new segment (pipe), the third enters recovery with RecoverFS = 22 segments and
    ssthresh = 11; while pipe > ssthresh PRR sends ceil(prr_delivered * ssthresh /
    RecoverFS) - prr_out: one segment for every second delivered one (never a burst),
    and by the end of recovery it has sent about ssthresh."""
    tcb = established(cfg(rack=False, tlp=False))
    flight = grow_to_20(tcb)
    peer = SackPeer(tcb)
    peer.got.update(seq.sub(seg_at(i), U0) for i in range(10))
    queue = deque(flight[1:])  # S10 is lost
    per_ack: list[int] = []
    rec_out = 0
    t = 1.2
    started = False
    while queue:
        s = queue.popleft()
        out = peer.deliver(s, t)
        t += 0.001
        queue.extend(o for o in out if o.payload)
        rec = tcb.conn.info()["in_recovery"]
        if rec or started:
            started = True
            per_ack.append(len(data_segs(out)))
            rec_out += sum(len(o.payload) for o in out)
        if started and not rec:
            break
    st = tcb.conn.stats
    assert st["recoveries"] == 1 and st["rto_fired"] == 0
    ssthresh = tcb.conn.ssthresh
    assert ssthresh == 22 * MSS_TS // 2
    assert max(per_ack) == 1  # never more than one segment per ACK: no burst
    # The retransmission goes at once (prr_out = 1); then the formula allows the next
    # segment when prr_delivered reaches 4 (ceil(4 * 11/22) - 1 = 1), then every second.
    assert per_ack[:8] == [1, 0, 0, 1, 0, 1, 0, 1]
    # The whole recovery sent about ssthresh: within two segments of it.
    assert abs(rec_out - ssthresh) <= 2 * MSS_TS, (rec_out / MSS_TS, ssthresh / MSS_TS)
    # Recovery ends with cwnd = ssthresh (RFC 6937 §3, RFC 6675 §5).
    assert tcb.conn.cwnd == ssthresh


def test_prr_slow_start_reduction_bound_when_pipe_falls_below_ssthresh() -> None:
    """RFC 6937 §3 (PRR-SSRB): with most of the flight lost, pipe < ssthresh and PRR may
    send up to ssthresh - pipe, so recovery is not starved: every lost segment that fits
    goes out on the first ACK that reveals the losses."""
    tcb = established(cfg(rack=False, tlp=False))
    flow(tcb, 10)
    # S0..S5 lost; S6..S9 SACKed: pipe = 0, ssthresh = 5 segments.
    out = tcb.ack(U0, 1.1, sack=((seg_at(6), seg_at(10)),))
    ssthresh = tcb.conn.ssthresh
    assert ssthresh == 10 * MSS_TS // 2
    # S0..S5 each have four SACKed segments above: all six are lost (DupThresh); pipe = 0,
    # so PRR-SSRB allows min(ssthresh - pipe, delivered + MSS) = 5 segments at once.
    assert data_segs(out) == [(seg_at(i), MSS_TS) for i in range(5)]
    assert sum(len(s.payload) for s in out) <= ssthresh + MSS_TS


# ====================================================================== ECN (RFC 3168)
@pytest.mark.parametrize("mode", ["passive", "on"])
def test_ecn_setup_syn_answered_with_ece_on_syn_ack(mode: str) -> None:
    """RFC 3168 §6.1.1: an ECN-setup SYN (ECE|CWR) is answered by an ECN-setup SYN-ACK
    (ECE only) when ECN is enabled; neither SYN nor SYN-ACK is ECT."""
    tcb, synack = passive(cfg(ecn=mode), flags=SYN | ECE | CWR)
    assert synack.flags == SYN | ACK | ECE
    assert synack.ecn == 0
    assert tcb.conn.ecn_ok is True
    assert tcb.conn.info()["ecn"] is True


def test_ecn_setup_syn_never_rejected_when_ecn_is_off() -> None:
    """The interop trap (RFC 3168 §6.1.1.1): ECE|CWR on a SYN is no reason to refuse
    or reset; with ECN off we answer a plain SYN-ACK and the connection works."""
    tcb, synack = passive(cfg(ecn="off"), flags=SYN | ECE | CWR)
    assert synack.flags == SYN | ACK
    assert tcb.state is S.SYN_RECEIVED
    tcb.feed(Segment(CPORT, SPORT, IRS + 1, ISS + 1, ACK, 65535), 0.1)
    assert tcb.state is S.ESTABLISHED
    assert tcb.conn.ecn_ok is False
    out = tcb.send(b"data", 0.2)
    assert [s.ecn for s in out] == [0]


@pytest.mark.parametrize("flags", [SYN | ECE, SYN | CWR, SYN])
def test_non_ecn_setup_syn_gets_a_non_ecn_syn_ack(flags: int) -> None:
    """RFC 3168 §6.1.1: only ECE *and* CWR make an ECN-setup SYN; otherwise the SYN-ACK
    MUST NOT be ECN-setup."""
    tcb, synack = passive(cfg(ecn="on"), flags=flags)
    assert synack.flags & (ECE | CWR) == 0
    assert tcb.conn.ecn_ok is False


@pytest.mark.parametrize(("synack_flags", "ok"), [(ECE, True), (ECE | CWR, False), (0, False)])
def test_ecn_active_negotiation(synack_flags: int, ok: bool) -> None:
    """RFC 3168 §6.1.1: ecn='on' sends an ECN-setup SYN; only a SYN-ACK with ECE and not
    CWR enables ECN (§6.1.1.2: ECE|CWR is a reflecting middlebox or peer)."""
    tcb = new_conn(cfg(ecn="on"))
    syn = tcb.sent[0][1]
    assert syn.flags == SYN | ECE | CWR and syn.ecn == 0
    tcb.feed(
        Segment(
            SPORT,
            CPORT,
            IRS,
            ISS + 1,
            SYN | ACK | synack_flags,
            65535,
            mss=1460,
            wscale=7,
            sack_permitted=True,
            tsval=peer_ts(0.1),
            tsecr=syn.tsval,
        ),
        0.1,
    )
    assert tcb.state is S.ESTABLISHED
    assert tcb.conn.ecn_ok is ok


def test_ecn_passive_mode_does_not_ask() -> None:
    tcb = new_conn(cfg(ecn="passive"))
    assert tcb.sent[0][1].flags == SYN


def test_ecn_data_ect0_pure_acks_and_retransmissions_not_ect() -> None:
    """RFC 3168 §6.1.2: new data is ECT(0); §6.1.4: pure ACKs are not-ECT; §6.1.5:
    retransmissions MUST NOT be ECT."""
    tcb = established(cfg(ecn="on", tlp=False), flags=ECE)
    assert tcb.conn.ecn_ok
    out = tcb.send(b"e" * 100, 1.0)
    assert [s.ecn for s in out] == [ECT0]
    sent = tcb.run_timers(2.0)
    assert [(s.payload, s.ecn) for _, s in sent] == [(b"e" * 100, 0)]
    (ack,) = tcb.feed(tcb.peer(D0, U0 + 100, payload=b"r" * 10, t=2.1), 2.1) + tcb.fire(2.4)
    assert ack.payload == b"" and ack.ecn == 0


def test_ecn_receiver_echoes_ce_until_cwr() -> None:
    """RFC 3168 §6.1.3: a CE data segment is ACKed at once with ECE, and ECE stays on
    every ACK until a segment with CWR arrives."""
    tcb = established(cfg(ecn="on", delayed_ack=0.2), flags=ECE)
    (a1,) = tcb.feed(tcb.peer(D0, U0, payload=b"1" * 100, t=1.0, ecn=CE), 1.0)
    assert a1.flags & ECE and a1.ack == D0 + 100  # not delayed
    tcb.feed(tcb.peer(D0 + 100, U0, payload=b"2" * 100, t=1.1, ecn=ECT0), 1.1)
    (a2,) = tcb.fire(1.3)
    assert a2.flags & ECE
    (a3,) = tcb.feed(
        tcb.peer(D0 + 200, U0, ACK | CWR, payload=b"3" * 100, t=1.4, ecn=ECT0), 1.4
    ) + tcb.fire(1.6)
    assert not a3.flags & ECE
    assert tcb.conn.stats["ecn_ce_in"] == 1


def test_ecn_sender_reduces_once_per_window_and_sets_cwr() -> None:
    """RFC 3168 §6.1.2: on ECE the sender halves cwnd (NewReno) once per window of data,
    sets CWR on the first new data segment after, and reacts again only to ECE for data
    sent after the reduction."""
    tcb = established(cfg(ecn="on", rack=False, tlp=False), flags=ECE)
    data = bytes(40 * MSS_TS)
    tcb.send(data, 1.0)
    out = tcb.ack(seg_at(1), 1.1, flags=ACK | ECE)
    st = tcb.conn.stats
    assert st["ecn_reductions"] == 1
    assert tcb.conn.ssthresh == 9 * MSS_TS // 2
    assert tcb.conn.cwnd == tcb.conn.ssthresh
    assert st["retransmits"] == 0  # ECN is no loss
    new = [s for s in tcb.out(1.1) + out if s.payload]
    assert new == [] or (new[0].flags & CWR)
    # more ECE for the same window: no second reduction
    for i in range(2, 10):
        out = tcb.ack(seg_at(i), 1.1 + i / 100, flags=ACK | ECE)
        new += [s for s in out if s.payload]
    assert st["ecn_reductions"] == 1
    assert new and new[0].flags & CWR and new[0].ecn == ECT0
    assert all(not s.flags & CWR for s in new[1:])
    # ECE for data sent after the reduction: a new reduction
    top = seq.sub(tcb.conn.snd_nxt, U0) // MSS_TS
    tcb.ack(seg_at(top), 1.5, flags=ACK | ECE)
    assert st["ecn_reductions"] == 2


def test_ecn_zero_window_probe_is_not_ect() -> None:
    """RFC 3168 §6.1.6: the sender MUST NOT set ECT or CWR on window probes."""
    tcb = established(cfg(ecn="on"), flags=ECE, window=0)
    tcb.send(b"P" * 3000, 1.0)
    sent = tcb.run_timers(20.0)
    probes = [s for _, s in sent if s.payload]
    assert len(probes) >= 3
    assert [s.ecn for s in probes] == [0] * len(probes)


def test_ecn_cwr_after_fast_retransmit_reduction() -> None:
    """RFC 3168 §6.1.2: 'When an ECN-Capable TCP sender reduces its congestion window for
    any reason (because of a retransmit timeout, a Fast Retransmit, or in response to an
    ECN Notification), the TCP sender sets the CWR flag in the TCP header of the first
    new data packet sent after the window reduction.'"""
    tcb = established(cfg(ecn="on", rack=False, tlp=False), flags=ECE)
    tcb.send(bytes(40 * MSS_TS), 1.0)
    first = {s.seq for _, s in tcb.sent if s.payload}
    peer = SackPeer(tcb)
    t = 1.1
    new: list[Segment] = []
    for i in (0, *range(2, 10)):  # S1 is lost
        s = Segment(SPORT, CPORT, seg_at(i), IRS + 1, ACK, 0)
        out = peer.deliver(s, t)
        t += 0.001
        if tcb.conn.stats["fast_retransmits"]:
            new += [o for o in out if o.payload and o.seq not in first]
        first |= {o.seq for o in out if o.payload}
    assert tcb.conn.stats["fast_retransmits"] == 1
    assert tcb.conn.stats["ecn_reductions"] == 0
    assert new, "PRR should have released new data during recovery"
    assert new[0].ecn == ECT0
    assert new[0].flags & CWR


def test_ecn_echo_for_a_window_already_reduced_by_recovery_is_not_a_second_reduction() -> None:
    """RFC 3168 §6.1.2: 'the TCP sender's congestion window should be reduced only once
    in response to a series of dropped and/or CE packets from a single window of data'
    and ssthresh is not decreased again within the same round trip.  The peer saw CE in
    the window that also lost S1: its ECE, on ACKs up to the recovery point, must not
    cause a second reduction once recovery has ended."""
    tcb = established(cfg(ecn="on", rack=False, tlp=False), flags=ECE)
    tcb.send(bytes(40 * MSS_TS), 1.0)  # S0..S9
    tcb.ack(seg_at(1), 1.1)
    tcb.ack(seg_at(1), 1.11, sack=((seg_at(2), seg_at(3)),))  # the pipe releases new data
    tcb.ack(seg_at(1), 1.12, sack=((seg_at(2), seg_at(4)),))
    tcb.ack(seg_at(1), 1.13, sack=((seg_at(2), seg_at(5)),))
    assert tcb.conn.info()["in_recovery"] and tcb.conn.stats["fast_retransmits"] == 1
    recover = tcb.conn.snd_nxt  # SND.NXT when the loss was found (RFC 6675 RecoveryPoint)
    top = seq.sub(recover, U0) // MSS_TS
    for i in range(6, top + 1):
        tcb.ack(seg_at(1), 1.13 + i / 1000, sack=((seg_at(2), seg_at(i)),), flags=ACK | ECE)
    tcb.ack(recover, 1.2, flags=ACK | ECE)  # the retransmission arrived: recovery ends
    assert not tcb.conn.info()["in_recovery"]
    ssthresh = tcb.conn.ssthresh
    tcb.ack(recover, 1.21, flags=ACK | ECE)  # still echoing CE from that same window
    assert tcb.conn.ssthresh == ssthresh
    assert tcb.conn.stats["ecn_reductions"] == 0


def test_ecn_echo_and_loss_on_the_same_ack_reduce_once() -> None:
    """RFC 3168 §6.1.2: one reduction for 'a series of dropped and/or CE packets from a
    single window of data'.  The ACK that brings the third SACK (loss) also carries ECE:
    CUBIC must reduce by beta once (11 -> 7.7 segments), not twice."""
    tcb = established(cfg(ecn="on", rack=False, tlp=False, congestion_control="cubic"), flags=ECE)
    tcb.send(bytes(40 * MSS_TS), 1.0)
    tcb.ack(seg_at(1), 1.1)
    tcb.ack(seg_at(1), 1.11, sack=((seg_at(2), seg_at(3)),))
    tcb.ack(seg_at(1), 1.12, sack=((seg_at(2), seg_at(4)),))
    before = tcb.conn.cwnd
    assert before == 11 * MSS_TS
    tcb.ack(seg_at(1), 1.13, sack=((seg_at(2), seg_at(5)),), flags=ACK | ECE)
    assert tcb.conn.stats["fast_retransmits"] == 1
    assert tcb.conn.ssthresh == pytest.approx(0.7 * before, abs=2)


# ================================================================= delayed ACK (RFC 9293)
def test_delayed_ack_at_most_200ms_for_one_segment() -> None:
    """RFC 9293 §3.8.6.3 / RFC 5681 §4.2: one full segment may wait, but at most the
    delayed-ACK time (200 ms)."""
    tcb = established(cfg(delayed_ack=0.2))
    assert tcb.feed(tcb.peer(D0, U0, payload=b"f" * MSS_TS, t=1.0), 1.0) == []
    assert tcb.conn.next_timer() == pytest.approx(1.2)
    assert tcb.fire(1.19) == []
    (ack,) = tcb.fire(1.2)
    assert ack.ack == D0 + MSS_TS and ack.tsecr == peer_ts(1.0)


def test_delayed_ack_every_second_full_segment() -> None:
    """RFC 5681 §4.2: an ACK SHOULD be generated for at least every second full-sized
    segment."""
    tcb = established(cfg(delayed_ack=0.2))
    acks = []
    for i in range(6):
        acks += tcb.feed(
            tcb.peer(D0 + i * MSS_TS, U0, payload=b"f" * MSS_TS, t=1 + i / 100), 1 + i / 100
        )
    assert [a.ack for a in acks] == [D0 + 2 * MSS_TS, D0 + 4 * MSS_TS, D0 + 6 * MSS_TS]
    assert tcb.conn.next_timer() is None


def test_out_of_order_and_hole_filling_data_acked_immediately() -> None:
    """RFC 5681 §4.2: out-of-order data -> immediate duplicate ACK (with SACK); the
    segment that fills the hole -> immediate ACK."""
    tcb = established(cfg(delayed_ack=0.2))
    (dup,) = tcb.feed(tcb.peer(D0 + 100, U0, payload=b"b" * 100, t=1.0), 1.0)
    assert dup.ack == D0 and blocks([dup]) == [((100, 200),)]
    (ack,) = tcb.feed(tcb.peer(D0, U0, payload=b"a" * 100, t=1.01), 1.01)
    assert ack.ack == D0 + 200 and ack.sack_blocks == ()


def test_delayed_ack_timeout_is_configurable_and_can_be_off() -> None:
    tcb = established(cfg(delayed_ack=0.04))
    tcb.feed(tcb.peer(D0, U0, payload=b"f", t=1.0), 1.0)
    assert tcb.conn.next_timer() == pytest.approx(1.04)
    tcb2 = established(cfg(delayed_ack=0))
    (ack,) = tcb2.feed(tcb2.peer(D0, U0, payload=b"f", t=1.0), 1.0)
    assert ack.ack == D0 + 1


# =========================================================== Nagle (RFC 9293 §3.7.4)
def test_nagle_holds_a_small_segment_while_data_is_unacknowledged() -> None:
    """RFC 9293 §3.7.4: with Nagle, a small segment waits while sent data is unACKed;
    the ACK releases everything queued meanwhile as one segment."""
    tcb = established(cfg(nodelay=False))
    assert data_segs(tcb.send(b"a" * 100, 1.0)) == [(U0, 100)]
    assert tcb.send(b"b" * 100, 1.01) == []
    assert tcb.send(b"c" * 100, 1.02) == []
    out = tcb.ack(U0 + 100, 1.1)
    assert [(s.seq, s.payload) for s in out] == [(U0 + 100, b"b" * 100 + b"c" * 100)]


def test_nagle_never_holds_full_segments() -> None:
    """RFC 9293 §3.7.4: Nagle only delays less-than-MSS segments."""
    tcb = established(cfg(nodelay=False))
    tcb.send(b"a" * 100, 1.0)
    out = tcb.send(b"b" * (2 * MSS_TS + 50), 1.01)
    assert data_segs(out) == [(U0 + 100, MSS_TS), (U0 + 100 + MSS_TS, MSS_TS)]


def test_nodelay_sends_small_segments_at_once() -> None:
    """TCP_NODELAY (nodelay=True): no Nagle delay."""
    tcb = established(cfg(nodelay=True))
    out = tcb.send(b"a" * 100, 1.0) + tcb.send(b"b" * 100, 1.01)
    assert data_segs(out) == [(U0, 100), (U0 + 100, 100)]


# ======================================= persist timer: zero-window probes (RFC 9293)
def test_zero_window_probes_back_off_and_never_give_up_while_answered_c4() -> None:
    """C4, RFC 9293 §3.8.6.1: zero window -> one-byte probes at the RTO, doubling up to
    rto_max (60 s); answered probes never time out (more than max_retransmits here)."""
    tcb = established(cfg(max_retransmits=3), window=0, t_synack=0.1)
    tcb.send(b"P" * 3000, 1.0)
    times = []
    for _ in range(8):
        t = tcb.conn.next_timer()
        assert t is not None
        out = tcb.fire(t)
        assert [(s.seq, s.payload) for s in out] == [(U0, b"P")]
        assert out[0].tsval == tcb.ts(t)
        times.append(round(t - 1.0, 6))
        assert tcb.ack(U0, t + 0.05, window=0) == []
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]
    assert tcb.state is S.ESTABLISHED
    assert tcb.conn.stats["probes"] == 8
    out = tcb.ack(U0, 200.0, window=100)  # window opens (scaled: 12800 bytes)
    assert b"".join(s.payload for s in out) == b"P" * 3000


def test_unanswered_zero_window_probes_eventually_fail_etimedout() -> None:
    """RFC 9293 §3.8.6.1 / Linux tcp_probe_timer: probes nobody answers count as
    retransmissions; after max_retransmits the connection fails (C3)."""
    tcb = established(cfg(max_retransmits=3), window=0, t_synack=0.1)
    tcb.send(b"P" * 10, 1.0)
    sent = tcb.run_timers(1000.0)
    assert [round(t - 1.0, 6) for t, s in sent if s.payload] == [1.0, 3.0, 7.0]
    assert tcb.state is S.CLOSED
    assert [e.errno for e in tcb.of(ConnectionFailed)] == [errno.ETIMEDOUT]


# ============================================================== keepalive (RFC 1122), C3
def test_keepalive_probes_then_etimedout_when_the_peer_is_gone_c3() -> None:
    """C3, RFC 1122 §4.2.3.6: after keepalive_idle without traffic an ACK with
    SEG.SEQ = SND.NXT - 1 and no data is sent, then every keepalive_interval; after
    keepalive_count unanswered probes the connection fails with ETIMEDOUT."""
    tcb = established(
        cfg(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3),
        t_synack=0.0,
    )
    sent = tcb.run_timers(100.0)
    assert [t for t, _ in sent] == [10.0, 12.0, 14.0]
    assert all((s.flags, s.seq, s.ack, s.payload) == (ACK, U0 - 1, D0, b"") for _, s in sent)
    assert tcb.state is S.CLOSED
    (fail,) = tcb.of(ConnectionFailed)
    assert fail.errno == errno.ETIMEDOUT
    assert tcb.conn.stats["keepalives"] == 3
    timers = [r for r in tcb.trace if r["ev"] == "timer" and r.get("timer") == "keepalive"]
    assert {r["concept"] for r in timers} == {"C3"}
    failed_at = [r["t"] for r in tcb.trace if r["ev"] == "error"]
    assert failed_at == [16.0]  # idle + count * interval


def test_answered_keepalive_keeps_the_connection_alive() -> None:
    """RFC 1122 §4.2.3.6: an answer to a probe restarts the idle period."""
    tcb = established(
        cfg(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3),
        t_synack=0.0,
    )
    (probe,) = [s for _, s in tcb.run_timers(10.0)]
    assert probe.seq == U0 - 1
    assert tcb.ack(U0, 10.05) == []  # the peer's ACK of the probe
    assert tcb.conn.next_timer() == pytest.approx(20.05)
    # From then on nobody answers: probes at 20.05, 22.05, 24.05, failure at 26.05.
    sent = tcb.run_timers(100.0)
    assert [round(t, 6) for t, _ in sent] == [20.05, 22.05, 24.05]
    assert [round(r["t"], 6) for r in tcb.trace if r["ev"] == "error"] == [26.05]
    assert tcb.conn.stats["keepalives"] == 4


def test_keepalive_off_arms_no_timer() -> None:
    tcb = established(cfg(keepalive=False), t_synack=0.0)
    assert tcb.conn.next_timer() is None


def test_keepalive_probe_from_the_peer_is_answered() -> None:
    """RFC 1122 §4.2.3.6: a probe (SEG.SEQ = RCV.NXT - 1) elicits an ACK."""
    tcb = established(cfg())
    out = tcb.feed(tcb.peer(D0 - 1, U0, t=5.0), 5.0)
    assert [(s.flags, s.seq, s.ack) for s in out] == [(ACK, U0, D0)]


# ================================================================ tcp_info snapshot
def test_info_snapshot_reports_the_connection() -> None:
    """A tcp_info-like snapshot: state, RTT estimator, windows, counters, options."""
    tcb = established(cfg(congestion_control="cubic"), t_synack=0.1)
    flow(tcb, 4)
    tcb.ack(seg_at(4), 1.1)
    info = tcb.conn.info()
    assert info["state"] == "ESTABLISHED"
    assert info["srtt"] == pytest.approx(0.1, abs=0.001)
    assert info["rto"] == 1.0 and info["rttvar"] > 0
    assert info["min_rtt"] == pytest.approx(0.1, abs=0.001)
    assert info["congestion_control"] == "cubic"
    # Four segments of an initial window of ten: application-limited, so no growth
    # (RFC 7661 §4; before cwnd validation this was IW10 + 2 MSS).
    assert info["cwnd"] == 10 * MSS_TS
    assert info["bytes_acked"] == 4 * MSS_TS and info["bytes_sent"] == 4 * MSS_TS
    assert info["unacked"] == 0 and info["retransmits"] == 0
    assert info["mss"] == MSS_TS and info["sack"] is True
    for key in (
        "ssthresh",
        "lost",
        "sacked",
        "delivery_rate",
        "bytes_received",
        "pipe",
        "rack_losses",
        "tlp_probes",
        "ecn_reductions",
        "paws_drops",
        "dsacks_in",
    ):
        assert key in info


# ======================================== congestion control units (RFC 5681/9438/9406)
MSS = 1000


def test_initial_window_rfc6928() -> None:
    """RFC 6928: IW = min(10*MSS, max(2*MSS, 14600))."""
    assert algorithms.create("newreno", 1448, 10).cwnd == 14480
    assert algorithms.create("cubic", 1460, 10).cwnd == 14600
    assert algorithms.create("newreno", 536, 10).cwnd == 5360
    assert algorithms.create("newreno", 9000, 10).cwnd == 18000
    with pytest.raises(ValueError, match="unknown congestion control"):
        algorithms.create("vegas", 1000, 10)


def test_newreno_slow_start_avoidance_and_loss() -> None:
    """RFC 5681 §3.1: slow start +min(acked, 2 MSS) (RFC 3465 L=2), avoidance +1 MSS per
    cwnd acked, loss: ssthresh = max(flight/2, 2 MSS), timeout: cwnd = 1 MSS."""
    cc = algorithms.create("newreno", MSS, 10)
    cc.on_ack(3 * MSS, 0, 0.0)
    assert cc.cwnd == 12 * MSS
    cc.on_loss(12 * MSS, 0.1)
    assert (cc.ssthresh, cc.cwnd) == (6 * MSS, 6 * MSS)
    for _ in range(6):
        cc.on_ack(MSS, 0, 0.2)
    assert cc.cwnd == 7 * MSS  # one MSS per window
    cc.on_timeout(7 * MSS, 0.3)
    assert (cc.ssthresh, cc.cwnd) == (3500, MSS)
    cc.on_loss(MSS, 0.4)
    assert cc.ssthresh == 2 * MSS


def cubic_after_loss(w: int, rtt: float = 0.1) -> congestion.Cubic:
    cc = algorithms.create("cubic", MSS, 10)
    assert isinstance(cc, congestion.Cubic)
    cc.on_rtt_sample(rtt, 0.0)
    cc.cwnd = w * MSS
    cc.on_loss(w * MSS, 0.0)
    cc.on_recovery_end(0.0)
    return cc


def drive(
    cc: congestion.CongestionControl, start: float, rtts: int, rtt: float = 0.1
) -> list[float]:
    """ACK one window per RTT, MSS by MSS; cwnd (segments) at the end of each RTT."""
    out = []
    t = start
    for _ in range(rtts):
        n = cc.cwnd // MSS
        for k in range(n):
            cc.on_ack(MSS, cc.cwnd, t + rtt * k / n)
        t += rtt
        out.append(cc.cwnd / MSS)
    return out


def test_cubic_reduction_by_beta_0_7() -> None:
    """RFC 9438 §4.6: on congestion ssthresh = cwnd * 0.7, cwnd = ssthresh, W_max = cwnd."""
    cc = cubic_after_loss(100)
    assert cc.ssthresh == 70 * MSS and cc.cwnd == 70 * MSS
    assert cc.w_max == 100


def test_cubic_fast_convergence() -> None:
    """RFC 9438 §4.7: a loss below the previous W_max sets W_max = cwnd * (1 + 0.7) / 2."""
    cc = cubic_after_loss(100)
    cc.cwnd = 80 * MSS
    cc.on_loss(80 * MSS, 1.0)
    assert cc.w_max == pytest.approx(80 * 1.7 / 2)
    assert cc.cwnd == 56 * MSS


def cubic_through_rto() -> tuple[Tcb, int, int]:
    """A CUBIC connection whose slow start took cwnd to 20 segments, then a window
    sent and never acknowledged until the RTO fires (the tail loss probe first).
    Returns the Tcb, cwnd just before the RTO, and SND.NXT when it fired."""
    tcb = established(cfg(congestion_control="cubic"), t_synack=0.1)
    conn = tcb.conn
    tcb.send(bytes(40 * MSS_TS), 1.0)  # the initial window: 10 segments go out
    for i in range(1, 11):  # one ACK per segment, 100 ms later: slow start to 20
        tcb.ack(seg_at(i), 1.1 + i / 1000)
    assert conn.cwnd == 20 * MSS_TS and conn.ssthresh > conn.cwnd
    while not conn.stats["rto_fired"]:
        t = conn.next_timer()
        assert t is not None and t < 10.0
        pre = conn.cwnd
        tcb.fire(t)
    assert conn.stats["tlp_probes"] == 1 and conn.stats["recoveries"] == 0
    return tcb, pre, conn.info()["snd_nxt"]


def test_cubic_timeout_collapses_to_one_segment() -> None:
    """RFC 9438 §4.8 (with RFC 5681 §3.1) through a real RTO: cwnd falls to one segment
    and ssthresh to beta_cubic = 0.7 times the cwnd the timer found (§4.6), not the 2 MSS
    floor; the head is retransmitted, one segment only."""
    tcb, pre, _ = cubic_through_rto()
    conn = tcb.conn
    assert pre == 20 * MSS_TS
    assert conn.cwnd == MSS_TS
    assert conn.ssthresh == int(0.7 * pre) > 2 * MSS_TS
    rto_time, head = tcb.sent[-1]
    assert data_segs([s for t, s in tcb.sent if t == rto_time]) == [(seg_at(10), MSS_TS)]
    assert head.seq == seg_at(10)


def test_cubic_first_ack_after_rto_starts_no_fast_recovery() -> None:
    """RFC 6582 §4 / RFC 6675 §5.1: after an RTO the sender is in loss recovery by
    slow start; the ACK of the retransmitted head, with SND.UNA still below the SND.NXT
    of the timeout, must not start a fast recovery (no second window reduction, no
    fast retransmit), and cwnd grows from one segment by slow start."""
    tcb, _, rto_nxt = cubic_through_rto()
    conn = tcb.conn
    ssthresh = conn.ssthresh
    tcb.ack(seg_at(11), 3.5)
    assert conn.snd_una == seg_at(11) and seq.lt(conn.snd_una, rto_nxt)
    assert conn.stats["recoveries"] == 0 and conn.stats["fast_retransmits"] == 0
    assert not [e for e in tcb.trace if e.get("event") == "fast_retransmit"]
    assert conn.ssthresh == ssthresh and conn.cwnd == 2 * MSS_TS


def test_cubic_window_growth_concave_then_convex_around_w_max() -> None:
    """RFC 9438 §4.2: W(t) = C (t - K)^3 + W_max: growth slows while approaching W_max
    (concave), plateaus around t = K = cbrt(W_max (1 - beta) / C), then accelerates
    (convex).  W_max = 200 segments, RTT 100 ms: K = cbrt(150) ~ 5.3 s."""
    cc = cubic_after_loss(200)
    k = (200 * 0.3 / 0.4) ** (1 / 3)
    w = drive(cc, 0.0, 100)
    inc = [b - a for a, b in itertools.pairwise([140.0, *w])]
    ki = round(k / 0.1)
    assert w[ki - 2] == pytest.approx(200, abs=3)  # reaches W_max near t = K
    early = inc[1:11]
    late = inc[ki + 10 : ki + 20]
    assert sum(early) > 3 * sum(inc[ki - 5 : ki + 5])  # concave: fast, then flat near K
    assert sum(late) > 3 * sum(inc[ki - 5 : ki + 5])  # convex: fast again beyond K
    assert all(a >= b - 0.5 for a, b in itertools.pairwise(early))  # slowing
    assert all(b >= a - 0.5 for a, b in itertools.pairwise(late))  # speeding up
    assert max(w[: ki - 2]) <= 201  # never beyond W_max before K


def test_cubic_reno_friendly_alpha_becomes_one_above_the_prior_window() -> None:
    """RFC 9438 §4.3: in the Reno-friendly region, once W_est has reached cwnd_prior the
    estimate grows by one segment per RTT, like Reno.  Tiny RTT so that W_cubic stays
    near W_max and W_est decides."""
    cc = cubic_after_loss(20, rtt=0.001)
    w = drive(cc, 0.0, 60, rtt=0.001)  # 60 RTTs: W_est ~ 14 + 0.53*60 > 20
    above = [x for x in w if x > 22]
    assert len(above) >= 10, w
    grow = [b - a for a, b in itertools.pairwise(w) if a > 22]
    assert min(grow) >= 0.9, grow


def test_hystart_exits_slow_start_when_rtt_rises_by_the_threshold() -> None:
    """RFC 9406 §4.2-4.3: after a round of >= 8 samples, a round whose minimum RTT is at
    least last_min + clamp(last_min/8, 4 ms, 16 ms) enters Conservative Slow Start
    (growth divided by 4); after 5 CSS rounds slow start ends (ssthresh = cwnd)."""
    cc = algorithms.create("cubic", MSS, 10)
    assert isinstance(cc, congestion.Cubic)

    def round_of(t: float, rtt: float, n: int = 8) -> None:
        cc.on_round_start(t)
        for _ in range(n):
            cc.on_rtt_sample(rtt, t)

    round_of(0.0, 0.100)
    round_of(0.1, 0.1124)  # +12.4 ms < 100/8 = 12.5 ms: still slow start
    assert cc.hystart.in_css is False
    round_of(0.2, 0.100)
    round_of(0.3, 0.113, n=7)  # +13 ms, but only 7 samples so far (N_RTT_SAMPLE = 8)
    assert cc.hystart.in_css is False
    cc.on_rtt_sample(0.113, 0.3)
    assert cc.hystart.in_css is True
    before = cc.cwnd
    cc.on_ack(4 * MSS, 0, 0.3)
    assert cc.cwnd == before + MSS  # CSS: a quarter of the slow-start growth
    assert cc.in_slow_start
    for r in range(4):
        round_of(0.4 + r / 10, 0.113)
        assert cc.in_slow_start
    round_of(0.8, 0.113)  # the fifth CSS round: leave slow start
    assert cc.ssthresh == cc.cwnd
    assert not cc.in_slow_start


def test_hystart_threshold_is_clamped_between_4_and_16_ms() -> None:
    """RFC 9406 §4.2: RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms)."""
    for base, rise_ok, rise_short in ((0.010, 0.0041, 0.0039), (0.400, 0.0161, 0.0159)):
        for rise, expect in ((rise_ok, True), (rise_short, False)):
            h = congestion.HyStartPP()
            h.round_start()
            for _ in range(8):
                h.sample(base)
            h.round_start()
            for _ in range(8):
                h.sample(base + rise)
            assert h.in_css is expect, (base, rise)


def test_hystart_spurious_exit_resumes_slow_start() -> None:
    """RFC 9406 §4.3: in CSS, a round minimum below the CSS baseline means the RTT
    increase was spurious: back to slow start."""
    h = congestion.HyStartPP()
    h.round_start()
    for _ in range(8):
        h.sample(0.100)
    h.round_start()
    for _ in range(8):
        h.sample(0.120)
    assert h.in_css
    h.round_start()
    for _ in range(7):  # RFC 9406 §4.3: not judged before N_RTT_SAMPLE samples
        h.sample(0.110)
        assert h.in_css
    h.sample(0.110)
    assert h.in_css is False
    assert h.growth(4000) == 4000


def test_hystart_runs_in_the_initial_slow_start_only() -> None:
    """RFC 9406 §4.2: after a congestion event, slow start (below ssthresh after an RTO)
    is the standard one: a rising RTT no longer enters CSS nor slows growth."""
    cc = algorithms.create("cubic", MSS, 10)
    assert isinstance(cc, congestion.Cubic)
    cc.on_timeout(10 * MSS, 0.0)
    assert cc.in_slow_start
    for t, rtt in ((0.1, 0.100), (0.2, 0.150)):
        cc.on_round_start(t)
        for _ in range(8):
            cc.on_rtt_sample(rtt, t)
    assert cc.hystart.in_css is False
    before = cc.cwnd
    cc.on_ack(2 * MSS, 0, 0.3)
    assert cc.cwnd == before + 2 * MSS
