"""Command-line plumbing shared by ``synack serve``, ``connect`` and ``get``.

* :func:`add_link_options` adds the options every real-network command takes:
  the TUN device (``--tun``, ``--ip``, ``--kernel-ip``, ``--no-create``,
  ``--mtu``, ``--offload``), impairment of the link (``--loss``, ``--delay``, ...), TCP
  tunables (``--mss``, ``--cc``, ``--no-sack``, ``--no-timestamps``,
  ``--no-wscale``) and recording (``--trace``, ``--pcap``).
* :func:`open_tun` builds the :class:`~synack.aio.host.Host` on the TUN device,
  with a capture tap (:class:`CaptureLink`) between the device and the
  impairment, so the capture shows what the kernel sees on ``syn0``.
  Failures become a :class:`SetupError` whose message says what to do.
* :func:`open_builtin_peer` is what ``connect`` and ``get`` use without
  ``--tun``: two synack hosts joined in-process, the far one running the
  echo, discard, chargen and HTTP services, so the commands work anywhere
  without root.
* :func:`settle` waits for closing connections to finish their FIN exchange
  before a host is closed (closing a host resets what is left); :func:`linger`
  then keeps a host that closed first answering in TIME-WAIT for a while
  (``--linger``, :func:`add_linger_option`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ..aio.host import Host
from ..links.base import Link
from ..links.memory import memory_pair
from ..links.tun import TunLink, interface_address
from ..services.basic import chargen, discard, echo
from ..services.http import HttpService
from ..services.runner import Handler, ServiceRunner
from ..tcp.connection import Connection
from ..tcp.states import State
from ..trace.capture import INBOUND, OUTBOUND, CaptureWriter, open_capture
from ..trace.schema import RunRecord, TraceRecord
from ..wire.errors import DROP_REASONS
from ..wire.vnet import VNET_HDR_LEN
from . import check_outputs
from .net_options import DEFAULT_IP, impairment, tcp_config

__all__ = [
    "BUILTIN_SERVICES",
    "CaptureLink",
    "NetSetup",
    "SetupError",
    "checksum_warning",
    "drop_words",
    "linger",
    "neighbour_address",
    "open_builtin_peer",
    "open_tun",
    "resolve_ip",
    "settle",
    "tun_error",
]

#: What the in-process peer serves without --tun: port -> (name, handler).
BUILTIN_SERVICES: dict[int, str] = {7: "echo", 9: "discard", 19: "chargen", 80: "http"}
QUIET_STATES = frozenset({State.CLOSED, State.TIME_WAIT})


class SetupError(Exception):
    """The command cannot start; ``str()`` says why and what to do."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- capture
class CaptureLink:
    """A link that records every packet it carries to a capture writer (wall-clock
    timestamps, pcapng direction flags), then passes it on unchanged."""

    def __init__(self, inner: Link, writer: CaptureWriter) -> None:
        self.inner = inner
        self.writer = writer
        self.mtu = inner.mtu
        self.max_segment_payload = inner.max_segment_payload
        self.offload = bool(getattr(inner, "offload", False))
        self._skip = VNET_HDR_LEN if self.offload else 0  # the capture shows IP packets
        self.stats: Counter[str] = inner.stats
        self.name = getattr(inner, "name", "link")

    def fileno(self) -> int:
        return self.inner.fileno()

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        batch = self.inner.read_batch(max_packets)
        if batch:
            now = time.time()
            skip = self._skip
            for pkt in batch:
                self.writer.record(pkt[skip:], now, direction=INBOUND)
        return batch

    def write(self, packet: bytes) -> None:
        self.writer.record(packet[self._skip :], time.time(), direction=OUTBOUND)
        self.inner.write(packet)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"<CaptureLink {self.inner!r}>"


