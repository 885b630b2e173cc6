"""SYN cookies (RFC 4987 §3.6): answer a SYN flood without keeping state.

When a listener's half-open table is full, the SYN-ACK's initial sequence
number *is* the state: a keyed hash of the 4-tuple, the client's ISN and a
coarse clock, plus the MSS as an index into a small table.  A genuine client's
ACK returns it (ACK - 1), so the connection can be rebuilt; a forged ACK
fails the hash.  Window scale, SACK-permitted and ECN do not fit in the ISN;
as Linux does, they ride in the low 6 bits of the SYN-ACK's TSval and come
back in the ACK's TSecr (without timestamps they are lost, and the
connection runs without them).

Layout of the 32-bit cookie: ``t`` (5 bits, a 64-second counter) | MSS index
(2 bits) | hash (25 bits).  A cookie is accepted for up to two periods.  The hash
covers the MSS index too, so an attacker who has seen one cookie cannot flip its
index bits to obtain a connection with a larger MSS than the client offered
(RFC 4987 §3.6: every bit of the cookie is authenticated).
"""

from __future__ import annotations

import hashlib
import os

MSS_TABLE = (536, 1300, 1440, 1460)  # the values Linux's IPv4 cookies encode
MSS_TABLE6 = (1220, 1420, 1440, 8940)  # Linux's IPv6 msstab: MTUs 1280, 1480, 1500, 9000 less 60
PERIOD = 64.0
_HASH_MASK = (1 << 25) - 1
TS_BITS = 6
TS_MASK = (1 << TS_BITS) - 1
_NO_WSCALE = 0xF


class SynCookies:
    """Makes and checks cookies with a per-stack secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(16)

    def _hash(
        self, lip: bytes, lport: int, rip: bytes, rport: int, client_isn: int, t: int, idx: int
    ) -> int:
        h = hashlib.blake2b(digest_size=4, key=self._secret)
        h.update(
            lip
            + lport.to_bytes(2, "big")
            + rip
            + rport.to_bytes(2, "big")
            + client_isn.to_bytes(4, "big")
            + t.to_bytes(4, "big")
            + bytes((idx,))
        )
        return int.from_bytes(h.digest(), "big") & _HASH_MASK

    def make(
        self,
        lip: bytes,
        lport: int,
        rip: bytes,
        rport: int,
        client_isn: int,
        peer_mss: int,
        now: float,
        *,
        v6: bool = False,
    ) -> tuple[int, int]:
        """Return ``(cookie, mss)``: the ISN to use and the MSS it encodes (from the
        IPv6 table when ``v6``)."""
        table = MSS_TABLE6 if v6 else MSS_TABLE
        idx = 0
        for i, m in enumerate(table):
            if m <= peer_mss:
                idx = i
        t = int(now // PERIOD)
        cookie = (
            ((t & 0x1F) << 27)
            | (idx << 25)
            | self._hash(lip, lport, rip, rport, client_isn, t, idx)
        )
        return cookie, table[idx]

    def check(
        self,
        lip: bytes,
        lport: int,
        rip: bytes,
        rport: int,
        client_isn: int,
        cookie: int,
        now: float,
        *,
        v6: bool = False,
    ) -> int | None:
        """The MSS a valid cookie encodes, or None for a forged or expired one."""
        t_now = int(now // PERIOD)
        age = (t_now - (cookie >> 27)) & 0x1F
        if age > 1:
            return None
        t = t_now - age
        if t < 0:  # from before the clock's first period: cannot be ours
            return None
        idx = (cookie >> 25) & 0x3
        if self._hash(lip, lport, rip, rport, client_isn, t, idx) != cookie & _HASH_MASK:
            return None
        return (MSS_TABLE6 if v6 else MSS_TABLE)[idx]


def encode_options(wscale: int | None, sack: bool, ecn: bool) -> int:
    """Options the ISN cannot carry, as the 6 low bits of a TSval."""
    return (
        (_NO_WSCALE if wscale is None else min(wscale, 14))
        | (0x10 if sack else 0)
        | (0x20 if ecn else 0)
    )


def decode_options(bits: int) -> tuple[int | None, bool, bool]:
    """``(wscale or None, sack_permitted, ecn)`` from the echoed TSecr's low bits."""
    ws = bits & 0xF
    return (None if ws == _NO_WSCALE else ws), bool(bits & 0x10), bool(bits & 0x20)
