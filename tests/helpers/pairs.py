"""Pairs of stacks and hosts joined by hand or in memory, for tests that need two
ends: plain stacks (:func:`stack_pair`), offloading stacks with a software "kernel"
that cuts and checksums what they write (:func:`offload_pair`, :func:`shuttle`), and
blocking sockets (:func:`connected`, with the ``hosts`` fixture of conftest.py)."""

from __future__ import annotations

import struct
from typing import Any

from synack.sockets import SocketHost, SynackSocket
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.wire.checksum import ones_sum
from synack.wire.segment import CWR, FIN, PSH
from synack.wire.vnet import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_ECN,
    GSO_NONE,
    GSO_TCPV4,
    VNET_HDR,
    VNET_HDR_LEN,
    parse_vnet_header,
)

#: Socket tests' addresses and their generous timeout (a bug fails, never hangs).
SOCK_A, SOCK_B = "10.0.0.1", "10.0.0.2"

A_IP, B_IP = "10.0.0.1", "10.0.0.2"


A6, B6 = "2001:db8::1", "2001:db8::2"


def addrs(ipv6: bool) -> tuple[str, str]:
    return (A6, B6) if ipv6 else (A_IP, B_IP)


def connect_pair(a: Stack, b: Stack) -> tuple[Connection, Connection]:
    """Open a connection from ``a`` to port 80 on ``b`` at time 0; both ends ESTABLISHED."""
    lst = b.listen(80)
    ca = a.connect(b.address, 80, now=0.0)
    for _ in range(4):
        for p in a.packets_to_send(0.0):
            b.receive_packet(p, 0.0)
        for p in b.packets_to_send(0.0):
            a.receive_packet(p, 0.0)
    cb = lst.accept()
    assert cb is not None and cb.state.name == "ESTABLISHED"
    return ca, cb


def stack_pair(ipv6: bool = False, **cfg: Any) -> tuple[Stack, Stack, Connection, Connection]:
    config = TcpConfig(**cfg)
    a_ip, b_ip = addrs(ipv6)
    a = Stack(a_ip, config=config, isn_secret=b"a" * 16)
    b = Stack(b_ip, config=config, isn_secret=b"b" * 16)
    return (a, b, *connect_pair(a, b))


MTU = 1500


def finish_checksum(ip_packet: bytearray, csum_start: int, csum_offset: int) -> None:
    """Complete a partial checksum as a NIC would (virtio 1.2 §5.1.6.2)."""
    total = ones_sum(ip_packet[csum_start:])
    struct.pack_into("!H", ip_packet, csum_start + csum_offset, 0xFFFF ^ total)


def ipv4_header_checksum(hdr: bytearray) -> None:
    hdr[10:12] = b"\0\0"
    struct.pack_into("!H", hdr, 10, 0xFFFF ^ ones_sum(bytes(hdr[:20])))


def kernel_segment(packet: bytes) -> list[bytes]:
    """What the kernel puts on a wire for one packet written to an offloading TUN."""
    vh = parse_vnet_header(packet)
    ip = bytearray(packet[VNET_HDR_LEN:])
    ihl = (ip[0] & 0xF) * 4
    thl = (ip[ihl + 12] >> 4) * 4
    hdr_len = ihl + thl
    payload = bytes(ip[hdr_len:])
    if vh.gso_type & ~GSO_ECN == GSO_NONE:
        if vh.flags & F_NEEDS_CSUM:
            finish_checksum(ip, vh.csum_start, vh.csum_offset)
        return [bytes(ip)]
    assert vh.gso_type & ~GSO_ECN == GSO_TCPV4 and vh.flags & F_NEEDS_CSUM
    assert vh.hdr_len == hdr_len and vh.gso_size > 0
    seq = struct.unpack_from("!I", ip, ihl + 4)[0]
    flags = ip[ihl + 13]
    pieces = [payload[i : i + vh.gso_size] for i in range(0, len(payload), vh.gso_size)]
    out = []
    for n, piece in enumerate(pieces):
        seg = bytearray(ip[:hdr_len]) + piece
        struct.pack_into("!H", seg, 2, hdr_len + len(piece))
        ipv4_header_checksum(seg)
        struct.pack_into("!I", seg, ihl + 4, (seq + n * vh.gso_size) & 0xFFFFFFFF)
        f = flags
        if n != len(pieces) - 1:
            f &= ~(FIN | PSH)
        if n and vh.gso_type & GSO_ECN:
            f &= ~CWR
        seg[ihl + 13] = f
        struct.pack_into("!H", seg, ihl + 16, 0)
        struct.pack_into(
            "!H",
            seg,
            ihl + 16,
            0xFFFF
            ^ ones_sum(
                bytes(seg[12:20]) + struct.pack("!HH", 6, len(seg) - ihl) + bytes(seg[ihl:])
            ),
        )
        out.append(bytes(seg))
    return out


def offload_pair() -> tuple[Stack, Stack]:
    a = Stack("10.0.0.1", offload=True, max_segment_payload=65455, mtu=MTU, seed=1)
    b = Stack("10.0.0.2", offload=True, max_segment_payload=65455, mtu=MTU, seed=2)
    return a, b


def shuttle(a: Stack, b: Stack, now: float, seen: dict[str, int]) -> bool:
    """Move packets both ways as two kernels would: cut per MSS on the wire,
    then coalesced again and handed over with the checksum marked as good."""
    moved = False
    for src, dst in ((a, b), (b, a)):
        for pkt in src.packets_to_send(now):
            moved = True
            vh = parse_vnet_header(pkt)
            if vh.gso_type:
                seen["gso"] += 1
            for piece in kernel_segment(pkt):
                assert len(piece) <= MTU
            # GRO: the receiver gets the big segment at once, checksum trusted.
            hdr = VNET_HDR.pack(F_DATA_VALID, 0, 0, 0, 0, 0)
            ip = bytearray(pkt[VNET_HDR_LEN:])
            if vh.flags & F_NEEDS_CSUM:
                ip[vh.csum_start + vh.csum_offset : vh.csum_start + vh.csum_offset + 2] = b"xx"
            dst.receive_packet(hdr + bytes(ip), now)
    return moved


T = 5.0  # a generous timeout so a bug fails a test instead of hanging it


def connected(
    a: SocketHost, b: SocketHost, port: int = 5000
) -> tuple[SynackSocket, SynackSocket, SynackSocket]:
    """(client, accepted server side, listener), all with timeout T."""
    listener = b.create_server(("", port))
    listener.settimeout(T)
    client = a.create_connection((SOCK_B, port), timeout=T)
    server, addr = listener.accept()
    server.settimeout(T)
    assert addr == client.getsockname()
    return client, server, listener
