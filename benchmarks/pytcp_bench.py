"""PyTCP 3.0.9 against the Linux kernel: the reference figures for issue #7.

Measures, with PyTCP on one end and the kernel on the other, inside a network
namespace this script creates (and deletes afterwards, even on failure):

* ``rx_mbit``: bulk throughput kernel -> PyTCP (the kernel sends for a fixed
  time, PyTCP counts what it received and reports the count back);
* ``tx_mbit``: bulk throughput PyTCP -> kernel (the kernel counts what it
  receives during a fixed window);
* ``conn_per_s``: kernel client -> PyTCP server connections per second, each
  one connect, one small request, one small response, close.

PyTCP needs Python >= 3.14, which Debian 12 lacks, so it runs from the tree
that ``scripts/install-pytcp-env.sh`` builds under ``.bench-env/`` (a Debian
testing chroot with a venv holding ``pytcp==3.0.9``).  This file plays three
roles: the orchestrator (default; any Python >= 3.9, run as root), the PyTCP
peer (``--role pytcp-peer``, run by the orchestrator with the chroot's Python
3.14 inside the namespace) and the kernel client (``--role kernel-client``,
run with this same Python inside the namespace).  PyTCP runs embedded in the
peer process on a TUN (or TAP) device, with its logging switched off and
Python's ``-O`` (PyTCP wraps its debug logging in ``__debug__``).

``python3 benchmarks/pytcp_bench.py --json`` prints one JSON object, either
``{"rx_mbit": ..., "tx_mbit": ..., "conn_per_s": ..., "details": {...}}``
(a figure is null when only that measurement failed; ``details.errors``
says why) or ``{"error": "..."}``; it exits 0 in both cases.  ``--setup``
builds the environment first when it is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ENV_DIR = REPO / ".bench-env"
INSTALL_SCRIPT = REPO / "scripts" / "install-pytcp-env.sh"
VENV_IN_ROOT = "/opt/pytcp-venv"
SCRIPT_IN_ROOT = f"/opt/synack-bench/pytcp_bench-{os.getpid()}.py"  # one per run
NETNS_PREFIX = "synack-pytcp-"
IFACE = {"tun": "ptun0", "tap": "ptap0"}
KERNEL_IP = "10.78.0.1"
PYTCP_IP = "10.78.0.2"
PREFIX = 24
PYTCP_MAC = "02:00:00:78:00:02"
PORT_SINK, PORT_SOURCE, PORT_RR = 5001, 5002, 5003
CHUNK = 65536
RR_REQUEST = b"Q" * 64
RR_RESPONSE = b"R" * 64
PEER_READY_TIMEOUT = 60.0
PEER_MAX_LIFETIME = 900.0  # the PyTCP peer exits on its own after this


class BenchError(Exception):
    """A reason the benchmark cannot run; reported as {"error": ...}."""


# --------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------


def run(
    cmd: list[str], *, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"`{' '.join(cmd)}` did not finish in {timeout:.0f} s") from e
    except OSError as e:
        raise BenchError(f"cannot run `{cmd[0]}`: {e}") from e
    if check and proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-400:]}"
        )
    return proc


def read_ready(env_dir: Path) -> dict[str, str] | None:
    ready = env_dir / "READY"
    if not ready.is_file():
        return None
    info = dict(line.split("=", 1) for line in ready.read_text().splitlines() if "=" in line)
    root = Path(info.get("root", env_dir / "root"))
    if not os.path.lexists(root / VENV_IN_ROOT.lstrip("/") / "bin" / "python"):  # absolute symlink
        return None
    info["root"] = str(root)
    return info


def ensure_env(env_dir: Path, setup: bool) -> dict[str, str]:
    info = read_ready(env_dir)
    if info is not None:
        return info
    if not setup:
        raise BenchError(
            f"PyTCP environment not found in {env_dir} (no READY file): run "
            f"`sudo bash scripts/install-pytcp-env.sh` or pass --setup"
        )
    env = dict(os.environ, BENCH_ENV_DIR=str(env_dir))
    # The installer's messages go to our stderr (stdout stays clean for --json);
    # its last lines are kept for the error report.
    tail: list[str] = []
    try:
        proc = subprocess.Popen(
            ["bash", str(INSTALL_SCRIPT)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError as e:
        raise BenchError(f"cannot run scripts/install-pytcp-env.sh: {e}") from e
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        tail = [*tail[-4:], line.strip()]
    rc = proc.wait()
    if rc != 0:
        raise BenchError(f"scripts/install-pytcp-env.sh failed (exit {rc}): " + " | ".join(tail))
    info = read_ready(env_dir)
    if info is None:
        raise BenchError(f"scripts/install-pytcp-env.sh finished but {env_dir}/READY is missing")
    return info


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> None:
    """Delete namespaces left by an earlier run of this script that died."""
    proc = run(["ip", "netns", "list"], check=False)
    for line in proc.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        try:
            owner = int(name[len(NETNS_PREFIX) :])
        except ValueError:
            continue
        if owner != os.getpid() and not pid_alive(owner):
            run(["ip", "netns", "del", name], check=False)


class Namespace:
    """A network namespace with one TUN/TAP device addressed on the kernel side."""

    def __init__(self, mode: str, mtu: int) -> None:
        self.name = f"{NETNS_PREFIX}{os.getpid()}"
        self.mode = mode
        self.mtu = mtu
        self.iface = IFACE[mode]
        self.created = False

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Namespace:
        remove_stale_namespaces()
        run(["ip", "netns", "add", self.name])
        self.created = True
        ns = self.exec_prefix()
        try:
            run([*ns, "ip", "link", "set", "lo", "up"])
            run([*ns, "ip", "tuntap", "add", "dev", self.iface, "mode", self.mode])
            run([*ns, "ip", "link", "set", self.iface, "mtu", str(self.mtu)])
            run([*ns, "ip", "addr", "add", f"{KERNEL_IP}/{PREFIX}", "dev", self.iface])
            run([*ns, "ip", "link", "set", self.iface, "up"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created:
            run([*self.exec_prefix(), "ip", "link", "del", self.iface], check=False)
            run(["ip", "netns", "del", self.name], check=False)
            self.created = False


class PytcpPeer:
    """The PyTCP process: started in the namespace, in the chroot; stopped by PID."""

    def __init__(self, ns: Namespace, root: Path, duration: float, optimize: bool) -> None:
        self.ns = ns
        self.root = root
        self.duration = duration
        self.optimize = optimize
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_path = root / "tmp" / f"synack-pytcp-peer-{os.getpid()}.log"
        self.ready_info: dict[str, Any] = {}
        self.final_log = ""

    def __enter__(self) -> PytcpPeer:
        dest = self.root / SCRIPT_IN_ROOT.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(__file__, dest)
        tun = self.root / "dev" / "net" / "tun"
        if not tun.exists():
            tun.parent.mkdir(parents=True, exist_ok=True)
            os.mknod(tun, 0o20666, os.makedev(10, 200))
        cmd = (
            self.ns.exec_prefix()
            + [
                "chroot",
                str(self.root),
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "LANG=C.UTF-8",
                f"{VENV_IN_ROOT}/bin/python",
            ]
            + (["-O"] if self.optimize else [])
            + [
                SCRIPT_IN_ROOT,
                "--role",
                "pytcp-peer",
                "--mode",
                self.ns.mode,
                "--iface",
                self.ns.iface,
                "--mtu",
                str(self.ns.mtu),
                "--duration",
                str(self.duration),
            ]
        )
        self.stderr_file = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            text=True,
            start_new_session=True,
        )
        try:
            line = self._readline(PEER_READY_TIMEOUT)
            if not line.startswith("READY "):
                why = line.strip() or self.stderr_tail()
                raise BenchError(f"PyTCP peer did not come up: {why}")
            self.ready_info = json.loads(line[len("READY ") :])
        except BaseException:
            self.__exit__()
            raise
        return self

    def _readline(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[str] = []
        t = threading.Thread(
            target=lambda: result.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        t.start()
        t.join(timeout)
        if not result:
            return f"(no READY line within {timeout:.0f} s) " + self.stderr_tail()
        return result[0]

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.stderr_file.flush()
        try:
            text = self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return " | ".join(text.splitlines()[-6:])[-800:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()  # the peer exits when its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            self.proc = None
        with contextlib.suppress(OSError):
            self.stderr_file.close()
        self.final_log = self.stderr_tail()
        with contextlib.suppress(OSError):
            self.stderr_path.unlink()
        with contextlib.suppress(OSError):
            (self.root / SCRIPT_IN_ROOT.lstrip("/")).unlink()


def kernel_client(
    ns: Namespace, test: str, duration: float, extra: list[str] | None = None
) -> dict[str, Any]:
    cmd = [
        *ns.exec_prefix(),
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        "kernel-client",
        "--test",
        test,
        "--duration",
        str(duration),
    ]
    cmd += extra or []
    limit = duration + 90
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{test}: kernel client did not finish in {limit:.0f} s") from e
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"{test}: kernel client failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise BenchError(f"{test}: {result['error']}")
    return result


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise BenchError(
            "must run as root (it creates a network namespace, a TUN device and a chroot)"
        )
    for tool in ("ip", "chroot"):
        if shutil.which(tool) is None:
            raise BenchError(
                f"`{tool}` not found on PATH (Debian: apt-get install iproute2 coreutils)"
            )
    if not Path("/dev/net/tun").exists():
        raise BenchError("/dev/net/tun does not exist on this machine (no TUN/TAP support)")
    info = ensure_env(Path(args.env_dir), args.setup)
    root = Path(info["root"])
    details: dict[str, Any] = {
        "pytcp_version": info.get("pytcp"),
        "pytcp_python": info.get("python"),
        "env": f"Debian {info.get('suite')} chroot {root}, venv {VENV_IN_ROOT}",
        "mode": args.mode,
        "mtu": args.mtu,
        "optimize_O": not args.no_optimize,
        "duration_s": args.duration,
        "conn_duration_s": args.conn_duration,
        "kernel_python": platform.python_version(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "kernel_ip": KERNEL_IP,
        "pytcp_ip": PYTCP_IP,
        "tests": args.tests,
    }
    figures: dict[str, float | None] = {"rx_mbit": None, "tx_mbit": None, "conn_per_s": None}
    errors: dict[str, str] = {}
    conn_extra = ["--conn-wait-eof"] if args.conn_wait_eof else []
    # (label, figure key, test, seconds, extra client args); each runs against a
    # fresh PyTCP process, so no run inherits another's sessions (PyTCP keeps a
    # closed connection in TIME-WAIT for 30 s, and its cost grows with them).
    plan: list[tuple[str, str | None, str, float, list[str]]] = [
        ("rx", "rx_mbit", "rx", args.duration, []),
        ("tx", "tx_mbit", "tx", args.duration, []),
        (
            "conn",
            "conn_per_s",
            "conn",
            args.conn_duration,
            ["--conn-clients", str(args.conn_clients), *conn_extra],
        ),
    ]
    if args.conn_clients != 1:
        # the same loop with one client: per-connection latency, no overlap
        plan.append(
            (
                "conn_sequential",
                None,
                "conn",
                args.conn_duration,
                ["--conn-clients", "1", *conn_extra],
            )
        )
    peer_logs: dict[str, str] = {}
    with Namespace(args.mode, args.mtu) as ns:
        details["netns"] = ns.name
        for label, key, test, dur, extra in plan:
            if test not in args.tests:
                continue
            if not args.json:
                print(f"... {label}: {dur:g} s", file=sys.stderr, flush=True)
            peer = PytcpPeer(ns, root, dur, not args.no_optimize)
            try:
                with peer:
                    details.setdefault("pytcp_peer", peer.ready_info)
                    res = kernel_client(ns, test, dur, extra)
                    if not peer.alive():
                        raise BenchError("PyTCP peer exited: " + peer.stderr_tail())
            except BenchError as e:
                if key is not None:
                    errors[key] = str(e)
                else:
                    details[label] = {"error": str(e)}
                continue
            finally:
                peer_logs[label] = peer.final_log
            details[label] = res
            if key is not None:
                figures[key] = res["value"]
    details["pytcp_peer_logs"] = peer_logs
    if errors:
        details["errors"] = errors
    if all(v is None for v in figures.values()):
        why = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise BenchError(f"no measurement succeeded: {why}")
    return {**figures, "details": details}


# --------------------------------------------------------------------------
# Kernel client (host Python, inside the namespace)
# --------------------------------------------------------------------------


def client_rx(duration: float) -> dict[str, Any]:
    """Send for `duration` s, half-close, and read PyTCP's count of what it got."""
    data = b"\xa5" * CHUNK
    s = socket.create_connection((PYTCP_IP, PORT_SINK), timeout=10)
    s.settimeout(10)
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + duration
    try:
        while time.monotonic() < deadline:
            sent += s.send(data)
    except TimeoutError:
        return {"error": f"send stalled for 10 s after {sent} bytes"}
    t_sent = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    s.settimeout(max(30.0, duration * 3))
    reply = b""
    try:
        while True:
            b = s.recv(100)
            if not b:
                break
            reply += b
    except TimeoutError:
        return {"error": f"PyTCP did not report its byte count ({sent} bytes sent)"}
    t1 = time.monotonic()
    s.close()
    got = int(reply.decode() or "-1")
    if got != sent:
        return {"error": f"PyTCP counted {got} bytes but {sent} were sent"}
    secs = t1 - t0
    return {
        "value": round(got * 8 / secs / 1e6, 3),
        "bytes": got,
        "seconds": round(secs, 3),
        "send_seconds": round(t_sent - t0, 3),
        "note": "bytes PyTCP received and counted / time from connect to its count reply",
    }


