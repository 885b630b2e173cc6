"""The receive buffer (C4 flow control reads it): FIFO order, one copy, bounded overhead."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synack.tcp.recvbuf import RecvBuffer


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.binary(max_size=9000)),
            st.tuples(st.just("take"), st.integers(min_value=-1, max_value=20000)),
        ),
        max_size=60,
    )
)
def test_recvbuf_behaves_like_a_byte_string(ops: list[tuple[str, object]]) -> None:
    buf = RecvBuffer()
    model = b""
    for op, arg in ops:
        if op == "put":
            assert isinstance(arg, bytes)
            # Large payloads arrive as views of a packet, as from the link.
            buf.append(memoryview(b"hdr" + arg)[3:] if len(arg) > 5000 else arg)
            model += arg
        else:
            assert isinstance(arg, int)
            got = buf.take(arg)
            want = model if arg < 0 else model[:arg]
            model = model[len(want) :]
            assert got == want and type(got) is bytes
        assert len(buf) == len(model) and bool(buf) == bool(model)


def test_large_payloads_are_kept_without_a_copy_and_small_ones_packed() -> None:
    buf = RecvBuffer()
    packet = bytes(range(256)) * 300
    view = memoryview(packet)[40:]
    buf.append(view)
    assert buf._chunks is not None and buf._chunks[0] is view  # kept as it came
    for _ in range(10_000):
        buf.append(b"x")  # a peer sending one byte per segment
    assert len(buf._chunks) == 2  # packed into one piece, not 10,000 objects
    assert buf.take(len(view)) == packet[40:]
    assert buf.take() == b"x" * 10_000


def test_a_mutable_payload_is_copied_so_later_changes_do_not_leak_in() -> None:
    buf = RecvBuffer()
    data = bytearray(b"a" * 8000)
    buf.append(data)
    data[:] = b"b" * 8000
    assert buf.take() == b"a" * 8000


def test_partial_take_splits_a_piece_and_later_appends_go_to_a_new_one() -> None:
    buf = RecvBuffer()
    buf.append(b"hello ")
    assert buf.take(3) == b"hel"
    buf.append(b"world")  # the first piece is shared with a view now: a new piece
    assert buf.take() == b"lo world"
    assert not buf
