"""A bare Python TCP sink on a TUN device: the ceiling for synack's receive path.

It completes one handshake, ACKs in-order data (one cumulative ACK per batch of
reads), answers the peer's FIN with its own, and reports how fast the data
came.  Packets are built by hand with ``struct``; nothing from synack is used,
so this measures what a Python loop on a TUN device can do at all::

    ip netns exec NS python3 benchmarks/tun_sink.py --port 5001 [--mtu 1500] [--offload]

then send to 10.77.0.2:5001 from the namespace.  ``--offload`` opens the
device with IFF_VNET_HDR and turns on TUNSETOFFLOAD (CSUM, TSO4, TSO6): the
kernel hands over TCP chunks of up to 64 KB behind a 10-byte virtio-net
header, with checksums left partial (the sink does not check them anyway).
Prints ``READY {json}`` when the device is up and ``RESULT {json}`` at the end
(``bytes``, ``seconds`` from the first data byte to the FIN, ``packets``,
``acks``).

The window offered is 512 KiB by default: at MTU 1500 that fits in the TUN
device's 500-packet queue, so the kernel never overflows it.  With a larger
window the queue overflows, and since the sink offers neither SACK nor
timestamps the kernel's recovery (dup ACKs, then RTO) was seen to stall the
transfer for seconds on Linux 6.18; the ceiling is meant to measure the loop,
not loss recovery.  Needs root (CAP_NET_ADMIN); run it only inside a namespace.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from typing import Any

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
VNET_HDR_LEN = 10  # struct virtio_net_hdr, the TUN default (TUNSETVNETHDRSZ not used)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_IP_HDR = struct.Struct("!BBHHHBBH4s4s")
_TCP_HDR = struct.Struct("!HHIIBBHHH")
_TCP_PEEK = struct.Struct("!HHIIH")


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum: ones' complement of the ones' complement sum of 16-bit words.

    Uses the identity 2**16 == 1 (mod 0xFFFF): the big-endian integer of the data
    is congruent to the sum of its words, so one ``%`` replaces the word loop.
    """
    if len(data) % 2:
        data += b"\0"
    s = int.from_bytes(data, "big") % 0xFFFF
    if s == 0 and any(data):
        s = 0xFFFF
    return ~s & 0xFFFF


def tcp_options(mss: int | None = None, wscale: int | None = None) -> bytes:
    """MSS and window-scale options, padded with NOPs to a multiple of 4 bytes."""
    out = b""
    if mss is not None:
        out += struct.pack("!BBH", 2, 4, mss)
    if wscale is not None:
        out += b"\x01" + struct.pack("!BBB", 3, 3, wscale)
    return out + b"\x01" * (-len(out) % 4)


