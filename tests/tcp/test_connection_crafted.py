"""Crafted segments against one sans-IO Connection (smoltcp style).

Every test plays the peer by hand: fixed ISNs (ours 1000, the peer's 5000),
fixed times, exact segments in and exact segments out.  Concept IDs refer to
shared/concepts.md; RFC sections are RFC 9293 unless stated otherwise.
"""

from __future__ import annotations

import errno
import random
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.crafted import (
    CLIENT_IP,
    CPORT,
    IRS,
    ISS,
    MASK,
    SERVER_IP,
    SPORT,
    WIN,
    S,
    Tcb,
    active,
    end,
    established,
    passive,
    passive_established,
)
from synack.tcp import seq
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.events import (
    Closed,
    Connected,
    ConnectionFailed,
    ConnectionReset,
    DataReceived,
    EndOfStream,
    Event,
    StateChanged,
)
from synack.wire.segment import ACK, ECE, FIN, PSH, RST, SYN, Segment


# ==================================================================== handshake
def test_active_open_emits_syn_with_mss_c6() -> None:
    """C6, §3.5: CLOSED -> SYN-SENT, <SEQ=ISS><CTL=SYN> with our MSS option (§3.7.1)."""
    events: deque[Event] = deque()
    conn = Connection.open_active(
        CLIENT_IP,
        CPORT,
        SERVER_IP,
        SPORT,
        iss=ISS,
        now=0.0,
        events=events,
        config=TcpConfig.classic(),
    )
    assert conn.state is S.SYN_SENT
    out = conn.segments_to_send(0.0)
    assert out == [Segment(CPORT, SPORT, ISS, 0, SYN, 65535, mss=1460)]
    assert [(e.old, e.new, e.concept) for e in events if isinstance(e, StateChanged)] == [
        (S.CLOSED, S.SYN_SENT, "C6")
    ]
    assert conn.snd_una == ISS and conn.snd_nxt == ISS + 1
    assert conn.next_timer() == 1.0  # RFC 6298 §2.1 initial RTO
    assert conn.segments_to_send(0.5) == []  # nothing more until the timer


def test_syn_mss_option_follows_config() -> None:
    tcb = active(TcpConfig.classic(mss=536, rcv_buf=30000))
    tcb.conn.handle_timer(1.0)
    assert tcb.out(1.0) == [tcb.ours(ISS, 0, SYN, 30000, mss=536)]


def test_syn_ack_establishes_c8() -> None:
    """C8: SYN-ACK with ack=ISS+1 -> ESTABLISHED; we ACK the peer's ISN + 1."""
    tcb = active()
    out = tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK, 8192, mss=1000), 0.05)
    assert out == [tcb.ours(ISS + 1, IRS + 1, ACK, 65535)]
    assert tcb.state is S.ESTABLISHED
    assert tcb.transitions() == [(S.CLOSED, S.SYN_SENT, "C6"), (S.SYN_SENT, S.ESTABLISHED, "C8")]
    assert [type(e) for e in tcb.events] == [StateChanged, StateChanged, Connected]
    c = tcb.conn
    assert (c.snd_una, c.snd_nxt, c.rcv_nxt, c.irs) == (ISS + 1, ISS + 1, IRS + 1, IRS)
    assert c.snd_wnd == 8192
    assert c.eff_mss == 1000  # min(ours, the peer's MSS option)
    assert c.next_timer() is None  # SYN acked: no retransmission timer, nothing else pending
    # The trace names the concepts too ("explain" output).
    states = [(r["old"], r["new"], r["concept"]) for r in tcb.trace if r["ev"] == "state"]
    assert states == [("CLOSED", "SYN-SENT", "C6"), ("SYN-SENT", "ESTABLISHED", "C8")]


def test_syn_ack_without_mss_uses_536() -> None:
    """§3.7.1: no MSS option means 536 for IPv4; data segments never exceed it."""
    tcb = established(mss=None)
    assert tcb.conn.eff_mss == 536
    tcb.conn.send(b"x" * 1200)
    assert [len(s.payload) for s in tcb.out(0.0)] == [536, 536, 128]


def test_passive_open_syn_ack_c7() -> None:
    """C7: LISTEN -> SYN-RECEIVED answering <SEQ=ISS><ACK=client ISN+1><CTL=SYN,ACK>."""
    tcb, synack = passive()
    assert synack == Segment(SPORT, CPORT, ISS, IRS + 1, SYN | ACK, 65535, mss=1460)
    assert tcb.state is S.SYN_RECEIVED
    assert tcb.conn.passive
    assert tcb.transitions() == [(S.LISTEN, S.SYN_RECEIVED, "C7")]
    assert tcb.of(Connected) == []
    assert tcb.conn.next_timer() == 1.0


def test_passive_final_ack_establishes_c9() -> None:
    """C9: the ACK of our SYN -> ESTABLISHED; no reply to that pure ACK (C20)."""
    tcb, _ = passive()
    tcb.events.clear()
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=4000), 0.1)
    assert out == []
    assert tcb.state is S.ESTABLISHED
    assert tcb.transitions() == [(S.SYN_RECEIVED, S.ESTABLISHED, "C9")]
    assert len(tcb.of(Connected)) == 1
    assert tcb.conn.snd_una == ISS + 1
    assert tcb.conn.snd_wnd == 4000
    assert tcb.conn.next_timer() is None


def test_passive_synack_retransmitted_then_freed_c27() -> None:
    """C27: no final ACK: the SYN-ACK is resent a bounded number of times, then state freed."""
    tcb, synack = passive(TcpConfig.classic(synack_retries=2))
    sent = tcb.run_timers(100.0)
    assert sent == [(1.0, synack), (3.0, synack)]
    assert tcb.state is S.CLOSED
    assert tcb.transitions()[-1] == (S.SYN_RECEIVED, S.CLOSED, "C27")
    assert tcb.of(ConnectionFailed) == []  # nobody to tell: the listener just forgets
    assert tcb.conn.next_timer() is None


def test_syn_received_unacceptable_ack_gets_rst() -> None:
    """§3.10.7.4 SYN-RECEIVED: ACK outside SND.UNA < SEG.ACK =< SND.NXT -> <SEQ=SEG.ACK><RST>."""
    tcb, _ = passive()
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 50), 0.1)
    assert out == [tcb.ours(ISS + 50, 0, RST, 0)]
    assert tcb.state is S.SYN_RECEIVED


def test_passive_retransmitted_syn_resends_synack() -> None:
    tcb, synack = passive()
    assert tcb.feed(tcb.peer(IRS, 0, SYN, mss=1460), 0.3) == [synack]
    assert tcb.state is S.SYN_RECEIVED


def test_simultaneous_open() -> None:
    """§3.5 figure 7: SYN crosses our SYN -> SYN-RECEIVED (SYN-ACK); its SYN-ACK -> ESTABLISHED."""
    tcb = active()
    out = tcb.feed(tcb.peer(IRS, 0, SYN, mss=1460), 0.1)
    assert out == [tcb.ours(ISS, IRS + 1, SYN | ACK, mss=1460)]
    assert tcb.state is S.SYN_RECEIVED
    out = tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK, mss=1460), 0.2)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED
    assert tcb.transitions() == [
        (S.CLOSED, S.SYN_SENT, "C6"),
        (S.SYN_SENT, S.SYN_RECEIVED, "C7"),
        (S.SYN_RECEIVED, S.ESTABLISHED, "C9"),
    ]
    assert tcb.conn.stats["retransmits"] == 0


