"""A Linux TUN device as a synack link.

The kernel sees a point-to-point interface (``syn0``); every IPv4 and IPv6 packet it
routes to the interface is read here, and every packet written here is
received by the kernel as if it had arrived on the wire.  synack owns an
address the kernel does not (say ``10.77.0.2``) on the interface's subnet, so
the kernel's connected route for ``10.77.0.1/24`` carries traffic to it.

Opening: ``/dev/net/tun`` with ``IFF_TUN | IFF_NO_PI`` (raw IP packets, no
packet-information prefix) through the ``TUNSETIFF`` ioctl, which attaches
to an existing TUN device of that name (one made with ``ip tuntap add``) or
creates one that disappears when the link is closed.  The descriptor is
non-blocking; reads stop at EAGAIN.

The kernel side (address, netmask, link up, MTU) is configured only when
asked (``kernel_ip="10.77.0.1/24"``, ``mtu=...``), with ioctls on a throwaway
``AF_INET`` socket, so nothing outside the standard library is needed.  The
route to the subnet is the kernel's own connected route for that address.
``kernel_ip`` may name IPv6 too (``"2001:db8::1/64"``, or both families,
comma-separated): the address is added through ``SIOCSIFADDR`` with a
``struct in6_ifreq`` on an ``AF_INET6`` socket, as ``ip -6 addr add`` does.
A TUN device is ``IFF_NOARP``, so the kernel skips duplicate address detection
(the address is usable at once) and gives the link a link-local address of its
own; synack does no NDP or SLAAC on such an L3 link.

Errors say what to do: :class:`PermissionError` without root or
CAP_NET_ADMIN, :class:`FileNotFoundError` without ``/dev/net/tun``,
``OSError(EBUSY)`` naming the device when another process holds it,
:class:`ValueError` for a name the kernel would refuse.

Offloads (``offload=True``): the device is opened with ``IFF_VNET_HDR`` and
``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)``, so every packet in
both directions starts with a virtio-net header (:mod:`synack.wire.vnet`).
The kernel then hands over coalesced TCP segments of up to 64 KB with their
checksums marked as already good, and accepts 64 KB segments from synack
that it cuts per MSS itself (:attr:`TunLink.max_segment_payload`).  Where
the kernel refuses (an old kernel, a device another process holds with
other flags), the link falls back to plain packets: :attr:`TunLink.offload`
is then False and :attr:`TunLink.offload_error` says why.  Every attach sets
the device's offload state explicitly (on, or off for plain packets,
fallbacks included): it belongs to the device and outlives the descriptor of
an earlier run that set it otherwise.  An offloaded link also fixes glibc's
heap thresholds for the process (:mod:`synack.links.heap`), so that batches of
64 KB reads do not land on freshly faulted pages.

Multi-queue (``multi_queue=True``): ``IFF_MULTI_QUEUE`` makes each descriptor
attached to the device one queue of it; :meth:`TunLink.add_queue` attaches
another descriptor with the same flags (``synack serve --workers N`` gives one to
each worker process).  The kernel spreads what it sends over the queues
(:mod:`synack.links.steering` decides which, when attached).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Final

from ..wire.checksum import BytesLike
from ..wire.vnet import VNET_HDR_LEN
from .heap import keep_heap

__all__ = ["DEFAULT_TUN_PATH", "TunLink", "check_interface_name", "interface_address"]

DEFAULT_TUN_PATH: Final = "/dev/net/tun"

# <linux/if_tun.h>, <linux/sockios.h>, <linux/if.h>
TUNSETIFF: Final = 0x400454CA
TUNSETOFFLOAD: Final = 0x400454D0
TUNGETFEATURES: Final = 0x800454CF
IFF_TUN: Final = 0x0001
IFF_NO_PI: Final = 0x1000
IFF_VNET_HDR: Final = 0x4000
IFF_MULTI_QUEUE: Final = 0x0100
TUN_F_CSUM: Final = 0x01
TUN_F_TSO4: Final = 0x02
TUN_F_TSO6: Final = 0x04
SIOCGIFFLAGS: Final = 0x8913
SIOCSIFFLAGS: Final = 0x8914
SIOCGIFADDR: Final = 0x8915
SIOCSIFADDR: Final = 0x8916
SIOCGIFNETMASK: Final = 0x891B
SIOCSIFNETMASK: Final = 0x891C
SIOCGIFMTU: Final = 0x8921
SIOCSIFMTU: Final = 0x8922
IFF_UP: Final = 0x1
IFNAMSIZ: Final = 16

_IFREQ_FLAGS = struct.Struct("16sH22x")  # struct ifreq with ifr_flags
_IFREQ_INT = struct.Struct("16si20x")  # struct ifreq with ifr_mtu
_IFREQ_ADDR = struct.Struct("16sH2s4s8x8x")  # struct ifreq with a sockaddr_in
_IN6_IFREQ = struct.Struct("=16sIi")  # struct in6_ifreq: address, prefix length, ifindex
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_RX_SIZE = 65535 + VNET_HDR_LEN
# Largest TCP payload in one offloaded segment: the IPv4 total length is 16 bits,
# less a 20-byte IP header and a TCP header with 40 bytes of options.
OFFLOAD_SEGMENT_PAYLOAD: Final = 65535 - 20 - 60

_NEEDS_ROOT = (
    "run as root, or grant CAP_NET_ADMIN (e.g. `sudo setcap cap_net_admin+ep "
    "$(readlink -f $(which python3))`), or attach to a device made for your user "
    "with `ip tuntap add dev {name} mode tun user $USER`"
)


def check_interface_name(name: str) -> bytes:
    """Validate a Linux interface name as the kernel does; return it encoded.

    ``%d`` lets the kernel pick a number (``syn%d`` -> ``syn0``, ``syn1``...).
    """
    if not isinstance(name, str):
        raise TypeError(f"interface name must be a str, got {type(name).__name__}")
    raw = name.encode("ascii", "replace")
    if not raw or len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} must be 1 to {IFNAMSIZ - 1} characters")
    if name in (".", "..") or any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise ValueError(
            f"interface name {name!r} may not be '.' or '..' nor contain '/', ':' or whitespace"
        )
    if not name.isascii() or not name.isprintable():
        raise ValueError(f"interface name {name!r} must be printable ASCII")
    return raw


class TunLink:
    """An open TUN device.  See the module docstring.

    ``create=False`` only attaches to a device that already exists.  With
    ``kernel_ip`` ("10.77.0.1/24") the interface gets that address and
    netmask and is brought up; with ``mtu`` its MTU is set first.  Without
    them the kernel side is left exactly as it is.  ``offload=True`` asks for
    checksum and segmentation offload (see the module docstring); it falls
    back to plain packets, reported by :attr:`offload` and :attr:`offload_error`.
    """

    def __init__(
        self,
        name: str = "syn0",
        *,
        create: bool = True,
        kernel_ip: str | None = None,
        mtu: int | None = None,
        path: str = DEFAULT_TUN_PATH,
        offload: bool = False,
        multi_queue: bool = False,
    ) -> None:
        raw = check_interface_name(name)
        self.multi_queue = multi_queue
        ifaces = parse_kernel_ip(kernel_ip) if kernel_ip is not None else []
        iface = ifaces[0] if ifaces else None
        if mtu is not None and not 68 <= mtu <= 65535:
            raise ValueError(f"mtu must be in 68..65535, got {mtu}")
        self.path = path
        self.stats: Counter[str] = Counter()
        self.max_segment_payload: int | None = None
        self.offload = False
        self.offload_error: str | None = None
        self.heap_kept = False
        self.kernel_interface = iface
        self.kernel_interfaces = ifaces
        existed = "%" not in name and _exists(name)
        if not create and not existed:
            raise OSError(
                errno.ENODEV,
                f"TUN device {name!r} does not exist: create it with "
                f"`ip tuntap add dev {name} mode tun`, or pass create=True",
            )
        self.existed = existed
        self._fd = self._open(path, name)
        try:
            if offload:
                self._attach_offloaded(raw, name, path)
            else:
                self.name = self._attach(raw, name)
                self._clear_offload()
            if mtu is not None:
                self._ioctl_inet(SIOCSIFMTU, _IFREQ_INT.pack(self._raw, mtu), "set the MTU of")
            for one in ifaces:
                if isinstance(one, ipaddress.IPv4Interface):
                    self._configure(one)
            for one in ifaces:
                if isinstance(one, ipaddress.IPv6Interface):
                    self._configure6(one)
            self.mtu = self.read_mtu()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    # -------------------------------------------------------------- opening
    def _tun_flags(self) -> int:
        """The TUNSETIFF flags."""
        return (
            IFF_TUN
            | IFF_NO_PI
            | (IFF_VNET_HDR if self.offload else 0)
            | (IFF_MULTI_QUEUE if self.multi_queue else 0)
        )

    def add_queue(self) -> TunLink:
        """Another queue of this multi-queue device: a new descriptor attached with the
        same flags (and so the same offload state).  The device's address, MTU and
        link state are the first queue's; the new link only reads and writes."""
        if not self.multi_queue:
            raise ValueError(f"{self.name} was not opened with multi_queue=True")
        other = TunLink.__new__(TunLink)
        other.multi_queue = True
        other.path = self.path
        other.stats = Counter()
        other.max_segment_payload = self.max_segment_payload
        other.offload = self.offload
        other.offload_error = self.offload_error
        other.heap_kept = keep_heap() if self.offload else False
        other.kernel_interface = self.kernel_interface
        other.kernel_interfaces = self.kernel_interfaces
        other.existed = True
        other._fd = self._open(self.path, self.name)
        try:
            other.name = other._attach(self._raw, self.name)
            if self.offload:
                fcntl.ioctl(other._fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except BaseException:
            os.close(other._fd)
            other._fd = -1
            raise
        other.mtu = self.mtu
        return other

    def _attach_offloaded(self, raw: bytes, name: str, path: str) -> None:
        """Attach with IFF_VNET_HDR and turn the offloads on, or fall back to plain."""
        try:
            feats = fcntl.ioctl(self._fd, TUNGETFEATURES, struct.pack("I", 0))
            if not struct.unpack("I", feats)[0] & IFF_VNET_HDR:
                raise OSError(errno.EOPNOTSUPP, "the TUN driver has no IFF_VNET_HDR")
        except OSError as exc:
            self.offload_error = f"TUNGETFEATURES: {exc.strerror or exc}"
            self.name = self._attach(raw, name)
            self._clear_offload()  # plain after all: no leftover state either
            return
        self.offload = True
        self.name = self._attach(raw, name)
        try:
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError as exc:
            # The header stays on the descriptor once set: start again without it.
            self.offload_error = f"TUNSETOFFLOAD: {exc.strerror or exc}"
            self.offload = False
            os.close(self._fd)
            self._fd = self._open(path, name)
            self.name = self._attach(self.name.encode("ascii"), self.name)
            self._clear_offload()
            return
        self.max_segment_payload = OFFLOAD_SEGMENT_PAYLOAD
        self.heap_kept = keep_heap()  # 64 KB packets: no heap trimming (links.heap)

    def _clear_offload(self) -> None:
        """Turn the device's offloads off (``TUNSETOFFLOAD(0)``) when attaching without them.

        The offload features belong to the device, not to the descriptor: a persistent
        device (``ip tuntap add``) keeps ``TUN_F_CSUM`` after an ``offload=True`` run has
        closed, and the kernel then hands over TCP segments whose checksum is only the
        pseudo-header's (``CHECKSUM_PARTIAL``, ``tun_set_offload()`` in
        ``drivers/net/tun.c``): without a virtio-net header to say so, every one would
        fail verification.  So every plain attach sets the state it needs.  A driver
        that refuses is left as it is (:attr:`offload_error` says so)."""
        try:
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, 0)
        except OSError as exc:
            if self.offload_error is None:
                self.offload_error = f"TUNSETOFFLOAD(0): {exc.strerror or exc}"

    @staticmethod
    def _open(path: str, name: str) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT,
                f"{path} does not exist, so TUN devices are unavailable: load the module "
                f"(`modprobe tun`), or in a container pass the device in "
                f"(`docker run --device /dev/net/tun --cap-add NET_ADMIN ...`)",
                path,
            ) from None
        except PermissionError:
            raise PermissionError(
                errno.EACCES,
                f"cannot open {path} to use TUN device {name!r}: " + _NEEDS_ROOT.format(name=name),
                path,
            ) from None

    def _attach(self, raw: bytes, name: str) -> str:
        req = _IFREQ_FLAGS.pack(raw, self._tun_flags())
        try:
            res = fcntl.ioctl(self._fd, TUNSETIFF, req)
        except OSError as exc:
            raise _tunsetiff_error(exc, name, self.multi_queue) from None
        raw_name: bytes = _IFREQ_FLAGS.unpack(res)[0]
        got = raw_name.rstrip(b"\0").decode("ascii")
        self._raw = got.encode("ascii")
        return got

    def _ioctl_inet(self, request: int, arg: bytes, what: str) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                return fcntl.ioctl(s.fileno(), request, arg)
            except PermissionError:
                raise PermissionError(
                    errno.EPERM,
                    f"not permitted to {what} {self._raw.decode()}: "
                    + _NEEDS_ROOT.format(name=self._raw.decode()),
                ) from None
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot {what} {self._raw.decode()}: {os.strerror(exc.errno or 0)}"
                ) from None

    def _configure(self, iface: ipaddress.IPv4Interface) -> None:
        addr = _IFREQ_ADDR.pack(self._raw, socket.AF_INET, b"\0\0", iface.ip.packed)
        self._ioctl_inet(SIOCSIFADDR, addr, f"set address {iface.ip} on")
        mask = _IFREQ_ADDR.pack(self._raw, socket.AF_INET, b"\0\0", iface.netmask.packed)
        self._ioctl_inet(SIOCSIFNETMASK, mask, f"set netmask {iface.netmask} on")
        res = self._ioctl_inet(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(self._raw, 0), "read flags of")
        flags = _IFREQ_FLAGS.unpack(res)[1]
        if not flags & IFF_UP:
            self._ioctl_inet(SIOCSIFFLAGS, _IFREQ_FLAGS.pack(self._raw, flags | IFF_UP), "bring up")

    def _configure6(self, iface: ipaddress.IPv6Interface) -> None:
        """Add an IPv6 address (``ip -6 addr add``) and bring the link up."""
        res = self._ioctl_inet(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(self._raw, 0), "read flags of")
        flags = _IFREQ_FLAGS.unpack(res)[1]
        if not flags & IFF_UP:
            self._ioctl_inet(SIOCSIFFLAGS, _IFREQ_FLAGS.pack(self._raw, flags | IFF_UP), "bring up")
        index = socket.if_nametoindex(self._raw.decode())
        req = _IN6_IFREQ.pack(iface.ip.packed, iface.network.prefixlen, index)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            try:
                fcntl.ioctl(s.fileno(), SIOCSIFADDR, req)
            except PermissionError:
                raise PermissionError(
                    errno.EPERM,
                    f"not permitted to add {iface} to {self._raw.decode()}: "
                    + _NEEDS_ROOT.format(name=self._raw.decode()),
                ) from None
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise OSError(
                        exc.errno,
                        f"cannot add {iface} to {self._raw.decode()}: "
                        f"{os.strerror(exc.errno or 0)}",
                    ) from None

    def read_mtu(self) -> int:
        """The interface MTU as the kernel has it now (SIOCGIFMTU)."""
        res = self._ioctl_inet(SIOCGIFMTU, _IFREQ_INT.pack(self._raw, 0), "read the MTU of")
        mtu: int = _IFREQ_INT.unpack(res)[1]
        return mtu

    # -------------------------------------------------------------- the Link API
    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError(f"TUN device {self.name} is closed")
        return self._fd

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        out: list[bytes] = []
        fd = self._fd
        read = os.read
        nbytes = 0
        while len(out) < max_packets:
            try:
                pkt = read(fd, _RX_SIZE)
            except BlockingIOError:
                break
            if not pkt:
                break
            nbytes += len(pkt)
            out.append(pkt)
        if out:
            self.stats["rx_packets"] += len(out)
            self.stats["rx_bytes"] += nbytes
        return out

    def write(self, packet: bytes) -> None:
        try:
            n = os.write(self._fd, packet)
        except OSError as exc:
            self._write_failed(exc)
            return
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += n

    def write_vector(self, parts: Sequence[BytesLike]) -> None:
        """Transmit one packet given in pieces (headers, payload view): one gathering
        ``writev``, so the payload is not copied into a joined packet first."""
        try:
            n = os.writev(self._fd, parts)
        except OSError as exc:
            self._write_failed(exc)
            return
        self.stats["tx_packets"] += 1
        self.stats["tx_bytes"] += n

    def _write_failed(self, exc: OSError) -> None:
        """Count a packet the device would not take; raise anything else."""
        if isinstance(exc, BlockingIOError):
            self.stats["tx_drop_full"] += 1
        elif exc.errno == errno.EIO:  # the interface is down: no carrier, as it were
            self.stats["tx_drop_link_down"] += 1
        elif exc.errno == errno.EINVAL:  # larger than the device accepts
            self.stats["tx_drop_invalid"] += 1
        else:
            raise exc

    def close(self) -> None:
        """Close the descriptor; a device this link created disappears with it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        off = " offload" if getattr(self, "offload", False) else ""
        return (
            f"<TunLink {getattr(self, 'name', '?')} mtu={getattr(self, 'mtu', '?')}{off} {state}>"
        )

    def __enter__(self) -> TunLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_kernel_ip(text: str) -> list[Interface]:
    """``"10.77.0.1/24"``, ``"2001:db8::1/64"`` or both, comma-separated, as interfaces;
    ``ValueError`` for anything else."""
    out: list[Interface] = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(
                ipaddress.IPv6Interface(part) if ":" in part else ipaddress.IPv4Interface(part)
            )
        except ValueError as exc:
            raise ValueError(f"not an address/prefix: {part!r} ({exc})") from None
    return out


def interface_address(name: str) -> ipaddress.IPv4Interface | None:
    """The IPv4 address and prefix interface ``name`` has now (``SIOCGIFADDR`` and
    ``SIOCGIFNETMASK``), or None when it has none or does not exist.  Needs no privilege."""
    raw = check_interface_name(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            addr = fcntl.ioctl(s.fileno(), SIOCGIFADDR, _IFREQ_ADDR.pack(raw, 0, b"", b""))
            mask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, _IFREQ_ADDR.pack(raw, 0, b"", b""))
        except OSError:
            return None
    ip = ipaddress.IPv4Address(_IFREQ_ADDR.unpack(addr)[3])
    netmask = ipaddress.IPv4Address(_IFREQ_ADDR.unpack(mask)[3])
    return ipaddress.IPv4Interface(f"{ip}/{netmask}")


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _tunsetiff_error(exc: OSError, name: str, multi_queue: bool = False) -> OSError:
    """Turn a TUNSETIFF failure into an error that says what happened and what to do."""
    err = exc.errno
    if err == errno.EPERM or err == errno.EACCES:
        return PermissionError(
            err,
            f"not permitted to create or attach TUN device {name!r}: "
            + _NEEDS_ROOT.format(name=name),
        )
    if err == errno.EBUSY:
        return OSError(
            err,
            f"TUN device {name!r} is busy: another process has it open "
            f"(close it, or pick another name)",
        )
    if err == errno.EINVAL and multi_queue:
        return OSError(
            err,
            f"cannot attach to {name!r} as a multi-queue TUN device: it "
            f"exists but is a single-queue TUN device (made without "
            f"`multi_queue`), a TAP or another kind of interface; recreate it "
            f"with `ip tuntap add dev {name} mode tun multi_queue`, or use one "
            f"worker",
        )
    if err == errno.EINVAL:
        return OSError(
            err,
            f"cannot attach to {name!r} as a TUN device: it exists but is not "
            f"a single-queue TUN device (a TAP, a multi-queue TUN or another kind "
            f"of interface); pick another name",
        )
    return OSError(err, f"TUNSETIFF for {name!r} failed: {os.strerror(err or 0)}")
