"""``--target kernel``: run a packetdrill script against the live Linux kernel.

As upstream packetdrill's local mode does: the kernel under test is this
machine's, in a network namespace of its own (made with ``unshare`` in a
forked child, so it disappears with the child whatever happens).  In that
namespace a TUN device ``tun0`` carries the local address 192.168.0.1/16 and
the route to the script's side, 192.0.2.0/24; with ``--ip_version=ipv6``
fd3d:a0b:17d6::1/48 and a route to fd3d:fa7b:d17d::/48, on a 1520-byte link
(the Linux selftests runner's addresses and MTU).  The script's system calls run
on real sockets there (:mod:`.kernel_syscalls`); its inbound packets are
written to the TUN device; what the kernel sends is read from it, stamped on
arrival by a reader thread, and matched by the same code that matches
synack's packets (:class:`~synack.packetdrill.runner.Runner`).

Sysctls from the script (``defaults.sh``, ``sysctl -q``) are written under
``/proc/sys`` in the namespace; where the kernel refuses one (a global
setting, or ``tcp_congestion_control`` outside ``tcp_allowed_congestion_control``),
the congestion control is set per socket with ``TCP_CONGESTION`` and anything
else is reported in the notes.  ``ip``, ``tc`` and ``nstat`` commands run for
real in the namespace; other shell commands are reported and skipped.

Time is real: events wait for their time with the monotonic clock, so a
Python injector on a busy machine is late by up to a few milliseconds.  The
timing tolerance is therefore at least :data:`KERNEL_TOLERANCE_USECS`
(settable, and printed by the command).  Root (CAP_NET_ADMIN) is required.
"""

from __future__ import annotations

import ctypes
import dataclasses
import ipaddress
import os
import pickle
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from ..links.tun import TunLink
from ..trace.schema import SegRecord
from ..wire.errors import WireError
from ..wire.packet import decode_ip_tcp
from ..wire.segment import ACK, FIN, RST, SYN
from . import shell
from .kernel_syscalls import KernelSyscalls
from .lexer import PacketdrillSyntaxError
from .parser import CommandSpec, Event, PacketSpec, Script, parse_file
from .profiles import Profile
from .runner import (
    LOCAL_IP,
    LOCAL_IP6,
    Failure,
    Runner,
    RunOptions,
    RunResult,
    ScriptFailure,
    Sent,
    raw_options,
)
from .syscalls import SyscallLayer

#: The smallest timing tolerance on the kernel target (a Python injector in real time).
KERNEL_TOLERANCE_USECS = 25_000
#: How long past an expected packet's deadline the kernel target waits for it.
KERNEL_WAIT_USECS = 2_000_000
#: How long a call not expected to block may block on the kernel target.
KERNEL_BLOCK_USECS = 2_000_000
#: Longest a single script may run (real seconds) before its child is ended.
SCRIPT_TIMEOUT_S = 600.0
TUN_NAME = "tun0"
#: The script's side over IPv6 (its address is fd3d:fa7b:d17d::1).
REMOTE_PREFIX6 = "fd3d:fa7b:d17d::/48"
CLONE_NEWNET = 0x40000000
KERNEL_PROFILE = Profile(
    "kernel", "the live Linux kernel of this machine, in a network namespace of its own"
)
_RUN_IN_NAMESPACE = frozenset({"ip", "tc", "nstat"})


def kernel_problem() -> str | None:
    """Why the kernel target cannot run here, or None."""
    if os.geteuid() != 0:
        return (
            "the kernel target needs root (a network namespace and a TUN device need "
            "CAP_NET_ADMIN); run as root, or use the default synack target"
        )
    if not os.path.exists("/dev/net/tun"):
        return "the kernel target needs /dev/net/tun (modprobe tun)"
    if shutil.which("ip") is None:
        return "the kernel target needs iproute2's `ip` command"
    return None


def run_script_kernel(script: str | Path, options: RunOptions | None = None) -> RunResult:
    """Run one script against the kernel in a fresh namespace; never raises for the
    script's own errors.  Root only (see :func:`kernel_problem`)."""
    path = str(script)
    problem = kernel_problem()
    if problem is not None:
        return RunResult(path, "kernel", Failure(0, problem))
    try:
        parsed = parse_file(script)
    except PacketdrillSyntaxError as exc:
        return RunResult(path, "kernel", Failure(exc.line, f"parse error: {exc.problem}"))
    except OSError as exc:
        return RunResult(path, "kernel", Failure(0, f"cannot read script: {exc}"))
    opts = options or RunOptions()
    if opts.capture is None and opts.tracer is None:
        return _in_child(lambda: _run_in_namespace(parsed, opts), path)
    # The run happens in a forked child: what it captures comes back with its result.
    captured: list[tuple[bytes, float, str]] = []

    def collect(pkt: bytes, t: float, why: str) -> None:
        captured.append((bytes(pkt), t, why))

    def child() -> RunResult:
        res = _run_in_namespace(parsed, dataclasses.replace(opts, capture=collect, tracer=None))
        res.captured = captured
        return res

    res = _in_child(child, path)
    for pkt, t, why in res.captured:
        if opts.capture is not None:
            opts.capture(pkt, t, why)
        if opts.tracer is not None:
            rec = _seg_record(pkt, t, why)
            if rec is not None:
                opts.tracer(rec)
    res.captured = []
    return res


