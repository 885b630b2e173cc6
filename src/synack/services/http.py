"""A small HTTP/1.1 server and GET client over asyncio streams (RFC 9110, RFC 9112).

Server (:class:`HttpService`, a :class:`~synack.services.runner.ServiceRunner`
handler):

* ``GET`` and ``HEAD`` only (anything else: 405 with ``Allow``);
* ``/`` is an index page (the files at the top of ``root`` if there is one,
  and the generated endpoints); ``/bytes/N`` is ``N`` bytes of deterministic
  pseudo-random data (:func:`generated_chunks`, so a client can check it by
  SHA-256 without a copy); any other path is a file under ``root``
  (directories give their ``index.html`` or a listing; ``..`` and symlinks
  out of ``root`` are 404);
* every response has ``Content-Length``; connections are persistent
  (HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only with
  ``Connection: keep-alive``) and closed after ``idle_timeout`` seconds
  without a request (None: never);
* malformed requests get 400 (431 for oversized heads, 501 for an unknown
  transfer coding, 505 for HTTP/2+ on this port) and the connection is
  closed after the answer; request bodies (``Content-Length`` or chunked)
  are read and dropped;
* a graceful stop lets a response in progress finish, says ``Connection:
  close`` on it, and closes idle connections.

Client (:func:`fetch`): one ``GET`` (or ``HEAD``) of an ``http://IP[:port]/path``
URL over any ``open_connection`` (synack's, or asyncio's), ``Connection:
close``; parses the status line and headers, reads a body framed by
``Content-Length``, chunked coding or the connection's end, streams it to a
sink with a progress callback, and returns a :class:`Response` (no redirects).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import html
import ipaddress
import mimetypes
import os
import random
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .runner import ConnectionRecord, ServiceRunner, linger_close, synack_connection

__all__ = [
    "GENERATED_BLOCK",
    "HttpError",
    "HttpService",
    "ProtocolError",
    "Request",
    "Response",
    "Url",
    "fetch",
    "generated_bytes",
    "generated_chunks",
    "generated_sha256",
    "parse_url",
    "read_request",
]

SERVER_NAME = f"synack/{__version__}"
GENERATED_BLOCK = 1 << 16
MAX_GENERATED = 1 << 40
MAX_HEADER_LINES = 100
WRITE_CHUNK = 1 << 18

REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 505: "HTTP Version Not Supported",
}

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/(\d)\.(\d)$")


# ------------------------------------------------------------- generated content
@functools.lru_cache(maxsize=32)
def _block(index: int) -> bytes:
    """Block ``index`` of the ``/bytes/N`` stream; the first 2 MiB stay cached, so a
    small ``/bytes/N`` costs a slice, not 64 KiB of random numbers per request."""
    return random.Random(index).randbytes(GENERATED_BLOCK)


def generated_chunks(n: int) -> Iterator[bytes]:
    """The first ``n`` bytes of the ``/bytes/N`` stream, in blocks.

    Block ``i`` (64 KiB) is ``random.Random(i).randbytes(65536)``, so any
    prefix of the stream is the same whatever ``N`` asked for it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    index = 0
    while n > 0:
        block = _block(index)
        yield block if n >= GENERATED_BLOCK else block[:n]
        n -= GENERATED_BLOCK
        index += 1


def generated_bytes(n: int) -> bytes:
    """:func:`generated_chunks` joined (for tests and small sizes)."""
    return b"".join(generated_chunks(n))


def generated_sha256(n: int) -> str:
    """The SHA-256 of ``/bytes/n``, without holding it all in memory."""
    h = hashlib.sha256()
    for chunk in generated_chunks(n):
        h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------- requests
