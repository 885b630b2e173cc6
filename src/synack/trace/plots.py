"""Plots of a run: Stevens time-sequence graph, cwnd/ssthresh, RTT/RTO.

The time-sequence graph (Stevens, *TCP/IP Illustrated* vol. 1; tcptrace)
draws each data segment as a vertical bar from its first to its last
sequence number at the time it was sent, the cumulative ACK line the sender
received, the window's right edge (ACK + window, C4), SACK blocks when the
trace has them (RFC 2018), retransmissions in red (C18) and segments the
network lost with a cross (C14).  The congestion plot shows cwnd and
ssthresh (RFC 5681), the RTT plot each sample with SRTT and RTO (RFC 6298,
C2).

The numbers always go to CSV files; the PNGs need matplotlib (the ``plot``
extra, which ``make demo`` installs; in a clone ``.venv/bin/pip install -e
'.[plot]'``): without it :func:`write_plots` says so and writes the CSV data
only.  Legends stand outside the axes, so they never hide data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tcp.seq import MASK
from ..wire.ipv6 import conn_hosts
from ..wire.segment import ACK, FIN, SYN
from .model import Run, Seg, reverse

#: How to get the PNG plots in a clone (synack is not on PyPI).
PLOT_INSTALL = ".venv/bin/pip install -e '.[plot]'"
NO_MATPLOTLIB = (
    "matplotlib is not installed: wrote the CSV data only "
    f"(for the PNG plots, in the synack folder: {PLOT_INSTALL}, or make demo)"
)


def matplotlib_available() -> bool:
    """True when ``import matplotlib`` works."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class TimeSeq:
    """The data of one direction's time-sequence graph (relative sequence numbers)."""

    conn: str
    sender: str
    receiver: str
    #: (t, first, end, kind) with kind "data", "retransmit", "lost", "probe", "syn", "fin"
    segments: list[tuple[float, int, int, str]] = field(default_factory=list)
    #: (t, ack) as the sender received them
    acks: list[tuple[float, int]] = field(default_factory=list)
    #: (t, right edge = ack + window)
    window: list[tuple[float, int]] = field(default_factory=list)
    #: (t, left, right) SACK blocks (relative)
    sacks: list[tuple[float, int, int]] = field(default_factory=list)


def busiest_connection(run: Run) -> str | None:
    """The connection name that sent the most payload bytes (ties: the first)."""
    totals: dict[str, int] = {}
    for s in run.segments:
        if s.t is not None and s.injected is None:
            totals[s.conn] = totals.get(s.conn, 0) + s.len
    if not totals:
        return None
    return max(totals, key=lambda k: (totals[k], -list(totals).index(k)))


def time_sequence(run: Run, conn: str | None = None) -> TimeSeq | None:
    """Collect the time-sequence data for ``conn`` (default: the busiest sender)."""
    conn = conn or busiest_connection(run)
    if conn is None:
        return None
    sender, receiver = conn_hosts(conn)
    ts = TimeSeq(conn, sender, receiver)
    back = reverse(conn)
    for s in run.segments:
        if s.conn == conn and s.t is not None and s.rel_seq is not None:
            first = s.rel_seq
            end = first + s.len + (1 if s.flags & (SYN | FIN) else 0)
            kind = _kind(s)
            ts.segments.append((s.t, first, end, kind))
        elif s.conn == back and s.flags & ACK and s.rel_ack is not None:
            t = s.t_arrive if s.t_arrive is not None else s.t
            if t is None or s.lost:
                continue
            ts.acks.append((t, s.rel_ack))
            ts.window.append((t, s.rel_ack + s.wnd))
            base = s.ack - s.rel_ack
            for left, right in s.sack:
                ts.sacks.append((t, (left - base) & MASK, (right - base) & MASK))
    ts.acks.sort()
    ts.window.sort()
    return ts


def _kind(s: Seg) -> str:
    if s.lost:
        return "lost"
    if s.retransmit:
        return "retransmit"
    if s.why.startswith("zero-window probe"):
        return "probe"
    if s.flags & SYN:
        return "syn"
    if s.flags & FIN and not s.len:
        return "fin"
    return "data"


