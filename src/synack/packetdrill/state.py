"""The state a packetdrill run shares between its parts, and the records they pass."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..stack import Stack
from ..tcp.config import TcpConfig
from ..tcp.seq import MASK
from ..tcp.states import State
from ..wire.ipv6 import parse_ipv6_packet
from ..wire.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Segment
from .parser import (
    Event,
    Script,
    SyscallSpec,
)
from .profiles import Profile
from .results import RunOptions, RunResult
from .stack_syscalls import StackSyscalls
from .syscalls import Op, SyscallLayer

LOCAL_IP = "192.168.0.1"
REMOTE_IP = "192.0.2.1"
#: IPv6 addresses: the Linux selftests runner's (tools/testing/selftests/net/packetdrill),
#: on both targets, so that synack and the kernel see the same packets.  (Upstream
#: packetdrill's default local address, fd3d:fa7b:d17d::, is its /64's Subnet-Router
#: anycast address, RFC 4291 §2.6.1.)
LOCAL_IP6 = "fd3d:a0b:17d6::1"
REMOTE_IP6 = "fd3d:fa7b:d17d::1"
#: The link MTU over IPv6 unless a script sets ``--mtu``: 20 bytes more than 1500, so
#: the MSS (MTU less 60, RFC 8200 §3 and RFC 9293 §3.7.1) is the corpus's 1460.
IPV6_MTU = 1520
#: ``--ip_version`` values: IPv4; AF_INET6 sockets over IPv4 packets with IPv4-mapped
#: addresses (RFC 4291 §2.5.5.2, RFC 3493 §3.7); IPv6.
IP_VERSIONS = ("ipv4", "ipv4-mapped-ipv6", "ipv6")
DEFAULT_PORT = 8080
#: The script's own port when the stack is the server (upstream picks an ephemeral port).
REMOTE_EPHEMERAL_PORT = 40000
DEFAULT_TOLERANCE_USECS = 4000
DEFAULT_TOLERANCE_PERCENT = 12.5
#: How long (virtual) past its deadline the runner waits for an expected packet.
WAIT_HORIZON_USECS = 600_000_000
#: How long a call packetdrill does not expect to block may block before failing.
BLOCK_HORIZON_USECS = 600_000_000
#: How long the end of a script waits for a blocking call still running (as upstream: 1 s).
FINAL_WAIT_USECS = 1_000_000
ISN_SECRET = b"synack-packetdrill-runner"

FLAG_BITS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
OPT_KIND = {
    "eol": 0,
    "nop": 1,
    "mss": 2,
    "wscale": 3,
    "sackOK": 4,
    "sack": 5,
    "TS": 8,
    "FO": 34,
    "FOEXP": 254,
}
KIND_NAME = {v: k for k, v in OPT_KIND.items()}
#: States in which a SYN from the peer starts a new incarnation of the connection.
REOPENABLE = frozenset({State.CLOSED, State.SYN_SENT, State.TIME_WAIT, State.LISTEN})


def flags_text(bits: int) -> str:
    """Flags in script notation (``S.``, ``P.``, ``F.``, ``R``, ``-`` for none)."""
    letters = "".join(ch for ch, b in FLAG_BITS.items() if ch != "." and bits & b)
    return letters + ("." if bits & ACK else "") or "-"


def spec_flag_bits(flags: str) -> int:
    bits = 0
    for ch in flags:
        bits |= FLAG_BITS[ch]
    return bits


def usecs(t: int) -> str:
    return f"{t / 1e6:.6f}"


# ------------------------------------------------------------------------------ records
@dataclass(slots=True)
class Sent:
    """A packet synack emitted."""

    time_us: int
    seg: Segment
    options: list[tuple[int, bytes]]

    @property
    def payload(self) -> bytes:
        return bytes(self.seg.payload)


@dataclass(slots=True)
class Sched:
    start_us: int
    end_us: int | None = None  # range end
    blocking_end_us: int | None = None


@dataclass(slots=True)
class Pending:
    """A blocking system call that has not been checked yet."""

    event: Event
    spec: SyscallSpec
    op: Op
    start_us: int
    end_us: int
    done_at: int | None = None
    result: int | None = None
    errno: int | None = None


def raw_options(raw: bytes) -> list[tuple[int, bytes]]:
    """The TCP options of IPv4 or IPv6 packet ``raw`` as (kind, data), in wire order."""
    tcp = raw[parse_ipv6_packet(raw).offset :] if raw[0] >> 4 == 6 else raw[(raw[0] & 15) * 4 :]
    doff = (tcp[12] >> 4) * 4
    opts = tcp[20:doff]
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            out.append((0, b""))
            break
        if kind == 1:
            out.append((1, b""))
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            out.append((kind, bytes(opts[i + 1 :])))
            break
        length = opts[i + 1]
        out.append((kind, bytes(opts[i + 2 : i + length])))
        i += length
    return out


class RunnerState:
    """What every part of a run shares: the script, the clock, the target, the
    sequence-number and timestamp mappings.  The parts (:mod:`.scheduling`,
    :mod:`.inbound`, :mod:`.outbound`, :mod:`.syscall_lines`) extend it and
    :class:`~synack.packetdrill.runner.Runner` combines them."""

    #: Does the target implement TCP Fast Open (the FO option)?  The kernel does.
    fast_open = False

    def __init__(self, script: Script, profile: Profile, options: RunOptions) -> None:
        self.script = script
        self.profile = profile
        self.result = RunResult(script.path, profile.name, expected_failure=script.expected_failure)
        self.tolerance_us = options.tolerance_usecs or DEFAULT_TOLERANCE_USECS
        self.tolerance_pct = (
            options.tolerance_percent
            if options.tolerance_percent is not None
            else DEFAULT_TOLERANCE_PERCENT
        )
        self.strict_segments = options.strict_segments
        self.check_ts_ecr = options.check_ts_ecr
        self._tracer = options.tracer
        self._capture = options.capture
        self.record = options.record
        self.ts_tick_us = 0
        self.ts_ecr_scaled = False
        self.mtu: int | None = None
        self.local_isn: int | None = None
        self.remote_shift = 0
        #: One of :data:`IP_VERSIONS`; a script's ``--ip_version`` line overrides it.
        self.ip_version = options.ip_version or "ipv4"
        self.bind_port = DEFAULT_PORT
        self.connect_port = DEFAULT_PORT
        self.sysctls: dict[str, str] = dict(profile.sysctls)
        self._config_cache: tuple[tuple[tuple[str, str], ...], TcpConfig] | None = None
        self.now_us = 0
        self.outq: deque[Sent] = deque()
        self.pending: Pending | None = None
        self.last_event: Event | None = None
        self.last_sched: Sched | None = None
        # Sequence-number mapping (see the module docstring).
        self.local_isn_live: int | None = None
        self.local_isn_script = 0
        self.remote_isn_script: int | None = None
        self.ts_map: dict[int, int] = {}
        self.ts_base: tuple[int, int] | None = None  # (script val, live val) of the first TS
        self.tuple_local = DEFAULT_PORT
        self.tuple_remote = REMOTE_EPHEMERAL_PORT
        self.stack: Stack | None = None
        self.wait_horizon_us = WAIT_HORIZON_USECS
        self.block_horizon_us = BLOCK_HORIZON_USECS
        self.layer: StackSyscalls | None = None

    @property
    def local_ip(self) -> str:
        """The target's address on the wire (IPv4 in the mapped mode too)."""
        return LOCAL_IP6 if self.ip_version == "ipv6" else LOCAL_IP

    @property
    def remote_ip(self) -> str:
        """The script's address on the wire."""
        return REMOTE_IP6 if self.ip_version == "ipv6" else REMOTE_IP

    @property
    def socket_family(self) -> int:
        """The family of a socket a script opens with ``socket(..., ...)``: AF_INET6
        but for ``--ip_version=ipv4``."""
        return 2 if self.ip_version == "ipv4" else 10

    def link_mtu(self) -> int | None:
        """The MTU the script set, or :data:`IPV6_MTU` over IPv6, or None (1500)."""
        if self.mtu is None and self.ip_version == "ipv6":
            return IPV6_MTU
        return self.mtu

    @property
    def _stack(self) -> Stack:
        assert self.stack is not None
        return self.stack

    @property
    def _syscalls(self) -> SyscallLayer:
        """The target's system-call layer."""
        return self._layer

    @property
    def _layer(self) -> StackSyscalls:
        assert self.layer is not None
        return self.layer

    def _local_offset(self) -> int:
        if self.local_isn_live is None:
            return 0
        return (self.local_isn_live - self.local_isn_script) & MASK
