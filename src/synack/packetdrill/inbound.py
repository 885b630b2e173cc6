"""The script's packets: ``<`` lines built into IPv4/TCP or IPv6/TCP packets and injected.

Inbound ``seq`` values are sent as written (shifted by ``--remote_isn``); ``ack``
values, SACK blocks and TS ecr are mapped into the target's sequence and timestamp
space, learned from its SYN or SYN-ACK and its TS vals.  Payloads are the known
byte pattern at their stream offset.
"""

from __future__ import annotations

import struct

from ..tcp.seq import MASK
from ..wire.checksum import finish, ones_sum, pseudo_header_sum
from ..wire.ipv4 import PROTO_TCP, build_ipv4_header
from ..wire.ipv6 import addr_to_bytes, build_ipv6_header
from ..wire.segment import ACK, SYN
from .features import needs_feature
from .parser import (
    ECN_CODEPOINTS,
    Event,
    PacketSpec,
)
from .results import ScriptFailure
from .scheduling import Scheduling
from .state import REOPENABLE, spec_flag_bits
from .syscalls import pattern


class Inbound(Scheduling):
    """Building and injecting the script's packets."""

    # ------------------------------------------------------------ inbound
    def _inbound(self, ev: Event, pkt: PacketSpec) -> None:
        bits = spec_flag_bits(pkt.flags)
        sport = pkt.src_port or self.tuple_remote
        dport = pkt.dst_port or self.tuple_local
        if bits & SYN and self._syn_reopens(sport, dport, bits):
            # The script's ISN for payload numbering: only a SYN that (re)opens a
            # connection sets it, not one that hits an established connection.
            self.remote_isn_script = pkt.seq
        seq = (pkt.seq + self.remote_shift) & MASK
        ack = (pkt.ack + self._local_offset()) & MASK if pkt.ack is not None else 0
        opts = self._encode_options(ev, pkt, bits)
        data_seq = pkt.seq + (1 if bits & SYN else 0)
        base = self.remote_isn_script + 1 if self.remote_isn_script is not None else 1
        payload = pattern((data_seq - base) & MASK, pkt.length)
        tos = ECN_CODEPOINTS[pkt.ecn] if pkt.ecn is not None else 0
        raw = build_packet(
            self.remote_ip,
            self.local_ip,
            sport,
            dport,
            seq,
            ack,
            bits,
            pkt.win or 0,
            pkt.urg or 0,
            opts,
            payload,
            tos,
        )
        if self._capture is not None:
            self._capture(raw, self.now_us / 1e6, "injected by the script")
        self._inject(raw, bits, sport, dport)
        self._collect()

    def _syn_reopens(self, sport: int, dport: int, bits: int) -> bool:
        """Does an inbound SYN on this tuple start a new connection (a new script ISN)?"""
        existing = self._stack.find(self.remote_ip, sport, dport)
        return existing is None or existing.state in REOPENABLE

    def _inject(self, raw: bytes, bits: int, sport: int, dport: int) -> None:
        self._stack.receive_packet(raw, self.now_us / 1e6)
        if bits & SYN and not bits & ACK:
            conn = self._stack.find(self.remote_ip, sport, dport)
            if conn is not None:
                self._layer.current = conn

    def _encode_options(self, ev: Event, pkt: PacketSpec, bits: int) -> bytes:
        out = bytearray()
        for o in pkt.options or ():
            if o.kind in ("FO", "FOEXP"):
                if not self.fast_open:
                    raise ScriptFailure(
                        ev.line, needs_feature(f"the {o.kind} option", "TCP Fast Open")
                    )
                if o.kind == "FO":
                    out += struct.pack("!BB", 34, 2 + len(o.cookie)) + o.cookie
                else:
                    out += struct.pack("!BBH", 254, 4 + len(o.cookie), 0xF989) + o.cookie
            elif o.kind == "nop":
                out.append(1)
            elif o.kind == "eol":
                out.append(0)
            elif o.kind == "mss":
                out += struct.pack("!BBH", 2, 4, o.value)
            elif o.kind == "wscale":
                out += struct.pack("!BBB", 3, 3, o.value)
            elif o.kind == "sackOK":
                out += b"\x04\x02"
            elif o.kind == "sack":
                off = self._local_offset()
                out += struct.pack("!BB", 5, 2 + 8 * len(o.blocks))
                for left, right in o.blocks:
                    out += struct.pack("!II", (left + off) & MASK, (right + off) & MASK)
            elif o.kind == "TS":
                ecr = o.ecr
                if bits & ACK:
                    ecr = self._map_ecr(ev, o.ecr)
                out += struct.pack("!BBII", 8, 10, o.val, ecr)
        while len(out) % 4:
            out.append(0)
        return bytes(out)

    def _map_ecr(self, ev: Event, script_ecr: int) -> int:
        live = self.ts_map.get(script_ecr)
        if live is not None:
            return live
        if self.ts_ecr_scaled and self.ts_base is not None:
            return (script_ecr - self.ts_base[0] + self.ts_base[1]) & MASK
        raise ScriptFailure(
            ev.line,
            f"error handling packet: unable to infer live TS ecr for "
            f"script TS ecr {script_ecr}; no matching or preceding "
            "outbound TS val",
        )


def build_packet(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    urgent: int,
    options: bytes,
    payload: bytes,
    tos: int = 0,
) -> bytes:
    """An IPv4/TCP or IPv6/TCP packet (by the addresses' family) with exactly these
    fields and options, checksums filled in (the pseudo-header of RFC 9293 §3.1 or
    RFC 8200 §8.1); ``tos`` is the TOS byte or the Traffic Class."""
    src_b, dst_b = addr_to_bytes(src), addr_to_bytes(dst)
    doff = (20 + len(options)) // 4
    header = (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, urgent)
        + options
    )
    length = len(header) + len(payload)
    acc = ones_sum(header, pseudo_header_sum(src_b, dst_b, PROTO_TCP, length))
    csum = finish(ones_sum(payload, acc)) if payload else finish(acc)
    header = header[:16] + struct.pack("!H", csum) + header[18:]
    if len(src_b) == 16:
        ip = build_ipv6_header(src_b, dst_b, PROTO_TCP, length, traffic_class=tos)
    else:
        ip = build_ipv4_header(src_b, dst_b, PROTO_TCP, length, tos=tos)
    return ip + header + payload
