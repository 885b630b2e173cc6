"""asyncio entry points on a synack driver: streams, protocols and servers.

These mirror the standard library's functions, with the driver in place of
the event loop's kernel sockets::

    reader, writer = await open_connection("10.0.0.2", 7, driver=driver)
    server = await start_server(handle, 7, driver=driver)
    transport, protocol = await create_connection(MyProtocol, "10.0.0.2", 7, driver=driver)
    server = await create_server(MyProtocol, 7, driver=driver)

Streams are the standard ``asyncio.StreamReader``/``StreamWriter`` over a
``StreamReaderProtocol``, so stream code runs unmodified, ``drain()``
back-pressure included.  Hosts are IPv4 address literals (synack does no
name resolution: anything else raises ``socket.gaierror``).  Failures are
the stdlib exceptions: ``ConnectionRefusedError`` when the peer answers the
SYN with RST, ``TimeoutError`` when SYNs go unanswered, ``OSError`` with
``EHOSTUNREACH`` (and the like) when an ICMP error comes back (C22).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..stack import Listener
from ..tcp.config import TcpConfig
from ..wire.ipv4 import ip_to_str
from .driver import Driver
from .transport import SynackTransport

__all__ = ["Server", "create_connection", "create_server", "open_connection", "start_server"]

_DEFAULT_LIMIT = 2**16  # as asyncio.streams
P = TypeVar("P", bound=asyncio.BaseProtocol)
ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]


def check_host(host: str | bytes) -> bytes:
    """An IPv4 (4 bytes) or IPv6 (16 bytes; brackets allowed) address literal; a name
    raises ``socket.gaierror``."""
    if isinstance(host, bytes) and len(host) in (4, 16):
        return host
    try:
        text = host if isinstance(host, str) else host.decode()
        return ipaddress.ip_address(text.strip("[]")).packed
    except (ValueError, UnicodeDecodeError):
        raise socket.gaierror(
            socket.EAI_NONAME, f"{host!r} is not an IP address (synack resolves no names)"
        ) from None


class Server(asyncio.AbstractServer):
    """A listening port served with a protocol factory (what ``create_server`` returns).

    It follows ``asyncio.Server`` (3.12 semantics): ``close()`` stops
    listening and leaves accepted connections alone; ``wait_closed()``
    returns once the server is closed and every connection it accepted is
    gone; ``close_clients()``/``abort_clients()`` close those connections
    gracefully or with RST.  ``sockets`` is empty (there are no kernel
    sockets); the address is :attr:`sockname`.
    """

    def __init__(
        self,
        driver: Driver,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        port: int,
        backlog: int,
        config: TcpConfig | None,
    ) -> None:
        self._driver = driver
        self._loop = driver.loop
        self._factory = protocol_factory
        self._transports: dict[SynackTransport, None] = {}
        self._serving = False
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving_forever_fut: asyncio.Future[None] | None = None
        self._listener: Listener | None = driver.listen(
            port, backlog, on_ready=self._on_ready, config=config
        )
        self.port = self._listener.port  # the port actually listened on (port=0 picks one)
        self.sockname = (ip_to_str(driver.stack.address), self.port)

    # ------------------------------------------------------------ accepting
    def _on_ready(self, listener: Listener) -> None:
        if not self._serving:
            return  # connections wait in the backlog until start_serving()
        while (conn := listener.accept()) is not None:
            SynackTransport(self._driver, conn, None, protocol_factory=self._factory, server=self)

    def _attach(self, transport: SynackTransport) -> None:
        self._transports[transport] = None

    def _detach(self, transport: SynackTransport) -> None:
        self._transports.pop(transport, None)
        if not self._transports and self._listener is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for w in waiters or ():
            if not w.done():
                w.set_result(None)

    # ---------------------------------------------------------- AbstractServer
    @property
    def sockets(self) -> tuple[()]:
        return ()

    @property
    def connections(self) -> list[SynackTransport]:
        """Transports of the connections accepted and not yet lost."""
        return list(self._transports)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop listening; accepted connections stay open."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._serving = False
        self._driver.stop_listening(listener)
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
        if not self._transports:
            self._wakeup()

    def close_clients(self) -> None:
        """Close every accepted connection gracefully (FIN after queued data)."""
        for t in list(self._transports):
            t.close()

    def abort_clients(self) -> None:
        """Abort every accepted connection (RST)."""
        for t in list(self._transports):
            t.abort()

    async def start_serving(self) -> None:
        if self._listener is None:
            raise RuntimeError(f"server {self!r} is closed")
        if not self._serving:
            self._serving = True
            self._driver.kick()  # take what queued up meanwhile

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._listener is None:
            raise RuntimeError(f"server {self!r} is closed")
        await self.start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def __repr__(self) -> str:
        return f"<synack Server {self.sockname[0]}:{self.port} connections={len(self._transports)}>"


async def create_connection(
    protocol_factory: Callable[[], P],
    host: str | bytes,
    port: int,
    *,
    driver: Driver,
    local_port: int | None = None,
    config: TcpConfig | None = None,
) -> tuple[SynackTransport, P]:
    """Open a connection; once established, ``protocol_factory()`` gets the transport.

    Cancelling the call (for example with ``asyncio.wait_for``) abandons the
    attempt.  The protocol factory is called only if the connection opens.
    """
    remote = check_host(host)
    loop = driver.loop
    waiter: asyncio.Future[None] = loop.create_future()
    conn = driver.connect(remote, port, local_port=local_port, config=config)
    made: list[P] = []

    def factory() -> P:
        made.append(protocol_factory())
        return made[0]

    transport = SynackTransport(driver, conn, None, protocol_factory=factory, waiter=waiter)
    try:
        await waiter
    except BaseException:
        transport.abort()
        raise
    return transport, made[0]


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    port: int = 0,
    *,
    driver: Driver,
    backlog: int = 128,
    start_serving: bool = True,
    config: TcpConfig | None = None,
) -> Server:
    """Listen on ``port`` (0: a free one, see ``server.port``) and serve each
    accepted connection with a new ``protocol_factory()``."""
    server = Server(driver, protocol_factory, port, backlog, config)
    if start_serving:
        await server.start_serving()
    return server


async def open_connection(
    host: str | bytes,
    port: int,
    *,
    driver: Driver,
    local_port: int | None = None,
    limit: int = _DEFAULT_LIMIT,
    config: TcpConfig | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over synack."""
    loop = driver.loop
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(
        lambda: protocol, host, port, driver=driver, local_port=local_port, config=config
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(
    client_connected_cb: ClientConnectedCallback,
    port: int = 0,
    *,
    driver: Driver,
    backlog: int = 128,
    limit: int = _DEFAULT_LIMIT,
    start_serving: bool = True,
    config: TcpConfig | None = None,
) -> Server:
    """``asyncio.start_server`` over synack: ``client_connected_cb(reader, writer)``
    runs (as a task if it is a coroutine function) for every connection."""
    loop = driver.loop

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(
        factory, port, driver=driver, backlog=backlog, start_serving=start_serving, config=config
    )
