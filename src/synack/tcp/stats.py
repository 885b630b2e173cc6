"""Per-connection counters, in the spirit of Linux's ``tcp_info`` and ``netstat -s``.

A connection counts segments, bytes, retransmissions, drops and the like
(RFC 4898, the TCP extended statistics MIB, names most of them).  Most
counters of most connections stay zero for their whole life, so a counter
is stored only once it has been incremented: with ten thousand idle
connections in one stack the table of zeros would cost more than the rest
of the connection.  A counter never incremented reads as 0.
"""

from __future__ import annotations

#: Every counter a connection keeps, in the order :meth:`ConnStats.full` reports them.
STAT_KEYS: tuple[str, ...] = (
    "segs_in",
    "segs_out",
    "bytes_sent",
    "bytes_acked",
    "bytes_received",
    "retransmits",
    "rto_fired",
    "fast_retransmits",
    "recoveries",
    "dup_acks_in",
    "dup_segs_in",
    "ooo_segs_in",
    "unacceptable_in",
    "challenge_acks",
    "challenge_acks_suppressed",
    "oow_acks_suppressed",
    "probes",
    "icmp_errors",
    "paws_drops",
    "sack_blocks_in",
    "dsacks_in",
    "lost_segments",
    "rack_losses",
    "tlp_probes",
    "ecn_ce_in",
    "ecn_reductions",
    "keepalives",
    "ooo_block_limit_drops",
    "sack_splits_refused",
    "pacing_waits",
)

_KNOWN = frozenset(STAT_KEYS)


class ConnStats(dict[str, int]):
    """Counters by name; only those ever incremented are stored.

    ``stats[name] += 1`` works for any name in :data:`STAT_KEYS` (a missing
    one reads as 0); an unknown name raises :class:`KeyError`, so a typo is
    not silently a new counter.
    """

    __slots__ = ()

    def __missing__(self, key: str) -> int:
        if key in _KNOWN:
            return 0
        raise KeyError(key)

    def full(self) -> dict[str, int]:
        """Every counter, zeros included, in the order of :data:`STAT_KEYS`."""
        get = self.get
        return {k: get(k, 0) for k in STAT_KEYS}
