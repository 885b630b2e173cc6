"""Narrate a trace in plain language: what each segment is and why things happened.

:func:`analyze` turns the records of ``docs/trace.md`` into a :class:`Run`:
the hosts, every segment with its send time, arrival time or loss, its
relative sequence numbers and a snapshot of both ends (state, windows, bytes
in flight, cwnd) after it was sent.  :class:`Explainer` then walks the records
and writes one :class:`Step` per event: a short header (as
:mod:`synack.trace.timeline` prints it) and a sentence that says what the segment
is, why a state changed, why a segment was retransmitted, why an RST was
sent, each citing the concept ID of ``docs/concepts.md`` (C1-C27) and the
RFC section.  Diagrams (:mod:`synack.trace.diagram`), plots and the report page are
built on the same :class:`Run`.

Sequence numbers are relative to each side's ISN by default (0 = the SYN),
absolute on request, as in Wireshark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..wire.segment import ACK, FIN, RST, SYN, flags_str
from .meaning import SegmentMeaning
from .model import Run, Seg, analyze, conn_ips
from .schema import (
    CaStateRecord,
    CcRecord,
    DropRecord,
    NetDropRecord,
    NoteRecord,
    SegRecord,
    TraceRecord,
)
from .step import Step, concepts_in
from .words import (
    CA_SHORT,
    CA_TEXT,
    CLOSE_RFC,
    DROP_TEXT,
    STATE_TEXT,
    TIMER_TEXT,
    count_words,
    drop_name,
    net_drop_words,
    note_words,
    timer_name,
)


# ------------------------------------------------------------------ narration
class Explainer(SegmentMeaning):
    """Turns an analysed :class:`Run` into :class:`Step` objects."""

    def steps(self) -> Iterator[Step]:
        run = self.run
        for i, r in enumerate(run.records):
            step = self.step(i, r)
            if step is not None:
                yield step

    def _who(self, r: TraceRecord) -> str:
        name = r.get("conn")
        if r["ev"] == "lab":
            return "lab"
        if r["ev"] in ("net_drop", "net_inject"):
            return "network"
        if not name:
            return "stack"
        return self.run.role(conn_ips(name)[0])

    def step(self, i: int, r: TraceRecord) -> Step | None:
        t = float(r.get("t", 0.0))
        who = self._who(r)
        name = r.get("conn") or ""
        if r["ev"] == "seg":
            j = self.run.rec_seg.get(i)
            if j is None:
                return None
            s = self.run.segments[j]
            if r.get("dir") == "out":
                return self._seg_out(s, i, t, who)
            return self._seg_in(s, i, t, who)
        if r["ev"] == "state":
            key = (r["old"], r["new"])
            text, rfc = STATE_TEXT.get(key, ("", ""))
            if key in (
                ("ESTABLISHED", "FIN-WAIT-1"),
                ("CLOSE-WAIT", "LAST-ACK"),
                ("SYN-RECEIVED", "FIN-WAIT-1"),
            ):
                text = self._fin_text(i, name, key)
            why = str(r.get("why") or "")
            if (r["new"] == "CLOSED" and key not in STATE_TEXT) or (
                r["new"] == "CLOSED"
                and any(k in why for k in CLOSE_RFC if k not in ("closed before",))
            ):
                text = why
                rfc = next((v for k, v in CLOSE_RFC.items() if k in why), "RFC 9293 §3.6")
            concepts = [c for c in [r.get("concept") or ""] if c]
            if r["new"] == "TIME-WAIT" and "C13" not in concepts:
                concepts.append("C13")
            if key == ("LISTEN", "SYN-RECEIVED"):
                concepts += ["C26", "C27"] if self._stray_syn(i) else []
            return Step(
                t, who, "state", f"state {r['old']} -> {r['new']}", text, concepts, rfc, rec=i
            )
        if r["ev"] == "timer":
            self._timer[name] = (i, r)
            text, rfc = TIMER_TEXT.get(r["timer"], (f"{r['timer']} timer", ""))
            extra = ""
            retries, rto = r.get("retries"), r.get("rto")
            if retries is not None and rto is not None:
                extra = f" (attempt {retries}, next timeout {rto:g}s)"
            concepts = [r["concept"]] if r.get("concept") else []
            if r["timer"] == "rto" and r.get("concept") == "C17":
                text = (
                    "retransmission timer expired: our SYN/FIN was not acknowledged; "
                    "resend it and double RTO"
                )
            return Step(
                t,
                who,
                "timer",
                f"{timer_name(r['timer'])} fired{extra}",
                text,
                concepts,
                rfc,
                rec=i,
            )
        if r["ev"] == "timer_set":
            if not self.verbose:
                return None
            at = r.get("at")
            when = f" for t={at:.4f}s" if isinstance(at, int | float) else ""
            return Step(
                t, who, "timer", f"{timer_name(str(r.get('timer')))} set{when}", "", [], "", rec=i
            )
        if r["ev"] == "rtt":
            return Step(
                t,
                who,
                "rtt",
                f"RTT sample {r['sample'] * 1000:.1f} ms",
                f"SRTT {r['srtt'] * 1000:.1f} ms, RTTVAR {r['rttvar'] * 1000:.1f} ms, "
                f"so RTO = SRTT + 4*RTTVAR (at least 1 s) = {r['rto']:.3f}s",
                ["C2"],
                "RFC 6298 §2, §3 (Karn: never from a retransmission)",
                rec=i,
            )
        if r["ev"] == "cc":
            if isinstance(r.get("cwnd"), int):
                self._cwnd[name] = r["cwnd"]
            return self._cc(r, i, t, who)
        if r["ev"] == "cwnd":
            if isinstance(r.get("cwnd"), int):
                self._cwnd[name] = r["cwnd"]
            return None
        if r["ev"] == "ca_state":
            return self._ca_state(r, i, t, who, name)
        if r["ev"] == "drop":
            self._note_trigger(r, t, name)
            reason = str(r.get("reason") or "")
            text, concept, rfc = DROP_TEXT.get(reason, (reason.replace("_", " "), "", ""))
            concepts = [c for c in (r.get("concept") or concept,) if c]
            if reason == "retransmitted_syn":
                self._syn_again.add(name)
            return Step(
                t,
                who,
                "drop",
                f"discarded incoming segment: {drop_name(reason)}",
                text,
                concepts,
                rfc,
                rec=i,
            )
        if r["ev"] == "note":
            self._note_trigger(r, t, name)
            text = note_words(str(r.get("text") or ""))
            concepts = [r["concept"]] if r.get("concept") else concepts_in(text)
            rfc = ""
            if r.get("concept") == "C27":
                rfc = "RFC 9293 §3.5 (figure 8), §3.8.3"
            elif r.get("concept") == "C13":
                rfc = "RFC 9293 §3.10.7.4 (TIME-WAIT)"
            elif "out-of-order" in text:
                rfc = "RFC 9293 §3.10.7.4, RFC 5681 §4.2"
            elif "window opened" in text:
                rfc = "RFC 9293 §3.8.6"
            return Step(t, who, "note", text, "", concepts, rfc, rec=i)
        if r["ev"] == "error":
            return Step(
                t,
                who,
                "error",
                f"ERROR {r['errno']}: {r['message']}",
                "the application gets a clear error: TCP is reliable, not infallible",
                ["C3"],
                "RFC 9293 §3.8.3",
                rec=i,
            )
        if r["ev"] == "net_drop":
            return self._net_drop(r, i, t)
        if r["ev"] == "net_inject":
            j = self.run.rec_seg.get(i)
            if j is None:
                return None
            s = self.run.segments[j]
            src, dst = self.run.role(s.src), self.run.role(s.dst)
            concepts = concepts_in(s.injected or "") or ["C15"]
            return Step(
                t,
                "network",
                "seg",
                f"{src} -> {dst} {s.label(self.absolute)}  (not sent by any connection)",
                f"a stray packet: {s.injected}",
                concepts,
                "RFC 9293 §3.4",
                seg=j,
                rec=i,
            )
        if r["ev"] == "lab":
            text = str(r.get("text") or "")
            concepts = list(r.get("concepts") or []) or concepts_in(text)
            return Step(t, "lab", "lab", text, "", concepts, str(r.get("rfc") or ""), rec=i)
        if r["ev"] == "open":
            iss = r.get("iss")
            mode = r.get("mode")
            text = (
                f"{mode} open: ISS {iss} chosen by RFC 6528 (4 µs clock + keyed hash of "
                "the addresses): unpredictable, and moving forward for a reused 4-tuple"
            )
            if not self.verbose:
                return None
            return Step(
                t,
                who,
                "open",
                f"{mode} open",
                text,
                ["C15", "C16"],
                "RFC 6528 §3, RFC 9293 §3.4.1",
                rec=i,
            )
        return None

    def _loss_evidence(self, i: int, name: str) -> str:
        """What made the sender of ``name`` decide a loss at record ``i``, from the trace:
        the ACKs it received since the loss state left Open (duplicates, or ones with
        SACK blocks) and whether the RACK reordering timer fired (RFC 8985 §6.2) rather
        than a third duplicate ACK deciding it (RFC 5681 §3.2)."""
        recs = self.run.records
        t = recs[i].get("t")
        rack = False
        acks: list[SegRecord] = []
        edge: float | None = None
        for r in reversed(recs[:i]):
            if r.get("conn") != name:
                continue
            if edge is not None and r.get("t") != edge:
                break
            if (
                r["ev"] == "timer"
                and r.get("timer") == "rack_reorder"
                and r.get("t") == t
                and not acks
            ):
                rack = True
            elif (
                r["ev"] == "seg"
                and r.get("dir") == "in"
                and not r["len"]
                and not r["flags"] & (SYN | FIN | RST)
            ):
                acks.append(r)
            elif r["ev"] == "ca_state" and r.get("new") in ("Disorder", "Open"):
                edge = r.get("t")  # the ACK that started it came at the same moment
        # The ACK that moved Open -> Disorder may have advanced the cumulative ACK; the
        # others repeat it.  Count the ones that carried news of later data.
        evidence = [
            a
            for k, a in enumerate(acks)
            if a.get("sack") or (k + 1 < len(acks) and acks[k + 1]["ack"] == a["ack"])
        ]
        n = len(evidence) or len(acks)
        sacked = any(a.get("sack") for a in evidence)
        plural = "" if n == 1 else "s"
        if acks and all(a["ack"] == acks[0]["ack"] for a in acks):
            what = f"{count_words(n)} duplicate ACK{plural}" + (
                " carrying SACK blocks" if sacked else ""
            )
        else:
            what = f"{count_words(n)} ACK{plural} with SACK blocks"
        if rack:
            return (
                f"the RACK reordering timer expired after {what}: the segment was still "
                "unacknowledged a reordering window after later data was acknowledged"
            )
        return what

    def _ca_state(self, r: CaStateRecord, i: int, t: float, who: str, name: str) -> Step:
        """A move of the sender's loss state (Linux tcp_ca_state), narrated from its
        record: which states, what triggered it, and what it did to cwnd."""
        old, new, trig = str(r["old"]), str(r["new"]), str(r["trigger"])
        text, concepts, rfc = CA_TEXT.get(trig, (str(r.get("why") or trig), [], ""))
        short = CA_SHORT.get(trig, str(r.get("why") or trig))
        if trig == "loss_marked":
            cause = self._loss_evidence(i, name)
            self._loss_cause[name] = cause
            text = (
                f"{cause[0].upper()}{cause[1:]}; so a loss was marked: fast retransmit, "
                "and the window is reduced once"
            )
        elif trig == "rto":
            self._loss_cause[name] = "the retransmission timer expired"
        elif trig == "exit" and r.get("high_seq") is not None:
            text = (
                f"everything up to byte {r['high_seq']} (sent when the episode began) is "
                "acknowledged: the episode is over"
            )
        cwnd = r.get("cwnd")
        prev = self._cwnd.get(name)
        if isinstance(cwnd, int):
            self._cwnd[name] = cwnd
        win = ""
        if isinstance(cwnd, int):
            win = (
                f"; cwnd {prev} → {cwnd}" if prev is not None and prev != cwnd else f"; cwnd {cwnd}"
            )
            ss = r.get("ssthresh")
            if (
                isinstance(ss, int)
                and ss < 1 << 30
                and trig in ("loss_marked", "rto", "ece", "tlp_repair")
            ):
                win += f", ssthresh {ss}"
        move = f"stays {new}" if old == new else f"{old} → {new}"
        return Step(
            t, who, "ca_state", f"loss state {move}: {short}{win}", text, list(concepts), rfc, rec=i
        )

    def _stray_syn(self, i: int) -> bool:
        recs = self.run.records
        for k in range(i - 1, max(i - 6, -1), -1):
            r = recs[k]
            if r["ev"] == "open" and r.get("mode") == "passive":
                j = self.run.rec_seg.get(k)
                return j is not None and self.run.segments[j].injected is not None
        return False

    def _note_trigger(self, r: NoteRecord | DropRecord, t: float, name: str) -> None:
        if r["ev"] == "note" and "out-of-order" in str(r.get("text")):
            self._trigger[name] = (t, "out-of-order data arrived beyond a hole (C14)")
        elif r["ev"] == "drop" and r.get("reason") in ("duplicate", "out_of_window"):
            self._trigger[name] = (t, f"answer to a {r['reason'].replace('_', '-')} segment")

    def _cc(self, r: CcRecord, i: int, t: float, who: str) -> Step | None:
        event = r.get("event")
        if self._has_ca_state and not self.verbose:
            return None  # the loss-state moves (ca_state records) tell it, from the trace
        head = f"congestion: {event} cwnd={r.get('cwnd')}"
        if "ssthresh" in r:  # not on BBR's state records (trace.schema.CcRecord)
            head += f" ssthresh={r.get('ssthresh')}"
        if event == "bbr_state":
            head += f" BBR {r.get('old')} → {r.get('new')}"
        if event == "fast_retransmit":
            name = str(r.get("conn") or "")
            cause = self._loss_evidence(i, name)
            return Step(
                t,
                who,
                "cc",
                head,
                f"{cause}: a segment is lost but later ones "
                "arrive; reduce the window (ssthresh = flight/2), enter fast "
                "recovery",
                ["C14", "C18"],
                "RFC 5681 §3.2, RFC 6582 §3.2",
                rec=i,
            )
        if event == "rto":
            return Step(
                t,
                who,
                "cc",
                head,
                "timeout: the path may be congested; ssthresh = "
                "flight/2, cwnd = 1 MSS, slow start again",
                ["C18"],
                "RFC 5681 §3.1 (eq. 4), RFC 6298 §5.5",
                rec=i,
            )
        if event == "ecn_echo":
            return Step(
                t,
                who,
                "cc",
                head,
                "the peer echoed a congestion mark (ECE): reduce "
                "the window as for a loss, once per RTT, with nothing to resend",
                [],
                "RFC 3168 §6.1.2",
                rec=i,
            )
        if event == "tlp_recovery":
            return Step(
                t,
                who,
                "cc",
                head,
                "the tail loss probe revealed a loss: the window is reduced",
                ["C18"],
                "RFC 8985 §7.4",
                rec=i,
            )
        if event == "recovery_end":
            return Step(
                t,
                who,
                "cc",
                head,
                "every segment outstanding at the loss is acked: "
                "leave fast recovery, cwnd = ssthresh",
                [],
                "RFC 6582 §3.2 step 5",
                rec=i,
            )
        if not self.verbose:
            return None
        return Step(t, who, "cc", head, "", [], "RFC 5681 §3.1", rec=i)

    def _net_drop(self, r: NetDropRecord, i: int, t: float) -> Step:
        src = self.run.role(str(r.get("src")))
        dst = self.run.role(str(r.get("dst")))
        flags = r.get("flags")
        what = f"[{flags_str(flags)}]" if flags is not None else "packet"
        j = None
        for k, s in enumerate(self.run.segments):
            if (
                s.lost is not None
                and s.send_rec is not None
                and s.send_rec < i
                and s.t == r.get("t")
                and s.seq == r.get("seq")
                and s.src == r.get("src")
            ):
                j = k
        seq = r.get("seq")
        if j is not None:
            what = self.run.segments[j].label(self.absolute)
        elif seq is not None:
            what += f" seq={seq} len={r.get('len')}"
        kind = (
            "SYN"
            if flags and flags & SYN and not flags & ACK
            else "SYN-ACK"
            if flags and flags & SYN
            else "FIN"
            if flags and flags & FIN
            else "RST"
            if flags and flags & RST
            else "data"
            if r.get("len")
            else "ACK"
        )
        if kind == "RST":
            after = "an RST is never retransmitted: its receiver will never know (C19)"
            concepts = ["C19"]
        elif kind == "ACK":
            after = "a pure ACK is never retransmitted; a later ACK covers it (C20)"
            concepts = ["C20"]
        else:
            after = (
                "the sender will find out from its timer or duplicate ACKs and "
                "retransmit (C14, C17)"
                if kind in ("SYN", "SYN-ACK", "FIN")
                else "the sender will find out from its timer or duplicate ACKs and "
                "retransmit (C14, C18)"
            )
            concepts = concepts_in(after)
        how = net_drop_words(r.get("reason"))
        return Step(
            t,
            "network",
            "net_drop",
            f"LOST {src} -> {dst} {what} ({how})",
            f"the network lost this {kind}: {after}",
            concepts,
            "RFC 9293 §3.8.1",
            seg=j,
            rec=i,
        )

    def _seg_in(self, s: Seg, i: int, t: float, who: str) -> Step | None:
        src = self.run.role(s.src)
        if s.injected is not None:
            return Step(
                t,
                who,
                "seg_in",
                f"<- {src:<7} {s.label(self.absolute)}  (stray)",
                f"this segment was sent by no current connection: {s.injected}",
                concepts_in(s.injected) or ["C15"],
                "RFC 9293 §3.4",
                seg=s.index,
                rec=i,
            )
        if s.duplicate_of is not None:
            return Step(
                t,
                who,
                "seg_in",
                f"<- {src:<7} {s.label(self.absolute)}  (copy)",
                "a second copy of a segment already delivered (the network "
                "duplicated it): sequence numbers let TCP discard it",
                ["C14"],
                "RFC 9293 §3.10.7.4",
                seg=s.index,
                rec=i,
            )
        if not self.verbose:
            return None
        return Step(
            t,
            who,
            "seg_in",
            f"<- {src:<7} {s.label(self.absolute)}  received",
            "",
            [],
            "",
            seg=s.index,
            rec=i,
        )

    def _seg_out(self, s: Seg, i: int, t: float, who: str) -> Step:
        peer = self.run.role(s.dst)
        text, concepts, rfc = self.segment_meaning(s, t)
        s.text, s.concepts, s.rfc = text, concepts, rfc
        lost = f"  ({net_drop_words(s.lost)})" if s.lost else ""
        return Step(
            t,
            who,
            "seg",
            f"-> {peer:<7} {s.label(self.absolute)}{lost}",
            text,
            concepts,
            rfc,
            seg=s.index,
            rec=i,
        )


def explain(
    records: Iterable[TraceRecord],
    roles: dict[str, str] | None = None,
    *,
    absolute: bool = False,
    verbose: bool = False,
) -> tuple[Run, list[Step]]:
    """Analyse and narrate a trace; returns the run and its steps."""
    run = analyze(records, roles)
    ex = Explainer(run, absolute=absolute, verbose=verbose)
    return run, list(ex.steps())


def loss_story(
    records: Iterable[TraceRecord], roles: dict[str, str] | None = None
) -> dict[str, tuple[list[str], list[str]]]:
    """Per host role, the loss states its sender went through (from the ``ca_state``
    records, in order, starting with the first ``old``) and what decided each loss,
    as the narration words it: ``{"client": (["Open", "Disorder", "Recovery", "Open"],
    ["three ACKs with SACK blocks"])}``."""
    run = analyze(records, roles)
    ex = Explainer(run)
    story: dict[str, tuple[list[str], list[str]]] = {}
    for i, r in enumerate(run.records):
        if r["ev"] != "ca_state":
            if r["ev"] in ("cwnd", "cc"):
                ex.step(i, r)
            continue
        conn = r["conn"] or ""  # always a connection's (the loader checks)
        who = run.role(conn_ips(conn)[0])
        states, causes = story.setdefault(who, ([str(r["old"])], []))
        ex.step(i, r)
        for state in (str(r["old"]), str(r["new"])):
            if states[-1] != state:
                states.append(state)
        if r["trigger"] == "loss_marked":
            causes.append(ex._loss_cause.get(conn, ""))
        elif r["trigger"] == "rto":
            causes.append("the retransmission timer expired")
    return story


def render(
    records: Iterable[TraceRecord],
    roles: dict[str, str] | None = None,
    *,
    absolute: bool = False,
    verbose: bool = False,
) -> list[str]:
    """The explained timeline as text lines (a step may span two lines)."""
    _, steps = explain(records, roles, absolute=absolute, verbose=verbose)
    return [s.render() for s in steps]
