"""Sequence diagrams of a run: hand-written SVG and Mermaid text.

Each host gets a vertical timeline (the client on the left); time runs down.
Every event of the trace takes one row, so simultaneous events stay readable
and an arrow's slope shows how much happened while the segment was in
flight; long quiet periods (RTO backoff, TIME-WAIT) are folded into a marked
gap.  Arrows carry flags, sequence and acknowledgement numbers (relative by
default), length and window; lost segments stop halfway with a cross,
retransmissions and resets are coloured, stray (injected) segments dashed.
State names stand beside each timeline (RFC 9293 §3.3.2), timers fired are
marked with their name.  Hovering an arrow shows the narration of
:mod:`synack.trace.narrate`.  No dependency: the SVG is written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from ..wire.ipv6 import conn_hosts
from .model import Run, Seg
from .narrate import Explainer
from .words import drop_name, net_drop_words, timer_name

ROW = 24  # pixels per event row
GAP_ROW = 30  # height of a folded quiet period
TOP = 70
LANE = 520  # least distance between two timelines (wider for long labels)
SIDE = 230  # least room for state labels outside the timelines
MONO_CHAR = 6.7  # width of one 11px monospace character (segment labels), generously
SANS_CHAR = 6.6  # the same for the 11px sans-serif side labels (bold state names included)
TIME_COL = 64  # the time column at the left edge
GAP_SECONDS = 0.5  # a pause longer than this is folded and labelled

CSS = """
.tl{stroke:#444;stroke-width:2}
.host{font:bold 14px sans-serif;fill:#222}
.ip{font:11px monospace;fill:#666}
.time{font:10px monospace;fill:#888}
.state{font:bold 11px sans-serif;fill:#0b5394}
.timer{font:italic 11px sans-serif;fill:#b45f06}
.drop{font:11px sans-serif;fill:#990000}
.err{font:bold 11px sans-serif;fill:#cc0000}
.gap{font:italic 11px sans-serif;fill:#888}
.gapline{stroke:#bbb;stroke-dasharray:2 4}
.seg line{stroke:#1a1a1a;stroke-width:1.3}
.seg text{font:11px monospace;fill:#1a1a1a}
.seg.retx line{stroke:#e69138;stroke-width:1.8}
.seg.retx text{fill:#b45f06}
.seg.rst line{stroke:#cc0000;stroke-width:1.8}
.seg.rst text{fill:#cc0000}
.seg.lost line{stroke:#cc0000;stroke-dasharray:6 3}
.seg.lost text{fill:#990000}
.seg.stray line{stroke:#674ea7;stroke-dasharray:3 3}
.seg.stray text{fill:#674ea7}
.seg.cur line{stroke:#2f6fd6;stroke-width:3.5}
.seg.cur text{fill:#2f6fd6;font-weight:bold}
.x{stroke:#cc0000;stroke-width:2.5}
.seg text,.state,.timer,.drop,.err,.gap{paint-order:stroke;stroke:#fff;stroke-width:3px;
stroke-linejoin:round}
"""


@dataclass
class _Row:
    t: float
    kind: str  # send, arrive, state, timer, drop, error, gap, elided
    host: str = ""
    seg: int | None = None
    text: str = ""


def _rows(run: Run, max_segments: int) -> list[_Row]:
    shown: set[int] = set(range(len(run.segments)))
    elide_from: int | None = None
    if len(run.segments) > max_segments:
        head = max_segments // 2
        tail = max_segments - head
        shown = set(range(head)) | set(range(len(run.segments) - tail, len(run.segments)))
        elide_from = head
    rows: list[_Row] = []
    elided = False
    for i, r in enumerate(run.records):
        t = float(r.get("t", 0.0))
        j = run.rec_seg.get(i)
        if j is not None:
            s = run.segments[j]
            if j not in shown:
                if not elided and elide_from is not None:
                    rows.append(
                        _Row(
                            t,
                            "elided",
                            text=f"... {len(run.segments) - len(shown)} "
                            "more segments (see the time-sequence graph) ...",
                        )
                    )
                    elided = True
                continue
            if s.send_rec == i:
                rows.append(_Row(t, "send", s.src, j))
            elif s.arrive_rec == i:
                rows.append(_Row(t, "arrive", s.dst, j))
            continue
        name = r.get("conn") or ""
        host = conn_hosts(name)[0] if name else ""
        if r["ev"] == "state" and host:
            rows.append(_Row(t, "state", host, text=str(r["new"])))
        elif r["ev"] == "timer" and host:
            retries = r.get("retries")
            extra = f" (#{retries})" if retries else ""
            rows.append(_Row(t, "timer", host, text=f"{timer_name(r['timer'])} fired{extra}"))
        elif r["ev"] == "drop" and host:
            rows.append(_Row(t, "drop", host, text=f"discarded: {drop_name(str(r.get('reason')))}"))
        elif r["ev"] == "error" and host:
            rows.append(_Row(t, "error", host, text=f"{r.get('errno')}"))
    # Arrivals nobody traced (a stack with no connection, an untraced peer): by time.
    for s in run.segments:
        if s.index in shown and s.arrive_rec is None and s.t_arrive is not None:
            k = len(rows)
            for n, row in enumerate(rows):
                if row.t > s.t_arrive:
                    k = n
                    break
            rows.insert(k, _Row(s.t_arrive, "arrive", s.dst, s.index))
    # Fold long pauses.
    out: list[_Row] = []
    for row in rows:
        if out and row.t - out[-1].t > GAP_SECONDS:
            out.append(_Row(row.t, "gap", text=f"{row.t - out[-1].t:.3g} s later"))
        out.append(row)
    return out


def _order_hosts(run: Run) -> list[str]:
    def key(ip: str) -> tuple[int, int]:
        role = run.role(ip)
        rank = 0 if role == "client" else 1 if role == "server" else 2
        return rank, run.hosts.index(ip)

    return sorted(run.hosts, key=key)


def render_svg(run: Run, *, absolute: bool = False, max_segments: int = 80, title: str = "") -> str:
    """The sequence diagram as a standalone SVG document."""
    if not any(s.concepts or s.text for s in run.segments):
        list(Explainer(run, absolute=absolute).steps())  # fill in the narration
    hosts = _order_hosts(run)
    rows = _rows(run, max_segments)
    # Room for the longest label: segment labels run inside a lane from the sender's
    # timeline, side labels (states, timers, discards) outside the outer timelines.
    longest = max(
        (
            len(_label(run, run.segments[r.seg], absolute))
            for r in rows
            if r.kind == "send" and r.seg is not None
        ),
        default=0,
    )
    lane = max(LANE, int(longest * MONO_CHAR) + 40)
    side_text = max(
        (len(r.text) for r in rows if r.kind in ("state", "timer", "drop", "error")), default=0
    )
    side = max(SIDE, TIME_COL + int(side_text * SANS_CHAR) + 16)
    xs = {ip: side + n * lane for n, ip in enumerate(hosts)}
    ys: list[int] = []
    y = TOP + 20
    for row in rows:
        y += GAP_ROW if row.kind in ("gap", "elided") else ROW
        ys.append(y)
    height = y + 40
    width = side * 2 + lane * max(len(hosts) - 1, 1)
    send_y: dict[int, int] = {}
    arrive_y: dict[int, int] = {}
    for row, yy in zip(rows, ys, strict=True):
        if row.seg is not None:
            (send_y if row.kind == "send" else arrive_y)[row.seg] = yy
    o: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="synack-diagram" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f"<style>{CSS}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        o.append(f'<text x="10" y="18" class="host">{escape(title)}</text>')
    for ip in hosts:
        x = xs[ip]
        o.append(
            f'<text x="{x}" y="{TOP - 22}" text-anchor="middle" class="host">'
            f"{escape(run.role(ip))}</text>"
        )
        o.append(f'<text x="{x}" y="{TOP - 8}" text-anchor="middle" class="ip">{escape(ip)}</text>')
        o.append(f'<line class="tl" x1="{x}" y1="{TOP}" x2="{x}" y2="{height - 20}"/>')
    for row, yy in zip(rows, ys, strict=True):
        if row.kind in ("gap", "elided"):
            o.append(
                f'<line class="gapline" x1="10" y1="{yy - 8}" x2="{width - 10}" y2="{yy - 8}"/>'
            )
            o.append(
                f'<text x="{width // 2}" y="{yy + 2}" text-anchor="middle" class="gap">'
                f"{escape(row.text)}</text>"
            )
            continue
        if row.kind in ("send", "state", "timer", "drop", "error"):
            o.append(f'<text x="4" y="{yy + 4}" class="time">{row.t:.4f}s</text>')
        if row.kind in ("state", "timer", "drop", "error") and row.host in xs:
            x = xs[row.host]
            left = hosts.index(row.host) == 0
            cls = {"state": "state", "timer": "timer", "drop": "drop", "error": "err"}[row.kind]
            tx, anchor = (x - 10, "end") if left else (x + 10, "start")
            o.append(
                f'<text x="{tx}" y="{yy + 4}" text-anchor="{anchor}" class="{cls}">'
                f"{escape(row.text)}</text>"
            )
            if row.kind == "state":
                o.append(f'<circle cx="{x}" cy="{yy}" r="3.5" fill="#0b5394"/>')
    for s in run.segments:
        if s.index not in send_y and s.index not in arrive_y:
            continue
        o.append(_arrow(run, s, xs, send_y, arrive_y, absolute))
    o.append("</svg>")
    return "\n".join(o)


def _arrow(
    run: Run,
    s: Seg,
    xs: dict[str, int],
    send_y: dict[int, int],
    arrive_y: dict[int, int],
    absolute: bool,
) -> str:
    if s.src not in xs or s.dst not in xs:
        return ""
    x1, x2 = xs[s.src], xs[s.dst]
    y2_known = arrive_y.get(s.index)
    y1 = send_y.get(s.index, (y2_known or 0) - ROW)
    y2 = y2_known if y2_known is not None else y1 + ROW
    classes = ["seg"]
    if s.retransmit:
        classes.append("retx")
    if s.kind == "RST":
        classes.append("rst")
    if s.injected is not None:
        classes.append("stray")
    label = _label(run, s, absolute)
    parts = [
        f'<g class="{" ".join(classes + (["lost"] if s.lost else []))}" id="seg-{s.index}" '
        f'data-step="{s.index}">'
    ]
    tip = f"{s.kind}: {s.text}" if s.text else s.kind
    parts.append(f"<title>{escape(tip)}</title>")
    if s.lost:
        xe = x1 + (x2 - x1) * 0.55
        ye = y1 + max(ROW, (y2 - y1)) * 0.55 if y2_known else y1 + ROW
        parts.append(f'<line x1="{x1}" y1="{y1}" x2="{xe:.1f}" y2="{ye:.1f}"/>')
        parts.append(
            f'<path class="x" d="M{xe - 6:.1f},{ye - 6:.1f} L{xe + 6:.1f},{ye + 6:.1f} '
            f'M{xe - 6:.1f},{ye + 6:.1f} L{xe + 6:.1f},{ye - 6:.1f}"/>'
        )
    else:
        parts.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#arrow)"/>')
    # The label sits on the segment's own row, just above where the arrow leaves the
    # sender, so no two labels share a row and none lies along another arrow's middle.
    tx, anchor = (x1 + 12, "start") if x2 >= x1 else (x1 - 12, "end")
    parts.append(f'<text x="{tx}" y="{y1 - 5}" text-anchor="{anchor}">{escape(label)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _label(run: Run, s: Seg, absolute: bool) -> str:
    """A segment's label in the diagram: its one rendering plus what became of it."""
    label = s.label(absolute)
    if s.retransmit:
        label += " (retransmission)"
    if s.injected is not None:
        label += " (stray)"
    if s.lost:
        label += f" LOST: {net_drop_words(s.lost)}"
    return label


def _mermaid_text(text: str) -> str:
    return (
        text.replace(";", ",")
        .replace("#", "no. ")
        .replace("<", "")
        .replace(">", "")
        .replace("\n", " ")
    )


def render_mermaid(run: Run, *, absolute: bool = False, max_segments: int = 80) -> str:
    """The sequence diagram as Mermaid ``sequenceDiagram`` text."""
    hosts = _order_hosts(run)
    alias = {ip: f"H{n}" for n, ip in enumerate(hosts)}
    lines = ["sequenceDiagram"]
    for ip in hosts:
        lines.append(f"    participant {alias[ip]} as {_mermaid_text(run.role(ip))} {ip}")
    rows = _rows(run, max_segments)
    for row in rows:
        if row.kind == "gap" or row.kind == "elided":
            lines.append(
                f"    Note over {alias[hosts[0]]},{alias[hosts[-1]]}: {_mermaid_text(row.text)}"
            )
        elif row.kind in ("state", "timer", "drop", "error") and row.host in alias:
            side = "left of" if row.host == hosts[0] else "right of"
            lines.append(f"    Note {side} {alias[row.host]}: {_mermaid_text(row.text)}")
        elif row.kind == "send" and row.seg is not None:
            s = run.segments[row.seg]
            if s.src not in alias or s.dst not in alias:
                continue
            arrow = "-x" if s.lost else "--)" if s.injected is not None else "->>"
            label = s.label(absolute)
            if s.retransmit:
                label += " (retransmission)"
            if s.lost:
                label += f" LOST: {net_drop_words(s.lost)}"
            if s.injected is not None:
                label += " (stray, no connection sent it)"
            lines.append(f"    {alias[s.src]}{arrow}{alias[s.dst]}: {_mermaid_text(label)}")
        elif row.kind == "arrive" and row.seg is not None:
            s = run.segments[row.seg]
            if s.t is None and s.src in alias and s.dst in alias:
                lines.append(
                    f"    {alias[s.src]}->>{alias[s.dst]}: {_mermaid_text(s.label(absolute))}"
                )
    return "\n".join(lines) + "\n"
