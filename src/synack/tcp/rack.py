"""RACK (RFC 8985 §6): time-based loss detection, one object per connection.

It remembers the most recently *sent* segment that was delivered (RACK.xmit_ts,
RACK.end_seq, RACK.rtt) and whether reordering was seen; :meth:`detect` marks as
lost every segment sent sufficiently earlier than that one and says when to look
again (the reordering timer)."""

from __future__ import annotations

import math

from .scoreboard import Scoreboard, SentSeg


class Rack:
    """RFC 8985 §6.1 per-connection state."""

    __slots__ = ("end", "reordering_seen", "rtt", "xmit")

    def __init__(self) -> None:
        self.xmit = -1.0  # RACK.xmit_ts; negative until something was delivered
        self.end = 0  # RACK.end_seq
        self.rtt = 0.0  # RACK.rtt
        self.reordering_seen = False  # RACK.reordering_seen (RFC 8985 §6.2 step 3)

    def update(self, s: SentSeg, now: float, min_rtt: float) -> None:
        """RFC 8985 §6.2 step 2: ``s`` was just delivered (cumulatively or by SACK)."""
        rtt = now - s.xmit
        if s.retrans and rtt < min_rtt - 1e-9:
            return  # may be the ACK of the original transmission: ambiguous
        if s.xmit > self.xmit or (s.xmit == self.xmit and s.end > self.end):
            self.xmit = s.xmit
            self.end = s.end
            self.rtt = rtt

    def reo_wnd(
        self, recovering: bool, sacked_bytes: int, mss: int, min_rtt: float, srtt: float | None
    ) -> float:
        """RFC 8985 §6.2 step 4: the reordering window."""
        if not self.reordering_seen and (recovering or sacked_bytes >= 3 * mss):
            return 0.0
        base = min_rtt if min_rtt != math.inf else 0.0
        return min(base / 4, srtt or 0.0)

    def detect(self, sb: Scoreboard, now: float, reo_wnd: float) -> tuple[int, float | None]:
        """RFC 8985 §6.2 step 5: mark lost every segment sent well before RACK.xmit_ts.

        Returns ``(newly marked, deadline)``; the deadline is when the earliest
        remaining candidate would be lost (the reordering timer), or None.  Only
        segments neither SACKed nor lost are candidates; the scoreboard keeps them
        in transmission order, so the walk stops at the first one sent after the
        RACK segment (as Linux's tsorted queue) instead of covering the window."""
        if self.xmit < 0:
            return 0, None
        horizon = self.rtt + reo_wnd
        wait = 0.0
        marked = 0
        xmit = self.xmit
        end = self.end
        for s in sb.by_xmit():
            if s.xmit > xmit:
                break  # it and every later one were sent after the RACK segment
            if s.xmit == xmit and s.end >= end:
                continue
            remaining = s.xmit + horizon - now
            if remaining <= 0:
                if sb.mark_lost(s):
                    marked += 1
            elif remaining > wait:
                wait = remaining
        return marked, (now + wait if wait > 0 else None)
