"""Pacing: release data at a rate instead of in window-sized bursts.

The rate is the congestion control's when it sets one (BBR, draft-ietf-ccwg-bbr
§5.6.2), otherwise Linux's default (``tcp_update_pacing_rate``): cwnd / SRTT
times 2 in slow start (cwnd below half of ssthresh, ``tcp_pacing_ss_ratio``
200 %) and 1.2 after (``tcp_pacing_ca_ratio`` 120 %), so pacing never holds a
window-limited flow below what its window allows.

The send path asks :meth:`Pacer.budget` how many bytes it may release now: a
quantum when the pacing time has come, nothing before.  A quantum is about 1 ms
of data at the pacing rate, at least two segments and at most 64 KB: the size
Linux gives a TSO packet (``tcp_tso_autosize``, ``sk_pacing_shift`` 10) and BBR
its send quantum (draft §5.6.3).  What was released moves the next release
time by its length at the pacing rate (``tcp_update_skb_after_send``); the
connection arms a timer for that time, so the stack's one timer heap drives
pacing and no thread is needed.
"""

from __future__ import annotations

#: About 1 ms of data per release: rate >> 10 in Linux (sk_pacing_shift).
PACING_SHIFT_SECONDS = 1.0 / 1024
#: The largest TSO packet (GSO_MAX_SIZE) and the least a release carries, in segments.
MAX_QUANTUM = 65536
#: The most of the next wait a late release is credited (Linux: half).
LATE_CREDIT = 0.9
MIN_TSO_SEGS = 2


def default_rate(cwnd: int, flight: int, srtt: float | None, slow_start: bool) -> float:
    """Linux ``tcp_update_pacing_rate``: bytes per second, 0 before an RTT is known
    (Linux then does not divide, an effectively unlimited rate)."""
    if not srtt:
        return 0.0
    return max(cwnd, flight) / srtt * (2.0 if slow_start else 1.2)


def autosize(rate: float, mss: int) -> int:
    """``tcp_tso_autosize``: bytes per release, whole segments, ~1 ms at ``rate``."""
    segs = max(int(rate * PACING_SHIFT_SECONDS) // mss, MIN_TSO_SEGS)
    return min(segs * mss, max(MAX_QUANTUM - MAX_QUANTUM % mss, mss))


class Pacer:
    """The pacing state of one connection: rate, next release time, quantum."""

    __slots__ = ("next_at", "quantum", "rate")

    def __init__(self) -> None:
        self.rate = 0.0  # bytes per second; 0: not paced (no RTT yet)
        self.next_at = 0.0  # earliest time of the next release
        self.quantum = 0  # bytes per release

    def budget(self, now: float) -> int | None:
        """Bytes the send path may release now; None when pacing does not apply."""
        if self.rate <= 0:
            return None
        if now + 1e-9 < self.next_at:
            return 0
        return self.quantum

    def sent(self, n: int, now: float) -> None:
        """``n`` bytes left (``tcp_update_skb_after_send``): the next release waits for
        them to drain at the pacing rate, less the time this release came late (the
        timer fired late, the host was busy).  Linux credits such "OS jitter" up to
        half that wait, its pacing timer being a microsecond hrtimer; synack's is the
        event loop's, which epoll wakes in whole milliseconds (asyncio rounds the
        timeout up), about a quantum, so a late wake-up is common and credited up to
        :data:`LATE_CREDIT` of the wait: the next release comes sooner, never at once.
        With Linux's half, a timer late by U(0, 1) ms paces ~12 % below the rate, and
        BBR, whose lower bounds follow what was delivered under random loss, followed
        it down.  Idle time is not banked beyond that."""
        if n and self.rate > 0:
            gap = n / self.rate
            self.next_at = max(self.next_at + gap, now + gap * (1 - LATE_CREDIT))
