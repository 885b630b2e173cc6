"""synack on asyncio: a thin driver, a real ``asyncio.Transport``, streams and servers.

See ``docs/api.md``.  The usual entry point is :class:`synack.aio.host.Host`, which
builds the stack, the link and the :class:`Driver` for you.
"""

from .driver import ConnectionHandler, Driver
from .streams import Server, create_connection, create_server, open_connection, start_server
from .transport import SynackTransport, error_from_errno

__all__ = [
    "ConnectionHandler",
    "Driver",
    "Server",
    "SynackTransport",
    "create_connection",
    "create_server",
    "error_from_errno",
    "open_connection",
    "start_server",
]
