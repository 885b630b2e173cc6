"""The words of the narration: what each state, drop, timer and loss state means,
with the concept ID (``docs/concepts.md``) and the RFC section it comes from."""

from __future__ import annotations

import re

CONCEPT_ID = re.compile(r"\bC(\d{1,2})\b")


#: (old, new) -> (what it means, RFC sections).
STATE_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("CLOSED", "SYN-SENT"): (
        "connect(): the SYN goes out with a fresh random ISN",
        "RFC 9293 §3.5, §3.10.1",
    ),
    ("LISTEN", "SYN-RECEIVED"): (
        "a SYN reached a listening port: answer SYN-ACK and wait for "
        "the final ACK; not connected yet",
        "RFC 9293 §3.10.7.2",
    ),
    ("CLOSED", "SYN-RECEIVED"): (
        "a SYN reached a listening port: answer SYN-ACK and wait",
        "RFC 9293 §3.10.7.2",
    ),
    ("SYN-SENT", "ESTABLISHED"): (
        "the SYN-ACK taught us the peer's ISN; we ACK it and may send data now",
        "RFC 9293 §3.10.7.3",
    ),
    ("SYN-SENT", "SYN-RECEIVED"): (
        "simultaneous open: the peer's SYN crossed ours; answer SYN-ACK",
        "RFC 9293 §3.5 (figure 7)",
    ),
    ("SYN-RECEIVED", "ESTABLISHED"): (
        "the final ACK arrived: both ends know both ISNs and that the other can send and receive",
        "RFC 9293 §3.10.7.4",
    ),
    ("SYN-RECEIVED", "FIN-WAIT-1"): (
        "closed before the handshake finished: FIN queued",
        "RFC 9293 §3.10.4",
    ),
    ("SYN-RECEIVED", "CLOSE-WAIT"): ("the peer's FIN came with the final ACK", "RFC 9293 §3.6"),
    ("ESTABLISHED", "FIN-WAIT-1"): (
        "the application closed its sending direction: FIN sent",
        "RFC 9293 §3.6, §3.10.4",
    ),
    ("ESTABLISHED", "CLOSE-WAIT"): (
        "the peer's FIN: it will send no more, but we still may (half-close)",
        "RFC 9293 §3.6, §3.10.7.4",
    ),
    ("FIN-WAIT-1", "FIN-WAIT-2"): (
        "our FIN is acknowledged: our direction is closed, the peer may still send (half-close)",
        "RFC 9293 §3.6",
    ),
    ("FIN-WAIT-1", "CLOSING"): (
        "simultaneous close: the peer's FIN arrived before the ACK of ours",
        "RFC 9293 §3.6 (figure 13)",
    ),
    ("FIN-WAIT-1", "TIME-WAIT"): (
        "the peer's FIN and the ACK of ours together: wait 2*MSL",
        "RFC 9293 §3.6",
    ),
    ("FIN-WAIT-2", "TIME-WAIT"): (
        "the peer's FIN: ACK it and wait 2*MSL, because that ACK may "
        "be lost and old duplicates must die out",
        "RFC 9293 §3.6",
    ),
    ("CLOSING", "TIME-WAIT"): ("the ACK of our FIN: wait 2*MSL", "RFC 9293 §3.6"),
    ("CLOSE-WAIT", "LAST-ACK"): (
        "the application closed too: our FIN sent, waiting for its ACK",
        "RFC 9293 §3.6",
    ),
    ("LAST-ACK", "CLOSED"): ("the ACK of our FIN: the connection is gone", "RFC 9293 §3.6"),
    ("TIME-WAIT", "CLOSED"): (
        "2*MSL elapsed without a retransmitted FIN: state freed",
        "RFC 9293 §3.6",
    ),
}


