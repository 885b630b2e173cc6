"""The concept catalogue: what each ID in the output (``[C7]``) stands for.

Every timeline line, lab and report cites these IDs; ``docs/concepts.md`` is
generated from this table, the labs that show each concept and the tests that
name it (``scripts/concepts_md.py``), and a test keeps it current."""

from __future__ import annotations

#: ID -> the idea, in one or two sentences.
CONCEPTS: dict[str, str] = {
    "C1": (
        "TCP is a reliable byte stream: every byte has a sequence number and the receiver "
        "acknowledges the next byte it expects."
    ),
    "C2": (
        "The sender measures round-trip times and derives its retransmission timeout "
        "(RTO) from them (RFC 6298)."
    ),
    "C3": (
        "TCP is not infallible: when the peer or the path is gone, the application gets a "
        "clear error, never silent loss."
    ),
    "C4": (
        "Flow control: the receiver advertises a window, and the sender never sends past "
        "it; a closed window is probed."
    ),
    "C5": (
        "Full duplex: both directions carry data at once, each data segment acknowledging "
        "the other direction."
    ),
    "C6": (
        "The client opens with a SYN carrying a random initial sequence number (ISN): "
        "CLOSED → SYN-SENT."
    ),
    "C7": (
        "The listening server answers SYN-ACK: its own ISN, and ack = the client's ISN + "
        "1: LISTEN → SYN-RECEIVED."
    ),
    "C8": (
        "The client takes the SYN-ACK as the connection being open and acknowledges it: "
        "SYN-SENT → ESTABLISHED."
    ),
    "C9": ("The server gets that ACK: SYN-RECEIVED → ESTABLISHED."),
    "C10": ("The side that closes first sends a FIN: ESTABLISHED → FIN-WAIT-1."),
    "C11": (
        "The other side acknowledges the FIN (→ CLOSE-WAIT; the closer → FIN-WAIT-2) and "
        "may still send: a half-close."
    ),
    "C12": ("The other side closes too, with its own FIN: CLOSE-WAIT → LAST-ACK."),
    "C13": (
        "The first closer acknowledges that FIN and waits 2*MSL in TIME-WAIT, so a lost "
        "last ACK can be sent again and old segments die out."
    ),
    "C14": (
        "Sequence numbers let the receiver detect loss, discard duplicates and put "
        "out-of-order data back in order; the ACK says how far it got."
    ),
    "C15": (
        "ISNs are random so that nobody can guess them to forge segments, and so that an "
        "old connection's stray segments fall outside a new one's window."
    ),
    "C16": (
        "The 32-bit sequence space wraps around; timestamps (PAWS) tell an old segment "
        "from a new one with the same number."
    ),
    "C17": (
        "SYN and FIN each take one sequence number so that they can be acknowledged and "
        "retransmitted like data."
    ),
    "C18": (
        "Data must be acknowledged and is retransmitted until it is: after a timeout, or "
        "earlier when the loss is detected (fast retransmit)."
    ),
    "C19": (
        "An RST is never acknowledged and never retransmitted: its sender has dropped the "
        "connection."
    ),
    "C20": (
        "A pure ACK is never acknowledged nor retransmitted (acking ACKs would never "
        "end); a later ACK covers a lost one."
    ),
    "C21": ("A SYN to a port nobody listens on is answered with an RST."),
    "C22": ("A firewall may refuse a connection with an RST, with an ICMP error, or with silence."),
    "C23": (
        "Closing a socket with unread data aborts the connection with an RST instead of a FIN."
    ),
    "C24": ("Data that reaches a socket the application has closed is answered with an RST."),
    "C25": (
        "One segment cannot open a connection: the client would never learn the server's "
        "ISN (that is UDP)."
    ),
    "C26": (
        "Two segments are not enough either: an old duplicate SYN would leave the server "
        "believing in a connection nobody wants."
    ),
    "C27": (
        "With three, the client resets (or ignores) the SYN-ACK of a stray SYN and the "
        "server, missing the final ACK, gives up and frees its state."
    ),
}
