"""IPv6 against the Linux kernel on a TUN device, in a namespace each test makes
(tests/helpers/netns.py): ping -6, socat TCP6, curl -6, and synack get with a bracketed literal;
the same tests over IPv4 where they apply (one parametrised suite).

Needs root, /dev/net/tun, iproute2, socat, curl, ping (and tcpdump for the handshake
capture); skipped without them (a
failure under CI=true)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.netns import (
    KERNEL_ADDR,
    KERNEL_IP,
    PYTHON,
    STACK_IP,
    Netns,
    namespace,
    random_file,
    require,
    sha256_file,
    summary_value,
    wait_log,
)

KERNEL6, STACK6 = "fd77::1", "fd77::2"
BOTH_IP = f"{STACK_IP},{STACK6}"
BOTH_KERNEL = f"{KERNEL_IP},{KERNEL6}/64"
FAMILIES = {"v4": (KERNEL_ADDR, STACK_IP, "TCP4"), "v6": (KERNEL6, STACK6, "TCP6")}


@pytest.fixture
def ns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Netns]:
    require("socat", "curl", "ping", "ss")
    what = "v6-" + request.node.name.removeprefix("test_")[:11].replace("_", "-")
    with namespace(what.strip("[]-"), tmp_path) as n:
        yield n


def test_ping6_and_no_ipv6_drops_counted_as_bad_version(ns: Netns) -> None:
    srv = ns.serve("echo", ip=BOTH_IP, kernel_ip=BOTH_KERNEL)
    res = ns.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", STACK6, timeout=30)
    assert res.returncode == 0, res.stderr
    assert b"3 received" in res.stdout
    assert srv.stop(signal.SIGINT) == 0
    out = srv.stdout()
    assert "version" not in out  # the kernel's IPv6 is no longer ip_bad_version


@pytest.mark.parametrize("fam", FAMILIES)
def test_socat_echo_both_families_on_one_stack(ns: Netns, fam: str) -> None:
    _, stack, socat = FAMILIES[fam]
    srv = ns.serve("echo", ip=BOTH_IP, kernel_ip=BOTH_KERNEL)
    lines = b"over " + fam.encode() + b"\n" + b"y" * 100_000 + b"\nend\n"
    target = f"[{stack}]" if fam == "v6" else stack
    res = ns.run("socat", "-", f"{socat}:{target}:7", input=lines, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == lines
    log = wait_log(srv, 1)[0]
    assert log["bytes_in"] == len(lines) and log["error"] is None
    assert srv.stop(signal.SIGINT) == 0
    assert summary_value(srv.stdout(), "connections") == "1"


def test_curl6_fetches_from_synack_http(ns: Netns, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    sha = random_file(root / "data.bin", 2 * (1 << 20) + 5, seed=6)
    srv = ns.serve("http", "--root", str(root), ip=STACK6, kernel_ip=f"{KERNEL6}/64")
    got = tmp_path / "got.bin"
    res = ns.run(
        "curl", "-6", "-sS", "--fail", "-o", str(got), f"http://[{STACK6}]/data.bin", timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert sha256_file(got) == sha
    assert srv.stop() == 0


def test_synack_get_bracketed_literal_from_kernel(ns: Netns, tmp_path: Path) -> None:
    ns.tun_device(kernel_ip=f"{KERNEL6}/64")
    www = tmp_path / "www"
    www.mkdir()
    sha = random_file(www / "f.bin", 1 << 20, seed=9)
    ns.popen(
        PYTHON,
        "-m",
        "http.server",
        "8000",
        "--bind",
        KERNEL6,
        "--directory",
        str(www),
        label="http.server",
    )
    ns.wait_listening(8000)
    out = tmp_path / "got.bin"
    res = ns.synack(
        "get",
        f"http://[{KERNEL6}]:8000/f.bin",
        "-o",
        str(out),
        "--tun",
        "syn0",
        "--no-create",
        "--ip",
        STACK6,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr.decode()
    assert sha256_file(out) == sha


def test_tcpdump_sees_the_ipv6_handshake_negotiate_every_option(ns: Netns, tmp_path: Path) -> None:
    """tcpdump on syn0 while the kernel's TCP6 sends to synack: both SYNs carry MSS 1440
    (MTU 1500 less 60, RFC 9293 §3.7.1), SACK-permitted, timestamps and window scale;
    TSecr echoes TSval, and every later segment carries timestamps."""
    require("tcpdump")
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    srv = ns.serve("discard", "--verify", ip=STACK6, kernel_ip=f"{KERNEL6}/64")
    cap = tmp_path / "v6.pcap"
    dump = ns.popen(
        "tcpdump",
        "-i",
        "syn0",
        "-n",
        "-U",
        "--immediate-mode",
        "-s",
        "200",
        "-w",
        str(cap),
        "ip6 and tcp",
        label="tcpdump",
    )
    dump.wait_for("listening on syn0", stream="stderr")
    data = tmp_path / "in.bin"
    sha = random_file(data, 300_000, seed=12)
    res = ns.run("socat", "-u", f"OPEN:{data}", f"TCP6:[{STACK6}]:9", timeout=30)
    assert res.returncode == 0, res.stderr
    assert wait_log(srv, 1)[0]["sha256"] == sha
    time.sleep(0.2)  # the last packets of the close reach the capture
    dump.stop(signal.SIGINT)
    srv.stop()
    packets = [(p[IPv6], p[TCP]) for p in rdpcap(str(cap)) if p.haslayer(IPv6) and p.haslayer(TCP)]

    def options(tcp: Any) -> dict[str, Any]:
        return {n: v for n, v in tcp.options if n not in ("NOP", "EOL")}

    syn = next(t for _, t in packets if int(t.flags) & 0x12 == 0x02)
    synack = next(t for _, t in packets if int(t.flags) & 0x12 == 0x12)
    assert syn.dport == 9 and synack.sport == 9 and synack.dport == syn.sport
    syn_o, synack_o = options(syn), options(synack)
    every = {"MSS", "SAckOK", "Timestamp", "WScale"}
    assert set(syn_o) == every and set(synack_o) == every, (syn_o, synack_o)
    assert syn_o["MSS"] == synack_o["MSS"] == 1440
    assert synack_o["Timestamp"][1] == syn_o["Timestamp"][0]
    assert syn_o["WScale"] > 0 and synack_o["WScale"] > 0
    from_synack = [(ip, t) for ip, t in packets if ip.src == STACK6]
    assert from_synack and all(ip.dst == KERNEL6 for ip, _ in from_synack)
    rest = [t for _, t in packets if not int(t.flags) & 0x02]
    assert rest and all("Timestamp" in options(t) for t in rest)
