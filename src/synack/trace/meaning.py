"""What a segment means, in words: the part of the narration (:class:`~.narrate.Explainer`)
that says what each segment is and why it was sent, with the state it keeps while it
walks a run."""

from __future__ import annotations

from ..tcp.seq import MASK
from ..wire.segment import ACK, FIN, PSH, RST, SYN
from .model import Run, Seg
from .schema import (
    TimerRecord,
)
from .step import concepts_in
from .words import (
    syn_options_text,
)


class ExplainerState:
    """What the narration remembers while it walks a run's records."""

    def __init__(self, run: Run, *, absolute: bool = False, verbose: bool = False) -> None:
        self.run = run
        self.absolute = absolute
        self.verbose = verbose
        #: per connection, the last timer that fired: (record index, record)
        self._timer: dict[str, tuple[int, TimerRecord]] = {}
        self._seen_fin: set[str] = set()
        self._last_ack: dict[str, tuple[int, int]] = {}
        self._trigger: dict[str, tuple[float, str]] = {}
        self._duplex: set[str] = set()
        self._wrapped: set[str] = set()
        self._cwnd: dict[str, int] = {}
        self._loss_cause: dict[str, str] = {}
        self._syn_again: set[str] = set()
        self._timer_used: set[int] = set()
        self._has_ca_state = any(r["ev"] == "ca_state" for r in run.records)


