"""A ready-to-use synack host: stack + link (+ impairment) + asyncio driver.

::

    host = Host.tun("syn0", "10.77.0.2", kernel_ip="10.77.0.1/24")   # needs root
    a, b = Host.memory_pair("10.0.0.1", "10.0.0.2")                  # in-process
    server = await b.start_server(handle, 7)
    reader, writer = await a.open_connection("10.0.0.2", 7)
    ...
    await a.close(); await b.close()

The constructors are plain functions but need an asyncio loop: the running
one (call them from a coroutine) or ``loop=``.  The stack's MSS follows the
link's MTU (``Stack(mtu=link.mtu)``).  ``impair`` applies the simulated
network's impairment model to the link (:class:`~synack.links.ImpairedLink`):
one :class:`~synack.sim.path.PathConfig` for both directions, or an
``(outbound, inbound)`` pair where either may be ``None``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

from ..links.base import Link
from ..links.impair import ImpairedLink
from ..links.memory import memory_pair
from ..links.tun import TunLink, parse_kernel_ip
from ..sim.path import PathConfig
from ..stack import Stack
from ..wire.ipv6 import addr_to_str
from .driver import Driver
from .streams import (
    ClientConnectedCallback,
    Server,
    create_connection,
    create_server,
    open_connection,
    start_server,
)
from .transport import SynackTransport

__all__ = ["Host", "Impairment"]

#: One config for both directions, or (outbound, inbound).
Impairment = PathConfig | tuple[PathConfig | None, PathConfig | None]
P = TypeVar("P", bound=asyncio.BaseProtocol)


def _split(impair: Impairment | None) -> tuple[PathConfig | None, PathConfig | None]:
    if impair is None:
        return None, None
    if isinstance(impair, PathConfig):
        return impair, impair
    out, inb = impair
    return out, inb


class Host:
    """A synack stack on a link, driven by an asyncio loop."""

    def __init__(
        self, stack: Stack, link: Link, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.stack = stack
        self.link = link
        self.driver = Driver(stack, link, loop=loop)

    # ------------------------------------------------------------ building
    @classmethod
    def from_link(
        cls,
        link: Link,
        ip: str,
        *,
        impair: Impairment | None = None,
        impair_seed: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **stack_options: Any,
    ) -> Host:
        """A host with address ``ip`` on ``link``; ``stack_options`` go to :class:`Stack`
        (``config``, ``seed``, ``tracer``, ``answer_ping``...)."""
        loop = loop or asyncio.get_running_loop()
        outbound, inbound = _split(impair)
        offload = bool(getattr(link, "offload", False))
        if outbound is not None or inbound is not None:
            if offload:
                raise ValueError(
                    "impairment works on plain packets: open the link without offload to impair it"
                )
            link = ImpairedLink(
                link, outbound=outbound, inbound=inbound, seed=impair_seed, loop=loop
            )
        stack_options.setdefault("mtu", link.mtu)
        stack_options.setdefault("max_segment_payload", link.max_segment_payload)
        stack_options.setdefault("offload", offload)
        first, *more = (x.strip() for x in ip.split(","))  # "10.77.0.2,2001:db8::2"
        if more:
            stack_options.setdefault("addresses", tuple(more))
        stack = Stack(first, **stack_options)
        return cls(stack, link, loop=loop)

    @classmethod
    def tun(
        cls,
        name: str = "syn0",
        ip: str = "10.77.0.2",
        *,
        kernel_ip: str | None = None,
        create: bool = True,
        mtu: int | None = None,
        offload: bool = False,
        impair: Impairment | None = None,
        impair_seed: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **stack_options: Any,
    ) -> Host:
        """A host on TUN device ``name`` owning ``ip`` (see :class:`TunLink` for errors).

        With ``kernel_ip`` ("10.77.0.1/24") the kernel side is configured; ``ip``
        must then lie in that subnet (so the kernel routes it to the device) and
        differ from the kernel's own address.  ``offload=True`` asks the kernel for
        checksum and segmentation offload (falling back to plain packets where it
        cannot: ``host.link.offload`` tells); it cannot be combined with ``impair``.
        """
        ips = [x.strip() for x in ip.split(",")]
        if kernel_ip is not None:
            ifaces = parse_kernel_ip(kernel_ip)
            for one in ips:
                mine = ipaddress.ip_address(one.strip("[]"))
                same = [i for i in ifaces if i.version == mine.version]
                if not same:
                    raise ValueError(
                        f"synack's address {one} has no kernel address of its "
                        f"family in {kernel_ip!r}"
                    )
                iface = same[0]
                if mine == iface.ip:
                    raise ValueError(
                        f"synack's address {one} must differ from the kernel's ({iface})"
                    )
                if mine not in iface.network:
                    raise ValueError(
                        f"synack's address {one} is outside {iface.network}: the "
                        f"kernel would not route it to {name}; pick an address "
                        f"in the subnet"
                    )
                if (
                    mine.version == 4
                    and iface.network.prefixlen < 31
                    and mine in (iface.network.network_address, iface.network.broadcast_address)
                ):
                    raise ValueError(
                        f"{one} is the network or broadcast address of {iface.network}"
                    )
        if offload and impair is not None:
            raise ValueError(
                "impairment works on plain packets: offload=True cannot be combined with impair"
            )
        link = TunLink(name, create=create, kernel_ip=kernel_ip, mtu=mtu, offload=offload)
        try:
            return cls.from_link(
                link, ip, impair=impair, impair_seed=impair_seed, loop=loop, **stack_options
            )
        except BaseException:
            link.close()
            raise

    @classmethod
    def memory_pair(
        cls,
        ip_a: str = "10.0.0.1",
        ip_b: str = "10.0.0.2",
        *,
        mtu: int = 1500,
        impair: Impairment | None = None,
        impair_seed: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **stack_options: Any,
    ) -> tuple[Host, Host]:
        """Two hosts joined by an in-process link.  ``impair`` is applied once, on
        host A's end: its outbound config acts on A -> B, its inbound on B -> A."""
        link_a, link_b = memory_pair(mtu, names=(ip_a, ip_b))
        try:
            a = cls.from_link(
                link_a, ip_a, impair=impair, impair_seed=impair_seed, loop=loop, **stack_options
            )
            b = cls.from_link(link_b, ip_b, loop=loop, **stack_options)
        except BaseException:
            link_a.close()
            link_b.close()
            raise
        return a, b

    # ---------------------------------------------------------- properties
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.driver.loop

    @property
    def ip(self) -> str:
        return addr_to_str(self.stack.address)

    # ------------------------------------------------------------- asyncio API
    async def open_connection(
        self, host: str, port: int, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """:func:`synack.aio.open_connection` on this host."""
        return await open_connection(host, port, driver=self.driver, **kwargs)

    async def start_server(
        self, client_connected_cb: ClientConnectedCallback, port: int = 0, **kwargs: Any
    ) -> Server:
        """:func:`synack.aio.start_server` on this host."""
        return await start_server(client_connected_cb, port, driver=self.driver, **kwargs)

    async def create_connection(
        self, protocol_factory: Callable[[], P], host: str, port: int, **kwargs: Any
    ) -> tuple[SynackTransport, P]:
        """:func:`synack.aio.create_connection` on this host."""
        return await create_connection(protocol_factory, host, port, driver=self.driver, **kwargs)

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], port: int = 0, **kwargs: Any
    ) -> Server:
        """:func:`synack.aio.create_server` on this host."""
        return await create_server(protocol_factory, port, driver=self.driver, **kwargs)

    # ------------------------------------------------------------------ close
    def close_nowait(self) -> None:
        """Abort every connection (RST), stop the driver, close the link."""
        self.driver.close()
        self.link.close()

    async def close(self) -> None:
        """:meth:`close_nowait`, then let the protocols' ``connection_lost`` run."""
        self.close_nowait()
        await asyncio.sleep(0)

    async def __aenter__(self) -> Host:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Host {self.ip} on {self.link!r}>"
