"""Captures: pcap/pcapng files are well formed, open in the real tshark without
malformed packets, and tshark's own analysis flags agree with what synack logged."""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from synack.commands.main import main
from synack.scenarios.labs import LABS
from synack.scenarios.scenario import Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.trace.capture import (
    MemoryWriter,
    NetworkCapture,
    PcapngWriter,
    PcapWriter,
    open_capture,
    packets_from_trace,
)
from synack.wire.packet import decode_ip_tcp, decode_ipv4_tcp

#: Every tshark check runs over both families: the captures are LINKTYPE_RAW, and
#: tshark tells IPv4 from IPv6 by the version nibble of each record.
FAMILIES = pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])


def need_tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        msg = "tshark is not installed (apt-get install tshark; scripts/install-system-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " and CI=true: the capture checks must run")
        pytest.skip(msg)
    return path


def tshark_rows(path: Path) -> list[tuple[int, str, bool, bool, bool, bool, bool]]:
    """(frame, comment, retransmission, duplicate_ack, out_of_order, zero_window, malformed)."""
    fields = [
        "frame.number",
        "frame.comment",
        "tcp.analysis.retransmission",
        "tcp.analysis.duplicate_ack",
        "tcp.analysis.out_of_order",
        "tcp.analysis.zero_window",
        "_ws.malformed",
    ]
    # The payloads are random bytes on port 80: decode them as data, not as HTTP.
    cmd = [
        need_tshark(),
        "-n",
        "-r",
        str(path),
        "-d",
        "tcp.port==80,data",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]
    for f in fields:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        n, c, r, d, o, z, m = line.split("|")
        rows.append((int(n), c, bool(r), bool(d), bool(o), bool(z), bool(m)))
    return rows


def tshark_versions(path: Path) -> set[str]:
    """The IP versions tshark decoded in ``path`` (``ip.version`` of every frame)."""
    proc = subprocess.run(
        [
            need_tshark(),
            "-n",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "ip.version",
            "-e",
            "ipv6.version",
            "-E",
            "separator=|",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return {v for line in proc.stdout.splitlines() for v in line.split("|") if v}


def transfer(
    seed: int, path: PathConfig, point: str, nbytes: int = 60000, *, ipv6: bool = False
) -> MemoryWriter:
    rng = random.Random(seed)
    sc = Scenario(seed, path=path, config=TcpConfig(msl=1.0), ipv6=ipv6)
    w = MemoryWriter()
    cap = NetworkCapture(w, sc.trace, point=point)
    sc.net.add_tap(cap)
    sc.listen(80, rng.randbytes(nbytes), send_after_eof=True)
    sc.connect(80, rng.randbytes(nbytes))
    sc.run(until=300)
    cap.close()
    return w


# ----------------------------------------------------------------- file formats
def test_pcap_file_layout_is_libpcap_linktype_raw() -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    w.record(b"\x45" + bytes(39), 1.25)
    w.record(b"\x45" + bytes(19), 2.000001, "ignored: pcap has no comments")
    data = buf.getvalue()
    magic, major, minor, _, _, _snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 101)
    sec, usec, incl, orig = struct.unpack("<IIII", data[24:40])
    assert (sec, usec, incl, orig) == (1, 250000, 40, 40)
    sec2, usec2, incl2, _ = struct.unpack("<IIII", data[80:96])
    assert (sec2, usec2, incl2) == (2, 1, 20)
    assert len(data) == 24 + 16 + 40 + 16 + 20 and w.count == 2


def test_pcapng_blocks_and_comment_option() -> None:
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.record(b"\x45" + bytes(21), 0.5, "retransmission: RTO fired, backoff 2", direction=2)
    data = buf.getvalue()
    blocks = []
    off = 0
    while off < len(data):
        btype, blen = struct.unpack("<II", data[off : off + 8])
        assert blen % 4 == 0 and struct.unpack("<I", data[off + blen - 4 : off + blen])[0] == blen
        blocks.append((btype, data[off : off + blen]))
        off += blen
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1, 6]
    assert struct.unpack("<HH", blocks[1][1][8:12]) == (101, 0)  # LINKTYPE_RAW
    epb = blocks[2][1]
    _, hi, lo, caplen, origlen = struct.unpack("<IIIII", epb[8:28])
    assert ((hi << 32) | lo, caplen, origlen) == (500000, 22, 22)
    opts = epb[28 + 24 :]
    code, length = struct.unpack("<HH", opts[:4])
    assert code == 1 and opts[4 : 4 + length] == b"retransmission: RTO fired, backoff 2"


