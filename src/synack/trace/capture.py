"""Packet captures: pcap and pcapng writers, a simulated-network tap, trace replay.

Two file formats, both with ``LINKTYPE_RAW`` (101: every record is a bare
IPv4 or IPv6 packet, no link header), so Wireshark and ``tshark`` open them as is:

* classic pcap (``.pcap``): microsecond timestamps, no annotations;
* pcapng (``.pcapng``): one Enhanced Packet Block per packet carrying an
  ``opt_comment`` (pcapng §4.3 and §3.5) with synack's own reading of the
  packet, for example ``retransmission: RTO fired, backoff 2`` or ``dropped
  by the simulated network (loss)``, and an ``epb_flags`` direction.

:func:`open_capture` picks the format from the file name.  Any link (the
simulated network, a TUN device) can feed a writer through the generic
``record(packet, t, comment)`` call; :class:`NetworkCapture` is the tap for
:class:`synack.sim.Network` that also writes the comments, by matching each
packet with the trace record the sending connection wrote a moment before
(docs/trace.md).  :func:`packets_from_trace` rebuilds packets from a trace
alone (payload bytes are not traced, so they are zeros), which turns the trace
of any run, simulated or real, into a capture.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from ..tcp.seq import MASK
from ..wire.errors import WireError
from ..wire.ipv4 import ip_to_bytes, ip_to_str
from ..wire.ipv6 import split_endpoint
from ..wire.packet import decode_ip_tcp, encode_ip_tcp
from ..wire.segment import ACK, FIN, RST, SYN, Segment
from .schema import SegRecord, TimerRecord, TraceRecord

__all__ = [
    "LINKTYPE_RAW",
    "Annotator",
    "CaptureWriter",
    "MemoryWriter",
    "NetworkCapture",
    "PcapWriter",
    "PcapngWriter",
    "open_capture",
    "packets_from_trace",
    "write_trace_capture",
]

LINKTYPE_RAW = 101  # tcpdump.org link-layer header types: raw IPv4/IPv6

#: epb_flags direction values (pcapng §4.3.1): inbound 1, outbound 2.
INBOUND, OUTBOUND = 1, 2


class CaptureWriter(Protocol):
    """What every capture sink offers: ``record`` one packet, then ``close``."""

    def record(
        self, packet: bytes, t: float, comment: str | None = None, *, direction: int | None = None
    ) -> None:
        """Write one raw IP ``packet`` seen at time ``t`` (seconds)."""

    def close(self) -> None:
        """Flush and close the file (if this writer opened it)."""


class _FileSink:
    """Shared file handling: a path (opened and closed here) or a binary file object."""

    def __init__(self, dest: str | Path | IO[bytes]) -> None:
        if isinstance(dest, str | Path):
            self._fh: IO[bytes] = open(dest, "wb")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._fh = dest
            self._owned = False
        self.count = 0
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._fh.flush()
        if self._owned:
            self._fh.close()

    def __enter__(self) -> _FileSink:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _ts_parts(t: float, epoch: float, per_second: int) -> tuple[int, int]:
    units = round((epoch + t) * per_second)
    if units < 0:
        raise ValueError(f"timestamp before the epoch: {t!r}")
    return divmod(units, per_second)


class PcapWriter(_FileSink):
    """Classic libpcap file, LINKTYPE_RAW, microsecond timestamps.

    ``epoch`` is added to every ``t`` (virtual time starts at 0: 1970-01-01).
    Comments are accepted and ignored: the classic format has no place for them.
    """

    def __init__(
        self, dest: str | Path | IO[bytes], *, snaplen: int = 262144, epoch: float = 0.0
    ) -> None:
        super().__init__(dest)
        self.snaplen = snaplen
        self.epoch = epoch
        self._fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))

    def record(
        self, packet: bytes, t: float, comment: str | None = None, *, direction: int | None = None
    ) -> None:
        sec, usec = _ts_parts(t, self.epoch, 1_000_000)
        data = bytes(packet[: self.snaplen])
        self._fh.write(struct.pack("<IIII", sec, usec, len(data), len(packet)))
        self._fh.write(data)
        self.count += 1


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


class PcapngWriter(_FileSink):
    """pcapng file (draft-ietf-opsawg-pcapng): one section, one LINKTYPE_RAW interface.

    Each packet is an Enhanced Packet Block with microsecond timestamps (the
    interface's default ``if_tsresol``), an optional ``opt_comment`` and an
    optional ``epb_flags`` direction (:data:`INBOUND`/:data:`OUTBOUND`).
    """

    def __init__(
        self,
        dest: str | Path | IO[bytes],
        *,
        snaplen: int = 262144,
        epoch: float = 0.0,
        interface: str = "synack",
        application: str = "synack",
    ) -> None:
        super().__init__(dest)
        self.snaplen = snaplen
        self.epoch = epoch
        shb_opts = _option(4, application.encode()) + _option(0, b"")
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts
        self._fh.write(_block(0x0A0D0D0A, shb))
        idb_opts = _option(2, interface.encode()) + _option(0, b"")
        self._fh.write(_block(1, struct.pack("<HHI", LINKTYPE_RAW, 0, snaplen) + idb_opts))

    def record(
        self, packet: bytes, t: float, comment: str | None = None, *, direction: int | None = None
    ) -> None:
        sec, usec = _ts_parts(t, self.epoch, 1_000_000)
        units = sec * 1_000_000 + usec
        data = bytes(packet[: self.snaplen])
        body = struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(data), len(packet))
        body += data + b"\0" * ((-len(data)) % 4)
        opts = b""
        if comment:
            opts += _option(1, comment.encode("utf-8"))
        if direction:
            opts += _option(2, struct.pack("<I", direction & 3))
        if opts:
            body += opts + _option(0, b"")
        self._fh.write(_block(6, body))
        self.count += 1


class MemoryWriter:
    """A capture sink that keeps ``(t, packet, comment, direction)`` in a list.

    :meth:`save` writes them later to any number of files (pcap and pcapng).
    """

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes, str | None, int | None]] = []
        self.count = 0

    def record(
        self, packet: bytes, t: float, comment: str | None = None, *, direction: int | None = None
    ) -> None:
        self.packets.append((t, bytes(packet), comment, direction))
        self.count += 1

    def close(self) -> None:
        """Nothing to flush."""

    def save(self, path: str | Path) -> int:
        """Write every packet to ``path`` (format by suffix); return the count."""
        w = open_capture(path)
        try:
            for t, packet, comment, direction in self.packets:
                w.record(packet, t, comment, direction=direction)
        finally:
            w.close()
        return w.count


def open_capture(path: str | Path, **kw: Any) -> PcapWriter | PcapngWriter:
    """A writer for ``path``: pcapng when it ends in ``.pcapng``/``.ntar``, else pcap."""
    suffix = Path(path).suffix.lower()
    if suffix in (".pcapng", ".ntar"):
        return PcapngWriter(path, **kw)
    return PcapWriter(path, **kw)


# --------------------------------------------------------------------- annotations
_Key = tuple[str, int, str, int, int, int, int, int]


def _conn_parts(name: str) -> tuple[str, int, str, int]:
    local, remote = name.split(">", 1)
    lip, lport = split_endpoint(local)
    rip, rport = split_endpoint(remote)
    return lip, lport, rip, rport


def _reverse(name: str) -> str:
    local, remote = name.split(">", 1)
    return f"{remote}>{local}"


def _seg_key(r: SegRecord) -> _Key:
    lip, lport, rip, rport = _conn_parts(r["conn"] or "")
    return (lip, lport, rip, rport, r["seq"], r["ack"], r["flags"], r["len"])


def _packet_key(src: str, dst: str, seg: Segment) -> _Key:
    return (src, seg.src_port, dst, seg.dst_port, seg.seq, seg.ack, seg.flags, len(seg.payload))


class Annotator:
    """Reads trace records in order and says, per outgoing segment, what it is.

    The comment is synack's own knowledge: the connection's ``why`` (retransmit,
    probe, RST reason), the timer that caused it, and what the receiver logged
    just before (held out-of-order data, a duplicate) for duplicate ACKs.
    """

    def __init__(self) -> None:
        self._timer: dict[str, TimerRecord] = {}
        self._trigger: dict[str, str] = {}
        self._last_ack: dict[str, tuple[int, int]] = {}
        self.pending: dict[_Key, deque[str]] = {}
        self.injected: dict[_Key, deque[str]] = {}

    def feed(self, r: TraceRecord) -> str | None:
        """Take one record; for an outgoing segment return its comment ('' if plain)."""
        conn = r.get("conn") or ""
        t = float(r.get("t", 0.0))
        if r["ev"] == "timer":
            self._timer[conn] = r.copy()
            return None
        if r["ev"] == "note" and "out-of-order" in str(r.get("text", "")):
            self._trigger[conn] = f"{t}:out-of-order data held (C14)"
            return None
        if r["ev"] == "note" and r.get("concept") == "C13":
            self._trigger[conn] = f"{t}:the peer's FIN came again in TIME-WAIT (C13)"
            return None
        if r["ev"] == "drop" and r.get("reason") in ("duplicate", "out_of_window"):
            what = (
                "a duplicate segment" if r["reason"] == "duplicate" else "an out-of-window segment"
            )
            self._trigger[conn] = f"{t}:answer to {what} (RFC 9293 §3.10.7.4)"
            return None
        if r["ev"] == "net_inject" and r.get("sport") is not None:
            # a TCP packet: sport comes with dport, flags, seq, ack and len (docs/trace.md)
            key = (
                r["src"],
                r["sport"],
                r["dst"],
                r["dport"],
                r["seq"],
                r["ack"],
                r["flags"],
                r["len"],
            )
            why = r.get("why") or "injected by the scenario"
            self.injected.setdefault(key, deque()).append(
                f"injected: not sent by any connection ({why})"
            )
            return None
        if r["ev"] != "seg" or r.get("dir") != "out":
            return None
        comment = self.comment(r, t, conn)
        self.pending.setdefault(_seg_key(r), deque()).append(comment)
        return comment

    def comment(self, r: SegRecord, t: float, conn: str) -> str:
        flags, why = r["flags"], r.get("why") or ""
        parts: list[str] = []
        if flags & RST:
            parts.append(f"RST: {why}" if why else "RST")
        elif why.startswith("retransmit"):
            what = (
                "SYN-ACK"
                if flags & SYN and flags & ACK
                else "SYN"
                if flags & SYN
                else "FIN"
                if flags & FIN and not r["len"]
                else ""
            )
            head = f"retransmission of {what}" if what else "retransmission"
            timer = self._timer.get(conn)
            detail = why.partition(": ")[2]
            if detail:
                parts.append(f"{head}: {detail}")
            elif timer is not None and timer.get("t") == t and timer.get("timer") == "rto":
                parts.append(
                    f"{head}: RTO fired, backoff {timer.get('retries', 1)} "
                    f"(next RTO {timer.get('rto', 0):g} s)"
                )
            elif flags & SYN:
                parts.append(f"{head}: the peer repeated its SYN, so ours was lost")
            else:
                parts.append(f"{head}: go-back after a timeout")
        elif why:
            parts.append(why)
        if r["win"] == 0 and not flags & RST:
            parts.append("zero window: receive buffer full (C4)")
        pure = not flags & (SYN | FIN | RST) and not r["len"] and flags & ACK
        trig = self._trigger.pop(conn, "")
        if pure and r["win"] and self._last_ack.get(conn) == (r["ack"], r["win"]):
            # RFC 5681 §2: same ACK number and window as the previous one, no data.
            why_dup = (
                trig.split(":", 1)[1]
                if trig and float(trig.split(":", 1)[0]) == t
                else "repeats the previous acknowledgement"
            )
            parts.append("duplicate ACK: " + why_dup)
        if flags & ACK and not flags & RST:
            self._last_ack[conn] = (r["ack"], r["win"])
        return "; ".join(parts)

    def take(self, key: _Key) -> str | None:
        """The comment for an outgoing packet with this key, or None if nobody traced it."""
        q = self.pending.get(key)
        if q:
            c = q.popleft()
            if not q:
                del self.pending[key]
            return c
        q = self.injected.get(key)
        if q:
            c = q.popleft()
            if not q:
                del self.injected[key]
            return c
        return None


_KIND_NOTE = {
    "duplicate": "duplicated by the simulated network",
    "corrupt": "corrupted by the simulated network (bits flipped)",
    "mark": "ECN CE mark set by the bottleneck",
}


class NetworkCapture:
    """A tap for :class:`synack.sim.Network` that writes every packet with a comment.

    ``point="send"`` records what the hosts put on the wire (like a capture on
    each sender's interface: packets the network then loses are in it, marked
    ``dropped by the simulated network``); ``point="deliver"`` records what the
    hosts received (after loss, reordering, duplication).  ``trace`` is the
    list the stacks' tracer appends to; without it packets carry no comments.
    """

    def __init__(
        self,
        writer: CaptureWriter,
        trace: Sequence[TraceRecord] | None = None,
        *,
        point: str = "send",
        local: Iterable[str] = (),
    ) -> None:
        if point not in ("send", "deliver"):
            raise ValueError(f"point must be 'send' or 'deliver', got {point!r}")
        self.writer = writer
        self.trace = trace
        self.point = point
        self.local = {ip_to_bytes(a) for a in local}
        self.annotator = Annotator()
        self._pos = 0
        self._pending: list[Any] | None = None  # [t, packet, [comments], direction]
        self._sent_notes: dict[int, tuple[bytes, str]] = {}
        self._flow_end: dict[tuple[bytes, bytes, bytes], int] = {}
        self.count = 0

    def __call__(
        self, now: float, kind: str, src: bytes, dst: bytes, packet: bytes, reason: str | None
    ) -> None:
        pend = self._pending
        if pend is not None and packet is pend[1]:
            if kind == "drop":
                pend[2].append(f"dropped by the simulated network ({reason})")
                return
            if kind in _KIND_NOTE and self.point == "send":
                pend[2].append(_KIND_NOTE[kind])
                return
        self._catch_up()
        self._flush()
        if kind == "send":
            comment = self._send_comment(src, dst, packet)
            if self.point == "send":
                self._pending = [now, packet, [comment] if comment else [], self._dir(src)]
            else:
                self._remember(packet, comment)
        elif kind == "deliver" and self.point == "deliver":
            notes = self._deliver_notes(src, dst, packet)
            self._pending = [now, packet, notes, self._dir(src)]
        elif kind in ("duplicate", "corrupt", "mark") and self.point == "deliver":
            prev = self._sent_notes.get(id(packet))
            if prev is not None and prev[0] is packet:
                note = f"{prev[1]}; {_KIND_NOTE[kind]}" if prev[1] else _KIND_NOTE[kind]
                self._sent_notes[id(packet)] = (packet, note)
            else:
                self._remember(packet, _KIND_NOTE[kind])

    def _dir(self, src: bytes) -> int | None:
        if not self.local:
            return None
        return OUTBOUND if src in self.local else INBOUND

    def _remember(self, packet: bytes, comment: str) -> None:
        notes = self._sent_notes
        notes[id(packet)] = (packet, comment)
        if len(notes) > 100_000:  # in-flight bound: forget the oldest
            for k in list(notes)[:50_000]:
                del notes[k]

    def _catch_up(self) -> None:
        trace = self.trace
        if trace is None:
            return
        while self._pos < len(trace):
            self.annotator.feed(trace[self._pos])
            self._pos += 1

    def _send_comment(self, src: bytes, dst: bytes, packet: bytes) -> str:
        try:
            seg = decode_ip_tcp(packet, verify_checksum=False)[2]
        except WireError:
            return ""
        c = self.annotator.take(_packet_key(ip_to_str(src), ip_to_str(dst), seg))
        if c is None and self.trace is not None:
            return "not sent by a traced connection (injected or stray)"
        return c or ""

    def _deliver_notes(self, src: bytes, dst: bytes, packet: bytes) -> list[str]:
        notes: list[str] = []
        prev = self._sent_notes.pop(id(packet), None)
        if prev is not None and prev[0] is packet and prev[1]:
            notes.append(prev[1])
        try:
            seg = decode_ip_tcp(packet, verify_checksum=False)[2]
        except WireError:
            return notes
        n = len(seg.payload)
        if n:
            flow = (src, dst, seg.src_port.to_bytes(2, "big") + seg.dst_port.to_bytes(2, "big"))
            end = self._flow_end.get(flow)
            seq_end = (seg.seq + n) & MASK
            if end is not None and (seq_end - end) & MASK >= 1 << 31:
                if not any(x.startswith("retransmission") for x in notes):
                    notes.append("out of order: later data arrived first (C14)")
            else:
                self._flow_end[flow] = seq_end
        return notes

    def _flush(self) -> None:
        pend = self._pending
        if pend is None:
            return
        self._pending = None
        t, packet, notes, direction = pend
        self.writer.record(packet, t, "; ".join(n for n in notes if n) or None, direction=direction)
        self.count += 1

    def close(self) -> None:
        """Write the last packet and close the writer."""
        self._catch_up()
        self._flush()
        self.writer.close()


# --------------------------------------------------------------------- from a trace
def packets_from_trace(records: Iterable[TraceRecord]) -> Iterator[tuple[float, bytes, str]]:
    """Rebuild ``(t, ip_packet, comment)`` for every segment a traced connection sent
    (IPv4 or IPv6 by the connection's addresses).

    Headers are exact (ports, seq, ack, flags, window, MSS option); the payload
    is ``len`` zero bytes, since traces do not keep data.  Segments the network
    lost (``net_drop``) and injected ones (``net_inject``) are included and
    commented.
    """
    ann = Annotator()
    out: list[list[Any]] = []
    for r in records:
        if r["ev"] == "seg" and r.get("dir") == "out":
            comment = ann.feed(r) or ""
            lip, lport, rip, rport = _conn_parts(r["conn"] or "")
            seg = Segment(
                lport,
                rport,
                r["seq"] & MASK,
                r["ack"] & MASK,
                r["flags"],
                r["win"],
                bytes(r["len"]),
                mss=r.get("mss"),
            )
            out.append(
                [
                    r["t"],
                    encode_ip_tcp(ip_to_bytes(lip), ip_to_bytes(rip), seg),
                    comment,
                    _packet_key(lip, rip, seg),
                ]
            )
        elif r["ev"] == "net_inject" and r.get("sport") is not None:
            seg = Segment(
                r["sport"],
                r["dport"],
                r["seq"] & MASK,
                r["ack"] & MASK,
                r["flags"],
                r.get("win", 0),
                bytes(r["len"]),
            )
            why = r.get("why") or "injected by the scenario"
            out.append(
                [
                    r["t"],
                    encode_ip_tcp(ip_to_bytes(r["src"]), ip_to_bytes(r["dst"]), seg),
                    f"injected: not sent by any connection ({why})",
                    _packet_key(r["src"], r["dst"], seg),
                ]
            )
        elif r["ev"] == "net_drop":
            for item in reversed(out):
                key = item[3]
                if (
                    key[0] == r.get("src")
                    and key[2] == r.get("dst")
                    and key[4] == r.get("seq")
                    and key[6] == r.get("flags")
                    and key[7] == r.get("len")
                    and (r.get("sport") is None or key[1] == r["sport"])
                ):
                    note = f"dropped by the simulated network ({r.get('reason')})"
                    item[2] = f"{item[2]}; {note}" if item[2] else note
                    break
        else:
            ann.feed(r)
    for t, packet, comment, _ in out:
        yield float(t), packet, comment


def write_trace_capture(records: Iterable[TraceRecord], path: str | Path) -> int:
    """Write :func:`packets_from_trace` to ``path`` (format by suffix); return the count."""
    w = open_capture(path)
    try:
        for t, packet, comment in packets_from_trace(records):
            w.record(packet, t, comment or None)
    finally:
        w.close()
    return w.count
