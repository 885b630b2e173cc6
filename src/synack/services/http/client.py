"""The HTTP/1.1 GET client of ``synack get`` (RFC 9110, RFC 9112), framed by h11.

:func:`fetch`: one ``GET`` (or ``HEAD``) of an ``http://IP[:port]/path`` URL over
any ``open_connection`` (synack's, or asyncio's), ``Connection: close``.  h11
parses the status line and header and frames the body (``Content-Length``,
chunked coding or the connection's end); the body is streamed to a sink with a
progress callback, and a :class:`Response` comes back (no redirects).  Hashing
the body (SHA-256) is per-byte work, so it is done only when asked (``verify``).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h11

from ..runner import synack_connection
from .framing import MAX_HEAD, SERVER_NAME, next_event

__all__ = ["ProtocolError", "Response", "Url", "fetch", "parse_url"]


class ProtocolError(Exception):
    """The peer broke HTTP framing (client side)."""


@dataclass(frozen=True)
class Url:
    """An ``http://IP[:port]/path`` URL, split."""

    host: str
    port: int
    target: str

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # RFC 3986 §3.2.2
        return host if self.port == 80 else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"http://{self.authority}{self.target}"


def parse_url(url: str) -> Url:
    """Split an ``http://`` URL whose host is an IPv4 or bracketed IPv6 address; ValueError
    says what is wrong."""
    if "://" not in url:
        raise ValueError(f"{url!r} is not a URL: expected http://ADDRESS[:PORT]/PATH")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ValueError("https is not supported: synack has no TLS; use http://")
    if scheme != "http":
        raise ValueError(f"unsupported scheme {parts.scheme!r}: only http:// URLs")
    if parts.username is not None or parts.password is not None:
        raise ValueError("user names and passwords in URLs are not supported")
    host = parts.hostname
    if not host:
        raise ValueError(f"{url!r} has no host")
    try:
        ipaddress.ip_address(host)  # IPv6 in brackets (RFC 3986 §3.2.2): urlsplit strips them
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IP address: synack resolves no names, "
            f"use the address (e.g. http://10.77.0.1/ or http://[2001:db8::1]/)"
        ) from None
    try:
        port = parts.port if parts.port is not None else 80
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port {port} in {url!r}")
    target = parts.path or "/"
    if any(c in target for c in " \r\n\t") or any(c in parts.query for c in " \r\n\t"):
        raise ValueError("the URL contains whitespace; percent-encode it")
    if parts.query:
        target += "?" + parts.query
    return Url(host, port, target)


@dataclass
class Response:
    """What :func:`fetch` got."""

    url: Url
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body_bytes: int = 0
    sha256: str = ""
    elapsed: float = 0.0
    connect_time: float = 0.0
    first_byte_time: float = 0.0
    framing: str = ""
    tcp_info: dict[str, Any] | None = None

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


OpenConnection = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Progress = Callable[[int, int | None], None]


def _framing(method: str, resp: Response) -> str:
    """How the body is delimited (RFC 9112 §6.3), as the summary names it; h11 applies
    the same rules to read it."""
    if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
        return "none"
    te = resp.header("transfer-encoding")
    if te is not None and "chunked" in te.lower():
        return "chunked"
    return "content-length" if resp.header("content-length") is not None else "close"