def test_simultaneous_open_close_in_syn_received_resends_synack_then_fin_c10() -> None:
    """§3.10.4 CLOSE in SYN-RECEIVED: form a FIN and enter FIN-WAIT-1 (C10), but the
    SYN-ACK is still retransmitted by the RTO until acked (RFC 6298 §5); the FIN is
    queued behind it and goes out on the ACK of our SYN; the close then completes."""
    tcb = active(TcpConfig.classic(msl=1.0))
    synack = tcb.ours(ISS, IRS + 1, SYN | ACK, mss=1460)
    assert tcb.feed(tcb.peer(IRS, 0, SYN, mss=1460), 0.1) == [synack]  # this one is lost
    tcb.conn.close(0.2)
    assert tcb.state is S.FIN_WAIT_1
    assert tcb.out(0.2) == []  # the FIN waits for the ACK of our SYN
    assert tcb.run_timers(3.1) == [(1.1, synack), (3.1, synack)]  # RTO 1 s, backed off 2 s
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1), 3.5)  # the peer finally ACKs our SYN
    assert out == [tcb.ours(ISS + 1, IRS + 1, FIN | ACK)]
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 2), 3.6) == []
    assert tcb.state is S.FIN_WAIT_2
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, FIN | ACK), 3.7)
    assert out == [tcb.ours(ISS + 2, IRS + 2, window=WIN - 1)]
    assert tcb.state is S.TIME_WAIT
    tcb.run_timers(10.0)
    assert tcb.state is S.CLOSED
    assert tcb.of(ConnectionFailed) == []


def test_simultaneous_open_shutdown_in_syn_received_peer_synack_acks_our_syn() -> None:
    """§3.5 figure 7 with shutdown() in SYN-RECEIVED: the peer's SYN-ACK (acking our SYN)
    is taken as in SYN-RECEIVED, and the queued FIN follows it (§3.10.4)."""
    tcb = active()
    tcb.feed(tcb.peer(IRS, 0, SYN, mss=1460), 0.1)
    tcb.conn.shutdown(0.2)
    assert tcb.out(0.2) == []
    out = tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK, mss=1460), 0.3)
    assert out == [tcb.ours(ISS + 1, IRS + 1, FIN | ACK)]
    assert tcb.state is S.FIN_WAIT_1 and tcb.conn.snd_una == ISS + 1


def test_synack_lost_passive_data_rto_reset_to_3s_rfc6298_5_7() -> None:
    """RFC 6298 §5.7 on the passive side: the SYN-ACK timed out with RTO < 3 s and no RTT
    sample came (Karn, §3): data transmission starts with RTO 3 s, not the backed-off 2 s."""
    tcb, synack = passive()
    assert tcb.run_timers(1.0) == [(1.0, synack)]
    tcb.feed(tcb.peer(IRS + 1, ISS + 1), 1.5)
    assert_data_starts_with_rto_3s(tcb)


def test_syn_ack_with_data_and_fin_delivers_text_then_eof_c11() -> None:
    """§3.10.7.3 SYN-SENT fourth: other text or controls on the SYN-ACK continue at the
    sixth step: the 100 bytes are delivered, then the FIN (EOF, CLOSE-WAIT, C11), and the
    ACK covers ISN+1+100+1."""
    tcb = active()
    out = tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK | FIN, payload=b"d" * 100, mss=1460), 0.1)
    assert [(s.seq, s.ack, s.flags) for s in out] == [(ISS + 1, IRS + 1 + 100 + 1, ACK)]
    assert tcb.state is S.CLOSE_WAIT
    assert tcb.conn.recv() == b"d" * 100
    assert tcb.conn.eof_received
    assert [type(e) for e in tcb.events if isinstance(e, (DataReceived, EndOfStream))] == [
        DataReceived,
        EndOfStream,
    ]


# =================================================================== SYN-SENT
@pytest.mark.parametrize("bad_ack", [ISS, ISS + 2, ISS - 1, ISS + 70000, 0])
def test_syn_sent_bad_ack_gets_rst_state_unchanged(bad_ack: int) -> None:
    """§3.10.7.3: SEG.ACK =< ISS or > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>, stay in SYN-SENT."""
    tcb = active()
    out = tcb.feed(tcb.peer(IRS, bad_ack, SYN | ACK, mss=1460), 0.1)
    assert out == [tcb.ours(bad_ack, 0, RST, 0)]
    assert tcb.state is S.SYN_SENT
    assert tcb.conn.next_timer() == 1.0  # SYN still awaiting its ACK
    # and the real SYN-ACK still works afterwards
    out = tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK, mss=1460), 0.2)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED


def test_syn_sent_rst_ack_refused_c21() -> None:
    """C21: RST+ACK acking our SYN -> ConnectionFailed(ECONNREFUSED), CLOSED, no reply."""
    tcb = active()
    out = tcb.feed(tcb.peer(0, ISS + 1, RST | ACK, 0), 0.1)
    assert out == []
    assert tcb.state is S.CLOSED
    (fail,) = tcb.of(ConnectionFailed)
    assert fail.errno == errno.ECONNREFUSED and fail.name == "ECONNREFUSED"
    assert tcb.transitions()[-1] == (S.SYN_SENT, S.CLOSED, "C21")
    assert isinstance(tcb.events[-1], Closed)
    assert tcb.conn.next_timer() is None
    assert tcb.run_timers(1000.0) == []  # no SYN retransmission after that


def test_syn_sent_rst_without_ack_ignored() -> None:
    """§3.10.7.3: an RST without ACK in SYN-SENT is dropped."""
    tcb = active()
    assert tcb.feed(tcb.peer(IRS, 0, RST, 0), 0.1) == []
    assert tcb.state is S.SYN_SENT
    assert tcb.of(ConnectionFailed) == []
    assert tcb.conn.next_timer() == 1.0


def test_syn_sent_rst_with_bad_ack_ignored() -> None:
    """§3.10.7.3: unacceptable ACK on an RST: drop it (never answer an RST with an RST)."""
    tcb = active()
    assert tcb.feed(tcb.peer(0, ISS + 7, RST | ACK, 0), 0.1) == []
    assert tcb.state is S.SYN_SENT
    assert tcb.of(ConnectionFailed) == []


def test_syn_sent_ack_without_syn_dropped() -> None:
    tcb = active()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1), 0.1) == []
    assert tcb.state is S.SYN_SENT


# ========================================================= acceptability (C14)
def test_old_duplicate_dropped_and_acked_c14() -> None:
    """§3.10.7.4: a segment wholly below RCV.NXT is dropped, answered <ACK=RCV.NXT>."""
    tcb = established()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK | PSH, payload=b"hello"), 0.1) == []
    assert tcb.conn.rcv_nxt == IRS + 6
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, ACK | PSH, payload=b"hello"), 0.15)
    assert out == [tcb.ours(ISS + 1, IRS + 6, window=WIN - 5)]
    assert tcb.conn.recv() == b"hello"
    assert [e.nbytes for e in tcb.of(DataReceived)] == [5]
    assert tcb.conn.stats["dup_segs_in"] == 1


def test_partially_old_segment_delivers_only_new_bytes_c14() -> None:
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"hello"), 0.1)
    assert tcb.conn.stats["bytes_received"] == 5
    tcb.feed(tcb.peer(IRS + 3, ISS + 1, payload=b"llo wo"), 0.2)
    assert tcb.conn.stats["bytes_received"] == 8  # only " wo" was new
    assert tcb.conn.rcv_nxt == IRS + 9
    assert tcb.conn.recv() == b"hello wo"
    # Undrained DataReceived events of one connection merge into one (per batch).
    assert [e.nbytes for e in tcb.of(DataReceived)] == [8]


def test_data_beyond_window_trimmed() -> None:
    """§3.10.7.4: only the part inside RCV.WND is kept."""
    tcb = established(TcpConfig.classic(rcv_buf=1000))
    data = bytes(range(256)) * 6  # 1536 bytes, window 1000
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=data), 0.1)
    assert tcb.conn.rcv_nxt == IRS + 1 + 1000
    assert tcb.conn.readable == 1000
    acks = [s for _, s in tcb.run_timers(1.0)]
    assert acks == [tcb.ours(ISS + 1, IRS + 1001, window=0)]
    assert tcb.conn.recv() == data[:1000]


def test_segment_wholly_beyond_window_not_accepted() -> None:
    tcb = established(TcpConfig.classic(rcv_buf=1000))
    out = tcb.feed(tcb.peer(IRS + 1001, ISS + 1, payload=b"z" * 100), 0.1)
    assert out == [tcb.ours(ISS + 1, IRS + 1, window=1000)]
    assert tcb.conn.stats["unacceptable_in"] == 1
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"a" * 1000), 0.2)
    # the refused bytes were not held for later
    assert tcb.conn.rcv_nxt == IRS + 1001
    assert tcb.conn.recv() == b"a" * 1000


