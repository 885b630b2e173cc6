"""Congestion-window validation: is the sender using its window? (RFC 7661 §4,
RFC 9438 §5.8, Linux ``tcp_cwnd_validate`` and ``tcp_is_cwnd_limited``.)

A sender limited by the application, the receive window or its send buffer is
not testing the path with its whole cwnd, so an ACK is no evidence that a larger
window would be safe: cwnd grows only while the window is in use.  As Linux
does, the answer is kept for one window of data: the sender was cwnd-limited at
some send during the last window, or (in slow start) cwnd is still below twice
the largest flight of that window, so slow start can double what it really sent.
"""

from __future__ import annotations


class CwndUse:
    """How fully the congestion window was used over the last window of data."""

    __slots__ = ("limited", "max_flight", "until")

    def __init__(self) -> None:
        self.limited = False  # cwnd-limited at some send in the current window
        self.max_flight = 0  # the largest flight (bytes) seen in that window
        self.until = 0  # send position (SND.NXT) that ends the window measured

    def after_send(self, una: int, nxt: int, cwnd_limited: bool) -> None:
        """Record one pass of the send path (``tcp_cwnd_validate``)."""
        flight = nxt - una
        if una >= self.until or cwnd_limited or (not self.limited and flight > self.max_flight):
            self.limited = cwnd_limited
            self.max_flight = flight
            self.until = nxt

    def may_grow(self, cwnd: int, slow_start: bool) -> bool:
        """``tcp_is_cwnd_limited``: may an ACK grow cwnd now?"""
        return self.limited or (slow_start and cwnd < 2 * self.max_flight)
