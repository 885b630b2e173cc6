"""Model-based test of the sender's loss state machine (issue 13).

Hypothesis plays the network and the receiver against one sending Connection:
writes, deliveries in any order, drops, duplicates, lost, late and repeated ACKs,
ECN-Echo and timer firings, in random sequences.  The receiver is a small model of its own (what it
holds, its cumulative ACK, SACK blocks most recent first, D-SACK for a duplicate;
RFC 2018, RFC 2883).  After every step the invariants below must hold:

- the loss state moves only through :data:`synack.tcp.loss_state.TRANSITIONS`
  (an illegal move raises inside the connection);
- one reduction per loss event (RFC 5681 §3.1, RFC 6582 §4, RFC 3168 §6.1.2):
  ssthresh falls only on a move into CWR, Recovery or Loss, never inside a
  running episode, and never from Loss to Recovery;
- cwnd >= 1 MSS; 0 <= pipe; SACKed + lost <= outstanding (RFC 6675 §4);
- nothing unsent is retransmitted, and every byte sent is the stream's byte;
- Recovery and Loss last exactly while SND.UNA is below high_seq, CWR until an
  ACK at or past it;
- timers are armed exactly when something needs them: the retransmission timer
  while data is outstanding, and no RTO, probe or RACK timer with nothing
  outstanding and nothing queued.
C1, C2, C18.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from helpers.crafted import MSS_TS, U0, Tcb
from helpers.modern import cfg, established
from synack.tcp import seq
from synack.tcp.loss_state import CaState
from synack.tcp.states import State
from synack.wire.segment import ACK, ECE, Segment

REDUCED = {"CWR", "Recovery", "Loss"}


def stream_byte(pos: int) -> int:
    """The byte at stream offset ``pos`` (0 = first data byte): a pattern, not zeros,
    so a resend of the wrong bytes shows."""
    return (pos * 7 + 3) % 251


class Receiver:
    """What the peer holds, as sorted disjoint [start, end) offsets from U0."""

    def __init__(self) -> None:
        self.blocks: list[list[int]] = []
        self.recent: list[tuple[int, int]] = []  # blocks touched, most recent first
        self.cum = 0

    def take(self, start: int, end: int) -> tuple[int, int] | None:
        """Receive [start, end); return a D-SACK range if all of it was held already."""
        if self._covered(start, end):
            return (start, end)
        merged = [start, end]
        keep = []
        for b in self.blocks:
            if b[1] < merged[0] or b[0] > merged[1]:
                keep.append(b)
            else:
                merged = [min(b[0], merged[0]), max(b[1], merged[1])]
        keep.append(merged)
        keep.sort()
        self.blocks = keep
        if self.blocks and self.blocks[0][0] == 0:
            self.cum = self.blocks[0][1]
        self.recent = [(merged[0], merged[1])] + [
            r for r in self.recent if not (merged[0] <= r[0] < merged[1])
        ]
        return None

    def _covered(self, start: int, end: int) -> bool:
        return any(b[0] <= start and end <= b[1] for b in self.blocks)

    def sack(self, dsack: tuple[int, int] | None) -> tuple[tuple[int, int], ...]:
        """SACK blocks (RFC 2018 §4: the most recent first, at most 3 with timestamps);
        a D-SACK block first when the segment was a duplicate (RFC 2883 §4)."""
        out: list[tuple[int, int]] = []
        if dsack is not None:
            out.append(dsack)
        for r in self.recent:
            if r[0] > self.cum and len(out) < 3:
                blk = next(b for b in self.blocks if b[0] <= r[0] < b[1])
                if (blk[0], blk[1]) not in out:
                    out.append((blk[0], blk[1]))
        return tuple((seq.add(U0, a), seq.add(U0, b)) for a, b in out)


class LossStateMachine(RuleBasedStateMachine):
    """One sender, a lossy network, a receiver model; invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.tcb: Tcb
        self.now = 1.0
        self.net: list[Segment] = []  # data segments in flight, in sending order
        self.rx = Receiver()
        self.written = 0
        self.sent_max = 0  # highest stream offset ever sent
        self.checked = 0  # how much of tcb.sent was checked
        self.acks: list[tuple[int, tuple[tuple[int, int], ...]]] = []  # ACKs sent

    @initialize(
        cc=st.sampled_from(["newreno", "cubic"]),
        sack=st.booleans(),
        ecn=st.booleans(),
        rack=st.booleans(),
    )
    def start(self, cc: str, sack: bool, ecn: bool, rack: bool) -> None:
        config = cfg(
            congestion_control=cc,
            sack=sack,
            rack=rack and sack,
            tlp=sack,
            ecn="on" if ecn else "off",
            rto_min=0.2,
            rto_initial=1.0,
        )
        self.tcb = established(config, peer_sack=sack, flags=ECE if ecn else 0)
        self.tcb.ack(U0, 0.2)  # an RTT sample
        self.tcb.trace.clear()
        self.sack = sack

    # ------------------------------------------------------------------ steps
    def _step(self, out: list[Segment], before: dict[str, Any]) -> None:
        """Check what one step sent and how the loss state moved."""
        conn = self.tcb.conn
        nxt_before = before["nxt"]
        for s in out:
            if not s.payload:
                continue
            start = seq.sub(s.seq, U0)
            end = start + len(s.payload)
            assert start >= 0 and end <= self.written, "sent bytes never written"
            if start < nxt_before:
                assert end <= nxt_before, "a retransmission runs past SND.NXT"
            assert bytes(s.payload) == bytes(stream_byte(p) for p in range(start, end))
            self.sent_max = max(self.sent_max, end)
            self.net.append(s)
        moves = [r for r in self.tcb.trace[before["trace"] :] if r["ev"] == "ca_state"]
        for m in moves:
            assert not (m["old"] == "Loss" and m["new"] == "Recovery")
        if conn.ssthresh < before["ssthresh"]:
            into = [
                m
                for m in moves
                if m["new"] in REDUCED
                and m["trigger"] in ("loss_marked", "rto", "ece", "tlp_repair")
            ]
            assert into, f"ssthresh fell without entering a reduced state: {moves}"
            if before["ca"] in REDUCED:
                # Inside an episode only a new loss event may cut again: this ACK
                # ended the episode (SND.UNA reached its high_seq), or a timeout
                # after progress.
                new_event = conn._una >= before["high"] or (
                    before["ca"] == "Loss"
                    and into[-1]["trigger"] == "rto"
                    and before["una"] > before["rto_una"]
                )
                assert new_event, f"second reduction inside one episode: {moves}"

    def _before(self) -> dict[str, Any]:
        conn = self.tcb.conn
        ls = conn._ls
        return {
            "nxt": seq.sub(conn.snd_nxt, U0),
            "ssthresh": conn.ssthresh,
            "ca": str(ls.state),
            "una": conn._una,
            "high": ls.high_seq,
            "rto_una": ls.rto_una,
            "trace": len(self.tcb.trace),
        }

    @precondition(lambda self: self.tcb.conn.state is State.ESTABLISHED)
    @rule(segments=st.integers(1, 12))
    def write(self, segments: int) -> None:
        n = segments * MSS_TS
        data = bytes(stream_byte(p) for p in range(self.written, self.written + n))
        before = self._before()
        assert self.tcb.conn.send(data) == n
        self.written += n
        self._step(self.tcb.out(self.now), before)

    @precondition(lambda self: self.net)
    @rule(
        pick=st.integers(0, 1 << 16),
        ece=st.booleans(),
        ack_lost=st.booleans(),
        duplicate=st.booleans(),
        dt=st.floats(0.0, 0.05),
    )
    def deliver(self, pick: int, ece: bool, ack_lost: bool, duplicate: bool, dt: float) -> None:
        """The receiver gets one segment in flight (any of them: reordering) and ACKs it,
        unless the ACK is lost.  ``duplicate`` keeps a copy in the network."""
        i = pick % len(self.net)
        s = self.net[i] if duplicate else self.net.pop(i)
        start = seq.sub(s.seq, U0)
        dsack = self.rx.take(start, start + len(s.payload))
        self.now += dt
        if ack_lost:
            return
        before = self._before()
        blocks = self.rx.sack(dsack) if self.sack else ()
        self.acks.append((self.rx.cum, blocks))
        flags = ACK | (ECE if ece and self.tcb.conn.ecn_ok else 0)
        out = self.tcb.ack(seq.add(U0, self.rx.cum), self.now, sack=blocks, flags=flags)
        self._step(out, before)

    @precondition(lambda self: self.net)
    @rule(
        count=st.integers(1, 12),
        lose=st.integers(-1, 11),
        ece=st.booleans(),
        dt=st.floats(0.0, 0.05),
    )
    def deliver_run(self, count: int, lose: int, ece: bool, dt: float) -> None:
        """The common pattern: the oldest ``count`` segments in flight arrive in order,
        each ACKed, except the one at index ``lose`` (-1: none), which the network
        drops; ECE (if set) marks the ACKs after the loss."""
        for i in range(min(count, len(self.net))):
            if i == lose:
                self.net.pop(0)
                continue
            if not self.net:
                break
            self.deliver(0, ece and i > lose >= 0, False, False, dt / count)

    @precondition(lambda self: len(self.acks) > 1)
    @rule(back=st.integers(1, 8), dt=st.floats(0.0, 0.05))
    def stale_ack(self, back: int, dt: float) -> None:
        """An ACK the receiver sent earlier arrives again, late (ACKs reordered or
        duplicated in the network): SEG.ACK may be below SND.UNA."""
        cum, blocks = self.acks[-1 - min(back, len(self.acks) - 1)]
        self.now += dt
        before = self._before()
        out = self.tcb.ack(seq.add(U0, cum), self.now, sack=blocks)
        self._step(out, before)

    @precondition(lambda self: self.net)
    @rule(pick=st.integers(0, 1 << 16))
    def drop(self, pick: int) -> None:
        self.net.pop(pick % len(self.net))

    @rule()
    def fire_timer(self) -> None:
        t = self.tcb.conn.next_timer()
        if t is None or t > self.now + 120:
            return
        self.now = max(self.now, t)
        before = self._before()
        self._step(self.tcb.fire(self.now), before)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def windows_and_pipe(self) -> None:
        conn = self.tcb.conn
        info = conn.info()
        assert conn.cwnd >= conn.eff_mss
        outstanding = info["unacked"]
        assert info["pipe"] >= 0
        assert info["sacked"] + info["lost"] <= outstanding

    @invariant()
    def episode_lasts_while_una_below_high_seq(self) -> None:
        conn = self.tcb.conn
        ls = conn._ls
        if ls.state >= CaState.RECOVERY:
            assert conn._una < ls.high_seq, f"{ls.state} with SND.UNA past high_seq"
        elif ls.state is CaState.CWR:  # an ECE that acked everything: left on the next ACK
            assert conn._una <= ls.high_seq, "CWR with SND.UNA past high_seq"
        assert conn.info()["ca_state"] == int(ls.state)
        assert (conn._prr is not None) == (ls.state is CaState.RECOVERY)

    @invariant()
    def timers_armed_exactly_when_needed(self) -> None:
        conn = self.tcb.conn
        if conn.state is State.CLOSED:  # timed out after max_retransmits: nothing to time
            assert conn.next_timer() is None
            return
        outstanding = conn.info()["unacked"]
        queued = self.written - seq.sub(conn.snd_nxt, U0)
        if outstanding:
            assert conn._timers.rto is not None, "data outstanding without a retransmission timer"
        elif not queued:
            t = conn._timers
            assert t.rto is None and t.tlp is None and t.rack_reorder is None
        if conn._timers.tlp is not None:
            assert conn._ls.state < CaState.RECOVERY  # RFC 8985 §7.2


LossStateMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLossStateModel = LossStateMachine.TestCase
