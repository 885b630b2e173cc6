"""32-bit modular sequence-number arithmetic (RFC 9293 §3.4, concepts C14, C16).

Sequence and acknowledgement numbers live in a circle of 2**32 values.  Two
numbers are compared by the sign of their 32-bit difference, which is valid
as long as they are less than 2**31 apart; every comparison of sequence or
acknowledgement numbers in synack goes through these functions so that a
transfer crossing the wrap behaves exactly like one that does not.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def add(a: int, n: int) -> int:
    """Return ``a + n`` modulo 2**32."""
    return (a + n) & MASK


def sub(a: int, b: int) -> int:
    """Return the signed distance ``a - b`` in the range [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def lt(a: int, b: int) -> bool:
    """``a`` precedes ``b`` in sequence space."""
    return ((a - b) & MASK) >= HALF


def le(a: int, b: int) -> bool:
    """``a`` precedes or equals ``b``."""
    return a == b or ((a - b) & MASK) >= HALF


def gt(a: int, b: int) -> bool:
    """``a`` follows ``b``."""
    return ((b - a) & MASK) >= HALF


def ge(a: int, b: int) -> bool:
    """``a`` follows or equals ``b``."""
    return a == b or ((b - a) & MASK) >= HALF


def between(low: int, x: int, high: int) -> bool:
    """``low <= x < high`` in sequence space (the half-open window test)."""
    return ((x - low) & MASK) < ((high - low) & MASK)


def max_seq(a: int, b: int) -> int:
    """The later of two sequence numbers."""
    return b if gt(b, a) else a


def min_seq(a: int, b: int) -> int:
    """The earlier of two sequence numbers."""
    return b if lt(b, a) else a