def client_tx(duration: float) -> dict[str, Any]:
    """Read what PyTCP sends during a window of `duration` s after the first byte."""
    s = socket.create_connection((PYTCP_IP, PORT_SOURCE), timeout=10)
    s.settimeout(10)
    t_conn = time.monotonic()
    try:
        first = s.recv(CHUNK)
    except TimeoutError:
        return {"error": "PyTCP sent nothing in 10 s"}
    t0 = time.monotonic()
    total = len(first)
    deadline = t0 + duration
    in_window = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(min(left, 10))
            try:
                b = s.recv(CHUNK)
            except TimeoutError:
                break
            if not b:
                break
            in_window += len(b)
    finally:
        t1 = time.monotonic()
        s.close()
    total += in_window
    secs = t1 - t0
    return {
        "value": round(in_window * 8 / secs / 1e6, 4),
        "bytes": in_window,
        "seconds": round(secs, 3),
        "first_byte_after_s": round(t0 - t_conn, 3),
        "first_read_bytes": len(first),
        "note": "bytes received from PyTCP in a fixed window that starts at its first byte",
    }


def client_conn(duration: float, clients: int = 1, wait_eof: bool = False) -> dict[str, Any]:
    """`clients` threads, each looping connect / request / response / close for `duration` s."""
    counts = {"ok": 0, "failures": 0}
    first_failure: list[str] = []
    lat: list[float] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + duration

    def one() -> None:
        with socket.create_connection((PYTCP_IP, PORT_RR), timeout=5) as s:
            s.settimeout(5)
            s.sendall(RR_REQUEST)
            got = b""
            while wait_eof or len(got) < len(RR_RESPONSE):
                b = s.recv(4096)
                if not b:
                    break
                got += b
        if got != RR_RESPONSE:
            raise OSError(f"bad response ({len(got)} bytes)")

    def worker() -> None:
        while time.monotonic() < deadline:
            ts = time.monotonic()
            try:
                one()
            except OSError as e:
                with lock:
                    counts["failures"] += 1
                    if not first_failure:
                        first_failure.append(f"{type(e).__name__}: {e}")
                    if counts["failures"] > 20 and counts["ok"] == 0:
                        return
                continue
            with lock:
                counts["ok"] += 1
                lat.append(time.monotonic() - ts)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    ok, failures = counts["ok"], counts["failures"]
    lat.sort()

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 3) if lat else None

    if ok == 0:
        return {"error": f"no connection succeeded ({failures} failed; first: {first_failure})"}
    return {
        "value": round(ok / secs, 1),
        "connections": ok,
        "failures": failures,
        "first_failure": first_failure[0] if first_failure else None,
        "seconds": round(secs, 3),
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "clients": clients,
        "note": f"{clients} kernel client thread(s), each in turn: connect, 64 B request, "
        f"64 B response, {'wait for PyTCP FIN, ' if wait_eof else ''}close",
    }


