"""The ``/bytes/N`` payload: deterministic pseudo-random data a client can check.

Block ``i`` (64 KiB) is ``random.Random(i).randbytes(65536)``, so any prefix of
the stream is the same whatever ``N`` asked for it, and a client can check what it
got by SHA-256 (:func:`generated_sha256`) without holding a copy.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator

__all__ = [
    "GENERATED_BLOCK",
    "MAX_GENERATED",
    "generated_bytes",
    "generated_chunks",
    "generated_sha256",
]

GENERATED_BLOCK = 1 << 16
MAX_GENERATED = 1 << 40


@functools.lru_cache(maxsize=32)
def _block(index: int) -> bytes:
    """Block ``index`` of the ``/bytes/N`` stream; the first 2 MiB stay cached, so a
    small ``/bytes/N`` costs a slice, not 64 KiB of random numbers per request."""
    return random.Random(index).randbytes(GENERATED_BLOCK)


def generated_chunks(n: int) -> Iterator[bytes]:
    """The first ``n`` bytes of the ``/bytes/N`` stream, in blocks (each one a bytes
    object that is written as it is, never copied in Python)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    index = 0
    while n > 0:
        block = _block(index)
        yield block if n >= GENERATED_BLOCK else block[:n]
        n -= GENERATED_BLOCK
        index += 1


def generated_bytes(n: int) -> bytes:
    """:func:`generated_chunks` joined (for tests and small sizes)."""
    return b"".join(generated_chunks(n))


def generated_sha256(n: int) -> str:
    """The SHA-256 of ``/bytes/n``, without holding it all in memory."""
    h = hashlib.sha256()
    for chunk in generated_chunks(n):
        h.update(chunk)
    return h.hexdigest()
