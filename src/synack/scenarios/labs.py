"""Guided scenarios: each concept of ``docs/concepts.md`` reproduced on demand.

Each lab makes one thing happen (lose the SYN-ACK, close from both ends at once, let
a stale segment reach a reconnected pair...) on :class:`~.lab.LabScript`; ``LABS``
holds them by name.  The machinery (:class:`~.lab.Lab`, :class:`~.lab.LabRun`,
:func:`~.lab.write_outputs`) is in :mod:`synack.scenarios.lab`; the scripts are in
:mod:`.labs_connection` and :mod:`.labs_data`.
"""

from __future__ import annotations

from collections.abc import Callable

from .lab import (
    Lab,
    LabRun,
    LabUnavailable,
    explained_lines,
    json_lines,
    write_outputs,
)
from .labs_connection import (
    half_close,
    handshake,
    lost,
    old_duplicate_syn,
    simultaneous_close,
    simultaneous_open,
    stray_segment,
    teardown,
    time_wait,
    wraparound,
)
from .labs_data import (
    bbr_vs_cubic_random_loss,
    data_to_closed,
    fast_retransmit,
    firewall,
    full_duplex,
    rst_closed_port,
    rst_unread,
    slow_start,
    timeout,
    zero_window,
)

__all__ = [
    "LABS",
    "Lab",
    "LabRun",
    "LabUnavailable",
    "explained_lines",
    "get",
    "json_lines",
    "write_outputs",
]


