"""The blocking socket API, and the standard library's own servers and clients on it."""

from __future__ import annotations

import errno
import functools
import hashlib
import http.client
import http.server
import random
import select
import selectors
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.pairs import T, connected
from synack.sockets import (
    SocketHost,
    SynackHTTPConnection,
    SynackHTTPServer,
    SynackSocket,
    SynackTCPServer,
    SynackThreadingHTTPServer,
)
from synack.tcp.states import State

A, B = "10.0.0.1", "10.0.0.2"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, result


def recv_all(sock: SynackSocket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


# ---------------------------------------------------------------- the stdlib on synack
def test_http_server_serves_a_file_byte_exact_to_http_client(
    hosts: tuple[SocketHost, SocketHost], tmp_path: Path
) -> None:
    a, b = hosts
    body = random.Random(3).randbytes(1_500_000)
    (tmp_path / "blob.bin").write_bytes(body)
    (tmp_path / "hello.txt").write_text("hello, synack\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with SynackHTTPServer(("", 8080), handler, synack_host=b) as httpd:
        assert httpd.server_address == ("0.0.0.0", 8080)
        serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()
        try:
            conn = SynackHTTPConnection(B, 8080, synack_host=a, timeout=T)
            conn.request("GET", "/blob.bin")
            resp = conn.getresponse()
            assert resp.status == 200
            assert int(resp.getheader("Content-Length") or -1) == len(body)
            got = resp.read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
            conn.close()
            conn = SynackHTTPConnection(B, 8080, synack_host=a, timeout=T)
            conn.request("GET", "/hello.txt")
            assert conn.getresponse().read() == b"hello, synack\n"
            conn.close()
            conn = SynackHTTPConnection(B, 8080, synack_host=a, timeout=T)
            conn.request("GET", "/missing")
            resp = conn.getresponse()
            assert resp.status == 404
            resp.read()
            conn.close()
        finally:
            httpd.shutdown()
            serving.join(T)


def test_threading_http_server_serves_concurrent_clients(
    hosts: tuple[SocketHost, SocketHost], tmp_path: Path
) -> None:
    a, b = hosts
    (tmp_path / "f").write_bytes(b"x" * 200_000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with SynackThreadingHTTPServer(("", 80), handler, synack_host=b) as httpd:
        serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()

        def fetch() -> bytes:
            c = SynackHTTPConnection(B, 80, synack_host=a, timeout=T)
            c.request("GET", "/f")
            data = c.getresponse().read()
            c.close()
            return data

        workers = [in_thread(fetch) for _ in range(4)]
        for t, _ in workers:
            t.join(T)
        httpd.shutdown()
        serving.join(T)
    assert [r for _, r in workers] == [[b"x" * 200_000]] * 4


def test_socketserver_line_echo_through_makefile_readline(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts

    class LineEcho(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(line.upper())

    with SynackTCPServer(("", 7), LineEcho, synack_host=b) as srv:
        serving = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()
        with a.create_connection((B, 7), timeout=T) as sock:
            f = sock.makefile("rw", encoding="utf-8", newline="\n")
            for word in ("alpha", "beta", "gamma"):
                f.write(word + "\n")
                f.flush()
                assert f.readline() == word.upper() + "\n"
            sock.shutdown(socket.SHUT_WR)
            assert f.readline() == ""  # the server finished and closed
            f.close()
        srv.shutdown()
        serving.join(T)


# ------------------------------------------------------------------------- data
def test_sendall_and_recv_one_megabyte_each_way(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    up = random.Random(1).randbytes(1_000_000)
    down = random.Random(2).randbytes(1_000_000)

    def serve() -> bytes:
        got = recv_all(server)
        server.sendall(down)
        server.close()
        return got

    t, result = in_thread(serve)
    client.sendall(up)
    client.shutdown(socket.SHUT_WR)
    assert recv_all(client) == down
    t.join(T)
    assert result == [up]
    client.close()
    listener.close()


def test_recv_into_and_send(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    assert client.send(b"0123456789") == 10
    buf = bytearray(4)
    assert server.recv_into(buf) == 4 and buf == b"0123"
    view = memoryview(bytearray(10))
    n = server.recv_into(view, 3)
    assert n == 3 and bytes(view[:3]) == b"456"
    assert server.recv(100) == b"789"
    for s in (client, server, listener):
        s.close()


def test_receiver_that_does_not_read_stops_sendall(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    client.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client.sendall(bytes(20_000_000))
    info = server.tcp_info()
    assert info["rcv_wnd"] < info["mss"]  # the receive window closed (C4)
    assert server.recv(10) == bytes(10)  # what was queued is intact
    for s in (client, server, listener):
        s.close()


# ------------------------------------------------------------------- timeouts
def test_settimeout_makes_recv_raise_timeout_and_nothing_is_lost(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    server.settimeout(0.1)
    assert server.gettimeout() == 0.1
    with pytest.raises(TimeoutError) as exc:
        server.recv(10)
    assert isinstance(exc.value, socket.timeout)
    client.sendall(b"late")
    server.settimeout(T)
    assert server.recv(10) == b"late"
    with pytest.raises(ValueError):
        server.settimeout(-1)
    for s in (client, server, listener):
        s.close()


def test_non_blocking_operations_raise_blocking_io_error(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    server.setblocking(False)
    assert not server.getblocking() and server.gettimeout() == 0.0
    with pytest.raises(BlockingIOError):
        server.recv(10)
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()
    client.sendall(b"now")
    assert select.select([server.fileno()], [], [], T)[0]  # readable once data is there
    assert server.recv(10) == b"now"
    nb = a.socket()
    nb.setblocking(False)
    with pytest.raises(BlockingIOError) as exc:
        nb.connect((B, 5000))
    assert exc.value.errno == errno.EINPROGRESS
    nb.setblocking(True)
    nb.settimeout(T)
    nb.connect((B, 5000))  # waits for the attempt in progress
    assert nb.getpeername() == (B, 5000)
    with pytest.raises(OSError) as exc2:
        nb.connect((B, 5000))
    assert exc2.value.errno == errno.EISCONN
    for s in (client, server, listener, nb):
        s.close()


# ---------------------------------------------------------------------- errors
def test_refused_connect_raises_and_connect_ex_returns_the_errno(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts
    with pytest.raises(ConnectionRefusedError):
        a.create_connection((B, 1), timeout=T)
    with a.socket() as s:
        s.settimeout(T)
        assert s.connect_ex((B, 1)) == errno.ECONNREFUSED
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # connect reported it
        listener = b.create_server(("", 1))
        s.connect((B, 1))  # a socket whose connect failed may try again
        assert s.getpeername() == (B, 1)
        listener.close()


def test_so_error_after_a_refused_non_blocking_connect(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, _ = hosts
    with a.socket() as s:
        s.setblocking(False)
        assert s.connect_ex((B, 1)) == errno.EINPROGRESS
        assert select.select([s], [], [], T)[0]  # a pending error makes it readable
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # read and cleared


def test_so_linger_zero_closes_with_rst(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == struct.pack("ii", 1, 0)
    client.close()
    with pytest.raises(ConnectionResetError):
        server.recv(10)
    assert server.recv(10) == b""  # the error is reported once
    with pytest.raises(BrokenPipeError):
        server.send(b"x")
    server.close()
    listener.close()


def test_plain_close_is_a_graceful_fin(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    client.sendall(b"bye")
    client.close()
    assert recv_all(server) == b"bye"
    server.close()
    listener.close()


def test_shutdown_write_half_closes(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    client.sendall(b"question")
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(BrokenPipeError):
        client.send(b"more")
    assert recv_all(server) == b"question"
    server.sendall(b"answer")  # the other direction still works
    server.close()
    assert recv_all(client) == b"answer"
    client.close()
    listener.close()


def test_shutdown_read_makes_recv_return_eof(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    server.shutdown(socket.SHUT_RD)
    assert server.recv(10) == b""
    client.sendall(b"ignored")
    server.sendall(b"still writable")
    assert client.recv(100) == b"still writable"
    for s in (client, server, listener):
        s.close()


def test_close_from_another_thread_wakes_a_blocked_recv(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    started = threading.Event()

    def blocked() -> bytes:
        started.set()
        return server.recv(10)

    t, result = in_thread(blocked)
    started.wait(T)
    while not server.synack_host.call(lambda: bool(server._core.waiters)):
        pass  # until the recv is parked on the loop
    server.close()
    t.join(T)
    assert isinstance(result[0], OSError) and result[0].errno == errno.EBADF
    client.close()
    listener.close()


def test_blocking_calls_on_the_loop_thread_are_refused(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, _ = hosts
    s = a.socket()
    with pytest.raises(RuntimeError, match="loop thread"):
        a.call(lambda: s.recv(1))
    s.close()


# ---------------------------------------------------------- names and options
def test_names_and_binding(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    s = a.socket()
    assert s.getsockname() == ("0.0.0.0", 0)
    with pytest.raises(OSError) as exc:
        s.getpeername()
    assert exc.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as exc:
        s.bind(("10.9.9.9", 80))
    assert exc.value.errno == errno.EADDRNOTAVAIL
    s.bind((A, 0))
    ip, port = s.getsockname()
    assert ip == A and 49152 <= port <= 65535
    other = a.socket()
    with pytest.raises(OSError) as exc:
        other.bind(("", port))
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(socket.gaierror):
        other.connect(("example.invalid", 80))
    listener = b.create_server(("", 6000))
    listener.settimeout(T)
    s.settimeout(T)
    s.connect((B, 6000))
    assert s.getsockname() == (A, port)  # the bound port was used
    assert s.getpeername() == (B, 6000)
    conn, addr = listener.accept()
    assert addr == (A, port)
    assert conn.getsockname() == (B, 6000)
    for x in (s, other, listener, conn):
        x.close()
    assert s.fileno() == -1


def test_socket_options(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    listener = b.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100_000)
    listener.bind(("", 7000))
    listener.listen()
    listener.settimeout(T)
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    c = a.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # clamped up, as Linux does
    c.settimeout(T)
    c.connect((B, 7000))
    server, _ = listener.accept()
    assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # inherited
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 100_000
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 4608
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    conn = a.call(lambda: c._core.conn)
    assert conn is not None
    assert a.call(lambda: conn.config.nodelay and conn.config.keepalive)  # on the connection
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    with pytest.raises(OSError) as exc:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert exc.value.errno == errno.ENOPROTOOPT
    for s in (c, server, listener):
        s.close()


def test_unsupported_socket_kinds(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, _ = hosts
    with pytest.raises(OSError) as exc:
        a.socket(socket.AF_UNIX)
    assert exc.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(OSError) as exc:
        a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert exc.value.errno == errno.EPROTONOSUPPORT
    s = a.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    assert s.gettimeout() == 0.0
    assert (s.family, s.type, s.proto) == (socket.AF_INET, socket.SOCK_STREAM, 6)
    s.close()


# -------------------------------------------------------------- readiness
def test_selectors_see_connections_and_data(hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = hosts
    listener = b.create_server(("", 9000))
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "listener")
    assert sel.select(0) == []
    client = a.create_connection((B, 9000), timeout=T)
    events = sel.select(T)
    assert [key.data for key, _ in events] == ["listener"]
    server, _ = listener.accept()
    server.setblocking(False)
    assert sel.select(0) == []  # the queue is empty again
    sel.register(server, selectors.EVENT_READ, "server")
    client.sendall(b"ping")
    events = sel.select(T)
    assert [key.data for key, _ in events] == ["server"]
    assert server.recv(100) == b"ping"
    assert sel.select(0) == []
    client.close()  # EOF is readable too
    assert [key.data for key, _ in sel.select(T)] == ["server"]
    assert server.recv(100) == b""
    sel.close()
    for s in (server, listener):
        s.close()


def test_makefile_keeps_the_socket_open_until_the_file_closes(
    hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = hosts
    client, server, listener = connected(a, b)
    rfile = server.makefile("rb")
    server.close()  # as http.client does before reading the body
    client.sendall(b"line one\nline two\n")
    client.close()
    assert rfile.readline() == b"line one\n"
    assert rfile.read() == b"line two\n"
    assert server.fileno() != -1
    rfile.close()
    assert server.fileno() == -1
    assert a.call(lambda: client._core.closed)
    with pytest.raises(ValueError):
        server.makefile("x")
    listener.close()


def test_closing_the_host_fails_blocked_calls_and_resets_peers() -> None:
    a, b = SocketHost.memory_pair(A, B)
    try:
        client, server, listener = connected(a, b)
        waiting = a.create_server(("", 1234))
        t, result = in_thread(waiting.accept)
        while not a.call(lambda: bool(waiting._core.waiters)):
            pass
        a.close()
        t.join(T)
        assert isinstance(result[0], OSError) and result[0].errno == errno.EBADF
        with pytest.raises(ConnectionResetError):
            server.recv(10)
        assert b.call(
            lambda: server._core.conn is not None and server._core.conn.state is State.CLOSED
        )
        for s in (client, waiting):  # closing after the host is gone is harmless
            s.close()
        server.close()
        listener.close()
        with pytest.raises(OSError):
            a.socket()
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ AF_INET6
A6, B6 = "2001:db8::1", "2001:db8::2"


@pytest.fixture
def dual_hosts() -> Iterator[tuple[SocketHost, SocketHost]]:
    """Two hosts with an IPv4 and an IPv6 address each, on one link."""
    a, b = SocketHost.memory_pair(f"{A},{A6}", f"{B},{B6}")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_af_inet6_connects_with_bracketed_literals_and_four_tuple_names(
    dual_hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = dual_hosts
    listener = b.create_server(("::", 6100), family=socket.AF_INET6)
    listener.settimeout(T)
    assert listener.family == socket.AF_INET6
    assert listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1  # as the stdlib
    assert listener.getsockname() == ("::", 6100, 0, 0)
    c = a.socket(socket.AF_INET6)
    c.settimeout(T)
    c.connect((f"[{B6}]", 6100, 0, 0))
    server, addr = listener.accept()
    assert server.family == socket.AF_INET6
    assert addr == c.getsockname() and addr[0] == A6 and len(addr) == 4
    assert c.getpeername() == (B6, 6100, 0, 0)
    assert server.getsockname() == (B6, 6100, 0, 0)
    c.sendall(b"over six")
    assert server.recv(100) == b"over six"
    conn = b.call(lambda: server._core.conn)
    assert conn is not None and len(conn.remote_ip) == 16  # really IPv6 on the wire
    assert b.call(lambda: conn.config.mss) == 1500 - 60  # the family's MSS
    # An IPv4 client cannot reach the IPv6-only listener: refused.
    with pytest.raises(ConnectionRefusedError):
        a.create_connection((B, 6100), timeout=T)
    for s in (c, server, listener):
        s.close()


def test_dual_stack_listener_names_ipv4_peers_by_mapped_addresses(
    dual_hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = dual_hosts
    listener = b.socket(socket.AF_INET6)
    assert listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0  # off by default
    listener.bind(("", 6200))
    listener.listen()
    listener.settimeout(T)
    four = a.create_connection((B, 6200), timeout=T)
    assert four.family == socket.AF_INET
    server4, addr4 = listener.accept()
    assert addr4 == (f"::ffff:{A}", four.getsockname()[1], 0, 0)
    assert server4.getpeername() == addr4
    assert server4.getsockname() == (f"::ffff:{B}", 6200, 0, 0)
    six = a.create_connection((B6, 6200), timeout=T)
    assert six.family == socket.AF_INET6
    server6, addr6 = listener.accept()
    assert addr6[0] == A6
    four.sendall(b"4")
    six.sendall(b"6")
    assert (server4.recv(1), server6.recv(1)) == (b"4", b"6")
    # An AF_INET6 client connecting to a mapped address opens an IPv4 connection.
    mapped = a.socket(socket.AF_INET6)
    mapped.settimeout(T)
    mapped.connect((f"::ffff:{B}", 6200))
    assert mapped.getpeername() == (f"::ffff:{B}", 6200, 0, 0)
    server_m, addr_m = listener.accept()
    assert addr_m[0] == f"::ffff:{A}"
    conn = a.call(lambda: mapped._core.conn)
    assert conn is not None and len(conn.remote_ip) == 4
    for s in (four, six, mapped, server4, server6, server_m, listener):
        s.close()


def test_ipv6_v6only_is_settable_before_bind_and_keeps_ipv4_out(
    dual_hosts: tuple[SocketHost, SocketHost],
) -> None:
    a, b = dual_hosts
    listener = b.socket(socket.AF_INET6)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    assert listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    listener.bind(("::", 6300))
    with pytest.raises(OSError) as exc:  # too late once bound, as on Linux
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    assert exc.value.errno == errno.EINVAL
    listener.listen()
    listener.settimeout(T)
    with pytest.raises(ConnectionRefusedError):
        a.create_connection((B, 6300), timeout=T)
    six = a.create_connection((B6, 6300), timeout=T)
    server, addr = listener.accept()
    assert addr[0] == A6
    # A v6-only client may not use mapped addresses at all.
    c = a.socket(socket.AF_INET6)
    c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    with pytest.raises(OSError) as exc:
        c.connect((f"::ffff:{B}", 6300))
    assert exc.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as exc:
        c.bind((f"::ffff:{A}", 0))
    assert exc.value.errno == errno.EINVAL
    # IPV6_V6ONLY is an AF_INET6 option: an AF_INET socket has no such thing.
    four = a.socket()
    with pytest.raises(OSError) as exc:
        four.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    assert exc.value.errno == errno.ENOPROTOOPT
    for s in (six, server, c, four, listener):
        s.close()


def test_families_keep_to_their_own_addresses(dual_hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = dual_hosts
    listener4 = b.create_server(("", 6400))  # AF_INET: IPv4 only, as on Linux
    with pytest.raises(ConnectionRefusedError):
        a.create_connection((B6, 6400), timeout=T)
    s4, s6 = a.socket(), a.socket(socket.AF_INET6)
    with pytest.raises(socket.gaierror):
        s4.connect((B6, 6400))
    with pytest.raises(socket.gaierror) as exc:
        s6.connect((B, 6400))  # dotted text on an AF_INET6 socket: write it mapped
    assert "::ffff:" in str(exc.value)
    with pytest.raises(OSError) as oexc:
        s6.bind(("2001:db8::99", 0))
    assert oexc.value.errno == errno.EADDRNOTAVAIL
    s6.bind((A6, 0))
    assert s6.getsockname()[0] == A6
    assert a.socket(socket.AF_INET6).getsockname() == ("::", 0, 0, 0)
    with pytest.raises(ValueError):
        a.create_server(("", 0), dualstack_ipv6=True)
    for s in (s4, s6, listener4):
        s.close()


def test_http_server_and_client_over_ipv6(dual_hosts: tuple[SocketHost, SocketHost]) -> None:
    a, b = dual_hosts

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"you are {self.client_address[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server6(SynackHTTPServer):
        address_family = socket.AF_INET6

    server = Server6(("::", 8086), Handler, synack_host=b)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        client = SynackHTTPConnection(f"[{B6}]", 8086, synack_host=a, timeout=T)
        client.request("GET", "/")
        resp = client.getresponse()
        assert resp.status == 200 and resp.read() == f"you are {A6}".encode()
        client.close()
        client = SynackHTTPConnection(B, 8086, synack_host=a, timeout=T)  # IPv4, mapped
        client.request("GET", "/")
        assert client.getresponse().read() == f"you are ::ffff:{A}".encode()
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        t.join(T)
