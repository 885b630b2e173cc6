"""The target's packets: matched against ``>`` lines field by field, option by option,
byte by byte, and in time.

Without ``--strict_segments`` several consecutive segments may together match one
line (as upstream allows for TSO); every payload byte must be the byte the
application wrote at that stream offset.
"""

from __future__ import annotations

import struct

from ..tcp.seq import MASK
from ..wire.segment import ACK, CWR, FIN, PSH, SYN
from .features import needs_feature
from .parser import (
    ECN_CODEPOINTS,
    Event,
    PacketSpec,
    TcpOption,
    TimeKind,
)
from .results import OutRecord, ScriptFailure
from .scheduling import Scheduling
from .state import (
    KIND_NAME,
    OPT_KIND,
    Sched,
    Sent,
    flags_text,
    spec_flag_bits,
    usecs,
)


class Outbound(Scheduling):
    """Matching what the target sent against the script's ``>`` lines."""

    # ----------------------------------------------------------- outbound
    def _outbound(self, ev: Event, pkt: PacketSpec, sched: Sched) -> None:
        kind = ev.time.kind
        last_us = self._last_us()
        if kind is TimeKind.ANY:
            deadline = self.now_us
        else:
            tol = self._tolerance(sched.start_us, last_us)
            deadline = (sched.end_us if sched.end_us is not None else sched.start_us) + tol
        horizon = max(deadline, self.now_us) + self.wait_horizon_us
        expected_desc = f"{self._sched_text(ev, sched)} {pkt.describe()}"
        if not self.outq and not self._step_until_sent(horizon):
            raise ScriptFailure(
                ev.line,
                "error handling packet: Timed out waiting for packet",
                expected=expected_desc,
                actual=f"nothing sent (waited until {usecs(self.now_us)} s)",
            )
        frags = [self.outq.popleft()]
        if frags[0].seg.flags & SYN and "S" in pkt.flags:
            self.local_isn_live = frags[0].seg.seq
            self.local_isn_script = pkt.seq
        total = len(frags[0].payload)
        while total < pkt.length and not self.strict_segments:
            if not self.outq and not self._step_until_sent(horizon):
                break
            nxt = self.outq[0]
            why = self._fragment_problem(frags[-1], nxt, total, pkt.length)
            if why:
                raise ScriptFailure(
                    ev.line,
                    f"error handling packet: cannot aggregate outbound segments: {why}",
                    expected=expected_desc,
                    actual="\n".join(self._sent_text(s) for s in [*frags, nxt]),
                )
            frags.append(self.outq.popleft())
            total += len(nxt.payload)
        actual_desc = "\n".join(self._sent_text(s) for s in frags)
        problem = self._compare(ev, pkt, frags, total)
        if problem is None:
            err = self._verify_time(kind, sched, frags[0].time_us, last_us, "outbound packet")
            if err:
                problem = err
        if problem is not None:
            raise ScriptFailure(
                ev.line,
                f"error handling packet: {problem}",
                expected=expected_desc,
                actual=actual_desc,
            )
        self.now_us = max(self.now_us, frags[-1].time_us)
        if self.record:
            self.result.outbound.extend(self._out_record(s) for s in frags)

    def _out_record(self, s: Sent) -> OutRecord:
        """``s`` in script terms (TS val on the script clock, from the first one matched)."""
        seg = s.seg
        opts = self._options_text(s)
        ack = (seg.ack - self.remote_shift) & MASK if seg.flags & ACK else 0
        return (
            s.time_us,
            flags_text(seg.flags),
            (seg.seq - self._local_offset()) & MASK,
            ack,
            len(s.payload),
            seg.window,
            opts,
        )

    def _sched_text(self, ev: Event, sched: Sched) -> str:
        if ev.time.kind is TimeKind.ANY:
            return "(any time)"
        if sched.end_us is not None:
            return f"{usecs(sched.start_us)}~{usecs(sched.end_us)}"
        return usecs(sched.start_us)

    def _fragment_problem(self, prev: Sent, cur: Sent, total: int, need: int) -> str | None:
        a, b = prev.seg, cur.seg
        loose = PSH | FIN | CWR
        if b.flags & SYN or a.flags & FIN:
            return "a SYN or FIN cannot be followed by more data"
        if (a.flags ^ b.flags) & ~loose:
            return f"flags {flags_text(a.flags)} then {flags_text(b.flags)}"
        if (a.seq + len(prev.payload)) & MASK != b.seq:
            return "segments are not contiguous"
        if (
            a.ack != b.ack
            or a.window != b.window
            or a.src_port != b.src_port
            or a.dst_port != b.dst_port
        ):
            return "headers differ (ack, window or ports)"
        if [k for k, _ in prev.options] != [k for k, _ in cur.options]:
            return "option layouts differ"
        if total + len(cur.payload) < need and len(cur.payload) != len(prev.payload):
            return (
                f"fragment payload: expected {len(prev.payload)} bytes vs actual "
                f"{len(cur.payload)} bytes"
            )
        return None

    def _compare(self, ev: Event, pkt: PacketSpec, frags: list[Sent], total: int) -> str | None:
        if total != pkt.length:
            return f"live packet payload: expected {pkt.length} bytes vs actual {total} bytes"
        first = frags[0].seg
        bits = first.flags
        for f in frags[1:]:
            bits |= f.seg.flags & (PSH | FIN)
        if pkt.src_port is not None and first.src_port != pkt.src_port:
            return _field("tcp_src_port", pkt.src_port, first.src_port)
        if pkt.dst_port is not None and first.dst_port != pkt.dst_port:
            return _field("tcp_dst_port", pkt.dst_port, first.dst_port)
        want_bits = spec_flag_bits(pkt.flags)
        if bits != want_bits:
            return (
                f"live packet field tcp_flags: expected: {pkt.flags or '-'} vs actual: "
                f"{flags_text(bits)}"
            )
        seq = (first.seq - self._local_offset()) & MASK
        if seq != pkt.seq:
            return _field("tcp_seq", pkt.seq, seq)
        if bits & ACK:
            ack = (first.ack - self.remote_shift) & MASK
            if pkt.ack is not None and ack != pkt.ack:
                return _field("tcp_ack_seq", pkt.ack, ack)
        elif first.ack != (pkt.ack or 0):
            return _field("tcp_ack_seq", pkt.ack or 0, first.ack)
        if pkt.ecn is not None:
            want = ECN_CODEPOINTS[pkt.ecn]
            got = first.ecn & 3
            if (want == -1 and got not in (1, 2)) or (want >= 0 and got != want):
                names = {v: k for k, v in ECN_CODEPOINTS.items()}
                return (
                    f"live packet field ip_ecn: expected: {pkt.ecn} vs actual: "
                    f"{names.get(got, got)}"
                )
        if pkt.win is not None and first.window != pkt.win:
            return _field("tcp_window", pkt.win, first.window)
        if first.urgent != (pkt.urg or 0):
            return _field("tcp_urg_ptr", pkt.urg or 0, first.urgent)
        if pkt.options is not None:
            problem = self._compare_options(pkt.options, frags[0])
            if problem:
                return problem
        return self._check_content(frags)

    def _compare_options(self, want: tuple[TcpOption, ...], sent: Sent) -> str | None:
        got = sent.options
        want_text = "<" + ",".join(str(o) for o in want) + ">" if want else "no options"
        got_text = self._options_text(sent)
        got_text = f"<{got_text}>" if got_text else "no options"
        for o in want:
            if o.kind in ("FO", "FOEXP") and not self.fast_open:
                raise ScriptFailure(
                    self._line(), needs_feature(f"the {o.kind} option", "TCP Fast Open")
                )
        if [OPT_KIND[o.kind] for o in want] != [k for k, _ in got]:
            return f"bad outbound TCP options: expected {want_text} vs actual {got_text}"
        for o, (_kind, data) in zip(want, got, strict=True):
            if o.kind == "mss":
                if len(data) != 2 or struct.unpack("!H", data)[0] != o.value:
                    return (
                        f"bad value outbound TCP option mss: expected {want_text} vs "
                        f"actual {got_text}"
                    )
            elif o.kind == "wscale":
                if len(data) != 1 or data[0] != o.value:
                    return (
                        f"bad value outbound TCP option wscale: expected {want_text} vs "
                        f"actual {got_text}"
                    )
            elif o.kind == "sack":
                blocks = self._sack_blocks(data)
                if blocks != list(o.blocks):
                    return (
                        f"bad value outbound TCP option sack: expected {want_text} vs "
                        f"actual {got_text}"
                    )
            elif o.kind in ("FO", "FOEXP"):
                cookie = data[2:] if o.kind == "FOEXP" else data
                if o.cookie and cookie != o.cookie:
                    return (
                        f"bad value outbound TCP option {o.kind}: expected {want_text} vs "
                        f"actual {got_text}"
                    )
            elif o.kind == "TS":
                if len(data) != 8:
                    return "bad outbound TCP timestamp option length"
                val, ecr = struct.unpack("!II", data)
                if self.ts_base is None:
                    self.ts_base = (o.val, val)
                self.ts_map[o.val] = val
                mapped = (self.ts_base[0] + (val - self.ts_base[1])) & MASK
                diff = (mapped - o.val) & MASK
                if diff >= 1 << 31:
                    diff -= 1 << 32
                if self.ts_tick_us and abs(diff) * self.ts_tick_us > self.tolerance_us:
                    return (
                        f"bad outbound TCP timestamp value, tolerance {self.tolerance_us}: "
                        f"expected TS val {o.val} vs actual {mapped} (script clock)"
                    )
                if self.check_ts_ecr and ecr != o.ecr:
                    return f"bad outbound TCP timestamp ecr: expected {o.ecr} vs actual {ecr}"
        return None

    def _sack_blocks(self, data: bytes) -> list[tuple[int, int]]:
        edges = [struct.unpack_from("!I", data, i)[0] for i in range(0, len(data) - 3, 4)]
        sh = self.remote_shift
        return [
            ((edges[i] - sh) & MASK, (edges[i + 1] - sh) & MASK)
            for i in range(0, len(edges) - 1, 2)
        ]

    def _check_content(self, frags: list[Sent]) -> str | None:
        """Every payload byte must be the byte the application wrote at that position."""
        layer = self._layer
        for f in frags:
            if not f.payload:
                continue
            conn = self._stack.find(self.remote_ip, f.seg.dst_port, f.seg.src_port)
            if conn is None:
                continue
            written = layer.written.get(conn, bytearray())
            off = (f.seg.seq - conn.iss - 1) & MASK
            want = bytes(written[off : off + len(f.payload)])
            if want != f.payload:
                return (
                    f"incorrect outbound data payload: the {len(f.payload)} bytes at stream "
                    f"offset {off} are not what the application wrote there"
                )
        return None

    def _options_text(self, sent: Sent) -> str:
        parts: list[str] = []
        for kind, data in sent.options:
            name = KIND_NAME.get(kind, f"opt{kind}")
            if kind == 2 and len(data) == 2:
                parts.append(f"mss {struct.unpack('!H', data)[0]}")
            elif kind == 3 and len(data) == 1:
                parts.append(f"wscale {data[0]}")
            elif kind == 5:
                parts.append("sack " + " ".join(f"{a}:{b}" for a, b in self._sack_blocks(data)))
            elif kind == 8 and len(data) == 8:
                val, ecr = struct.unpack("!II", data)
                if self.ts_base is not None:
                    val = (self.ts_base[0] + val - self.ts_base[1]) & MASK
                parts.append(f"TS val {val} ecr {ecr}")
            else:
                parts.append(name)
        return ",".join(parts)

    def _sent_text(self, s: Sent) -> str:
        seg = s.seg
        seq = (seg.seq - self._local_offset()) & MASK
        n = len(s.payload)
        ecn = {1: "[ect1] ", 2: "[ect0] ", 3: "[ce] "}.get(seg.ecn & 3, "")
        text = f"{usecs(s.time_us)} {ecn}{flags_text(seg.flags)} {seq}:{(seq + n) & MASK}({n})"
        if seg.flags & ACK:
            text += f" ack {(seg.ack - self.remote_shift) & MASK}"
        text += f" win {seg.window}"
        opts = self._options_text(s)
        if opts:
            text += f" <{opts}>"
        return text


def _field(name: str, expected: int, actual: int) -> str:
    return (
        f"live packet field {name}: expected: {expected} ({expected:#x}) vs actual: "
        f"{actual} ({actual:#x})"
    )
