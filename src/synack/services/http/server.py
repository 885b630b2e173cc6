"""The HTTP/1.1 server of ``synack serve http`` (RFC 9110, RFC 9112), framed by h11.

:class:`HttpService` is a :class:`~synack.services.runner.ServiceRunner` handler:

* ``GET`` and ``HEAD`` only (anything else: 405 with ``Allow``);
* ``/`` is an index page (the files at the top of ``root`` if there is one,
  and the generated endpoints); ``/bytes/N`` is ``N`` bytes of deterministic
  pseudo-random data (:mod:`.payload`, written block by block without a copy);
  any other path is a file under ``root`` (directories give their
  ``index.html`` or a listing; ``..`` and symlinks out of ``root`` are 404);
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

h11 parses and frames the requests (:class:`RequestReader`).  The responses are
ours, always framed by ``Content-Length``, and :meth:`HttpService._send` writes
their heads itself: h11's writer validates every header field two or three times
per response, which cost a third of the connection rate (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import html
import mimetypes
import os
import re
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h11

from ..runner import ConnectionRecord, ServiceRunner, linger_close
from .framing import MAX_HEAD, SERVER_NAME, next_event
from .payload import MAX_GENERATED, generated_chunks

__all__ = ["HttpError", "HttpService", "Reply", "Request", "RequestReader"]

MAX_HEADER_LINES = 100
WRITE_CHUNK = 1 << 18

REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
_SERVER_BYTES = SERVER_NAME.encode("ascii")
_REASON_BYTES = {k: v.encode("ascii") for k, v in REASONS.items()}


class HttpError(Exception):
    """A request the server answers with an error status (and then closes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {REASONS.get(status, '')}: {message}")
        self.status = status
        self.message = message


@dataclass
class Request:
    """One request head, as h11 parsed it (header names in the client's case)."""

    method: str
    target: str
    version: tuple[int, int]
    headers: list[tuple[str, str]] = field(default_factory=list)
    _by_name: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, str] = {}
        for k, v in self.headers:
            key = k.lower()
            by_name[key] = f"{by_name[key]}, {v}" if key in by_name else v
        self._by_name = by_name

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (several: joined with ", "), or None."""
        return self._by_name.get(name.lower())

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


class RequestReader:
    """The requests arriving on one connection, in order, framed by h11.

    ``bytes_in`` counts every byte read.  Empty lines before a request line are
    skipped (RFC 9112 §2.2); h11 does the rest of RFC 9112's parsing.
    """

    def __init__(self, reader: asyncio.StreamReader, *, max_head: int = MAX_HEAD) -> None:
        self.reader = reader
        self.max_head = max_head
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self.bytes_in = 0
        self._buffered = False  # whether h11 holds bytes not yet parsed

    def _feed(self, data: bytes) -> bytes:
        self.bytes_in += len(data)
        if (
            data[:1] in (b"\r", b"\n")
            and self.conn.their_state is h11.IDLE
            and not self.conn.trailing_data[0]
        ):
            data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore empty lines before one
        return data

    async def _event(self) -> object:
        try:
            return await next_event(
                self.conn, self.reader, self._feed, read_first=not self._buffered
            )
        except h11.RemoteProtocolError as exc:
            raise HttpError(exc.error_status_hint, str(exc)) from None

    async def next_request(self) -> Request | None:
        """The next request head; None if the connection ended before one began.

        Raises :class:`HttpError` for a malformed or unsupported request.
        """
        event = await self._event()
        self._buffered = True
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request), event
        version = event.http_version.decode("ascii")
        major, _, minor = version.partition(".")
        if major != "1":
            raise HttpError(505, f"HTTP/{version} is not spoken here; use HTTP/1.1")
        target = event.target.decode("ascii")
        if not (target.startswith(("/", "http://", "https://")) or target == "*"):
            raise HttpError(400, f"malformed request target {target[:80]!r}")
        raw = event.headers.raw_items()
        if len(raw) > MAX_HEADER_LINES:
            raise HttpError(431, f"more than {MAX_HEADER_LINES} header fields")
        return Request(
            event.method.decode("ascii"),
            target,
            (1, int(minor)),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw],
        )

    async def drop_body(self, req: Request, max_body: int) -> None:
        """Read the request's body (if any) to its end, dropping it."""
        cl = req.header("content-length")
        te = req.header("transfer-encoding")
        if te is None and cl is None:
            return  # no body (RFC 9112 §6.3 rule 7); next_cycle takes what follows
        if te is not None and cl is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length (RFC 9112 §6.3)")
        if cl is not None and int(cl) > max_body:
            raise HttpError(413, f"request body of {int(cl)} bytes is too large")
        while not isinstance(await self._event(), h11.EndOfMessage):
            pass

    def next_cycle(self) -> None:
        """Ready for the next request on this connection: a new h11 connection takes
        over what was read after this request (pipelined requests).  The server's
        responses do not go through h11, and the server, not h11, decides whether the
        connection persists (an HTTP/1.0 client may ask to, RFC 9112 Appendix C.2.2)."""
        data, closed = self.conn.trailing_data
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        self._buffered = bool(data) or closed
        self.conn.receive_data(data)
        if closed:
            self.conn.receive_data(b"")


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> bytes:
    """The Date header's value (RFC 9110 §5.6.7) for a whole second."""
    return email.utils.formatdate(second, usegmt=True).encode("ascii")