# ------------------------------------------------------------------------ hosts
@dataclass
class NetSetup:
    """A host ready to use, what it records to, and (without --tun) the built-in peer."""

    host: Host
    description: str
    tun: TunLink | None = None
    capture: CaptureWriter | None = None
    capture_path: str | None = None
    trace_file: IO[str] | None = None
    trace_path: str | None = None
    traced: Callable[[], int] | None = None
    peer: Host | None = None
    peer_runners: list[ServiceRunner] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: bool = False
    linger: float = 0.0  # seconds to keep answering in TIME-WAIT on close (see linger())
    watcher: asyncio.Task[None] | None = None

    def watch_checksums(self, command: str, err: IO[str], corrupt: float = 0.0) -> None:
        """On a TUN device, print one warning line the first time the stack drops a
        packet for a bad checksum, saying why that happens (call from a coroutine)."""
        if self.tun is None or corrupt > 0:
            return  # --corrupt flips bits on purpose: those drops are the point
        stats = self.host.stack.stats
        name = self.tun.name

        async def watch() -> None:
            while True:
                bad = stats["drop_tcp_bad_checksum"] + stats["drop_ip_bad_checksum"]
                if bad:
                    print(checksum_warning(command, name, bad), file=err, flush=True)
                    return
                await asyncio.sleep(0.25)

        self.watcher = asyncio.ensure_future(watch())

    async def close(self, settle_timeout: float = 2.0) -> None:
        """Let closing connections finish (up to ``settle_timeout``), then close all
        (what is still open is reset).  Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.watcher is not None:
            self.watcher.cancel()
        hosts = [self.host] + ([self.peer] if self.peer is not None else [])
        await settle(hosts, settle_timeout)
        if self.linger > 0:
            await linger(self.host, self.linger, self.peer)
        for h in hosts:
            await h.close()
        if self.capture is not None:
            self.capture.close()
        if self.trace_file is not None:
            self.trace_file.close()

    def recordings(self) -> list[tuple[str, str, str]]:
        rows = []
        if self.capture_path is not None and self.capture is not None:
            rows.append(
                ("capture", self.capture_path, f"{getattr(self.capture, 'count', 0)} packets")
            )
        if self.trace_path is not None and self.traced is not None:
            rows.append(("trace", self.trace_path, f"{self.traced()} records"))
        return rows


def _open_recordings(
    args: argparse.Namespace, setup_opts: dict[str, Any]
) -> tuple[CaptureWriter | None, IO[str] | None, Callable[[], int]]:
    capture: CaptureWriter | None = None
    trace_file: IO[str] | None = None
    count = [0]
    if args.pcap:
        try:
            capture = open_capture(args.pcap)
        except OSError as exc:
            raise SetupError(
                f"cannot write the capture {args.pcap}: {exc.strerror or exc}"
            ) from None
    if args.trace:
        try:
            trace_file = open(args.trace, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            if capture is not None:
                capture.close()
            raise SetupError(
                f"cannot write the trace {args.trace}: {exc.strerror or exc}"
            ) from None
        fh = trace_file
        dumps = json.dumps
        # The stack's clock is the event loop's, whose zero means nothing to a reader:
        # the first record marks the command's start on that clock, and the renderers
        # count from it (``t`` itself stays the loop's, comparable with time.monotonic()).
        start: RunRecord = {
            "t": asyncio.get_running_loop().time(),
            "ev": "run",
            "clock": "wall",
            "started": time.time(),
            "command": getattr(args, "command", ""),
        }
        fh.write(dumps(start) + "\n")
        count[0] += 1

        def tracer(rec: TraceRecord) -> None:
            count[0] += 1
            fh.write(dumps(rec, default=str) + "\n")

        setup_opts["tracer"] = tracer
    return capture, trace_file, lambda: count[0]


def neighbour_address(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> str | None:
    """The first host address of ``iface``'s subnet that is not the kernel's own
    (10.77.0.1/24 -> 10.77.0.2), or None for a /32."""
    for host in iface.network.hosts():
        if host != iface.ip:
            return str(host)
    return None


def resolve_ip(args: argparse.Namespace) -> str | None:
    """Fill in ``args.ip`` when not given and check it against the kernel's side.

    The kernel's side is ``--kernel-ip`` or, without it, the address the device
    already has.  Returns a note to print when the address was derived from the
    device; SetupError (status 2) when ``--ip`` could not be reached."""
    device = None
    if args.kernel_ip is None and args.tun and "%" not in args.tun:
        with contextlib.suppress(ValueError):
            device = interface_address(args.tun)
    kernel = args.kernel_ip or (str(device) if device is not None else None)
    note = None
    if args.ip is None:
        mine = (
            ",".join(
                filter(
                    None, (neighbour_address(ipaddress.ip_interface(k)) for k in kernel.split(","))
                )
            )
            if kernel
            else DEFAULT_IP
        )
        if not mine:
            raise SetupError(
                f"{args.tun} has the address {kernel}, a subnet with no room "
                f"for synack: give the device a wider prefix",
                2,
            )
        args.ip = mine
        if device is not None:
            note = f"note: {args.tun} is {device}, so synack takes {mine} (--ip to choose)"
    _check_addresses(args.tun, args.ip, kernel, given=args.kernel_ip is not None)
    return note


def _check_addresses(name: str, ip: str, kernel_ip: str | None, *, given: bool = True) -> None:
    if kernel_ip is None:
        return
    kernels = [ipaddress.ip_interface(k) for k in kernel_ip.split(",")]
    for one in ip.split(","):
        _check_address(name, one, kernels, kernel_ip, given)


def _check_address(
    name: str,
    ip: str,
    kernels: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
    kernel_ip: str,
    given: bool,
) -> None:
    mine = ipaddress.ip_address(ip)
    same = [k for k in kernels if k.version == mine.version]
    if not same:
        raise SetupError(
            f"--ip {ip} has no kernel address of its family in {kernel_ip}: "
            f"give --kernel-ip one (e.g. 2001:db8::1/64 for IPv6)",
            2,
        )
    iface = same[0]
    whose = f"--kernel-ip {kernel_ip}" if given else f"{name}'s address, {kernel_ip}"
    if mine == iface.ip:
        raise SetupError(
            f"--ip {ip} must differ from the kernel's address ({whose}): "
            f"synack owns an address the kernel does not",
            2,
        )
    if mine not in iface.network:
        raise SetupError(
            f"--ip {ip} is outside {iface.network} ({whose}), so the kernel "
            f"would not route it to {name}; pick an address in that subnet, or "
            f"leave out --ip",
            2,
        )
    if (
        mine.version == 4
        and iface.network.prefixlen < 31
        and mine in (iface.network.network_address, iface.network.broadcast_address)
    ):
        raise SetupError(f"--ip {ip} is the network or broadcast address of {iface.network}", 2)


def checksum_warning(command: str, device: str, count: int) -> str:
    """The one line said when packets from a TUN device fail checksum verification."""
    what = "a packet" if count == 1 else f"{count} packets"
    return (
        f"synack {command}: warning: dropped {what} from {device} with a bad checksum; "
        f"the kernel sends unfinished checksums when the device has checksum offload "
        f"on without synack asking (synack sets the device's offload state when "
        f"attaching: another program may have changed it since; recreate the device)"
    )


_STACK_DROP_WORDS = {
    "ip_bad_version": "packets of an IP version other than 4 and 6",
    "ip6_multicast_ignored": "IPv6 multicast (the kernel's router solicitations and MLD "
    "reports; synack joins no groups)",
    "icmp6_ndp_ignored": "IPv6 neighbour discovery (none on a TUN link)",
}


def drop_words(reason: str) -> str:
    """A stack drop reason (``ip_bad_version``) in words for a summary."""
    if reason in _STACK_DROP_WORDS:
        return _STACK_DROP_WORDS[reason]
    text = DROP_REASONS.get(reason)
    return text.split(";")[0] if text else reason.replace("_", " ")


def tun_error(exc: BaseException, retry: str) -> SetupError:
    """A SetupError for a failure to open the TUN device; ``retry`` is the command
    line to suggest (with sudo) when it is a matter of privileges."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, PermissionError):
        return SetupError(f"{text}\n  try: sudo {retry}")
    if isinstance(exc, OSError) and exc.errno == errno.EBUSY:
        return SetupError(f"{text}; another synack (or a VPN client) may be using it")
    if isinstance(exc, ValueError):
        return SetupError(text, 2)
    if isinstance(exc, OSError) and exc.errno == errno.ENODEV:
        # The library says create=True; on the command line that is leaving out --no-create.
        return SetupError(
            text.replace("or pass create=True", "or leave out --no-create so that synack makes one")
        )
    return SetupError(text)


