"""Checksum and segmentation offload: the virtio-net header on a TUN device.

The unit tests stand in for the kernel with a small software GSO (below):
it finishes partial checksums and cuts offloaded segments per ``gso_size``,
the way the kernel does before a packet reaches a wire, so we can check
that what synack hands the kernel becomes valid MTU-sized segments.  The
kernel tests at the end run the same thing through a real TUN device.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.pairs import MTU, finish_checksum, kernel_segment, offload_pair, shuttle
from synack.aio.host import Host
from synack.links import tun as tun_module
from synack.links.tun import TunLink
from synack.stack import Stack
from synack.wire.ipv4 import ip_to_bytes
from synack.wire.packet import decode_ipv4_tcp, encode_ipv4_tcp
from synack.wire.segment import ACK, CWR, FIN, PSH, Segment
from synack.wire.vnet import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_ECN,
    GSO_NONE,
    GSO_TCPV4,
    PLAIN_HEADER,
    VNET_HDR,
    VNET_HDR_LEN,
    encode_ipv4_tcp_offload,
    parse_vnet_header,
)

A, B = ip_to_bytes("10.0.0.1"), ip_to_bytes("10.0.0.2")


# ------------------------------------------------------------ a software "kernel"


# ------------------------------------------------------------------- the encoder
def test_a_short_segment_asks_only_for_the_checksum() -> None:
    seg = Segment(40000, 80, 1000, 2000, ACK | PSH, 512, b"hello")
    seg.tsval, seg.tsecr = 7, 9
    pkt = encode_ipv4_tcp_offload(A, B, seg, MTU - 20)
    vh = parse_vnet_header(pkt)
    assert (vh.flags, vh.gso_type, vh.gso_size) == (F_NEEDS_CSUM, GSO_NONE, 0)
    assert (vh.csum_start, vh.csum_offset, vh.hdr_len) == (20, 16, 20 + 32)
    # Everything but the checksum is what the ordinary encoder writes.
    full = encode_ipv4_tcp(A, B, seg)
    ip = bytearray(pkt[VNET_HDR_LEN:])
    assert ip[:36] == full[:36] and ip[38:] == full[38:]
    assert ip[36:38] != full[36:38]  # only the pseudo-header sum is there
    finish_checksum(ip, vh.csum_start, vh.csum_offset)
    assert bytes(ip) == full


def test_a_long_segment_is_cut_by_the_kernel_into_valid_mtu_sized_segments() -> None:
    payload = os.urandom(10_000)
    seg = Segment(40000, 80, 0xFFFFF000, 5, ACK | PSH | FIN, 1000, payload)
    seg.tsval, seg.tsecr = 1, 2
    pkt = encode_ipv4_tcp_offload(A, B, seg, MTU - 20)
    vh = parse_vnet_header(pkt)
    assert vh.gso_type == GSO_TCPV4 and vh.gso_size == MTU - 20 - 32  # 1448 with TS
    wire = kernel_segment(pkt)
    assert len(wire) == -(-len(payload) // vh.gso_size)
    got = b""
    for n, raw in enumerate(wire):
        assert len(raw) <= MTU
        _, _, s = decode_ipv4_tcp(raw)  # checksums verified
        assert s.seq == (0xFFFFF000 + len(got)) & 0xFFFFFFFF  # wraps past 2**32
        assert s.tsval == 1 and s.ack == 5
        last = n == len(wire) - 1
        assert bool(s.flags & FIN) == last and bool(s.flags & PSH) == last
        got += bytes(s.payload)
    assert got == payload


def test_scapy_agrees_with_the_finished_checksums() -> None:
    scapy = pytest.importorskip("scapy.all")
    seg = Segment(1234, 80, 77, 88, ACK, 100, os.urandom(3001))
    for raw in kernel_segment(encode_ipv4_tcp_offload(A, B, seg, MTU - 20)):
        pkt = scapy.IP(raw)
        ours = pkt[scapy.TCP].chksum
        del pkt[scapy.TCP].chksum
        assert scapy.IP(bytes(pkt))[scapy.TCP].chksum == ours


def test_cwr_rides_on_the_first_piece_only() -> None:
    seg = Segment(1, 2, 3, 4, ACK | CWR, 5, bytes(4000))
    pkt = encode_ipv4_tcp_offload(A, B, seg, MTU - 20)
    assert parse_vnet_header(pkt).gso_type == GSO_TCPV4 | GSO_ECN
    flags = [decode_ipv4_tcp(p)[2].flags & CWR for p in kernel_segment(pkt)]
    assert flags[0] and not any(flags[1:])


# ----------------------------------------------------------------- the stack


def test_two_offloading_stacks_move_a_megabyte_in_64k_segments() -> None:
    a, b = offload_pair()
    lst = b.listen(5000)
    c = a.connect("10.0.0.2", 5000, now=0.0)
    data = os.urandom(1 << 20)
    seen = {"gso": 0}
    now = 0.0
    got = bytearray()
    sent = 0
    server = None
    for _ in range(2000):
        now += 0.001
        if server is None and lst.accept_queue:
            server = lst.accept()
        if sent < len(data) and c.state.name == "ESTABLISHED":
            sent += c.send(data[sent : sent + c.send_space])
        shuttle(a, b, now, seen)
        if server is not None:
            got += server.recv()
        if len(got) == len(data):
            break
        a.handle_timer(now)
        b.handle_timer(now)
    assert bytes(got) == data
    assert seen["gso"] > 0
    assert b.stats["segs_in"] < len(data) // 1448  # far fewer than one per MSS
    assert not any(k.startswith("drop") for k in b.stats)


def test_untrusted_checksums_are_still_verified() -> None:
    st = Stack("10.0.0.2", offload=True, seed=3)
    st.listen(80)
    syn = Segment(40000, 80, 1, 0, 0x02, 1000)
    good = encode_ipv4_tcp(A, B, syn)
    bad = bytearray(good)
    bad[-1] ^= 1  # the TCP checksum
    st.receive_packet(PLAIN_HEADER + bytes(bad), 0.0)  # no flags: verified, dropped
    assert st.stats["drop_tcp_bad_checksum"] == 1 and st.stats["segs_in"] == 0
    trusted = VNET_HDR.pack(F_DATA_VALID, 0, 0, 0, 0, 0)
    st.receive_packet(trusted + bytes(bad), 0.0)  # verified by the kernel: taken
    assert st.stats["segs_in"] == 1
    out = st.packets_to_send(0.0)
    assert len(out) == 1 and parse_vnet_header(out[0]).flags == F_NEEDS_CSUM  # SYN-ACK
    st.receive_packet(b"\0" * 5, 0.0)
    assert st.stats["drop_vnet_header_short"] == 1


def test_stack_made_packets_carry_a_header_too() -> None:
    st = Stack("10.0.0.2", offload=True, seed=4)
    st.receive_packet(
        PLAIN_HEADER + encode_ipv4_tcp(A, B, Segment(1, 9, 5, 0, 0x02, 100)), 0.0
    )  # a SYN to a closed port: RST
    (rst,) = st.packets_to_send(0.0)
    vh = parse_vnet_header(rst)
    assert vh.gso_type == GSO_NONE and vh.flags == F_NEEDS_CSUM
    ip = bytearray(rst[VNET_HDR_LEN:])
    finish_checksum(ip, vh.csum_start, vh.csum_offset)
    assert decode_ipv4_tcp(bytes(ip))[2].flags & 0x04


def test_impairment_and_offload_do_not_mix() -> None:
    with pytest.raises(ValueError, match="plain packets"):
        Host.tun("synx0", offload=True, impair=object())  # type: ignore[arg-type]


# -------------------------------------------------------------- the TUN link
@pytest.fixture
def fake_tun(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A TUN driver that has IFF_VNET_HDR but refuses TUNSETOFFLOAD (set ``refuse``)."""
    state: dict[str, Any] = {"refuse": errno.EINVAL, "setiff": [], "opened": [], "closed": []}
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        fd = real_open("/dev/null", os.O_RDWR)
        state["opened"].append(fd)
        return fd

    def fake_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == tun_module.TUNGETFEATURES:
            return struct.pack("I", tun_module.IFF_TUN | tun_module.IFF_VNET_HDR)
        if request == tun_module.TUNSETIFF:
            _name, flags = struct.unpack("16sH22x", arg)
            state["setiff"].append(flags)
            return arg
        if request == tun_module.TUNSETOFFLOAD:
            if state["refuse"]:
                raise OSError(state["refuse"], os.strerror(state["refuse"]))
            return 0
        if request == tun_module.SIOCGIFMTU:
            return struct.pack("16si20x", b"synq0", 1500)
        raise AssertionError(f"unexpected ioctl {request:#x}")

    real_close = os.close

    def fake_close(fd: int) -> None:
        state["closed"].append(fd)
        real_close(fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "close", fake_close)
    monkeypatch.setattr(fcntl, "ioctl", fake_ioctl)
    monkeypatch.setattr(
        tun_module.TunLink, "_ioctl_inet", lambda self, req, arg, what: fake_ioctl(-1, req, arg)
    )
    yield state