class HttpError(Exception):
    """A request the server answers with an error status (and then closes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {REASONS.get(status, '')}: {message}")
        self.status = status
        self.message = message


class ProtocolError(Exception):
    """The peer broke HTTP framing (client side)."""


@dataclass
class Request:
    """One parsed request head."""

    method: str
    target: str
    version: tuple[int, int]
    headers: list[tuple[str, str]] = field(default_factory=list)
    head_bytes: int = 0

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (several: joined with ", "), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> set[str]:
        value = self.header(name) or ""
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    @property
    def keep_alive(self) -> bool:
        conn = self.tokens("connection")
        if self.version >= (1, 1):
            return "close" not in conn
        return "keep-alive" in conn

    @property
    def path(self) -> str:
        """The decoded path of the target (no query)."""
        target = self.target
        if target.startswith(("http://", "https://")):
            target = urllib.parse.urlsplit(target).path or "/"
        return urllib.parse.unquote(target.split("?", 1)[0])


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError as exc:  # asyncio: the line is longer than the reader's limit
        raise HttpError(431, "request line or header field too long") from exc


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head; None if the connection ended before one began.

    Raises :class:`HttpError` for a malformed or unsupported request.
    """
    size = 0
    line = await _read_line(reader)
    size += len(line)
    blank = 0
    while line in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore empty lines before a request
        blank += 1
        if blank > 8:
            raise HttpError(400, "too many empty lines before the request line")
        line = await _read_line(reader)
        size += len(line)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise HttpError(400, "the connection ended in the middle of the request line")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise HttpError(400, "the request line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, f"malformed request line {text[:80]!r}")
    method, target, version_text = parts
    m = _VERSION.match(version_text)
    if m is None:
        raise HttpError(400, f"malformed HTTP version {version_text[:20]!r}")
    version = (int(m.group(1)), int(m.group(2)))
    if version[0] != 1:
        raise HttpError(505, f"HTTP/{version[0]}.{version[1]} is not spoken here; use HTTP/1.1")
    if not _TOKEN.match(method):
        raise HttpError(400, f"malformed method {method[:20]!r}")
    if not (target.startswith("/") or target.startswith(("http://", "https://"))
            or target == "*"):
        raise HttpError(400, f"malformed request target {target[:80]!r}")
    req = Request(method, target, version)
    while True:
        line = await _read_line(reader)
        size += len(line)
        if not line.endswith(b"\n"):
            raise HttpError(400, "the connection ended in the middle of the header")
        if line in (b"\r\n", b"\n"):
            break
        if len(req.headers) >= MAX_HEADER_LINES:
            raise HttpError(431, f"more than {MAX_HEADER_LINES} header fields")
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete line folding in the header (RFC 9112 §5.2)")
        try:
            field_line = line.decode("latin-1").rstrip("\r\n")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise HttpError(400, "undecodable header field") from None
        name, sep, value = field_line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, f"malformed header field {field_line[:80]!r}")
        req.headers.append((name, value.strip(" \t")))
    req.head_bytes = size
    if version >= (1, 1) and req.header("host") is None:
        raise HttpError(400, "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)")
    return req


async def _read_exactly_dropping(reader: asyncio.StreamReader, n: int,
                                 sink: Callable[[bytes], None]) -> None:
    while n > 0:
        data = await reader.read(min(n, 1 << 18))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        sink(data)
        n -= len(data)


async def _read_chunked(reader: asyncio.StreamReader, sink: Callable[[bytes], None],
                        on_bad: Callable[[str], Exception]) -> None:
    """Decode a chunked body (RFC 9112 §7.1), handing the data to ``sink``."""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise on_bad("the connection ended inside a chunked body")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise on_bad(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise on_bad("negative chunk size")
        if size == 0:
            while True:  # trailer section
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    raise on_bad("the connection ended inside the trailer")
                if line in (b"\r\n", b"\n"):
                    return
        await _read_exactly_dropping(reader, size, sink)
        crlf = await reader.readline()
        if crlf not in (b"\r\n", b"\n"):
            raise on_bad("missing CRLF after a chunk")


# ------------------------------------------------------------------- the server
@dataclass
class Reply:
    """A response to send: ``body`` is bytes, or an iterator of chunks of ``length`` bytes."""

    status: int
    headers: list[tuple[str, str]]
    length: int
    body: bytes | Iterator[bytes] = b""
    close: bool = False


def _text_reply(status: int, text: str, *, close: bool = False,
                extra: Sequence[tuple[str, str]] = ()) -> Reply:
    body = text.encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), *extra]
    return Reply(status, headers, len(body), body, close)