def test_zero_window_refuses_data_but_processes_ack_c4() -> None:
    """§3.10.7.4: RCV.WND = 0: no data accepted, but the ACK field is still processed."""
    tcb = established(TcpConfig.classic(rcv_buf=1000))
    tcb.conn.send(b"q" * 100)
    assert [len(s.payload) for s in tcb.out(0.0)] == [100]
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"a" * 1000), 0.1)  # fills the window
    tcb.run_timers(0.5)
    assert tcb.conn.rcv_wnd == 0
    out = tcb.feed(tcb.peer(IRS + 1001, ISS + 101, payload=b"b" * 100), 0.6)
    assert out == [tcb.ours(ISS + 101, IRS + 1001, window=0)]
    assert tcb.conn.snd_una == ISS + 101  # the ACK was processed
    assert tcb.conn.readable == 1000  # the data was not
    assert tcb.conn.recv() == b"a" * 1000


def test_out_of_order_held_then_delivered_c14() -> None:
    """C14: a segment after a gap is held and a duplicate ACK sent at once; the gap fills."""
    tcb = established()
    out = tcb.feed(tcb.peer(IRS + 101, ISS + 1, payload=b"B" * 100), 0.1)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]  # immediate duplicate ACK
    assert tcb.conn.readable == 0
    assert tcb.of(DataReceived) == []
    out = tcb.feed(tcb.peer(IRS + 201, ISS + 1, payload=b"C" * 50), 0.11)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"A" * 100), 0.12)
    assert out == [tcb.ours(ISS + 1, IRS + 251, window=WIN - 250)]  # hole filled: ACK now
    assert tcb.conn.recv() == b"A" * 100 + b"B" * 100 + b"C" * 50
    assert [e.nbytes for e in tcb.of(DataReceived)] == [250]


def test_out_of_order_fin_waits_for_the_gap_c14_c11() -> None:
    """A FIN after a hole is not acted on until every byte before it has arrived."""
    tcb = established()
    out = tcb.feed(tcb.peer(IRS + 101, ISS + 1, FIN | ACK, payload=b"B" * 100), 0.1)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED
    assert tcb.of(EndOfStream) == []
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"A" * 100), 0.2)
    assert out == [tcb.ours(ISS + 1, IRS + 202, window=WIN - 201)]  # 200 bytes + FIN
    assert tcb.state is S.CLOSE_WAIT
    assert len(tcb.of(EndOfStream)) == 1
    assert tcb.conn.recv() == b"A" * 100 + b"B" * 100


# ===================================================================== RFC 5961
def test_rst_at_rcv_nxt_resets_c19() -> None:
    """RFC 5961 §3.2: RST with SEG.SEQ == RCV.NXT resets: ECONNRESET, CLOSED."""
    tcb = established()
    tcb.conn.send(b"pending")
    tcb.out(0.0)
    assert tcb.feed(tcb.peer(IRS + 1, 0, RST, 0), 0.1) == []
    assert tcb.state is S.CLOSED
    (fail,) = tcb.of(ConnectionFailed)
    assert isinstance(fail, ConnectionReset)
    assert fail.errno == errno.ECONNRESET
    assert tcb.transitions() == [(S.ESTABLISHED, S.CLOSED, "C19")]
    assert isinstance(tcb.events[-1], Closed)
    assert tcb.conn.next_timer() is None
    assert tcb.run_timers(100.0) == []


@pytest.mark.parametrize("offset", [1, 100, 65534])
def test_rst_in_window_gets_challenge_ack(offset: int) -> None:
    """RFC 5961 §3.2: in-window RST not at RCV.NXT -> challenge ACK; connection survives."""
    tcb = established()
    out = tcb.feed(tcb.peer(IRS + 1 + offset, 0, RST, 0), 0.1)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED
    assert tcb.of(ConnectionFailed) == []
    assert tcb.conn.stats["challenge_acks"] == 1


@pytest.mark.parametrize("seq_no", [IRS + 1 + 65535, IRS + 1 + 200000, IRS, IRS - 1000])
def test_rst_out_of_window_silently_dropped(seq_no: int) -> None:
    tcb = established()
    assert tcb.feed(tcb.peer(seq_no, 0, RST, 0), 0.1) == []
    assert tcb.state is S.ESTABLISHED
    assert tcb.conn.next_timer() is None


@pytest.mark.parametrize("seq_no", [IRS + 1, IRS + 500, IRS])
def test_syn_in_established_gets_challenge_ack(seq_no: int) -> None:
    """RFC 5961 §4.2: any SYN in a synchronised state -> ACK; never a reset of ours."""
    tcb = established()
    out = tcb.feed(tcb.peer(seq_no, 0, SYN, mss=1460), 0.1)
    assert out == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED
    assert tcb.of(ConnectionFailed) == []


def test_challenge_acks_rate_limited_per_second() -> None:
    """RFC 5961 §7: at most challenge_ack_limit challenge ACKs per second."""
    tcb = established(TcpConfig.classic(challenge_ack_limit=4))
    rst = tcb.peer(IRS + 100, 0, RST, 0)
    first = [len(tcb.feed(rst, 1.0 + i * 0.01)) for i in range(10)]
    assert first == [1] * 4 + [0] * 6
    assert len(tcb.feed(rst, 1.99)) == 0  # still the same second
    assert tcb.conn.stats["challenge_acks_suppressed"] == 7
    later = [len(tcb.feed(rst, 2.0 + i * 0.01)) for i in range(6)]
    assert later == [1] * 4 + [0] * 2
    syn = tcb.peer(IRS + 100, 0, SYN)
    assert tcb.feed(syn, 2.5) == []  # SYN challenges share the budget
    assert tcb.feed(syn, 3.0) == [tcb.ours(ISS + 1, IRS + 1)]
    assert tcb.state is S.ESTABLISHED


def test_challenge_ack_default_limit_is_10() -> None:
    tcb = established()
    rst = tcb.peer(IRS + 100, 0, RST, 0)
    assert sum(len(tcb.feed(rst, 5.0)) for _ in range(25)) == 10


def test_out_of_window_syn_challenge_acks_are_rate_limited() -> None:
    """RFC 5961 §4.2: any SYN, *irrespective of its sequence number*, gets a challenge ACK,
    and §7 limits challenge ACKs; a SYN spray must not buy one ACK per SYN."""
    tcb = established()
    syn = tcb.peer(IRS + 100_000, 0, SYN, mss=1460)
    acks = sum(len(tcb.feed(syn, 1.0 + i / 100)) for i in range(50))
    assert acks <= tcb.conn.config.challenge_ack_limit
    assert tcb.state is S.ESTABLISHED


def test_out_of_window_pure_acks_answered_rate_limited() -> None:
    """§3.10.7.4 answers an unacceptable segment with an ACK; for pure ACKs at most one per
    oow_ack_interval (as Linux), so two confused ends cannot ACK each other forever (C20)."""
    tcb = established(TcpConfig.classic(oow_ack_interval=0.5))
    stale = tcb.peer(IRS + 100_000, ISS + 1)
    replies = [len(tcb.feed(stale, 2.0 + i / 100)) for i in range(60)]
    assert replies[0] == 1
    assert sum(replies) == 2  # at 2.0 and at 2.5
    assert replies[50] == 1
    assert tcb.feed(stale, 2.6) == []
    assert tcb.state is S.ESTABLISHED


# ================================================================ ACK of unsent
def test_ack_of_unsent_data_acked_and_dropped() -> None:
    """§3.10.7.4: SEG.ACK > SND.NXT -> send an ACK, drop the segment (text too)."""
    tcb = established()
    tcb.conn.send(b"d" * 100)
    tcb.out(0.0)
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 201, payload=b"data"), 0.1)
    assert out == [tcb.ours(ISS + 101, IRS + 1)]
    assert tcb.conn.snd_una == ISS + 1
    assert tcb.conn.readable == 0
    assert tcb.conn.rcv_nxt == IRS + 1
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 101), 0.2) == []
    assert tcb.conn.snd_una == ISS + 101


