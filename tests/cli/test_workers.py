"""``synack serve --workers N`` (issue 18, "Both cores").

Unit tests (no privileges): the option, the split of the ephemeral ports, the
steering rule in Python, summaries adding up, and the shared secret (a SYN
cookie one worker's Stack made is accepted by another's).  With root: the
steering program loaded into the kernel gives the Python rule's answers
(``BPF_PROG_TEST_RUN``), and on a multi-queue TUN device in a namespace the
kernel's SYN-ACK to a connection opened from the wrong queue still arrives at
the queue that owns the port; and the interop test: ``serve --workers 2``
with several kernel clients at once, every transfer intact, both workers
used, and SIGINT stopping all of them with status 0.  Root tests skip without
root and fail under ``CI=true`` (tests/helpers/capabilities.py).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.capabilities import missing
from helpers.netns import PYTHON, STACK_IP, Netns, namespace, require, summary_value, wait_log
from synack.commands import serve as serve_cmd
from synack.commands import serve_summary
from synack.commands.main import build_parser
from synack.links import steering
from synack.stack import Stack
from synack.tcp import cookies
from synack.wire import icmp, icmpv6
from synack.wire.ipv4 import PROTO_ICMP, ip_to_bytes
from synack.wire.ipv6 import PROTO_ICMPV6
from synack.wire.packet import (
    decode_ipv4_tcp,
    encode_ipv4,
    encode_ipv4_tcp,
    encode_ipv6,
    encode_ipv6_tcp,
)
from synack.wire.segment import ACK, SYN, Segment

CLIENT, SERVER = ip_to_bytes("10.77.0.1"), ip_to_bytes("10.77.0.2")


def parse(*argv: str) -> object:
    return build_parser().parse_args(["serve", *argv])


# ------------------------------------------------------------------ the option
def test_workers_option_defaults_to_the_cpus_and_to_one_when_recording() -> None:
    args = parse("http")
    assert args.workers is None  # type: ignore[attr-defined]
    assert serve_cmd.worker_count(args) == (os.cpu_count() or 1, False)  # type: ignore[arg-type]
    assert serve_cmd.worker_count(parse("http", "--workers", "3")) == (3, True)  # type: ignore[arg-type]
    assert serve_cmd.worker_count(parse("http", "--pcap", "x.pcapng")) == (1, False)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["0", "-1", "two", "257"])
def test_workers_option_rejects_nonsense(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("echo", "--workers", bad)
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_workers_with_a_capture_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = parse("echo", "--tun", "syn0", "--workers", "2", "--pcap", str(tmp_path / "c.pcap"))
    assert serve_cmd.run(args) == 2  # type: ignore[arg-type]
    assert "--workers 1" in capsys.readouterr().err


# ------------------------------------------------------------ the port partition
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_ephemeral_shares_are_disjoint_cover_the_range_and_steer_home(n: int) -> None:
    shares = [steering.ephemeral_ports(i, n) for i in range(n)]
    seen: list[int] = []
    for i, share in enumerate(shares):
        assert all(p % n == i for p in share)
        seen += share
        for port in (share[0], share[len(share) // 2], share[-1]):
            # What the kernel sends back to a port of worker i goes to queue i.
            pkt = encode_ipv4_tcp(CLIENT, SERVER, Segment(80, port, 1, 1, ACK, 100))
            assert steering.expected_queue(pkt, n) == i
            pkt6 = encode_ipv6_tcp(
                b"\x20" + bytes(15),
                b"\x20" + bytes(14) + b"\x02",
                Segment(80, port, 1, 1, ACK, 100),
            )
            assert steering.expected_queue(pkt6, n) == i
    assert sorted(seen) == list(range(49152, 65536))
    with pytest.raises(ValueError):
        steering.ephemeral_ports(n, n)


V6_KERNEL, V6_SYNACK = b"\x20" + bytes(15), b"\x20" + bytes(14) + b"\x02"


def icmp_errors_about(seg: Segment) -> list[bytes]:
    """ICMP and ICMPv6 errors from the kernel's side quoting ``seg`` as synack sent it
    (synack -> kernel): unreachable, time exceeded, Packet Too Big."""
    v4 = encode_ipv4_tcp(SERVER, CLIENT, seg)
    v6 = encode_ipv6_tcp(V6_SYNACK, V6_KERNEL, seg)
    return [
        encode_ipv4(CLIENT, SERVER, PROTO_ICMP, icmp.build_dest_unreachable(3, v4)),
        encode_ipv4(CLIENT, SERVER, PROTO_ICMP, icmp.build_icmp(11, 0, body=v4[:28])),
        encode_ipv6(
            V6_KERNEL,
            V6_SYNACK,
            PROTO_ICMPV6,
            icmpv6.build_dest6_unreachable(V6_KERNEL, V6_SYNACK, 4, v6),
        ),
        encode_ipv6(
            V6_KERNEL,
            V6_SYNACK,
            PROTO_ICMPV6,
            icmpv6.build_packet_too_big(V6_KERNEL, V6_SYNACK, 1280, v6),
        ),
    ]


@pytest.mark.parametrize("n", [2, 3])
def test_icmp_errors_go_to_the_owner_of_the_quoted_connection(n: int) -> None:
    """An ICMP error about a connection is steered as that connection's own packets
    are: by synack's port (the quoted source) in the ephemeral range, else by the hash
    of the kernel's port (the quoted destination)."""
    rng = random.Random(11)
    for _ in range(50):
        kport, sport = rng.randrange(1, 49152), rng.randrange(49152, 65536)
        for ours, theirs in ((sport, kport), (rng.choice((80, 7, 8000)), kport)):
            home = steering.expected_queue(
                encode_ipv4_tcp(CLIENT, SERVER, Segment(theirs, ours, 1, 1, ACK, 100)), n
            )
            for err in icmp_errors_about(Segment(ours, theirs, 5, 1, ACK, 100, b"x" * 30)):
                assert steering.expected_queue(err, n) == home, (ours, theirs, err[:1])
    # Echo and other messages that quote nothing: queue 0.
    ping = encode_ipv4(CLIENT, SERVER, PROTO_ICMP, icmp.build_echo_request(1, 1))
    ping6 = encode_ipv6(
        V6_KERNEL, V6_SYNACK, PROTO_ICMPV6, icmpv6.build_echo6_request(V6_KERNEL, V6_SYNACK, 1, 1)
    )
    assert steering.expected_queue(ping, n) == steering.expected_queue(ping6, n) == 0