class SegmentMeaning(ExplainerState):
    """The meaning of each segment, for :class:`~.narrate.Explainer`."""

    def _fin_text(self, i: int, name: str, key: tuple[str, str]) -> str:
        """Why the application's close moved the state, and when the FIN really leaves:
        after the data still queued, as the next records of this connection show."""
        before = 0
        fin_seen = False
        for r in self.run.records[i + 1 :]:
            if r["ev"] != "seg" or r.get("conn") != name or r.get("dir") != "out":
                continue
            if r["flags"] & FIN:
                fin_seen = True
                before += 0 if str(r.get("why") or "").startswith("retransmit") else r["len"]
                break
            if r["len"] and not str(r.get("why") or "").startswith("retransmit"):
                before += r["len"]
        head = (
            "the application closed too"
            if key[0] == "CLOSE-WAIT"
            else "closed before the handshake finished"
            if key[0] == "SYN-RECEIVED"
            else "the application closed its sending direction"
        )
        if not fin_seen:
            return f"{head}: a FIN is queued behind any data still to send"
        if before:
            return (
                f"{head}: the FIN is queued and leaves after the {before} bytes still "
                "waiting to be sent (it rides on the last of them or follows it)"
            )
        return f"{head}: FIN sent" + (", waiting for its ACK" if key[0] == "CLOSE-WAIT" else "")

    def _earlier_copy(self, s: Seg) -> Seg | None:
        """The last earlier transmission of what ``s`` resends (same data, or the FIN)."""
        found = None
        for o in self.run.segments[: s.index]:
            if o.conn != s.conn or o.duplicate_of is not None or o.t is None:
                continue
            same_fin = bool(s.flags & FIN and o.flags & FIN) and o.seq + o.len == s.seq + s.len
            same_data = bool(s.len and o.len) and o.seq == s.seq
            same_syn = bool(s.flags & SYN and o.flags & SYN) and o.seq == s.seq
            if same_fin or same_data or same_syn:
                found = o
        return found

    def segment_meaning(self, s: Seg, t: float) -> tuple[str, list[str], str]:
        """What the segment is and why it was sent: (text, concept IDs, RFC sections)."""
        f, why, conn = s.flags, s.why, s.conn
        timer_i, timer = self._timer.get(conn, (-1, None))
        fired = timer is not None and timer.get("t") == t and timer_i not in self._timer_used
        if fired and timer is not None and why.startswith("retransmit"):
            self._timer_used.add(timer_i)  # one timer, one retransmission
        retr = why.startswith("retransmit")
        if f & RST:
            c = concepts_in(why)
            base = "RST: " + (why or "reset")
            rfc = "RFC 9293 §3.5.2"
            if "C21" in c:
                base = (
                    "RST: a SYN for a port nobody listens on is refused with a reset; "
                    "ack = their ISN + 1 so the client accepts it"
                )
                rfc = "RFC 9293 §3.5.2, §3.10.7.1"
            elif "C23" in c:
                base = (
                    "RST instead of FIN: the application closed with unread data, so "
                    "this is an abortive close and the peer learns data was lost"
                )
                rfc = "RFC 9293 §3.10.4, RFC 2525 §2.17"
            elif "C24" in c:
                base = (
                    "RST: data arrived for a socket the application already closed; "
                    "nobody will read it"
                )
                rfc = "RFC 9293 §3.10.7.1, RFC 1122 §4.2.2.13"
            elif "unacceptable ACK in SYN-SENT" in why or "does not exist" in why:
                base = (
                    "RST: this SYN-ACK (or ACK) belongs to no connection we know; reset it "
                    "so the other side frees its state"
                )
                c.append("C27")
                rfc = "RFC 9293 §3.10.7.1, §3.10.7.3"
            elif "abort" in why:
                base = "RST: the application aborted the connection; all state is dropped"
                rfc = "RFC 9293 §3.10.5"
            return (
                base + ". An RST is never acknowledged and never retransmitted",
                [*c, "C19"],
                rfc,
            )
        if f & SYN:
            if retr:
                n = ""
                if conn in self._syn_again and f & ACK:
                    self._syn_again.discard(conn)
                    reason = (
                        "the peer repeated its SYN, so it never got a SYN-ACK: answer "
                        "that SYN again"
                    )
                    if fired and timer is not None:
                        self._timer_used.discard(timer_i)
                elif fired and timer is not None:
                    n = f" (attempt {timer.get('retries')})"
                    reason = "its retransmission timer fired"
                else:
                    reason = "it was not acknowledged"
                what = "SYN-ACK" if f & ACK else "SYN"
                return (
                    f"{what} again, same ISN: {reason}{n}. A SYN occupies one sequence "
                    "number precisely so it can be acknowledged and retransmitted",
                    ["C17", "C7" if f & ACK else "C6"],
                    "RFC 9293 §3.8.1, RFC 6298 §5",
                )
            offers = syn_options_text(s.mss, s.sack_ok, s.tsval is not None, s.wscale)
            if f & ACK:
                iss = s.seq if s.rel_seq is None else s.rel_seq
                return (
                    f"SYN-ACK: our own ISN ({iss if self.absolute else 0}), and ack = "
                    f"their ISN + 1: we got their SYN; our options: {offers} (an option "
                    "is used only if both SYNs carry it). Without this segment the client "
                    "would never learn our ISN (one segment is UDP, C25)",
                    ["C7", "C25"],
                    "RFC 9293 §3.5",
                )
            return (
                f"SYN: asks to open; carries our random ISN and offers {offers}. The SYN "
                "occupies one sequence number",
                ["C6", "C17"],
                "RFC 9293 §3.5, §3.4.1, RFC 6528",
            )
        parts: list[str] = []
        concepts: list[str] = []
        rfc = ""
        if retr:
            detail = why.partition(": ")[2]
            cause = self._loss_cause.get(conn)
            if "fast retransmit" in detail:
                parts.append(
                    f"fast retransmit: {cause or 'duplicate ACKs'} said this segment "
                    "is missing while later ones arrived; resend it without waiting "
                    "for the timer"
                )
                rfc = "RFC 5681 §3.2"
                concepts += ["C14", "C18"]
            elif detail.startswith("tail loss probe"):
                parts.append(
                    "tail loss probe: the last segment is resent early so that its "
                    "ACK (or SACK) reveals a lost tail without waiting for the RTO"
                )
                rfc = "RFC 8985 §7"
                concepts += ["C18"]
            elif detail.startswith("lost"):
                parts.append(
                    "retransmission of a segment the sender marked lost ("
                    + (cause or "SACK or RACK said later data arrived")
                    + ")"
                )
                rfc = "RFC 6675 §5, RFC 8985 §6"
                concepts += ["C14", "C18"]
            elif "partial ACK" in detail:
                parts.append("retransmission in fast recovery: a partial ACK showed the next hole")
                rfc = "RFC 6582 §3.2"
                concepts += ["C14", "C18"]
            elif fired and timer is not None:
                parts.append(
                    f"retransmission: the RTO fired (backoff {timer.get('retries')}, "
                    f"next RTO {timer.get('rto', 0):g}s); resend from the first "
                    "unacknowledged byte"
                )
                rfc = "RFC 6298 §5.4-5.6"
                concepts.append("C18")
            else:
                parts.append(
                    "retransmission after a timeout: everything outstanding is "
                    "presumed lost (go-back)"
                )
                rfc = "RFC 6298 §5.4, RFC 5681 §3.1"
                concepts.append("C18")
        if f & FIN:
            if retr:
                marked = why.partition(": ")[2].startswith("lost")
                because = (
                    f"the sender marked it lost ({self._loss_cause.get(conn)})"
                    if marked and self._loss_cause.get(conn)
                    else "the sender marked it lost"
                    if marked
                    else "it was not acknowledged in time"
                )
                parts = [
                    f"FIN again: {because}; a FIN occupies a "
                    "sequence number so it can be acked and retransmitted"
                ]
                concepts = ["C17"]
                rfc = "RFC 9293 §3.8.1"
            elif conn in self._seen_fin:
                parts.append("FIN again")
                concepts.append("C17")
            else:
                state = s.snapshot.get(s.src, {}).get("state")
                if state == "LAST-ACK":
                    parts.append("FIN: the passive side closes its direction too")
                    concepts += ["C12", "C17"]
                else:
                    parts.append(
                        "FIN: no more data from this side (our direction closes; we "
                        "can still receive)"
                    )
                    concepts += ["C10", "C17"]
                rfc = rfc or "RFC 9293 §3.6"
            self._seen_fin.add(conn)
        if s.len and not retr and not f & FIN:
            if why.startswith("zero-window probe"):
                parts.append(
                    "zero-window probe: one byte past the closed window, so the "
                    "peer's answer tells us when it reopens"
                )
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.1"
            elif why.startswith("persist: send what fits"):
                parts.append(
                    f"the peer's window is smaller than a segment; after waiting "
                    f"(sender SWS avoidance) send the {s.len} bytes that fit"
                )
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.2.1"
            else:
                first = s.rel_seq or 0
                parts.append(
                    f"data: bytes {first}..{first + s.len - 1}; they must be "
                    "acknowledged and may be retransmitted"
                )
                concepts += ["C1", "C18"]
                rfc = "RFC 9293 §3.8"
        elif s.len and f & FIN and not retr:
            concepts.append("C18")
        elif why.startswith("zero-window probe"):
            parts.append("zero-window probe")
            concepts.append("C4")
            rfc = "RFC 9293 §3.8.6.1"
        pure = not s.len and not f & (SYN | FIN | RST) and f & ACK
        trig = self._trigger.pop(conn, None)
        if pure:
            prev = self._last_ack.get(conn)
            rack = s.rel_ack if s.rel_ack is not None else s.ack
            if why.startswith("challenge"):
                parts.append(
                    "challenge ACK: tells a genuine peer our real position; a blind "
                    "attacker learns nothing it can use"
                )
                rfc = "RFC 5961 §3.2, §4.2"
            elif s.win == 0:
                parts.append("ACK with a zero window: our receive buffer is full, stop sending")
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6"
            elif trig is not None and trig[0] == t and prev is not None and prev[0] == s.ack:
                parts.append(f"duplicate ACK ({trig[1]}): still asking for byte {rack}")
                concepts += concepts_in(trig[1]) or ["C14"]
                concepts.append("C20")
                rfc = "RFC 5681 §4.2, RFC 9293 §3.10.7.4"
            elif prev is not None and prev[1] == 0 and s.win > 0:
                parts.append(
                    f"window update: the application read data, the window reopens to {s.wnd}"
                )
                concepts.append("C4")
                rfc = "RFC 9293 §3.8.6.2.2"
            elif s.snapshot.get(s.src, {}).get("state") == "TIME-WAIT":
                parts.append("ACK of the peer's FIN, sent from TIME-WAIT")
                concepts.append("C13")
                rfc = "RFC 9293 §3.6"
            elif s.rel_seq == 1 and s.rel_ack == 1:
                parts.append(
                    "ACK of the SYN-ACK: third segment of the handshake; now both "
                    "ends know the other can send and receive"
                )
                concepts += ["C8", "C27"]
                rfc = "RFC 9293 §3.5"
            else:
                parts.append(
                    f"pure ACK: everything before byte {rack} arrived; an ACK is "
                    "never acknowledged itself"
                )
                concepts.append("C20")
                rfc = "RFC 9293 §3.8.6.3"
            if fired and timer is not None and timer.get("timer") == "delayed_ack":
                parts[-1] += " (sent by the delayed-ACK timer)"
        elif f & ACK and s.len and not retr:
            concepts.append("C20")
            if (s.rel_ack or 0) > 1 and conn not in self._duplex:
                self._duplex.add(conn)
                parts.append(
                    "this data segment also acknowledges the peer's data: both "
                    "directions carry data at once (full duplex)"
                )
                concepts.append("C5")
        if (
            s.rel_seq is not None
            and (s.seq < s.rel_seq or s.seq + s.len > MASK + 1)
            and conn not in self._wrapped
            and s.injected is None
        ):
            self._wrapped.add(conn)
            parts.append(
                f"the sequence numbers have wrapped: absolute seq {s.seq} is past "
                "2**32 - 1 and restarts from 0; comparisons are modulo 2**32"
            )
            concepts.append("C16")
            rfc = (rfc + ", " if rfc else "") + "RFC 9293 §3.4, RFC 1982"
        if not pure and s.win == 0 and not f & RST:
            parts.append("our window is zero")
            concepts.append("C4")
        if f & ACK and not f & RST:
            self._last_ack[conn] = (s.ack, s.win)
        if retr:
            earlier = self._earlier_copy(s)
            if (
                earlier is not None
                and earlier.lost is None
                and earlier.arrive_rec is not None
                and earlier.t_arrive is not None
                and earlier.t_arrive <= t
            ):
                parts.append(
                    f"yet the earlier copy (sent at {earlier.t:.4f}s) had arrived at "
                    f"{earlier.t_arrive:.4f}s: this retransmission is spurious, and the "
                    "receiver discards the duplicate"
                )
        if s.sack:
            parts.append(
                "SACK blocks " + ", ".join(f"{a}-{b}" for a, b in s.sack_blocks(self.absolute))
            )
            rfc = (rfc + ", " if rfc else "") + "RFC 2018"
        if f & PSH and s.len and not retr and not f & FIN and parts:
            parts[0] += " (PSH: deliver now)"
        return "; ".join(parts), list(dict.fromkeys(concepts)), rfc
