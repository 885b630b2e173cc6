"""Passive opens: listeners with their accept queues and half-open counts, SYN
cookies when the half-open table is full (RFC 4987), and a new SYN taking over a
TIME-WAIT 4-tuple (RFC 6191)."""

from __future__ import annotations

import errno
from collections import deque
from typing import Literal

from ..tcp import cookies, seq
from ..tcp.config import TcpConfig
from ..tcp.connection import Connection
from ..tcp.states import SYNCHRONIZED, State
from ..trace.schema import SyncookieRecord
from ..wire.ipv6 import endpoint_str, is_mapped, unmap
from ..wire.segment import ACK, RST, SYN, Segment
from .base import StackBase, conn_name, to_addr
from .ports import check_port

#: The wildcard address of each family as a listener table key (INADDR_ANY, ``::``).
WILDCARD = {4: bytes(4), 6: bytes(16)}


class Listener:
    """A passive open on one port with a bounded accept queue (the backlog).

    Bound, as a socket is, to one local ``address`` or to the wildcard (``None``):
    any of the stack's addresses of the families in ``families`` (4, 6 or both: a
    dual-stack listener, an ``AF_INET6`` socket on ``::`` with ``IPV6_V6ONLY`` off,
    RFC 3493 §5.3).  Setting ``families`` re-binds it (``IPV6_V6ONLY`` set before
    ``listen()``)."""

    __slots__ = (
        "_families",
        "_stack",
        "accept_queue",
        "address",
        "backlog",
        "closed",
        "config",
        "half_open",
        "last_cookie",
        "port",
    )

    def __init__(
        self,
        stack: StackBase,
        port: int,
        backlog: int,
        config: TcpConfig,
        families: tuple[int, ...] = (4, 6),
        address: bytes | None = None,
    ) -> None:
        self._stack = stack
        self._families = families
        self.address = address
        self.port = port
        self.backlog = backlog
        self.config = config
        self.accept_queue: deque[Connection] = deque()
        self.half_open = 0
        self.closed = False
        self.last_cookie: float | None = None  # when this listener last sent a SYN cookie

    @property
    def families(self) -> tuple[int, ...]:
        return self._families

    @families.setter
    def families(self, families: tuple[int, ...]) -> None:
        self._stack._rebind_listener(self, tuple(families))

    def table_keys(self, families: tuple[int, ...] | None = None) -> list[tuple[int, bytes]]:
        """Its entries in the stack's listener table: ``(port, local address)``, one per
        family for a wildcard listener."""
        if self.address is not None:
            return [(self.port, self.address)]
        return [(self.port, WILDCARD[f]) for f in (families or self._families)]

    def accept(self) -> Connection | None:
        """The oldest fully established connection, or None if none is waiting."""
        return self.accept_queue.popleft() if self.accept_queue else None

    def close(self) -> None:
        """Stop listening; connections never accepted are reset, as Linux does."""
        self._stack._close_listener(self)

    def __repr__(self) -> str:
        where = "*" if self.address is None else endpoint_str(self.address, 0)[:-2]
        return (
            f"<Listener {where}:{self.port} families={self._families} "
            f"backlog={self.backlog} queued={len(self.accept_queue)}"
            f" half_open={self.half_open}>"
        )