def _all_labs() -> list[Lab]:
    def lab(
        name: str,
        title: str,
        concepts: tuple[str, ...],
        rfc: str,
        summary: str,
        script: Callable[[Lab], LabRun],
        requires: str = "",
    ) -> Lab:
        return Lab(name, title, concepts, rfc, summary, script, requires)

    return [
        lab(
            "handshake",
            "three-way handshake",
            ("C6", "C7", "C8", "C9"),
            "RFC 9293 §3.5",
            "SYN, SYN-ACK, ACK; both ISNs exchanged",
            handshake,
        ),
        lab(
            "teardown-client",
            "teardown started by the client",
            ("C10", "C11", "C12", "C13"),
            "RFC 9293 §3.6",
            "the client closes first and waits in TIME-WAIT",
            lambda la: teardown(la, True),
        ),
        lab(
            "teardown-server",
            "teardown started by the server",
            ("C10", "C11", "C12", "C13"),
            "RFC 9293 §3.6",
            "the server closes first and waits in TIME-WAIT",
            lambda la: teardown(la, False),
        ),
        lab(
            "simultaneous-open",
            "simultaneous open",
            ("C6", "C7", "C9"),
            "RFC 9293 §3.5 figure 7",
            "two SYNs cross; four segments open the connection",
            simultaneous_open,
        ),
        lab(
            "simultaneous-close",
            "simultaneous close",
            ("C10", "C13"),
            "RFC 9293 §3.6 figure 13",
            "two FINs cross: CLOSING on both sides",
            simultaneous_close,
        ),
        lab(
            "half-close",
            "half-close",
            ("C11", "C5"),
            "RFC 9293 §3.6.1",
            "the client sends and closes; the server answers afterwards",
            half_close,
        ),
        lab(
            "lost-syn",
            "lost SYN",
            ("C6", "C17"),
            "RFC 9293 §3.8.1, RFC 6298 §5",
            "the first SYN is lost and resent at RTO",
            lambda la: lost(la, "syn"),
        ),
        lab(
            "lost-synack",
            "lost SYN-ACK",
            ("C7", "C17"),
            "RFC 9293 §3.8.1, RFC 6298 §5",
            "the first SYN-ACK is lost; both sides retransmit",
            lambda la: lost(la, "synack"),
        ),
        lab(
            "lost-final-ack",
            "lost final ACK of the handshake",
            ("C9", "C17"),
            "RFC 9293 §3.5",
            "the server stays in SYN-RECEIVED and resends its SYN-ACK",
            lambda la: lost(la, "final_ack"),
        ),
        lab(
            "lost-fin",
            "lost FIN",
            ("C10", "C17"),
            "RFC 9293 §3.6",
            "the FIN is lost and retransmitted like data",
            lambda la: lost(la, "fin"),
        ),
        lab(
            "time-wait",
            "TIME-WAIT and a retransmitted FIN",
            ("C13", "C17"),
            "RFC 9293 §3.6",
            "the last ACK is lost; TIME-WAIT answers the repeated FIN",
            time_wait,
        ),
        lab(
            "old-duplicate-syn",
            "old duplicate SYN: why three segments",
            ("C25", "C26", "C27"),
            "RFC 9293 §3.5 figure 8",
            "a stale SYN reaches the server; the client resets the SYN-ACK",
            lambda la: old_duplicate_syn(la, False),
        ),
        lab(
            "old-duplicate-syn-no-rst",
            "old duplicate SYN, every RST lost",
            ("C25", "C26", "C27"),
            "RFC 9293 §3.5, §3.8.3",
            "the server retransmits its SYN-ACK a bounded number of times, then frees it",
            lambda la: old_duplicate_syn(la, True),
        ),
        lab(
            "stray-segment-random-isn",
            "stray segment after reset and reconnect, random ISN",
            ("C15",),
            "RFC 6528, RFC 9293 §3.4.1",
            "a late duplicate of the old connection's data is rejected",
            lambda la: stray_segment(la, False),
        ),
        lab(
            "stray-segment-fixed-isn",
            "stray segment after reset and reconnect, fixed ISN",
            ("C15",),
            "RFC 9293 §3.4.1",
            "the same late duplicate is accepted as new data: why ISNs must not repeat",
            lambda la: stray_segment(la, True),
        ),
        lab(
            "wraparound",
            "sequence wraparound without PAWS",
            ("C16",),
            "RFC 9293 §3.4",
            "data crosses 2**32; a segment from one wrap ago is accepted",
            lambda la: wraparound(la, False),
        ),
        lab(
            "wraparound-paws",
            "sequence wraparound with PAWS",
            ("C16",),
            "RFC 7323 §5",
            "the same old segment is rejected by its timestamp",
            lambda la: wraparound(la, True),
            requires="timestamps",
        ),
        lab(
            "rst-closed-port",
            "RST for a closed port",
            ("C21", "C19"),
            "RFC 9293 §3.10.7.1",
            "connect() to a port nobody listens on",
            rst_closed_port,
        ),
        lab(
            "rst-unread-data",
            "RST for close with unread data",
            ("C23", "C19"),
            "RFC 9293 §3.10.4, RFC 2525 §2.17",
            "close() with unread data aborts",
            rst_unread,
        ),
        lab(
            "data-to-closed-socket",
            "data to a closed socket",
            ("C24", "C19"),
            "RFC 9293 §3.10.7.4",
            "data for a closed socket is answered with RST",
            data_to_closed,
        ),
        lab(
            "zero-window",
            "zero window and probes",
            ("C4",),
            "RFC 9293 §3.8.6.1",
            "a receiver that does not read closes the window; the sender probes",
            zero_window,
        ),
        lab(
            "slow-start",
            "slow start",
            ("C1", "C2", "C20"),
            "RFC 5681 §3.1",
            "cwnd doubles every RTT from the initial window",
            slow_start,
        ),
        lab(
            "fast-retransmit",
            "fast retransmit",
            ("C14", "C18", "C20"),
            "RFC 5681 §3.2, RFC 6582",
            "duplicate ACKs (or RACK) resend a lost segment early",
            fast_retransmit,
        ),
        lab(
            "timeout",
            "retransmissions exhausted",
            ("C3",),
            "RFC 9293 §3.8.3",
            "the path dies; the application gets ETIMEDOUT",
            timeout,
        ),
        lab(
            "full-duplex",
            "full duplex",
            ("C5", "C1"),
            "RFC 9293 §3.8",
            "both directions carry data at once",
            full_duplex,
        ),
        lab(
            "firewall",
            "a firewall answers with ICMP",
            ("C22",),
            "RFC 1122 §4.2.3.9",
            "the SYN is blocked; the client gets a clear error",
            firewall,
        ),
        lab(
            "bbr-vs-cubic-random-loss",
            "BBR against CUBIC under random loss",
            ("C20",),
            "draft-ietf-ccwg-bbr, RFC 9438",
            "1 % random loss: CUBIC backs off on every loss, BBR keeps the link busy",
            bbr_vs_cubic_random_loss,
        ),
    ]


LABS: dict[str, Lab] = {lab.name: lab for lab in _all_labs()}


def get(name: str) -> Lab:
    """The lab called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return LABS[name]
    except KeyError:
        raise KeyError(f"no lab named {name!r}; known: {', '.join(LABS)}") from None