def test_a_stack_opens_connections_only_from_its_share() -> None:
    share = steering.ephemeral_ports(1, 2)
    st = Stack("10.77.0.2", ephemeral_ports=share, seed=5)
    ports = {st.connect("10.77.0.1", 80, now=0.0).local_port for _ in range(200)}
    assert len(ports) == 200 and all(p in share for p in ports)
    with pytest.raises(ValueError):
        Stack("10.77.0.2", ephemeral_ports=range(0))


def test_kernel_clients_spread_over_the_queues() -> None:
    """Linux gives connect() even source ports first: the hash must still spread them."""
    rng = random.Random(3)
    counts = [0, 0]
    for _ in range(400):
        sport = rng.randrange(32768, 60999) & ~1
        pkt = encode_ipv4_tcp(CLIENT, SERVER, Segment(sport, 80, 1, 0, SYN, 100))
        counts[steering.expected_queue(pkt, 2)] += 1
    assert min(counts) > 150
    assert steering.expected_queue(b"\x45" + bytes(10), 2) == 0  # too short: queue 0


# ---------------------------------------------------------------- summaries
def test_summaries_add_up_across_workers() -> None:
    a = {
        "connections": 3,
        "bytes_in": 100,
        "link:rx_packets": 10,
        "drop:tcp_bad_checksum": 1,
        "syncookies_validated": 2,
    }
    b = {"connections": 4, "bytes_in": 50, "link:rx_packets": 7, "link:tx_drop_full": 2}
    merged = serve_summary.merge_counts([a, b])
    assert merged["connections"] == 7 and merged["bytes_in"] == 150
    assert merged["link:rx_packets"] == 17 and merged["link:tx_drop_full"] == 2
    rows = {
        r[0]: r
        for r in serve_summary.summary_rows(
            parse("echo"),
            merged,
            "10.77.0.2:7",
            "via syn0, 2 workers",
            1.0,
            [],  # type: ignore[arg-type]
            per_worker=[a, b],
        )
    }
    assert rows["connections"][1] == "7"
    assert rows["workers"][1:] == ("2", "connections 3 + 4")
    assert rows["bytes in"][1] == "150"
    assert rows["packets on the link"][1] == "in 17, out 0"
    assert "dropped going out (full) 2" in rows["packets on the link"][2]
    assert rows["dropped by the stack"][1] == "1"
    assert rows["SYN cookies"][2].startswith("2 validated")
    assert "workers" not in {
        r[0] for r in serve_summary.summary_rows(parse("echo"), merged, "x", "y", 1.0, [])
    }  # type: ignore[arg-type]


