"""The options every real-network command shares: the TUN device and addresses, the
impairment, TCP knobs and TIME-WAIT linger (``add_link_options``, ``add_linger_option``),
and what they build (:func:`impairment`, :func:`tcp_config`)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from ..links.tun import DEFAULT_TUN_PATH
from ..sim.path import PathConfig
from ..tcp.algorithms import ALGORITHMS
from ..tcp.config import TcpConfig
from . import in_range
from . import probability as probability_arg


# --------------------------------------------------------------------- options
def _ipv4(text: str) -> str:
    """An IPv4 or IPv6 address (brackets allowed), or both comma-separated."""
    out = []
    for part in text.split(","):
        try:
            out.append(str(ipaddress.ip_address(part.strip().strip("[]"))))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IP address: {part!r}") from None
    return ",".join(out)


#: Seconds a client command that closed first keeps answering in TIME-WAIT (C13): long
#: enough for a peer's FIN retransmitted after a 200 ms-1 s RTO, once or twice.
DEFAULT_LINGER = 3.0
#: The longest linger: all of TIME-WAIT, 2*MSL (RFC 9293 §3.6).
MAX_LINGER = 2 * TcpConfig().msl

#: synack's address when neither --ip nor the device says otherwise.
DEFAULT_IP = "10.77.0.2"

_mss = in_range(int, 88, 65495, "an MSS")
_buf = in_range(int, 4096, 1 << 30, "a buffer size")
_mtu = in_range(int, 128, 65535, "an MTU")
_ms = in_range(float, 0, 60000, "milliseconds")


def _interface(text: str) -> str:
    """ADDRESS/PREFIX of either family, or one of each comma-separated."""
    out = []
    for part in text.split(","):
        try:
            iface = ipaddress.ip_interface(part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not an ADDRESS/PREFIX: {part!r} (e.g. 10.77.0.1/24 or 2001:db8::1/64)"
            ) from None
        if "/" not in part:
            size = 24 if iface.version == 4 else 64
            raise argparse.ArgumentTypeError(
                f"give the prefix length too: {part}/{size}, say (the kernel routes that "
                f"subnet to the device)"
            )
        out.append(str(iface))
    return ",".join(out)


def add_link_options(p: argparse.ArgumentParser, *, client: bool = False) -> None:
    """The TUN, impairment, TCP and recording options (see the module docstring).
    ``client`` (connect, get): the device part is optional and needs no root when
    attaching to an existing device with --no-create."""
    title = (
        "real network (--tun; root or CAP_NET_ADMIN, except to attach to a device made "
        "for your user with --no-create)"
        if client
        else "real network (TUN device; needs root or CAP_NET_ADMIN)"
    )
    g = p.add_argument_group(title)
    g.add_argument(
        "--tun", metavar="NAME", help="TUN device to use (created if missing, unless --no-create)"
    )
    g.add_argument(
        "--ip",
        type=_ipv4,
        default=None,
        metavar="ADDR",
        help="synack's own address on the device (default: the next free-looking "
        f"address in the device's subnet, e.g. {DEFAULT_IP} when the kernel's "
        "side is 10.77.0.1/24)",
    )
    g.add_argument(
        "--kernel-ip",
        type=_interface,
        metavar="ADDR/PREFIX",
        help="configure the kernel side: give the device this address and bring "
        "it up (e.g. 10.77.0.1/24); without it the device is left as it is",
    )
    g.add_argument(
        "--no-create",
        dest="create",
        action="store_false",
        help="attach to an existing device (ip tuntap add dev NAME mode tun) only",
    )
    g.add_argument(
        "--mtu",
        type=_mtu,
        metavar="BYTES",
        help="set the device MTU (default: leave it; the MSS follows it)",
    )
    g.add_argument(
        "--offload",
        dest="offload",
        action="store_const",
        const=True,
        default=None,
        help="checksum and segmentation offload (IFF_VNET_HDR, 64 KB segments "
        "both ways).  The default is auto: on where the kernel allows it and no "
        "impairment option needs plain packets, off otherwise; a line on startup "
        "says which.  --offload makes impairment options an error instead",
    )
    g.add_argument(
        "--no-offload",
        dest="offload",
        action="store_const",
        const=False,
        help="plain packets, one per MSS: no checksum or segmentation offload",
    )
    g.add_argument("--tun-path", default=DEFAULT_TUN_PATH, help=argparse.SUPPRESS)
    i = p.add_argument_group("impairment of the link (both directions unless --impair)")
    i.add_argument(
        "--loss",
        type=probability_arg,
        default=0.0,
        metavar="P",
        help="probability a packet is lost (default 0)",
    )
    i.add_argument(
        "--delay",
        type=_ms,
        default=0.0,
        metavar="MS",
        help="one-way delay in milliseconds (default 0)",
    )
    i.add_argument(
        "--jitter",
        type=_ms,
        default=0.0,
        metavar="MS",
        help="delay jitter in milliseconds, never reorders (default 0)",
    )
    i.add_argument(
        "--duplicate",
        type=probability_arg,
        default=0.0,
        metavar="P",
        help="probability a packet is duplicated (default 0)",
    )
    i.add_argument(
        "--reorder",
        type=probability_arg,
        default=0.0,
        metavar="P",
        help="probability a packet is held back 1 ms and overtaken (default 0)",
    )
    i.add_argument(
        "--corrupt",
        type=probability_arg,
        default=0.0,
        metavar="P",
        help="probability of bit flips, the checksum catches them (default 0)",
    )
    i.add_argument(
        "--impair",
        choices=("both", "in", "out"),
        default="both",
        metavar="WAY",
        help="which direction to impair: in (to synack), out (from synack) (default both)",
    )
    i.add_argument(
        "--impair-seed",
        type=int,
        metavar="N",
        help="seed for the impairment decisions (default: random)",
    )
    t = p.add_argument_group("TCP")
    t.add_argument(
        "--mss",
        type=_mss,
        metavar="BYTES",
        help="MSS to advertise and use (default and at most: MTU - 40)",
    )
    t.add_argument(
        "--cc", choices=sorted(ALGORITHMS), default=None, help="congestion control (default cubic)"
    )
    t.add_argument(
        "--snd-buf",
        type=_buf,
        metavar="BYTES",
        help="send buffer (default 1 MiB; Linux autotunes up to tcp_wmem's "
        "maximum, 4 MiB by default)",
    )
    t.add_argument(
        "--no-sack",
        dest="sack",
        action="store_false",
        help="do not offer or accept SACK (RFC 2018)",
    )
    t.add_argument(
        "--no-timestamps",
        dest="timestamps",
        action="store_false",
        help="do not offer or accept timestamps (RFC 7323)",
    )
    t.add_argument(
        "--no-wscale",
        dest="wscale",
        action="store_false",
        help="do not offer or accept window scaling (64 KiB windows)",
    )
    r = p.add_argument_group("recording")
    r.add_argument("--trace", metavar="FILE", help="write synack's trace as JSON lines")
    r.add_argument(
        "--pcap", metavar="FILE", help="capture the packets on the link (.pcapng or .pcap)"
    )


def add_linger_option(p: argparse.ArgumentParser) -> None:
    """``--linger S`` for a client command that owns its stack (connect, get)."""
    p.add_argument(
        "--linger",
        type=in_range(float, 0, MAX_LINGER, "--linger"),
        default=DEFAULT_LINGER,
        metavar="S",
        help="when synack closed first, keep answering in TIME-WAIT for up to S "
        f"seconds before exiting, so a FIN the peer resends is ACKed again "
        f"(default {DEFAULT_LINGER:g}, at most 2*MSL = {MAX_LINGER:g}; 0 exits at "
        "once)",
    )


def impairment(args: argparse.Namespace) -> tuple[PathConfig | None, PathConfig | None] | None:
    """The (outbound, inbound) impairment the options ask for, or None."""
    if not any((args.loss, args.delay, args.jitter, args.duplicate, args.reorder, args.corrupt)):
        return None
    cfg = PathConfig(
        delay=args.delay / 1000,
        jitter=args.jitter / 1000,
        loss=args.loss,
        duplicate=args.duplicate,
        reorder=args.reorder,
        corrupt=args.corrupt,
    )
    out = cfg if args.impair in ("both", "out") else None
    inb = cfg if args.impair in ("both", "in") else None
    return out, inb


def tcp_config(args: argparse.Namespace) -> TcpConfig:
    """The TcpConfig the TCP options ask for."""
    changes: dict[str, Any] = {
        "sack": args.sack,
        "timestamps": args.timestamps,
        "window_scaling": args.wscale,
    }
    if not args.wscale:
        changes["rcv_buf"] = 65535
    if args.mss is not None:
        changes["mss"] = args.mss
    if args.cc is not None:
        changes["congestion_control"] = args.cc
    if getattr(args, "snd_buf", None) is not None:
        changes["snd_buf"] = args.snd_buf
    return TcpConfig().replace(**changes)
