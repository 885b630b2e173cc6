"""Links carry raw IPv4 packets between a synack stack and the world.

:class:`~synack.links.base.Link` is the interface a driver needs; the
implementations are a Linux TUN device (:mod:`synack.links.tun`), an
in-process pair (:mod:`synack.links.memory`) and a wrapper that impairs any
link (:mod:`synack.links.impair`).
"""

from .base import Doorbell, Link, LinkClosedError
from .impair import ImpairedLink
from .memory import MemoryLink, memory_pair
from .tun import TunLink

__all__ = [
    "Doorbell",
    "ImpairedLink",
    "Link",
    "LinkClosedError",
    "MemoryLink",
    "TunLink",
    "memory_pair",
]