# ------------------------------------------------------------- the shared secret
def _cookie_handshake(secret_a: bytes, secret_b: bytes) -> Stack:
    """A SYN to worker A, which answers with a cookie; the ACK reaches worker B."""
    now = 2 * cookies.PERIOD + 1.0
    a = Stack(SERVER, isn_secret=secret_a, max_half_open=0, seed=1)
    b = Stack(SERVER, isn_secret=secret_b, max_half_open=0, seed=2)
    for st in (a, b):
        st.listen(80)
    # Both are under a flood (half-open tables full): B has sent cookies lately too,
    # which a listener requires before it takes an ACK as a cookie (RFC 4987 §3.6).
    b.receive_packet(
        encode_ipv4_tcp(
            ip_to_bytes("10.77.0.9"), SERVER, Segment(41000, 80, 5, 0, SYN, 65535, mss=1460)
        ),
        now,
    )
    assert len(b.packets_to_send(now)) == 1
    a.receive_packet(
        encode_ipv4_tcp(CLIENT, SERVER, Segment(40000, 80, 1000, 0, SYN, 65535, mss=1460)), now
    )
    out = a.packets_to_send(now)
    assert len(out) == 1 and a.stats["syncookies_sent"] == 1
    _, _, synack = decode_ipv4_tcp(out[0])
    assert synack.flags & (SYN | ACK) == SYN | ACK and not a.connections
    b.receive_packet(
        encode_ipv4_tcp(CLIENT, SERVER, Segment(40000, 80, 1001, synack.seq + 1, ACK, 65535)),
        now + 0.01,
    )
    return b


def test_a_cookie_made_by_one_worker_validates_in_another() -> None:
    secret = os.urandom(32)
    b = _cookie_handshake(secret, secret)
    assert b.stats["syncookies_validated"] == 1
    assert [c.state.name for c in b.connections] == ["ESTABLISHED"]


def test_without_the_shared_secret_the_other_worker_rejects_the_cookie() -> None:
    b = _cookie_handshake(os.urandom(32), os.urandom(32))
    assert b.stats["syncookies_validated"] == 0 and not b.connections


# ------------------------------------------------------- the kernel (root)
def _need_root() -> None:
    if os.geteuid() != 0:
        missing("needs root: loading a BPF program, a TUN device and namespaces")
    if not os.path.exists("/dev/net/tun"):
        missing("no /dev/net/tun")


def test_the_loaded_program_answers_as_the_python_rule() -> None:
    _need_root()
    rng = random.Random(7)
    v6a, v6b = b"\x20" + bytes(15), b"\x20" + bytes(14) + b"\x02"
    for n in (2, 3):
        fd = steering.load_steering_program(n)
        try:
            for _ in range(150):
                sport, dport = rng.randrange(65536), rng.choice((7, 80, rng.randrange(65536)))
                seg = Segment(sport, dport, 1, 0, SYN, 100)
                v4 = encode_ipv4_tcp(CLIENT, SERVER, seg)
                udp = v4[:9] + b"\x11" + v4[10:]
                frag = v4[:6] + b"\x00\x05" + v4[8:]
                errors = icmp_errors_about(Segment(dport, sport, 9, 1, ACK, 100))
                for pkt in (
                    v4,
                    encode_ipv6_tcp(v6a, v6b, seg),
                    udp,
                    frag,
                    v4[:22],
                    *errors,
                    errors[0][:40],
                    errors[2][:60],
                ):
                    assert steering.test_run(fd, pkt) == steering.expected_queue(pkt, n)
        finally:
            os.close(fd)


