"""HTTP/1.1 over asyncio streams (RFC 9110, RFC 9112), framed by h11.

* :mod:`.server`: :class:`HttpService`, the server of ``synack serve http``;
* :mod:`.client`: :func:`fetch`, the GET client of ``synack get``;
* :mod:`.payload`: the ``/bytes/N`` stream both sides can check;
* :mod:`.framing`: moving bytes between h11 and a stream.
"""

from .client import ProtocolError, Response, Url, fetch, parse_url
from .payload import GENERATED_BLOCK, generated_bytes, generated_chunks, generated_sha256
from .server import HttpError, HttpService, Request, RequestReader

__all__ = [
    "GENERATED_BLOCK",
    "HttpError",
    "HttpService",
    "ProtocolError",
    "Request",
    "RequestReader",
    "Response",
    "Url",
    "fetch",
    "generated_bytes",
    "generated_chunks",
    "generated_sha256",
    "parse_url",
]
