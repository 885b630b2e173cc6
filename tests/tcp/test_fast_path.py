"""Header prediction (#7): the raw-bytes fast path changes the cost, never the result.

Two stacks exchange data through a seeded network that delays, reorders,
drops, duplicates, corrupts and ECN-marks packets while the applications
send, read slowly (zero windows) and close at random.  Each run happens twice,
with ``fast_path`` on and off; every packet either stack sends, every byte
either application reads and every counter of every connection must be the
same.  Unit tests pin down the cases that must leave the fast path.  Both families:
the IPv6 fast path (fixed header, Next Header TCP) is held to the same standard.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest

from helpers.pairs import A_IP, B_IP, addrs, connect_pair, stack_pair
from synack.stack import Stack
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import decode_ip_tcp, encode_ip_tcp
from synack.wire.segment import ACK, PSH, SYN, Segment

FAMILY = pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])


def _configs(rng: random.Random) -> TcpConfig:
    scaling = rng.random() < 0.7
    linux = rng.random() < 0.25  # the packetdrill Linux profile's memory-model knobs
    return TcpConfig(
        accept_beyond_window=linux,
        rcv_truesize_headroom=424 if linux else None,
        snd_skb_overhead=1280 if linux and rng.random() < 0.5 else None,
        snd_wake_ratio=0.5 if linux else 0.0,
        timestamps=rng.random() < 0.7,
        sack=rng.random() < 0.7,
        window_scaling=scaling,
        ecn=rng.choice(["on", "passive", "off"]),
        delayed_ack=rng.choice([0.0, 0.04, 0.2]),
        quickack=rng.choice([0, 0, 8]),
        rcv_buf=rng.choice([4096, 20000, 65535] + ([1 << 20] if scaling else [])),
        snd_buf=rng.choice([8192, 1 << 16, 1 << 20]),
        keepalive=rng.random() < 0.2,
        keepalive_idle=5.0,
        keepalive_interval=1.0,
        rto_min=0.2,
        rto_initial=0.5,
    )


def _run(seed: int, fast: bool, tracer: bool = False, ipv6: bool = False) -> dict[str, Any]:
    """One seeded exchange; returns everything observable."""
    a_ip, b_ip = addrs(ipv6)
    rng = random.Random(seed)
    cfg_a, cfg_b = _configs(rng), _configs(rng)
    trace: list[dict[str, Any]] = []
    tr = trace.append if tracer else None
    a = Stack(a_ip, config=cfg_a, isn_secret=b"a" * 16, seed=1, fast_path=fast, tracer=tr)
    b = Stack(b_ip, config=cfg_b, isn_secret=b"b" * 16, seed=2, fast_path=fast, tracer=tr)
    lst = b.listen(80)
    loss, dup, corrupt, ce = (
        rng.choice(p) for p in ([0, 0, 0.01, 0.05], [0, 0.01], [0, 0.005], [0, 0.02])
    )
    delay, jitter = 0.01, rng.choice([0.0, 0.0, 0.004])
    wire: list[tuple[float, int, Stack, bytes]] = []
    counter = 0
    sent: dict[str, list[bytes]] = {"a": [], "b": []}
    got: dict[str, bytearray] = {"a": bytearray(), "b": bytearray()}
    now = 0.0
    conns: dict[str, Connection | None] = {"a": a.connect(b_ip, 80, now=now), "b": None}
    peer = {"a": b, "b": a}
    stacks = {"a": a, "b": b}
    to_send = {"a": rng.randrange(1, 1_500_000), "b": rng.choice([0, rng.randrange(1, 200_000)])}
    closed = {"a": False, "b": False}
    payload = bytes(rng.randrange(256) for _ in range(4096))

    def flush() -> None:
        nonlocal counter
        for name, st in stacks.items():
            for pkt in st.packets_to_send(now):
                sent[name].append(pkt)
                if rng.random() < loss:
                    continue
                copies = 2 if rng.random() < dup else 1
                for _ in range(copies):
                    p = bytearray(pkt)
                    if rng.random() < corrupt:
                        p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
                    if ipv6 and rng.random() < ce and p[1] & 0x30:
                        p[1] |= 0x30  # CE in the Traffic Class; no IP checksum over IPv6
                    elif not ipv6 and rng.random() < ce and p[1] & 3:
                        p[1] |= 3  # CE; the IP checksum is left stale on purpose: a drop
                        if rng.random() < 0.5:  # ...or a router that fixes the checksum
                            p[10:12] = b"\0\0"
                            s = int.from_bytes(p[:20], "big") % 0xFFFF
                            p[10:12] = (0xFFFF ^ (s or 0xFFFF)).to_bytes(2, "big")
                    counter += 1
                    at = now + delay + rng.random() * jitter
                    heapq.heappush(wire, (at, counter, peer[name], bytes(p)))

    for _step in range(6000):
        # application work
        if conns["b"] is None:
            conns["b"] = lst.accept()
        for name in ("a", "b"):
            c = conns[name]
            if c is None or c.state.name in ("CLOSED", "SYN_SENT", "SYN_RECEIVED"):
                continue
            if to_send[name] > 0 and c.send_space:
                n = min(to_send[name], c.send_space, rng.choice([1, 100, 1460, 4096]))
                off = rng.randrange(0, 4096 - min(n, 4096) + 1)
                chunk = (payload * (n // 4096 + 2))[off : off + n]
                to_send[name] -= c.send(chunk)
            elif to_send[name] <= 0 and not closed[name] and rng.random() < 0.05:
                closed[name] = True
                if rng.random() < 0.5:
                    c.close(now)
                else:
                    c.shutdown(now)
            if rng.random() < 0.6:
                got[name] += c.recv(rng.choice([-1, 500, 3000]))
            stacks[name]._wake(c)
        for st in stacks.values():
            while st.next_event() is not None:
                pass
        flush()
        # advance to the next packet or timer
        nxt = [t for t in (a.next_timer(), b.next_timer()) if t is not None]
        if wire:
            nxt.append(wire[0][0])
        if not nxt:
            break
        now = max(now, min(min(nxt), now + 0.05))
        while wire and wire[0][0] <= now:
            _, _, dst, pkt = heapq.heappop(wire)
            dst.receive_packet(pkt, now)
        for st in stacks.values():
            st.handle_timer(now)
        flush()
    result: dict[str, Any] = {"sent": sent, "got": got, "now": now}
    for name, st in stacks.items():
        stats = dict(st.stats)
        result[name + "_fast"] = stats.pop("segs_fast", 0)
        result[name + "_stack_stats"] = stats
        c = conns[name]
        result[name + "_conn"] = None if c is None else (c.state, c.stats.full(), c.info())
    result["trace"] = trace
    return result


@pytest.mark.parametrize(
    ("seed", "ipv6"), [(seed, False) for seed in range(40)] + [(seed, True) for seed in range(16)]
)
def test_fast_path_changes_nothing_observable(seed: int, ipv6: bool) -> None:
    fast = _run(seed, True, ipv6=ipv6)
    slow = _run(seed, False, ipv6=ipv6)
    assert slow["a_fast"] == slow["b_fast"] == 0
    for key in ("sent", "got", "now", "a_stack_stats", "b_stack_stats", "a_conn", "b_conn"):
        assert fast[key] == slow[key], key
    # The run moved data, and (except where options made prediction impossible)
    # the fast path took part of it.
    assert len(fast["got"]["b"]) > 0


@FAMILY
def test_fast_path_was_exercised_by_the_random_runs(ipv6: bool) -> None:
    runs = [_run(seed, True, ipv6=ipv6) for seed in range(6)]
    taken = [r["a_fast"] + r["b_fast"] for r in runs]
    assert sum(taken) > 500, taken
    assert sum(1 for t in taken if t) >= 5, taken


@pytest.mark.parametrize(
    ("seed", "ipv6"), [(0, False), (1, False), (2, False), (3, False), (0, True), (1, True)]
)
def test_tracing_turns_the_fast_path_off_and_traces_agree(seed: int, ipv6: bool) -> None:
    fast = _run(seed, True, tracer=True, ipv6=ipv6)
    slow = _run(seed, False, tracer=True, ipv6=ipv6)
    assert fast["a_fast"] == fast["b_fast"] == 0
    assert fast["trace"] == slow["trace"]
    assert fast["sent"] == slow["sent"]


# ------------------------------------------------------------------ unit cases


def _data_packet(
    ca: Connection,
    cb: Connection,
    n: int,
    *,
    off: int = 0,
    ack_delta: int = 0,
    window_delta: int = 0,
    ts_delta: int = 0,
    flags: int = ACK | PSH,
    tos: int = 0,
) -> bytes:
    """A data segment from ``ca`` as ``cb`` predicts it, then perturbed."""
    seqno = (cb.irs + cb._rnxt + off) & 0xFFFFFFFF
    ackno = (cb.iss + cb._una + ack_delta) & 0xFFFFFFFF
    window = (cb.snd_wnd >> cb.snd_wscale) + window_delta
    seg = Segment(ca.local_port, cb.local_port, seqno, ackno, flags, window, _payload(n), ecn=tos)
    if cb.ts_ok:
        seg.tsval, seg.tsecr = (cb.ts_recent + ts_delta) & 0xFFFFFFFF, 0
    return encode_ip_tcp(ca.local_ip, ca.remote_ip, seg)


def _payload(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@FAMILY
def test_predicted_data_takes_the_fast_path(ipv6: bool) -> None:
    _, b, ca, cb = stack_pair(ipv6)
    b.receive_packet(_data_packet(ca, cb, 1000), 1.0)
    assert b.stats["segs_fast"] == 1
    assert cb.recv() == _payload(1000)
    assert cb.stats["segs_in"] >= 2 and cb.stats["bytes_received"] == 1000


@pytest.mark.parametrize(
    "change",
    [
        {"off": 1000},  # out of order: reassembly
        {"ack_delta": 1},  # acknowledges unsent data: challenge ACK
        {"window_delta": -1},  # a window update
        {"ts_delta": -5},  # PAWS: an older TSval
        {"flags": ACK | PSH | 0x01},  # FIN
        {"flags": ACK | 0x40},  # ECE
        {"flags": PSH},  # no ACK
        {"tos": 3},  # CE
    ],
)
@FAMILY
def test_unpredicted_segments_take_the_full_path(change: dict[str, int], ipv6: bool) -> None:
    _, b, ca, cb = stack_pair(ipv6, ecn="on")
    pkt = _data_packet(ca, cb, 1000, **change)
    b.receive_packet(pkt, 1.0)
    assert b.stats["segs_fast"] == 0
    assert b.stats["segs_in"] >= 1


@FAMILY
def test_bad_checksum_leaves_for_the_general_path_and_is_counted(ipv6: bool) -> None:
    _, b, ca, cb = stack_pair(ipv6)
    pkt = bytearray(_data_packet(ca, cb, 1000))
    pkt[-1] ^= 0x55
    b.receive_packet(bytes(pkt), 1.0)
    assert b.stats["segs_fast"] == 0
    assert b.stats["drop_tcp_bad_checksum"] == 1
    assert cb.stats["bytes_received"] == 0


@FAMILY
def test_sack_option_goes_to_the_general_decoder(ipv6: bool) -> None:
    """A 32-byte TCP header that is not "nop, nop, TS" (here one SACK block, no TS)."""
    _, b, ca, cb = stack_pair(ipv6, timestamps=False)
    seg = Segment(
        ca.local_port,
        cb.local_port,
        (cb.irs + cb._rnxt) & 0xFFFFFFFF,
        (cb.iss + cb._una) & 0xFFFFFFFF,
        ACK,
        cb.snd_wnd >> cb.snd_wscale,
        sack_blocks=((cb.iss + 5, cb.iss + 9),),
    )
    pkt = encode_ip_tcp(ca.local_ip, ca.remote_ip, seg)
    ip_len = 40 if ipv6 else 20
    assert (pkt[ip_len + 12] >> 4) * 4 == 32
    _, _, back = decode_ip_tcp(pkt)
    assert back.sack_blocks and back.tsval is None
    b.receive_packet(pkt, 1.0)
    assert b.stats["segs_fast"] == 0
    assert cb.stats["sack_blocks_in"] == 0  # the block acknowledges unsent data: ignored
    assert b.stats["segs_in"] == 3


@FAMILY
def test_syn_to_an_established_connection_is_not_predicted(ipv6: bool) -> None:
    _, b, ca, cb = stack_pair(ipv6, timestamps=False)
    pkt = _data_packet(ca, cb, 0, flags=SYN)
    b.receive_packet(pkt, 1.0)
    assert b.stats["segs_fast"] == 0
    assert cb.stats["challenge_acks"] == 1


def test_snd_wl1_never_moves_back() -> None:
    """A pure ACK beyond a hole moves SND.WL1 past RCV.NXT; the resent data that fills
    the hole must not be predicted, or a later window update would be judged against
    a WL1 the full path never had (RFC 9293 §3.10.7.4)."""
    results = []
    for fast in (True, False):
        plain = TcpConfig(timestamps=False, sack=False)
        a = Stack(A_IP, config=plain, isn_secret=b"a" * 16, fast_path=fast)
        b = Stack(B_IP, config=plain, isn_secret=b"b" * 16, fast_path=fast)
        ca, cb = connect_pair(a, b)
        w = cb.snd_wnd >> cb.snd_wscale

        def pkt(off: int, n: int, win: int, ca: Connection = ca, cb: Connection = cb) -> bytes:
            seg = Segment(
                ca.local_port,
                cb.local_port,
                (cb.irs + 1 + off) & 0xFFFFFFFF,
                (cb.iss + cb._una) & 0xFFFFFFFF,
                ACK | (PSH if n else 0),
                win,
                bytes(n),
            )
            return encode_ip_tcp(ip_to_bytes(A_IP), ip_to_bytes(B_IP), seg)

        b.receive_packet(pkt(2000, 0, w), 1.0)  # pure ACK past two lost segments
        b.receive_packet(pkt(0, 1000, w), 1.1)  # the first, resent
        b.receive_packet(pkt(1000, 1000, w - 5000), 1.2)  # the second, smaller window
        results.append((cb._wl1, cb.snd_wnd, cb.stats.full()))
        assert b.stats["segs_fast"] == 0
    assert results[0] == results[1]


@FAMILY
def test_large_segments_are_verified_on_the_fast_path(ipv6: bool) -> None:
    """MTU 65535 without offloads: 64 KB segments take the fast path with the folded
    checksum; a flipped bit is still caught (and counted by the general path)."""
    big = TcpConfig(mss=65495)
    a_ip, b_ip = addrs(ipv6)
    a = Stack(a_ip, config=big, mtu=65535, isn_secret=b"a" * 16)
    b = Stack(b_ip, config=big, mtu=65535, isn_secret=b"b" * 16)
    ca, cb = connect_pair(a, b)
    data = random.Random(5).randbytes(200_000)
    ca.send(data)
    out = a.packets_to_send(0.01)
    assert max(len(p) for p in out) > 60_000
    bad = bytearray(out[0])
    bad[30_000] ^= 0x04
    b.receive_packet(bytes(bad), 0.02)
    assert b.stats["drop_tcp_bad_checksum"] == 1 and cb.readable == 0
    for p in out:
        b.receive_packet(p, 0.02)
    assert b.stats["segs_fast"] == len(out)
    assert cb.recv() == data[: cb.stats["bytes_received"]] and cb.stats["bytes_received"] > 0


def test_ipv6_extension_headers_leave_the_fast_path_with_the_same_result() -> None:
    """A data segment behind a Destination Options header (RFC 8200 §4.6) is not the
    common shape: the general decoder takes it, and the bytes arrive all the same."""
    from synack.wire.packet import encode_ipv6

    _, b, ca, cb = stack_pair(True)
    plain = _data_packet(ca, cb, 700)
    tcp = plain[40:]
    padn = bytes((6, 0, 1, 4, 0, 0, 0, 0))  # Next Header TCP, PadN filling eight bytes
    pkt = encode_ipv6(ca.local_ip, ca.remote_ip, 60, padn + tcp)
    b.receive_packet(pkt, 1.0)
    assert b.stats["segs_fast"] == 0 and cb.recv() == _payload(700)
