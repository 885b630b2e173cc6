"""``synack serve``/``connect``/``get`` and the services under them, without root.

The command-line parsing and error messages are checked in-process; the
services (echo, discard, chargen, HTTP, the HTTP client, graceful stop) run
over two synack hosts joined by an in-process link (``Host.memory_pair``),
which needs no privileges.  The same commands against the real kernel are in
tests/interop/test_interop_kernel.py.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import hashlib
import io
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from synack.aio.host import Host
from synack.commands import connect as connect_cmd
from synack.commands import get as get_cmd
from synack.commands import serve_runtime
from synack.commands.main import build_parser, main
from synack.commands.net_options import tcp_config
from synack.commands.realnet import SetupError, settle
from synack.links import tun as tun_module
from synack.services import (
    HttpService,
    ProtocolError,
    ServiceRunner,
    chargen,
    chargen_bytes,
    chargen_cycle,
    discard,
    echo,
    fetch,
    generated_bytes,
    generated_sha256,
    parse_url,
)
from synack.services.http import HttpError, RequestReader
from synack.tcp.config import TcpConfig

A, B = "10.0.0.1", "10.0.0.2"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


# ============================================================ command lines
@pytest.mark.parametrize("bad", ["0", "65536", "http", "-1"])
def test_serve_rejects_bad_ports(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    err = usage_error(capsys, "serve", "echo", "--port", bad)
    assert "port" in err


def test_serve_rejects_unknown_services_and_bad_addresses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "invalid choice" in usage_error(capsys, "serve", "telnet")
    assert "not an IP address" in usage_error(capsys, "serve", "echo", "--ip", "syn.local")
    err = usage_error(capsys, "serve", "echo", "--kernel-ip", "10.77.0.1")
    assert "prefix" in err and "10.77.0.1/24" in err
    assert "probability" in usage_error(capsys, "serve", "echo", "--loss", "1.5")
    assert "MSS" in usage_error(capsys, "serve", "echo", "--mss", "20")
    assert "invalid choice" in usage_error(capsys, "serve", "echo", "--cc", "vegas")
    assert "buffer size" in usage_error(capsys, "serve", "echo", "--snd-buf", "100")


def test_serve_snd_buf_sets_the_send_buffer() -> None:
    """--snd-buf (the impairment benchmark gives synack Linux's tcp_wmem maximum)."""
    assert tcp_config(parse("serve", "chargen", "--snd-buf", "4194304")).snd_buf == 4 << 20
    assert tcp_config(parse("serve", "chargen")).snd_buf == TcpConfig().snd_buf


def test_serve_without_tun_explains_how_to_run_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "echo"]) == 2
    err = capsys.readouterr().err
    assert "needs a TUN device" in err and "root" in err
    # The user's own words plus what serving needs; --ip defaults to 10.77.0.2 next to it.
    assert "sudo synack serve echo --tun syn0 --kernel-ip 10.77.0.1/24" in err
    assert "socat - TCP:10.77.0.2:7" in err
    assert "socat - TCP:10.77.0.2:7" in err
    assert main(["serve", "http", "--port", "8080"]) == 2
    assert "curl http://10.77.0.2:8080/" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "echo", "--bytes", "10"], "--bytes applies to chargen only"),
        (["serve", "chargen", "--root", "/"], "--root applies to http only"),
        (["serve", "http", "--root", "/no/such/dir"], "not a directory"),
        (
            ["serve", "echo", "--tun", "syn0", "--ip", "10.78.0.2", "--kernel-ip", "10.77.0.1/24"],
            "outside 10.77.0.0/24",
        ),
        (
            ["serve", "echo", "--tun", "syn0", "--ip", "10.77.0.1", "--kernel-ip", "10.77.0.1/24"],
            "must differ",
        ),
    ],
)
def test_serve_option_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_serve_without_dev_net_tun_says_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "echo", "--tun", "syn0", "--tun-path", str(tmp_path / "no-tun")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("synack serve: ") and "modprobe tun" in err


def test_serve_not_root_suggests_sudo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    fake = "/dev/net/tun-not-permitted"

    def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if path == fake:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    assert main(["serve", "discard", "--tun", "syn0", "--tun-path", fake]) == 1
    err = capsys.readouterr().err
    assert "root" in err and "CAP_NET_ADMIN" in err
    # The hint is the user's own command with sudo, nothing made up added.
    assert f"try: sudo synack serve discard --tun syn0 --tun-path {fake}" in err


