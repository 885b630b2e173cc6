"""The Internet checksum (RFC 1071) and the TCP pseudo-header sum (RFC 9293 §3.1).

The checksum is the 16-bit one's-complement of the one's-complement sum of
the data taken as big-endian 16-bit words.  Because ``2**16 ≡ 1 (mod 2**16 - 1)``,
a big-endian byte string read as one integer is congruent to the sum of its
16-bit words modulo ``0xFFFF``; that is RFC 1071 §2's "deferred carries" taken
to the limit, and it lets CPython's C big-int code do the whole sum with no
per-byte Python loop.

Partial sums returned here are *folded*: an int in ``0..0xFFFF`` that is 0
only when everything summed was zero.  One's-complement arithmetic has two
zeros; a non-zero sum congruent to 0 is the "negative zero" ``0xFFFF``, exactly
what the end-around-carry addition of RFC 1071 §1 produces.

Pieces may be summed separately (pseudo-header, header, payload) and chained
through ``acc`` as long as every piece but the last starts *and ends* at an
even offset of the checksummed whole; the last piece may have odd length and is
padded with one zero byte (RFC 1071 §4.1, RFC 9293 §3.1).
"""

from __future__ import annotations

from typing import TypeAlias

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""Anything the codecs accept as packet bytes (a memoryview must be of format ``B``)."""


def fold(n: int) -> int:
    """Fold a non-negative unfolded sum to 16 bits with end-around carry (RFC 1071 §2(C))."""
    if n <= 0xFFFF:
        return n
    return n % 0xFFFF or 0xFFFF


#: Above this many bytes :func:`word_sum` folds before dividing: a 1460-byte payload,
#: about 3.0 -> 2.2 µs.
FOLD_MIN = 512
#: The hot paths (wire.tcp) decide by value and call :func:`reduce_words` only from
#: here up: a smaller value divides at once (an all-zero payload is the int 0).
FOLD_ABOVE = 1 << (8 * FOLD_MIN)

_M8K, _M4K, _M2K = (1 << 8192) - 1, (1 << 4096) - 1, (1 << 2048) - 1


def word_sum(data: BytesLike) -> int:
    """``data`` read as one big-endian integer, reduced mod 0xFFFF (not folded: 0 for
    a sum congruent to zero).  The hot paths inline the small case; this is the
    whole rule, and the only path for large data."""
    return reduce_words(int.from_bytes(data, "big"), len(data))


def reduce_words(big: int, n: int) -> int:
    """``big`` (an ``n``-byte big-endian integer) mod 0xFFFF, see :func:`word_sum`."""
    if n <= FOLD_MIN:
        return big % 0xFFFF
    # 2**(16k) ≡ 1 (mod 0xFFFF), so x ≡ (x >> 16k) + (x mod 2**16k): halving with a
    # shift, a mask and an add is linear and cheap, where CPython's division by a
    # small int costs a hardware divide per 30-bit digit (64 KB: about 110 -> 60 µs).
    if n <= 2048:  # a segment's worth: three folds with masks made once, to 2049 bits
        big = (big >> 8192) + (big & _M8K)
        big = (big >> 4096) + (big & _M4K)
        return ((big >> 2048) + (big & _M2K)) % 0xFFFF
    bits = n << 3
    while bits > 8192:  # down to about 1 KB, where dividing is as quick
        half = (bits >> 1) & ~15  # a multiple of 16 bits
        big = (big >> half) + (big & ((1 << half) - 1))
        bits = bits - half + 1
    return big % 0xFFFF


def ones_sum(data: BytesLike, acc: int = 0) -> int:
    """Add ``data``'s big-endian 16-bit words to the running sum ``acc`` (RFC 1071 §1).

    Returns the folded sum (``0..0xFFFF``).  ``acc`` may be any non-negative
    int, folded or not.  An odd-length ``data`` is treated as padded with a
    zero byte, so only the last piece of a split sum may be odd.
    """
    big = int.from_bytes(data, "big")
    # Reduce the big int first: adding to it would copy it.
    r = reduce_words(big, len(data))
    if len(data) & 1:
        r <<= 8
    r += acc
    if r:
        return r % 0xFFFF or 0xFFFF
    return 0xFFFF if big else 0


def finish(acc: int) -> int:
    """Turn a running sum into the checksum field value: its one's complement (RFC 1071 §1).

    The result is never ``0xFFFF`` unless everything summed was zero; a
    computed 0 is sent as 0 (only UDP maps 0 to ``0xFFFF``, RFC 768).
    """
    return 0xFFFF ^ fold(acc)


def internet_checksum(data: BytesLike, initial: int = 0) -> int:
    """The checksum field value for ``data`` (with its checksum field zeroed), RFC 1071."""
    return finish(ones_sum(data, initial))


def checksum_valid(data: BytesLike, initial: int = 0) -> bool:
    """Verify ``data`` *including* its checksum field: the sum must be ``0xFFFF`` (RFC 1071 §1).

    A field of ``0x0000`` and one of ``0xFFFF`` are the two one's-complement
    zeros; summing (rather than recomputing and comparing) accepts a correct
    packet under either representation (RFC 1624 §3).
    """
    return ones_sum(data, initial) == 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Folded sum of the TCP/UDP pseudo-header (RFC 9293 §3.1; also RFC 8200 §8.1 for IPv6).

    ``length`` is the transport header plus payload length in bytes.  Works
    for 4-byte and 16-byte addresses alike: each address read as one integer
    is congruent to the sum of its 16-bit words.
    """
    return fold(int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length)