class ListenersMixin(StackBase):
    """Listeners and SYN cookies of :class:`~synack.stack.Stack`."""

    def listen(
        self,
        port: int,
        backlog: int = 128,
        *,
        config: TcpConfig | None = None,
        families: tuple[int, ...] = (4, 6),
        address: str | bytes | None = None,
    ) -> Listener:
        """Passive OPEN on ``port`` (RFC 9293 §3.10.1); port 0 picks a free one.

        ``address`` binds it to one of the stack's addresses (an IPv4-mapped one,
        ``::ffff:a.b.c.d``, is that IPv4 address, RFC 4291 §2.5.5.2); ``None`` or a
        family's wildcard (``0.0.0.0``, ``::``) takes any.  ``families=(6,)`` is an
        ``IPV6_V6ONLY`` listener, ``(4,)`` an IPv4-only one; a bound address limits
        them to its own family.  Two listeners on one port may not cover the same
        local address of one family (Linux's ``inet_csk_bind_conflict``:
        ``EADDRINUSE``): ``0.0.0.0`` and a dual-stack ``::`` conflict, ``0.0.0.0`` and
        an ``IPV6_V6ONLY`` ``::`` do not."""
        if not families or set(families) - {4, 6}:
            raise ValueError(f"families must be some of (4, 6), got {families!r}")
        families = tuple(families)
        addr = None if address is None else to_addr(address)
        if addr is not None:
            if is_mapped(addr):
                if 4 not in families:
                    raise OSError(errno.EINVAL, "an IPv4-mapped address on an IPV6_V6ONLY listener")
                addr = unmap(addr)
            fam = 4 if len(addr) == 4 else 6
            if addr == WILDCARD[fam]:
                addr = None
                if fam == 4:
                    families = (4,)
            elif addr not in self._local:
                raise OSError(
                    errno.EADDRNOTAVAIL,
                    f"{endpoint_str(addr, 0)[:-2]} is not an address of this stack",
                )
            else:
                families = (fam,)
        if port == 0:
            port = self._free_listen_port()
        check_port(port)
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        lst = Listener(self, port, backlog, config or self.config, families, addr)
        self._bind_listener(lst, lst.table_keys())
        self._listen_ports[port] += 1
        return lst

    def _listener_for(self, dst: bytes, port: int) -> Listener | None:
        """The listener taking a SYN to ``dst:port``: one bound to ``dst``, else the
        wildcard one of ``dst``'s family."""
        lst = self._listeners.get((port, dst))
        if lst is None:
            lst = self._listeners.get((port, WILDCARD[4 if len(dst) == 4 else 6]))
        return lst

    def _bind_listener(self, lst: Listener, keys: list[tuple[int, bytes]]) -> None:
        """Enter ``keys`` for ``lst`` in the table, or raise ``EADDRINUSE`` if another
        listener covers one of their addresses (a wildcard covers its family's)."""
        for port, addr in keys:
            wild = WILDCARD[4 if len(addr) == 4 else 6]
            for (p, a), other in self._listeners.items():
                if (
                    other is not lst
                    and p == port
                    and len(a) == len(addr)
                    and (a in (addr, wild) or addr == wild)
                ):
                    where = "*" if addr == wild else endpoint_str(addr, 0)[:-2]
                    raise OSError(errno.EADDRINUSE, f"{where} port {port} is taken by {other!r}")
        for key in keys:
            self._listeners[key] = lst

    def _rebind_listener(self, lst: Listener, families: tuple[int, ...]) -> None:
        """``lst.families = families``: the table re-keyed, or ``EADDRINUSE`` and no
        change."""
        if not families or set(families) - {4, 6}:
            raise ValueError(f"families must be some of (4, 6), got {families!r}")
        if lst.address is not None:
            if families != (4 if len(lst.address) == 4 else 6,):
                raise ValueError(
                    f"a listener bound to {endpoint_str(lst.address, 0)[:-2]} "
                    f"takes its own family only"
                )
            return
        if lst.closed:
            lst._families = families
            return
        old = lst.table_keys()
        new = lst.table_keys(families)
        self._bind_listener(lst, [k for k in new if k not in old])
        for key in old:
            if key not in new:
                del self._listeners[key]
        lst._families = families

    def _reuse_time_wait(self, conn: Connection, seg: Segment) -> bool:
        """A new SYN may take over a TIME-WAIT 4-tuple (RFC 6191 §2, as Linux allows).

        With timestamps on the old connection and a TSval on the SYN (the listener
        taking timestamps), the TSval decides: newer than TS.Recent is accepted
        whatever the ISN, equal only with a higher ISN, older never (an old
        duplicate).  Otherwise the ISN must be above RCV.NXT (RFC 1122 §4.2.2.13)."""
        if not seg.flags & SYN or seg.flags & (ACK | RST):
            return False
        lst = self._listener_for(conn.local_ip, seg.dst_port)
        if lst is None:
            return False
        newer_isn = seq.lt(conn.rcv_nxt, seg.seq)
        if conn.ts_ok and seg.tsval is not None and lst.config.timestamps:
            return seq.lt(conn.ts_recent, seg.tsval) or (seg.tsval == conn.ts_recent and newer_isn)
        return newer_isn

    def _listen_input(
        self, lst: Listener, src: bytes, dst: bytes, seg: Segment, now: float
    ) -> None:
        """RFC 9293 §3.10.7.2: a segment for a listener."""
        flags = seg.flags
        if flags & RST:
            self._count_drop(now, "rst_to_listener")
            return
        if flags & ACK:
            if flags & SYN == 0 and self._cookie_ack(lst, src, dst, seg, now):
                return
            self._send_rst_for(src, dst, seg, now, "ACK to a listener with no such connection")
            return
        if not flags & SYN:
            self._count_drop(now, "no_syn_to_listener")
            return
        if len(self._conns) >= self.max_connections:
            self._count_drop(now, "connection_table_full")
            return
        if lst.half_open >= self.max_half_open:
            if self.syncookies:
                self._send_cookie(lst, src, dst, seg, now)
            else:
                self._count_drop(now, "syn_backlog_full")
            return
        iss = self._isn(dst, seg.dst_port, src, seg.src_port, now)
        conn = Connection.open_passive(
            seg,
            dst,
            src,
            iss=iss,
            now=now,
            config=self.family_config(lst.config, src),
            events=self._events,
            tracer=self.tracer,
            wake=self._wake,
            ts_offset=self._ts_offset(dst, src),
        )
        self._conns[(src, seg.src_port, seg.dst_port, dst)] = conn
        self._embryonic[conn] = lst
        lst.half_open += 1
        self._dirty[conn] = None

    def _send_cookie(self, lst: Listener, src: bytes, dst: bytes, syn: Segment, now: float) -> None:
        """Half-open table full: answer with a SYN cookie and keep nothing (RFC 4987)."""
        cfg = self.family_config(lst.config, src)
        v4 = len(src) == 4
        cookie, mss = self._cookies.make(
            dst,
            syn.dst_port,
            src,
            syn.src_port,
            syn.seq,
            syn.mss or (536 if v4 else 1220),
            now,
            v6=not v4,
        )
        probe = Connection.open_passive(
            syn, dst, src, iss=cookie, now=now, config=cfg, ts_offset=self._ts_offset(dst, src)
        )
        (synack,) = probe.segments_to_send(now)
        synack.mss = min(synack.mss or mss, cfg.mss)
        if synack.tsval is not None:  # options that the ISN cannot carry ride in TSval
            bits = cookies.encode_options(
                probe.snd_wscale if probe.ws_ok else None, probe.sack_ok, probe.ecn_ok
            )
            ts = (synack.tsval & ~cookies.TS_MASK) | bits
            if seq.gt(ts, synack.tsval):
                # Never ahead of the clock the connection will use, or the peer's PAWS
                # would drop our first segments (as Linux's cookie_init_timestamp).
                ts -= 1 << cookies.TS_BITS
            synack.tsval = ts & 0xFFFFFFFF
        lst.last_cookie = now
        self.stats["syncookies_sent"] += 1
        self._trace_cookie(now, dst, src, syn, "sent")
        self._emit_tcp(dst, src, synack)

    def _cookie_ack(self, lst: Listener, src: bytes, dst: bytes, seg: Segment, now: float) -> bool:
        """An ACK to a listener that may return a cookie we sent (RFC 4987 §3.6)."""
        if lst.last_cookie is None or now - lst.last_cookie > 2 * cookies.PERIOD:
            return False
        client_isn = (seg.seq - 1) & 0xFFFFFFFF
        cookie = (seg.ack - 1) & 0xFFFFFFFF
        mss = self._cookies.check(
            dst, seg.dst_port, src, seg.src_port, client_isn, cookie, now, v6=len(src) == 16
        )
        if mss is None:
            self.stats["syncookies_rejected"] += 1
            self._trace_cookie(now, dst, src, seg, "rejected")
            return False
        if len(lst.accept_queue) >= lst.backlog or len(self._conns) >= self.max_connections:
            self._count_drop(now, "accept_queue_full")
            return True
        wscale, sack, ecn = (
            cookies.decode_options(seg.tsecr & cookies.TS_MASK)
            if seg.tsecr
            else (None, False, False)
        )
        conn = Connection.from_cookie(
            seg,
            dst,
            src,
            iss=cookie,
            mss=mss,
            wscale=wscale,
            sack=sack,
            ecn=ecn,
            now=now,
            config=self.family_config(lst.config, src),
            events=self._events,
            tracer=self.tracer,
            wake=self._wake,
            ts_offset=self._ts_offset(dst, src),
        )
        self.stats["syncookies_validated"] += 1
        self._trace_cookie(now, dst, src, seg, "validated")
        self._conns[(src, seg.src_port, seg.dst_port, dst)] = conn
        lst.accept_queue.append(conn)
        conn.receive(seg, now)
        self._dirty[conn] = None
        return True

    def _trace_cookie(
        self,
        now: float,
        local: bytes,
        src: bytes,
        seg: Segment,
        action: Literal["sent", "validated", "rejected"],
    ) -> None:
        if self.tracer is not None:
            rec: SyncookieRecord = {
                "t": now,
                "ev": "syncookie",
                "action": action,
                "concept": "C27",
                "conn": conn_name(local, seg.dst_port, src, seg.src_port),
            }
            self.tracer(rec)

    def _settle_embryonic(self, conn: Connection, lst: Listener) -> None:
        """A half-open connection left SYN-RECEIVED: queue it for accept() at once."""
        st = conn.state
        if st is State.SYN_RECEIVED:
            return
        del self._embryonic[conn]
        lst.half_open -= 1
        if st in SYNCHRONIZED and not lst.closed:
            lst.accept_queue.append(conn)

    def _close_listener(self, lst: Listener) -> None:
        if lst.closed:
            return
        lst.closed = True
        for key in lst.table_keys():
            if self._listeners.get(key) is lst:
                del self._listeners[key]
        self._listen_ports[lst.port] -= 1
        if not self._listen_ports[lst.port]:
            del self._listen_ports[lst.port]
        while lst.accept_queue:
            lst.accept_queue.popleft().abort(why="listener closed before accept")
        for conn, owner in list(self._embryonic.items()):
            if owner is lst:
                conn.abort(why="listener closed")