# ==================================================================== C19 / C20
def test_abort_sends_one_rst_never_retransmitted_c19() -> None:
    """C19, §3.10.5: ABORT -> <SEQ=SND.NXT><CTL=RST>; state gone; no timer, no resend."""
    tcb = established()
    tcb.conn.send(b"x" * 3000)
    tcb.out(0.0)
    tcb.events.clear()
    tcb.conn.abort(0.5)
    assert tcb.out(0.5) == [tcb.ours(ISS + 3001, IRS + 1, RST | ACK, 0)]
    assert tcb.state is S.CLOSED
    assert tcb.transitions() == [(S.ESTABLISHED, S.CLOSED, "C19")]
    assert tcb.conn.next_timer() is None
    for t in (1.0, 2.0, 10.0, 100.0, 1000.0):
        assert tcb.fire(t) == []
    # and nothing that arrives afterwards makes it speak again
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"late"), 2000.0) == []
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 3001, FIN | ACK), 2001.0) == []


def test_pure_acks_are_never_acked_c20() -> None:
    """C20: a pure ACK never triggers an ACK (acking ACKs would loop forever)."""
    tcb = established()
    for i in range(50):
        t = 0.1 + i * 0.1
        assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=WIN - (i % 3)), t) == []
        assert tcb.run_timers(t) == []
    assert tcb.conn.next_timer() is None
    # pure ACKs that acknowledge data: still no ACK in reply
    tcb.conn.send(b"y" * 4000)
    tcb.out(6.0)
    for k, a in enumerate((1461, 2921, 4001)):
        assert tcb.feed(tcb.peer(IRS + 1, ISS + a), 6.1 + k * 0.01) == []
    assert tcb.conn.snd_una == ISS + 4001
    assert tcb.conn.next_timer() is None


def test_data_carrying_ack_is_acked_c20() -> None:
    """C20: an ACK that carries data is data: it is acknowledged (here after the delay)."""
    tcb = established()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"x"), 1.0) == []
    assert tcb.run_timers(2.0) == [(1.2, tcb.ours(ISS + 1, IRS + 2, window=WIN - 1))]


# ============================================================= retransmission
def test_syn_retransmitted_with_doubling_rto_then_etimedout_c17() -> None:
    """C17, RFC 6298 §5.5: SYN resent at 1, 3, 7, 15, 31, 63 s; then ETIMEDOUT.

    The sixth backoff would be 64 s but RTO is capped at rto_max = 60 s (§2.5),
    so after syn_retries = 6 the connection fails at 63 + 60 = 123 s.
    """
    tcb = active()
    syn = tcb.ours(ISS, 0, SYN, 65535, mss=1460)
    sent = tcb.run_timers(10_000.0)
    assert sent == [(t, syn) for t in (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)]
    assert tcb.state is S.CLOSED
    (fail,) = tcb.of(ConnectionFailed)
    assert fail.errno == errno.ETIMEDOUT
    assert tcb.transitions()[-1] == (S.SYN_SENT, S.CLOSED, "C3")
    closed_at = [r["t"] for r in tcb.trace if r["ev"] == "state" and r["new"] == "CLOSED"]
    assert closed_at == [123.0]


def test_syn_retries_config() -> None:
    tcb = active(TcpConfig.classic(syn_retries=2))
    assert [t for t, _ in tcb.run_timers(100.0)] == [1.0, 3.0]
    assert tcb.state is S.CLOSED
    assert [e.errno for e in tcb.of(ConnectionFailed)] == [errno.ETIMEDOUT]


def assert_data_starts_with_rto_3s(tcb: Tcb) -> None:
    """RFC 6298 §5.7: established after a retransmitted SYN or SYN-ACK with no RTT sample
    (Karn, §3): RTO 3 s, and the first data sent at 2.0 s is timed for 5.0 s."""
    assert tcb.state is S.ESTABLISHED
    assert tcb.conn.rtt.srtt is None
    assert tcb.conn.rtt.rto == 3.0
    tcb.conn.send(b"z" * 10)
    tcb.out(2.0)
    assert tcb.conn.next_timer() == 5.0


def test_synack_after_syn_retransmission_karn_and_3s_rto() -> None:
    """Karn (RFC 6298 §3): no sample from the retransmitted SYN; §5.7: data RTO starts at 3 s."""
    tcb = active()
    tcb.run_timers(1.0)  # SYN resent at 1 s
    tcb.feed(tcb.peer(IRS, ISS + 1, SYN | ACK, mss=1460), 1.5)
    assert_data_starts_with_rto_3s(tcb)


def test_data_retransmitted_after_rto_karn_c18() -> None:
    """C18: unacked data is resent when RTO expires; its ACK gives no RTT sample (Karn)."""
    tcb = established(t_synack=0.25)  # one clean SYN sample: SRTT 0.25, RTO max(0.75, 1 s)
    rtt = tcb.conn.rtt
    assert (rtt.srtt, rtt.samples, rtt.rto) == (0.25, 1, 1.0)
    tcb.conn.send(b"r" * 100)
    (first,) = tcb.out(1.0)
    assert first == tcb.ours(ISS + 1, IRS + 1, ACK | PSH, payload=b"r" * 100)
    assert tcb.conn.next_timer() == 2.0
    assert tcb.run_timers(1.999) == []
    sent = tcb.run_timers(2.0)
    assert sent == [(2.0, first)]  # identical segment
    assert tcb.conn.stats["retransmits"] == 1
    assert tcb.conn.next_timer() == 4.0  # backed off: 2 s
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 101), 2.1) == []
    assert (rtt.srtt, rtt.samples) == (0.25, 1)  # the ambiguous ACK was not sampled
    assert tcb.conn.snd_una == ISS + 101
    assert tcb.conn.next_timer() is None


def test_rto_from_a_clean_sample_c2() -> None:
    """C2, RFC 6298 §2.3: a clean data sample updates SRTT/RTTVAR and the armed RTO."""
    cfg = TcpConfig.classic(rto_min=0.1, rto_initial=1.0)
    tcb = established(cfg, t_synack=0.25)
    rtt = tcb.conn.rtt
    assert (rtt.srtt, rtt.rttvar, rtt.rto) == (0.25, 0.125, 0.75)
    tcb.conn.send(b"a" * 100)
    tcb.out(1.0)
    assert tcb.conn.next_timer() == 1.75
    tcb.feed(tcb.peer(IRS + 1, ISS + 101), 1.5)  # R = 0.5
    assert rtt.rttvar == 0.75 * 0.125 + 0.25 * 0.25
    assert rtt.srtt == 0.875 * 0.25 + 0.125 * 0.5
    assert rtt.rto == 0.90625
    tcb.conn.send(b"b" * 100)
    tcb.out(2.0)
    assert tcb.conn.next_timer() == 2.90625


def test_rto_restarted_by_partial_ack() -> None:
    """RFC 6298 §5.3: an ACK of new data restarts the timer for what is still outstanding."""
    tcb = established(t_synack=0.25)
    tcb.conn.send(b"p" * 3000)
    tcb.out(1.0)
    assert tcb.conn.next_timer() == 2.0
    tcb.feed(tcb.peer(IRS + 1, ISS + 1461), 1.5)
    assert tcb.conn.next_timer() == 1.5 + tcb.conn.rtt.rto


def test_data_retransmission_gives_up_etimedout() -> None:
    """C3, §3.8.3 R2: after max_retransmits the connection fails with ETIMEDOUT."""
    tcb = established(TcpConfig.classic(max_retransmits=3))
    tcb.conn.send(b"w" * 10)
    tcb.out(0.0)
    sent = tcb.run_timers(1000.0)
    assert [t for t, _ in sent] == [1.0, 3.0, 7.0]
    assert all(s.seq == ISS + 1 and s.payload == b"w" * 10 for _, s in sent)
    assert tcb.state is S.CLOSED
    assert [e.errno for e in tcb.of(ConnectionFailed)] == [errno.ETIMEDOUT]