def open_tun(
    args: argparse.Namespace,
    retry: str,
    *,
    queue: TunLink | None = None,
    stack_options: dict[str, Any] | None = None,
) -> NetSetup:
    """The host on the TUN device the options name (call from a coroutine).

    ``retry`` is the command line suggested when privileges are missing.  ``queue``:
    a device (queue) opened already, by ``serve --workers``, which has resolved
    ``args.ip`` too; ``stack_options`` go to the Stack (a worker's shared secret and
    port share)."""
    assert args.tun
    ip_note = resolve_ip(args) if queue is None else None
    opts: dict[str, Any] = {"config": tcp_config(args), **(stack_options or {})}
    capture, trace_file, traced = _open_recordings(args, opts)
    try:
        try:
            offload, why_not = offload_choice(args)
            tun = (
                queue
                if queue is not None
                else TunLink(
                    args.tun,
                    create=args.create,
                    kernel_ip=args.kernel_ip,
                    mtu=args.mtu,
                    path=args.tun_path,
                    offload=offload,
                )
            )
        except (OSError, ValueError) as exc:
            raise tun_error(exc, retry) from None
        link: Link = CaptureLink(tun, capture) if capture is not None else tun
        try:
            host = Host.from_link(
                link, args.ip, impair=impairment(args), impair_seed=args.impair_seed, **opts
            )
        except BaseException:
            tun.close()
            raise
    except BaseException:
        if capture is not None:
            capture.close()
        if trace_file is not None:
            trace_file.close()
        raise
    how = f"via {tun.name}" + (" with offloads" if tun.offload else "")
    setup = NetSetup(
        host,
        how,
        tun=tun,
        capture=capture,
        capture_path=args.pcap,
        trace_file=trace_file,
        trace_path=args.trace,
        traced=traced,
    )
    if ip_note is not None:
        setup.notes.append(ip_note)
    _note_mss(setup, args, host.stack.config.mss)
    setup.notes.append(offload_line(tun, why_not))
    if args.kernel_ip is None and not tun.existed:
        setup.notes.append(
            f"note: {tun.name} is new and its kernel side is not configured (no --kernel-ip); "
            f"give it an address, e.g. `ip addr add 10.77.0.1/24 dev {tun.name} && "
            f"ip link set {tun.name} up`"
        )
    return setup


