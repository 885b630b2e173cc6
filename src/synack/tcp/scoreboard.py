"""The sender's record of outstanding data (RFC 6675 §2 "scoreboard", RFC 8985 §5).

Everything sent and not yet cumulatively acknowledged is kept as one
:class:`SentSeg` per transmitted segment, in sequence order, with the time it
was (re)sent and whether the peer has SACKed it or we believe it lost.  The
connection asks the scoreboard which segments to retransmit and how much data
is in the network ("pipe", RFC 6675 §4), kept incrementally so an ACK costs
O(segments it touches), not O(window).

Positions are the connection's unbounded stream positions (no wrap).
"""

from __future__ import annotations

import bisect


class SentSeg:
    """One transmitted segment: ``[start, end)`` in stream positions."""

    __slots__ = ("end", "fin", "lost", "retrans", "sacked", "start", "xmit")

    def __init__(self, start: int, end: int, xmit: float, fin: bool) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.fin = fin
        self.retrans = 0
        self.sacked = False
        self.lost = False

    def __repr__(self) -> str:
        marks = "S" if self.sacked else ("L" if self.lost else "")
        return f"<{self.start}:{self.end}{marks} x{self.retrans} t={self.xmit:.4f}>"


class Scoreboard:
    """Outstanding segments with SACK and loss marks."""

    __slots__ = ("_head", "highest_sacked", "lost_bytes", "sacked_bytes", "segs")

    def __init__(self) -> None:
        self.segs: list[SentSeg] = []
        self._head = 0
        self.sacked_bytes = 0
        self.lost_bytes = 0  # marked lost and not yet retransmitted: not in the pipe
        self.highest_sacked = 0

    def __len__(self) -> int:
        return len(self.segs) - self._head

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.segs[self._head:])

    def live(self) -> list[SentSeg]:
        return self.segs[self._head:]

    def add(self, start: int, end: int, now: float, fin: bool) -> SentSeg:
        seg = SentSeg(start, end, now, fin)
        self.segs.append(seg)
        return seg

    def ack(self, ack: int) -> list[SentSeg]:
        """Drop everything below the cumulative ACK; return the segments it finished."""
        segs = self.segs
        i = self._head
        n = len(segs)
        done: list[SentSeg] = []
        while i < n and segs[i].end <= ack:
            s = segs[i]
            if s.sacked:
                self.sacked_bytes -= s.end - s.start
            elif s.lost:
                self.lost_bytes -= s.end - s.start
            done.append(s)
            i += 1
        if i < n and segs[i].start < ack:  # partially acknowledged: trim it
            s = segs[i]
            cut = ack - s.start
            if s.sacked:
                self.sacked_bytes -= cut
            elif s.lost:
                self.lost_bytes -= cut
            s.start = ack
        self._head = i
        if i > 64 and i * 2 > n:
            del segs[:i]
            self._head = 0
        return done

    def _split(self, idx: int, at: int) -> None:
        """Split segment ``idx`` at position ``at`` (start < at < end)."""
        s = self.segs[idx]
        tail = SentSeg(at, s.end, s.xmit, s.fin)
        tail.retrans, tail.sacked, tail.lost = s.retrans, s.sacked, s.lost
        s.end = at
        s.fin = False
        self.segs.insert(idx + 1, tail)

    def _index(self, pos: int) -> int:
        """Index of the first live segment whose end is beyond ``pos``."""
        lo = self._head
        segs = self.segs
        # Binary search on start positions (segments are contiguous and ordered).
        i = bisect.bisect_right(segs, pos, lo=lo, key=lambda s: s.start) - 1
        return max(i, lo)

    def sack(self, left: int, right: int) -> list[SentSeg]:
        """Mark ``[left, right)`` SACKed (RFC 2018 §3); return newly SACKed segments."""
        segs = self.segs
        if len(segs) == self._head or right <= segs[self._head].start:
            return []
        i = self._index(left)
        if i < len(segs) and segs[i].start < left < segs[i].end:
            self._split(i, left)
            i += 1
        newly: list[SentSeg] = []
        while i < len(segs) and segs[i].start < right:
            s = segs[i]
            if s.end > right:
                self._split(i, right)
            if s.start >= left and not s.sacked:
                s.sacked = True
                size = s.end - s.start
                self.sacked_bytes += size
                if s.lost:
                    s.lost = False
                    self.lost_bytes -= size
                newly.append(s)
            i += 1
        if right > self.highest_sacked and newly:
            self.highest_sacked = right
        return newly

    def mark_lost(self, s: SentSeg) -> bool:
        if s.sacked or s.lost:
            return False
        s.lost = True
        self.lost_bytes += s.end - s.start
        return True

    def mark_all_lost(self, forget_sacks: bool) -> None:
        """After a timeout: everything not SACKed is lost (RFC 6675 §5.1).  With
        ``forget_sacks`` prior SACK information is ignored too (RFC 2018 §8)."""
        for s in self.segs[self._head:]:
            if s.sacked and forget_sacks:
                s.sacked = False
                self.sacked_bytes -= s.end - s.start
            if not s.sacked and not s.lost:
                s.lost = True
                self.lost_bytes += s.end - s.start
        if forget_sacks:
            self.highest_sacked = 0

    def retransmitted(self, s: SentSeg, now: float) -> None:
        if s.lost:
            s.lost = False
            self.lost_bytes -= s.end - s.start
        s.retrans += 1
        s.xmit = now

    def mark_dupthresh_losses(self, mss: int, dupthresh: int = 3) -> int:
        """RFC 6675 §4 IsLost(): a hole is lost when DupThresh SACKed segments, or more
        than (DupThresh - 1) * SMSS SACKed bytes, lie above it.  A segment already
        retransmitted is left alone (RFC 6675 HighRxt: the SACKs above it predate the
        retransmission; RACK's time rule judges it).  Returns how many were marked."""
        if not self.sacked_bytes:
            return 0
        live = self.segs[self._head:]
        bytes_above = self.sacked_bytes
        segs_above = sum(1 for s in live if s.sacked)
        limit = (dupthresh - 1) * mss
        marked = 0
        for s in live:
            if s.start >= self.highest_sacked or bytes_above <= 0:
                break
            if s.sacked:
                bytes_above -= s.end - s.start
                segs_above -= 1
            elif ((bytes_above > limit or segs_above >= dupthresh) and not s.retrans
                  and self.mark_lost(s)):
                marked += 1
        return marked
