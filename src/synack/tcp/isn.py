"""Initial sequence numbers per RFC 6528 (concepts C15, C16).

``ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`` where M is
a clock ticking every 4 microseconds (RFC 9293 §3.4.1) and F a keyed hash.
An off-path attacker cannot predict F without the per-stack secret, and for a
reused 4-tuple the clock term moves the new ISN forward, past old segments.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

#: Signature of an ISN source: (local ip, local port, remote ip, remote port, now) -> ISN.
IsnSource = Callable[[bytes, int, bytes, int, float], int]

TICK = 4e-6  # seconds per ISN clock tick (RFC 9293 §3.4.1): 250,000 ticks/s


class Rfc6528Isn:
    """The default ISN generator: 4-µs clock plus a BLAKE2 keyed hash of the 4-tuple."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(16)
        if not 8 <= len(self._secret) <= 64:
            raise ValueError("ISN secret must be 8 to 64 bytes")

    def __call__(self, lip: bytes, lport: int, rip: bytes, rport: int, now: float) -> int:
        h = hashlib.blake2b(digest_size=4, key=self._secret)
        h.update(lip + lport.to_bytes(2, "big") + rip + rport.to_bytes(2, "big"))
        m = int(now / TICK)
        return (m + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF


def fixed_isn(value: int) -> IsnSource:
    """An ISN source that always returns ``value``: for crafted tests and the C15 lab.

    Never use this on a real network: it is exactly what C15 warns against.
    """

    def source(lip: bytes, lport: int, rip: bytes, rport: int, now: float) -> int:
        return value & 0xFFFFFFFF

    return source