def test_fin_retransmitted_c17() -> None:
    """C17: the FIN occupies a sequence number and is retransmitted until acked."""
    tcb = established()
    tcb.conn.shutdown(1.0)
    fin = tcb.ours(ISS + 1, IRS + 1, FIN | ACK)
    assert tcb.out(1.0) == [fin]
    assert tcb.run_timers(3.5) == [(2.0, fin)]
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 2), 3.6) == []
    assert tcb.state is S.FIN_WAIT_2
    assert tcb.conn.next_timer() is None


def test_three_dup_acks_fast_retransmit() -> None:
    """RFC 5681 §3.2: the third duplicate ACK resends SND.UNA's segment before the RTO."""
    tcb = established()
    data = bytes(i % 251 for i in range(10 * 1460))
    tcb.conn.send(data)
    segs = tcb.out(0.0)
    assert [s.seq for s in segs] == [ISS + 1 + 1460 * i for i in range(10)]
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1461), 0.1) == []
    dup = tcb.peer(IRS + 1, ISS + 1461)
    assert tcb.feed(dup, 0.11) == []
    assert tcb.feed(dup, 0.12) == []
    out = tcb.feed(dup, 0.13)
    assert out == [tcb.ours(ISS + 1461, IRS + 1, payload=data[1460:2920])]
    assert tcb.feed(dup, 0.14) == []  # the fourth does not resend again
    assert tcb.conn.stats["fast_retransmits"] == 1
    assert tcb.conn.stats["rto_fired"] == 0
    assert tcb.conn.ssthresh == max(9 * 1460 // 2, 2 * 1460)


def test_ack_covering_a_fast_retransmission_is_accepted() -> None:
    """Whatever a retransmission carries, an ACK for exactly those bytes is acceptable
    (SEG.ACK =< SND.NXT, §3.10.7.4): SND.UNA must advance to it."""
    tcb = established(window=1000)
    tcb.conn.send(bytes(5000))
    tcb.out(0.0)
    dup = tcb.peer(IRS + 1, ISS + 1, window=1000)
    (rexmit,) = [s for i in range(3) for s in tcb.feed(dup, 0.1 + i / 100)]
    # The peer's application read meanwhile, so it takes the whole retransmission.
    tcb.feed(tcb.peer(IRS + 1, end(rexmit), window=4000), 0.2)
    assert tcb.conn.snd_una == end(rexmit)


def test_old_ack_with_newer_data_does_not_update_the_window_c4() -> None:
    """RFC 9293 §3.10.7.4: the send window is updated only when SND.UNA =< SEG.ACK; a
    segment carrying new data but an ACK below SND.UNA (a reordered old copy) would
    otherwise pass the SND.WL1 test and shut the window with a stale value."""
    tcb = established()
    tcb.conn.send(b"m" * 3000)
    tcb.out(0.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 1001, window=WIN, payload=b"c" * 10), 0.1)
    assert tcb.conn.snd_una == ISS + 1001
    # Newer data (SEG.SEQ > SND.WL1) with an old ACK and a stale zero window.
    tcb.feed(tcb.peer(IRS + 11, ISS + 1, window=0, payload=b"d" * 10), 0.2)
    assert tcb.conn.snd_wnd == WIN
    assert tcb.conn.recv() == b"c" * 10 + b"d" * 10  # its data is still taken


def test_window_change_is_not_a_dup_ack() -> None:
    """RFC 5681 §2: an ACK that changes the advertised window is not a duplicate."""
    tcb = established()
    tcb.conn.send(b"m" * (5 * 1460))
    tcb.out(0.0)
    for i in range(3):
        assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=WIN - 1 - i), 0.1 + i / 100) == []
    assert tcb.conn.stats["fast_retransmits"] == 0


# ================================================================== teardown
def test_active_close_fin_wait_1_then_2_c10_c11() -> None:
    """C10: shutdown -> FIN-WAIT-1 and a FIN; C11: its ACK -> FIN-WAIT-2."""
    tcb = established()
    tcb.conn.shutdown(1.0)
    assert tcb.state is S.FIN_WAIT_1
    assert tcb.out(1.0) == [tcb.ours(ISS + 1, IRS + 1, FIN | ACK)]
    with pytest.raises(BrokenPipeError):
        tcb.conn.send(b"too late")
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 2), 1.1) == []
    assert tcb.state is S.FIN_WAIT_2
    assert tcb.transitions() == [
        (S.ESTABLISHED, S.FIN_WAIT_1, "C10"),
        (S.FIN_WAIT_1, S.FIN_WAIT_2, "C11"),
    ]
    # half-close: we can still receive
    tcb.feed(tcb.peer(IRS + 1, ISS + 2, payload=b"more"), 1.2)
    assert tcb.conn.recv() == b"more"


def test_fin_follows_queued_data() -> None:
    tcb = established()
    tcb.conn.send(b"bye")
    tcb.conn.shutdown(0.0)
    assert tcb.out(0.0) == [tcb.ours(ISS + 1, IRS + 1, FIN | PSH | ACK, payload=b"bye")]
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 5), 0.1) == []
    assert tcb.state is S.FIN_WAIT_2


def test_time_wait_lasts_2msl_c13() -> None:
    """C13: FIN in FIN-WAIT-2 -> TIME-WAIT, ACK it, wait exactly 2*MSL, then CLOSED."""
    tcb = established(TcpConfig.classic(msl=5.0))
    tcb.conn.shutdown(1.0)
    tcb.out(1.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2), 1.1)
    tcb.events.clear()
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, FIN | ACK), 2.0)
    assert out == [tcb.ours(ISS + 2, IRS + 2, window=WIN - 1)]  # the FIN took one number
    assert tcb.state is S.TIME_WAIT
    assert tcb.transitions() == [(S.FIN_WAIT_2, S.TIME_WAIT, "C13")]
    assert len(tcb.of(EndOfStream)) == 1
    assert tcb.conn.next_timer() == 12.0
    assert tcb.fire(11.999) == []
    assert tcb.state is S.TIME_WAIT
    assert tcb.fire(12.0) == []
    assert tcb.state is S.CLOSED
    assert tcb.transitions()[-1] == (S.TIME_WAIT, S.CLOSED, "C13")
    assert isinstance(tcb.events[-1], Closed)
    assert tcb.conn.next_timer() is None


def test_time_wait_keeps_only_what_it_needs_c13() -> None:
    """C13, as Linux's tcp_timewait_sock: in TIME-WAIT everything we sent is
    acknowledged, so an arriving ACK moves nothing (RFC 9293 §3.10.7.4: only a
    retransmitted FIN can arrive); the congestion controller is reduced to its last
    cwnd/ssthresh for info(), and using it would be a bug that raises."""
    tcb = established(TcpConfig(msl=5.0, congestion_control="cubic"))
    tcb.conn.send(b"d" * 100)
    tcb.out(0.5)
    tcb.conn.shutdown(1.0)
    tcb.out(1.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 102, FIN | ACK), 1.1)
    assert tcb.state is S.TIME_WAIT
    info = tcb.conn.info()
    assert info["congestion_control"] == "cubic" and info["cwnd"] > 0
    # A late ACK with a SACK block and ECE, and a new window: nothing on the send side
    # moves, and a retransmitted FIN is still ACKed again.
    tcb.feed(
        tcb.peer(IRS + 2, ISS + 102, ACK | ECE, window=7, sack_blocks=((ISS + 1, ISS + 50),)), 1.2
    )
    assert tcb.conn.info()["cwnd"] == info["cwnd"] and tcb.conn.snd_wnd == info["snd_wnd"]
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 102, FIN | ACK), 1.3)
    assert [s.flags for s in out] == [ACK]
    with pytest.raises(RuntimeError):
        tcb.conn.congestion.on_ack(1, 0, 1.4)


def test_time_wait_default_msl_is_30s() -> None:
    tcb = established()
    tcb.conn.shutdown(0.0)
    tcb.out(0.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2, FIN | ACK), 0.5)  # ACK of our FIN plus theirs
    assert tcb.state is S.TIME_WAIT
    assert tcb.conn.next_timer() == 60.5


