"""The sender's loss state: one per connection, with its transitions declared once.

Linux keeps a single congestion-avoidance state per socket (``icsk_ca_state``) and
every loss-related decision reads it; synack does the same instead of spreading
flags over the connection.  The five states and their numbers are Linux's, so
``info()["ca_state"]`` is ``tcpi_ca_state``:

``OPEN``
    Nothing unusual: cwnd grows (RFC 5681 slow start and congestion avoidance).
``DISORDER``
    Duplicate ACKs or SACKed data seen, no loss decided yet (RFC 5681 §3.2 before
    the third duplicate; RFC 6675 before DupThresh; RFC 8985 while the reordering
    window runs).  The sender may use limited transmit (RFC 3042).
``CWR``
    The window was reduced once for an ECN-Echo (RFC 3168 §6.1.2) or for a loss the
    tail loss probe repaired (RFC 8985 §7.4.2); no further reduction until SND.UNA
    passes ``high_seq`` (one reduction per window of data).
``RECOVERY``
    Fast recovery (RFC 6675 §5 with PRR, RFC 6937; NewReno RFC 6582 without SACK):
    entered on the first loss mark, left when SND.UNA passes ``high_seq``, the
    SND.NXT of that moment (RFC 6582 "recover").
``LOSS``
    A retransmission timeout (RFC 6298 §5.5-5.7, RFC 5681 §3.1): cwnd is one
    segment, everything outstanding is marked lost and resent in slow start.  No
    fast recovery starts until SND.UNA passes ``high_seq``, the SND.NXT at the
    timeout (RFC 6582 §4: "no fast retransmit for pre-timeout losses"), so one loss
    event is never answered by two reductions (RFC 5681 §3.1, RFC 9438 §4.8).

A transition not in :data:`TRANSITIONS` raises :class:`IllegalLossTransition`: a
bug, never a silent change.  The connection traces every move with its trigger.
"""

from __future__ import annotations

import enum


class CaState(enum.IntEnum):
    """Linux's ``tcp_ca_state`` values (``TCP_CA_Open`` ... ``TCP_CA_Loss``)."""

    OPEN = 0
    DISORDER = 1
    CWR = 2
    RECOVERY = 3
    LOSS = 4

    def __str__(self) -> str:
        return _NAMES[self]


_O, _D, _C, _R, _L = CaState
_NAMES = {_O: "Open", _D: "Disorder", _C: "CWR", _R: "Recovery", _L: "Loss"}
#: The members as plain module names, for the hot path (no enum-class look-up).
CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = _O, _D, _C, _R, _L

#: What each trigger means, for the trace and the narration.
TRIGGERS: dict[str, str] = {
    "disorder": "duplicate ACK or SACK: something may be missing",
    "in_order": "the cumulative ACK caught up; no loss was decided",
    "loss_marked": "a loss was marked: fast retransmit",
    "ece": "ECN-Echo: congestion signalled, window reduced once",
    "tlp_repair": "the tail loss probe repaired a loss: window reduced once",
    "exit": "SND.UNA passed high_seq: the episode is over",
    "rto": "retransmission timeout",
}

#: (state, trigger) -> the states it may lead to.  Every legal move, in one place.
TRANSITIONS: dict[tuple[CaState, str], frozenset[CaState]] = {
    (_O, "disorder"): frozenset({_D}),
    (_D, "in_order"): frozenset({_O}),
    (_O, "loss_marked"): frozenset({_R}),
    (_D, "loss_marked"): frozenset({_R}),
    (_C, "loss_marked"): frozenset({_R}),  # no second reduction: see Connection
    (_O, "ece"): frozenset({_C}),
    (_D, "ece"): frozenset({_C}),
    (_O, "tlp_repair"): frozenset({_C}),
    (_D, "tlp_repair"): frozenset({_C}),
    (_C, "exit"): frozenset({_O, _D}),
    (_R, "exit"): frozenset({_O, _D}),
    (_L, "exit"): frozenset({_O, _D}),
    (_O, "rto"): frozenset({_L}),
    (_D, "rto"): frozenset({_L}),
    (_C, "rto"): frozenset({_L}),
    (_R, "rto"): frozenset({_L}),
    (_L, "rto"): frozenset({_L}),
}


class IllegalLossTransition(RuntimeError):
    """A bug: the loss state tried a move not in :data:`TRANSITIONS`."""


def check(old: CaState, trigger: str, new: CaState) -> str:
    """Return the trigger's meaning for a legal move, raise otherwise."""
    if new not in TRANSITIONS.get((old, trigger), ()):
        raise IllegalLossTransition(f"loss state {old} -> {new} on {trigger!r} is not allowed")
    return TRIGGERS[trigger]


class LossState:
    """The current loss state and the sequence position that ends it.

    ``high_seq`` is the send position (0 = SYN) that SND.UNA must pass to leave
    CWR, Recovery or Loss: RFC 6582's ``recover``, RFC 3168's end of the reduced
    window.  ``rto_una`` is SND.UNA at the last timeout: a timeout in Loss after
    SND.UNA moved past it is a new loss event, one without progress is not."""

    __slots__ = ("high_seq", "rto_una", "state")

    def __init__(self) -> None:
        self.state = CaState.OPEN
        self.high_seq = 0
        self.rto_una = 0

    def move(self, trigger: str, new: CaState) -> str:
        """Change state after :func:`check`; return what the trigger means."""
        why = check(self.state, trigger, new)
        self.state = new
        return why