# ------------------------------------------------------------------- the server
@dataclass
class Reply:
    """A response to send: ``body`` is bytes, or an iterator of chunks of ``length`` bytes."""

    status: int
    headers: list[tuple[str, str]]
    length: int
    body: bytes | Iterator[bytes] = b""
    close: bool = False


def _text_reply(
    status: int, text: str, *, close: bool = False, extra: Sequence[tuple[str, str]] = ()
) -> Reply:
    body = text.encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), *extra]
    return Reply(status, headers, len(body), body, close)


def _html_reply(title: str, items: Sequence[tuple[str, str]], intro: str = "") -> Reply:
    lis = "\n".join(
        f'<li><a href="{html.escape(href, quote=True)}">{html.escape(label)}</a></li>'
        for href, label in items
    )
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title></head>\n<body><h1>{html.escape(title)}</h1>\n{intro}<ul>\n{lis}\n</ul>\n"
        f"<p>served by {SERVER_NAME}, a TCP/IP stack in Python</p></body></html>\n"
    )
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

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        idle_timeout: float | None = 60.0,
        max_body: int = 1 << 30,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        self.idle_timeout = idle_timeout
        self.max_body = max_body

    # ---------------------------------------------------------------- serving
    async def __call__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        runner: ServiceRunner,
    ) -> None:
        requests = RequestReader(reader)
        try:
            await self._serve(requests, reader, writer, record, runner)
        finally:
            record.bytes_in += requests.bytes_in

    async def _serve(
        self,
        requests: RequestReader,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        runner: ServiceRunner,
    ) -> None:
        while not runner.stopping:
            record.idle = True
            try:
                async with asyncio.timeout(self.idle_timeout):
                    req = await requests.next_request()
            except TimeoutError:
                return  # idle too long: close
            except HttpError as exc:
                record.idle = False
                await self._fail(requests, reader, writer, record, runner, exc)
                return
            record.idle = False
            if req is None:
                return
            record.requests += 1
            try:
                await requests.drop_body(req, self.max_body)
            except HttpError as exc:
                await self._fail(requests, reader, writer, record, runner, exc)
                return
            reply = self.respond(req)
            if not req.keep_alive:
                reply.close = True
            await self._send(
                writer,
                record,
                reply,
                head_only=req.method == "HEAD",
                runner=runner,
                version=req.version,
            )
            if reply.close:
                # Lingering close (RFC 9112 §9.6): FIN after the response, then read
                # until the client's FIN, so requests it already sent do not turn
                # our close into a reset that could destroy the response.
                await linger_close(reader, writer, runner.grace, record)
                return
            requests.next_cycle()

    async def _fail(
        self,
        requests: RequestReader,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        runner: ServiceRunner,
        exc: HttpError,
    ) -> None:
        """Answer a bad request with its error status, then close (lingering)."""
        reply = _text_reply(exc.status, exc.message + "\n", close=True)
        await self._send(writer, record, reply, head_only=False, runner=runner)
        await linger_close(reader, writer, runner.grace, record)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
        reply: Reply,
        *,
        head_only: bool,
        runner: ServiceRunner,
        version: tuple[int, int] = (1, 1),
    ) -> None:
        """Write ``reply``: the head (RFC 9112 §4, §6.2), then the body as it is, each
        block written without a copy in Python."""
        if runner.stopping:
            reply.close = True
        fields = [
            b"HTTP/1.1 %d %s" % (reply.status, _REASON_BYTES.get(reply.status, b"Unknown")),
            b"Server: " + _SERVER_BYTES,
            b"Date: " + _http_date(int(time.time())),
            b"Content-Length: %d" % reply.length,
        ]
        fields += [f"{k}: {v}".encode("latin-1") for k, v in reply.headers]
        if reply.close:
            fields.append(b"Connection: close")
        elif version < (1, 1):
            fields.append(b"Connection: keep-alive")
        head = b"\r\n".join(fields) + b"\r\n\r\n"
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
            return _text_reply(
                405, f"method {req.method} is not allowed here\n", extra=[("Allow", "GET, HEAD")]
            )
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
            return Reply(
                200, [("Content-Type", "application/octet-stream")], n, generated_chunks(n)
            )
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
        items = [
            (
                "/bytes/1024",
                "/bytes/N: N bytes of deterministic pseudo-random data (try /bytes/1048576)",
            )
        ]
        if self.root is not None:
            try:
                names = sorted(os.listdir(self.root))
            except OSError:
                names = []
            for name in names:
                slash = "/" if (self.root / name).is_dir() else ""
                items.append(("/" + urllib.parse.quote(name) + slash, name + slash))
        intro = "<p>HTTP/1.1 on synack: GET and HEAD, persistent connections.</p>\n"
        return _html_reply("synack", items, intro)