def _html_reply(title: str, items: Sequence[tuple[str, str]], intro: str = "") -> Reply:
    lis = "\n".join(f'<li><a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>'
                    f"</li>" for href, label in items)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title></head>\n<body><h1>{html.escape(title)}</h1>\n{intro}<ul>\n{lis}\n</ul>\n"
            f"<p>served by {SERVER_NAME}, a TCP/IP stack in Python</p></body></html>\n")
    body = page.encode("utf-8")
    return Reply(200, [("Content-Type", "text/html; charset=utf-8")], len(body), body)


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        left = size
        while left > 0:
            data = fh.read(min(WRITE_CHUNK, left))
            if not data:
                raise OSError(f"{path} shrank while being sent")
            left -= len(data)
            yield data


class HttpService:
    """The HTTP/1.1 handler (see the module docstring)."""

    def __init__(self, root: str | Path | None = None, *, idle_timeout: float | None = 60.0,
                 max_body: int = 1 << 30) -> None:
        self.root = Path(root).resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        self.idle_timeout = idle_timeout
        self.max_body = max_body

    # ---------------------------------------------------------------- serving
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       record: ConnectionRecord, runner: ServiceRunner) -> None:
        while not runner.stopping:
            record.idle = True
            try:
                async with asyncio.timeout(self.idle_timeout):
                    req = await read_request(reader)
            except TimeoutError:
                return  # idle too long: close
            except HttpError as exc:
                record.idle = False
                await self._fail(reader, writer, record, runner, exc)
                return
            record.idle = False
            if req is None:
                return
            record.requests += 1
            record.bytes_in += req.head_bytes
            try:
                await self._drop_body(reader, req, record)
            except HttpError as exc:
                await self._fail(reader, writer, record, runner, exc)
                return
            reply = self.respond(req)
            if not req.keep_alive:
                reply.close = True
            await self._send(writer, record, reply, head_only=req.method == "HEAD",
                             runner=runner, version=req.version)
            if reply.close:
                # Lingering close (RFC 9112 §9.6): FIN after the response, then read
                # until the client's FIN, so requests it already sent do not turn
                # our close into a reset that could destroy the response.
                await linger_close(reader, writer, runner.grace, record)
                return

    async def _fail(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    record: ConnectionRecord, runner: ServiceRunner, exc: HttpError) -> None:
        """Answer a bad request with its error status, then close (lingering)."""
        await self._send(writer, record, _text_reply(exc.status, exc.message + "\n",
                                                     close=True), head_only=False, runner=runner)
        await linger_close(reader, writer, runner.grace, record)

    async def _drop_body(self, reader: asyncio.StreamReader, req: Request,
                         record: ConnectionRecord) -> None:
        te = req.header("transfer-encoding")
        cl = req.header("content-length")
        if te is not None and cl is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length (RFC 9112 §6.3)")

        def count(data: bytes) -> None:
            record.bytes_in += len(data)

        try:
            if te is not None:
                if te.strip().lower() != "chunked":
                    raise HttpError(501, f"transfer coding {te!r} is not supported")
                await _read_chunked(reader, count, lambda m: HttpError(400, m))
            elif cl is not None:
                if not cl.isdigit():
                    raise HttpError(400, f"bad Content-Length {cl[:20]!r}")
                n = int(cl)
                if n > self.max_body:
                    raise HttpError(413, f"request body of {n} bytes is too large")
                await _read_exactly_dropping(reader, n, count)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "the connection ended inside the request body") from None
        except ValueError:
            raise HttpError(400, "chunk line too long") from None

    async def _send(self, writer: asyncio.StreamWriter, record: ConnectionRecord, reply: Reply,
                    *, head_only: bool, runner: ServiceRunner,
                    version: tuple[int, int] = (1, 1)) -> None:
        if runner.stopping:
            reply.close = True
        status = reply.status
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
                 f"Server: {SERVER_NAME}",
                 f"Date: {email.utils.formatdate(usegmt=True)}",
                 f"Content-Length: {reply.length}"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if reply.close:
            lines.append("Connection: close")
        elif version < (1, 1):
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head)
        record.bytes_out += len(head)
        if head_only:
            if isinstance(reply.body, Iterator):
                close = getattr(reply.body, "close", None)
                if close is not None:
                    close()
        elif isinstance(reply.body, bytes):
            writer.write(reply.body)
            record.bytes_out += len(reply.body)
        else:
            for chunk in reply.body:
                writer.write(chunk)
                record.bytes_out += len(chunk)
                await writer.drain()
        await writer.drain()

    # ---------------------------------------------------------------- routing
    def respond(self, req: Request) -> Reply:
        """The reply to a well-formed request (no I/O apart from ``stat``/``open``)."""
        if req.method not in ("GET", "HEAD"):
            return _text_reply(405, f"method {req.method} is not allowed here\n",
                               extra=[("Allow", "GET, HEAD")])
        path = req.path
        if "\0" in path:
            return _text_reply(400, "NUL in the path\n", close=True)
        if path == "/":
            index = self._file_for("/index.html")
            if index is not None and index.is_file():
                return self._file_reply(index)
            return self._index()
        m = re.fullmatch(r"/bytes/(\d{1,15})", path)
        if m is not None:
            n = int(m.group(1))
            if n > MAX_GENERATED:
                return _text_reply(400, f"at most {MAX_GENERATED} bytes\n")
            return Reply(200, [("Content-Type", "application/octet-stream")], n,
                         generated_chunks(n))
        target = self._file_for(path)
        if target is None or not target.exists():
            return _text_reply(404, f"{path} not found\n")
        if target.is_dir():
            if not path.endswith("/"):
                return self._listing(target, path + "/")
            index = target / "index.html"
            if index.is_file():
                return self._file_reply(index)
            return self._listing(target, path)
        return self._file_reply(target)

    def _file_for(self, path: str) -> Path | None:
        """``path`` under the root, or None if it leaves it (``..``, symlinks) or there is
        no root."""
        if self.root is None:
            return None
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError):
            return None
        if real != self.root and not real.is_relative_to(self.root):
            return None
        return real

    def _file_reply(self, path: Path) -> Reply:
        try:
            size = path.stat().st_size
            if not os.access(path, os.R_OK):
                raise PermissionError(path)
        except PermissionError:
            return _text_reply(403, "not readable\n")
        except OSError:
            return _text_reply(404, "not found\n")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/"):
            ctype += "; charset=utf-8"
        return Reply(200, [("Content-Type", ctype)], size, _file_chunks(path, size))

    def _listing(self, directory: Path, path: str) -> Reply:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return _text_reply(403, "cannot list this directory\n")
        items = []
        for name in names:
            slash = "/" if (directory / name).is_dir() else ""
            items.append((urllib.parse.quote(path + name) + slash, name + slash))
        return _html_reply(f"Index of {path}", items)

    def _index(self) -> Reply:
        items = [("/bytes/1024", "/bytes/N: N bytes of deterministic pseudo-random data "
                  "(try /bytes/1048576)")]
        if self.root is not None:
            try:
                names = sorted(os.listdir(self.root))
            except OSError:
                names = []
            for name in names:
                slash = "/" if (self.root / name).is_dir() else ""
                items.append(("/" + urllib.parse.quote(name) + slash, name + slash))
        intro = ("<p>HTTP/1.1 on synack: GET and HEAD, persistent connections.</p>\n")
        return _html_reply("synack", items, intro)