def build_segment(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes = b"",
    payload: bytes = b"",
    ident: int = 0,
) -> bytes:
    """One IPv4 packet carrying a TCP segment, both checksums filled in."""
    if len(options) % 4:
        raise ValueError("options must be padded to a multiple of 4 bytes")
    tcp_len = 20 + len(options) + len(payload)
    tcp = (
        _TCP_HDR.pack(
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            (5 + len(options) // 4) << 4,
            flags,
            window,
            0,
            0,
        )
        + options
        + payload
    )
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, tcp_len)
    csum = internet_checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = _IP_HDR.pack(0x45, 0, 20 + tcp_len, ident, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", internet_checksum(ip)) + ip[12:]
    return ip + tcp


def parse_segment(pkt: bytes, off: int = 0) -> tuple[Any, ...] | None:
    """``(src, dst, sport, dport, seq, ack, flags, payload_len)`` of an IPv4/TCP packet
    starting at ``off``, or None for anything else.  The payload length comes from
    the bytes read (a GSO chunk may be larger than its IP header says)."""
    if len(pkt) < off + 40 or pkt[off] >> 4 != 4 or pkt[off + 9] != socket.IPPROTO_TCP:
        return None
    ihl = (pkt[off] & 15) * 4
    t = off + ihl
    sport, dport, seq, ack, offflags = _TCP_PEEK.unpack_from(pkt, t)
    doff = (offflags >> 12) * 4
    plen = len(pkt) - t - doff
    return (
        pkt[off + 12 : off + 16],
        pkt[off + 16 : off + 20],
        sport,
        dport,
        seq,
        ack,
        offflags & 0x1FF,
        plen,
    )


def window_scale_for(window: int) -> int:
    """The smallest shift that lets ``window`` be advertised in 16 bits."""
    shift = 0
    while (window >> shift) > 0xFFFF and shift < 14:
        shift += 1
    return shift


class Sink:
    """The sink's state for one connection; :meth:`run` is the whole loop."""

    def __init__(
        self, fd: int, ip: bytes, port: int, mtu: int, vnet: bool, window: int = 1 << 19
    ) -> None:
        self.fd = fd
        self.ip = ip
        self.port = port
        self.mss = mtu - 40
        self.off = VNET_HDR_LEN if vnet else 0
        self.prefix = bytes(VNET_HDR_LEN) if vnet else b""
        self.wscale = window_scale_for(window)
        self.win_field = min(0xFFFF, window >> self.wscale)
        self.peer: tuple[bytes, int] | None = None
        self.iss = 0x10000
        self.snd_nxt = self.iss
        self.rcv_nxt = 0
        self.nbytes = 0
        self.packets = 0
        self.acks = 0
        self.ooo = 0
        self.first = 0.0
        self.last = 0.0
        self.done = False

    def _send(self, flags: int, options: bytes = b"", window: int | None = None) -> None:
        assert self.peer is not None
        pkt = build_segment(
            self.ip,
            self.peer[0],
            self.port,
            self.peer[1],
            self.snd_nxt,
            self.rcv_nxt,
            flags,
            self.win_field if window is None else window,
            options,
        )
        os.write(self.fd, self.prefix + pkt)
        self.acks += 1

    def handle(self, pkt: bytes) -> bool:
        """Process one packet; True when it calls for an ACK at the end of the batch."""
        seg = parse_segment(pkt, self.off)
        if seg is None:
            return False
        src, dst, sport, dport, seq, _ack, flags, plen = seg
        if dst != self.ip or dport != self.port:
            return False
        if flags & SYN:
            if self.peer is None or self.peer == (src, sport):
                self.peer = (src, sport)
                self.rcv_nxt = (seq + 1) & 0xFFFFFFFF
                self.snd_nxt = self.iss
                self._send(SYN | ACK, tcp_options(self.mss, self.wscale), window=0xFFFF)
                self.snd_nxt = (self.iss + 1) & 0xFFFFFFFF
            return False
        if self.peer != (src, sport) or flags & RST:
            if flags & RST and self.peer == (src, sport):
                self.done = True
            return False
        self.packets += 1
        if seq != self.rcv_nxt:
            # Out of order (a loss before it) or an old retransmission: a duplicate ACK
            # at once, one per segment, so the sender's fast retransmit sees three.
            self.ooo += 1
            self._send(ACK)
            return False
        if plen > 0:
            if not self.nbytes:
                self.first = time.monotonic()
            self.nbytes += plen
            self.rcv_nxt = (self.rcv_nxt + plen) & 0xFFFFFFFF
        if flags & FIN:
            self.last = time.monotonic()
            self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
            self._send(FIN | ACK)
            self.snd_nxt = (self.snd_nxt + 1) & 0xFFFFFFFF
            self.done = True
            return False
        return plen > 0

    def run(self, timeout: float, batch: int = 256) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        read = os.read
        fd = self.fd
        size = 65536 + 256
        deadline = time.monotonic() + timeout
        while not self.done:
            if not poller.poll(500) and time.monotonic() > deadline:
                raise TimeoutError(f"no FIN within {timeout:.0f} s")
            need_ack = False
            for _ in range(batch):
                try:
                    pkt = read(fd, size)
                except BlockingIOError:
                    break
                if self.handle(pkt):
                    need_ack = True
                if self.done:
                    break
            if need_ack and not self.done:
                self._send(ACK)


def open_tun(name: str, vnet: bool) -> tuple[int, str]:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
    res = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
    got = struct.unpack("16sH22x", res)[0].rstrip(b"\0").decode()
    if vnet:
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd, got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tun", default="sbk0")
    p.add_argument("--ip", default="10.77.0.2")
    p.add_argument("--kernel-ip", default="10.77.0.1/24")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument(
        "--window",
        type=int,
        default=1 << 19,
        help="receive window offered (default 512 KiB: see the module docstring)",
    )
    p.add_argument("--offload", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    fd = -1
    try:
        fd, name = open_tun(a.tun, a.offload)
        for cmd in (
            ["ip", "addr", "add", a.kernel_ip, "dev", name],
            ["ip", "link", "set", "dev", name, "mtu", str(a.mtu), "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        sink = Sink(fd, socket.inet_aton(a.ip), a.port, a.mtu, a.offload, a.window)
        print("READY " + json.dumps({"tun": name, "offload": a.offload, "mtu": a.mtu}), flush=True)
        sink.run(a.timeout)
        time.sleep(0.05)  # the peer's last ACK
        print(
            "RESULT "
            + json.dumps(
                {
                    "bytes": sink.nbytes,
                    "seconds": sink.last - sink.first,
                    "packets": sink.packets,
                    "acks": sink.acks,
                    "out_of_order": sink.ooo,
                    "offload": a.offload,
                }
            ),
            flush=True,
        )
    except Exception as exc:  # reported to the orchestrator
        print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    finally:
        if fd >= 0:
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
