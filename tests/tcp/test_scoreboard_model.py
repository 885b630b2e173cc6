"""The scoreboard's incremental scans against a plain model that rescans everything.

:class:`synack.tcp.scoreboard.Scoreboard` keeps hints so each ACK costs what it
changes (the RFC 6675 §4 IsLost() scan resumes where it stopped, RACK walks a
transmission-time list, repeated SACK blocks skip ranges already SACKed).  The
model below is the textbook form: every query walks the whole window.  Random
sequences of sends, SACKs, cumulative ACKs, loss marks, retransmissions,
timeouts and withdrawn probes must leave both in the same state and make them
give the same answers.
"""

from __future__ import annotations

import random

import pytest

from synack.tcp.scoreboard import Scoreboard, SentSeg


class ModelSeg:
    """One record of the model: ``[start, end)`` with the scoreboard's marks."""

    __slots__ = ("end", "lost", "retrans", "sacked", "start", "xmit")

    def __init__(self, start: int, end: int, xmit: float) -> None:
        self.start, self.end, self.xmit = start, end, xmit
        self.retrans = 0
        self.sacked = self.lost = False


class Model:
    """Rescans the whole window for every question (RFC 6675 §4, RFC 8985 §6.2)."""

    def __init__(self) -> None:
        self.segs: list[ModelSeg] = []
        self.highest_sacked = 0

    def split(self, i: int, at: int) -> None:
        s = self.segs[i]
        t = ModelSeg(at, s.end, s.xmit)
        t.retrans, t.sacked, t.lost = s.retrans, s.sacked, s.lost
        s.end = at
        self.segs.insert(i + 1, t)

    def sack(self, left: int, right: int, grain: int = 1) -> list[tuple[int, int]]:
        if not self.segs or right <= self.segs[0].start:
            return []
        for s in self.segs:  # edges inside a record move inwards onto its grain grid
            if s.start < left < s.end and (left - s.start) % grain:
                left = min(s.start + (left - s.start) // grain * grain + grain, s.end)
            if s.start < right < s.end and (right - s.start) % grain:
                right = s.start + (right - s.start) // grain * grain
        if left >= right:
            return []
        for i, s in enumerate(self.segs):
            if s.start < left < s.end:
                self.split(i, left)
                break
        for i, s in enumerate(self.segs):
            if s.start < right < s.end:
                self.split(i, right)
                break
        newly = []
        for s in self.segs:
            if left <= s.start and s.end <= right and not s.sacked:
                s.sacked, s.lost = True, False
                newly.append((s.start, s.end))
        if newly and right > self.highest_sacked:
            self.highest_sacked = right
        return newly

    def ack(self, ack: int) -> None:
        self.segs = [s for s in self.segs if s.end > ack]
        if self.segs and self.segs[0].start < ack:
            self.segs[0].start = ack

    def dupthresh(self, mss: int) -> list[tuple[int, int]]:
        marked = []
        for i, s in enumerate(self.segs):
            if s.start >= self.highest_sacked:
                break
            if s.sacked or s.lost or s.retrans:
                continue
            above = [t for t in self.segs[i + 1 :] if t.sacked]
            if sum(t.end - t.start for t in above) > 2 * mss or len(above) >= 3:
                s.lost = True
                marked.append((s.start, s.end))
        return marked

    def rack(
        self, rack_xmit: float, rack_end: int, horizon: float, now: float
    ) -> tuple[list[tuple[int, int]], float]:
        marked, wait = [], 0.0
        for s in self.segs:
            if s.sacked or s.lost:
                continue
            if s.xmit > rack_xmit or (s.xmit == rack_xmit and s.end >= rack_end):
                continue
            remaining = s.xmit + horizon - now
            if remaining <= 0:
                s.lost = True
                marked.append((s.start, s.end))
            else:
                wait = max(wait, remaining)
        return sorted(marked), wait


def rack_scan(
    sb: Scoreboard, rack_xmit: float, rack_end: int, horizon: float, now: float
) -> tuple[list[tuple[int, int]], float]:
    """The connection's RACK walk (Connection._rack_detect) over the scoreboard."""
    marked, wait = [], 0.0
    for s in sb.by_xmit():
        if s.xmit > rack_xmit:
            break
        if s.xmit == rack_xmit and s.end >= rack_end:
            continue
        remaining = s.xmit + horizon - now
        if remaining <= 0:
            assert sb.mark_lost(s)
            marked.append((s.start, s.end))
        elif remaining > wait:
            wait = remaining
    return sorted(marked), wait


def state(segs: list[SentSeg] | list[ModelSeg]) -> list[tuple[int, int, bool, bool, int, float]]:
    return [(s.start, s.end, s.sacked, s.lost, s.retrans, s.xmit) for s in segs]


def check(sb: Scoreboard, model: Model) -> None:
    live = sb.live()
    assert state(live) == state(model.segs)
    assert sb.sacked_bytes == sum(s.end - s.start for s in live if s.sacked)
    assert sb.sacked_segs == sum(1 for s in live if s.sacked)
    assert sb.lost_bytes == sum(s.end - s.start for s in live if s.lost)
    assert sb.highest_sacked == model.highest_sacked
    # The transmission-time list holds exactly the records neither SACKed nor lost,
    # in order of transmission time.
    listed = list(sb.by_xmit())
    assert sorted(map(id, listed)) == sorted(id(s) for s in live if not (s.sacked or s.lost))
    assert [s.xmit for s in listed] == sorted(s.xmit for s in listed)


@pytest.mark.parametrize("grain", [1, 100])
@pytest.mark.parametrize("seed", range(40))
def test_scoreboard_matches_full_rescan_model(seed: int, grain: int) -> None:
    """Every operation against the model, including Scoreboard.split (a lost record
    cut to what the window allows, a tail loss probe's last MSS); after each step
    the scan hints must still describe what lies below them.  With ``grain`` 100 (the
    MSS) SACK edges inside a record move inwards onto its whole-MSS grid
    (CVE-2019-11478 hardening) in both."""
    rnd = random.Random(seed)
    sb, model = Scoreboard(), Model()
    mss = 100
    nxt, una, now = 1, 1, 0.0

    def resent(start: int) -> None:
        m = next(m for m in model.segs if m.start == start)
        m.lost, m.retrans, m.xmit = False, m.retrans + 1, now

    for step in range(600):
        now += rnd.choice((0.0, 0.0, 0.001, 0.01))
        op = rnd.random()
        if op < 0.3:  # send new data (sometimes an offloaded multi-segment record)
            n = rnd.choice((mss, mss, mss // 2, 1, 5 * mss))
            sb.add(nxt, nxt + n, now, False)
            model.segs.append(ModelSeg(nxt, nxt + n, now))
            nxt += n
        elif op < 0.5 and nxt > una + 1:  # a SACK block, often repeating a known one
            left = rnd.randrange(una, nxt - 1)
            right = rnd.randrange(left + 1, min(nxt, left + 8 * mss) + 1)
            got = [(s.start, s.end) for s in sb.sack(left, right, grain)]
            assert got == model.sack(left, right, grain)
        elif op < 0.58 and nxt > una:  # cumulative ACK
            una = rnd.randrange(una, nxt + 1)
            sb.ack(una)
            model.ack(una)
        elif op < 0.65:
            marked = sb.mark_dupthresh_losses(mss)
            assert marked == len(model.dupthresh(mss))
        elif op < 0.72 and model.segs:  # RACK with some delivered segment as reference
            ref = rnd.choice(model.segs)
            horizon = rnd.choice((0.0, 0.005, 0.02))
            assert rack_scan(sb, ref.xmit, ref.end, horizon, now) == model.rack(
                ref.xmit, ref.end, horizon, now
            )
        elif op < 0.79 and sb.lost_bytes:  # retransmit some of what is lost, in order
            budget = rnd.randrange(1, 4)
            want = [(s.start, s.end) for s in model.segs if s.lost][:budget]
            got = []
            for s in sb.lost_segments():
                if len(got) == budget:
                    break
                got.append((s.start, s.end))
                sb.retransmitted(s, now)
                resent(s.start)
            assert got == want
        elif op < 0.85 and sb.lost_bytes:  # resend, cutting records as _send_data does
            room = rnd.randrange(1, 4) * mss
            for s in sb.lost_segments():
                if room <= 0:
                    break
                limit = rnd.choice((mss, 2 * mss))
                if s.end - s.start > limit:
                    i = next(i for i, m in enumerate(model.segs) if m.start == s.start)
                    sb.split(s, s.start + limit)
                    model.split(i, s.start + limit)
                room -= s.end - s.start
                sb.retransmitted(s, now)
                resent(s.start)
        elif op < 0.90 and model.segs:  # any record cut anywhere (a probe's tail)
            i = rnd.randrange(len(model.segs))
            m = model.segs[i]
            if m.end - m.start > 1:
                at = rnd.randrange(m.start + 1, m.end)
                tail = sb.split(sb.live()[i], at)
                model.split(i, at)
                assert (tail.start, tail.end) == (at, model.segs[i + 1].end)
                if rnd.random() < 0.5 and not tail.sacked:
                    sb.retransmitted(tail, now)
                    resent(tail.start)
        elif op < 0.92 and model.segs:  # a timeout
            forget = rnd.random() < 0.8
            sb.mark_all_lost(forget_sacks=forget)
            for m in model.segs:
                if forget:
                    m.sacked = False
                if not m.sacked:
                    m.lost = True
            if forget:
                model.highest_sacked = 0
        elif op < 0.96 and model.segs:  # one record judged lost
            i = rnd.randrange(len(model.segs))
            if sb.mark_lost(sb.live()[i]):
                model.segs[i].lost = True
        elif model.segs and not model.segs[-1].sacked:  # withdraw a refused probe
            s = sb.pop_last()
            m = model.segs.pop()
            assert (s.start, s.end) == (m.start, m.end)
            nxt = m.start
        check(sb, model)
        live = sb.live()
        below = [s for s in live if s.end <= sb._dt_pos]
        assert sb._dt_bytes == sum(s.end - s.start for s in below if s.sacked), step
        assert sb._dt_segs == sum(1 for s in below if s.sacked), step
        assert all(not s.lost for s in live if s.start < sb._lost_pos), step


def test_dupthresh_and_rack_cost_per_ack_stays_constant_in_a_big_window() -> None:
    """A window of 20,000 segments with a hole every 100: the receiver's SACK blocks
    grow by one segment per ACK.  The scans must not walk the window on every ACK
    (RFC 6675 §4 and RFC 8985 §6.2 as incremental scans): counted records visited
    per ACK stay small however big the window is."""
    mss = 1000
    n = 20_000
    sb = Scoreboard()
    for i in range(n):
        sb.add(1 + i * mss, 1 + (i + 1) * mss, i * 1e-5, False)
    lost = set(range(0, n, 100))
    acks = 0
    start = sb.examined
    left = None
    for i in range(n):
        if i in lost:
            left = None
            continue
        pos = 1 + i * mss
        if left is None:
            left = pos
        sb.sack(left, pos + mss)  # the block holding the newest arrival, repeated
        sb.mark_dupthresh_losses(mss)
        for s in sb.by_xmit():  # RACK: everything sent before the newest delivery
            if s.xmit >= i * 1e-5:
                break
            sb.mark_lost(s)
        acks += 1
        if sb.lost_bytes:
            for s in sb.lost_segments():
                sb.retransmitted(s, 1.0)
    per_ack = (sb.examined - start) / acks
    assert sb.sacked_segs == n - len(lost)
    assert per_ack < 10, f"{per_ack:.1f} records examined per ACK: the scans became O(window)"


def test_split_refuses_a_position_outside_the_record() -> None:
    sb = Scoreboard()
    s = sb.add(1, 101, 0.0, False)
    for at in (1, 101, 0, 200):
        with pytest.raises(ValueError):
            sb.split(s, at)