# ------------------------------------------------------------------- the client
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
        raise ValueError(f"{host!r} is not an IP address: synack resolves no names, "
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


OpenConnection = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader,
                                                      asyncio.StreamWriter]]]
Progress = Callable[[int, int | None], None]


async def fetch(url: str | Url, *, open_connection: OpenConnection,
                sink: Callable[[bytes], object] | None = None,
                progress: Progress | None = None, method: str = "GET",
                headers: Sequence[tuple[str, str]] = (), connect_timeout: float = 30.0,
                read_timeout: float = 60.0,
                on_head: Callable[[Response], None] | None = None) -> Response:
    """Fetch ``url`` (see the module docstring).

    ``sink(data)`` receives the body as it arrives; ``progress(done, total)``
    is called after each piece (``total`` None when the length is unknown);
    ``on_head(response)`` once the status and header are in, before the body.
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
        lines = [f"{method} {u.target} HTTP/1.1", f"Host: {u.authority}",
                 f"User-Agent: {SERVER_NAME}", "Accept: */*", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        async with asyncio.timeout(read_timeout):
            resp = await _read_response_head(reader, u)
        resp.connect_time = connected - start
        resp.first_byte_time = time.monotonic() - start
        if on_head is not None:
            on_head(resp)
        digest = hashlib.sha256()
        loop = asyncio.get_running_loop()
        total: int | None = None
        # read_timeout bounds the time without progress, not the whole body.
        async with asyncio.timeout(read_timeout) as deadline:

            def take(data: bytes) -> None:
                deadline.reschedule(loop.time() + read_timeout)
                digest.update(data)
                resp.body_bytes += len(data)
                if sink is not None:
                    sink(data)
                if progress is not None:
                    progress(resp.body_bytes, total)

            te = resp.header("transfer-encoding")
            cl = resp.header("content-length")
            if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
                resp.framing = "none"
            elif te is not None and "chunked" in te.lower():
                resp.framing = "chunked"
                try:
                    await _read_chunked(reader, take, ProtocolError)
                except asyncio.IncompleteReadError:
                    raise ProtocolError("the connection ended inside a chunk") from None
            elif cl is not None:
                if not cl.strip().isdigit():
                    raise ProtocolError(f"bad Content-Length {cl[:20]!r}")
                total = int(cl)
                resp.framing = "content-length"
                if progress is not None:
                    progress(0, total)
                left = total
                while left > 0:
                    data = await reader.read(min(left, 1 << 18))
                    if not data:
                        raise ProtocolError(f"the connection ended after {resp.body_bytes} "
                                            f"of {total} body bytes")
                    left -= len(data)
                    take(data)
            else:
                resp.framing = "close"
                while data := await reader.read(1 << 18):
                    take(data)
        resp.sha256 = digest.hexdigest()
        resp.elapsed = time.monotonic() - start
        conn = synack_connection(writer)
        if conn is not None:
            resp.tcp_info = conn.info()
    except BaseException:
        writer.transport.abort()
        raise
    writer.close()
    return resp


async def _read_response_head(reader: asyncio.StreamReader, u: Url) -> Response:
    line = await reader.readline()
    if not line:
        raise ProtocolError("the server closed the connection without answering")
    try:
        text = line.decode("latin-1").rstrip("\r\n")
    except UnicodeDecodeError:  # pragma: no cover
        raise ProtocolError("undecodable status line") from None
    version, _, rest = text.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"malformed status line {text[:80]!r}")
    resp = Response(u, version, int(code), reason, [])
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            raise ProtocolError("a header line is too long") from None
        if not line.endswith(b"\n"):
            raise ProtocolError("the connection ended inside the response header")
        if line in (b"\r\n", b"\n"):
            return resp
        if len(resp.headers) >= MAX_HEADER_LINES:
            raise ProtocolError("too many header fields")
        name, sep, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {name[:80]!r}")
        resp.headers.append((name.strip(), value.strip()))