#: The RFC sections behind each close reason (the ``why`` of a ``state`` record).
CLOSE_RFC = {
    "RST received": "RFC 9293 §3.5.3",
    "RST sent": "RFC 9293 §3.10.5",
    "retransmissions exhausted": "RFC 9293 §3.8.3",
    "RST in answer to our SYN": "RFC 9293 §3.10.7.3",
    "ICMP": "RFC 1122 §4.2.3.9, RFC 5927",
    "final ACK never came": "RFC 9293 §3.8.3, §3.5",
    "closed before": "RFC 9293 §3.10.4",
}


DROP_TEXT: dict[str, tuple[str, str, str]] = {
    "duplicate": (
        "a duplicate of bytes already received: discarded, and ACKed again so the "
        "sender learns what arrived",
        "C14",
        "RFC 9293 §3.10.7.4",
    ),
    "out_of_window": (
        "outside the receive window: discarded (an old or stray segment cannot "
        "enter this connection), answered by an ACK",
        "C14",
        "RFC 9293 §3.10.7.4",
    ),
    "rst_out_of_window": (
        "an RST outside the window: ignored (blind reset attempts fail)",
        "C15",
        "RFC 5961 §3.2",
    ),
    "rst_in_window_challenge": (
        "an RST in the window but not exactly at RCV.NXT: answered "
        "with a challenge ACK instead of obeyed",
        "C15",
        "RFC 5961 §3.2",
    ),
    "syn_in_window_challenge": (
        "a SYN on a synchronised connection: challenge ACK",
        "",
        "RFC 5961 §4.2",
    ),
    "ack_unsent": ("it acknowledges data never sent: dropped and ACKed", "", "RFC 9293 §3.10.7.4"),
    "ack_too_old": ("its ACK is too old: dropped", "", "RFC 5961 §5.2"),
    "no_ack": ("no ACK flag on a synchronised connection: dropped", "", "RFC 9293 §3.10.7.4"),
    "retransmitted_syn": (
        "the peer sent its SYN again, so our SYN-ACK was lost: resend it",
        "C17",
        "RFC 9293 §3.10.7.4",
    ),
    "bad_ack_syn_sent": (
        "a SYN-ACK that acknowledges nothing we sent (a stray): reset it",
        "C27",
        "RFC 9293 §3.10.7.3",
    ),
    "bad_ack_syn_received": ("an ACK that fits no SYN we sent: reset it", "", "RFC 9293 §3.10.7.4"),
    "rst_no_connection": (
        "an RST for no connection: never answered (an RST is never acknowledged)",
        "C19",
        "RFC 9293 §3.10.7.1",
    ),
    "rst_to_listener": ("an RST to a listening port: ignored", "C19", "RFC 9293 §3.10.7.2"),
    "tcp_bad_checksum": (
        "the checksum does not match (corrupted on the way): discarded, the sender will retransmit",
        "C1",
        "RFC 9293 §3.1",
    ),
    "ip_bad_checksum": ("the IP header checksum does not match: discarded", "C1", "RFC 791 §3.1"),
    "accept_queue_full": (
        "the accept queue is full: the final ACK is ignored, the SYN-ACK will be resent",
        "C27",
        "RFC 9293 §3.10.7.2",
    ),
    "syn_backlog_full": ("too many half-open connections: SYN dropped", "C27", "RFC 4987 §3.2"),
    "data_after_fin": ("data after the peer's FIN: ignored", "C11", "RFC 9293 §3.10.7.4"),
    "paws": (
        "its timestamp is older than the last one seen (PAWS): an old duplicate from a "
        "previous wrap of the sequence space, discarded",
        "C16",
        "RFC 7323 §5",
    ),
    "syn_challenge": (
        "a SYN on a connection that is already open: not obeyed, answered with "
        "a challenge ACK that a genuine peer can act on and a blind attacker "
        "cannot",
        "C15",
        "RFC 5961 §4.2",
    ),
    "rst_without_ack_syn_sent": (
        "an RST without the ACK flag while opening cannot be tied to our SYN: ignored",
        "C19",
        "RFC 9293 §3.10.7.3",
    ),
    "no_syn_syn_sent": (
        "while opening, only a SYN-ACK (or SYN) is expected: ignored",
        "",
        "RFC 9293 §3.10.7.3",
    ),
    "ooo_block_limit": (
        "too many separate holes are held already: this out-of-order segment "
        "is discarded (a bound against memory abuse); the sender resends it",
        "C14",
        "RFC 9293 §3.10.7.4",
    ),
    "icmp_out_of_window": (
        "an ICMP error quoting a sequence number not in flight: ignored (blind ICMP attacks fail)",
        "C15",
        "RFC 5927 §4.1",
    ),
}


