"""The TUN link: clean errors (no privileges needed) and the real kernel (root, netns).

Root tests create their own network namespace, run synack inside it in a
helper process (``ip netns exec``), talk to it from the kernel side of the
same namespace, and delete the namespace afterwards.  Traffic never leaves it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import select
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from helpers.capabilities import network_namespace, require_root_tun
from synack.aio.host import Host
from synack.links import tun as tun_module
from synack.links.tun import TunLink, check_interface_name

STACK_IP, KERNEL_IP = "10.77.0.2", "10.77.0.1/24"
TIMEOUT = 20.0


# ------------------------------------------------------------- errors, no root
@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", "a:b", "a b", ".", "..", "tün0"])
def test_invalid_interface_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError, match="interface name"):
        check_interface_name(name)
    with pytest.raises(ValueError, match="interface name"):
        TunLink(name)


def test_valid_interface_names() -> None:
    assert check_interface_name("syn0") == b"syn0"
    assert check_interface_name("syn%d") == b"syn%d"
    assert check_interface_name("x" * 15) == b"x" * 15


def test_missing_tun_device_explains_what_to_do(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError) as exc:
        TunLink("syn0", path=str(tmp_path / "no-such-tun"))
    assert "modprobe tun" in str(exc.value) and "--device /dev/net/tun" in str(exc.value)


def test_not_permitted_to_open_says_root_or_cap_net_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open
    fake_path = "/dev/net/tun-for-a-test"

    def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if path == fake_path:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(PermissionError) as exc:
        TunLink("syn0", path=fake_path)
    assert "root" in str(exc.value) and "CAP_NET_ADMIN" in str(exc.value)


@pytest.fixture
def ioctl_failing(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[int], list[int]]]:
    """TUNSETIFF fails with the errno put in the first list; opened fds land in the second."""
    err: list[int] = [errno.EBUSY]
    opened: list[int] = []
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        fd = real_open(path, flags, *args, **kw)
        opened.append(fd)
        return fd

    def fake_ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == tun_module.TUNSETIFF:
            raise OSError(err[0], os.strerror(err[0]))
        raise AssertionError("only TUNSETIFF is expected")

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(fcntl, "ioctl", fake_ioctl)
    yield err, opened


@pytest.mark.parametrize(
    ("err", "cls", "words"),
    [
        (errno.EBUSY, OSError, ["busy", "synq0"]),
        (errno.EPERM, PermissionError, ["CAP_NET_ADMIN", "synq0"]),
        (errno.EINVAL, OSError, ["not", "TUN", "synq0"]),
        (errno.ENOMEM, OSError, ["TUNSETIFF", "synq0"]),
    ],
)
def test_tunsetiff_failures_are_specific_and_close_the_descriptor(
    ioctl_failing: tuple[list[int], list[int]], err: int, cls: type[OSError], words: list[str]
) -> None:
    errs, opened = ioctl_failing
    errs[0] = err
    with pytest.raises(cls) as exc:
        TunLink("synq0", path="/dev/null")
    assert exc.value.errno == err
    for w in words:
        assert w in str(exc.value)
    assert len(opened) == 1
    with pytest.raises(OSError):
        os.fstat(opened[0])  # closed again


def test_attach_only_to_a_missing_device_is_enodev() -> None:
    with pytest.raises(OSError) as exc:
        TunLink("synack-nodev", create=False)
    assert exc.value.errno == errno.ENODEV
    assert "ip tuntap add dev synack-nodev" in str(exc.value)


def _pipe_link() -> tuple[TunLink, int]:
    """A TunLink whose descriptor is the write end of a non-blocking pipe (no device)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    link = object.__new__(TunLink)
    link._fd = w
    link.stats = Counter()
    link.name = "pipe"
    return link, r


def test_write_vector_gathers_one_packet_and_counts_it() -> None:
    link, r = _pipe_link()
    try:
        payload = bytes(range(200))
        link.write_vector((b"HDR", memoryview(payload)[10:110]))
        assert os.read(r, 1000) == b"HDR" + payload[10:110]
        assert link.stats["tx_packets"] == 1 and link.stats["tx_bytes"] == 103
    finally:
        link.close()
        os.close(r)


