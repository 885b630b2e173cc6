"""Initial sequence numbers, RFC 6528 (concepts C15, C16).

ISN = M + F(localip, localport, remoteip, remoteport, secretkey): M is a clock
ticking every 4 µs (RFC 9293 §3.4.1, 250,000 ticks a second), F a keyed hash.

Times used with the clock are placed in the *middle* of a 4 µs tick so that
float rounding of ``now / 4e-6`` can never move a reading across a tick
boundary: the tests are about the clock rate, not about float representation.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.tcp import seq
from synack.tcp.isn import Rfc6528Isn, fixed_isn

MOD = 1 << 32
SECRET = bytes(range(16))
A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])

ticks_per_second = 250_000
SPEC_TICK = 4e-6  # RFC 9293 §3.4.1: the ISN clock ticks every 4 microseconds


def mid_tick(seconds: int, tick: int) -> float:
    return seconds + (tick + 0.5) * SPEC_TICK


def test_isn_clock_ticks_every_four_microseconds_c16() -> None:
    """RFC 9293 §3.4.1: M advances by one every 4 µs, by 250,000 a second, whatever
    the module's TICK says: readings 4 µs apart differ by 1, 2 µs apart (inside one
    tick) by 0."""
    gen = Rfc6528Isn(SECRET)
    t = mid_tick(3, 0)
    assert (gen(A, 1, B, 2, t + 4e-6) - gen(A, 1, B, 2, t)) % MOD == 1
    assert gen(A, 1, B, 2, t + 1e-6) == gen(A, 1, B, 2, t - 1e-6)
    assert (gen(A, 1, B, 2, t + 1.0) - gen(A, 1, B, 2, t)) % MOD == ticks_per_second


@given(
    st.integers(0, 10**6),
    st.integers(0, ticks_per_second - 1),
    st.integers(1, 65535),
    st.integers(1, 65535),
)
def test_clock_advances_250000_per_second_c16(s: int, j: int, lport: int, rport: int) -> None:
    """Same 4-tuple, t and t+1 s: ISNs differ by exactly 250,000 (mod 2**32)."""
    gen = Rfc6528Isn(SECRET)
    t = mid_tick(s, j)
    a = gen(A, lport, B, rport, t)
    b = gen(A, lport, B, rport, t + 1)
    assert 0 <= a < MOD and 0 <= b < MOD
    assert (b - a) % MOD == ticks_per_second
    assert seq.sub(b, a) == ticks_per_second


@given(st.integers(0, 10**5), st.integers(0, ticks_per_second - 1))
def test_isn_is_clock_plus_time_independent_hash(s: int, j: int) -> None:
    """ISN(t) - ISN(0) == floor(t / 4 µs) mod 2**32: F does not depend on time."""
    gen = Rfc6528Isn(SECRET)
    base = gen(A, 1234, B, 80, 0.0)
    t = mid_tick(s, j)
    assert (gen(A, 1234, B, 80, t) - base) % MOD == (s * ticks_per_second + j) % MOD


def test_one_tick_every_four_microseconds() -> None:
    gen = Rfc6528Isn(SECRET)
    readings = [gen(A, 1, B, 2, mid_tick(7, j)) for j in range(10)]
    assert [(y - x) % MOD for x, y in itertools.pairwise(readings)] == [1] * 9
    # within one tick the ISN does not change
    assert gen(A, 1, B, 2, 7 + 0.2 * SPEC_TICK) == gen(A, 1, B, 2, 7 + 0.8 * SPEC_TICK)


def test_clock_cycles_in_about_4_77_hours_c16() -> None:
    """C16: the 32-bit space at 250,000 ticks/s wraps after 2**32 * 4 µs ~= 4.77 h."""
    gen = Rfc6528Isn(SECRET)
    period = MOD * SPEC_TICK
    assert 4.7 * 3600 < period < 4.8 * 3600
    t = mid_tick(100, 17)
    assert gen(A, 5, B, 6, t) == gen(A, 5, B, 6, t + period)
    assert gen(A, 5, B, 6, t) != gen(A, 5, B, 6, t + period / 2)


def test_reconnect_one_second_later_is_past_an_old_window_c15() -> None:
    """C15: a reincarnation a second later starts 250,000 ahead, beyond a 64 KiB window."""
    gen = Rfc6528Isn(SECRET)
    old = gen(A, 40000, B, 80, mid_tick(50, 3))
    new = gen(A, 40000, B, 80, mid_tick(51, 3))
    assert seq.gt(new, seq.add(old, 65535))


def test_deterministic_with_a_fixed_secret() -> None:
    g1, g2 = Rfc6528Isn(SECRET), Rfc6528Isn(bytes(SECRET))
    for t in (0.0, 1.5, 12345.678):
        assert g1(A, 1000, B, 80, t) == g2(A, 1000, B, 80, t) == g1(A, 1000, B, 80, t)


def test_different_secrets_give_different_isns() -> None:
    g1 = Rfc6528Isn(SECRET)
    g2 = Rfc6528Isn(SECRET[:-1] + b"\xff")
    g3 = Rfc6528Isn(b"another secret!!")
    vals = {g(A, 1000, B, 80, 3.0) for g in (g1, g2, g3)}
    assert len(vals) == 3


def test_default_secret_is_random() -> None:
    """No secret given: each generator draws its own (os.urandom), so ISNs differ."""
    vals = {Rfc6528Isn()(A, 1000, B, 80, 0.0) for _ in range(4)}
    assert len(vals) >= 3  # a 2**-32 collision per pair, never three


def test_different_tuples_are_unrelated_c15() -> None:
    """F depends on every field of the 4-tuple, and neighbouring ports map far apart."""
    gen = Rfc6528Isn(SECRET)
    t = 9.0
    base = gen(A, 40000, B, 80, t)
    variants = [
        gen(A, 40001, B, 80, t),  # local port
        gen(A, 40000, B, 81, t),  # remote port
        gen(bytes([10, 0, 0, 9]), 40000, B, 80, t),  # local ip
        gen(A, 40000, bytes([10, 0, 0, 9]), 80, t),  # remote ip
        gen(B, 80, A, 40000, t),  # the reverse direction
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)
    # Sequential source ports: not a progression, and spread over the whole space.
    isns = [gen(A, p, B, 80, t) for p in range(40000, 40256)]
    assert len(set(isns)) == len(isns)
    steps = {(y - x) % MOD for x, y in itertools.pairwise(isns)}
    assert len(steps) > 200
    assert max(isns) - min(isns) > MOD // 2
    # an attacker seeing port p's ISN learns nothing about port p+1's: no small deltas
    assert sum(1 for d in steps if d < 250_000 or d > MOD - 250_000) < 5


@pytest.mark.parametrize("n", [0, 1, 7, 65, 100])
def test_secret_length_validation(n: int) -> None:
    with pytest.raises(ValueError, match="8 to 64"):
        Rfc6528Isn(b"k" * n)


@pytest.mark.parametrize("n", [8, 16, 32, 64])
def test_secret_length_accepted(n: int) -> None:
    """RFC 6528 §3: a secret of 8 to 64 bytes is accepted and all of it keys F: changing
    its first or its last byte, or making it one byte longer, changes the ISN."""
    secret = bytes(range(1, n + 1))
    isn = Rfc6528Isn(secret)(A, 1, B, 2, 0.0)
    assert 0 <= isn < MOD
    assert Rfc6528Isn(bytes(secret))(A, 1, B, 2, 0.0) == isn
    others = [b"\xff" + secret[1:], secret[:-1] + b"\xff"]
    if n < 64:
        others.append(secret + b"\x00")
    assert all(Rfc6528Isn(o)(A, 1, B, 2, 0.0) != isn for o in others)


def test_fixed_isn() -> None:
    """fixed_isn ignores tuple and time (exactly what C15 warns against) and masks to 32 bits."""
    src = fixed_isn(1000)
    assert src(A, 1, B, 2, 0.0) == 1000
    assert src(B, 9, A, 7, 99999.0) == 1000
    assert fixed_isn(MOD + 5)(A, 1, B, 2, 0.0) == 5
    assert fixed_isn(-1)(A, 1, B, 2, 0.0) == MOD - 1