def congestion_series(run: Run) -> list[tuple[float, str, int | None, int | None]]:
    """(t, conn, cwnd, ssthresh) from every ``cwnd`` record (each change, exact), else
    from ``cc`` records and data segments sent with a ``cwnd`` field (older traces);
    ssthresh is carried forward."""
    out: list[tuple[float, str, int | None, int | None]] = []
    if any(r["ev"] == "cwnd" for r in run.records):
        return [
            (float(r["t"]), str(r.get("conn")), r.get("cwnd"), r.get("ssthresh"))
            for r in run.records
            if r["ev"] == "cwnd"
        ]
    ssthresh: dict[str, int | None] = {}
    for r in run.records:
        conn = str(r.get("conn"))
        if r["ev"] == "cc":
            ssthresh[conn] = r.get("ssthresh")
            out.append((float(r["t"]), conn, r.get("cwnd"), r.get("ssthresh")))
        elif r["ev"] == "seg" and r.get("dir") == "out":
            cwnd = r.get("cwnd")
            if cwnd is None or (out and out[-1][1] == conn and out[-1][2] == cwnd):
                continue
            out.append((float(r["t"]), conn, cwnd, ssthresh.get(conn)))
    return out


def rtt_series(run: Run) -> list[tuple[float, str, str, float | None, float | None, float]]:
    """(t, conn, kind, sample, srtt, rto): RTT samples, and RTO after each backoff."""
    out: list[tuple[float, str, str, float | None, float | None, float]] = []
    for r in run.records:
        if r["ev"] == "rtt":
            out.append(
                (
                    float(r["t"]),
                    str(r.get("conn")),
                    "sample",
                    r.get("sample"),
                    r.get("srtt"),
                    float(r["rto"]),
                )
            )
        elif r["ev"] == "timer" and r.get("timer") in ("rto", "persist"):
            rto = r.get("rto")
            if rto is not None:
                out.append(
                    (
                        float(r["t"]),
                        str(r.get("conn")),
                        f"{r['timer']}_backoff",
                        None,
                        None,
                        float(rto),
                    )
                )
    return out


#: BBR's states in plotting order (draft-ietf-ccwg-bbr §4.3), bottom to top.
BBR_STATES = (
    "ProbeRTT",
    "ProbeBW_DOWN",
    "ProbeBW_CRUISE",
    "ProbeBW_REFILL",
    "ProbeBW_UP",
    "Drain",
    "Startup",
)

RateRow = tuple[
    float, str, float, float, bool, str | None, float | None, float | None, float | None
]


def rate_series(run: Run) -> list[RateRow]:
    """(t, conn, delivery_rate, pacing_rate, app_limited, bbr_state, bbr_max_bw, bbr_bw,
    bbr_min_rtt) from the ``rate`` records (once a round trip) and BBR's ``cc`` state
    changes; rates in bytes/s, BBR fields None for other algorithms."""
    out: list[RateRow] = []
    for r in run.records:
        if r["ev"] == "rate":
            state, app_limited = r.get("bbr_state") or None, bool(r.get("app_limited"))
        elif r["ev"] == "cc" and r.get("event") == "bbr_state":
            state, app_limited = r.get("bbr_state") or r.get("new"), False
        else:
            continue
        out.append(
            (
                float(r["t"]),
                str(r.get("conn")),
                float(r.get("delivery_rate") or 0),
                float(r.get("pacing_rate") or 0),
                app_limited,
                state,
                r.get("bbr_max_bw"),
                r.get("bbr_bw"),
                r.get("bbr_min_rtt"),
            )
        )
    return out


