"""Services over asyncio streams: echo, discard, chargen, HTTP/1.1, and an HTTP client.

They run on synack (``host.start_server(ServiceRunner("echo", echo), 7)``) or
on any asyncio streams.  ``synack serve``, ``synack connect`` and ``synack
get`` are built from them; see :mod:`synack.commands.realnet` for the
command-line plumbing.
"""

from .basic import chargen, chargen_bytes, chargen_cycle, discard, echo
from .http import (
    HttpError,
    HttpService,
    ProtocolError,
    Response,
    Url,
    fetch,
    generated_bytes,
    generated_chunks,
    generated_sha256,
    parse_url,
)
from .runner import ConnectionRecord, ServiceRunner, linger_close

__all__ = [
    "ConnectionRecord",
    "HttpError",
    "HttpService",
    "ProtocolError",
    "Response",
    "ServiceRunner",
    "Url",
    "chargen",
    "chargen_bytes",
    "chargen_cycle",
    "discard",
    "echo",
    "fetch",
    "generated_bytes",
    "generated_chunks",
    "generated_sha256",
    "linger_close",
    "parse_url",
]