def _seg_record(pkt: bytes, t: float, why: str) -> SegRecord | None:
    """A trace ``seg`` record (docs/trace.md) for a packet of a kernel run, from the
    kernel's side: its state and ISNs are unknown (null)."""
    try:
        src, dst, seg = decode_ip_tcp(pkt, verify_checksum=False)
    except WireError:
        return None
    out = why == "kernel sent"
    local, remote = (
        ((src, seg.src_port), (dst, seg.dst_port))
        if out
        else ((dst, seg.dst_port), (src, seg.src_port))
    )

    def ep(addr: bytes, port: int) -> str:
        text = str(ipaddress.ip_address(addr))
        return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"

    rec: SegRecord = {
        "t": t,
        "ev": "seg",
        "dir": "out" if out else "in",
        "conn": f"{ep(*local)}>{ep(*remote)}",
        "flags": seg.flags,
        "seq": seg.seq,
        "ack": seg.ack,
        "len": len(seg.payload),
        "win": seg.window,
        "mss": seg.mss,
        "why": why,
        "state": None,
        "iss": None,
        "irs": None,
    }
    if seg.sack_blocks:
        rec["sack"] = [list(b) for b in seg.sack_blocks]
    if seg.tsval is not None:
        rec["tsval"], rec["tsecr"] = seg.tsval, seg.tsecr
    if seg.flags & SYN:
        rec["wnd"] = seg.window  # never scaled; later windows need the scale (renderers)
    if seg.wscale is not None:
        rec["wscale"] = seg.wscale
    if seg.sack_permitted:
        rec["sack_permitted"] = True
    return rec


