"""Listeners keyed by local address and port, as the socket API binds them: a listener
on one address, wildcard listeners per family, dual-stack listeners taking IPv4 (seen
by sockets as IPv4-mapped addresses), IPV6_V6ONLY, and the conflicts Linux refuses
(``inet_csk_bind_conflict``).  Crafted SYNs show which listener takes each one."""

from __future__ import annotations

import errno

import pytest

from synack.stack import Listener, Stack
from synack.tcp.states import State
from synack.wire.ipv6 import addr_to_bytes
from synack.wire.packet import decode_ipv4_tcp, decode_ipv6_tcp, encode_ip_tcp
from synack.wire.segment import ACK, RST, SYN, Segment

V4A, V4B, V6A, V6B = "10.0.0.2", "10.0.0.3", "2001:db8::2", "2001:db8::3"
PEER4, PEER6 = addr_to_bytes("10.0.0.1"), addr_to_bytes("2001:db8::1")


def stack() -> Stack:
    return Stack(V4A, addresses=(V4B, V6A, V6B))


def syn(st: Stack, dst: str, port: int = 80, sport: int = 40000) -> int:
    """Send a SYN to ``dst:port``; the flags of the one answer."""
    d = addr_to_bytes(dst)
    src = PEER4 if len(d) == 4 else PEER6
    st.receive_packet(encode_ip_tcp(src, d, Segment(sport, port, 1000, 0, SYN, 65535)), 0.0)
    (out,) = st.packets_to_send(0.0)
    seg = (decode_ipv4_tcp(out) if out[0] >> 4 == 4 else decode_ipv6_tcp(out))[2]
    return seg.flags


def handshake(st: Stack, dst: str, port: int = 80, sport: int = 40000) -> None:
    """Complete a handshake to ``dst:port`` from the peer of its family."""
    d = addr_to_bytes(dst)
    src = PEER4 if len(d) == 4 else PEER6
    st.receive_packet(encode_ip_tcp(src, d, Segment(sport, port, 1000, 0, SYN, 65535)), 0.0)
    (out,) = st.packets_to_send(0.0)
    synack = (decode_ipv4_tcp(out) if len(d) == 4 else decode_ipv6_tcp(out))[2]
    assert synack.flags == SYN | ACK
    st.receive_packet(
        encode_ip_tcp(
            src, d, Segment(sport, port, 1001, (synack.seq + 1) & 0xFFFFFFFF, ACK, 65535)
        ),
        0.0,
    )
    st.packets_to_send(0.0)


def accepted(lst: Listener) -> list[bytes]:
    """The local addresses of the connections ``lst`` has queued (accepting them)."""
    out = []
    while (conn := lst.accept()) is not None:
        assert conn.state is State.ESTABLISHED
        out.append(conn.local_ip)
    return out


def test_a_listener_bound_to_one_address_takes_only_that_address() -> None:
    st = stack()
    lst = st.listen(80, address=V4A)
    assert lst.families == (4,) and lst.address == addr_to_bytes(V4A)
    assert syn(st, V4B) == RST | ACK  # another of our addresses: nobody listens there
    assert syn(st, V6A) == RST | ACK
    handshake(st, V4A)
    assert accepted(lst) == [addr_to_bytes(V4A)]


def test_listeners_on_different_addresses_share_a_port() -> None:
    st = stack()
    a, b, six = st.listen(80, address=V4A), st.listen(80, address=V4B), st.listen(80, address=V6B)
    handshake(st, V4A, sport=40001)
    handshake(st, V4B, sport=40002)
    handshake(st, V6B, sport=40003)
    assert syn(st, V6A) == RST | ACK
    assert (accepted(a), accepted(b), accepted(six)) == (
        [addr_to_bytes(V4A)],
        [addr_to_bytes(V4B)],
        [addr_to_bytes(V6B)],
    )
    assert st.info()["listeners"] == [80]


def test_the_specific_listener_wins_over_the_other_familys_wildcard() -> None:
    """``[::]:80`` with IPV6_V6ONLY and ``10.0.0.3:80``: IPv6 to the wildcard, IPv4 to
    10.0.0.3 only."""
    st = stack()
    six = st.listen(80, families=(6,))
    four = st.listen(80, address=V4B)
    handshake(st, V6A, sport=40001)
    handshake(st, V4B, sport=40002)
    assert syn(st, V4A) == RST | ACK
    assert accepted(six) == [addr_to_bytes(V6A)] and accepted(four) == [addr_to_bytes(V4B)]


