"""Mutation fuzzer for Stack.receive_packet (issue 8 item 5).

The corpus is the packets of a real simulated exchange (three clients talking
to one server: handshakes, data both ways, SACK, timestamps, window scaling,
FINs).  The target is the server's stack paused in the middle of that
exchange: a listener and live connections in several states, restored from a
snapshot every few thousand inputs.  Each input is a captured packet with one
to three mutations: bit flips, byte overwrites, truncation, option corruption,
header fields (sequence/ack numbers, flags, window, data offset, IP total
length, IHL, fragment bits, protocol), an ICMP error quoting a packet the server
sent, or a splice of two packets.  Most inputs get their IP and TCP checksums
fixed up so that the mutation reaches the TCP logic rather than the checksum
test.

After every input: no exception escaped, and the input is accounted for
exactly once in ``Stack.stats`` (``segs_in``, or one counted ``drop_*``, or
one ICMP outcome).  Every ``check_every`` inputs the stack's invariants are
checked (table keys, half-open counts, TIME-WAIT bound, SND.UNA <= SND.NXT,
finite timers).  Anything else is a finding, printed with the packet.

    python benchmarks/fuzz_mutation.py --inputs 1000000      # make fuzz
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synack.scenarios.scenario import SERVER_IP, Scenario
from synack.sim import PathConfig
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.states import State
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.icmp import build_dest_unreachable
from synack.wire.ipv4 import PROTO_ICMP, ip_to_bytes
from synack.wire.packet import encode_ipv4, encode_ipv4_tcp
from synack.wire.segment import SYN, Segment

SERVER = ip_to_bytes(SERVER_IP)
SNAPSHOT_AT = 0.83  # seconds into the exchange: connections in several states
OUTCOMES = ("icmp_echo_replies", "icmp_unreachable_accepted")


# --------------------------------------------------------------------------- corpus
def _exchange(seed: int) -> Scenario:
    """Five clients, chosen so that the server holds connections in many states at
    SNAPSHOT_AT: receiving an upload, stuck on a zero window with its FIN queued,
    FIN-WAIT-2, TIME-WAIT, SYN-RECEIVED, plus the two listeners."""
    sc = Scenario(
        seed, config=TcpConfig(rcv_buf=32768), path=PathConfig(delay=0.02), record_wire=False
    )
    sc.client.tracer = sc.server.tracer = None
    rng = random.Random(seed)
    sc.listen(80, b"response " * 4000, send_after_eof=True)  # answers after the request
    sc.listen(81, rng.randbytes(200_000))  # sends at once, then closes first
    sc.connect(80, rng.randbytes(4_000_000))  # a long upload: ESTABLISHED
    sc.connect(81, b"", read=False, close_when_done=False)  # zero window: FIN-WAIT-1
    sc.net.call_at(0.2, lambda now: sc.connect(81, b"", close_when_done=False))  # FIN-WAIT-2
    sc.net.call_at(0.3, lambda now: sc.connect(81, b"", send_after_eof=True))  # TIME-WAIT
    sc.net.call_at(0.8, lambda now: sc.connect(80, b"late request"))
    return sc


def capture(seed: int = 1) -> tuple[list[bytes], list[bytes]]:
    """(packets the server received, packets the server sent) in a full exchange."""
    sc = _exchange(seed)
    to_server: list[bytes] = []
    from_server: list[bytes] = []

    def tap(
        now: float, kind: str, src: bytes, dst: bytes, packet: bytes, reason: str | None
    ) -> None:
        if kind == "send":
            (to_server if dst == SERVER else from_server).append(bytes(packet))

    sc.net.add_tap(tap)
    sc.run(until=5.0)
    return to_server, from_server


def snapshot(seed: int = 1, *, cookies: bool = False) -> tuple[Stack, float]:
    """The server stack paused mid-exchange, detached from the network.  With
    ``cookies`` its half-open limit is 0 and it has just answered a SYN with a cookie,
    so that mutated ACKs reach the cookie check."""
    sc = _exchange(seed)
    sc.run(until=SNAPSHOT_AT)
    stack = sc.server
    for _ in stack.events():
        pass
    stack.packets_to_send(sc.now)
    states = Counter(c.state for c in stack.connections)
    assert stack.connections and 80 in stack.info()["listeners"], states
    if cookies:
        stack.max_half_open = sum(
            1 for c in stack.connections if c.state is State.SYN_RECEIVED
        )  # full already
        syn = Segment(50000, 80, 12345, 0, SYN, 65535, mss=1460, tsval=1, tsecr=0)
        stack.receive_packet(encode_ipv4_tcp(ip_to_bytes("10.0.0.1"), SERVER, syn), sc.now)
        stack.packets_to_send(sc.now)
        assert stack.stats["syncookies_sent"] == 1
    return copy.deepcopy(stack), sc.now


# --------------------------------------------------------------------------- mutation
def fix_checksums(p: bytearray) -> None:
    """Recompute the IPv4 header checksum and, if the layout allows, the TCP checksum."""
    if len(p) < 20:
        return
    ihl = (p[0] & 0x0F) * 4
    if ihl < 20 or len(p) < ihl:
        return
    p[10:12] = b"\0\0"
    p[10:12] = internet_checksum(bytes(p[:ihl])).to_bytes(2, "big")
    if p[9] != 6:
        return
    total = int.from_bytes(p[2:4], "big")
    end = min(total, len(p))
    seg = p[ihl:end]
    if len(seg) < 18:
        return
    seg[16:18] = b"\0\0"
    csum = internet_checksum(
        bytes(seg), pseudo_header_sum(bytes(p[12:16]), bytes(p[16:20]), 6, len(seg))
    )
    p[ihl + 16 : ihl + 18] = csum.to_bytes(2, "big")


INTERESTING = (0, 1, 0x7F, 0x80, 0xFF)
OPTION_KINDS = (0, 1, 2, 3, 4, 5, 8, 19, 28, 29, 30, 34, 254, 255)


class Mutator:
    def __init__(
        self, rng: random.Random, to_server: list[bytes], from_server: list[bytes]
    ) -> None:
        self.rng = rng
        self.to_server = to_server
        self.from_server = from_server
        self.ops = (
            self.bitflip,
            self.bitflip,
            self.overwrite,
            self.truncate,
            self.options,
            self.options,
            self.seqack,
            self.seqack,
            self.flags,
            self.window,
            self.data_offset,
            self.ip_fields,
            self.icmp,
            self.splice,
            self.reflect,
        )
        self.used: Counter[str] = Counter()

    def __call__(self) -> bytes:
        rng = self.rng
        p = bytearray(rng.choice(self.to_server))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            op = rng.choice(self.ops)
            self.used[op.__name__] += 1
            p = op(p)
        if rng.random() < 0.9:
            fix_checksums(p)
        return bytes(p)

    # each operator returns the (possibly new) packet
    def bitflip(self, p: bytearray) -> bytearray:
        rng = self.rng
        hi = min(len(p), 80) if rng.random() < 0.8 else len(p)
        for _ in range(rng.randint(1, 8)):
            if hi:
                i = rng.randrange(hi)
                p[i] ^= 1 << rng.randrange(8)
        return p

    def overwrite(self, p: bytearray) -> bytearray:
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            if p:
                p[rng.randrange(min(len(p), 80))] = rng.choice((*INTERESTING, rng.randrange(256)))
        return p

    def truncate(self, p: bytearray) -> bytearray:
        rng = self.rng
        cut = rng.randrange(len(p) + 1)
        q = p[:cut]
        if rng.random() < 0.5 and len(q) >= 4:
            q[2:4] = len(q).to_bytes(2, "big")  # keep the IP total length consistent
        return q

    def options(self, p: bytearray) -> bytearray:
        """Replace the TCP options with random TLVs (valid-looking or not)."""
        rng = self.rng
        if len(p) < 40:
            return p
        doff = (p[32] >> 4) * 4
        payload = p[20 + doff :] if 20 + doff <= len(p) else b""
        opts = bytearray()
        for _ in range(rng.randint(1, 6)):
            kind = rng.choice(OPTION_KINDS)
            if kind in (0, 1):
                opts.append(kind)
                continue
            length = rng.choice((0, 1, 2, 3, 4, 6, 8, 10, 18, 34, 40, rng.randrange(256)))
            body = bytes(rng.randrange(256) for _ in range(max(length - 2, 0)))
            opts += bytes((kind, length & 0xFF)) + body
        opts = opts[:40]
        while len(opts) % 4 and rng.random() < 0.9:
            opts.append(1)
        hdr = p[20:40] + opts
        hdr[12] = ((len(hdr) // 4) << 4) | (hdr[12] & 0x0F) if len(hdr) <= 60 else hdr[12]
        q = p[:20] + hdr + payload
        q[2:4] = len(q).to_bytes(2, "big")
        return q

    def seqack(self, p: bytearray) -> bytearray:
        rng = self.rng
        if len(p) < 32:
            return p
        off = rng.choice((24, 28))
        v = int.from_bytes(p[off : off + 4], "big")
        r = rng.random()
        if r < 0.3:
            v = rng.getrandbits(32)
        elif r < 0.9:
            v = (
                v
                + rng.choice(
                    (-1, 1, -1460, 1460, 65535, -65536, rng.randint(-100000, 100000), 1 << 31)
                )
            ) & 0xFFFFFFFF
        else:
            v = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000))
        p[off : off + 4] = v.to_bytes(4, "big")
        return p

    def flags(self, p: bytearray) -> bytearray:
        if len(p) >= 34:
            p[33] = (
                self.rng.randrange(256)
                if self.rng.random() < 0.5
                else p[33] ^ (1 << self.rng.randrange(8))
            )
        return p

    def window(self, p: bytearray) -> bytearray:
        if len(p) >= 36:
            p[34:36] = self.rng.choice((0, 1, 0xFFFF, self.rng.randrange(65536))).to_bytes(2, "big")
        return p

    def data_offset(self, p: bytearray) -> bytearray:
        if len(p) >= 33:
            p[32] = (self.rng.randrange(16) << 4) | (p[32] & 0x0F)
        return p

    def ip_fields(self, p: bytearray) -> bytearray:
        rng = self.rng
        if len(p) < 20:
            return p
        which = rng.randrange(6)
        if which == 0:
            p[2:4] = rng.randrange(65536).to_bytes(2, "big")  # total length
        elif which == 1:
            p[0] = (p[0] & 0xF0) | rng.randrange(16)  # IHL
        elif which == 2:
            p[6:8] = rng.choice((0x2000, 0x0001, 0x3FFF, 0x4000)).to_bytes(2, "big")  # frags
        elif which == 3:
            p[9] = rng.choice((1, 17, 6, 0, 255))  # protocol
        elif which == 4:
            p[0] = (rng.randrange(16) << 4) | (p[0] & 0x0F)  # version
        else:
            p[16:20] = rng.getrandbits(32).to_bytes(4, "big")  # destination
        return p

    def icmp(self, p: bytearray) -> bytearray:
        """An ICMP error to the server quoting (a mutation of) a packet the server sent."""
        rng = self.rng
        quoted = bytearray(rng.choice(self.from_server))
        if rng.random() < 0.5:
            quoted = self.seqack(quoted)
        if rng.random() < 0.3:
            quoted = quoted[: rng.randrange(len(quoted) + 1)]
        typ = rng.choice((3, 3, 3, 11, 4, 5, 12, 0, 8))
        code = rng.choice((0, 1, 2, 3, 4, 9, 10, 13, rng.randrange(256)))
        mtu = rng.choice((0, 68, 127, 128, 576, 1500, 65535))
        body = bytearray(build_dest_unreachable(code, bytes(quoted), next_hop_mtu=mtu))
        body[0] = typ
        body[2:4] = b"\0\0"
        body[2:4] = internet_checksum(bytes(body)).to_bytes(2, "big")
        return bytearray(
            encode_ipv4(
                bytes(p[12:16]) if len(p) >= 16 else b"\x0a\0\0\x01",
                SERVER,
                PROTO_ICMP,
                bytes(body),
            )
        )

    def splice(self, p: bytearray) -> bytearray:
        other = self.rng.choice(self.to_server)
        cut = self.rng.randrange(20, max(len(p), 21))
        q = p[:cut] + other[cut:]
        q[2:4] = len(q).to_bytes(2, "big")
        return q

    def reflect(self, p: bytearray) -> bytearray:
        """A packet the server sent, turned around (ports and addresses swapped)."""
        q = bytearray(self.rng.choice(self.from_server))
        if len(q) >= 24:
            q[12:16], q[16:20] = q[16:20], q[12:16]
            q[20:22], q[22:24] = q[22:24], q[20:22]
        return q


# --------------------------------------------------------------------------- the run
@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    findings: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    operators: Counter[str] = field(default_factory=Counter)
    invariant_checks: int = 0
    restores: int = 0

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def check_invariants(st: Stack) -> None:
    """The stack's tables agree with each other and with their limits."""
    embryonic_per_listener: Counter[int] = Counter()  # by id() of the listener
    for key, conn in st._conns.items():
        assert key == (conn.remote_ip, conn.remote_port, conn.local_port, conn.local_ip), key
        assert conn.state is not State.CLOSED or conn in st._dirty, conn
        assert conn.info()["unacked"] >= 0, conn
        assert conn.readable <= conn.config.rcv_buf
        assert conn.unsent <= conn.config.snd_buf
    for conn, lst in st._embryonic.items():
        assert conn.state is State.SYN_RECEIVED, conn
        embryonic_per_listener[id(lst)] += 1
    for key, lst in st._listeners.items():
        assert key in lst.table_keys(), (key, lst)
        assert lst.half_open == embryonic_per_listener[id(lst)], (lst, embryonic_per_listener)
        assert 0 <= lst.half_open <= st.max_half_open, (lst, st.max_half_open)
        assert len(lst.accept_queue) <= lst.backlog
    assert len(st._time_wait) <= st.max_time_wait
    t = st.next_timer()
    assert t is None or math.isfinite(t)


