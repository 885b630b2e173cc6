"""Loading a trace (``docs/trace.md``): JSON lines in, checked records out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, cast

from .schema import KINDS, TraceRecord

#: The fields each kind of record must have for the narration (docs/trace.md).
REQUIRED: dict[str, tuple[str, ...]] = {
    "seg": ("conn", "dir", "flags", "seq", "ack", "len", "win"),
    "state": ("conn", "old", "new"),
    "timer": ("timer",),
    "rtt": ("sample", "srtt", "rttvar", "rto"),
    "net_drop": ("src", "dst"),
    "error": ("errno", "message"),
    "ca_state": ("conn", "old", "new", "trigger"),
    "open": ("conn",),
}


_CAPTURE_MAGIC = (
    b"\x0a\x0d\x0d\x0a",
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
)


def load_trace(source: str | Path | IO[str]) -> list[TraceRecord]:
    """Read a JSON-lines trace (``--trace FILE``); blank lines are skipped, and so are
    records of kinds this version does not know (:data:`~.schema.KINDS`), which no
    reader could use.

    ValueError, with a line number, for anything that is not a trace: a packet
    capture, a binary file, a line that is not JSON or a record without the fields
    its kind needs (:data:`REQUIRED`).  Only those are checked: a reader takes any
    other field with ``.get()`` (an older trace may lack it)."""
    if isinstance(source, str | Path):
        with open(source, "rb") as raw:
            head = raw.read(4)
        if head in _CAPTURE_MAGIC:
            kind = "pcapng" if head == _CAPTURE_MAGIC[0] else "pcap"
            raise ValueError(
                f"this is a packet capture ({kind}), not a trace: explain and "
                "report read the JSON lines written by --trace (open captures "
                "with Wireshark or tshark)"
            )
        with open(source, encoding="utf-8") as fh:
            try:
                return load_trace(fh)
            except UnicodeDecodeError:
                raise ValueError(
                    "not a text file: a trace is JSON lines, as written by --trace"
                ) from None
    out: list[TraceRecord] = []
    for n, line in enumerate(source, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n}: not JSON: {exc.msg}") from None
        if not isinstance(rec, dict) or "ev" not in rec or "t" not in rec:
            raise ValueError(f"line {n}: not a trace record (needs 't' and 'ev')")
        if not isinstance(rec["t"], int | float):
            raise ValueError(f"line {n}: 't' must be a number of seconds")
        missing = [k for k in REQUIRED.get(str(rec["ev"]), ()) if rec.get(k) is None]
        if missing:
            raise ValueError(
                f"line {n}: a {rec['ev']!r} record without "
                f"{', '.join(repr(k) for k in missing)} (see docs/trace.md)"
            )
        if isinstance(rec["ev"], str) and rec["ev"] in KINDS:
            # A kind this version knows, with the fields the readers index.
            out.append(cast(TraceRecord, rec))
    return out
