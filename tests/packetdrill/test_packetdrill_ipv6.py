"""packetdrill over IPv6 (``--ip_version=ipv6``) and IPv4-mapped IPv6, on both targets.

The shared corpus's scripts run in any family (the corpus README: "under both IPv4 and
IPv6 unless a --ip_version line is present"), chosen with ``RunOptions.ip_version`` (the
command's ``--ip-version``).  Checked here:

* the packets really are of the family asked for, with the Linux selftests' addresses
  and, over IPv6, the MSS of a 1520-byte link less 60 (1460, as the corpus expects);
* on synack ``--profile linux`` every corpus script gives, in IPv6 and in the mapped
  mode, the result recorded for IPv4 (tests/packetdrill_corpus_expected.txt), and our
  own scripts pass in IPv6 too;
* on the kernel (root; namespaces the runner makes) the corpus passes in IPv6 except
  the scripts of tests/packetdrill_kernel_exceptions.txt, failing at the same lines as
  over IPv4, and the Linux selftests' scripts pass in the mapped mode.

Differences of IPv6 from IPv4 would be listed, with reasons, in
tests/packetdrill_ipv6_exceptions.txt (none today).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from helpers import TESTS
from helpers.capabilities import missing, root_tun_problem
from synack.commands.packetdrill import run_packetdrill
from synack.packetdrill import expectations
from synack.packetdrill.kernel import run_script_kernel
from synack.packetdrill.runner import RunOptions, RunResult, iter_scripts, run_script
from synack.wire.ipv6 import addr_to_str
from synack.wire.packet import decode_ip_tcp

HERE = TESTS
CORPUS = HERE.resolve().parents[1] / "shared" / "packetdrill"
EXPECTED = HERE / "packetdrill_corpus_expected.txt"
KERNEL_EXCEPTIONS = HERE / "packetdrill_kernel_exceptions.txt"
IPV6_EXCEPTIONS = HERE / "packetdrill_ipv6_exceptions.txt"
OURS = HERE / "packetdrill"
LINUX_OURS = HERE / "packetdrill_linux"

CLIENT = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
+0 write(3, ..., 100) = 100
+0 > P. 1:101(100) ack 1
"""
SERVER = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss MSS>
"""


def _table(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, *rest = line.split("\t")
            out[key] = rest
    return out


class _Packets:
    """A capture callback that also works in the kernel target's forked child: it
    appends each packet to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, raw: bytes, _t: float, why: str) -> None:
        with open(self.path, "a", encoding="ascii") as fh:
            fh.write(f"{why.split()[0]}\t{raw.hex()}\n")

    def read(self) -> list[tuple[str, int, str, str]]:
        """(who, IP version, source, destination) of every packet captured."""
        out = []
        for line in self.path.read_text(encoding="ascii").splitlines():
            who, hexed = line.split("\t")
            raw = bytes.fromhex(hexed)
            src, dst, _seg = decode_ip_tcp(raw)
            out.append((who, raw[0] >> 4, addr_to_str(src), addr_to_str(dst)))
        return out


def _kernel_or_skip() -> None:
    problem = root_tun_problem(netns=False)
    if problem is not None:
        missing(problem)


# ------------------------------------------------------------------------- both targets
@pytest.mark.parametrize("target", ["synack", "kernel"])
@pytest.mark.parametrize(
    ("version", "ip", "local", "remote"),
    [
        ("ipv6", 6, "fd3d:a0b:17d6::1", "fd3d:fa7b:d17d::1"),
        ("ipv4-mapped-ipv6", 4, "192.168.0.1", "192.0.2.1"),
        ("ipv4", 4, "192.168.0.1", "192.0.2.1"),
    ],
)
def test_packets_are_of_the_family_asked_for(
    tmp_path: Path, target: str, version: str, ip: int, local: str, remote: str
) -> None:
    if target == "kernel":
        _kernel_or_skip()
    script = tmp_path / "client.pkt"
    script.write_text(CLIENT)
    packets = _Packets(tmp_path / "packets.txt")
    opts = RunOptions(ip_version=version, capture=packets)
    res = (
        run_script_kernel(script, opts) if target == "kernel" else run_script(script, "linux", opts)
    )
    assert res.status == "PASS", res.report(verbose=True)
    seen = packets.read()
    assert len(seen) >= 4
    for who, version_nibble, src, dst in seen:
        assert version_nibble == ip
        assert (src, dst) == ((remote, local) if who == "injected" else (local, remote))


@pytest.mark.parametrize("target", ["synack", "kernel"])
@pytest.mark.parametrize(
    ("version", "mtu", "mss"),
    [
        ("ipv6", None, 1460),  # the 1520-byte link of the Linux selftests
        ("ipv6", 1500, 1440),  # RFC 8200 §3: 20 bytes more header than IPv4
        ("ipv6", 1280, 1220),  # the IPv6 minimum MTU (RFC 8200 §5)
        ("ipv4", 1500, 1460),
        ("ipv4-mapped-ipv6", 1500, 1460),
    ],
)
def test_mss_is_the_mtu_less_the_family_headers(
    tmp_path: Path, target: str, version: str, mtu: int | None, mss: int
) -> None:
    if target == "kernel":
        _kernel_or_skip()
    script = tmp_path / "server.pkt"
    script.write_text((f"--mtu={mtu}\n" if mtu else "") + SERVER.replace("MSS", str(mss)))
    opts = RunOptions(ip_version=version)
    res = (
        run_script_kernel(script, opts) if target == "kernel" else run_script(script, "linux", opts)
    )
    assert res.status == "PASS", res.report(verbose=True)


