"""A TCP host over IPv4 and IPv6: demultiplexing, listeners, ports, resets for strangers.

:class:`Stack` is put together from parts, each in its own module:

- :mod:`.core`: the stack's tables, user API (addresses, ``connect``, ``find``) and
  output (``packets_to_send`` and its vectored and unencoded forms);
- :mod:`.demux`: packet input, the raw-byte fast paths of both families, resets
  for strangers;
- :mod:`.listeners`: :class:`Listener`, passive opens, SYN cookies, TIME-WAIT reuse;
- :mod:`.icmp`: ICMP and ICMPv6 in and out;
- :mod:`.timers` and :mod:`.ports`: the deadline heap and port choice.
"""

from ..wire.segment import ACK, FIN
from .base import EPHEMERAL_HIGH, EPHEMERAL_LOW, Key, OutPacket
from .core import Stack
from .listeners import Listener

__all__ = ["ACK", "EPHEMERAL_HIGH", "EPHEMERAL_LOW", "FIN", "Key", "Listener", "OutPacket", "Stack"]