@pytest.fixture
def ns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Netns]:
    _need_root()
    require("socat", "curl", "ss")
    what = request.node.name.removeprefix("test_")[:14].replace("_", "-")
    with namespace(what, tmp_path) as n:
        yield n


_QUEUE_CHILD = r"""
import os, select, struct, sys, time
from synack.links.tun import TunLink
from synack.links import steering
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp
from synack.wire.segment import SYN, ACK, Segment
first = TunLink("synq0", kernel_ip="10.77.0.1/24", multi_queue=True)
second = first.add_queue()
prog = steering.load_steering_program(2)
steering.attach_steering(first.fileno(), prog)
os.close(prog)
queues = [first, second]
print("ready", flush=True)
sys.stdin.readline()  # the kernel listens now
found = []
for owner in (1, 0):
    port = steering.ephemeral_ports(owner, 2)[5]
    wrong = queues[1 - owner]
    # The SYN leaves from the other worker's queue: the kernel's flow table now points
    # there, so only the steering program can send the SYN-ACK to the owner.
    wrong.write(encode_ipv4_tcp(bytes([10,77,0,2]), bytes([10,77,0,1]),
                                Segment(port, 5001, 1000, 0, SYN, 65535, mss=1400)))
    deadline = time.monotonic() + 10
    got = None
    while got is None and time.monotonic() < deadline:
        ready, _, _ = select.select([q.fileno() for q in queues], [], [], 0.5)
        for i, q in enumerate(queues):
            if q.fileno() in ready:
                for pkt in q.read_batch():
                    if pkt[0] >> 4 != 4 or pkt[9] != 6:
                        continue
                    _, _, seg = decode_ipv4_tcp(pkt)
                    if seg.dst_port == port and seg.flags & SYN:
                        got = i
    found.append((owner, got))
print(found, flush=True)
"""


def test_a_connection_opened_from_one_queue_comes_back_to_the_owner_of_its_port(
    ns: Netns, tmp_path: Path
) -> None:
    proc = ns.popen(PYTHON, "-c", _QUEUE_CHILD, stdin=subprocess.PIPE, label="queues")
    proc.wait_for("ready")
    listener = ns.popen("socat", "TCP-LISTEN:5001,bind=10.77.0.1,fork", "-", label="listen")
    ns.wait_listening(5001)
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(b"go\n")
    proc.popen.stdin.flush()
    out = proc.wait_for(r"\[\(.*\)\]", timeout=30)
    assert out == "[(1, 1), (0, 0)]", out
    listener.end()


_ICMP_CHILD = r"""
import select, socket, sys, time
from synack.links.tun import TunLink
from synack.links import steering
from synack.wire import icmp, icmpv6
from synack.wire.ipv6 import addr_to_bytes
from synack.wire.packet import encode_ipv4_tcp, encode_ipv6_tcp
from synack.wire.segment import ACK, Segment
first = TunLink("synq1", kernel_ip="10.77.0.1/24,fd77::1/64", multi_queue=True)
second = first.add_queue()
prog = steering.load_steering_program(2)
steering.attach_steering(first.fileno(), prog)
queues = [first, second]
k4, s4 = addr_to_bytes("10.77.0.1"), addr_to_bytes("10.77.0.2")
k6, s6 = addr_to_bytes("fd77::1"), addr_to_bytes("fd77::2")
raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
found = []
for owner in (1, 0):
    port = steering.ephemeral_ports(owner, 2)[7]
    seg = Segment(port, 5001, 1000, 1, ACK, 65535, b"x" * 20)
    # What the kernel's side would say about a segment of that worker's connection.
    raw4.sendto(icmp.build_dest_unreachable(3, encode_ipv4_tcp(s4, k4, seg)),
                ("10.77.0.2", 0))
    raw6.sendto(icmpv6.build_dest6_unreachable(k6, s6, 4, encode_ipv6_tcp(s6, k6, seg)),
                ("fd77::2", 0))  # the kernel fills in the ICMPv6 checksum
    got = {}
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        ready, _, _ = select.select([q.fileno() for q in queues], [], [], 0.5)
        for i, q in enumerate(queues):
            if q.fileno() in ready:
                for pkt in q.read_batch():
                    if pkt[0] >> 4 == 4 and pkt[9] == 1 and pkt[20] == 3:
                        got[4] = i
                    elif pkt[0] >> 4 == 6 and pkt[6] == 58 and pkt[40] == 1:
                        got[6] = i
    found.append((owner, got.get(4), got.get(6)))
print(found, flush=True)
"""