def _in_child(fn: object, path: str) -> RunResult:
    """Run ``fn`` in a forked child in a new network namespace; its result comes back
    pickled through a pipe."""
    assert callable(fn)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(rfd)
            res = fn()
            data = pickle.dumps(res)
        except BaseException as exc:
            data = pickle.dumps(
                RunResult(
                    path,
                    "kernel",
                    Failure(
                        0,
                        f"internal error: {type(exc).__name__}: {exc}",
                        actual=traceback.format_exc(limit=4),
                    ),
                )
            )
            code = 1
        with os.fdopen(wfd, "wb") as fh:
            fh.write(data)
        os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + SCRIPT_TIMEOUT_S
    with os.fdopen(rfd, "rb") as fh:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return RunResult(
                    path,
                    "kernel",
                    Failure(0, f"the kernel run did not finish within {SCRIPT_TIMEOUT_S:g} s"),
                )
            ready, _, _ = select.select([fh], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fh.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    os.waitpid(pid, 0)
    try:
        res = pickle.loads(b"".join(chunks))
    except Exception as exc:
        return RunResult(
            path,
            "kernel",
            Failure(0, f"the kernel run ended without a result ({type(exc).__name__})"),
        )
    assert isinstance(res, RunResult)
    return res


def _run_in_namespace(script: Script, options: RunOptions) -> RunResult:  # pragma: no cover
    sys.setswitchinterval(0.0005)  # hand the GIL over quickly: events are timed for real
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        return RunResult(
            script.path,
            "kernel",
            Failure(0, f"cannot create a network namespace: {os.strerror(err)}"),
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    ip_version = options.ip_version or "ipv4"
    for name, value, _line in script.options:
        if name == "ip_version":
            ip_version = value
    if ip_version == "ipv6":
        # No router solicitations or addresses from router advertisements on the link.
        _write_sysctl("net.ipv6.conf.default.accept_ra", "0")
        _write_sysctl("net.ipv6.conf.default.router_solicitations", "0")
        tun = TunLink(TUN_NAME, kernel_ip=f"{LOCAL_IP6}/48")
        route = ["ip", "-6", "route", "add", f"{REMOTE_PREFIX6}", "dev", TUN_NAME]
    else:
        _write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        tun = TunLink(TUN_NAME, kernel_ip=f"{LOCAL_IP}/16")
        route = ["ip", "route", "add", "192.0.2.0/24", "dev", TUN_NAME]
    try:
        subprocess.run(route, check=True, capture_output=True)
        return KernelRunner(script, options, tun).run()
    finally:
        tun.close()


def _write_sysctl(key: str, value: str) -> str | None:
    """Write a sysctl in this namespace; None, or why it could not be set."""
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        path.write_text(value + "\n")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class KernelRunner(Runner):
    """A :class:`Runner` whose target is the kernel: real time, real sockets, TUN I/O."""

    fast_open = True

    def __init__(self, script: Script, options: RunOptions, tun: TunLink) -> None:
        super().__init__(script, KERNEL_PROFILE, options)
        self.tun = tun
        self.min_tolerance_us = max(options.tolerance_usecs or 0, KERNEL_TOLERANCE_USECS)
        self.wait_horizon_us = KERNEL_WAIT_USECS
        self.block_horizon_us = KERNEL_BLOCK_USECS
        self.t0 = time.monotonic()
        self.inq: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.reader: threading.Thread | None = None
        self.kernel: KernelSyscalls | None = None
        self.congestion: str | None = None
        #: Kernel ISN per (local port, remote port), from its SYN or SYN-ACK.
        self.iss: dict[tuple[int, int], int] = {}
        #: Tuples where a SYN would hit a live connection (not open a new one).
        self.live: set[tuple[int, int]] = set()

    # ---------------------------------------------------------------- target
    def _start_target(self) -> None:
        self.tolerance_us = max(self.tolerance_us, self.min_tolerance_us)
        mtu = self.link_mtu()
        if mtu is not None:
            subprocess.run(
                ["ip", "link", "set", "dev", TUN_NAME, "mtu", str(mtu)],
                check=True,
                capture_output=True,
            )
        self.kernel = KernelSyscalls(
            remote_ip=self.remote_ip,
            connect_port=self.connect_port,
            bind_port=self.bind_port,
            congestion=self.congestion,
            wake=lambda: self.inq.put((self._real_us(), b"")),
            family=self.socket_family,
        )
        self.t0 = time.monotonic()
        self.reader = threading.Thread(target=self._read_tun, daemon=True, name="tun-reader")
        self.reader.start()

    def _end_target(self) -> None:
        self.stop.set()
        if self.reader is not None:
            self.reader.join(2)
        if self.kernel is not None:
            self.result.notes.extend(self.kernel.notes)
            self.kernel.close_all()

    def _real_us(self) -> int:
        return round((time.monotonic() - self.t0) * 1e6)

    def _read_tun(self) -> None:
        fd = self.tun.fileno()
        while not self.stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            stamp = self._real_us()
            for raw in self.tun.read_batch():
                self.inq.put((stamp, raw))

    @property
    def _syscalls(self) -> SyscallLayer:
        assert self.kernel is not None
        return self.kernel

    def _collect(self) -> None:
        while True:
            try:
                stamp, raw = self.inq.get_nowait()
            except queue.Empty:
                break
            self._record_kernel(stamp, raw)
        self._poll_pending()

    def _run_event(self, ev: Event) -> None:
        super()._run_event(ev)
        if not (isinstance(ev.action, PacketSpec) and not ev.action.inbound):
            # "+x" counts from when the previous event finished: commands and calls take
            # real time here.
            self.now_us = max(self.now_us, self._real_us())

    def _poll_pending(self) -> bool:
        if not super()._poll_pending():
            return False
        p = self.pending
        assert p is not None
        op = getattr(p.op, "op", p.op)  # through the runner's _Then wrapper
        finished = getattr(op, "finished_at", None)
        p.done_at = (
            round((finished - self.t0) * 1e6) if isinstance(finished, float) else self._real_us()
        )
        return True

    def _record_kernel(self, stamp: int, raw: bytes) -> None:
        if not raw or raw[0] >> 4 != (6 if self.ip_version == "ipv6" else 4):
            return  # the other family's chatter (IPv6 router solicitations and the like)
        try:
            _src, _dst, seg = decode_ip_tcp(raw)
        except WireError:
            return  # not TCP: ICMPv6 neighbour discovery, MLD reports
        if self._capture is not None:
            self._capture(raw, stamp / 1e6, "kernel sent")
        seg.payload = bytes(seg.payload)
        ports = (seg.src_port, seg.dst_port)
        if seg.flags & SYN:
            self.iss[ports] = seg.seq
            self.live.discard(ports)
            if not seg.flags & ACK:  # an active open: the script talks to this tuple now
                self.tuple_local, self.tuple_remote = ports
        elif seg.flags & (RST | FIN):
            self.live.discard(ports)
        elif seg.flags & ACK:
            self.live.add(ports)
        self.outq.append(Sent(stamp, seg, raw_options(raw)))

    def _sleep_until(self, until_us: int) -> None:
        """Wait (collecting packets) until real time reaches ``until_us`` or a packet comes."""
        left = (until_us - self._real_us()) / 1e6
        if left > 0:
            try:
                stamp, raw = self.inq.get(timeout=min(left, 0.01))
            except queue.Empty:
                return
            self._record_kernel(stamp, raw)

    def _advance(self, until_us: int, *, idle: bool) -> None:
        while True:
            self._collect()
            if idle:
                self._check_pending_if_done()
            if self._real_us() >= until_us:
                break
            self._sleep_until(until_us)
        self._collect()
        if idle:
            self._check_pending_if_done()
        self.now_us = max(self.now_us, self._real_us())

    def _wait_step(self, horizon_us: int) -> bool:
        if self._real_us() > horizon_us:
            return False
        self._sleep_until(min(horizon_us, self._real_us() + 1000))
        self._collect()
        self.now_us = max(self.now_us, self._real_us())
        return True

    def _step_until_sent(self, horizon_us: int) -> bool:
        while not self.outq:
            self._collect()
            if self.outq:
                break
            if self._real_us() > horizon_us:
                return False
            self._sleep_until(horizon_us)
        return True

    def _syn_reopens(self, sport: int, dport: int, bits: int) -> bool:
        return (dport, sport) not in self.live

    def _inject(self, raw: bytes, bits: int, sport: int, dport: int) -> None:
        if bits & RST:
            self.live.discard((dport, sport))
        self.tun.write(raw)

    def _set_tuple_connect(self, fd: int) -> None:
        """The tuple is learned from the kernel's SYN (see :meth:`_record_kernel`)."""

    def _check_content(self, frags: list[Sent]) -> str | None:
        assert self.kernel is not None
        for f in frags:
            if not f.payload:
                continue
            ports = (f.seg.src_port, f.seg.dst_port)
            s = self.kernel.by_ports.get(ports)
            iss = self.iss.get(ports)
            if s is None or iss is None:
                continue
            off = (f.seg.seq - iss - 1) & 0xFFFFFFFF
            want = bytes(s.written[off : off + len(f.payload)])
            if want != f.payload:
                return (
                    f"incorrect outbound data payload: the {len(f.payload)} bytes at stream "
                    f"offset {off} are not what the application wrote there"
                )
        return None

    def _tcp_info(self) -> dict[str, object]:
        assert self.kernel is not None
        return self.kernel.tcp_info()

    def _command(self, cmd: CommandSpec, line: int) -> None:
        """Run a command; the real time it takes does not count as script time."""
        started = time.monotonic()
        try:
            self._run_command(cmd, line)
        finally:
            self.t0 += time.monotonic() - started

    def _run_command(self, cmd: CommandSpec, line: int) -> None:
        for eff in shell.interpret(cmd.text, self.script.directory):
            if isinstance(eff, shell.SysctlSet):
                self._sysctl(eff.key, eff.value, line)
                continue
            words = eff.command.split()
            prog = words[0].rsplit("/", 1)[-1] if words else ""
            if prog not in _RUN_IN_NAMESPACE:
                self.result.notes.append(
                    f"line {line}: skipped `{eff.command}`: not run on "
                    "the kernel target (only sysctl, ip, tc and nstat are)"
                )
                continue
            done = subprocess.run(
                ["sh", "-c", eff.command],
                capture_output=True,
                text=True,
                cwd=self.script.directory,
                timeout=30,
            )
            if done.returncode == 0:
                continue
            if "grep" in eff.command:  # a check, as `nstat | grep -q ...`: it failed
                raise ScriptFailure(
                    line, f"command failed: `{eff.command}` exited with {done.returncode}"
                )
            self.result.notes.append(
                f"line {line}: `{eff.command}` failed in the namespace: {done.stderr.strip()[:200]}"
            )

    def _sysctl(self, key: str, value: str, line: int) -> None:
        self.sysctls[key] = value
        if not key.startswith("net."):
            self.result.notes.append(f"line {line}: sysctl {key} is not per namespace; not set")
            return
        why = _write_sysctl(key, value)
        if why is None:
            return
        if key == "net.ipv4.tcp_congestion_control":
            self.congestion = value
            if self.kernel is not None:
                self.kernel.congestion = value
            self.result.notes.append(
                f"line {line}: {key}={value} refused in the namespace "
                f"({why}); set per socket with TCP_CONGESTION"
            )
            return
        self.result.notes.append(f"line {line}: sysctl {key}={value} not set: {why}")


__all__ = ["KERNEL_TOLERANCE_USECS", "KernelRunner", "kernel_problem", "run_script_kernel"]
