"""Tracing for :class:`~synack.tcp.connection.Connection`: one flat dict per event, typed
in :mod:`synack.trace.schema` (docs/trace.md)."""

from __future__ import annotations

from typing import Any, Literal

from ..trace.schema import SegRecord
from ..wire.segment import SYN, URG, Segment
from .conn_base import ConnBase
from .loss_state import CA_RECOVERY
from .timers import KINDS


class TraceMixin(ConnBase):
    """Trace records."""

    __slots__ = ()

    def _trace(self, now: float, ev: str, **fields: Any) -> None:
        if self._tr is not None:
            fields["t"] = now
            fields["ev"] = ev
            fields["conn"] = self.name
            rec: Any = fields  # any kind: tests/trace/test_trace_schema.py checks them
            self._tr(rec)

    def _trace_changes(self, now: float) -> None:
        """Trace timers set or cancelled and congestion-window changes since the last
        call (issue: every timer set and every cwnd/ssthresh change is in the trace)."""
        seen = self._traced
        if seen is None:  # created on first use: untraced connections never need it
            seen = self._traced = {}
        timers = self._timers
        for name in KINDS:
            at = timers.get(name)
            if seen.get(name) != at:
                seen[name] = at
                if at is None:
                    self._trace(now, "timer_cancel", timer=name)
                else:
                    self._trace(
                        now, "timer_set", timer=name, at=at, after=at - now, rto=self.rtt.rto
                    )
        cc = self._cc
        if seen.get("cwnd") != cc.cwnd or seen.get("ssthresh") != cc.ssthresh:
            seen["cwnd"], seen["ssthresh"] = cc.cwnd, cc.ssthresh
            self._trace(
                now,
                "cwnd",
                cwnd=cc.cwnd,
                ssthresh=cc.ssthresh,
                slow_start=cc.in_slow_start,
                in_recovery=self._ls.state is CA_RECOVERY,
                ca_state=str(self._ls.state),
                pipe=self._pipe(),
            )

    def _trace_seg(
        self, now: float, direction: Literal["in", "out"], seg: Segment, why: str
    ) -> None:
        assert self._tr is not None
        rec: SegRecord = {
            "t": now,
            "ev": "seg",
            "dir": direction,
            "conn": self.name,
            "flags": seg.flags,
            "seq": seg.seq,
            "ack": seg.ack,
            "len": len(seg.payload),
            "win": seg.window,
            "mss": seg.mss,
            "why": why,
            "state": self.state.value,
            "iss": self.iss,
            "irs": self.irs,
        }
        shift = (
            0 if seg.flags & SYN else (self.rcv_wscale if direction == "out" else self.snd_wscale)
        )
        rec["wnd"] = seg.window << shift  # the window in bytes (RFC 7323 §2.3)
        if seg.sack_blocks:
            rec["sack"] = [list(b) for b in seg.sack_blocks]
        if seg.tsval is not None:
            rec["tsval"], rec["tsecr"] = seg.tsval, seg.tsecr
        if seg.wscale is not None:
            rec["wscale"] = seg.wscale
        if seg.sack_permitted:
            rec["sack_permitted"] = True
        if seg.ecn:
            rec["ecn"] = seg.ecn
        if seg.flags & URG:
            rec["urg"] = seg.urgent
        if direction == "out" and seg.payload:
            rec["cwnd"] = self._cc.cwnd
        self._tr(rec)
