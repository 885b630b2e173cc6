"""The receiver's out-of-order queue (C14, RFC 9293 §3.10.7.4 "segment text").

C14: segments arrive split, duplicated and out of order; the receiver must
recognise duplicates and put the stream back in order.  Positions here are
unbounded stream offsets, so no modular arithmetic is involved.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.reassembly import Reassembly


def test_empty() -> None:
    r = Reassembly()
    assert len(r) == 0 and not r
    assert r.nbytes == 0
    assert r.ranges() == []
    assert r.highest is None
    assert r.pop_ready(0) is None
    assert r.add(10, b"") == 0
    assert not r


def test_disjoint_blocks_kept_sorted() -> None:
    r = Reassembly()
    assert r.add(300, b"C" * 10) == 10
    assert r.add(100, b"A" * 10) == 10
    assert r.add(200, b"B" * 10) == 10
    assert r.ranges() == [(100, 110), (200, 210), (300, 310)]
    assert len(r) == 3 and bool(r)
    assert r.nbytes == 30
    assert r.highest == 310


def test_adjacent_blocks_merge() -> None:
    """Blocks that touch are one block (kept non-adjacent), both from the left and the right."""
    r = Reassembly()
    r.add(10, b"bb")
    assert r.add(12, b"cc") == 2  # touches the end
    assert r.add(8, b"aa") == 2  # touches the start
    assert r.ranges() == [(8, 14)]
    assert r.pop_ready(8) == b"aabbcc"
    assert not r and r.nbytes == 0


def test_insert_bridging_two_blocks() -> None:
    r = Reassembly()
    r.add(0, b"ab")
    r.add(6, b"gh")
    assert r.add(2, b"cdef") == 4
    assert r.ranges() == [(0, 8)]
    assert r.nbytes == 8
    assert r.pop_ready(0) == b"abcdefgh"


def test_overlap_counts_only_new_bytes_and_held_bytes_win() -> None:
    """Overlapping data: only the new bytes count; bytes already held are not replaced."""
    r = Reassembly()
    r.add(10, b"KKKK")  # 10..14
    assert r.add(12, b"xxyyzz") == 4  # 12..18: 12,13 held, 14..17 new
    assert r.ranges() == [(10, 18)]
    assert r.nbytes == 8
    assert r.add(6, b"ppppqq") == 4  # 6..12: 6..9 new, 10,11 held
    assert r.nbytes == 12
    assert r.pop_ready(6) == b"ppppKKKKyyzz"


def test_new_block_covering_several_blocks() -> None:
    r = Reassembly()
    r.add(2, b"B")
    r.add(5, b"EF")
    r.add(9, b"J")
    assert r.add(0, b"abcdefghijkl") == 12 - 4
    assert r.ranges() == [(0, 12)]
    assert r.nbytes == 12
    assert r.pop_ready(0) == b"abBdeEFhiJkl"


def test_contained_insert_and_exact_duplicate_add_nothing() -> None:
    """C14: a duplicate (or a piece of held data) costs nothing and changes nothing."""
    r = Reassembly()
    assert r.add(100, b"0123456789") == 10
    assert r.add(100, b"0123456789") == 0  # exact duplicate
    assert r.add(103, b"zzz") == 0  # strictly inside
    assert r.add(100, b"q") == 0  # at the start
    assert r.add(109, b"q") == 0  # at the end
    assert r.ranges() == [(100, 110)]
    assert r.nbytes == 10
    assert r.pop_ready(100) == b"0123456789"


def test_pop_ready_requires_the_gap_filled() -> None:
    r = Reassembly()
    r.add(105, b"later")
    assert r.pop_ready(100) is None  # gap 100..105
    assert r.ranges() == [(105, 110)]
    assert r.pop_ready(105) == b"later"
    assert r.pop_ready(110) is None
    assert not r


def test_pop_ready_serves_the_part_past_nxt() -> None:
    """A block starting before nxt yields only the bytes from nxt on."""
    r = Reassembly()
    r.add(10, b"abcdef")
    assert r.pop_ready(13) == b"def"
    assert not r and r.nbytes == 0


def test_pop_ready_stale_block_returns_empty() -> None:
    """A block entirely below nxt is discarded and reported as b'' (not None)."""
    r = Reassembly()
    r.add(10, b"abc")
    r.add(20, b"xyz")
    assert r.pop_ready(15) == b""
    assert r.ranges() == [(20, 23)]
    assert r.nbytes == 3


def test_pop_ready_takes_only_first_block() -> None:
    r = Reassembly()
    r.add(0, b"ab")
    r.add(5, b"fg")
    assert r.pop_ready(0) == b"ab"
    assert r.ranges() == [(5, 7)]
    assert r.pop_ready(2) is None


def test_drop_below() -> None:
    r = Reassembly()
    r.add(0, b"aa")
    r.add(10, b"bb")
    r.add(20, b"cccc")
    r.drop_below(12)  # the block ending exactly at 12 goes too
    assert r.ranges() == [(20, 24)]
    assert r.nbytes == 4
    r.drop_below(22)  # straddling block stays whole
    assert r.ranges() == [(20, 24)]
    r.drop_below(24)
    assert not r and r.nbytes == 0 and r.highest is None


def test_ranges_is_a_copy() -> None:
    r = Reassembly()
    r.add(0, b"x")
    got = r.ranges()
    got.append((5, 6))
    assert r.ranges() == [(0, 1)]


def test_memoryview_input() -> None:
    r = Reassembly()
    data = bytearray(b"hello world")
    assert r.add(0, memoryview(data)[6:]) == 5
    data[6:] = b"XXXXX"  # the queue must have copied the bytes
    assert r.pop_ready(0) == b"world"


@st.composite
def shuffled_segments(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A byte string and a list of (start, end) pieces covering it, with dups and overlaps."""
    data = draw(st.binary(min_size=1, max_size=400))
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=12)) if n > 1 else []))
    bounds = [0, *cuts, n]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 80)), max_size=10))
    pieces += [(s, min(n, s + ln)) for s, ln in extra]  # overlaps and duplicates
    pieces += draw(st.lists(st.sampled_from(pieces), max_size=5))  # exact duplicates
    order = draw(st.permutations(pieces))
    return data, list(order)


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_model_random_order_reassembles_exactly(case: tuple[bytes, list[tuple[int, int]]]) -> None:
    """C14: pieces in any order, with duplicates and overlaps, give back exactly the stream.

    Bookkeeping is checked against a set model after each insert: the ranges are
    the union of the pieces, ``add`` returns the count of bytes not seen before,
    and ``nbytes`` is the size of the union.
    """
    data, pieces = case
    r = Reassembly()
    seen: set[int] = set()
    for s, e in pieces:
        new = set(range(s, e)) - seen
        assert r.add(s, data[s:e]) == len(new)
        seen |= new
        assert r.nbytes == len(seen)
        # ranges == maximal runs of the model set, sorted, disjoint and non-adjacent
        runs: list[tuple[int, int]] = []
        for p in sorted(seen):
            if runs and runs[-1][1] == p:
                runs[-1] = (runs[-1][0], p + 1)
            else:
                runs.append((p, p + 1))
        assert r.ranges() == runs
        assert r.highest == runs[-1][1]
    assert r.pop_ready(0) == data
    assert not r and r.nbytes == 0


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_model_streaming_receiver(case: tuple[bytes, list[tuple[int, int]]]) -> None:
    """C14 as a receiver uses it: after each arrival, deliver whatever became in-order.

    Pieces that lie wholly or partly below the delivery point (old duplicates)
    are inserted too; the delivered stream must still be byte-exact, with
    nothing delivered twice.
    """
    data, pieces = case
    r = Reassembly()
    out = bytearray()
    for s, e in pieces:
        r.add(s, data[s:e])
        while (more := r.pop_ready(len(out))) is not None:
            out += more
        assert data.startswith(out)
        r.drop_below(len(out))
        assert all(start > len(out) for start, _ in r.ranges())
    assert bytes(out) == data
    assert not r and r.nbytes == 0