def test_serve_busy_device_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == tun_module.TUNGETFEATURES:  # offloads are asked for by default
            return (tun_module.IFF_TUN | tun_module.IFF_VNET_HDR).to_bytes(4, sys.byteorder)
        if request == tun_module.TUNSETIFF:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        if request in (tun_module.SIOCGIFADDR, tun_module.SIOCGIFNETMASK):
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))  # its address: none
        raise AssertionError("only TUNSETIFF (and reading the address) is expected")

    monkeypatch.setattr(fcntl, "ioctl", busy)
    assert main(["serve", "echo", "--tun", "synbusy0", "--tun-path", os.devnull]) == 1
    err = capsys.readouterr().err
    assert "busy" in err and "synbusy0" in err and "Traceback" not in err


def test_serve_port_in_use_is_a_clean_error() -> None:
    async def go() -> str:
        a, b = Host.memory_pair(A, B)
        try:
            await b.start_server(lambda r, w: None, 7)
            args = parse("serve", "echo")
            with pytest.raises(SetupError) as exc:
                await serve_runtime.start_service(b, args)
            return str(exc.value)
        finally:
            await a.close()
            await b.close()

    assert run(go()) == "port 7 is already in use on 10.0.0.2: pick another with --port"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("example.com/", "not a URL"),
        ("https://10.0.0.2/", "no TLS"),
        ("ftp://10.0.0.2/", "only http"),
        ("http://example.com/", "resolves no names"),
        ("http://10.0.0.2:99999/", "bad port"),
        ("http://10.0.0.2:x/", "bad port"),
        ("http:///path", "no host"),
        ("http://user:pw@10.0.0.2/", "passwords"),
    ],
)
def test_get_rejects_bad_urls(capsys: pytest.CaptureFixture[str], url: str, words: str) -> None:
    assert main(["get", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synack get: ") and words in err
    with pytest.raises(ValueError, match=words):
        parse_url(url)


def test_parse_url_splits_what_it_accepts() -> None:
    u = parse_url("http://10.77.0.1:8000/a/b?x=1")
    assert (u.host, u.port, u.target, u.authority) == (
        "10.77.0.1",
        8000,
        "/a/b?x=1",
        "10.77.0.1:8000",
    )
    assert parse_url("HTTP://10.0.0.2").target == "/"
    assert str(parse_url("http://10.0.0.2:80/x")) == "http://10.0.0.2/x"


def test_connect_rejects_names_and_bad_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert "resolves no names" in usage_error(capsys, "connect", "example.com", "80")
    assert "port" in usage_error(capsys, "connect", "10.0.0.2", "0")
    assert "port" in usage_error(capsys, "connect", "10.0.0.2", "http")


def test_get_unwritable_output_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["get", "http://10.0.0.2/", "-o", str(tmp_path / "no" / "dir" / "f")]) == 2
    assert "cannot write the output" in capsys.readouterr().err


# ------------------------------------------- connect and get, built-in peer
def connect_args(*argv: str) -> argparse.Namespace:
    return parse("connect", *argv, "-q")


def test_connect_echoes_through_the_builtin_peer_and_half_closes() -> None:
    data = bytes(range(256)) * 1000
    stdin, stdout = io.BytesIO(data), io.BytesIO()
    status = run(connect_cmd.connect_main(connect_args(B, "7"), stdin, stdout))
    assert status == 0
    assert stdout.getvalue() == data


def test_connect_exits_when_the_peer_closes_first_with_stdin_still_open() -> None:
    """The built-in HTTP server answers one request and closes first; standard input (a
    pipe) is still open, yet connect prints the answer and exits 0."""
    request = b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    r, w = os.pipe()
    os.write(w, request)
    stdout = io.BytesIO()
    try:
        with os.fdopen(r, "rb", buffering=0) as stdin:
            status = run(connect_cmd.connect_main(connect_args(B, "80"), stdin, stdout))
    finally:
        os.close(w)  # now the reader thread sees the end of its input and finishes
    assert status == 0
    head, _, body = stdout.getvalue().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == generated_bytes(1000)


def test_connect_refused_and_timeout_messages(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(connect_cmd.connect_main(connect_args(B, "25"), io.BytesIO(), io.BytesIO()))
    assert status == 1
    assert "connection to 10.0.0.2:25 refused" in capsys.readouterr().err
    args = parse("connect", B, "7", "-q", "--loss", "1", "--timeout", "0.3")
    status = run(connect_cmd.connect_main(args, io.BytesIO(), io.BytesIO()))
    assert status == 1
    assert "no answer from 10.0.0.2:7 within 0.3s" in capsys.readouterr().err


def test_describe_failure_names_icmp_errors() -> None:
    text = connect_cmd.describe_failure(
        OSError(errno.EHOSTUNREACH, "host unreachable"), "10.77.0.9", 80, 5
    )
    assert text == "10.77.0.9:80: host unreachable (EHOSTUNREACH)"
    reset = connect_cmd.describe_failure(ConnectionResetError(errno.ECONNRESET, "x"), "a", 1, 1)
    assert reset == "connection to a:1 reset by the peer"


def get_args(*argv: str) -> argparse.Namespace:
    return parse("get", *argv, "-q", "--no-progress")


def test_get_writes_the_body_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "body.bin"
    args = get_args("http://10.0.0.2/bytes/300000", "-o", str(out))
    status = run(get_cmd.get_main(args, parse_url(args.url), io.BytesIO(), sys.stderr))
    assert status == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == generated_sha256(300000)


def test_get_to_stdout_with_impairment_and_a_summary(tmp_path: Path) -> None:
    stdout, err = io.BytesIO(), io.StringIO()
    args = parse(
        "get",
        "http://10.0.0.2/bytes/200000",
        "--no-progress",
        "--loss",
        "0.05",
        "--impair-seed",
        "3",
        "--trace",
        str(tmp_path / "t.jsonl"),
        "--pcap",
        str(tmp_path / "c.pcap"),
    )
    status = run(get_cmd.get_main(args, parse_url(args.url), stdout, err))
    assert status == 0
    assert stdout.getvalue() == generated_bytes(200000)
    text = err.getvalue()
    assert "200 OK" in text and "200000 bytes" in text
    assert (tmp_path / "t.jsonl").stat().st_size > 0
    assert (tmp_path / "c.pcap").stat().st_size > 24


def test_get_http_error_exits_22_and_leaves_the_file_alone(tmp_path: Path) -> None:
    out = tmp_path / "keep.txt"
    out.write_text("precious")
    err = io.StringIO()
    args = get_args("http://10.0.0.2/missing", "-o", str(out))
    assert run(get_cmd.get_main(args, parse_url(args.url), io.BytesIO(), err)) == 22
    assert "HTTP 404 Not Found: /missing not found" in err.getvalue()
    assert out.read_text() == "precious"


def test_get_refused_and_head(capsys: pytest.CaptureFixture[str]) -> None:
    args = get_args("http://10.0.0.2:81/")
    assert run(get_cmd.get_main(args, parse_url(args.url), io.BytesIO(), sys.stderr)) == 1
    assert "refused" in capsys.readouterr().err
    stdout = io.BytesIO()
    args = get_args("http://10.0.0.2/bytes/5000", "-I")
    assert run(get_cmd.get_main(args, parse_url(args.url), stdout, sys.stderr)) == 0
    head = stdout.getvalue().decode()
    assert head.startswith("HTTP/1.1 200 OK\r\n") and "Content-Length: 5000\r\n" in head


def test_get_hashes_the_body_only_with_verify(tmp_path: Path) -> None:
    """SHA-256 of the body is per-byte work: ``get`` prints it with ``--verify`` only
    (as ``serve --verify``), and then it is the body's."""
    out = tmp_path / "body.bin"
    lines = {}
    for extra in ((), ("--verify",)):
        err = io.StringIO()
        args = parse("get", "http://10.0.0.2/bytes/70000", "-o", str(out), "--no-progress", *extra)
        assert run(get_cmd.get_main(args, parse_url(args.url), io.BytesIO(), err)) == 0
        lines[extra] = [ln for ln in err.getvalue().splitlines() if ln.endswith(str(out))]
    assert lines[()] == []
    assert lines[("--verify",)] == [f"{generated_sha256(70000)}  {out}"]


# ================================================================= services
async def served(handler: Any, port: int = 7, **runner_kw: Any) -> tuple[Host, Host, ServiceRunner]:
    a, b = Host.memory_pair(A, B)
    runner = ServiceRunner("test", handler, **runner_kw)
    await b.start_server(runner, port)
    return a, b, runner


async def shut(a: Host, b: Host) -> None:
    await settle([a, b], 2.0)
    await a.close()
    await b.close()


def test_chargen_pattern_is_rfc_864() -> None:
    cycle = chargen_cycle()
    lines = cycle.split(b"\r\n")[:-1]
    assert len(lines) == 95 and all(len(line) == 72 for line in lines)
    assert lines[0] == bytes(range(32, 104))
    assert lines[1] == bytes(range(33, 105))
    assert lines[94][:1] == b"~" and lines[94][1:2] == b" "  # wraps around
    assert chargen_bytes(0, len(cycle) * 2 + 5) == cycle * 2 + cycle[:5]
    assert chargen_bytes(100, 50) == (cycle * 2)[100:150]


def test_echo_returns_everything_then_closes_after_the_peers_fin() -> None:
    data = os.urandom(300_000)

    async def go() -> None:
        a, b, runner = await served(echo, hash_input=True)
        reader, writer = await a.open_connection(B, 7)
        writer.write(data)
        writer.write_eof()  # half-close: echo finishes, then closes
        got = await reader.read()
        assert got == data
        writer.close()
        await runner.wait_idle(5)
        rec = runner.records[0]
        assert rec.bytes_in == rec.bytes_out == len(data)
        assert rec.sha256_in == hashlib.sha256(data).hexdigest() and rec.error is None
        assert "300000 bytes in (sha256" in rec.describe()
        await shut(a, b)

    run(go())


def test_discard_counts_and_hashes() -> None:
    data = os.urandom(200_000)

    async def go() -> None:
        a, b, runner = await served(discard, 9, hash_input=True)
        reader, writer = await a.open_connection(B, 9)
        writer.write(data)
        writer.write_eof()
        assert await reader.read() == b""  # nothing back; then synack's FIN
        await runner.wait_idle(5)
        assert runner.totals()["bytes_in"] == len(data)
        assert runner.records[0].sha256_in == hashlib.sha256(data).hexdigest()
        writer.close()
        await shut(a, b)

    run(go())


async def late_discard(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: Any, runner: ServiceRunner
) -> None:
    """discard, started only once data sits in the reader's buffer (and the reader has
    paused the transport): the tap must count and hash that part first, in order."""
    while len(reader._buffer) < 100_000 and not reader.at_eof():  # type: ignore[attr-defined]
        await asyncio.sleep(0.001)
    await discard(reader, writer, record, runner)


@pytest.mark.parametrize("on", ["synack", "kernel loopback"])
def test_discard_taps_its_input_keeping_order_on_both_kinds_of_transport(on: str) -> None:
    """discard takes its input through tap_input (no reader buffer); what was buffered
    before comes first, so the hash is the data's, on synack and on kernel sockets."""
    data = os.urandom(400_000)

    async def go() -> None:
        runner = ServiceRunner("t", late_discard, hash_input=True)
        if on == "synack":
            a, b = Host.memory_pair(A, B)
            await b.start_server(runner, 9)
            reader, writer = await a.open_connection(B, 9)
        else:
            server = await asyncio.start_server(runner, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        assert await reader.read() == b""  # synack's FIN once everything was read
        assert await runner.wait_idle(10)
        rec = runner.records[0]
        assert isinstance(writer.transport, asyncio.Transport)
        assert rec.bytes_in == len(data) and rec.error is None
        assert rec.sha256_in == hashlib.sha256(data).hexdigest()
        writer.close()
        if on == "synack":
            await shut(a, b)
        else:
            server.close()

    run(go())


def test_a_tapped_discard_still_stops_gracefully() -> None:
    """A graceful stop while discard sits tapped: FIN to the peer, what it still sends
    is counted and dropped, and its FIN ends the connection without a reset."""

    async def go() -> None:
        a, b, runner = await served(discard, 9, grace=2.0)
        reader, writer = await a.open_connection(B, 9)
        writer.write(b"x" * 1000)
        while runner.totals()["bytes_in"] < 1000:
            await asyncio.sleep(0.001)
        runner.stop()
        assert await reader.read() == b""
        writer.write(b"y" * 500)
        writer.close()
        assert await runner.wait_idle(5)
        rec = runner.records[0]
        assert rec.error is None and not rec.reset and rec.bytes_in == 1500
        await shut(a, b)

    run(go())


def test_serve_hashes_only_with_verify() -> None:
    """SHA-256 of every byte is opt-in: without --verify no hash is kept or printed."""

    async def go(*extra: str) -> bool:
        args = build_parser().parse_args(["serve", "discard", *extra])
        host = Host.memory_pair(A, B)[1]
        server, runner, _ = await serve_runtime.start_service(host, args)
        server.close()
        await host.close()
        return runner.hash_input

    assert run(go()) is False
    assert run(go("--verify")) is True


def test_chargen_sends_its_bytes_then_closes_and_stops_on_a_reset() -> None:
    async def go() -> None:
        a, b, _ = await served(chargen(10_000), 19)
        reader, writer = await a.open_connection(B, 19)
        assert await reader.read() == chargen_bytes(0, 10_000)
        writer.close()
        a2, b2, endless = await served(chargen(None), 19)
        reader, writer = await a2.open_connection(B, 19)
        assert len(await reader.readexactly(50_000)) == 50_000
        writer.transport.abort()  # RST: the endless chargen must notice and stop
        assert await endless.wait_idle(5)
        assert endless.records[0].reset or endless.records[0].error
        await shut(a, b)
        await shut(a2, b2)

    run(go())


def test_graceful_stop_lingers_instead_of_resetting() -> None:
    async def go() -> None:
        a, b, runner = await served(echo, grace=2.0)
        reader, writer = await a.open_connection(B, 7)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        runner.stop()  # the server goes away: FIN to us, then it waits for ours
        assert await reader.read() == b""
        writer.write(b"late data is read and dropped, not answered with RST")
        writer.close()
        assert await runner.wait_idle(5)
        assert runner.records[0].error is None
        await shut(a, b)

    run(go())


# ---------------------------------------------------------------------- HTTP
async def http_exchange(
    raw: bytes, service: HttpService | None = None, *, expect_close: bool = True
) -> bytes:
    a, b, _ = await served(service or HttpService(), 80)
    reader, writer = await a.open_connection(B, 80)
    writer.write(raw)
    if expect_close:
        data = await reader.read()
    else:
        data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    await shut(a, b)
    return data


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def split_responses(data: bytes, methods: list[str]) -> list[tuple[int, bytes, bytes]]:
    """(status, head, body) of consecutive responses, framed by Content-Length."""
    out = []
    for method in methods:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, "truncated response"
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        if method == "HEAD":
            length = 0
        out.append((status_of(head), head, data[:length]))
        data = data[length:]
    assert data == b""
    return out


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"GET nope HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ],
)
def test_http_malformed_requests_get_an_error_and_a_close(raw: bytes, status: int) -> None:
    resp = run(http_exchange(raw))
    assert status_of(resp) == status
    assert b"Connection: close\r\n" in resp


def test_http_obsolete_line_folding_is_unfolded() -> None:
    """RFC 9112 §5.2 lets a server reject obs-fold with 400 or replace it with spaces;
    h11 does the latter, so the folded field is one field and the request is served."""
    raw = b"GET /bytes/7 HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n folded\r\nConnection: close\r\n\r\n"
    resp = run(http_exchange(raw))
    assert status_of(resp) == 200 and resp.endswith(generated_bytes(7))


def test_http_get_head_404_405_and_keep_alive() -> None:
    raw = (
        b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    resp = run(http_exchange(raw))
    parts = split_responses(resp, ["GET", "HEAD", "GET", "POST", "GET"])
    assert [p[0] for p in parts] == [200, 200, 404, 405, 200]
    assert parts[0][2] == generated_bytes(1000)
    assert b"Content-Length: 1000" in parts[1][1] and parts[1][2] == b""  # HEAD
    assert b"Allow: GET, HEAD" in parts[3][1]
    assert b"Connection: close" in parts[4][1] and b"<title>synack</title>" in parts[4][2]


def test_http_1_0_closes_unless_keep_alive_and_bodies_are_skipped() -> None:
    resp = run(http_exchange(b"GET /bytes/10 HTTP/1.0\r\n\r\n"))
    assert b"Connection: close\r\n" in resp and resp.endswith(generated_bytes(10))
    chunked = (
        b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
        b"GET /bytes/4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    )
    resp = run(http_exchange(chunked, expect_close=False))
    assert resp.count(b"HTTP/1.1 200 OK") == 2 and b"Connection: keep-alive\r\n" in resp


def test_http_close_lingers_so_a_pipelined_request_does_not_reset_the_answer() -> None:
    """A client pipelines a second request behind ``Connection: close``: the server
    does not read it before closing, yet its close stays a FIN (lingering close), so
    the whole first response arrives."""
    raw = (
        b"GET /bytes/300000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    resp = run(http_exchange(raw))
    ((status, _head, body),) = split_responses(resp, ["GET"])
    assert status == 200 and body == generated_bytes(300000)


def test_http_files_listing_and_no_escape_from_the_root(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.html").write_text("<p>b</p>")
    (tmp_path / "secret").write_text("no")
    (root / "link").symlink_to(tmp_path / "secret")
    svc = HttpService(root)
    for target, status, needle in [
        ("/a.txt", 200, b"alpha\n"),
        ("/sub/b.html", 200, b"<p>b</p>"),
        ("/sub/", 200, b"b.html"),
        ("/../secret", 404, b"not found"),
        ("/%2e%2e/secret", 404, b"not found"),
        ("/link", 404, b"not found"),
        ("/", 200, b"a.txt"),
    ]:
        raw = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        resp = run(http_exchange(raw, svc))
        assert status_of(resp) == status, target
        assert needle in resp, target
    assert b"text/plain; charset=utf-8" in run(
        http_exchange(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", svc)
    )


def test_read_request_parses_and_limits() -> None:
    async def go() -> None:
        r = asyncio.StreamReader()
        r.feed_data(b"\r\nGET /x%20y?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
        r.feed_eof()
        requests = RequestReader(r)
        req = await requests.next_request()
        assert req is not None
        assert (req.method, req.path, req.version, req.keep_alive) == ("GET", "/x y", (1, 1), True)
        assert req.header("X-A") == "1, 2"
        await requests.drop_body(req, 0)
        requests.next_cycle()
        assert await requests.next_request() is None  # the connection ended: no request
        big = asyncio.StreamReader()
        big.feed_data(b"GET /" + b"a" * 5000)  # a head still growing past the limit
        with pytest.raises(HttpError) as exc:
            await RequestReader(big, max_head=1024).next_request()
        assert exc.value.status == 431

    run(go())


def test_http_idle_connections_close_and_a_stop_closes_idle_ones() -> None:
    async def go() -> None:
        a, b, runner = await served(HttpService(idle_timeout=0.2), 80)
        reader, writer = await a.open_connection(B, 80)
        assert await asyncio.wait_for(reader.read(), 3) == b""  # idle timeout: closed
        writer.close()
        reader, writer = await a.open_connection(B, 80)
        writer.write(b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 5" in first and await reader.readexactly(5)
        runner.stop()  # an idle keep-alive connection: closed politely
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
        assert await runner.wait_idle(3)
        await shut(a, b)

    run(go())


# ----------------------------------------------------------------- the client
async def raw_server(answer: bytes) -> tuple[Host, Host]:
    a, b = Host.memory_pair(A, B)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    await b.start_server(handle, 80)
    return a, b


@pytest.mark.parametrize(
    ("answer", "body", "framing"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: y\r\n\r\n",
            b"hello world",
            "chunked",
        ),
        (b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end", b"until the end", "close"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", "none"),
    ],
)
def test_fetch_handles_every_framing(answer: bytes, body: bytes, framing: str) -> None:
    async def go() -> None:
        a, b = await raw_server(answer)
        got = bytearray()
        seen: list[tuple[int, int | None]] = []
        resp = await fetch(
            "http://10.0.0.2/",
            open_connection=a.open_connection,
            sink=got.extend,
            progress=lambda d, t: seen.append((d, t)),
            verify=True,
        )
        assert bytes(got) == body and resp.framing == framing
        assert resp.body_bytes == len(body) and resp.sha256 == hashlib.sha256(body).hexdigest()
        assert not body or seen[-1][0] == len(body)
        assert resp.tcp_info is not None and resp.tcp_info["state"]
        await shut(a, b)

    run(go())


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "after 5 of 100"),
        (b"SMTP ready\r\n\r\n", "illegal status line"),
        (b"", "without answering"),
        (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", "illegal header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "illegal chunk header"),
    ],
)
def test_fetch_reports_broken_responses(answer: bytes, words: str) -> None:
    async def go() -> None:
        a, b = await raw_server(answer)
        with pytest.raises(ProtocolError, match=words):
            await fetch("http://10.0.0.2/", open_connection=a.open_connection)
        await shut(a, b)

    run(go())


def test_fetch_works_over_kernel_asyncio_streams_too() -> None:
    """The services are plain asyncio stream code: the same server on the kernel's
    loopback (no synack) answers the same client."""

    async def go() -> None:
        runner = ServiceRunner("http", HttpService())
        server = await asyncio.start_server(runner, "127.0.0.1", 0)
        port_ = server.sockets[0].getsockname()[1]
        resp = await fetch(
            f"http://127.0.0.1:{port_}/bytes/70000",
            open_connection=asyncio.open_connection,
            verify=True,
        )
        assert resp.status == 200 and resp.sha256 == generated_sha256(70000)
        assert resp.tcp_info is None
        server.close()
        runner.stop()
        await runner.wait_idle(2)

    run(go())


# ------------------------------------------------- TIME-WAIT linger (C13)
def test_connect_and_get_validate_linger(capsys: pytest.CaptureFixture[str]) -> None:
    """--linger is 0..2*MSL seconds; anything else is a usage error that says so."""
    assert parse("connect", B, "7").linger == 3.0
    assert parse("get", "http://10.0.0.2/", "--linger", "0").linger == 0.0
    assert parse("connect", B, "7", "--linger", "60").linger == 60.0
    for cmd in (["connect", B, "7"], ["get", "http://10.0.0.2/"]):
        for bad, words in (
            ("-1", "--linger must be in 0..60, got -1"),
            ("61", "--linger must be in 0..60, got 61"),
            ("soon", "not a number: 'soon'"),
        ):
            assert words in usage_error(capsys, *cmd, "--linger", bad)


def test_connect_lingers_in_time_wait_and_reacks_a_retransmitted_fin_c13(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 9293 §3.6 (C13): connect closes first (end of stdin), so its side ends in
    TIME-WAIT.  The echo server plays a remote peer (as with --tun: not the command's
    to wait for) and every ACK of its FIN is lost, so it resends the FIN after its RTO
    (1 s); connect, lingering, ACKs it again and exits with status 0 once the linger
    (1.6 s) is over.  With --linger 0 it is gone before the FIN comes back."""
    from synack.commands import realnet
    from synack.wire.packet import decode_ipv4_tcp
    from synack.wire.segment import ACK, FIN

    def scenario(linger: str) -> tuple[int, dict[str, int], float]:
        seen = {"fin_in": 0, "acks_lost": 0}
        peers: list[Host] = []

        async def remote_peer_network(args: argparse.Namespace, *a: Any) -> Any:
            setup = await realnet.open_builtin_peer(args, args.host)
            assert setup.peer is not None
            peers.append(setup.peer)
            setup.peer = None  # a remote peer: the command neither settles nor closes it
            ours = setup.host.driver.link
            read, write = ours.read_batch, ours.write

            def read_batch(max_packets: int = 64) -> list[bytes]:
                pkts: list[bytes] = read(max_packets)
                seen["fin_in"] += sum(1 for p in pkts if decode_ipv4_tcp(p)[2].flags & FIN)
                return pkts

            def lossy_write(packet: bytes) -> None:
                seg = decode_ipv4_tcp(packet)[2]
                if seen["fin_in"] and seg.flags == ACK and not seg.payload:
                    seen["acks_lost"] += 1  # our ACK of the peer's FIN: lost
                    return
                write(packet)

            ours.read_batch, ours.write = read_batch, lossy_write
            return setup

        monkeypatch.setattr(connect_cmd, "open_network", remote_peer_network)
        stdout = io.BytesIO()

        async def body() -> tuple[int, float]:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            status = await connect_cmd.connect_main(
                connect_args(B, "7", "--linger", linger), io.BytesIO(b"hello"), stdout
            )
            took = loop.time() - t0
            for peer in peers:
                await peer.close()
            return int(status), took

        status, took = run(body())
        assert stdout.getvalue() == b"hello"
        return status, seen, took

    status, seen, took = scenario("1.6")
    assert status == 0
    assert seen["fin_in"] >= 2  # the server's FIN, then its retransmission
    assert seen["acks_lost"] >= 2  # each one ACKed: the second from TIME-WAIT
    assert took >= 1.6  # stayed for the linger, then exited
    status, seen, took = scenario("0")
    assert status == 0 and seen["acks_lost"] == 1 and took < 1.0  # nobody left to re-ACK
