"""Events a connection reports to its driver (the aioquic "events out" model).

Drivers, tests and tools consume these; nothing calls back into application
code from inside the protocol machine.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection
    from .states import State


class Event:
    """Base class: every event names the connection it belongs to."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if k != "conn")
        return f"{type(self).__name__}({fields})"


class Connected(Event):
    """The handshake completed (C8 on the client, C9 on the server)."""

    __slots__ = ()


class DataReceived(Event):
    """New in-order bytes are readable with :meth:`Connection.recv`."""

    __slots__ = ("nbytes",)

    def __init__(self, conn: Connection, nbytes: int) -> None:
        self.conn = conn  # (Event.__init__, without a second call per segment)
        self.nbytes = nbytes


class EndOfStream(Event):
    """The peer sent FIN: no more data will arrive (C11)."""

    __slots__ = ()


class Urgent(Event):
    """The peer marked urgent data (RFC 9293 §3.8.5, MUST-32): the first urgent pointer
    or one that advanced.  ``mark`` is RCV.UP as a sequence number, the octet after the
    last urgent byte (RFC 6093 §4).  The urgent bytes stay in the stream, in line;
    :attr:`Connection.urgent_remaining` counts those still to read."""

    __slots__ = ("mark",)

    def __init__(self, conn: Connection, mark: int) -> None:
        super().__init__(conn)
        self.mark = mark


class SendSpace(Event):
    """The send buffer, previously full, has room again."""

    __slots__ = ()


class StateChanged(Event):
    """A state transition, with the concept ID it illustrates."""

    __slots__ = ("concept", "new", "old", "why")

    def __init__(self, conn: Connection, old: State, new: State, concept: str, why: str) -> None:
        super().__init__(conn)
        self.old = old
        self.new = new
        self.concept = concept
        self.why = why


class ConnectionFailed(Event):
    """The connection ended abnormally (C3): reset, refused, timed out, unreachable.

    ``errno`` is the POSIX code a socket would report (ECONNRESET,
    ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...).
    """

    __slots__ = ("errno", "message")

    def __init__(self, conn: Connection, err: int, message: str) -> None:
        super().__init__(conn)
        self.errno = err
        self.message = message

    @property
    def name(self) -> str:
        return errno.errorcode.get(self.errno, str(self.errno))


class ConnectionReset(ConnectionFailed):
    """The peer reset an established connection (RST received, ECONNRESET, C19)."""

    __slots__ = ()


class Closed(Event):
    """The connection reached CLOSED and its state is gone."""

    __slots__ = ()
