"""The sender's record of outstanding data (RFC 6675 §2 "scoreboard", RFC 8985 §5).

Everything sent and not yet cumulatively acknowledged is kept as one
:class:`SentSeg` per transmitted segment, in sequence order, with the time it
was (re)sent and whether the peer has SACKed it or we believe it lost.  The
connection asks the scoreboard which segments to retransmit and how much data
is in the network ("pipe", RFC 6675 §4), kept incrementally so an ACK costs
O(segments it touches), not O(window):

* the segments neither SACKed nor marked lost are also linked in order of
  transmission time (Linux's "tsorted" retransmit queue), so RACK
  (RFC 8985 §6.2 step 5) stops at the first segment sent after the one most
  recently delivered instead of walking the whole window;
* the RFC 6675 §4 IsLost() scan resumes where the previous one stopped: a
  hole, once marked lost (or retransmitted, or SACKed), never needs looking
  at again, and the SACKed bytes and segments below that point are counted;
* the ranges already SACKed are remembered, so a SACK block repeated on every
  ACK (RFC 2018 §4 reports each block several times) costs only the segments
  it newly covers;
* the search for segments to retransmit resumes at the lowest one marked lost.

:attr:`Scoreboard.examined` counts the records those scans visit, so a test
can check that the cost per ACK stays proportional to what changed.

Bounded fragmentation (CVE-2019-11478, "SACK slowness"). A SACK block's edges
used to split records wherever they fell, so a receiver SACKing every other byte
turned 64 KB in flight into 66,607 one-byte records (8 MB), 1 MB into 1,049,799
(126 MB; docs/security.md, tests/tcp/test_sack_scoreboard_bound.py). Records are now
split for a SACK block only into whole MSS pieces counted from the record's
start (or at its FIN), as Linux's ``tcp_match_skb_to_sack()`` does: an edge off
that grid is moved inwards and the sliver it would have cut off stays un-SACKed.
That is always safe: SACK is advisory (RFC 2018 §8: the sender must not discard
data on a SACK, the receiver may renege), and un-SACKed data is at worst
retransmitted once more (RFC 6675 §5 treats it as a hole). A receiver that
segments as we sent never puts an edge off the grid, so normal recovery is
unchanged; a hostile one gains nothing, and records stay within the segments
sent plus one per MSS in flight. :attr:`Scoreboard.splits_refused` counts the
moved edges (the connection's ``sack_splits_refused``). Linux also caps the
queue's memory in ``tcp_fragment()``; here the send buffer bounds the bytes and
the grid bounds the records, so no second limit is needed, and the connection is
kept: ignoring the blocks costs the attacker's own throughput only.

Positions are the connection's unbounded stream positions (no wrap).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator


class SentSeg:
    """One transmitted segment: ``[start, end)`` in stream positions.

    ``tprev``/``tnext`` link it into the transmission-time list while it is
    neither SACKed nor marked lost (RFC 8985 §6.2); both are None otherwise.
    """

    __slots__ = ("end", "fin", "lost", "retrans", "sacked", "start", "tnext", "tprev", "tx", "xmit")

    def __init__(self, start: int, end: int, xmit: float, fin: bool) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.fin = fin
        self.retrans = 0
        self.sacked = False
        self.lost = False
        self.tprev: SentSeg | None = None
        self.tnext: SentSeg | None = None
        # Delivery state when (re)sent, for rate samples (see .rate_sample); None once used.
        self.tx: tuple[int, float, float, bool, int, int, int] | None = None

    def __repr__(self) -> str:
        marks = "S" if self.sacked else ("L" if self.lost else "")
        return f"<{self.start}:{self.end}{marks} x{self.retrans} t={self.xmit:.4f}>"


def _start(s: SentSeg) -> int:
    return s.start


class Scoreboard:
    """Outstanding segments with SACK and loss marks."""

    __slots__ = (
        "_dt_bytes",
        "_dt_pos",
        "_dt_segs",
        "_head",
        "_lost_pos",
        "_sacked_map",
        "_thead",
        "_ttail",
        "examined",
        "highest_sacked",
        "lost_bytes",
        "lost_total",
        "sacked_bytes",
        "sacked_segs",
        "segs",
        "splits_refused",
    )

    def __init__(self) -> None:
        self.segs: list[SentSeg] = []
        self._head = 0
        self.sacked_bytes = 0
        self.sacked_segs = 0  # live SACKed records (RFC 6675 §4 counts segments too)
        self.lost_bytes = 0  # marked lost and not yet retransmitted: not in the pipe
        self.lost_total = 0  # every byte ever marked lost (C.lost, draft-ietf-ccwg-bbr §4.1)
        self.highest_sacked = 0
        # Transmission-time list of the segments neither SACKed nor lost (RFC 8985 §6.2).
        self._thead: SentSeg | None = None
        self._ttail: SentSeg | None = None
        # IsLost() scan hint (RFC 6675 §4): no live segment starting below _dt_pos can be
        # newly marked; _dt_bytes/_dt_segs are the SACKed bytes/records below it.
        self._dt_pos = 0
        self._dt_bytes = 0
        self._dt_segs = 0
        self._lost_pos = 0  # no live segment starting below this is marked lost
        # Boundaries [a0, b0, a1, b1, ...] of the ranges fully SACKed (created on demand).
        self._sacked_map: list[int] | None = None
        self.examined = 0  # records visited by the scans (a cost meter for tests)
        self.splits_refused = 0  # SACK edges moved off-grid; the connection collects them

    def __len__(self) -> int:
        return len(self.segs) - self._head

    def __iter__(self) -> Iterator[SentSeg]:
        return iter(self.segs[self._head :])

    def live(self) -> list[SentSeg]:
        """A copy of the outstanding records, in sequence order (O(window): for
        inspection; the connection uses :meth:`first`, :meth:`last` and the scans)."""
        return self.segs[self._head :]

    def first(self) -> SentSeg | None:
        """The oldest outstanding record (the one at SND.UNA), if any."""
        return self.segs[self._head] if self._head < len(self.segs) else None

    def last(self) -> SentSeg | None:
        """The most recently added record (the highest sequence sent), if any."""
        return self.segs[-1] if self._head < len(self.segs) else None

    # ------------------------------------------------------- transmission-time list
    def _link_after(self, s: SentSeg, prev: SentSeg | None) -> None:
        nxt = self._thead if prev is None else prev.tnext
        s.tprev = prev
        s.tnext = nxt
        if prev is None:
            self._thead = s
        else:
            prev.tnext = s
        if nxt is None:
            self._ttail = s
        else:
            nxt.tprev = s

    def _link(self, s: SentSeg) -> None:
        """Insert by transmission time: at the tail unless a caller's clock went back."""
        prev = self._ttail
        while prev is not None and prev.xmit > s.xmit:
            prev = prev.tprev
        self._link_after(s, prev)

    def _unlink(self, s: SentSeg) -> None:
        prev, nxt = s.tprev, s.tnext
        if prev is None:
            if self._thead is not s:
                return  # not in the list
            self._thead = nxt
        else:
            prev.tnext = nxt
        if nxt is None:
            self._ttail = prev
        else:
            nxt.tprev = prev
        s.tprev = s.tnext = None

    def by_xmit(self) -> Iterator[SentSeg]:
        """The records neither SACKed nor lost, oldest transmission first (RFC 8985
        §6.2, Linux's tsorted queue).  The caller may mark the current one lost."""
        s = self._thead
        while s is not None:
            nxt = s.tnext
            self.examined += 1
            yield s
            s = nxt

    # -------------------------------------------------------------- record keeping
    def add(self, start: int, end: int, now: float, fin: bool) -> SentSeg:
        seg = SentSeg(start, end, now, fin)
        self.segs.append(seg)
        self._link(seg)
        return seg

    def pop_last(self) -> SentSeg:
        """Withdraw the most recent record (a refused zero-window probe, RFC 9293
        §3.8.6.1); the connection moves SND.NXT back to its start."""
        s = self.segs.pop()
        size = s.end - s.start
        if s.sacked:
            self.sacked_bytes -= size
            self.sacked_segs -= 1
            if s.end <= self._dt_pos:
                self._dt_bytes -= size
                self._dt_segs -= 1
        elif s.lost:
            self.lost_bytes -= size
        else:
            self._unlink(s)
        if self._dt_pos > s.start:
            self._dt_pos = s.start
        m = self._sacked_map
        if m:  # the range may be sent again: forget that it was SACKed
            i = bisect.bisect_left(m, s.start)
            del m[i:]
            if i % 2:
                m.append(s.start)
        return s

    def ack(self, ack: int) -> list[SentSeg]:
        """Drop everything below the cumulative ACK; return the segments it finished."""
        segs = self.segs
        i = self._head
        n = len(segs)
        dt = self._dt_pos
        done: list[SentSeg] = []
        while i < n and segs[i].end <= ack:
            s = segs[i]
            size = s.end - s.start
            if s.sacked:
                self.sacked_bytes -= size
                self.sacked_segs -= 1
                if s.end <= dt:
                    self._dt_bytes -= size
                    self._dt_segs -= 1
            elif s.lost:
                self.lost_bytes -= size
            else:
                self._unlink(s)
            done.append(s)
            i += 1
        if i < n and segs[i].start < ack:  # partially acknowledged: trim it
            s = segs[i]
            cut = ack - s.start
            if s.sacked:
                self.sacked_bytes -= cut
                if s.end <= dt:
                    self._dt_bytes -= cut
            elif s.lost:
                self.lost_bytes -= cut
            s.start = ack
        self._head = i
        if ack >= dt:  # everything below the scan hint is gone
            self._dt_pos = ack
            self._dt_bytes = self._dt_segs = 0
        m = self._sacked_map
        if m:
            while len(m) > 1 and m[1] <= ack:
                del m[:2]
        if i == n:
            if n:
                segs.clear()  # all acknowledged: release the records at once
            self._head = 0
        elif i > 64 and i * 2 > n:
            del segs[:i]
            self._head = 0
        return done

    def _split(self, idx: int, at: int) -> None:
        """Split segment ``idx`` at position ``at`` (start < at < end)."""
        s = self.segs[idx]
        tail = SentSeg(at, s.end, s.xmit, s.fin)
        tail.retrans, tail.sacked, tail.lost, tail.tx = s.retrans, s.sacked, s.lost, s.tx
        s.end = at
        s.fin = False
        self.segs.insert(idx + 1, tail)
        if s.sacked:
            self.sacked_segs += 1
            if tail.end <= self._dt_pos:
                self._dt_segs += 1
        elif not s.lost:
            self._link_after(tail, s)  # sent at the same time, right after its head

    def split(self, s: SentSeg, at: int) -> SentSeg:
        """Cut record ``s`` at position ``at`` (``s.start < at < s.end``) and return the
        upper part, which inherits its marks (Linux's ``tcp_fragment``): a resend may
        then take only what the congestion window or a smaller MSS allows."""
        if not s.start < at < s.end:
            raise ValueError(f"cannot split {s!r} at {at}")
        i = self._index(s.start)
        if self.segs[i] is not s:
            raise ValueError(f"{s!r} is not an outstanding record")
        self._split(i, at)
        return self.segs[i + 1]

    def absorb_next(self, s: SentSeg, max_data: int, wnd_end: int) -> bool:
        """Merge the record after ``s`` into it (Linux ``tcp_collapse_retrans()``) when
        both are marked lost, neither is SACKed, their data fits ``max_data`` and the
        result ends within ``wnd_end``; the merged record keeps the later one's FIN.
        Return whether it merged."""
        segs = self.segs
        i = self._index(s.start)
        if segs[i] is not s or i + 1 >= len(segs):
            return False
        nxt = segs[i + 1]
        data_end = nxt.end - (1 if nxt.fin else 0)
        if (
            not (s.lost and nxt.lost)
            or s.sacked
            or nxt.sacked
            or nxt.start != s.end
            or data_end - s.start > max_data
            or data_end > wnd_end
        ):
            return False
        s.end, s.fin = nxt.end, nxt.fin
        s.retrans = max(s.retrans, nxt.retrans)
        del segs[i + 1]
        return True

    def _index(self, pos: int) -> int:
        """Index of the live segment holding ``pos`` (the first one if ``pos`` is below)."""
        lo = self._head
        # Binary search on start positions (segments are contiguous and ordered).
        i = bisect.bisect_right(self.segs, pos, lo=lo, key=_start) - 1
        return max(i, lo)

    def _split_at(self, pos: int) -> None:
        i = self._index(pos)
        segs = self.segs
        if i < len(segs) and segs[i].start < pos < segs[i].end:
            self._split(i, pos)

    def _cover(self, left: int, right: int) -> list[tuple[int, int]]:
        """Record ``[left, right)`` as SACKed; return its parts that were not yet."""
        m = self._sacked_map
        if m is None:
            m = self._sacked_map = []
        i = bisect.bisect_right(m, left)
        j = bisect.bisect_left(m, right)
        gaps: list[tuple[int, int]] = []
        cur = left
        covered = i % 2 == 1
        for b in m[i:j]:
            if not covered:
                gaps.append((cur, b))
            cur = b
            covered = not covered
        if not covered and cur < right:
            gaps.append((cur, right))
        lo = bisect.bisect_left(m, left)
        hi = bisect.bisect_right(m, right)
        m[lo:hi] = ([left] if lo % 2 == 0 else []) + ([right] if hi % 2 == 0 else [])
        return gaps

    def _on_grain(self, pos: int, grain: int, up: bool) -> int:
        """``pos`` moved onto the record's grid (its start plus whole ``grain``s, or
        the FIN's position), up or down, counting a refused split if it moved."""
        segs = self.segs
        i = self._index(pos)
        if i < len(segs):
            s = segs[i]
            if s.start < pos < s.end and not (s.fin and pos == s.end - 1):
                off = pos - s.start
                cut = off - off % grain
                if up and cut < off:
                    cut += grain
                if cut != off:
                    self.splits_refused += 1
                    return min(s.start + cut, s.end)
        return pos

    def sack(self, left: int, right: int, grain: int = 1) -> list[SentSeg]:
        """Mark ``[left, right)`` SACKed (RFC 2018 §3); return newly SACKed segments.

        Segments straddling either edge are split there, but only into pieces of
        whole ``grain`` bytes from the record's start (the connection passes its
        MSS): an edge off that grid is moved inwards, so the part of the record it
        would have cut off stays un-SACKed (see the module docstring).  Only the
        parts of the block not SACKed before are walked."""
        segs = self.segs
        if len(segs) == self._head or right <= segs[self._head].start:
            return []
        if grain > 1:
            left = self._on_grain(left, grain, True)
            right = self._on_grain(right, grain, False)
            if left >= right:
                return []
        self._split_at(left)
        self._split_at(right)
        newly: list[SentSeg] = []
        dt = self._dt_pos
        looked = 0
        for lo, hi in self._cover(left, right):
            i = self._index(lo)
            n = len(segs)
            while i < n and segs[i].start < hi:
                s = segs[i]
                looked += 1
                if s.start >= lo and not s.sacked:
                    s.sacked = True
                    size = s.end - s.start
                    self.sacked_bytes += size
                    self.sacked_segs += 1
                    if s.end <= dt:
                        self._dt_bytes += size
                        self._dt_segs += 1
                    if s.lost:
                        s.lost = False
                        self.lost_bytes -= size
                    else:
                        self._unlink(s)
                    newly.append(s)
                i += 1
        self.examined += looked
        if right > self.highest_sacked and newly:
            self.highest_sacked = right
        return newly

    def mark_lost(self, s: SentSeg) -> bool:
        if s.sacked or s.lost:
            return False
        s.lost = True
        self.lost_bytes += s.end - s.start
        self.lost_total += s.end - s.start
        self._unlink(s)
        if s.start < self._lost_pos:
            self._lost_pos = s.start
        return True

    def mark_all_lost(self, forget_sacks: bool) -> None:
        """After a timeout: everything not SACKed is lost (RFC 6675 §5.1).  With
        ``forget_sacks`` prior SACK information is ignored too (RFC 2018 §8)."""
        for s in self.segs[self._head :]:
            if s.sacked and forget_sacks:
                s.sacked = False
                self.sacked_bytes -= s.end - s.start
            if not s.sacked and not s.lost:
                s.lost = True
                self.lost_bytes += s.end - s.start
                self.lost_total += s.end - s.start
            s.tprev = s.tnext = None
        self._thead = self._ttail = None
        if forget_sacks:
            self.highest_sacked = 0
            self.sacked_segs = 0
            self._sacked_map = None
        self._lost_pos = 0
        self._dt_pos = self._dt_bytes = self._dt_segs = 0

    def retransmitted(self, s: SentSeg, now: float) -> None:
        if s.lost:
            s.lost = False
            self.lost_bytes -= s.end - s.start
        else:
            self._unlink(s)  # a probe resent before it was judged lost
        s.retrans += 1
        s.xmit = now
        if not s.sacked:
            self._link(s)  # sent again: now the newest transmission

    def lost_segments(self) -> Iterator[SentSeg]:
        """The records marked lost, in sequence order (RFC 6675 §4 NextSeg rule 1).
        The caller retransmits each as it comes (or stops); the walk resumes at the
        lowest one still marked next time."""
        segs = self.segs
        i = self._index(self._lost_pos)
        looked = 0
        try:
            while self.lost_bytes and i < len(segs):
                s = segs[i]
                looked += 1
                if s.lost:
                    self._lost_pos = s.start
                    yield s
                else:
                    self._lost_pos = s.end
                i += 1
        finally:
            self.examined += looked

    def mark_dupthresh_losses(self, mss: int, dupthresh: int = 3) -> int:
        """RFC 6675 §4 IsLost(): a hole is lost when DupThresh SACKed segments, or more
        than (DupThresh - 1) * SMSS SACKed bytes, lie above it.  A segment already
        retransmitted is left alone (RFC 6675 HighRxt: the SACKs above it predate the
        retransmission; RACK's time rule judges it).  Returns how many were marked.

        The SACKed bytes and segments above a hole only grow until it is cumulatively
        acknowledged, so the holes that qualify form a prefix: the scan resumes at the
        first one that did not qualify last time and stops at the next such one."""
        if not self.sacked_bytes:
            return 0
        segs = self.segs
        n = len(segs)
        # The first record at or above the hint (the hint is always a record boundary).
        i = bisect.bisect_left(segs, self._dt_pos, lo=self._head, key=_start)
        bytes_above = self.sacked_bytes - self._dt_bytes
        segs_above = self.sacked_segs - self._dt_segs
        limit = (dupthresh - 1) * mss
        highest = self.highest_sacked
        marked = 0
        looked = 0
        while i < n:
            s = segs[i]
            looked += 1
            if s.start >= highest or bytes_above <= 0:
                break
            if s.sacked:
                size = s.end - s.start
                bytes_above -= size
                segs_above -= 1
                self._dt_bytes += size
                self._dt_segs += 1
            elif bytes_above > limit or segs_above >= dupthresh:
                if not s.retrans and self.mark_lost(s):
                    marked += 1
            else:
                break  # this hole and every later one has too little SACKed above it
            i += 1
        if i < n:
            self._dt_pos = segs[i].start
        elif n > self._head:
            self._dt_pos = segs[-1].end
        self.examined += looked
        return marked