def test_offload_falls_back_to_plain_packets_when_refused(fake_tun: dict[str, Any]) -> None:
    link = TunLink("synq0", offload=True)
    try:
        assert not link.offload and link.max_segment_payload is None
        assert "TUNSETOFFLOAD" in (link.offload_error or "")
        first, second = fake_tun["setiff"]
        assert first & tun_module.IFF_VNET_HDR and not second & tun_module.IFF_VNET_HDR
        assert len(fake_tun["opened"]) == 2 and link.fileno() == fake_tun["opened"][1]
        assert fake_tun["closed"] == fake_tun["opened"][:1]  # the first one, with the header
    finally:
        link.close()


def test_offload_when_granted(fake_tun: dict[str, Any]) -> None:
    fake_tun["refuse"] = 0
    with TunLink("synq0", offload=True) as link:
        assert link.offload and link.offload_error is None
        assert link.max_segment_payload == 65535 - 80
        assert fake_tun["setiff"] == [
            tun_module.IFF_TUN | tun_module.IFF_NO_PI | tun_module.IFF_VNET_HDR
        ]
        assert "offload" in repr(link)


def test_plain_fallback_without_vnet_hdr_still_clears_the_devices_offloads(
    fake_tun: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver without IFF_VNET_HDR: plain packets, and the device's offload state is
    still set explicitly (TUNSETOFFLOAD 0), so a leftover TUN_F_CSUM cannot bite."""
    fake_tun["refuse"] = 0
    real = fcntl.ioctl
    seen: list[tuple[int, Any]] = []

    def no_features(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        seen.append((request, arg))
        if request == tun_module.TUNGETFEATURES:
            return struct.pack("I", tun_module.IFF_TUN)
        return real(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", no_features)
    with TunLink("synq0", offload=True) as link:
        assert not link.offload and "IFF_VNET_HDR" in (link.offload_error or "")
    assert (tun_module.TUNSETOFFLOAD, 0) in seen


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], (True, None)),
        (["--offload"], (True, None)),
        (["--no-offload"], (False, "--no-offload")),
        (["--loss", "0.01"], (False, "impairment options work on plain packets")),
        (["--no-offload", "--delay", "5"], (False, "--no-offload")),
    ],
)
def test_offload_mode_is_auto_by_default(argv: list[str], want: tuple[bool, str | None]) -> None:
    from synack.commands.main import build_parser
    from synack.commands.realnet import offload_choice

    for command in (["serve", "discard"], ["get", "http://10.77.0.1/"]):
        args = build_parser().parse_args([*command, *argv])
        assert offload_choice(args) == want


def test_offload_with_impairment_is_an_error_only_when_asked_for() -> None:
    from synack.commands.main import build_parser
    from synack.commands.realnet import SetupError, offload_choice

    args = build_parser().parse_args(["serve", "discard", "--offload", "--loss", "0.1"])
    with pytest.raises(SetupError, match="cannot be combined"):
        offload_choice(args)


# ---------------------------------------------------------- against the kernel
@pytest.fixture
def ns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from helpers.netns import namespace, require

    require("socat", "ss")
    with namespace("offload", tmp_path) as n:
        yield n


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_kernel_echo_through_offloaded_tun_is_intact(ns: Any, tmp_path: Path, fam: str) -> None:
    """20 MiB echoed by `synack serve echo --offload`: TSO4, or over IPv6 TSO6 (the
    kernel hands synack 64 KB TCPv6 segments and takes 64 KB ones to cut, RFC 8200)."""
    from helpers.netns import KERNEL_IP, STACK_IP, random_file, sha256_file, summary_value, wait_log

    size = 20 << 20
    data, back = tmp_path / "in.bin", tmp_path / "back.bin"
    sha = random_file(data, size, seed=11)
    if fam == "v6":
        srv = ns.serve(
            "echo", "--offload", ip=f"{STACK_IP},fd77::2", kernel_ip=f"{KERNEL_IP},fd77::1/64"
        )
        target = "TCP6:[fd77::2]:7"
    else:
        srv = ns.serve("echo", "--offload")
        target = f"TCP:{STACK_IP}:7"
    assert "with offloads" in srv.stdout()
    t0 = time.monotonic()
    with open(data, "rb") as fi, open(back, "wb") as fo:
        res = ns.run("socat", "-t", "60", "-", target, stdin=fi, stdout=fo, timeout=120)
    print(f"20 MiB echoed ({fam}) through an offloaded TUN in {time.monotonic() - t0:.2f} s")
    assert res.returncode == 0, res.stderr
    assert back.stat().st_size == size and sha256_file(back) == sha
    log = wait_log(srv, 1)[0]
    assert log["bytes_in"] == log["bytes_out"] == size and log["error"] is None
    assert srv.stop() == 0
    cell = summary_value(srv.stdout(), "packets on the link")
    pkts_in, pkts_out = (int(x) for x in cell.replace(",", "").split()[1::2])
    # One packet per MSS would be 2 x 14,500 each way; 64 KB segments are far fewer.
    assert pkts_in < size // 1448 // 4 and pkts_out < size // 1448 // 4


def test_a_device_reused_without_offloads_after_a_default_run_drops_nothing(
    ns: Any, tmp_path: Path
) -> None:
    """A persistent device: `serve` with the default (offloads on, auto), then with
    --no-offload, then the default again.  Each attach sets the device's offload state,
    so the kernel's data arrives intact every time and nothing fails a checksum."""
    from helpers.netns import STACK_IP, random_file, wait_log

    ns.tun_device("syn0")
    data = tmp_path / "in.bin"
    sha = random_file(data, 3 << 20, seed=12)
    for extra, on in (((), True), (("--no-offload",), False), ((), True)):
        srv = ns.serve("discard", "--no-create", "--verify", *extra, kernel_ip=None)
        assert ("with offloads" in srv.stdout()) is on, srv.stdout()
        res = ns.run("socat", "-u", f"OPEN:{data}", f"TCP:{STACK_IP}:9", timeout=60)
        assert res.returncode == 0, res.stderr
        log = wait_log(srv, 1)[0]
        assert log["bytes_in"] == 3 << 20 and log["sha256"] == sha
        assert srv.stop() == 0
        drops = [ln for ln in srv.stdout().splitlines() if "dropped by the stack" in ln]
        assert drops and "checksum" not in drops[0], drops  # (an IPv6 router solicitation
        # may be dropped: synack speaks IPv4)
        stderr = srv.stderr()
        assert "bad checksum" not in stderr
        assert ("offloads: on" if on else "offloads: off (--no-offload)") in stderr
