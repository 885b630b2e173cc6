"""ICMP errors for :class:`~synack.tcp.connection.Connection`: destination unreachable
accepted only inside the window (RFC 5927 §4.1), hard and soft errors (RFC 1122
§4.2.3.9), path MTU discovery (RFC 1191; RFC 8201 for IPv6, whose Packet Too Big the
stack hands in as code 4)."""

from __future__ import annotations

import errno

from . import seq
from .conn_base import ConnBase
from .conn_const import IPV6_MIN_MTU, MASK, S_SYN_RECEIVED, S_SYN_SENT, TS_OPTION_LEN


class IcmpMixin(ConnBase):
    """ICMP destination unreachable."""

    __slots__ = ()

    def icmp_unreachable(
        self, code: int, quoted_seq: int, now: float, *, next_hop_mtu: int = 0
    ) -> bool:
        """An ICMP destination unreachable quoting one of our segments (C22).

        RFC 5927 §4.1: accepted only if the quoted sequence number lies in
        [SND.UNA, SND.NXT), so a blind attacker must guess the window.  While the
        connection is being opened the error is hard and ends the attempt (as
        Linux does); once established it is soft (RFC 1122 §4.2.3.9): remembered
        and reported only if the connection later times out.  "Fragmentation
        needed" lowers the MSS (RFC 1191).  Returns whether it was accepted.
        """
        self._now = now
        pos = self._una + seq.sub(quoted_seq, (self.iss + self._una) & MASK)
        if not self._una <= pos < max(self._max, self._una + 1):
            self._drop(now, "icmp_out_of_window")
            return False
        self.stats["icmp_errors"] += 1
        err, text = _ICMP_ERRORS.get(code, (errno.EHOSTUNREACH, f"unreachable (code {code})"))
        if code == 4:  # fragmentation needed: path MTU discovery
            # The MSS is the MTU less 40, 60 over IPv6 (RFC 9293 §3.7.1); the timestamp
            # option comes out of it as out of the negotiated one (RFC 6691 §2).  An
            # IPv6 path is never taken below 1280 (RFC 8201 §4).
            headers = 40
            if len(self.remote_ip) == 16:
                headers = 60
                next_hop_mtu = max(next_hop_mtu, IPV6_MIN_MTU)
            mss = next_hop_mtu - headers - (TS_OPTION_LEN if self.ts_ok else 0)
            if next_hop_mtu >= 128 and mss < self.eff_mss:
                self.eff_mss = mss
                self._cc.mss = mss
                self._trace(
                    now, "note", concept="", text=f"path MTU {next_hop_mtu}: MSS lowered to {mss}"
                )
                self._resend_oversized(now)
            return True
        if self.state is S_SYN_SENT or (self.state is S_SYN_RECEIVED and not self.passive):
            self._trace(now, "note", concept="C22", text=f"ICMP {text} for our SYN")
            self._fail(now, err, f"{text} (ICMP)", "unreachable")
            self._poke()
        else:
            self.soft_error = err
            self._trace(
                now,
                "note",
                concept="C22",
                text=f"ICMP {text}: soft error, connection kept (RFC 1122 §4.2.3.9)",
            )
        return True

    def _resend_oversized(self, now: float) -> None:
        """After the MSS fell: the segments in flight that were too big for the path were
        dropped by the router that said so (offloaded, any record longer than the new
        MSS went out in pieces of the old one).  Resend them now, cut to the new size,
        without a congestion response (RFC 1191 §6.5 permits the immediate resend; the
        loss is not congestion; as Linux's ``tcp_simple_retransmit``)."""
        mss = self.eff_mss
        marked = 0
        for s in self._sb.live():
            if s.end - s.start - (1 if s.fin else 0) > mss and self._sb.mark_lost(s):
                marked += 1
        if marked:
            self._pmtu_mark = self._max
            self._trace(
                now,
                "note",
                concept="C18",
                text=f"{marked} segment(s) larger than the new MSS resent",
            )
            self._poke()


#: ICMP destination-unreachable code -> (errno, text), after Linux's icmp_err_convert.
_ICMP_ERRORS: dict[int, tuple[int, str]] = {
    0: (errno.ENETUNREACH, "network unreachable"),
    1: (errno.EHOSTUNREACH, "host unreachable"),
    2: (errno.ENOPROTOOPT, "protocol unreachable"),
    3: (errno.ECONNREFUSED, "port unreachable"),
    5: (errno.EOPNOTSUPP, "source route failed"),
    6: (errno.ENETUNREACH, "destination network unknown"),
    7: (errno.EHOSTDOWN, "destination host unknown"),
    9: (errno.ENETUNREACH, "network administratively prohibited"),
    10: (errno.EHOSTUNREACH, "host administratively prohibited"),
    13: (errno.EHOSTUNREACH, "communication administratively prohibited"),
}
