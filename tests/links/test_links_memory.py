"""The in-process link pair and the readiness doorbell."""

from __future__ import annotations

import select

import pytest

from synack.links import Doorbell, Link, LinkClosedError, memory_pair


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_packets_cross_whole_and_in_order_both_ways() -> None:
    a, b = memory_pair(mtu=1500)
    assert isinstance(a, Link) and isinstance(b, Link)
    sent = [bytes([i]) * (1 + i * 5) for i in range(200)]
    for p in sent:
        a.write(p)
    b.write(b"back")
    assert readable(b.fileno())
    got = []
    while batch := b.read_batch(64):
        assert len(batch) <= 64
        got += batch
    assert got == sent
    assert not readable(b.fileno())
    assert a.read_batch() == [b"back"]
    assert a.stats["tx_packets"] == 200 and b.stats["rx_packets"] == 200
    assert b.stats["rx_bytes"] == sum(map(len, sent))
    a.close()
    b.close()


def test_read_batch_stops_at_eagain_and_at_the_cap() -> None:
    a, b = memory_pair()
    assert b.read_batch() == []  # nothing there: EAGAIN, not a block
    for _ in range(10):
        a.write(b"p")
    assert len(b.read_batch(4)) == 4
    assert len(b.read_batch(100)) == 6
    a.close()
    b.close()


def test_oversize_and_empty_packets_are_counted_drops() -> None:
    a, b = memory_pair(mtu=576)
    a.write(bytes(577))
    a.write(b"")
    a.write(bytes(576))
    assert a.stats["tx_drop_oversize"] == 1
    assert a.stats["tx_drop_empty"] == 1
    assert [len(p) for p in b.read_batch()] == [576]
    a.close()
    b.close()


def test_a_closed_peer_ends_the_link() -> None:
    a, b = memory_pair()
    a.write(b"last")
    a.close()
    assert b.read_batch() == [b"last"]  # queued packets still arrive
    with pytest.raises(LinkClosedError):
        b.read_batch()
    b.write(b"into the void")
    assert b.stats["tx_drop_peer_closed"] == 1
    b.close()
    b.close()  # idempotent
    assert b.closed


def test_invalid_mtu_is_rejected() -> None:
    with pytest.raises(ValueError, match="mtu"):
        memory_pair(mtu=20)


def test_doorbell_is_readable_exactly_while_rung() -> None:
    bell = Doorbell()
    fd = bell.fileno()
    assert not readable(fd)
    bell.ring()
    bell.ring()  # idempotent
    assert readable(fd) and bell.rung
    bell.clear()
    assert not readable(fd) and not bell.rung
    bell.clear()  # idempotent
    bell.set(True)
    assert readable(fd)
    bell.set(False)
    assert not readable(fd)
    bell.close()
    bell.close()
