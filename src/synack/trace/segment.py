"""The one rendering of a segment, used by every view: timeline, explanation, labs,
diagrams and the report."""

from __future__ import annotations

from collections.abc import Iterable

from ..wire.segment import ACK, SYN, flags_str


def seg_label(
    flags: int,
    seq: int,
    ack: int | None,
    length: int,
    win: int | None = None,
    mss: int | None = None,
    urg: int | None = None,
    *,
    sack_ok: bool = False,
    wscale: int | None = None,
    ts: tuple[int, int] | None = None,
    sack: Iterable[tuple[int, int]] = (),
) -> str:
    """The one rendering of a segment, used by every view (timeline, explanation,
    labs, diagrams, report): ``[S] seq=0 len=0 win=65535 <mss 1460,sackOK,TS val 1
    ecr 0,wscale 7>``.  ``win`` is the window in bytes (scaled, RFC 7323 §2.3);
    ``ts`` is shown on SYNs only; ``sack`` blocks are given in the same numbering as
    ``ack`` (relative when it is); ``urg=N`` is the urgent pointer (RFC 9293 §3.8.5)."""
    parts = [f"[{flags_str(flags)}]", f"seq={seq}"]
    if flags & ACK and ack is not None:
        parts.append(f"ack={ack}")
    parts.append(f"len={length}")
    if win is not None:
        parts.append(f"win={win}")
    if urg is not None:
        parts.append(f"urg={urg}")
    opts = []
    if mss:
        opts.append(f"mss {mss}")
    if sack_ok:
        opts.append("sackOK")
    if ts is not None and flags & SYN:
        opts.append(f"TS val {ts[0]} ecr {ts[1]}")
    if wscale is not None:
        opts.append(f"wscale {wscale}")
    opts += [f"sack {a}-{b}" for a, b in sack]
    if opts:
        parts.append("<" + ",".join(opts) + ">")
    return " ".join(parts)