def test_time_wait_retransmitted_fin_reacked_and_timer_restarted_c13() -> None:
    """C13: the last ACK may be lost; the peer's FIN again -> ACK again, 2*MSL from now."""
    tcb = established(TcpConfig.classic(msl=5.0))
    tcb.conn.shutdown(1.0)
    tcb.out(1.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2), 1.1)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2, FIN | ACK), 2.0)
    assert tcb.conn.next_timer() == 12.0
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, FIN | ACK), 5.0)
    assert out == [tcb.ours(ISS + 2, IRS + 2, window=WIN - 1)]
    assert tcb.conn.next_timer() == 15.0
    assert tcb.fire(12.0) == []
    assert tcb.state is S.TIME_WAIT
    tcb.fire(15.0)
    assert tcb.state is S.CLOSED


def test_passive_close_half_close_c11_c12_c13() -> None:
    """C11: FIN -> CLOSE-WAIT (ACKed); we may still send; C12: close -> LAST-ACK; C13: CLOSED."""
    tcb = passive_established()
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, FIN | ACK), 1.0)
    assert out == [tcb.ours(ISS + 1, IRS + 2, window=WIN - 1)]
    assert tcb.state is S.CLOSE_WAIT
    assert tcb.conn.eof_received
    assert len(tcb.of(EndOfStream)) == 1
    # half-close: the passive side keeps sending
    assert tcb.conn.send(b"tail") == 4
    assert tcb.out(1.1) == [tcb.ours(ISS + 1, IRS + 2, ACK | PSH, WIN - 1, b"tail")]
    assert tcb.feed(tcb.peer(IRS + 2, ISS + 5), 1.2) == []
    tcb.conn.shutdown(1.3)
    assert tcb.state is S.LAST_ACK
    assert tcb.out(1.3) == [tcb.ours(ISS + 5, IRS + 2, FIN | ACK, WIN - 1)]
    assert tcb.feed(tcb.peer(IRS + 2, ISS + 6), 1.4) == []
    assert tcb.state is S.CLOSED
    assert tcb.transitions() == [
        (S.ESTABLISHED, S.CLOSE_WAIT, "C11"),
        (S.CLOSE_WAIT, S.LAST_ACK, "C12"),
        (S.LAST_ACK, S.CLOSED, "C13"),
    ]
    assert tcb.of(ConnectionFailed) == []
    assert tcb.conn.next_timer() is None


def test_retransmitted_fin_in_close_wait_is_acked_again() -> None:
    """Our ACK of the peer's FIN may be lost: its retransmitted FIN is a duplicate, ACKed."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, FIN | ACK), 1.0)
    assert tcb.state is S.CLOSE_WAIT
    again = tcb.feed(tcb.peer(IRS + 1, ISS + 1, FIN | ACK), 1.5)
    assert again == [tcb.ours(ISS + 1, IRS + 2, window=WIN - 1)]
    assert tcb.state is S.CLOSE_WAIT
    assert len(tcb.of(EndOfStream)) == 1


def test_simultaneous_close_closing_then_time_wait() -> None:
    """§3.6 figure 13: the peer's FIN crosses ours -> CLOSING; the ACK of ours -> TIME-WAIT."""
    tcb = established(TcpConfig.classic(msl=1.0))
    tcb.conn.shutdown(1.0)
    assert tcb.out(1.0) == [tcb.ours(ISS + 1, IRS + 1, FIN | ACK)]
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, FIN | ACK), 1.1)
    assert out == [tcb.ours(ISS + 2, IRS + 2, window=WIN - 1)]
    assert tcb.state is S.CLOSING
    assert tcb.feed(tcb.peer(IRS + 2, ISS + 2), 1.2) == []
    assert tcb.state is S.TIME_WAIT
    assert tcb.conn.next_timer() == 3.2
    assert [(o, n) for o, n, _ in tcb.transitions()] == [
        (S.ESTABLISHED, S.FIN_WAIT_1),
        (S.FIN_WAIT_1, S.CLOSING),
        (S.CLOSING, S.TIME_WAIT),
    ]


# ==================================================================== C23 / C24
def test_close_with_unread_data_sends_rst_c23() -> None:
    """C23 (RFC 2525 §2.17): close() with unread received data aborts with RST, not FIN."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"unread"), 0.1)
    tcb.conn.close(0.2)
    out = tcb.out(0.2)
    assert out == [tcb.ours(ISS + 1, IRS + 7, RST | ACK, 0)]
    assert not any(s.flags & FIN for s in out)
    assert tcb.state is S.CLOSED
    assert tcb.conn.next_timer() is None


def test_close_with_only_out_of_order_data_sends_fin_c23() -> None:
    """C23 covers data the application could have read; bytes held beyond a hole never
    were readable, so close() sends FIN (as Linux's tcp_close), and the hole's data,
    when it arrives, meets a closed socket: RST (C24)."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 101, ISS + 1, payload=b"later"), 0.1)  # 1..100 missing
    assert tcb.conn.readable == 0
    tcb.conn.close(0.2)
    out = tcb.out(0.2)
    assert [s.flags for s in out] == [FIN | ACK]
    assert tcb.state is S.FIN_WAIT_1
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, payload=b"h" * 100), 0.3)
    assert any(s.flags & RST for s in out)
    assert tcb.state is S.CLOSED


def test_close_with_everything_read_sends_fin() -> None:
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"read"), 0.1)
    assert tcb.conn.recv() == b"read"
    tcb.conn.close(0.2)
    assert tcb.out(0.2) == [tcb.ours(ISS + 1, IRS + 5, FIN | ACK, WIN - 4)]
    assert tcb.state is S.FIN_WAIT_1


def test_data_after_close_answered_with_rst_c24() -> None:
    """C24: after close() (orphaned, FIN-WAIT-2) new data from the peer gets an RST."""
    tcb = established()
    tcb.conn.close(1.0)
    assert tcb.out(1.0) == [tcb.ours(ISS + 1, IRS + 1, FIN | ACK)]
    tcb.feed(tcb.peer(IRS + 1, ISS + 2), 1.1)
    assert tcb.state is S.FIN_WAIT_2
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, ACK | PSH, payload=b"anyone?"), 1.2)
    assert out == [tcb.ours(ISS + 2, IRS + 1, RST | ACK, 0)]
    assert tcb.state is S.CLOSED
    assert tcb.conn.readable == 0
    assert tcb.conn.next_timer() is None


def test_orphaned_fin_wait_2_times_out() -> None:
    tcb = established(TcpConfig.classic(fin_wait_2_timeout=10.0))
    tcb.conn.close(1.0)
    tcb.out(1.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2), 2.0)
    assert tcb.conn.next_timer() == 12.0
    assert tcb.run_timers(100.0) == []
    assert tcb.state is S.CLOSED


def test_shutdown_is_not_orphaned_fin_wait_2_has_no_timeout() -> None:
    """A half-closed (shutdown, not close) socket may stay in FIN-WAIT-2 indefinitely."""
    tcb = established()
    tcb.conn.shutdown(1.0)
    tcb.out(1.0)
    tcb.feed(tcb.peer(IRS + 1, ISS + 2), 2.0)
    assert tcb.conn.next_timer() is None
    tcb.feed(tcb.peer(IRS + 1, ISS + 2, payload=b"ok"), 500.0)
    assert tcb.state is S.FIN_WAIT_2
    assert tcb.conn.recv() == b"ok"


# ============================================================ C4 flow control
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 6000)), min_size=5, max_size=40))
def test_sender_never_exceeds_peer_window_c4(acks: list[tuple[float, int]]) -> None:
    """C4: every emitted segment ends at or before SND.UNA + SND.WND (as the peer said).

    The peer acknowledges a random part of what it got and offers a random window
    whose right edge never moves left (§3.8.6 discourages shrinking).  An ACK that
    does not advance also changes the window, so it is never a duplicate ACK: fast
    retransmit has its own (xfail) test below.
    """
    tcb = established(window=1000)
    tcb.conn.send(bytes(50_000))
    right = ISS + 1 + 1000  # right edge offered by the peer (unwrapped)
    highest = ISS + 1
    last = (ISS + 1, 1000)
    t = 0.0
    for frac, wnd in acks:
        for s in tcb.out(t):
            seg_end = ISS + 1 + seq.sub(end(s), ISS + 1)
            assert seg_end <= right, (s, right)
            highest = max(highest, seg_end)
        una = tcb.conn.snd_una
        ack = una + int((highest - una) * frac)
        wnd = max(wnd, right - ack)
        if (ack, wnd) == last:
            wnd += 1
        right = ack + wnd
        last = (ack, wnd)
        t += 0.01
        tcb.conn.receive(tcb.peer(IRS + 1, ack, window=wnd), t)
    for s in tcb.out(t):
        assert ISS + 1 + seq.sub(end(s), ISS + 1) <= right
    assert tcb.conn.stats["fast_retransmits"] == 0