#: Loss-state moves (``ca_state`` records), by trigger: (what happened, concepts, RFC).
CA_TEXT: dict[str, tuple[str, list[str], str]] = {
    "disorder": (
        "something may be missing (a duplicate ACK or SACK arrived); no loss "
        "decided yet, the sender waits for more evidence",
        ["C14"],
        "RFC 5681 §3.2, RFC 8985 §6",
    ),
    "in_order": (
        "the cumulative ACK caught up: it was reordering, not a loss",
        ["C14"],
        "RFC 8985 §6",
    ),
    "loss_marked": (
        "a loss was marked: fast retransmit, and the window is reduced once",
        ["C14", "C18"],
        "RFC 5681 §3.2, RFC 6675 §5, RFC 6937",
    ),
    "rto": (
        "the retransmission timer expired (RTO): cwnd = 1 segment, everything "
        "outstanding is resent in slow start",
        ["C2", "C18"],
        "RFC 6298 §5.5, RFC 5681 §3.1",
    ),
    "ece": (
        "the peer echoed a congestion mark (ECN-Echo): the window is reduced once, "
        "nothing to resend",
        [],
        "RFC 3168 §6.1.2",
    ),
    "tlp_repair": (
        "the tail loss probe showed a loss that it repaired: the window is reduced once",
        ["C18"],
        "RFC 8985 §7.4",
    ),
    "exit": (
        "every segment outstanding when the episode began is acknowledged: the episode is over",
        ["C18"],
        "RFC 6582 §3.2, RFC 6675 §5",
    ),
}


#: The same, in a few words for the header line.
CA_SHORT: dict[str, str] = {
    "disorder": "something may be missing",
    "in_order": "reordering, not a loss",
    "loss_marked": "a loss was marked, fast retransmit",
    "rto": "retransmission timeout",
    "ece": "ECN-Echo, window reduced",
    "tlp_repair": "the tail loss probe repaired a loss",
    "exit": "the episode is over",
}


TIMER_TEXT: dict[str, tuple[str, str]] = {
    "rto": (
        "retransmission timer expired: nothing acknowledged within RTO; resend and double "
        "RTO (exponential backoff)",
        "RFC 6298 §5.4-5.6",
    ),
    "persist": (
        "persist timer: the peer's window is zero (probe it with one byte) or too "
        "small to be worth a segment (send what fits, the SWS override)",
        "RFC 9293 §3.8.6.1, §3.8.6.2.1",
    ),
    "delayed_ack": (
        "delayed-ACK timer: nothing else to carry the ACK, send it alone",
        "RFC 9293 §3.8.6.3",
    ),
    "time_wait": ("2*MSL elapsed in TIME-WAIT", "RFC 9293 §3.6"),
    "fin_wait_2": (
        "orphaned FIN-WAIT-2 gave up waiting for the peer's FIN",
        "RFC 9293 §3.6 (as Linux tcp_fin_timeout)",
    ),
    "keepalive": (
        "keep-alive timer: the connection was idle, probe the peer",
        "RFC 9293 §3.8.4, RFC 1122 §4.2.3.6",
    ),
    "rack_reorder": (
        "RACK reordering window expired: segments sent before the last one "
        "acknowledged are now deemed lost",
        "RFC 8985 §6.2",
    ),
    "tlp": ("tail loss probe", "RFC 8985 §7"),
}


