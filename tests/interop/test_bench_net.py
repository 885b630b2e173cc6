"""Pure helpers of the network benchmark (benchmarks/bench_net.py): no root, no network.

The sink's hand-built packets are parsed back by synack's own decoder (checksums
verified), synack's encoded packets are parsed by the sink, and the table and
the docs section are formatted as the benchmark writes them.
"""

from __future__ import annotations

import datetime
import os
import sys

import pytest

from helpers import ROOT

BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import tun_sink  # noqa: E402
from netbench import kernel_agent  # noqa: E402
from netbench.lab import parse_line  # noqa: E402
from netbench.report import END, START, Row, fmt, ratio_row, render, replace_section  # noqa: E402

from synack.wire.checksum import internet_checksum  # noqa: E402
from synack.wire.ipv4 import ip_to_bytes  # noqa: E402
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp  # noqa: E402
from synack.wire.segment import ACK, FIN, PSH, SYN, Segment  # noqa: E402

SINK = ip_to_bytes("10.77.0.2")
KERNEL = ip_to_bytes("10.77.0.1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        b"\xff\xff",
        b"\x01",
        bytes(range(256)),
        b"\xff\xff\xff\xff",
        b"\x12\x34\x56",
    ],
)
def test_sink_checksum_matches_synack(data: bytes) -> None:
    assert tun_sink.internet_checksum(data) == internet_checksum(data)


def test_sink_synack_segment_decodes_in_synack() -> None:
    opts = tun_sink.tcp_options(1460, 4)
    assert len(opts) % 4 == 0
    pkt = tun_sink.build_segment(
        SINK, KERNEL, 5001, 40000, 0xFFFFFFF0, 12345, tun_sink.SYN | tun_sink.ACK, 65535, opts
    )
    src, dst, seg = decode_ipv4_tcp(pkt)  # verifies both checksums
    assert (src, dst) == (SINK, KERNEL)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (5001, 40000, 0xFFFFFFF0, 12345)
    assert seg.flags == SYN | ACK
    assert (seg.mss, seg.wscale, seg.window) == (1460, 4, 65535)
    assert not seg.sack_permitted and seg.tsval is None


@pytest.mark.parametrize("size", [0, 1, 3, 1460])
def test_sink_data_segment_decodes_in_synack(size: int) -> None:
    payload = bytes((i * 7) & 0xFF for i in range(size))
    pkt = tun_sink.build_segment(
        SINK, KERNEL, 5001, 40000, 1 << 31, 99, ACK | PSH | FIN, 4096, payload=payload, ident=77
    )
    _, _, seg = decode_ipv4_tcp(pkt)
    assert bytes(seg.payload) == payload
    assert seg.flags == ACK | PSH | FIN and seg.window == 4096


def test_build_segment_refuses_unpadded_options() -> None:
    with pytest.raises(ValueError):
        tun_sink.build_segment(SINK, KERNEL, 1, 2, 0, 0, ACK, 0, b"\x01")


def test_sink_parses_what_synack_encodes() -> None:
    seg = Segment(40000, 5001, 1000, 2000, ACK | PSH, 512, b"x" * 100, tsval=5, tsecr=6)
    pkt = encode_ipv4_tcp(KERNEL, SINK, seg)
    got = tun_sink.parse_segment(pkt)
    assert got == (KERNEL, SINK, 40000, 5001, 1000, 2000, ACK | PSH, 100)
    # behind a virtio-net header, as with --offload
    assert tun_sink.parse_segment(bytes(tun_sink.VNET_HDR_LEN) + pkt, tun_sink.VNET_HDR_LEN) == got
    assert tun_sink.parse_segment(pkt[:30]) is None
    assert tun_sink.parse_segment(b"\x60" + pkt[1:]) is None  # not IPv4