async def fetch(
    url: str | Url,
    *,
    open_connection: OpenConnection,
    sink: Callable[[bytes], object] | None = None,
    progress: Progress | None = None,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    connect_timeout: float = 30.0,
    read_timeout: float = 60.0,
    on_head: Callable[[Response], None] | None = None,
    verify: bool = False,
) -> Response:
    """Fetch ``url`` (see the module docstring).

    ``sink(data)`` receives the body as it arrives; ``progress(done, total)``
    is called after each piece (``total`` None when the length is unknown);
    ``on_head(response)`` once the status and header are in, before the body;
    ``verify`` fills ``Response.sha256`` with the body's SHA-256.
    Raises ``ValueError`` for a bad URL, ``ConnectionRefusedError``,
    ``TimeoutError`` (connect or read), ``ConnectionResetError`` and the
    like for connection failures, :class:`ProtocolError` for a broken response.
    """
    u = parse_url(url) if isinstance(url, str) else url
    if method not in ("GET", "HEAD"):
        raise ValueError("fetch does GET and HEAD only")
    start = time.monotonic()
    async with asyncio.timeout(connect_timeout):
        reader, writer = await open_connection(u.host, u.port)
    connected = time.monotonic()
    try:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        request = h11.Request(
            method=method,
            target=u.target,
            headers=[
                ("Host", u.authority),
                ("User-Agent", SERVER_NAME),
                ("Accept", "*/*"),
                ("Connection", "close"),
                *headers,
            ],
        )
        head, end = conn.send(request), conn.send(h11.EndOfMessage())
        assert head is not None and end is not None
        writer.write(head + end)
        async with asyncio.timeout(read_timeout):
            resp = await _read_head(conn, reader, u)
        resp.connect_time = connected - start
        resp.first_byte_time = time.monotonic() - start
        resp.framing = _framing(method, resp)
        if on_head is not None:
            on_head(resp)
        await _read_body(conn, reader, resp, sink, progress, read_timeout, verify)
        resp.elapsed = time.monotonic() - start
        tcp = synack_connection(writer)
        if tcp is not None:
            resp.tcp_info = tcp.info()
    except BaseException:
        writer.transport.abort()
        raise
    writer.close()
    return resp


async def _read_head(conn: h11.Connection, reader: asyncio.StreamReader, u: Url) -> Response:
    """The final response head (1xx interim responses are skipped, RFC 9110 §15.2)."""
    got = 0

    def count(data: bytes) -> bytes:
        nonlocal got
        got += len(data)
        return data

    while True:
        try:
            event = await next_event(conn, reader, count)
        except h11.RemoteProtocolError as exc:
            if got == 0:
                raise ProtocolError("the server closed the connection without answering") from None
            raise ProtocolError(f"broken response head: {exc}") from None
        if isinstance(event, h11.Response):
            return Response(
                u,
                "HTTP/" + event.http_version.decode("ascii"),
                event.status_code,
                event.reason.decode("latin-1"),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()],
            )
        if isinstance(event, h11.ConnectionClosed):
            raise ProtocolError("the server closed the connection without answering")
        if not isinstance(event, h11.InformationalResponse):
            raise ProtocolError(f"unexpected {type(event).__name__} before the response")


async def _read_body(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    resp: Response,
    sink: Callable[[bytes], object] | None,
    progress: Progress | None,
    read_timeout: float,
    verify: bool,
) -> None:
    """Hand the body to ``sink`` piece by piece until h11 sees its end."""
    digest = hashlib.sha256() if verify else None
    total: int | None = None
    if resp.framing == "content-length":
        length = resp.header("content-length") or ""
        total = int(length) if length.strip().isdigit() else None
        if progress is not None:
            progress(0, total)
    loop = asyncio.get_running_loop()
    # read_timeout bounds the time without progress, not the whole body.
    async with asyncio.timeout(read_timeout) as deadline:
        while True:
            try:
                event = await next_event(conn, reader)
            except h11.RemoteProtocolError as exc:
                if total is not None:
                    raise ProtocolError(
                        f"the connection ended after {resp.body_bytes} of {total} body bytes"
                    ) from None
                raise ProtocolError(f"broken body: {exc}") from None
            if not isinstance(event, h11.Data):
                break  # EndOfMessage (or the close that ends an unframed body)
            data = event.data
            deadline.reschedule(loop.time() + read_timeout)
            if digest is not None:
                digest.update(data)
            resp.body_bytes += len(data)
            if sink is not None:
                sink(data)
            if progress is not None:
                progress(resp.body_bytes, total)
    if digest is not None:
        resp.sha256 = digest.hexdigest()