def test_a_scripts_own_ip_version_line_wins_and_a_bad_one_is_named(tmp_path: Path) -> None:
    script = tmp_path / "own.pkt"
    script.write_text("--ip_version=ipv6\n--mtu=1500\n" + SERVER.replace("MSS", "1440"))
    assert run_script(script, "linux", RunOptions(ip_version="ipv4")).status == "PASS"
    bad = tmp_path / "bad.pkt"
    bad.write_text("--ip_version=ipv7\n" + SERVER.replace("MSS", "1460"))
    res = run_script(bad, "linux")
    assert res.failure is not None and res.failure.line == 1
    assert "ipv4, ipv4-mapped-ipv6, ipv6" in res.failure.message


def test_the_command_takes_ip_version(tmp_path: Path) -> None:
    script = tmp_path / "server.pkt"
    script.write_text(SERVER.replace("MSS", "1460"))
    args = argparse.Namespace(
        paths=[str(script)],
        target="synack",
        profile="linux",
        tolerance_usecs=None,
        tolerance_percent=None,
        strict_segments=False,
        check_ts_ecr=False,
        verbose=False,
        show_profile=False,
        expectations=None,
        write_expectations=None,
        ip_version="ipv6",
        pcap=tmp_path / "v6.pcap",
    )
    out = io.StringIO()
    assert run_packetdrill(args, out) == 0, out.getvalue()
    # MSS 1460 over IPv6 needs the 1520-byte link: at 1500 the same script fails.
    script.write_text("--mtu=1500\n" + SERVER.replace("MSS", "1460"))
    assert run_packetdrill(args, io.StringIO()) == 1


# ------------------------------------------------------------------------------ synack
def test_ipv6_exceptions_are_well_formed() -> None:
    for key, rest in _table(IPV6_EXCEPTIONS).items():
        assert key.endswith(".pkt") and len(rest) == 2 and rest[0] in ("synack", "kernel")
        assert rest[1]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")
@pytest.mark.parametrize("version", ["ipv6", "ipv4-mapped-ipv6"])
def test_synack_linux_gives_the_corpus_ipv4_results_in(version: str) -> None:
    exceptions = {k for k, (target, _why) in _table(IPV6_EXCEPTIONS).items() if target == "synack"}
    results = [
        run_script(p, "linux", RunOptions(ip_version=version)) for p in iter_scripts([CORPUS])
    ]
    assert len(results) == 39
    kept = [r for r in results if expectations.key(r, CORPUS) not in exceptions]
    diffs = expectations.compare(
        kept, CORPUS, {k: v for k, v in expectations.load(EXPECTED).items() if k not in exceptions}
    )
    assert not diffs, "\n".join(diffs)


@pytest.mark.parametrize(
    "script",
    sorted(OURS.glob("*.pkt")) + sorted(LINUX_OURS.glob("*.pkt")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_our_scripts_pass_over_ipv6(script: Path) -> None:
    profile = "rfc" if script.parent == OURS else "linux"
    res = run_script(script, profile, RunOptions(ip_version="ipv6"))
    assert res.status == "PASS", res.report(verbose=True)


# ------------------------------------------------------------------------------ kernel
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")
def test_the_corpus_passes_over_ipv6_on_the_kernel() -> None:
    _kernel_or_skip()
    known = _table(KERNEL_EXCEPTIONS)
    extra = {k: v for k, v in _table(IPV6_EXCEPTIONS).items() if v[0] == "kernel"}
    problems = []
    for script in iter_scripts([CORPUS]):
        key = str(script.relative_to(CORPUS))
        if key in extra:
            continue
        res: RunResult = run_script_kernel(script, RunOptions(ip_version="ipv6"))
        if key in known:
            line = int(known[key][0])
            if res.ok or res.failure is None or res.failure.line != line:
                problems.append(
                    f"{key}: fails at line {line} over IPv4 on this kernel, but "
                    f"over IPv6: {res.report()}"
                )
        elif not res.ok:
            problems.append(res.report(verbose=True))
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/packetdrill not present")
def test_the_linux_selftests_pass_mapped_on_the_kernel() -> None:
    _kernel_or_skip()
    known = _table(KERNEL_EXCEPTIONS)
    scripts = [
        s for s in iter_scripts([CORPUS / "linux"]) if str(s.relative_to(CORPUS)) not in known
    ]
    assert len(scripts) >= 5
    failed = [
        r.report(verbose=True)
        for r in (run_script_kernel(s, RunOptions(ip_version="ipv4-mapped-ipv6")) for s in scripts)
        if not r.ok
    ]
    assert not failed, "\n".join(failed)
