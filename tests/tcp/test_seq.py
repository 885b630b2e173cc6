"""Property tests of 32-bit sequence arithmetic across the 2**32 wrap (C16, RFC 9293 §3.4).

RFC 9293 §3.4: "all arithmetic dealing with sequence numbers must be performed
modulo 2**32"; comparisons are meaningful only for numbers less than 2**31
apart.  The strategies below deliberately crowd values around 0 / 2**32 - 1,
where a naive integer comparison gives the wrong answer.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synack.tcp import seq

MOD = 1 << 32
HALF = 1 << 31

#: Any 32-bit value, biased towards the wrap point and the half-way point.
u32 = st.one_of(
    st.integers(0, MOD - 1),
    st.integers(MOD - 5000, MOD - 1),
    st.integers(0, 5000),
    st.integers(HALF - 5000, HALF + 5000),
)
#: A signed distance that sequence comparison can represent.
dist = st.integers(-(HALF - 1), HALF - 1)
small = st.integers(-3000, 3000)


def test_modulus_and_comparison_horizon_c16() -> None:
    """RFC 9293 §3.4: the space has 2**32 numbers (adding 2**32 is the identity, the
    largest one is followed by 0), and a comparison holds up to 2**31 - 1 apart:
    a number that far ahead follows, one a step further is behind (the distance wraps
    to -(2**31 - 1)), and exactly 2**31 apart maps to the negative end, -2**31."""
    for a in (0, 1, 5000, HALF - 1, HALF, MOD - 1):
        assert seq.add(a, MOD) == a and seq.add(a, -MOD) == a
        assert seq.add(a, MOD - a) == 0 and seq.add(a, -a - 1) == MOD - 1
        ahead = seq.add(a, HALF - 1)
        assert seq.gt(ahead, a) and seq.lt(a, ahead) and seq.sub(ahead, a) == HALF - 1
        behind = seq.add(a, HALF + 1)
        assert seq.lt(behind, a) and seq.sub(behind, a) == -(HALF - 1)
        assert seq.sub(seq.add(a, HALF), a) == -HALF
        assert seq.between(a, ahead, seq.add(a, HALF)) and not seq.between(a, behind, ahead)
    assert (-1) & seq.MASK == MOD - 1 and (MOD + 7) & seq.MASK == 7


def test_wrap_examples_c16() -> None:
    """C16: 2**32 - 1 precedes 0 and 5; a naive `<` would say the opposite."""
    top = MOD - 1
    assert seq.add(top, 1) == 0
    assert seq.add(top, 6) == 5
    assert seq.sub(5, top) == 6
    assert seq.sub(top, 5) == -6
    assert seq.lt(top, 5) and not seq.lt(5, top)
    assert seq.gt(5, top) and not seq.gt(top, 5)
    assert seq.le(top, 0) and seq.ge(0, top)
    assert seq.between(top - 10, 3, 20)
    assert not seq.between(top - 10, 20, 20)  # half-open: high excluded
    assert seq.between(top - 10, top - 10, 20)  # low included
    assert seq.max_seq(top, 5) == 5 and seq.min_seq(top, 5) == top


@given(u32, st.integers(-(MOD * 3), MOD * 3))
def test_add_stays_in_range_and_is_modular(a: int, n: int) -> None:
    r = seq.add(a, n)
    assert 0 <= r < MOD
    assert r == (a + n) % MOD


@given(u32, st.one_of(dist, small))
def test_add_sub_inverse(a: int, n: int) -> None:
    """sub(add(a, n), a) == n and add(add(a, n), -n) == a for |n| < 2**31."""
    b = seq.add(a, n)
    assert seq.sub(b, a) == n
    assert seq.sub(a, b) == -n
    assert seq.add(b, -n) == a
    assert seq.add(a, seq.sub(b, a)) == b


@given(u32, u32)
def test_sub_range_and_roundtrip(a: int, b: int) -> None:
    d = seq.sub(a, b)
    assert -HALF <= d < HALF
    assert seq.add(b, d) == a


@given(u32, u32)
def test_lt_gt_antisymmetry_and_trichotomy(a: int, b: int) -> None:
    """For numbers under 2**31 apart exactly one of lt, ==, gt holds; lt(a,b) == gt(b,a)."""
    assert seq.lt(a, b) == seq.gt(b, a)
    assert seq.le(a, b) == seq.ge(b, a)
    d = seq.sub(a, b)
    if d == -HALF:
        return  # exactly half the circle apart: RFC 9293 leaves the order undefined
    outcomes = [seq.lt(a, b), a == b, seq.gt(a, b)]
    assert outcomes.count(True) == 1
    assert not (seq.lt(a, b) and seq.lt(b, a))
    assert seq.lt(a, b) == (d < 0)
    assert seq.gt(a, b) == (d > 0)
    assert seq.le(a, b) == (d <= 0)
    assert seq.ge(a, b) == (d >= 0)
    assert not seq.lt(a, a) and not seq.gt(a, a) and seq.le(a, a) and seq.ge(a, a)


@given(u32, st.integers(1, HALF - 1))
def test_comparison_consistent_with_distance(a: int, d: int) -> None:
    """b = a + d (d in 1..2**31-1) is later than a however the addition wraps."""
    b = seq.add(a, d)
    assert seq.lt(a, b) and seq.le(a, b)
    assert seq.gt(b, a) and seq.ge(b, a)
    assert not seq.lt(b, a) and not seq.ge(a, b)
    assert seq.max_seq(a, b) == b == seq.max_seq(b, a)
    assert seq.min_seq(a, b) == a == seq.min_seq(b, a)


@given(st.integers(MOD - 3000, MOD - 1), st.lists(st.integers(1, 2000), min_size=2, max_size=8))
def test_transitivity_on_short_chains_near_wrap(start: int, steps: list[int]) -> None:
    """A chain x0 < x1 < ... crossing 2**32 stays ordered pairwise (total span < 2**31)."""
    chain = [start]
    for s in steps:
        chain.append(seq.add(chain[-1], s))
    for i in range(len(chain)):
        for j in range(i + 1, len(chain)):
            assert seq.lt(chain[i], chain[j]), (chain[i], chain[j])
            assert seq.gt(chain[j], chain[i])


@given(u32, st.integers(1, HALF - 1), st.integers(1, HALF - 1))
def test_transitivity_general(a: int, d1: int, d2: int) -> None:
    """lt(a,b) and lt(b,c) imply lt(a,c) whenever a..c spans less than 2**31."""
    b = seq.add(a, d1)
    c = seq.add(b, d2)
    assert seq.lt(a, b) and seq.lt(b, c)
    if d1 + d2 != HALF:  # exactly half the circle apart is undefined
        assert seq.lt(a, c) == (d1 + d2 < HALF)


def _between_model(low: int, x: int, high: int) -> bool:
    """Brute force: walk the half-open window from ``low`` to ``high`` one value at a time."""
    v = low
    while v != high:
        if v == x:
            return True
        v = (v + 1) % MOD
    return False


@given(
    st.integers(MOD - 400, MOD - 1) | st.integers(0, 400) | u32,
    st.integers(0, 600),
    st.integers(-50, 700),
)
def test_between_against_brute_force(low: int, width: int, offset: int) -> None:
    high = seq.add(low, width)
    x = seq.add(low, offset)
    assert seq.between(low, x, high) == _between_model(low, x, high)


@given(u32, st.integers(0, MOD - 1), st.integers(0, MOD - 1))
def test_between_large_windows(low: int, width: int, k: int) -> None:
    """between(low, low+k, low+w) == (0 <= k < w) for every width, wrap or not."""
    assert seq.between(low, seq.add(low, k), seq.add(low, width)) == (k < width)


@given(u32, u32)
def test_between_empty_window(low: int, x: int) -> None:
    assert not seq.between(low, x, low)