def test_fast_retransmit_stays_inside_peer_window_c4() -> None:
    """C4 + RFC 5681 §3.2: the fast retransmission is the lost segment, not past SND.UNA+WND."""
    tcb = established(window=1000)
    tcb.conn.send(bytes(range(250)) * 20)
    (first,) = tcb.out(0.0)
    assert (first.seq, len(first.payload)) == (ISS + 1, 1000)  # window-limited
    dup = tcb.peer(IRS + 1, ISS + 1, window=1000)
    out = [s for i in range(3) for s in tcb.feed(dup, 0.1 + i / 100)]
    assert tcb.conn.stats["fast_retransmits"] == 1
    assert len(out) == 1
    assert end(out[0]) <= ISS + 1 + 1000, f"{out[0]} ends past the window edge {ISS + 1001}"
    assert out[0] == first


def test_peer_window_limits_each_flight_exactly_c4() -> None:
    tcb = established(window=3000)
    tcb.conn.send(b"k" * 10_000)
    out = tcb.out(0.0)
    assert [(s.seq, len(s.payload)) for s in out] == [(ISS + 1, 1460), (ISS + 1461, 1460)]
    # 80 bytes would fit, but sender SWS avoidance (§3.8.6.2.1) holds them back
    tcb.conn.receive(tcb.peer(IRS + 1, ISS + 2921, window=3000), 0.1)
    out = tcb.out(0.1)
    assert [(s.seq, len(s.payload)) for s in out] == [(ISS + 2921, 1460), (ISS + 4381, 1460)]
    assert max(end(s) for s in out) <= ISS + 2921 + 3000


def test_zero_window_persist_probes_with_backoff_c4() -> None:
    """§3.8.6.1: zero window -> one-byte probes at SND.UNA, RTO doubling; never giving up."""
    tcb = established(TcpConfig.classic(max_retransmits=3), window=0)
    tcb.conn.send(b"P" * 3000)
    assert tcb.out(0.0) == []
    probe = tcb.ours(ISS + 1, IRS + 1, payload=b"P")
    times = []
    for _ in range(8):
        t = tcb.conn.next_timer()
        assert t is not None
        assert tcb.fire(t) == [probe]
        times.append(t)
        # the receiver answers each probe: still no room
        assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=0), t + 0.01) == []
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]
    assert tcb.state is S.ESTABLISHED  # answered probes never time out
    assert tcb.conn.stats["probes"] == 8


def test_window_update_after_accepted_probe_resumes_c4() -> None:
    tcb = established(window=0)
    tcb.conn.send(b"P" * 3000)
    assert tcb.out(0.0) == []
    assert tcb.run_timers(1.0) == [(1.0, tcb.ours(ISS + 1, IRS + 1, payload=b"P"))]
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 2, window=4000), 1.1)  # probe byte taken
    assert [(s.seq, len(s.payload)) for s in out] == [
        (ISS + 2, 1460),
        (ISS + 1462, 1460),
        (ISS + 2922, 79),
    ]


def test_window_update_after_refused_probe_resumes_at_snd_una_c4() -> None:
    """§3.8.6.1: when the window opens, sending resumes with the first unacknowledged byte."""
    tcb = established(window=0)
    data = bytes(range(100)) * 30
    tcb.conn.send(data)
    assert tcb.out(0.0) == []
    for _ in range(4):  # probes at 1, 3, 7, 15 s, all refused
        t = tcb.conn.next_timer()
        assert t is not None
        tcb.fire(t)
        tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=0), t + 0.01)
    out = tcb.feed(tcb.peer(IRS + 1, ISS + 1, window=4000), 16.0)  # window opens, ack = UNA
    assert out, "window update must restart transmission"
    assert out[0].seq == ISS + 1
    got = b"".join(s.payload for s in out)
    assert got == data


def test_small_usable_window_is_eventually_used_c4() -> None:
    """§3.8.6.2.1: queued data held back by SWS avoidance must go out on an override timer."""
    tcb = established(window=4000)
    tcb.conn.send(b"s" * 10_000)
    assert [len(s.payload) for s in tcb.out(0.0)] == [1460, 1460]
    # everything acked; the peer now offers 1200 (right edge moved right, not shrunk)
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 2921, window=1200), 0.1) == []
    assert tcb.conn.next_timer() is not None, "no timer: the connection is stuck forever"
    sent = tcb.run_timers(5.0)
    assert sent and sent[0][1].seq == ISS + 2921
    assert all(end(s) <= ISS + 2921 + 1200 for _, s in sent)


def test_receiver_window_is_free_buffer_space_c4() -> None:
    """C4: the advertised window is the free receive buffer and shrinks as data waits unread."""
    tcb = established(TcpConfig.classic(rcv_buf=4000, delayed_ack=0))
    windows = []
    for i in range(4):
        out = tcb.feed(tcb.peer(IRS + 1 + 1000 * i, ISS + 1, payload=b"r" * 1000), 0.1 + i)
        assert len(out) == 1 and out[0].ack == IRS + 1 + 1000 * (i + 1)
        windows.append(out[0].window)
    assert windows == [3000, 2000, 1000, 0]
    # reading less than min(MSS, buffer/2) does not announce the tiny opening (§3.8.6.2.2)
    assert tcb.conn.recv(500) == b"r" * 500
    assert tcb.out(5.0) == []
    # reading enough sends a window update equal to the free space
    tcb.conn.recv(1000)
    assert tcb.out(5.1) == [tcb.ours(ISS + 1, IRS + 4001, window=1500)]
    tcb.conn.recv()
    assert tcb.out(5.2) == [tcb.ours(ISS + 1, IRS + 4001, window=4000)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["data", "read", "ooo"]), st.integers(1, 3000)),
        min_size=1,
        max_size=40,
    )
)
def test_receiver_right_edge_never_moves_left_c4(ops: list[tuple[str, int]]) -> None:
    """§3.8.6.2.2: ack + window never decreases, and window <= free buffer space."""
    cfg = TcpConfig.classic(rcv_buf=6000, delayed_ack=0)
    tcb = established(cfg)
    conn = tcb.conn
    sent = 0  # bytes of the peer's stream sent in order so far
    last_right = IRS + 1 + 6000
    t = 0.0
    for op, n in ops:
        t += 0.01
        if op == "data":
            tcb.conn.receive(tcb.peer(IRS + 1 + sent, ISS + 1, payload=b"d" * n), t)
            sent = seq.sub(conn.rcv_nxt, IRS + 1)
        elif op == "ooo":
            tcb.conn.receive(tcb.peer(IRS + 1 + sent + 100, ISS + 1, payload=b"o" * n), t)
        else:
            conn.recv(n)
        for s in tcb.out(t):
            right = s.ack + s.window
            assert seq.ge(right, last_right), (s, last_right)
            last_right = right
            free = cfg.rcv_buf - conn.readable
            assert 0 <= s.window <= free


# =================================================================== delayed ACK
def test_delayed_ack_for_a_single_full_segment() -> None:
    """§3.8.6.3: one full segment may wait up to the delayed-ACK time (0.2 s here)."""
    tcb = established()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"f" * 1460), 1.0) == []
    assert tcb.conn.next_timer() == 1.2
    assert tcb.fire(1.19) == []
    assert tcb.fire(1.2) == [tcb.ours(ISS + 1, IRS + 1461, window=WIN - 1460)]
    assert tcb.conn.next_timer() is None


