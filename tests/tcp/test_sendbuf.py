"""The send buffer (#7: no per-packet copies of payload) against a bytearray model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.tcp.sendbuf import SendBuffer

_op = st.one_of(
    st.tuples(st.just("bytes"), st.integers(0, 9000)),
    st.tuples(st.just("bytearray"), st.integers(0, 3000)),
    st.tuples(st.just("view"), st.integers(0, 9000)),
    st.tuples(st.just("drop"), st.floats(0, 1)),
    st.tuples(st.just("read"), st.floats(0, 1), st.floats(0, 1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=60))
def test_send_buffer_matches_a_bytearray(ops: list[tuple]) -> None:
    buf = SendBuffer()
    model = bytearray()
    counter = 0

    def fresh(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return bytes((counter * 7 + i) % 251 for i in range(n))

    for op in ops:
        kind = op[0]
        if kind == "bytes":
            data = fresh(op[1])
            buf.append(data)
            model += data
        elif kind == "bytearray":
            data2 = bytearray(fresh(op[1]))
            buf.append(data2)
            model += data2
            data2[:] = b"x" * len(data2)  # the caller reuses its buffer: no effect on us
        elif kind == "view":
            whole = fresh(op[1] + 10)
            buf.append(memoryview(whole)[5 : 5 + op[1]])
            model += whole[5 : 5 + op[1]]
        elif kind == "drop":
            n = int(len(model) * op[1])
            buf.drop(n)
            del model[:n]
        else:
            off = int(len(model) * op[1])
            n = int((len(model) - off) * op[2])
            got = buf.view(off, n)
            assert bytes(got) == model[off : off + n]
        assert len(buf) == len(model)
        assert bool(buf) == bool(model)


def test_large_immutable_writes_are_viewed_not_copied() -> None:
    buf = SendBuffer()
    big = bytes(range(256)) * 300
    buf.append(big)
    v = buf.view(1000, 1460)
    assert isinstance(v, memoryview) and v.obj is big
    assert bytes(v) == big[1000:2460]


def test_small_writes_are_packed_and_closed_pieces_are_viewed() -> None:
    buf = SendBuffer()
    for i in range(200):
        buf.append(bytes([i % 256]) * 500)  # 100 KB of 500-byte writes
    first = buf.view(0, 1460)
    assert isinstance(first, memoryview)  # inside the first closed 64 KB piece
    last = buf.view(len(buf) - 1000, 1000)
    assert isinstance(last, bytes)  # the open piece is copied from
    buf.drop(len(buf))
    assert not buf and len(buf) == 0


def test_a_range_across_pieces_is_joined() -> None:
    buf = SendBuffer()
    a, b = b"a" * 4000, b"b" * 4000
    buf.append(a)
    buf.append(b)
    got = buf.view(3000, 2000)
    assert got == b"a" * 1000 + b"b" * 1000


def test_views_stay_valid_after_the_front_is_dropped() -> None:
    buf = SendBuffer()
    buf.append(b"x" * 5000)
    buf.append(b"y" * 5000)
    v = buf.view(5000, 100)
    buf.drop(6000)  # the peer acknowledged past it; a queued packet still holds the view
    assert bytes(v) == b"y" * 100
    assert buf.view(0, 10) == b"y" * 10


def test_a_copy_holds_the_same_bytes_and_is_independent() -> None:
    """The fuzzer forks whole stacks with copy.deepcopy."""
    import copy

    buf = SendBuffer()
    buf.append(b"a" * 5000)
    buf.append(b"b" * 100)
    dup = copy.deepcopy(buf)
    buf.drop(4000)
    assert bytes(dup.view(0, 5100)) == b"a" * 5000 + b"b" * 100
    assert bytes(buf.view(0, 1100)) == b"a" * 1000 + b"b" * 100


def test_a_view_of_a_small_part_is_copied_so_it_does_not_pin_the_whole() -> None:
    """A writer looping on ``data[n:]`` hands over views of big objects; keeping them
    would hold every remainder alive until acknowledged."""
    big = bytes(1 << 20)
    buf = SendBuffer()
    buf.append(memoryview(big)[:100_000])
    v = buf.view(0, 5000)
    assert not (isinstance(v, memoryview) and v.obj is big)
    most = SendBuffer()
    most.append(memoryview(big)[:900_000])
    w = most.view(0, 5000)
    assert isinstance(w, memoryview) and w.obj is big


def test_a_shallow_copy_does_not_share_state() -> None:
    import copy

    buf = SendBuffer()
    buf.append(b"a" * 100)
    dup = copy.copy(buf)
    buf.drop(50)
    buf.append(b"b" * 100)
    assert len(dup) == 100 and dup.view(50, 10) == b"a" * 10


def test_connection_send_counts_bytes_of_a_multibyte_view() -> None:
    from array import array

    from synack.tcp.connection import Connection

    c = Connection.open_active(b"\x0a\0\0\x01", 1, b"\x0a\0\0\x02", 2, iss=0, now=0.0)
    syn = c.segments_to_send(0.0)[0]
    peer = Connection.open_passive(syn, b"\x0a\0\0\x02", b"\x0a\0\0\x01", iss=0, now=0.0)
    c.receive(peer.segments_to_send(0.0)[0], 0.0)
    words = array("I", range(100))
    assert c.send(memoryview(words)) == 400
    assert c.unsent == 400
    assert bytes(c._buf.view(0, 400)) == words.tobytes()