def test_icmp_errors_reach_the_worker_owning_the_quoted_connection(ns: Netns) -> None:
    """ICMP and ICMPv6 errors sent by the kernel's side through a two-queue device
    steered as ``serve --workers 2`` steers it: each lands on the queue of the worker
    whose port the quoted segment came from (queue 0 before, for both)."""
    proc = ns.popen(PYTHON, "-c", _ICMP_CHILD, label="icmpq")
    out = proc.wait_for(r"\[\(.*\)\]", timeout=30)
    assert out == "[(1, 1, 1), (0, 0, 0)]", out


def test_serve_with_two_workers_carries_parallel_kernel_clients_and_stops_on_sigint(
    ns: Netns, tmp_path: Path
) -> None:
    srv = ns.serve("echo", "--workers", "2", "--verify")
    assert ", 2 workers" in srv.stdout()
    kids = subprocess.run(
        ["ps", "--ppid", str(srv.pid), "-o", "pid="], capture_output=True, text=True
    ).stdout.split()
    assert len(kids) == 2, kids
    size = 300_000
    files = []
    for i in range(8):
        path = tmp_path / f"in{i}"
        path.write_bytes(random.Random(i).randbytes(size))
        files.append(path)
    procs = [
        subprocess.Popen(
            ns.cmd("socat", "-t", "10", "-", f"TCP:{STACK_IP}:7"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for f in files
    ]
    with ThreadPoolExecutor(len(procs)) as pool:  # all transfers at once
        results = list(
            pool.map(
                lambda fp: fp[1].communicate(fp[0].read_bytes(), timeout=120),
                zip(files, procs, strict=True),
            )
        )
    for f, p, (out, err) in zip(files, procs, results, strict=True):
        assert p.returncode == 0, err
        assert hashlib.sha256(out).hexdigest() == hashlib.sha256(f.read_bytes()).hexdigest()
    logs = wait_log(srv, 8)
    assert len({rec["id"] for rec in logs}) == 8
    want = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert {rec["sha256"] for rec in logs} == want
    assert srv.stop(signal.SIGINT, timeout=30) == 0, srv.stderr()
    text = srv.stdout()
    assert summary_value(text, "connections") == "8"
    per = [int(x) for x in _workers_row(text)]
    assert len(per) == 2 and sum(per) == 8 and min(per) > 0, text
    for pid in kids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} left behind"
    assert "Traceback" not in srv.stderr()


def _workers_row(text: str) -> list[str]:
    for line in text.splitlines():
        if "connections " in line and "+" in line:
            return line.split("connections ", 1)[1].split("│")[0].split("|")[0].strip().split(" + ")
    raise AssertionError(f"no workers row in\n{text}")


def test_serve_http_with_two_workers_under_parallel_curls(ns: Netns) -> None:
    srv = ns.serve("http", "--workers", "2", "--quiet")
    procs = [
        subprocess.Popen(
            ns.cmd("curl", "-sS", "--max-time", "60", f"http://{STACK_IP}/bytes/{200_000 + i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(12)
    ]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert len(out) == 200_000 + i
    # SIGTERM twice in a row: the second asks for an abrupt stop; still a clean exit.
    srv.send_signal(signal.SIGTERM)
    srv.wait_for("stopping", stream="stderr")
    assert srv.stop(signal.SIGTERM, timeout=30) == 0, srv.stderr()
    per = [int(x) for x in _workers_row(srv.stdout())]
    assert sum(per) == 12 and min(per) > 0