@pytest.mark.parametrize("method", ["write", "write_vector"])
def test_a_full_queue_drops_and_counts_instead_of_blocking(method: str) -> None:
    link, r = _pipe_link()
    try:
        chunk = bytes(65536)
        for _ in range(64):  # far more than a pipe holds
            if method == "write":
                link.write(chunk)
            else:
                link.write_vector((chunk[:10], chunk))
        assert link.stats["tx_drop_full"] > 0
        assert link.stats["tx_packets"] + link.stats["tx_drop_full"] == 64
    finally:
        link.close()
        os.close(r)


@pytest.mark.parametrize("method", ["write", "write_vector"])
@pytest.mark.parametrize(
    ("err", "counter"), [(errno.EIO, "tx_drop_link_down"), (errno.EINVAL, "tx_drop_invalid")]
)
def test_device_refusals_are_counted_and_other_errors_raise(
    monkeypatch: pytest.MonkeyPatch, method: str, err: int, counter: str
) -> None:
    link, r = _pipe_link()

    def failing(code: int) -> Any:
        def fail(*_: Any) -> int:
            raise OSError(code, os.strerror(code))

        return fail

    monkeypatch.setattr(os, "write", failing(err))
    monkeypatch.setattr(os, "writev", failing(err))
    try:
        send = (
            (lambda: link.write(b"x"))
            if method == "write"
            else (lambda: link.write_vector((b"x", b"y")))
        )
        send()
        assert link.stats[counter] == 1 and link.stats["tx_packets"] == 0
        monkeypatch.setattr(os, "write", failing(errno.EBADF))
        monkeypatch.setattr(os, "writev", failing(errno.EBADF))
        with pytest.raises(OSError) as info:
            send()
        assert info.value.errno == errno.EBADF
    finally:
        monkeypatch.undo()
        link.close()
        os.close(r)