#: Timer names in the trace -> what people call them.
TIMER_NAMES: dict[str, str] = {
    "rto": "retransmission timer (RTO)",
    "persist": "persist timer",
    "delayed_ack": "delayed-ACK timer",
    "time_wait": "TIME-WAIT timer",
    "fin_wait_2": "FIN-WAIT-2 timer",
    "keepalive": "keep-alive timer",
    "rack_reorder": "RACK reordering timer",
    "tlp": "tail-loss-probe timer",
}


def timer_name(name: str) -> str:
    """``rack_reorder`` -> ``RACK reordering timer``."""
    return TIMER_NAMES.get(name, f"{name.replace('_', ' ')} timer")


#: Short names of the reasons a segment is discarded (``drop`` records), for headers.
DROP_NAMES: dict[str, str] = {
    "duplicate": "bytes already received",
    "out_of_window": "outside the receive window",
    "rst_out_of_window": "an RST outside the window",
    "rst_in_window_challenge": "an RST not exactly at the expected number",
    "syn_in_window_challenge": "a SYN on an open connection",
    "syn_challenge": "a SYN on an open connection",
    "ack_unsent": "it acknowledges data never sent",
    "ack_too_old": "an ACK too old",
    "no_ack": "no ACK flag",
    "retransmitted_syn": "the peer's SYN again",
    "bad_ack_syn_sent": "a SYN-ACK for a SYN we never sent",
    "bad_ack_syn_received": "an ACK that fits no SYN we sent",
    "rst_no_connection": "an RST for no connection",
    "rst_to_listener": "an RST to a listening port",
    "rst_without_ack_syn_sent": "an RST without ACK while opening",
    "no_syn_syn_sent": "no SYN while opening",
    "ooo_block_limit": "too many holes in the data held",
    "icmp_out_of_window": "an ICMP error about data not in flight",
    "tcp_bad_checksum": "bad TCP checksum",
    "ip_bad_checksum": "bad IP header checksum",
    "accept_queue_full": "the accept queue is full",
    "syn_backlog_full": "too many half-open connections",
    "data_after_fin": "data after the peer's FIN",
    "paws": "an old timestamp (PAWS)",
}


def drop_name(reason: str) -> str:
    """A drop reason for a header, in words."""
    return DROP_NAMES.get(reason, reason.replace("_", " "))


def syn_options_text(mss: int | None, sack_ok: bool, ts: bool, wscale: int | None) -> str:
    """What a SYN's options offer, in words: "MSS 1460, SACK, timestamps and window
    scale 7"."""
    bits = []
    if mss:
        bits.append(f"MSS {mss} (RFC 9293 §3.7.1)")
    if sack_ok:
        bits.append("SACK (RFC 2018)")
    if ts:
        bits.append("timestamps (RFC 7323 §3)")
    if wscale is not None:
        bits.append(f"window scale {wscale} (RFC 7323 §2)")
    if not bits:
        return "no options"
    return bits[0] if len(bits) == 1 else ", ".join(bits[:-1]) + " and " + bits[-1]


#: How the simulated network says it dropped a packet (``net_drop`` reasons).
NET_DROP_WORDS = {
    "loss": "lost in the network",
    "queue": "dropped: the bottleneck queue was full",
    "filter": "dropped by the lab on purpose",
    "no_route": "dropped: no route to the address",
}


def net_drop_words(reason: str | None) -> str:
    """``loss`` -> ``lost in the network``."""
    return NET_DROP_WORDS.get(str(reason), f"dropped ({str(reason).replace('_', ' ')})")


_BLOCKS = re.compile(r"\((\d+) blocks\)")


def note_words(text: str) -> str:
    """A core ``note`` record's text for people ("(1 blocks)" -> "(1 block held)")."""
    return _BLOCKS.sub(
        lambda m: f"({m.group(1)} block{'s' if m.group(1) != '1' else ''} held)", text
    )


def count_words(n: int) -> str:
    """3 -> "three": small counts in words, as the narration says them."""
    return ("no", "one", "two", "three", "four", "five")[n] if 0 <= n <= 5 else str(n)