def test_window_scale_for() -> None:
    assert tun_sink.window_scale_for(65535) == 0
    assert tun_sink.window_scale_for(65536) == 1
    assert tun_sink.window_scale_for(1 << 19) == 4
    assert tun_sink.window_scale_for(1 << 30) == 14


def test_sink_handshake_data_fin(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[bytes] = []
    monkeypatch.setattr(tun_sink.os, "write", lambda fd, b: written.append(bytes(b)) or len(b))
    sink = tun_sink.Sink(-1, SINK, 5001, 1500, vnet=False)
    syn = encode_ipv4_tcp(KERNEL, SINK, Segment(40000, 5001, 100, 0, SYN, 64240, mss=1460))
    assert sink.handle(syn) is False
    _, _, synack = decode_ipv4_tcp(written[-1])
    assert synack.flags == SYN | ACK and synack.ack == 101 and synack.mss == 1460
    data = encode_ipv4_tcp(
        KERNEL, SINK, Segment(40000, 5001, 101, synack.seq + 1, ACK, 512, b"a" * 1000)
    )
    assert sink.handle(data) is True and sink.nbytes == 1000
    assert sink.handle(data) is False  # a retransmission: duplicate ACK at once
    _, _, dup = decode_ipv4_tcp(written[-1])
    assert dup.ack == 1101 and dup.flags == ACK
    fin = encode_ipv4_tcp(KERNEL, SINK, Segment(40000, 5001, 1101, synack.seq + 1, ACK | FIN, 512))
    sink.handle(fin)
    _, _, finack = decode_ipv4_tcp(written[-1])
    assert sink.done and finack.flags == FIN | ACK and finack.ack == 1102


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert kernel_agent.percentile(values, 50) == 50.0
    assert kernel_agent.percentile(values, 99) == 99.0
    assert kernel_agent.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        kernel_agent.percentile([], 50)


def test_parse_line() -> None:
    assert parse_line('RESULT {"bytes": 5}', "RESULT") == {"bytes": 5}
    assert parse_line("READY", "READY") == {}
    assert parse_line("READYX {}", "READY") is None
    assert parse_line("something else", "RESULT") is None
    with pytest.raises(ValueError):
        parse_line("RESULT [1]", "RESULT")


def test_fmt() -> None:
    assert fmt(None, "Mbit/s") == "—"
    assert fmt(12345.6, "Mbit/s") == "12,346 Mbit/s"
    assert fmt(42.25, "µs") == "42.2 µs"
    assert fmt(0.6, "%") == "60%"
    assert fmt(1.5, "x") == "1.50x"
    assert fmt(1234.0, "x") == "1,234x"
    assert fmt(99.4, "B") == "99 B"


def test_ratio_row_targets() -> None:
    met = ratio_row("bulk", 600.0, "Mbit/s", "sink", 1000.0, min_ratio=0.6)
    assert met.met is True and met.ratio == "60%" and met.target == "≥ 60%"
    short = ratio_row("bulk", 500.0, "Mbit/s", "sink", 1000.0, min_ratio=0.6)
    assert short.met is False
    rate = ratio_row("cps", 9000.0, "conn/s", "kernel", 20000.0, min_value=10000)
    assert rate.met is False and rate.target == "≥ 10,000 conn/s"
    mem = ratio_row("mem", 3000.0, "B", "—", None, max_value=4096)
    assert mem.met is True and mem.ratio == "—"
    none = ratio_row("x", None, "Mbit/s", "ref", 5.0, min_ratio=0.5, error="failed")
    assert none.met is None and none.synack == "failed"
    plain = ratio_row("y", 5.0, "Mbit/s", "ref", 10.0)
    assert plain.met is None and plain.target == "—" and plain.ratio == "50%"


def test_render_table() -> None:
    rows = [
        Row("a | b", "1 Mbit/s", "ref: 2 Mbit/s", "50%", "≥ 50%", True, ["note one"]),
        Row("c", "2", met=False),
    ]
    text = render(
        rows,
        command="make bench",
        notes=["method"],
        host="CPU X, Linux Y",
        when=datetime.date(2026, 1, 2),
    )
    lines = text.splitlines()
    assert lines[0] == "Machine: CPU X, Linux Y, 2026-01-02. Command: `make bench`."
    assert lines[2].startswith("| figure | synack |")
    assert "| a \\| b | 1 Mbit/s | ref: 2 Mbit/s | 50% | ≥ 50% | **yes** |" in lines
    assert "| c | 2 | — | — | — | **no** |" in lines
    assert "- method" in lines and "- a | b: note one" in lines


def test_replace_section_inserts_then_replaces() -> None:
    doc = "# Benchmarks\n\n<!-- core:start -->\ncore\n<!-- core:end -->\n\n## History\n\nold\n"
    once = replace_section(doc, "first")
    assert once.index(START) < once.index("## History")
    assert "<!-- core:start -->\ncore\n<!-- core:end -->" in once and "old" in once
    twice = replace_section(once, "second")
    assert "second" in twice and "first" not in twice
    assert twice.count(START) == 1 and twice.count(END) == 1
    assert twice.replace("second", "first") == once
    assert START in replace_section("no history here\n", "x")


WRK_OUTPUT = """Running 3s test @ http://10.77.0.2:5001/bytes/100
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    19.01ms    4.12ms  40.11ms   80.00%
    Req/Sec     1.23k   100.00     1.40k    70.00%
  Latency Distribution
     50%   18.76ms
     75%   20.10ms
     90%   24.00ms
     99%  850.00us
  3636 requests in 3.00s, 0.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1211.86
Transfer/sec:    306.00KB
"""

AB_OUTPUT = """Concurrency Level:      32
Time taken for tests:   3.001 seconds
Complete requests:      2184
Failed requests:        3
Non-2xx responses:      1
Requests per second:    727.70 [#/sec] (mean)
Percentage of the requests served within a certain time (ms)
  50%     41
  66%     45
  99%     80
 100%    120 (longest request)
"""


def test_parse_wrk_and_ab() -> None:
    import bench_net

    w = bench_net.parse_wrk(WRK_OUTPUT)
    assert w == {"rate": 1211.86, "p50_ms": 18.76, "p99_ms": 0.85, "errors": 7}
    a = bench_net.parse_ab(AB_OUTPUT)
    assert a == {"rate": 727.7, "p50_ms": 41.0, "p99_ms": 80.0, "errors": 4}
    assert bench_net.parse_wrk("wrk: connection refused")["rate"] is None


_BURNER = """
import os, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
if os.fork() == 0:            # a worker
    if os.fork() == 0:        # and a process of its own
        burn(0.3); print("grandchild", flush=True); time.sleep(60); os._exit(0)
    burn(0.3); print("child", flush=True); time.sleep(60); os._exit(0)
burn(0.1)
print("parent", flush=True)
time.sleep(60)
"""


def test_tree_cpu_seconds_counts_every_process_under_the_command() -> None:
    """``serve --workers N`` is a supervisor and N worker processes: their CPU time
    counts, not the supervisor's alone."""
    import subprocess

    import bench_net

    proc = subprocess.Popen([sys.executable, "-c", _BURNER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        said = {proc.stdout.readline().strip() for _ in range(3)}
        assert said == {"parent", "child", "grandchild"}
        total, n = bench_net.tree_cpu_seconds(proc.pid)
        own = bench_net._proc_stat(proc.pid)
        assert own is not None and n == 3
        own_cpu = (int(own[11]) + int(own[12])) / bench_net.os.sysconf("SC_CLK_TCK")
        assert total is not None and total >= 0.6 and total > own_cpu + 0.5
    finally:
        for pid in _descendants(proc.pid):
            os.kill(pid, 9)
        proc.kill()
        proc.wait()


def _descendants(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out += [int(entry.name), *_descendants(int(entry.name))]
    return out
