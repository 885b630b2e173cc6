"""A hostile receiver cannot fragment the sender's scoreboard (issue #13 fault 8,
CVE-2019-11478 "SACK slowness"; RFC 2018 §8, RFC 6675 §5).

The attack: with a window of data in flight the peer SACKs every other byte,
three blocks per duplicate ACK.  Splitting the sender's records at every block
edge made one record per byte (66,607 records, 8.0 MB for 64 KB in flight).
The scoreboard now marks SACKed data only in whole MSS pieces of what was sent
(Linux's tcp_match_skb_to_sack()), so records stay proportional to the segments
in flight.  Run with ``-s`` (or ``python tests/tcp/test_sack_scoreboard_bound.py``
for the 1 MB row too) for the figures quoted in docs/security.md.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

from helpers.crafted import D0, MSS_TS, U0
from helpers.modern import cfg, established
from synack.tcp import scoreboard


def sack_every_other_byte(inflight: int) -> dict[str, Any]:
    """Send ``inflight`` bytes (whole segments), then SACK every other byte of them,
    three blocks per duplicate ACK, then acknowledge everything.  Returns the records
    and the tracemalloc bytes the scoreboard's code allocated and still holds then."""
    nseg = -(-inflight // MSS_TS)
    tcb = established(
        cfg(initial_window=nseg, snd_buf=max(1 << 20, 2 * inflight), rack=False, tlp=False)
    )
    conn = tcb.conn
    notes = tcb.trace
    conn._tr = lambda rec: notes.append(rec) if rec["ev"] == "note" else None  # notes only
    data = bytes(nseg * MSS_TS)
    assert conn.send(data) == len(data)
    conn.segments_to_send(1.0)
    assert conn.info()["unacked"] == len(data)
    sent_records = len(conn._sb)  # white-box: the scoreboard is private
    gc.collect()
    tracemalloc.start()
    try:
        now = 1.0
        edges = range(U0 + 1, U0 + len(data) - 1, 2)  # [U0+1, U0+2), [U0+3, U0+4), ...
        blocks = [(a, a + 1) for a in edges]
        for i in range(0, len(blocks), 3):
            now += 1e-6
            conn.receive(
                tcb.peer(D0, U0, t=now, sack_blocks=tuple(reversed(blocks[i : i + 3]))), now
            )
            conn.segments_to_send(now)
        gc.collect()
        # What the scoreboard's own code allocated and still holds (records, their list,
        # the SACKed-range map); the test's trace and segment logs are not counted.
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, scoreboard.__file__)]
        )
        held = sum(st.size for st in snap.statistics("filename"))
        records = len(conn._sb)
    finally:
        tracemalloc.stop()
    return {
        "inflight": len(data),
        "segments": sent_records,
        "sack_blocks": len(blocks),
        "records": records,
        "bytes_held": held,
        "refused": conn.stats.full().get("sack_splits_refused", 0),
        "tcb": tcb,
    }


def test_sack_every_other_byte_does_not_fragment_the_scoreboard() -> None:
    """CVE-2019-11478 / RFC 2018 §8: SACK is advisory, so the sender may ignore the parts
    of a block that would cut its records below one MSS.  64 KB in flight, SACKed every
    other byte: the records stay within twice the segments sent and the memory they take
    within a few hundred KB (it was 66,607 records and 8.0 MB); the refusals are
    counted and traced once; the connection still completes."""
    r = sack_every_other_byte(64 * 1024)
    print(
        "\nFIGURES sack-fragmentation: " + " ".join(f"{k}={v}" for k, v in r.items() if k != "tcb")
    )
    assert r["records"] <= 2 * r["segments"], r
    assert r["bytes_held"] < 256 << 10, r
    tcb = r["tcb"]
    conn = tcb.conn
    assert conn.stats["sack_splits_refused"] > 0
    notes = [
        e
        for e in tcb.trace
        if e.get("ev") == "note" and "SACK" in e.get("text", "") and "split" in e.get("text", "")
    ]
    assert len(notes) == 1, notes
    tcb.feed(tcb.peer(D0, U0 + r["inflight"], t=2.0), 2.0)
    assert len(conn._sb) == 0 and conn.info()["unacked"] == 0


if __name__ == "__main__":  # the figures for docs/security.md, 1 MB row included
    for size in (64 * 1024, 1 << 20) if len(sys.argv) < 2 else map(int, sys.argv[1:]):
        r = sack_every_other_byte(size)
        print(" ".join(f"{k}={v}" for k, v in r.items() if k != "tcb"), flush=True)