def offload_choice(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Whether to ask for offloads, and (when not) why: ``--offload`` (True) insists,
    ``--no-offload`` (False) declines, and the default (None) is auto, on unless an
    impairment option needs plain packets.  SetupError for --offload with impairment."""
    impaired = impairment(args) is not None
    if args.offload is True and impaired:
        raise SetupError(
            "--offload cannot be combined with impairment options (they work on plain packets)", 2
        )
    if args.offload is False:
        return False, "--no-offload"
    if impaired:
        return False, "impairment options work on plain packets"
    return True, None


def offload_line(tun: TunLink, why_not: str | None) -> str:
    """The one startup line that says whether offloads are on, and why not."""
    if tun.offload:
        return (
            f"offloads: on ({tun.name} carries 64 KB segments with checksums left to "
            f"the kernel; --no-offload for plain packets)"
        )
    why = why_not or f"the kernel refused: {tun.offload_error}"
    return f"offloads: off ({why}); plain packets of at most the MTU"


def _note_mss(setup: NetSetup, args: argparse.Namespace, used: int) -> None:
    """Say so when --mss asked for more than the link carries (the stack uses MTU - 40,
    RFC 9293 §3.7.1), instead of a silent change."""
    if args.mss is not None and used < args.mss:
        setup.notes.append(
            f"note: --mss {args.mss} does not fit the link (MTU {used + 40}): "
            f"synack uses MSS {used}, the MTU less 40 bytes of IP and TCP "
            f"headers; --mtu raises it on a TUN device"
        )


def builtin_handler(port: int) -> tuple[str, Handler]:
    name = BUILTIN_SERVICES[port]
    if name == "echo":
        return name, echo
    if name == "discard":
        return name, discard
    if name == "chargen":
        return name, chargen(None)
    return name, HttpService()


async def open_network(
    args: argparse.Namespace,
    command: str,
    remote_ip: str,
    retry: str,
    builtin_note: str,
    err: IO[str],
) -> NetSetup | int:
    """Open what a client command talks through: the TUN device with ``--tun``, else
    synack's built-in servers in-process.  Prints the setup notes (and, without
    ``--tun``, ``builtin_note``) unless ``--quiet``; returns the exit status on error."""
    bad = check_outputs(command, {"--trace": args.trace, "--pcap": args.pcap})
    if bad is not None:
        return bad
    try:
        setup = open_tun(args, retry) if args.tun else await open_builtin_peer(args, remote_ip)
    except SetupError as exc:
        print(f"synack {command}: {exc}", file=err)
        return exc.status
    setup.watch_checksums(command, err, args.corrupt)
    if not args.quiet:
        for note in setup.notes:
            print(note, file=err)
        if setup.peer is not None:
            print(f"synack {command}: {builtin_note}", file=err)
    return setup


async def open_builtin_peer(args: argparse.Namespace, remote_ip: str) -> NetSetup:
    """Two in-process hosts: ours, and a peer at ``remote_ip`` serving echo (7),
    discard (9), chargen (19) and HTTP (80).  Impairment, capture and trace apply
    to our end, as they would to a TUN device."""
    local = "10.0.0.1" if remote_ip != "10.0.0.1" else "10.0.0.2"
    config = tcp_config(args)
    opts: dict[str, Any] = {"config": config}
    capture, trace_file, traced = _open_recordings(args, opts)
    link_a, link_b = memory_pair(args.mtu or 1500, names=(local, remote_ip))
    try:
        ours: Link = CaptureLink(link_a, capture) if capture is not None else link_a
        a = Host.from_link(
            ours, local, impair=impairment(args), impair_seed=args.impair_seed, **opts
        )
        b = Host.from_link(link_b, remote_ip, config=config)
    except BaseException:
        link_a.close()
        link_b.close()
        if capture is not None:
            capture.close()
        if trace_file is not None:
            trace_file.close()
        raise
    setup = NetSetup(
        a,
        "over an in-process link to synack's built-in servers (no --tun)",
        capture=capture,
        capture_path=args.pcap,
        trace_file=trace_file,
        trace_path=args.trace,
        traced=traced,
        peer=b,
    )
    _note_mss(setup, args, a.stack.config.mss)
    for port in BUILTIN_SERVICES:
        name, handler = builtin_handler(port)
        runner = ServiceRunner(name, handler, grace=1.0)
        await b.start_server(runner, port)
        setup.peer_runners.append(runner)
    return setup


async def settle(hosts: list[Host], timeout: float) -> bool:
    """Wait until every connection of ``hosts`` is CLOSED or in TIME-WAIT (our data
    and FIN acknowledged), up to ``timeout`` seconds.  False if some were not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        busy = [
            c
            for h in hosts
            if not h.driver.closed
            for c in h.stack.connections
            if c.state not in QUIET_STATES
        ]
        if not busy:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)


async def linger(host: Host, seconds: float, peer: Host | None = None) -> None:
    """Keep ``host`` running while it holds connections in TIME-WAIT (it closed first),
    up to ``seconds``: a FIN the peer resends because our last ACK was lost is ACKed
    again (RFC 9293 §3.6, C13) instead of meeting a closed host.  TIME-WAIT itself
    lasts 2*MSL; a command cannot wait that long, hence a bounded linger.  With the
    in-process ``peer`` it ends once the peer's side of each is CLOSED or in
    TIME-WAIT: no FIN can come any more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline and not host.driver.closed:
        waiting = [
            c
            for c in host.stack.connections
            if c.state is State.TIME_WAIT and (peer is None or _peer_may_resend(peer, c))
        ]
        if not waiting:
            return
        await asyncio.sleep(0.01)


def _peer_may_resend(peer: Host, conn: Connection) -> bool:
    """The in-process peer's side of ``conn`` may still resend its FIN."""
    other = peer.stack.find(conn.local_ip, conn.local_port, conn.remote_port)
    return other is not None and other.state not in QUIET_STATES and not peer.driver.closed