def _csv(rows: Iterable[Iterable[Any]], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def csv_texts(run: Run, conn: str | None = None) -> dict[str, str]:
    """The CSV files' contents, by file name."""
    out: dict[str, str] = {}
    ts = time_sequence(run, conn)
    rows: list[tuple[Any, ...]] = []
    if ts is not None:
        rows += [(t, "segment", a, b, k) for t, a, b, k in ts.segments]
        rows += [(t, "ack", a, "", "") for t, a in ts.acks]
        rows += [(t, "window", a, "", "") for t, a in ts.window]
        rows += [(t, "sack", a, b, "") for t, a, b in ts.sacks]
        rows.sort(key=lambda x: x[0])
    out["timeseq.csv"] = _csv(rows, ["t", "what", "seq", "end", "kind"])
    out["cwnd.csv"] = _csv(congestion_series(run), ["t", "conn", "cwnd", "ssthresh"])
    out["rtt.csv"] = _csv(rtt_series(run), ["t", "conn", "kind", "sample", "srtt", "rto"])
    rates = rate_series(run)
    if rates:
        out["rate.csv"] = _csv(
            rates,
            [
                "t",
                "conn",
                "delivery_rate",
                "pacing_rate",
                "app_limited",
                "bbr_state",
                "bbr_max_bw",
                "bbr_bw",
                "bbr_min_rtt",
            ],
        )
    return out


# ------------------------------------------------------------------- matplotlib
def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _legend_outside(ax: Any) -> None:
    """The legend to the right of the axes, where it cannot cover a curve or a segment."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)


def timeseq_png(run: Run, conn: str | None = None, *, title: str = "") -> bytes | None:
    """The Stevens time-sequence graph as PNG bytes, or None (no data / no matplotlib)."""
    if not matplotlib_available():
        return None
    ts = time_sequence(run, conn)
    if ts is None or not ts.segments:
        return None
    fig = _figure(11, 5)
    ax = fig.add_subplot()
    colors = {
        "data": "black",
        "retransmit": "red",
        "lost": "black",
        "probe": "purple",
        "syn": "gray",
        "fin": "gray",
    }
    for kind, color in colors.items():
        pts = [(t, a, b) for t, a, b, k in ts.segments if k == kind]
        if not pts:
            continue
        label = {
            "data": "data segment",
            "retransmit": "retransmission (C18)",
            "lost": None,
            "probe": "zero-window probe (C4)",
            "syn": "SYN/FIN",
            "fin": None,
        }[kind]
        ax.vlines(
            [p[0] for p in pts],
            [p[1] for p in pts],
            [p[2] for p in pts],
            colors=color,
            linewidth=2 if kind == "retransmit" else 1.2,
            label=label,
        )
        ax.plot(
            [p[0] for p in pts],
            [p[2] for p in pts],
            linestyle="none",
            marker="_",
            color=color,
            markersize=6,
        )
    lost = [(t, b) for t, a, b, k in ts.segments if k == "lost"]
    if lost:
        ax.plot(
            [p[0] for p in lost],
            [p[1] for p in lost],
            linestyle="none",
            marker="x",
            color="red",
            markersize=9,
            label="lost in the network (C14)",
        )
    t_end = max(t for t, *_ in ts.segments)
    if ts.acks:
        xs = [t for t, _ in ts.acks if t <= t_end + 1] or [ts.acks[0][0]]
        ys = [a for t, a in ts.acks if t <= t_end + 1] or [ts.acks[0][1]]
        ax.step(xs, ys, where="post", color="green", label="ACK received (C1)")
        wx = [t for t, _ in ts.window if t <= t_end + 1]
        wy = [a for t, a in ts.window if t <= t_end + 1]
        if wx:
            ax.step(
                wx,
                wy,
                where="post",
                color="goldenrod",
                linestyle="--",
                label="window edge: ACK + window (C4)",
            )
    if ts.sacks:
        ax.vlines(
            [s[0] for s in ts.sacks],
            [s[1] for s in ts.sacks],
            [s[2] for s in ts.sacks],
            colors="tab:purple",
            linewidth=4,
            alpha=0.5,
            label="SACK block (RFC 2018)",
        )
    # Scale to the data: a large window edge (1 MiB by default) would squash the
    # segments into a line; past the top it is clipped and the legend still names it.
    top = max(b for _, _, b, _ in ts.segments)
    ax.set_ylim(-0.02 * top, top * 1.15)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("relative sequence number (bytes)")
    who = f"{run.role(ts.sender)} -> {run.role(ts.receiver)}"
    ax.set_title(title or f"time-sequence graph, {who}")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    return _png(fig)


def cwnd_rtt_png(run: Run, *, title: str = "") -> bytes | None:
    """cwnd/ssthresh (top) and RTT samples, SRTT, RTO (bottom) as PNG, or None."""
    if not matplotlib_available():
        return None
    cc = congestion_series(run)
    rtt = rtt_series(run)
    if not cc and not rtt:
        return None
    fig = _figure(11, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for conn in dict.fromkeys(c for _, c, _, _ in cc):
        pts = [(t, w, s) for t, c, w, s in cc if c == conn and w is not None]
        if not pts:
            continue
        who = run.role(conn_hosts(conn)[0])
        top.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=f"cwnd {who}")
        ss = [(p[0], p[2]) for p in pts if p[2] is not None and p[2] < 1 << 30]
        if ss:
            top.step(
                [p[0] for p in ss],
                [p[1] for p in ss],
                where="post",
                linestyle="--",
                label=f"ssthresh {who}",
            )
    top.set_ylabel("bytes")
    top.set_title(title or "congestion window (RFC 5681)")
    top.grid(True, alpha=0.3)
    if cc:
        _legend_outside(top)
    for conn in dict.fromkeys(c for _, c, *_ in rtt):
        who = run.role(conn_hosts(conn)[0])
        samples = [(t, s) for t, c, k, s, _, _ in rtt if c == conn and s is not None]
        if samples:
            bottom.plot(
                [p[0] for p in samples],
                [p[1] for p in samples],
                "o",
                markersize=3,
                label=f"RTT sample {who} (C2)",
            )
            srtt = [(t, v) for t, c, k, _, v, _ in rtt if c == conn and v is not None]
            bottom.plot([p[0] for p in srtt], [p[1] for p in srtt], label=f"SRTT {who}")
        rto = [(t, v) for t, c, _, _, _, v in rtt if c == conn]
        bottom.step(
            [p[0] for p in rto],
            [p[1] for p in rto],
            where="post",
            linestyle="--",
            label=f"RTO {who}",
        )
    bottom.set_yscale("log")
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("seconds")
    bottom.set_title("RTT and RTO (RFC 6298)")
    bottom.grid(True, alpha=0.3)
    if rtt:
        _legend_outside(bottom)
    return _png(fig)


def rate_png(run: Run, *, title: str = "") -> bytes | None:
    """Delivery and pacing rates with BBR's bandwidth estimates (top), its min-RTT
    estimate against the RTT samples (middle) and its state (bottom), or None when
    the trace has no ``rate`` records."""
    if not matplotlib_available():
        return None
    rates = rate_series(run)
    if not rates:
        return None
    fig = _figure(9, 7)
    top, mid, low = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.3])
    samples = rtt_series(run)
    peak = max(x[2] for x in rates)
    for conn in dict.fromkeys(c for _, c, *_ in rates):
        rows = [x for x in rates if x[1] == conn]
        if max(x[2] for x in rows) < 0.01 * peak:
            continue  # a receiver: (almost) nothing delivered, nothing to show
        local = conn.split(">")[0]
        who = f"{run.role(local.rsplit(':', 1)[0])} :{local.rsplit(':', 1)[-1]}"
        t = [x[0] for x in rows]
        top.plot(t, [x[2] * 8e-6 for x in rows], label=f"delivery rate {who}")
        top.step(
            t, [x[3] * 8e-6 for x in rows], where="post", linestyle="--", label=f"pacing rate {who}"
        )
        bw = [(x[0], x[6] * 8e-6) for x in rows if x[6]]
        if bw:
            top.step(
                [p[0] for p in bw],
                [p[1] for p in bw],
                where="post",
                label=f"BBR max bandwidth {who}",
            )
        mrtt = [(x[0], x[8] * 1e3) for x in rows if x[8]]
        if mrtt:
            mid.step(
                [p[0] for p in mrtt], [p[1] for p in mrtt], where="post", label=f"BBR min RTT {who}"
            )
        rt = [(x[0], x[3] * 1e3) for x in samples if x[1] == conn and x[3] is not None]
        if rt:
            mid.plot(
                [p[0] for p in rt],
                [p[1] for p in rt],
                ".",
                markersize=2,
                alpha=0.4,
                label=f"RTT sample {who}",
            )
        st = [(x[0], BBR_STATES.index(x[5])) for x in rows if x[5] in BBR_STATES]
        if st:
            low.step([p[0] for p in st], [p[1] for p in st], where="post", label=who)
    top.set_ylabel("Mbit/s")
    top.set_title(title or "delivery rate, pacing rate and BBR's estimates (draft-ietf-ccwg-bbr)")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=7)
    mid.set_ylabel("ms")
    mid.grid(True, alpha=0.3)
    mid.legend(loc="upper left", fontsize=7)
    low.set_yticks(range(len(BBR_STATES)), BBR_STATES, fontsize=7)
    low.set_xlabel("time (s)")
    low.grid(True, alpha=0.3)
    return _png(fig)


def write_plots(
    run: Run, outdir: str | Path, *, conn: str | None = None, title: str = ""
) -> tuple[list[Path], str]:
    """Write the CSV files and, with matplotlib, ``timeseq.png`` and ``cwnd_rtt.png``.

    Returns the files written and a message ('' when the PNGs were written,
    :data:`NO_MATPLOTLIB` without matplotlib, or why a PNG was skipped).
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in csv_texts(run, conn).items():
        p = out / name
        p.write_text(text, encoding="utf-8")
        written.append(p)
    if not matplotlib_available():
        return written, NO_MATPLOTLIB
    notes = []
    pngs = [
        ("timeseq.png", timeseq_png(run, conn, title=title)),
        ("cwnd_rtt.png", cwnd_rtt_png(run)),
    ]
    if rate_series(run):
        pngs.append(("rate.png", rate_png(run)))
    for name, data in pngs:
        if data is None:
            notes.append(f"{name}: nothing to plot")
            continue
        p = out / name
        p.write_bytes(data)
        written.append(p)
    return written, "; ".join(notes)
