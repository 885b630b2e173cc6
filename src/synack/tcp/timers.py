"""The deadlines of one connection's timers: one absolute time (or None) per kind.

One object per connection, owned by :class:`~synack.tcp.connection.Connection`.  The
kinds are retransmission (also persist, RFC 6298 and RFC 9293 §3.8.6.1), delayed ACK
(RFC 5681 §4.2), TIME-WAIT (RFC 9293 §3.10.7.4, 2*MSL), FIN-WAIT-2 (Linux's
tcp_fin_timeout), RACK's reordering timer and the tail loss probe (RFC 8985 §6.3,
§7) and keepalive (RFC 1122 §4.2.3.6).  What a timer does when it fires stays with
the connection (:mod:`.conn_timers`); this object only keeps when.

Each kind is an attribute named after it (``timers.rto``), which code that names a
kind reads and writes directly: that is the hot path (the RTO moves on every ACK).
Code that goes over the kinds uses :meth:`get`, :meth:`set`, :meth:`cancel`,
:meth:`next`, :meth:`expired` and :meth:`cancel_all`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

TimerKind = Literal[
    "rto", "delayed_ack", "time_wait", "fin_wait_2", "rack_reorder", "tlp", "keepalive", "pace"
]

RTO: Final = "rto"
DELAYED_ACK: Final = "delayed_ack"
TIME_WAIT: Final = "time_wait"
FIN_WAIT_2: Final = "fin_wait_2"
RACK_REORDER: Final = "rack_reorder"
TLP: Final = "tlp"
KEEPALIVE: Final = "keepalive"
#: The pacing release (tcp/pacing.py): when the next paced segment may leave.  Not in
#: :data:`KINDS`: the pacer traces its own releases, and a timer_set per paced
#: segment would drown the trace.
PACE: Final = "pace"

#: Every kind, in the order traces report them (timer_set, timer_cancel).
KINDS: tuple[TimerKind, ...] = (
    RTO,
    DELAYED_ACK,
    TIME_WAIT,
    FIN_WAIT_2,
    RACK_REORDER,
    TLP,
    KEEPALIVE,
)
#: The order in which expired timers are handled: the ones that end the connection
#: first, then the ACK, loss detection (RACK before the probe and the RTO it would
#: pre-empt) and last keepalive, which finds out whether anything else is running.
FIRING_ORDER: tuple[TimerKind, ...] = (
    TIME_WAIT,
    FIN_WAIT_2,
    DELAYED_ACK,
    RACK_REORDER,
    TLP,
    RTO,
    KEEPALIVE,
    PACE,
)


class Timers:
    """One deadline per kind (absolute time in seconds, None when not armed)."""

    __slots__ = (
        "delayed_ack",
        "fin_wait_2",
        "keepalive",
        "pace",
        "rack_reorder",
        "rto",
        "time_wait",
        "tlp",
    )

    def __init__(self) -> None:
        self.rto: float | None = None
        self.delayed_ack: float | None = None
        self.time_wait: float | None = None
        self.fin_wait_2: float | None = None
        self.rack_reorder: float | None = None
        self.tlp: float | None = None
        self.keepalive: float | None = None
        self.pace: float | None = None

    def get(self, kind: TimerKind) -> float | None:
        """The deadline of ``kind``, None when it is not armed."""
        at: float | None = getattr(self, kind)
        return at

    def set(self, kind: TimerKind, at: float) -> None:
        """Arm ``kind`` for the absolute time ``at`` (re-arming moves it)."""
        setattr(self, kind, at)

    def cancel(self, kind: TimerKind) -> None:
        """Disarm ``kind``."""
        setattr(self, kind, None)

    def cancel_all(self) -> None:
        """Disarm every timer (the connection is CLOSED)."""
        self.rto = self.delayed_ack = self.time_wait = self.fin_wait_2 = None
        self.rack_reorder = self.tlp = self.keepalive = self.pace = None

    def next(self) -> float | None:
        """The earliest deadline, None when no timer is armed."""
        best: float | None = None
        for t in (
            self.rto,
            self.delayed_ack,
            self.time_wait,
            self.fin_wait_2,
            self.rack_reorder,
            self.tlp,
            self.keepalive,
            self.pace,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def expired(self, now: float) -> Iterator[TimerKind]:
        """The kinds due at ``now`` (deadline <= now), in :data:`FIRING_ORDER`.

        Lazily: each kind is looked at only when the previous one has been handled,
        so a timer that an earlier handler cancelled is skipped and one it armed for
        ``now`` or earlier is included, as when each is checked in turn."""
        for kind in FIRING_ORDER:
            at = getattr(self, kind)
            if at is not None and now >= at:
                yield kind
