"""synack against the Linux kernel's TCP, through a TUN device, in network namespaces.

Every test makes a fresh namespace (tests/helpers/netns.py), starts ``synack serve``
(or a synack client) inside it on ``syn0`` (synack 10.77.0.2, kernel
10.77.0.1/24), talks to it with ordinary programs (curl, socat, ping, nc,
python3 -m http.server), checks the programs' own results (exit status,
SHA-256 of what arrived, error messages), and deletes the namespace.
Needs root, /dev/net/tun, iproute2, curl, socat and ping; skipped without
them, failed under ``CI=true``.  ``pytest -s`` prints the timings
(docs/interop.md has measured figures).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.capabilities import missing
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
    timed,
    wait_log,
)
from synack.services.http import generated_sha256

MB = 1 << 20


@pytest.fixture
def ns(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Netns]:
    require("socat", "curl", "ping", "ss")
    what = request.node.name.removeprefix("test_")[:14].replace("_", "-")
    with namespace(what, tmp_path) as n:
        yield n


# ---------------------------------------------------------------- acceptance
def test_acceptance_socat_echoes_lines_and_closes_cleanly_on_eof(ns: Netns) -> None:
    """The issue's acceptance example, exactly: serve echo, then socat from the kernel."""
    srv = ns.serve("echo")  # synack serve echo --tun syn0 --ip 10.77.0.2 --kernel-ip 10.77.0.1/24
    assert srv.stdout().startswith("listening on 10.77.0.2:7 (echo) via syn0")
    lines = b"first line\nsecond line\n" + b"x" * 3000 + b"\nlast\n"
    res = ns.run("socat", "-", f"TCP:{STACK_IP}:7", input=lines, timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout == lines
    log = wait_log(srv, 1)[0]
    assert log["bytes_in"] == log["bytes_out"] == len(lines)
    assert log["error"] is None  # no reset, no failure
    # Closed in order: the kernel sent the first FIN, so it holds TIME-WAIT, which an
    # RST from synack would have cut short.
    tw = ns.run("ss", "-Htn", "state", "time-wait", "dst", f"{STACK_IP}:7").stdout.decode()
    assert f"{STACK_IP}:7" in tw
    assert srv.stop(signal.SIGINT) == 0
    out = srv.stdout()
    assert summary_value(out, "connections") == "1"
    assert summary_value(out, "bytes in") == str(len(lines))
    gone = ns.run("ip", "link", "show", "syn0")
    assert gone.returncode != 0  # the device synack created went away with it


# ------------------------------------------------------------- synack servers
def test_curl_fetches_a_page_a_file_and_50mb_from_synack_http(ns: Netns, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello from a file\n")
    file_sha = random_file(root / "data.bin", 3 * MB + 17, seed=5)
    srv = ns.serve("http", "--root", str(root))
    base = f"http://{STACK_IP}"
    page = ns.run("curl", "-sS", "--fail", f"{base}/", timeout=20)
    assert page.returncode == 0, page.stderr
    assert b"<title>synack</title>" in page.stdout and b"hello.txt" in page.stdout
    # Two requests on one persistent connection, then a file and a 404.
    two = ns.run("curl", "-sS", "-v", f"{base}/hello.txt", f"{base}/hello.txt", timeout=20)
    assert two.stdout == b"hello from a file\n" * 2
    assert b"Re-using existing connection" in two.stderr
    got = tmp_path / "data.out"
    res = ns.run("curl", "-sS", "--fail", "-o", str(got), f"{base}/data.bin", timeout=30)
    assert res.returncode == 0, res.stderr
    assert sha256_file(got) == file_sha
    missing_ = ns.run(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/no-such-file", timeout=20
    )
    assert missing_.stdout == b"404"
    size = 50 * MB
    big = tmp_path / "big.out"
    t0 = time.monotonic()
    res = ns.run(
        "curl",
        "-sS",
        "--fail",
        "-o",
        str(big),
        "-w",
        "%{size_download}",
        f"{base}/bytes/{size}",
        timeout=120,
    )
    took = timed("curl 50 MiB from synack serve http", t0)
    assert res.returncode == 0, res.stderr
    assert res.stdout == str(size).encode()
    assert sha256_file(big) == generated_sha256(size)
    print(f"[rate] {size / took / 1e6:.1f} MB/s")
    assert srv.stop() == 0
    assert summary_value(srv.stdout(), "requests") == "6"


def test_socat_pushes_50mb_into_discard(ns: Netns, tmp_path: Path) -> None:
    size = 50 * MB
    data = tmp_path / "in.bin"
    sha = random_file(data, size, seed=2)
    srv = ns.serve("discard", "--verify")
    t0 = time.monotonic()
    res = ns.run("socat", "-u", f"OPEN:{data}", f"TCP:{STACK_IP}:9", timeout=120)
    assert res.returncode == 0, res.stderr
    log = wait_log(srv, 1, timeout=120)[0]
    timed("socat 50 MiB into synack serve discard", t0)
    assert log["bytes_in"] == size and log["sha256"] == sha and log["error"] is None
    assert srv.stop() == 0


def test_nc_pushes_into_discard_too(ns: Netns, tmp_path: Path) -> None:
    require("nc")
    usage = subprocess.run(["nc", "-h"], capture_output=True, text=True)
    if "-N" not in usage.stdout + usage.stderr:
        missing("nc is not netcat-openbsd (no -N to send FIN at the end of input)")
    data = tmp_path / "in.bin"
    sha = random_file(data, 2 * MB, seed=3)
    srv = ns.serve("discard", "--verify")
    with open(data, "rb") as fh:
        res = ns.run("nc", "-N", STACK_IP, "9", stdin=fh, timeout=60)  # -N: FIN at EOF
    assert res.returncode == 0, res.stderr
    log = wait_log(srv, 1)[0]
    assert log["bytes_in"] == 2 * MB and log["sha256"] == sha
    srv.stop()


def test_echo_round_trips_10mb_intact(ns: Netns, tmp_path: Path) -> None:
    size = 10 * MB
    data, back = tmp_path / "in.bin", tmp_path / "back.bin"
    sha = random_file(data, size, seed=4)
    srv = ns.serve("echo")
    t0 = time.monotonic()
    with open(data, "rb") as fi, open(back, "wb") as fo:
        # -t 60: after its stdin ends, socat waits (up to 60 s) for synack's FIN.
        res = ns.run(
            "socat", "-t", "60", "-", f"TCP:{STACK_IP}:7", stdin=fi, stdout=fo, timeout=120
        )
    timed("10 MiB echoed by synack serve echo", t0)
    assert res.returncode == 0, res.stderr
    assert back.stat().st_size == size and sha256_file(back) == sha
    log = wait_log(srv, 1)[0]
    assert log["bytes_in"] == log["bytes_out"] == size and log["error"] is None
    srv.stop()


def test_chargen_closes_first_after_its_bytes(ns: Netns) -> None:
    """The server closes first: socat reads the RFC 864 pattern to synack's FIN."""
    from synack.services.basic import chargen_bytes

    srv = ns.serve("chargen", "--bytes", "100000")
    res = ns.run("socat", "-u", f"TCP:{STACK_IP}:19", "-", timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout == chargen_bytes(0, 100000)
    assert res.stdout[:74] == (bytes(range(32, 104)) + b"\r\n")
    log = wait_log(srv, 1)[0]
    assert log["bytes_out"] == 100000 and log["error"] is None
    srv.stop()


def test_ping_a_server_attached_to_an_existing_device(ns: Netns) -> None:
    """``ip tuntap add`` makes syn0 and gives the kernel its address; ``serve --no-create``
    attaches to it without touching the kernel side; ping gets its echo replies; a second
    synack on the same device is told it is busy; SIGTERM stops the server."""
    ns.tun_device()
    srv = ns.serve("discard", "--no-create", kernel_ip=None)
    res = ns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", STACK_IP, timeout=20)
    assert res.returncode == 0, res.stdout + res.stderr
    assert b"3 packets transmitted, 3 received" in res.stdout
    again = ns.synack("serve", "echo", "--tun", "syn0", "--no-create", timeout=20)
    assert again.returncode == 1
    assert b"busy" in again.stderr and b"syn0" in again.stderr
    assert srv.stop(signal.SIGTERM) == 0
    assert summary_value(srv.stdout(), "ping") == "3 echo replies"
    assert ns.run("ip", "link", "show", "syn0").returncode == 0  # a persistent device stays


def test_stopping_closes_open_connections_gracefully(ns: Netns) -> None:
    """SIGINT with a connection open: synack sends FIN, socat sees the end and closes,
    and neither side resets."""
    srv = ns.serve("echo")
    client = ns.popen("socat", "-", f"TCP:{STACK_IP}:7", stdin=subprocess.PIPE, label="socat")
    assert client.popen.stdin is not None
    client.popen.stdin.write(b"still here\n")
    client.popen.stdin.flush()
    client.wait_for("still here")
    assert srv.stop(signal.SIGINT) == 0
    assert client.wait(10) == 0  # its stdin is still open: it ended because synack closed
    log = wait_log(srv, 1)[0]
    assert log["error"] is None and log["bytes_out"] == len(b"still here\n")
    out = srv.stdout()
    assert summary_value(out, "connections") == "1" and "reset at exit" not in out


def test_kernel_connecting_to_a_closed_synack_port_is_refused(ns: Netns) -> None:
    srv = ns.serve("http")
    res = ns.run("curl", "-sS", "-v", f"http://{STACK_IP}:81/", timeout=20)
    assert res.returncode == 7  # curl: couldn't connect
    assert b"Connection refused" in res.stderr
    res = ns.run("socat", "-u", f"TCP:{STACK_IP}:81", "-", timeout=20)
    assert res.returncode != 0 and b"Connection refused" in res.stderr
    srv.stop()


#: family -> (synack's --ip, --kernel-ip, its address in a URL or socat, socat's TCP kind,
#: curl's family flag)
LOSSY_FAMILIES = {
    "v4": (STACK_IP, KERNEL_IP, STACK_IP, "TCP4", "-4"),
    "v6": ("fd77::2", "fd77::1/64", "[fd77::2]", "TCP6", "-6"),
}


@pytest.mark.parametrize("fam", LOSSY_FAMILIES)
def test_transfers_complete_under_5pct_loss_and_reordering(
    ns: Netns, tmp_path: Path, fam: str
) -> None:
    """Impairment on the link (both directions): 5% loss, 5% reordering; over IPv4 and
    over IPv6 (the kernel's TCP6 against synack's, MSS 1440)."""
    ip, kernel_ip, target, socat, curl_family = LOSSY_FAMILIES[fam]
    impair = ["--loss", "0.05", "--reorder", "0.05", "--impair-seed", "11"]
    size = 4 * MB
    data = tmp_path / "in.bin"
    sha = random_file(data, size, seed=6)
    srv = ns.serve("discard", "--verify", *impair, ip=ip, kernel_ip=kernel_ip)
    t0 = time.monotonic()
    res = ns.run("socat", "-u", f"OPEN:{data}", f"{socat}:{target}:9", timeout=120)
    assert res.returncode == 0, res.stderr
    log = wait_log(srv, 1, timeout=120)[0]
    timed(f"4 MiB kernel -> synack over {fam}, 5% loss + 5% reordering", t0)
    assert log["bytes_in"] == size and log["sha256"] == sha
    srv.stop()
    lost = summary_value(srv.stdout(), "impairment")
    m = re.match(r"lost in (\d+), out (\d+)", lost)
    assert m is not None and int(m.group(1)) > 0 and int(m.group(2)) > 0
    # synack sends: curl downloads through the same impairment.
    srv = ns.serve("http", *impair, ip=ip, kernel_ip=kernel_ip)
    out = tmp_path / "out.bin"
    t0 = time.monotonic()
    res = ns.run(
        "curl",
        curl_family,
        "-sS",
        "--fail",
        "-o",
        str(out),
        f"http://{target}/bytes/{size}",
        timeout=180,
    )
    timed(f"4 MiB synack -> kernel over {fam}, 5% loss + 5% reordering", t0)
    assert res.returncode == 0, res.stderr
    assert sha256_file(out) == generated_sha256(size)
    srv.stop()
    assert int(summary_value(srv.stdout(), "retransmissions")) > 0


# ------------------------------------------------------------- synack clients
@pytest.fixture
def tun_ns(ns: Netns) -> Netns:
    """A namespace with a persistent syn0 the kernel already has 10.77.0.1/24 on, so
    kernel servers can bind that address before synack attaches (--no-create)."""
    ns.tun_device()
    return ns


CLIENT_TUN = ["--tun", "syn0", "--no-create", "--ip", STACK_IP]


def test_synack_get_from_kernel_http_server(tun_ns: Netns, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    sha = random_file(www / "file.bin", 8 * MB + 3, seed=7)
    tun_ns.popen(
        PYTHON,
        "-m",
        "http.server",
        "8000",
        "--bind",
        KERNEL_ADDR,
        "--directory",
        str(www),
        label="http.server",
    )
    tun_ns.wait_listening(8000)
    out = tmp_path / "got.bin"
    t0 = time.monotonic()
    res = tun_ns.synack(
        "get", f"http://{KERNEL_ADDR}:8000/file.bin", "-o", str(out), *CLIENT_TUN, timeout=120
    )
    timed("synack get 8 MiB from python3 -m http.server", t0)
    assert res.returncode == 0, res.stderr.decode()
    assert sha256_file(out) == sha
    assert b"200 OK" in res.stderr
    # To standard output, and an HTTP error.
    res = tun_ns.synack("get", f"http://{KERNEL_ADDR}:8000/", "-q", *CLIENT_TUN)
    assert res.returncode == 0 and b"file.bin" in res.stdout
    res = tun_ns.synack("get", f"http://{KERNEL_ADDR}:8000/nope", *CLIENT_TUN)
    assert res.returncode == 22
    assert b"HTTP 404" in res.stderr and res.stdout == b""


def test_synack_connect_closes_first_to_a_socat_server(tun_ns: Netns, tmp_path: Path) -> None:
    """synack sends, half-closes at the end of its stdin; socat (kernel) writes the file,
    sees the FIN, closes; synack connect exits 0."""
    data, got = tmp_path / "in.bin", tmp_path / "got.bin"
    sha = random_file(data, 3 * MB, seed=8)
    server = tun_ns.popen(
        "socat", "-u", f"TCP-LISTEN:5000,bind={KERNEL_ADDR}", f"CREATE:{got}", label="socat-listen"
    )
    tun_ns.wait_listening(5000)
    with open(data, "rb") as fh:
        res = tun_ns.synack("connect", KERNEL_ADDR, "5000", *CLIENT_TUN, stdin=fh, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    assert server.wait(20) == 0
    assert sha256_file(got) == sha


def test_synack_connect_when_the_kernel_closes_first(tun_ns: Netns, tmp_path: Path) -> None:
    """socat sends a file and closes first; synack connect prints it all and exits 0
    although its own standard input is still open."""
    data = tmp_path / "out.bin"
    sha = random_file(data, 2 * MB, seed=9)
    server = tun_ns.popen(
        "socat", "-u", f"OPEN:{data}", f"TCP-LISTEN:5001,bind={KERNEL_ADDR}", label="socat-send"
    )
    tun_ns.wait_listening(5001)
    got = tmp_path / "got.bin"
    with open(got, "wb") as fo:
        proc = subprocess.Popen(
            tun_ns.cmd(*tun_ns.synack_argv("connect", KERNEL_ADDR, "5001", *CLIENT_TUN)),
            stdin=subprocess.PIPE,
            stdout=fo,
            stderr=subprocess.PIPE,
        )
        try:
            rc = proc.wait(60)  # its stdin is a pipe we keep open
            err = proc.stderr.read() if proc.stderr is not None else b""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.stderr is not None:
                proc.stderr.close()
    assert rc == 0, err
    assert server.wait(20) == 0
    assert sha256_file(got) == sha


def test_synack_connect_to_a_closed_kernel_port_is_refused(tun_ns: Netns) -> None:
    res = tun_ns.synack("connect", KERNEL_ADDR, "9", *CLIENT_TUN, input=b"x", timeout=20)
    assert res.returncode == 1
    assert b"refused" in res.stderr and f"{KERNEL_ADDR}:9".encode() in res.stderr


KERNEL_ABORTS = r"""
import socket, struct, sys
srv = socket.create_server((sys.argv[1], 5002))
print("ready", flush=True)
conn, _ = srv.accept()
conn.recv(100)
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()  # abortive: RST
"""


def test_kernel_abort_is_a_reset_for_synack_connect(tun_ns: Netns) -> None:
    server = tun_ns.popen(PYTHON, "-c", KERNEL_ABORTS, KERNEL_ADDR, label="kernel-abort")
    server.wait_for("ready")
    proc = subprocess.Popen(
        tun_ns.cmd(*tun_ns.synack_argv("connect", KERNEL_ADDR, "5002", *CLIENT_TUN)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert b"reset by the peer" in err
    assert server.wait(10) == 0


SYNACK_ABORTS = r"""
import socket, struct, sys
from synack.sockets import SocketHost
host = SocketHost.tun("syn0", sys.argv[1], kernel_ip=sys.argv[2])
srv = host.create_server(("", 7000))
print("listening", flush=True)
conn, _ = srv.accept()
assert conn.recv(100) == b"hello"
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()  # abortive close: RST now
srv.close()
sys.stdin.read()  # keep the device until the test is done
host.close()
"""

KERNEL_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 7000), timeout=10)
s.sendall(b"hello")
try:
    data = s.recv(100)
    print("no reset, got", data)
except ConnectionResetError:
    print("reset")
"""


def test_synack_abortive_close_is_a_reset_for_the_kernel(ns: Netns) -> None:
    """synack's socket API with SO_LINGER 0 closes with RST; the kernel's recv raises
    ConnectionResetError."""
    side = ns.popen(
        PYTHON,
        "-c",
        SYNACK_ABORTS,
        STACK_IP,
        KERNEL_IP,
        stdin=subprocess.PIPE,
        label="synack-abort",
    )
    side.wait_for("listening")
    res = ns.run(PYTHON, "-c", KERNEL_CLIENT, STACK_IP, timeout=20)
    assert res.stdout.decode().strip() == "reset", res.stderr.decode()
    assert side.popen.stdin is not None
    side.popen.stdin.close()
    assert side.wait(20) == 0, side.stderr()