def kernel_client_main(args: argparse.Namespace) -> int:
    try:
        if args.test == "conn":
            res = client_conn(args.duration, args.conn_clients, args.conn_wait_eof)
        else:
            res = {"rx": client_rx, "tx": client_tx}[args.test](args.duration)
    except OSError as e:
        res = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(res), flush=True)
    return 0


# --------------------------------------------------------------------------
# PyTCP peer (Python 3.14 in the chroot, inside the namespace)
# --------------------------------------------------------------------------


def pytcp_peer_main(args: argparse.Namespace) -> int:  # pragma: no cover - runs in the chroot
    import pytcp.stack as stack
    from net_addr import Ip4IfAddr, MacAddress
    from pytcp.runtime.socket import AddressFamily, SocketType
    from pytcp.runtime.socket import socket as pytcp_socket

    stack.LOG__CHANNEL = set()  # PyTCP logs every packet to stderr otherwise
    if args.mode == "tun":
        iface = stack.initialize_interface__tun(interface_name=args.iface)
    else:
        iface = stack.initialize_interface__tap(
            interface_name=args.iface, mac_address=MacAddress(PYTCP_MAC)
        )
    iface["mtu"] = args.mtu
    stack.init()
    stack.add_interface(
        **iface,
        ip4_support=True,
        ip4_host=Ip4IfAddr(f"{PYTCP_IP}/{PREFIX}"),
        ip4_dhcp=False,
        ip6_support=False,
        ip6_gua_autoconfig=False,
        ip6_lla_autoconfig=False,
    )
    stack.start(wait_for_dhcp_bind=False)

    stop = threading.Event()
    counters = {"sink": 0, "source": 0, "rr": 0, "errors": 0}
    last_error: list[str] = []

    def listener(port: int) -> Any:
        s = pytcp_socket(AddressFamily.INET4, SocketType.STREAM)
        s.bind((PYTCP_IP, port))
        s.listen()
        return s

    def serve(port: int, handle: Any) -> None:
        lst = listener(port)
        while not stop.is_set():
            try:
                conn, _ = lst.accept(timeout=0.5)
            except TimeoutError:
                continue
            try:
                handle(conn)
            except Exception as e:
                counters["errors"] += 1
                last_error[:] = [f"port {port}: {type(e).__name__}: {e}"]
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def sink(conn: Any) -> None:
        n = 0
        while True:
            b = conn.recv(CHUNK, timeout=30)
            if not b:
                break
            n += len(b)
        conn.send(str(n).encode())
        counters["sink"] += 1

    def source(conn: Any) -> None:
        data = b"\x5a" * CHUNK
        end = time.monotonic() + args.duration + 30
        try:
            while time.monotonic() < end and not stop.is_set():
                conn.send(data)  # blocks on a full send buffer
        except OSError:
            pass  # the kernel client closes when its window is over: the normal end
        counters["source"] += 1

    def rr(conn: Any) -> None:
        got = b""
        while len(got) < len(RR_REQUEST):
            b = conn.recv(4096, timeout=5)
            if not b:
                break
            got += b
        conn.send(RR_RESPONSE)
        counters["rr"] += 1

    for port, fn in ((PORT_SINK, sink), (PORT_SOURCE, source), (PORT_RR, rr)):
        threading.Thread(target=serve, args=(port, fn), daemon=True).start()
    time.sleep(0.2)
    import importlib.metadata

    print(
        "READY "
        + json.dumps(
            {
                "python": platform.python_version(),
                "pytcp": importlib.metadata.version("pytcp"),
                "mode": args.mode,
                "iface": args.iface,
                "mtu": args.mtu,
                "optimized": not __debug__,
                "embedding": "in-process stack (pytcp.stack + pytcp.runtime.socket)",
            }
        ),
        flush=True,
    )

    # Run until the orchestrator closes our stdin (or a hard lifetime cap).
    watcher = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    watcher.start()
    stop.wait(PEER_MAX_LIFETIME)
    stop.set()
    print(json.dumps({"counters": counters, "last_error": last_error}), file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        stack.stop()
    os._exit(0)  # stack threads may linger; this process is ours to end


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--setup",
        action="store_true",
        help="build the PyTCP environment (scripts/install-pytcp-env.sh) if it is missing",
    )
    p.add_argument(
        "--env-dir", default=str(DEFAULT_ENV_DIR), help="environment folder (default: .bench-env)"
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds per bulk transfer (default 10)"
    )
    p.add_argument(
        "--conn-duration",
        type=float,
        default=5.0,
        help="seconds of the connection-rate test (default 5)",
    )
    p.add_argument(
        "--conn-clients",
        type=int,
        default=4,
        help="concurrent kernel client threads in the connection test (default 4; "
        "a one-client run is added to details)",
    )
    p.add_argument(
        "--conn-wait-eof",
        action="store_true",
        help="connection test: the client waits for PyTCP's FIN before closing",
    )
    p.add_argument(
        "--mode", choices=("tun", "tap"), default="tun", help="PyTCP's interface (default tun)"
    )
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--tests", default="rx,tx,conn", help="comma-separated subset of rx,tx,conn")
    p.add_argument(
        "--no-optimize",
        action="store_true",
        help="run PyTCP without python -O (keeps its debug-log calls and asserts)",
    )
    p.add_argument(
        "--role",
        choices=("orchestrator", "pytcp-peer", "kernel-client"),
        default="orchestrator",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--test", choices=("rx", "tx", "conn"), help=argparse.SUPPRESS)
    p.add_argument("--iface", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.tests = [t.strip() for t in args.tests.split(",") if t.strip()]

    if args.role == "pytcp-peer":
        return pytcp_peer_main(args)
    if args.role == "kernel-client":
        return kernel_client_main(args)

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanup in orchestrate()

    signal.signal(signal.SIGTERM, on_term)
    try:
        result = orchestrate(args)
    except BenchError as e:
        result = {"error": str(e)}
    if args.json:
        print(json.dumps(result, indent=2))
    elif "error" in result:
        print(f"PyTCP benchmark cannot run: {result['error']}")
    else:
        d = result["details"]
        print(
            f"PyTCP {d['pytcp_version']} (Python {d['pytcp_python']}) vs kernel, "
            f"{d['mode'].upper()} MTU {d['mtu']}, netns {d['netns']}"
        )
        for key, unit in (
            ("rx_mbit", "Mbit/s  kernel -> PyTCP"),
            ("tx_mbit", "Mbit/s  PyTCP -> kernel"),
            ("conn_per_s", "conn/s  kernel client -> PyTCP server"),
        ):
            v = result[key]
            print(f"  {key:11} {'n/a' if v is None else v:>10}  {unit}")
        seq = d.get("conn_sequential", {})
        if "value" in seq:
            print(
                f"  {'(1 client)':11} {seq['value']:>10}  conn/s  one client at a time, "
                f"p50 {seq['latency_ms_p50']} ms"
            )
        for key, err in d.get("errors", {}).items():
            print(f"  {key}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