def test_open_capture_picks_format_by_suffix(tmp_path: Path) -> None:
    a = open_capture(tmp_path / "x.pcapng")
    b = open_capture(tmp_path / "x.pcap")
    a.close()
    b.close()
    assert isinstance(a, PcapngWriter) and isinstance(b, PcapWriter)
    assert (tmp_path / "x.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    with pytest.raises(ValueError, match="before the epoch"):
        PcapWriter(io.BytesIO()).record(b"x", -1.0)


def test_network_capture_comments_come_from_the_trace() -> None:
    """Every packet the hosts sent is captured once, in order; the lost ones and the
    retransmissions carry synack's reason."""
    w = transfer(3, PathConfig(delay=0.05, loss=0.2), "send", nbytes=8000)
    assert w.packets == sorted(w.packets, key=lambda p: p[0])
    comments = [c or "" for _, _, c, _ in w.packets]
    assert any("dropped by the simulated network (loss)" in c for c in comments)
    assert any(c.startswith("retransmission") for c in comments)
    for _, pkt, _, _ in w.packets:
        decode_ipv4_tcp(pkt)  # real, checksummed IPv4/TCP
    timeout = [c or "" for _, _, c, _ in LABS["timeout"].run().packets.packets]
    assert [c for c in timeout if "RTO fired" in c] == [
        f"retransmission: RTO fired, backoff {n} (next RTO {2**n:g} s); dropped by the "
        "simulated network (filter)"
        for n in range(1, 5)
    ]


@FAMILIES
def test_packets_rebuilt_from_a_trace_match_the_wire(tmp_path: Path, ipv6: bool) -> None:
    sc = Scenario(5, path=PathConfig(delay=0.05, loss=0.1), config=TcpConfig(msl=1.0), ipv6=ipv6)
    w = MemoryWriter()
    cap = NetworkCapture(w, sc.trace)
    sc.net.add_tap(cap)
    sc.listen(80, b"r" * 5000, send_after_eof=True)
    sc.connect(80, b"q" * 5000)
    sc.run(until=100)
    cap.close()
    rebuilt = list(packets_from_trace(sc.trace))
    assert len(rebuilt) == len(w.packets)
    for (t1, p1, c1), (t2, p2, c2, _) in zip(rebuilt, w.packets, strict=True):
        assert p1[0] >> 4 == p2[0] >> 4 == (6 if ipv6 else 4)
        s1, s2 = decode_ip_tcp(p1)[2], decode_ip_tcp(p2)[2]
        assert t1 == t2 and (s1.seq, s1.ack, s1.flags, s1.window, len(s1.payload)) == (
            s2.seq,
            s2.ack,
            s2.flags,
            s2.window,
            len(s2.payload),
        )
        assert c1 == (c2 or "")


# ------------------------------------------------------------------------ tshark
@FAMILIES
def test_tshark_reads_pcap_and_pcapng_without_malformed_packets(tmp_path: Path, ipv6: bool) -> None:
    need_tshark()
    w = transfer(7, PathConfig(delay=0.05, loss=0.05, rate_bps=10e6), "send", ipv6=ipv6)
    for name in ("run.pcap", "run.pcapng"):
        path = tmp_path / name
        w.save(path)
        rows = tshark_rows(path)
        assert len(rows) == len(w.packets)
        assert not any(r[6] for r in rows), "tshark found malformed packets"
        assert tshark_versions(path) == {"6" if ipv6 else "4"}
    comments = [r[1] for r in tshark_rows(tmp_path / "run.pcapng")]
    assert comments == [c or "" for _, _, c, _ in w.packets]


@pytest.mark.parametrize(
    ("seed", "ipv6"), [(1, False), (2, False), (3, False), (1, True), (4, True)]
)
def test_tshark_flags_agree_with_synack_on_a_lossy_transfer(
    seed: int, ipv6: bool, tmp_path: Path
) -> None:
    """Send-side capture: every segment synack retransmitted is one tshark calls a
    retransmission (or, by its timing heuristic, out of order) and vice versa; duplicate
    ACKs and zero windows agree frame by frame."""
    w = transfer(seed, PathConfig(delay=0.05, loss=0.03, rate_bps=10e6), "send", 100000, ipv6=ipv6)
    path = tmp_path / "loss.pcapng"
    w.save(path)
    rows = tshark_rows(path)
    assert any("retransmission" in r[1] for r in rows) and any(r[3] for r in rows)
    for n, comment, retx, dup, ooo, zero, malformed in rows:
        assert not malformed
        assert ("retransmission" in comment) == (retx or ooo), (n, comment)
        assert ("duplicate ACK" in comment) == dup, (n, comment)
        assert ("zero window" in comment) == zero, (n, comment)


@pytest.mark.parametrize("lab", ["zero-window", "fast-retransmit", "time-wait", "lost-synack"])
def test_tshark_flags_agree_with_synack_on_labs(lab: str, tmp_path: Path) -> None:
    run = LABS[lab].run()
    path = tmp_path / f"{lab}.pcapng"
    run.packets.save(path)
    rows = tshark_rows(path)
    for n, comment, retx, dup, ooo, zero, malformed in rows:
        assert not malformed
        assert ("retransmission" in comment) == (retx or ooo), (n, comment)
        assert ("duplicate ACK" in comment) == dup, (n, comment)
        assert ("zero window" in comment) == zero, (n, comment)
    if lab == "zero-window":
        assert sum(r[5] for r in rows) >= 1
    if lab == "fast-retransmit":
        assert sum(r[3] for r in rows) >= 3


@FAMILIES
def test_tshark_out_of_order_agrees_on_a_reordering_path(tmp_path: Path, ipv6: bool) -> None:
    """Receive-side capture on a path that reorders (no loss): the segments synack
    marks as having arrived after later data are exactly tshark's out-of-order ones."""
    w = transfer(
        1,
        PathConfig(delay=0.05, reorder=0.03, reorder_delay=0.002, rate_bps=10e6),
        "deliver",
        100000,
        ipv6=ipv6,
    )
    path = tmp_path / "reorder.pcapng"
    w.save(path)
    rows = tshark_rows(path)
    assert sum(r[4] for r in rows) >= 2
    for n, comment, retx, _dup, ooo, _zero, malformed in rows:
        assert not malformed
        assert ("out of order" in comment) == ooo, (n, comment)
        assert ("retransmission" in comment) == retx, (n, comment)


def test_demo_pcap_option_writes_a_capture_tshark_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.pcapng"
    assert main(["demo", "-q", "--loss", "0.2", "--seed", "3", "--pcap", str(path)]) == 0
    out = capsys.readouterr().out
    assert "capture" in out and "packets" in out
    rows = tshark_rows(path)
    assert rows and not any(r[6] for r in rows)
    assert any(r[2] for r in rows) and any("retransmission" in r[1] for r in rows)


def test_demo_ipv6_captures_and_trace_replays_read_clean_in_tshark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo --ipv6``: the live capture (pcapng) and the one rebuilt from its trace
    (classic pcap) are IPv6 throughout, with nothing malformed and the same comments."""
    live, trace, replay = tmp_path / "d.pcapng", tmp_path / "d.jsonl", tmp_path / "r.pcap"
    assert (
        main(
            [
                "demo",
                "-q",
                "--ipv6",
                "--loss",
                "0.2",
                "--seed",
                "3",
                "--pcap",
                str(live),
                "--trace",
                str(trace),
            ]
        )
        == 0
    )
    assert "2001:db8::1" not in capsys.readouterr().out  # -q: the summary only
    assert main(["explain", str(trace), "--pcap", str(replay)]) == 0
    capsys.readouterr()
    for path in (live, replay):
        rows = tshark_rows(path)
        assert rows and not any(r[6] for r in rows), path
        assert tshark_versions(path) == {"6"}
    assert any("retransmission" in r[1] for r in tshark_rows(live))
