"""The summary table ``synack serve`` prints when it stops: counts from the stack,
the link and the service, added up across ``--workers``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from ..links.impair import ImpairedLink
from ..services.runner import ServiceRunner
from .progress import print_summary
from .realnet import (
    NetSetup,
    drop_words,
)


def summary_counts(setup: NetSetup, runner: ServiceRunner, left: int) -> dict[str, int]:
    """Every number the summary shows, flat, so that workers' counts add up
    (:func:`merge_counts`): ``link:`` the device's counters, ``imp:`` the impairment's,
    ``drop:`` the stack's drop reasons."""
    host = setup.host
    t = runner.totals()
    counts: Counter[str] = Counter({k: v for k, v in t.items() if k != "active"})
    counts["left"] = left
    counts["timeouts"] = sum(int(r.conn.stats["rto_fired"]) for r in runner.records if r.conn)
    link = setup.tun.stats if setup.tun is not None else host.link.stats
    for k, v in link.items():
        counts[f"link:{k}"] += int(v)
    if isinstance(host.link, ImpairedLink):
        counts["impaired"] = 1
        for k, v in host.link.stats.items():
            counts[f"imp:{k}"] += int(v)
    st = host.stack.stats
    for k in (
        "icmp_echo_replies",
        "syncookies_sent",
        "syncookies_validated",
        "syncookies_rejected",
        "rst_sent",
    ):
        counts[k] = int(st[k])
    conn_stats = [r.conn.stats for r in runner.records if r.conn is not None]
    counts["challenge_acks"] = sum(int(c["challenge_acks"]) for c in conn_stats)
    counts["challenge_acks_suppressed"] = sum(
        int(c["challenge_acks_suppressed"]) for c in conn_stats
    )
    for k, v in st.items():
        if k.startswith("drop_") and v:
            counts[f"drop:{k[5:]}"] = int(v)
    return dict(counts)


def merge_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    """The workers' :func:`summary_counts` added up, key by key."""
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    if any(p.get("impaired") for p in parts):
        total["impaired"] = 1
    return dict(total)


def summary_rows(
    args: argparse.Namespace,
    c: dict[str, int],
    where: str,
    description: str,
    elapsed: float,
    recordings: list[tuple[str, str, str]],
    per_worker: list[dict[str, int]] | None = None,
) -> list[tuple[str, str, str]]:
    """The summary table's rows from (merged) counts; ``per_worker`` adds a row saying
    how the connections were spread."""
    g = c.get
    left = g("left", 0)
    rows = [
        ("service", f"{args.service} on {where}", description),
        (
            "connections",
            str(g("connections", 0)),
            f"{g('resets', 0)} reset by the peer, {g('errors', 0)} failed"
            + (f", {left} reset at exit" if left else ""),
        ),
    ]
    if per_worker is not None:
        rows.append(
            (
                "workers",
                str(len(per_worker)),
                "connections " + " + ".join(str(w.get("connections", 0)) for w in per_worker),
            )
        )
    rows += [
        ("bytes in", str(g("bytes_in", 0)), ""),
        ("bytes out", str(g("bytes_out", 0)), ""),
        ("retransmissions", str(g("retransmits", 0)), f"timeouts {g('timeouts', 0)}"),
    ]
    if args.service == "http":
        rows.append(("requests", str(g("requests", 0)), ""))
    link = {k[5:]: v for k, v in c.items() if k.startswith("link:")}
    rows.append(
        (
            "packets on the link",
            f"in {link.get('rx_packets', 0)}, out {link.get('tx_packets', 0)}",
            _drops(link),
        )
    )
    if g("impaired"):
        imp = Counter({k[4:]: v for k, v in c.items() if k.startswith("imp:")})
        rows.append(
            (
                "impairment",
                f"lost in {imp['in_lost']}, out {imp['out_lost']}",
                f"reordered {imp['in_reordered'] + imp['out_reordered']}, duplicated "
                f"{imp['in_duplicated'] + imp['out_duplicated']}, corrupted "
                f"{imp['in_corrupted'] + imp['out_corrupted']}",
            )
        )
    rows.append(("ping", f"{g('icmp_echo_replies', 0)} echo replies", ""))
    rows.append(
        (
            "SYN cookies",
            f"{g('syncookies_sent', 0)} sent",
            f"{g('syncookies_validated', 0)} validated, {g('syncookies_rejected', 0)} "
            "rejected (RFC 4987)",
        )
    )
    rows.append(
        (
            "challenge ACKs",
            f"{g('challenge_acks', 0)} sent",
            f"{g('challenge_acks_suppressed', 0)} held back by the rate limit (RFC 5961)",
        )
    )
    dropped = {k[5:]: v for k, v in c.items() if k.startswith("drop:") and v}
    rows.append(
        (
            "dropped by the stack",
            str(sum(dropped.values())),
            ", ".join(f"{drop_words(k)} {v}" for k, v in sorted(dropped.items())[:6]),
        )
    )
    rows.append(("resets sent to strangers", str(g("rst_sent", 0)), "C21, C24"))
    rows.append(("run time", f"{elapsed:.1f} s", ""))
    rows += recordings
    return rows


def print_serve_summary(
    args: argparse.Namespace,
    counts: dict[str, int],
    where: str,
    description: str,
    elapsed: float,
    recordings: list[tuple[str, str, str]],
    per_worker: list[dict[str, int]] | None = None,
) -> None:
    print_summary(
        summary_rows(args, counts, where, description, elapsed, recordings, per_worker),
        sys.stdout,
        title=f"synack serve {args.service}",
    )
    sys.stdout.flush()


def _drops(stats: Any) -> str:
    drops = {k: v for k, v in stats.items() if "drop" in k and v}
    return ", ".join(f"{_link_drop_words(k)} {v}" for k, v in sorted(drops.items()))


def _link_drop_words(key: str) -> str:
    """``tx_drop_full`` -> ``dropped going out (full)``."""
    way, _, why = key.partition("_drop_")
    where = {"tx": "dropped going out", "rx": "dropped coming in"}.get(way, key)
    return f"{where} ({why.replace('_', ' ')})" if why else key.replace("_", " ")
