"""The eleven TCP states and the legal transitions between them (RFC 9293 §3.3.2).

Transitions are declared once, in :data:`TRANSITIONS`, each with the concept ID
(see ``shared/concepts.md``) it illustrates.  The connection asks
:func:`check_transition` before every change, so an illegal move is a bug that
raises rather than a silent corruption of state, and the tracer can say *why*
a state changed.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """RFC 9293 §3.3.2 connection states; values are the RFC's spellings."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value


S = State

#: (from, to) -> (concept ID or "", why).  Anything -> CLOSED by reset, abort or
#: timeout is always legal and is listed separately in :data:`TO_CLOSED`.
TRANSITIONS: dict[tuple[State, State], tuple[str, str]] = {
    (S.CLOSED, S.SYN_SENT): ("C6", "active open: SYN sent with a fresh ISN"),
    (S.LISTEN, S.SYN_RECEIVED): ("C7", "SYN received on a listener: SYN-ACK sent"),
    (S.CLOSED, S.SYN_RECEIVED): ("C7", "SYN received on a listener: SYN-ACK sent"),
    (S.SYN_SENT, S.ESTABLISHED): ("C8", "SYN-ACK received and acknowledged"),
    (S.SYN_SENT, S.SYN_RECEIVED): ("C7", "simultaneous open: SYN crossed our SYN"),
    (S.SYN_RECEIVED, S.ESTABLISHED): ("C9", "ACK of our SYN received"),
    (S.SYN_RECEIVED, S.FIN_WAIT_1): ("C10", "close before the handshake finished: FIN queued"),
    (S.SYN_RECEIVED, S.CLOSE_WAIT): ("C11", "FIN arrived with the handshake's final ACK"),
    (S.ESTABLISHED, S.FIN_WAIT_1): ("C10", "application closed: FIN sent"),
    (S.ESTABLISHED, S.CLOSE_WAIT): ("C11", "peer's FIN received and acknowledged"),
    (S.FIN_WAIT_1, S.FIN_WAIT_2): ("C11", "our FIN acknowledged; peer may still send"),
    (S.FIN_WAIT_1, S.CLOSING): ("", "simultaneous close: peer's FIN before the ACK of ours"),
    (S.FIN_WAIT_1, S.TIME_WAIT): ("C13", "peer's FIN and the ACK of ours together"),
    (S.FIN_WAIT_2, S.TIME_WAIT): ("C13", "peer's FIN received: wait 2*MSL"),
    (S.CLOSING, S.TIME_WAIT): ("C13", "ACK of our FIN received: wait 2*MSL"),
    (S.CLOSE_WAIT, S.LAST_ACK): ("C12", "application closed: our FIN sent"),
    (S.LAST_ACK, S.CLOSED): ("C13", "ACK of our FIN received"),
    (S.TIME_WAIT, S.CLOSED): ("C13", "2*MSL elapsed"),
}

#: Reasons a connection may drop straight to CLOSED from any state.
TO_CLOSED: dict[str, tuple[str, str]] = {
    "reset": ("C19", "RST received: all state destroyed"),
    "abort": ("C19", "RST sent: all state destroyed"),
    "timeout": ("C3", "retransmissions exhausted: the peer is unreachable"),
    "refused": ("C21", "RST in answer to our SYN: nobody listens"),
    "unreachable": ("C22", "ICMP destination unreachable for our SYN"),
    "close": ("", "closed before any segment was exchanged"),
    "synack_timeout": ("C27", "final ACK never came: half-open state freed"),
    "fin_wait_2_timeout": ("", "orphaned FIN-WAIT-2 timed out"),
}

SYNCHRONIZED = frozenset(
    {S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT}
)
#: States in which we may still receive data from the peer.  (This and CAN_SEND are
#: tested per segment: tuples, whose member test compares identities in C, where a
#: set would call Enum's Python-level __hash__.)
CAN_RECEIVE = (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2)
#: States in which the application may still queue data to send.
CAN_SEND = (S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT)


class IllegalTransition(RuntimeError):
    """A bug: the machine tried a move RFC 9293 does not allow."""


def check_transition(old: State, new: State, reason: str | None = None) -> tuple[str, str]:
    """Return ``(concept, why)`` for a legal transition, raise otherwise."""
    if new is S.CLOSED and reason is not None:
        try:
            return TO_CLOSED[reason]
        except KeyError:
            raise IllegalTransition(f"unknown close reason {reason!r}") from None
    try:
        return TRANSITIONS[(old, new)]
    except KeyError:
        raise IllegalTransition(f"{old} -> {new} is not an RFC 9293 transition") from None
