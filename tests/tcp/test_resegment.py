"""Resending less than a whole record (#7): after a timeout an offloaded 64 KB record is
cut to the loss window (C18, RFC 5681 §3.1), and after "fragmentation needed" the
segments in flight are resent at once in pieces that fit the path (RFC 1191 §6.5)."""

from __future__ import annotations

import os

from helpers.pairs import connect_pair, offload_pair, shuttle
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.wire import icmp
from synack.wire.ipv4 import PROTO_ICMP, ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4
from synack.wire.vnet import VNET_HDR_LEN

A, B = "10.0.0.1", "10.0.0.2"


def test_a_timeout_resends_one_mss_not_a_whole_offloaded_record() -> None:
    a, b = offload_pair()
    lst = b.listen(5000)
    c = a.connect(B, 5000, now=0.0)
    seen = {"gso": 0}
    now = 0.0
    while c.state.name != "ESTABLISHED" or not lst.accept_queue:
        now += 0.001
        shuttle(a, b, now, seen)
    c.send(os.urandom(300_000))
    lost = a.packets_to_send(now)  # the first flight: lost on the way
    sizes = [len(p) - VNET_HDR_LEN for p in lost]
    assert max(sizes) > 5 * c.eff_mss  # offloaded: the initial window went out as one
    fired: list[tuple[str, list[int]]] = []
    while c.stats["rto_fired"] == 0:
        at = a.next_timer()
        assert at is not None
        probes = c.stats["tlp_probes"]
        a.handle_timer(at)
        out = a.packets_to_send(at)  # lost as well
        lengths = [
            len(decode_ipv4_tcp(p[VNET_HDR_LEN:], verify_checksum=False)[2].payload) for p in out
        ]
        fired.append(("tlp" if c.stats["tlp_probes"] > probes else "rto", lengths))
    # The tail loss probe resent the last MSS of the big record, not all of it
    # (RFC 8985 §7.3); the timeout resent one MSS: the loss window (RFC 5681 §3.1).
    assert fired[0][0] == "tlp" and fired[0][1] == [c.eff_mss]
    assert fired[-1] == ("rto", [c.eff_mss])
    # The rest of the cut record is still outstanding, resent as the window opens.
    assert c._sb.lost_bytes > 0


def _established(config: TcpConfig) -> tuple[Stack, Stack, Connection]:
    a = Stack(A, config=config, seed=1)
    b = Stack(B, config=config, seed=2)
    return a, b, connect_pair(a, b)[0]


def _frag_needed(quoted: bytes, mtu: int) -> bytes:
    body = icmp.build_dest_unreachable(icmp.UNREACH_FRAG_NEEDED, quoted, next_hop_mtu=mtu)
    return encode_ipv4(ip_to_bytes("10.0.0.254"), ip_to_bytes(A), PROTO_ICMP, body)


def test_fragmentation_needed_resends_the_oversized_flight_at_once_in_fitting_pieces() -> None:
    for timestamps in (True, False):
        a, _, c = _established(TcpConfig(timestamps=timestamps))
        c.send(bytes(10 * 1460))
        flight = a.packets_to_send(0.01)  # dropped by a router with a 1000-byte MTU
        assert len(flight) == 10 and all(len(p) == 1500 for p in flight)
        cwnd = c.cwnd
        a.receive_packet(_frag_needed(flight[0], 1000), 0.02)
        again = a.packets_to_send(0.02)  # no RTO wait
        assert again and all(len(p) <= 1000 for p in again)
        sizes = [len(decode_ipv4_tcp(p)[2].payload) for p in again]
        assert max(sizes) == 1000 - 40 - (12 if timestamps else 0)
        # Every byte of the flight was resent (what cwnd allowed), none twice.
        assert sum(sizes) == min(10 * 1460, cwnd)
        assert c.cwnd == cwnd and c.info()["ca_state"] == 0
        assert c.stats["retransmits"] == len(again)


def test_fragmentation_needed_without_oversized_segments_resends_nothing() -> None:
    a, _, c = _established(TcpConfig())
    c.send(bytes(500))
    flight = a.packets_to_send(0.01)
    a.receive_packet(_frag_needed(flight[0], 1000), 0.02)
    assert a.packets_to_send(0.02) == []
    assert c.eff_mss == 1000 - 52


def test_a_small_window_resends_the_rest_later_still_without_a_congestion_response() -> None:
    """cwnd below the flight (as just after an ECN reduction): what does not fit stays
    marked lost, and the ACKs that follow must not start fast recovery for it."""
    a, b, c = _established(TcpConfig(timestamps=False))
    c.send(bytes(10 * 1460))
    flight = a.packets_to_send(0.01)
    c._cc.cwnd = c._cc.ssthresh = 5 * 1460
    a.receive_packet(_frag_needed(flight[0], 1000), 0.02)
    now = 0.02
    got = 0
    for _ in range(50):
        now += 0.01
        for p in a.packets_to_send(now):
            assert len(p) <= 1000
            b.receive_packet(p, now)
        for p in b.packets_to_send(now):
            a.receive_packet(p, now)
        got = c.stats["bytes_acked"]
        if got == 10 * 1460:
            break
        a.handle_timer(now)
        b.handle_timer(now)
    assert got == 10 * 1460
    assert c.stats["recoveries"] == 0 and c.stats["rto_fired"] == 0
    assert c.cwnd >= 5 * 1460


def test_a_lost_last_segment_is_resent_with_its_fin() -> None:
    """The FIN's sequence number does not count against the window when a record is
    cut: one MSS of data and the FIN go out again as one segment."""
    a, b, c = _established(TcpConfig(timestamps=False, sack=False))
    c.send(bytes(c.eff_mss))
    c.shutdown(0.0)
    assert len(a.packets_to_send(0.0)) == 1  # data+FIN, lost
    at = a.next_timer()
    assert at is not None
    a.handle_timer(at)
    again = a.packets_to_send(at)
    assert len(again) == 1
    seg = decode_ipv4_tcp(again[0])[2]
    assert seg.flags & 0x01 and len(seg.payload) == c.eff_mss
    b.receive_packet(again[0], at)
    for p in b.packets_to_send(at):
        a.receive_packet(p, at)
    assert c.state.name == "FIN_WAIT_2"
    assert c.stats["recoveries"] == 0