def test_v4_wildcard_and_v6only_wildcard_coexist_dual_stack_does_not() -> None:
    st = stack()
    four = st.listen(80, address="0.0.0.0")
    assert four.families == (4,) and four.address is None
    with pytest.raises(OSError) as info:
        st.listen(80)  # dual-stack [::]:80 covers IPv4 too
    assert info.value.errno == errno.EADDRINUSE
    six = st.listen(80, address="::", families=(6,))  # IPV6_V6ONLY
    handshake(st, V4B, sport=40001)
    handshake(st, V6B, sport=40002)
    assert accepted(four) == [addr_to_bytes(V4B)] and accepted(six) == [addr_to_bytes(V6B)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"address": V4A}),  # dual-stack wildcard, then IPv4 under it
        ({}, {"address": V6A}),  # ... or IPv6 under it
        ({"address": V4A}, {"address": "0.0.0.0"}),  # a wildcard over a bound one
        ({"address": V6A}, {"families": (6,)}),
        ({"address": V4A}, {"address": V4A}),
        ({"address": V4A}, {"address": "::ffff:10.0.0.2"}),  # the same address, mapped
    ],
)
def test_overlapping_listeners_are_refused(
    first: dict[str, object], second: dict[str, object]
) -> None:
    st = stack()
    st.listen(80, **first)  # type: ignore[arg-type]
    with pytest.raises(OSError) as info:
        st.listen(80, **second)  # type: ignore[arg-type]
    assert info.value.errno == errno.EADDRINUSE
    st.listen(81, **second)  # type: ignore[arg-type]  # another port is free


def test_dual_stack_listener_takes_ipv4_and_a_mapped_address_binds_ipv4() -> None:
    st = stack()
    dual = st.listen(80)  # [::]:80, IPV6_V6ONLY off (RFC 3493 §5.3)
    handshake(st, V4A, sport=40001)
    handshake(st, V6A, sport=40002)
    assert sorted(accepted(dual), key=len) == [addr_to_bytes(V4A), addr_to_bytes(V6A)]
    mapped = st.listen(81, address="::ffff:10.0.0.3")  # [::ffff:10.0.0.3]:81
    assert mapped.address == addr_to_bytes(V4B) and mapped.families == (4,)
    assert syn(st, V4A, 81) == RST | ACK
    assert syn(st, V6B, 81) == RST | ACK
    handshake(st, V4B, 81)
    assert accepted(mapped) == [addr_to_bytes(V4B)]
    with pytest.raises(OSError) as info:  # a mapped address on an IPV6_V6ONLY listener
        st.listen(82, address="::ffff:10.0.0.3", families=(6,))
    assert info.value.errno == errno.EINVAL


def test_setting_v6only_rekeys_the_listener() -> None:
    """What the socket layer does: listen dual-stack, then narrow the families."""
    st = stack()
    lst = st.listen(80)
    lst.families = (6,)
    assert syn(st, V4A) == RST | ACK
    four = st.listen(80, address="0.0.0.0")  # no longer a conflict
    with pytest.raises(OSError):
        lst.families = (4, 6)  # would overlap 0.0.0.0:80 again
    assert lst.families == (6,)
    handshake(st, V4A, sport=40001)
    handshake(st, V6A, sport=40002)
    assert accepted(four) == [addr_to_bytes(V4A)] and accepted(lst) == [addr_to_bytes(V6A)]
    four.close()
    lst.families = (4, 6)
    handshake(st, V4A, sport=40003)
    assert accepted(lst) == [addr_to_bytes(V4A)]


def test_closing_one_listener_leaves_the_other_on_its_port() -> None:
    st = stack()
    a, b = st.listen(80, address=V4A), st.listen(80, address=V4B)
    a.close()
    assert syn(st, V4A) == RST | ACK
    handshake(st, V4B)
    assert accepted(b) == [addr_to_bytes(V4B)]
    assert st.info()["listeners"] == [80]
    b.close()
    assert st.info()["listeners"] == []


def test_an_address_the_stack_does_not_own_cannot_be_bound() -> None:
    with pytest.raises(OSError) as info:
        stack().listen(80, address="10.9.9.9")
    assert info.value.errno == errno.EADDRNOTAVAIL