@pytest.mark.parametrize(
    ("ip", "kernel_ip", "words"),
    [
        ("10.77.0.1", "10.77.0.1/24", "differ"),
        ("10.78.0.2", "10.77.0.1/24", "outside"),
        ("10.77.0.255", "10.77.0.1/24", "broadcast"),
    ],
)
def test_host_tun_checks_addresses_before_touching_anything(
    ip: str, kernel_ip: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        Host.tun("syn0", ip, kernel_ip=kernel_ip)


# ------------------------------------------------------------- the real kernel
SYNACK_SIDE = r"""
import asyncio, hashlib, json, sys
from synack.aio.host import Host

async def main(name, ip, kernel_ip, mode):
    host = Host.tun(name, ip, kernel_ip=kernel_ip)
    out = {"mtu": host.link.mtu, "name": host.link.name, "mss": host.stack.config.mss}
    if mode == "server":
        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
        server = await host.start_server(echo, 7)
        print(json.dumps(out), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()
    else:
        reader, writer = await host.open_connection(kernel_ip.split("/")[0], 8000)
        body = await reader.read()
        out["sha256"], out["len"] = hashlib.sha256(body).hexdigest(), len(body)
        writer.close()
        try:
            await host.open_connection(kernel_ip.split("/")[0], 9)
        except ConnectionRefusedError as exc:
            out["refused"] = exc.errno
        print(json.dumps(out), flush=True)
    out = {"stats": {k: v for k, v in host.stack.stats.items()}}
    await host.close()
    print(json.dumps(out), flush=True)

asyncio.run(main(*sys.argv[1:]))
"""

KERNEL_ECHO_CLIENT = r"""
import hashlib, socket, sys, threading
data = bytes(range(256)) * 2000
s = socket.create_connection((sys.argv[1], 7), timeout=10)
got = bytearray()
def read():
    while chunk := s.recv(65536):
        got.extend(chunk)
t = threading.Thread(target=read)
t.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
t.join(10)
print(len(got), hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest())
"""

KERNEL_PING = r"""
import socket, sys
from synack.wire import icmp
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
s.sendto(icmp.build_echo_request(0x5A5A, 1, b"synack ping"), (sys.argv[1], 0))
while True:
    pkt, addr = s.recvfrom(4096)
    msg = icmp.parse_icmp(pkt[(pkt[0] & 15) * 4:])
    if msg.type == icmp.ICMP_ECHO_REPLY:
        print(addr[0], bytes(msg.body).decode())
        break
"""

KERNEL_SERVER = r"""
import socket, sys
data = bytes(range(251)) * 800
srv = socket.create_server(("", 8000))  # all addresses: syn0 gets its own later
print("ready", flush=True)
conn, _ = srv.accept()
conn.sendall(data)
conn.close()
"""


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def read_line(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("the helper process said nothing in time")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr is not None else ""
        raise AssertionError(f"the helper process ended: {err}")
    return line


def stop(proc: subprocess.Popen[str]) -> None:
    """End a helper we started (by its own handle), politely first."""
    if proc.poll() is None:
        try:
            proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_kernel_reaches_a_synack_echo_server_on_tun_and_pings_it() -> None:
    require_root_tun()
    with network_namespace() as ns:
        proc = subprocess.Popen(
            in_ns(ns, sys.executable, "-c", SYNACK_SIDE, "syn0", STACK_IP, KERNEL_IP, "server"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            info = json.loads(read_line(proc))
            assert info == {"mtu": 1500, "name": "syn0", "mss": 1460}
            addr = subprocess.run(
                in_ns(ns, "ip", "-o", "-4", "addr", "show", "syn0"),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "10.77.0.1/24" in addr
            echo = subprocess.run(
                in_ns(ns, sys.executable, "-c", KERNEL_ECHO_CLIENT, STACK_IP),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            assert echo.stdout.split() == ["512000", "True"], echo.stderr
            ping = subprocess.run(
                in_ns(ns, sys.executable, "-c", KERNEL_PING, STACK_IP),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            assert ping.stdout.strip() == f"{STACK_IP} synack ping", ping.stderr
            assert proc.stdin is not None
            proc.stdin.close()  # the helper closes its server and the device
            stats = json.loads(read_line(proc))["stats"]
            assert stats["icmp_echo_replies"] == 1
            assert proc.wait(TIMEOUT) == 0
        finally:
            stop(proc)
        gone = subprocess.run(in_ns(ns, "ip", "link", "show", "syn0"), capture_output=True)
        assert gone.returncode != 0  # the device synack created went away with it


def test_synack_client_fetches_from_a_kernel_server_and_sees_refusals() -> None:
    require_root_tun()
    with network_namespace() as ns:
        server = subprocess.Popen(
            in_ns(ns, sys.executable, "-c", KERNEL_SERVER),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client: subprocess.Popen[str] | None = None
        try:
            assert read_line(server).strip() == "ready"
            client = subprocess.Popen(
                in_ns(ns, sys.executable, "-c", SYNACK_SIDE, "syn0", STACK_IP, KERNEL_IP, "client"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            result = json.loads(read_line(client))
            expected = bytes(range(251)) * 800
            assert result["len"] == len(expected)
            assert result["sha256"] == hashlib.sha256(expected).hexdigest()
            assert result["refused"] == errno.ECONNREFUSED
        finally:
            if client is not None:
                stop(client)
            stop(server)


def test_attaching_to_an_existing_device_and_busy_errors() -> None:
    require_root_tun()
    script = r"""
import errno, json
from synack.links.tun import TunLink
out = {}
link = TunLink("synb0", create=False)
out["existed"], out["mtu"] = link.existed, link.mtu
try:
    TunLink("synb0", create=False)
except OSError as exc:
    out["busy"] = [exc.errno, str(exc)]
try:
    TunLink("lo")
except OSError as exc:
    out["not_tun"] = exc.errno
link.close()
again = TunLink("synb0", create=False)
out["reattached"] = again.name
again.close()
print(json.dumps(out))
"""
    with network_namespace() as ns:
        subprocess.run(
            in_ns(ns, "ip", "tuntap", "add", "dev", "synb0", "mode", "tun"),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            in_ns(ns, "ip", "link", "set", "synb0", "mtu", "1280"), check=True, capture_output=True
        )
        res = subprocess.run(
            in_ns(ns, sys.executable, "-c", script), capture_output=True, text=True, timeout=TIMEOUT
        )
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["existed"] is True and out["mtu"] == 1280
        assert out["busy"][0] == errno.EBUSY and "synb0" in out["busy"][1]
        assert out["not_tun"] == errno.EINVAL
        assert out["reattached"] == "synb0"
        # A persistent device made with `ip tuntap` outlives synack's use of it.
        assert (
            subprocess.run(in_ns(ns, "ip", "link", "show", "synb0"), capture_output=True).returncode
            == 0
        )