def _outcome_counts(stats: Counter[str]) -> tuple[int, int]:
    other = sum(v for k, v in stats.items() if k.startswith("drop_"))
    other += sum(stats[k] for k in OUTCOMES)
    return stats["segs_in"], other


def run(
    inputs: int,
    *,
    seed: int = 1,
    restore_every: int = 5000,
    check_every: int = 50,
    max_findings: int = 20,
) -> Report:
    to_server, from_server = capture(seed)
    bases = [snapshot(seed), snapshot(seed, cookies=True)]  # alternate epochs
    base, t0 = bases[0]
    rng = random.Random(seed * 7919 + 17)
    mutate = Mutator(rng, to_server, from_server)
    rep = Report()
    start = time.process_time()
    st = copy.deepcopy(base)
    now = t0
    for i in range(inputs):
        if i and i % restore_every == 0:
            rep.restores += 1
            base, t0 = bases[rep.restores % len(bases)]
            st = copy.deepcopy(base)
            now = t0
        pkt = mutate()
        now += 0.0005
        seg_before, other_before = _outcome_counts(st.stats)
        try:
            st.receive_packet(pkt, now)
            seg_after, other_after = _outcome_counts(st.stats)
            d_seg, d_other = seg_after - seg_before, other_after - other_before
            if d_seg == 1:
                rep.outcomes["processed"] += 1
            elif d_seg == 0 and d_other == 1:
                rep.outcomes["counted_drop"] += 1
            else:
                raise AssertionError(
                    f"input not accounted for once: segs_in +{d_seg}, "
                    f"drops/ICMP outcomes +{d_other}"
                )
            st.packets_to_send(now)
            t = st.next_timer()
            if t is not None and t <= now:
                st.handle_timer(now)
                st.packets_to_send(now)
            for _ in st.events():
                pass
            if i % check_every == 0:
                check_invariants(st)
                rep.invariant_checks += 1
        except Exception as exc:  # a finding: record it, restore, go on
            rep.findings.append(
                {
                    "input": i,
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": traceback.extract_tb(exc.__traceback__)[-1].name,
                    "packet": pkt.hex(),
                }
            )
            if len(rep.findings) >= max_findings:
                rep.inputs = i + 1
                break
            st = copy.deepcopy(base)
            now = t0
        rep.inputs = i + 1
    rep.seconds = time.process_time() - start
    rep.operators = mutate.used
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rep = run(args.inputs, seed=args.seed, max_findings=args.inputs)
    print(
        f"mutation fuzzer: {rep.inputs} inputs in {rep.seconds:.1f} s CPU "
        f"({rep.rate:,.0f} inputs/s), seed {args.seed}"
    )
    print(
        f"  processed by a connection or listener: {rep.outcomes['processed']}, "
        f"counted drops: {rep.outcomes['counted_drop']}, "
        f"invariant checks: {rep.invariant_checks}, snapshot restores: {rep.restores}"
    )
    print("  operators: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.operators.items())))
    print(f"  findings: {len(rep.findings)}")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in rep.findings:  # one line per distinct (error, function), first input shown
        groups.setdefault((f["error"][:200], f["where"]), []).append(f)
    for (error, where), fs in groups.items():
        pkt = fs[0]["packet"]
        print(
            f"    {len(fs)} x {error} in {where}; first at input {fs[0]['input']}:\n"
            f"      packet {pkt[:160]}{'...' if len(pkt) > 160 else ''}"
        )
    return 1 if rep.findings else 0


if __name__ == "__main__":
    sys.exit(main())
