"""Proportional Rate Reduction (RFC 6937): how much fast recovery may send per ACK.

One object per fast recovery, owned by the recovery code: made when it begins
(the connection holds None otherwise, so an idle connection pays nothing),
:meth:`on_ack` for every ACK inside it, :meth:`sent` for every byte sent inside it;
:attr:`allow` is what the send path may still put out."""

from __future__ import annotations


class Prr:
    """RFC 6937 §3 state: RecoverFS, prr_delivered, prr_out and the current sndcnt."""

    __slots__ = ("allow", "delivered", "out", "recover_fs")

    def __init__(self, flight: int, mss: int) -> None:
        """Recovery begins with ``flight`` bytes outstanding (RFC 6937 §3 initialisation);
        the fast retransmission itself may go at once."""
        self.recover_fs = max(flight, 1)
        self.delivered = 0
        self.out = 0
        self.allow = mss

    def on_ack(
        self, delivered: int, pipe: int, ssthresh: int, mss: int, lost_waiting: bool
    ) -> None:
        """RFC 6937 §3 "on every ACK during recovery": proportional while pipe is above
        ssthresh, then PRR-SSRB (slow-start reduction bound) back up to it."""
        self.delivered += delivered
        if pipe > ssthresh:
            sndcnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            limit = max(self.delivered - self.out, delivered) + mss
            sndcnt = min(ssthresh - pipe, limit)
        if self.out == 0 and lost_waiting:
            sndcnt = max(sndcnt, mss)  # always send the first retransmission
        self.allow = max(sndcnt, 0)

    def sent(self, n: int) -> None:
        """``n`` bytes (new or retransmitted) left during recovery."""
        self.out += n