def test_delayed_ack_config() -> None:
    tcb = established(TcpConfig.classic(delayed_ack=0.04))
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"f"), 1.0)
    assert tcb.conn.next_timer() == 1.04
    tcb2 = established(TcpConfig.classic(delayed_ack=0))
    assert tcb2.feed(tcb2.peer(IRS + 1, ISS + 1, payload=b"f"), 1.0) == [
        tcb2.ours(ISS + 1, IRS + 2, window=WIN - 1)
    ]


def test_two_segments_ack_immediately() -> None:
    """RFC 5681 §4.2: ACK at least every second full-sized segment."""
    tcb = established()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"1" * 1460), 1.0) == []
    out = tcb.feed(tcb.peer(IRS + 1461, ISS + 1, payload=b"2" * 1460), 1.01)
    assert out == [tcb.ours(ISS + 1, IRS + 2921, window=WIN - 2920)]
    assert tcb.conn.next_timer() is None  # the delayed ACK was cancelled


def test_out_of_order_acked_immediately() -> None:
    """RFC 5681 §4.2: out-of-order data -> immediate duplicate ACK."""
    tcb = established()
    assert tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"1" * 100), 1.0) == []
    out = tcb.feed(tcb.peer(IRS + 301, ISS + 1, payload=b"3" * 100), 1.01)
    assert out == [tcb.ours(ISS + 1, IRS + 101, window=WIN - 100)]


def test_data_we_send_carries_the_pending_ack() -> None:
    """A data segment carries the ACK: no separate delayed ACK follows."""
    tcb = established()
    tcb.feed(tcb.peer(IRS + 1, ISS + 1, payload=b"ping"), 1.0)
    tcb.conn.send(b"pong")
    assert tcb.out(1.05) == [tcb.ours(ISS + 1, IRS + 5, ACK | PSH, WIN - 4, b"pong")]
    assert tcb.conn.next_timer() == 1.05 + tcb.conn.rtt.rto  # RTO only, no delayed ACK


# ============================================================== C16 wraparound
def shuttle(a: Connection, b: Connection, t: float, *, until: Any, limit: float = 600.0) -> float:
    """Move segments between two connections until ``until()`` or no progress is possible."""
    while not until():
        moved = False
        for src, dst in ((a, b), (b, a)):
            for s in src.segments_to_send(t):
                dst.receive(s, t)
                moved = True
        if moved:
            t += 0.001
            continue
        timers = [x for x in (a.next_timer(), b.next_timer()) if x is not None]
        if not timers or t > limit:
            break
        t = max(t, min(timers))
        a.handle_timer(t)
        b.handle_timer(t)
    return t


def test_transfer_across_sequence_wrap_c16_c5() -> None:
    """C16 + C5: both ISNs just below 2**32; 200 KB one way, 60 KB the other, byte-exact."""
    a_iss, b_iss = (1 << 32) - 1000, (1 << 32) - 300
    ev: deque[Event] = deque()
    a = Connection.open_active(CLIENT_IP, CPORT, SERVER_IP, SPORT, iss=a_iss, now=0.0, events=ev)
    (syn,) = a.segments_to_send(0.0)
    b = Connection.open_passive(syn, SERVER_IP, CLIENT_IP, iss=b_iss, now=0.0, events=ev)
    rng = random.Random(16)
    a_data = bytes(rng.getrandbits(8) for _ in range(200_000))
    b_data = bytes(rng.getrandbits(8) for _ in range(60_000))
    got_b, got_a = bytearray(), bytearray()
    a_off = b_off = 0

    def pump() -> bool:
        nonlocal a_off, b_off
        if a.state is S.ESTABLISHED and a_off < len(a_data):
            a_off += a.send(a_data[a_off : a_off + 30_000])
        if b.state is S.ESTABLISHED and b_off < len(b_data):
            b_off += b.send(b_data[b_off : b_off + 30_000])
        got_b.extend(b.recv())
        got_a.extend(a.recv())
        return len(got_b) == len(a_data) and len(got_a) == len(b_data)

    t = shuttle(a, b, 0.0, until=pump)
    assert bytes(got_b) == a_data
    assert bytes(got_a) == b_data
    # both directions really crossed 2**32
    assert a.snd_nxt == (a_iss + 1 + len(a_data)) & MASK < a_iss
    assert b.snd_nxt == (b_iss + 1 + len(b_data)) & MASK < b_iss
    assert b.rcv_nxt == a.snd_nxt and a.rcv_nxt == b.snd_nxt
    assert a.stats["retransmits"] == b.stats["retransmits"] == 0
    # and the teardown works across the wrap too
    a.shutdown(t)
    b.shutdown(t)
    shuttle(a, b, t, until=lambda: a.state is S.CLOSED and b.state is S.CLOSED)
    assert a.state is S.CLOSED and b.state is S.CLOSED
    assert not any(isinstance(e, ConnectionFailed) for e in ev)


def test_crafted_peer_across_wrap_c16() -> None:
    """Peer ISN 2**32 - 2: its data straddles 0 and the ACK numbers wrap exactly."""
    irs = (1 << 32) - 2
    tcb = established(irs=irs, iss=(1 << 32) - 1)
    assert tcb.conn.rcv_nxt == MASK
    assert tcb.conn.snd_nxt == 0
    tcb.feed(tcb.peer(irs + 1, 0, payload=b"abc"), 0.1)  # bytes at 2**32-1, 0, 1
    assert tcb.conn.rcv_nxt == 2
    tcb.conn.send(b"xyz")
    out = tcb.out(0.2)
    assert out == [Segment(CPORT, SPORT, 0, 2, ACK | PSH, WIN - 3, b"xyz")]
    assert tcb.feed(tcb.peer(2, 3), 0.3) == []
    assert tcb.conn.snd_una == 3
    # an old duplicate from before the wrap is still recognised as old
    out = tcb.feed(tcb.peer(irs + 1, 3, payload=b"abc"), 0.4)
    assert out == [tcb.ours(3, 2, window=WIN - 3)]
    assert tcb.conn.recv() == b"abc"


# ============================================================ config validation
@pytest.mark.parametrize(
    "changes",
    [
        {"mss": 87},
        {"mss": 65496},
        {"mss": 0},
        {"max_segment_payload": 1000},
        {"max_segment_payload": 65536},
        {"rcv_buf": 0},
        {"snd_buf": 0},
        {"rcv_buf": 65536, "window_scaling": False},
        {"rcv_buf": (65535 << 14) + 1},
        {"rto_min": 0.0},
        {"rto_min": 2.0},
        {"rto_initial": 61.0},
        {"rto_max": 0.5},
        {"syn_retries": -1},
        {"synack_retries": -1},
        {"max_retransmits": -1},
        {"challenge_ack_limit": -1},
        {"oow_ack_interval": -0.1},
        {"msl": -1.0},
        {"fin_wait_2_timeout": -1.0},
        {"delayed_ack": -0.1},
        {"delayed_ack": 0.5},
        {"initial_window": 0},
    ],
)
def test_config_rejects_bad_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TcpConfig(**changes)
    with pytest.raises(ValueError):
        TcpConfig.classic().replace(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"mss": 88},
        {"mss": 65495},
        {"rcv_buf": 65535},
        {"rcv_buf": 1},
        {"delayed_ack": 0.0},
        {"delayed_ack": 0.499},
        {"max_segment_payload": 65535},
        {"syn_retries": 0},
        {"rto_min": 0.2, "rto_initial": 0.2, "rto_max": 0.2},
        {"msl": 0.0},
    ],
)
def test_config_accepts_boundary_values(changes: dict[str, Any]) -> None:
    cfg = TcpConfig(**changes)
    for k, v in changes.items():
        assert getattr(cfg, k) == v


def test_config_is_frozen_and_replace_copies() -> None:
    cfg = TcpConfig.classic()
    with pytest.raises(AttributeError):
        cfg.mss = 1000  # type: ignore[misc]
    other = cfg.replace(mss=1000)
    assert (cfg.mss, other.mss) == (1460, 1000)


def test_unknown_congestion_control_rejected() -> None:
    with pytest.raises(ValueError, match="unknown congestion control"):
        Connection.open_active(
            CLIENT_IP,
            CPORT,
            SERVER_IP,
            SPORT,
            iss=ISS,
            now=0.0,
            config=TcpConfig.classic(congestion_control="nope"),
        )
