"""Network benchmarks: synack over a real TUN device against the Linux kernel.

Run by ``make bench`` after the core benchmarks (as root; without root it says
why and skips).  Every figure is a ratio of two measurements taken side by side
in this one run, so it holds on a busy machine:

1. bulk throughput kernel -> synack and synack -> kernel over TUN (MTU 1500
   without and with offloads, MTU 65520) against kernel -> kernel over a veth
   pair between two namespaces (MTU 1500); best of ``--reps`` rounds;
2. a bare Python TUN sink (``benchmarks/tun_sink.py``) as the ceiling for
   the plain-TUN receive path, without and with offloads;
3. connections per second (connect, one request/response, close): kernel
   client -> synack server and synack client -> kernel server, against
   kernel -> kernel (the same client and an asyncio server);
4. 1-byte ping-pong latency, p50/p99: kernel <-> synack against kernel <-> kernel;
5. memory per idle established connection at 10,000 connections in one
   synack stack, the peer being the kernel over TUN (tracemalloc, and RSS in a
   second run without tracemalloc);
6. PyTCP 3.0.9 figures from ``benchmarks/pytcp_bench.py --json`` when present.

Everything runs inside namespaces made here (``sbench-<pid>-*``) and deleted
afterwards, also on failure or Ctrl-C; processes are ended by PID.  Prints a
Markdown table; ``--write`` puts it into docs/benchmarks.md between the
``net`` markers.  ``--quick`` is a short smoke run (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from netbench.lab import AgentError, Lab  # noqa: E402
from netbench.report import Row, fmt, ratio_row, render, write_section  # noqa: E402

PY = sys.executable
KERNEL = [PY, str(HERE / "netbench" / "kernel_agent.py")]
SYNACK = [PY, str(HERE / "netbench" / "synack_agent.py")]
SINK = [PY, str(HERE / "tun_sink.py")]
HTTP_KERNEL = [PY, str(HERE / "netbench" / "http_kernel.py")]
#: The route the HTTP connection-rate rows fetch, a new connection per request.
HTTP_ROUTE = "/bytes/100"
PYTCP = HERE / "pytcp_bench.py"
DOC = ROOT / "docs" / "benchmarks.md"

SYNACK_ADDR = "10.77.0.2"
SYNACK_ADDR6 = "fd77::2"
KERNEL_ADDR6 = "fd77::1"
#: Longest a lossy transfer may take (s).
LOSS_TIMEOUT = 900.0
VETH_A, VETH_B = "10.78.0.1", "10.78.0.2"
VETH_A6, VETH_B6 = "fd78::1", "fd78::2"

#: (label, mtu, offload) of the TUN variants measured in both directions.
#: The variant also measured over IPv6 (TSO6), against its IPv4 figure (issue #17: within
#: 10 %).
IPV6_VARIANT = "MTU 1500, offloads"
VARIANTS = [
    ("MTU 1500, no offloads", 1500, False),
    ("MTU 1500, offloads", 1500, True),
    ("MTU 65520, no offloads", 65520, False),
]


def log(msg: str) -> None:
    print(f"bench_net: {msg}", file=sys.stderr, flush=True)


def skip_reason() -> str | None:
    """Why the network part cannot run here, or None."""
    if os.geteuid() != 0:
        return (
            "not root: the network benchmarks make namespaces and TUN devices; "
            "run `sudo make bench` (or `sudo .venv/bin/python benchmarks/bench_net.py`)"
        )
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (modprobe tun, or pass the device into the container)"
    if shutil.which("ip") is None:
        return "no `ip` command: run `sh scripts/install-bench-deps.sh` (iproute2)"
    return None


def offload_available() -> bool:
    import inspect

    from synack.aio.host import Host

    return "offload" in inspect.signature(Host.tun).parameters


class Bench:
    """One run: the lab, the settings, and every figure measured."""

    def __init__(self, lab: Lab, a: argparse.Namespace) -> None:
        self.lab = lab
        self.a = a
        self.seconds = a.seconds
        self.ns = lab.netns("tun")
        self.ns_a = lab.netns("a")
        self.ns_b = lab.netns("b")
        lab.veth(self.ns_a, self.ns_b, VETH_A, VETH_B, 1500)
        # IPv6 on the same pair, for the kernel's own IPv6/IPv4 ratio (no DAD: the
        # addresses are usable at once).
        for ns, dev, addr in ((self.ns_a, "va", VETH_A6), (self.ns_b, "vb", VETH_B6)):
            subprocess.run(
                ["ip", "-n", ns, "addr", "add", f"{addr}/64", "dev", dev, "nodad"],
                check=True,
                capture_output=True,
            )
        self._tun = 0
        self._port = 5000
        self.diag: list[str] = []

    def tun(self) -> str:
        self._tun += 1
        return f"sb{self._tun}"

    def port(self) -> int:
        self._port += 1
        return self._port

    # ------------------------------------------------------------ bulk
    def _timeout(self) -> float:
        return self.seconds + 60

    def k2tun(
        self, agent: list[str], label: str, mtu: int, offload: bool, ipv6: bool = False
    ) -> dict[str, Any]:
        """Kernel sends to whatever listens on 10.77.0.2 (or fd77::2) over a TUN device."""
        port = self.port()
        argv = [
            *agent,
            "--tun",
            self.tun(),
            "--mtu",
            str(mtu),
            "--port",
            str(port),
            "--timeout",
            str(self._timeout()),
        ]
        if offload:
            argv.append("--offload")
        if ipv6:
            argv.append("--ipv6")
        recv = self.lab.start(self.ns, argv, label)
        try:
            ready = recv.wait_for("READY", 20)
            self.lab.run(
                self.ns,
                [
                    *KERNEL,
                    "send",
                    SYNACK_ADDR6 if ipv6 else SYNACK_ADDR,
                    str(port),
                    "--seconds",
                    str(self.seconds),
                ],
                "kernel sender",
                self._timeout(),
            )
            res = recv.wait_for("RESULT", 30)
        finally:
            self.lab.retire(recv)
        res["ready"] = ready
        return res

    def synack_to_kernel(self, mtu: int, offload: bool, ipv6: bool = False) -> dict[str, Any]:
        port = self.port()
        recv = self.lab.start(
            self.ns,
            [*KERNEL, "recv", "--port", str(port), *(["--ipv6"] if ipv6 else [])],
            "kernel receiver",
        )
        try:
            recv.wait_for("READY", 10)
            argv = [
                *SYNACK,
                "bulk-send",
                KERNEL_ADDR6 if ipv6 else "10.77.0.1",
                str(port),
                "--tun",
                self.tun(),
                "--mtu",
                str(mtu),
                "--seconds",
                str(self.seconds),
                "--timeout",
                str(self._timeout()),
            ]
            if offload:
                argv.append("--offload")
            if ipv6:
                argv.append("--ipv6")
            sent = self.lab.run(self.ns, argv, "synack bulk-send", self._timeout() + 10)
            res = recv.wait_for("RESULT", 30)
        finally:
            self.lab.retire(recv)
        res["ready"] = sent
        res["counters"] = sent.get("counters")
        return res

    def lossy6(self, direction: str) -> dict[str, Any]:
        """``--loss-bytes`` of seeded data over IPv6 with ``--loss`` packet loss each way
        on synack's link (no offloads: impairment needs plain packets), kernel -> synack
        (``k2s``) or synack -> kernel; the receiver checks every byte."""
        a = self.a
        port = self.port()
        timeout = str(LOSS_TIMEOUT)
        impair = ["--ipv6", "--loss", str(a.loss), "--impair-seed", "17"]
        if direction == "k2s":
            recv = self.lab.start(
                self.ns,
                [
                    *SYNACK,
                    "bulk-recv",
                    "--tun",
                    self.tun(),
                    "--port",
                    str(port),
                    "--timeout",
                    timeout,
                    "--data-seed",
                    "5",
                    *impair,
                ],
                "synack bulk-recv (lossy)",
            )
            send = [
                *KERNEL,
                "send",
                SYNACK_ADDR6,
                str(port),
                "--bytes",
                str(a.loss_bytes),
                "--data-seed",
                "5",
                "--timeout",
                timeout,
            ]
        else:
            recv = self.lab.start(
                self.ns,
                [
                    *KERNEL,
                    "recv",
                    "--port",
                    str(port),
                    "--ipv6",
                    "--timeout",
                    timeout,
                    "--data-seed",
                    "5",
                ],
                "kernel receiver (lossy)",
            )
            send = [
                *SYNACK,
                "bulk-send",
                KERNEL_ADDR6,
                str(port),
                "--tun",
                self.tun(),
                "--bytes",
                str(a.loss_bytes),
                "--data-seed",
                "5",
                "--timeout",
                timeout,
                *impair,
            ]
        try:
            recv.wait_for("READY", 20)
            sent = self.lab.run(self.ns, send, "lossy sender", LOSS_TIMEOUT + 30)
            res = recv.wait_for("RESULT", 60)
        finally:
            self.lab.retire(recv)
        res["sender"] = {k: v for k, v in sent.items() if k != "counters"}
        res["intact"] = (
            bool(res.get("intact")) and res.get("bytes") == sent.get("bytes") == a.loss_bytes
        )
        res["counters"] = res.get("counters") or sent.get("counters")
        return res

    # ------------------------------------------------- the user's commands
    def serve(
        self, service: str, offload: bool | None, extra: Sequence[str] = ()
    ) -> tuple[Any, int]:
        """Start ``synack serve SERVICE`` on a new TUN device; (agent, port) once listening.
        ``offload`` None: the command's default."""
        port = self.port()
        argv = [
            PY,
            "-m",
            "synack",
            "serve",
            service,
            "--tun",
            self.tun(),
            "--ip",
            SYNACK_ADDR,
            "--kernel-ip",
            "10.77.0.1/24",
            "--port",
            str(port),
            "-q",
            *extra,
        ]
        if "--workers" not in extra and serve_has_workers():
            argv += ["--workers", "1"]  # the default is the CPUs: these rows are one
        if offload is True:
            argv.append("--offload")
        elif offload is False:
            argv.append("--no-offload")
        srv = self.lab.start(self.ns, argv, f"synack serve {service}")
        srv.wait_line("listening on", 30)
        return srv, port

    def stop_serve(self, srv: Any, res: dict[str, Any]) -> dict[str, Any]:
        """SIGINT the command, wait for its summary; CPU seconds into ``res``: of the
        command and every process under it (``--workers`` runs one per queue)."""
        res["cpu_seconds"], res["processes"] = tree_cpu_seconds(srv.pid)
        srv.signal(signal.SIGINT)
        try:
            srv.wait(30)
        except AgentError as exc:
            res["stop_error"] = str(exc)
        res["summary"] = [ln for ln in srv.lines if "bytes" in ln or "connections" in ln]
        return res

    def serve_discard(
        self, offload: bool | None, workers: int | None = None, senders: int = 1
    ) -> dict[str, Any]:
        """``senders`` kernel senders at once (1 MiB sendall each) -> ``synack serve
        discard`` (with ``--workers N`` when given): the total rate, bytes over the
        longest sender's time, to the receiver's close (two senders and two workers
        against one worker: issue #18's 1.6x row)."""
        extra = ["--workers", str(workers)] if workers is not None else []
        srv, port = self.serve("discard", offload, extra)
        argv = [*KERNEL, "send", SYNACK_ADDR, str(port), "--seconds", str(self.seconds)]
        procs = []
        try:
            for i in range(senders):
                label = "kernel sender" if senders == 1 else f"kernel sender {i + 1} of {senders}"
                procs.append(self.lab.start(self.ns, argv, label))
            results = []
            for proc in procs:  # as Lab.run: each sender finishes, then its RESULT
                proc.wait(self._timeout())
                results.append(proc.wait_for("RESULT", 1.0))
            res: dict[str, Any] = dict(results[0]) if senders == 1 else {}
            res["bytes"] = sum(int(r["bytes"]) for r in results)
            res["seconds"] = max(float(r["seconds"]) for r in results)
            if senders > 1:
                res["per_sender_mbit"] = [round(mbit(r) or 0.0) for r in results]
            return self.stop_serve(srv, res)
        finally:
            for proc in procs:
                self.lab.retire(proc)
            self.lab.retire(srv)

    def serve_chargen(self, offload: bool | None) -> dict[str, Any]:
        """``synack serve chargen`` -> kernel (1 MiB recv_into); rate at the receiver."""
        srv, port = self.serve("chargen", offload)
        try:
            res = self.lab.run(
                self.ns,
                [*KERNEL, "drain", SYNACK_ADDR, str(port), "--seconds", str(self.seconds)],
                "kernel drain",
                self._timeout(),
            )
            return self.stop_serve(srv, res)
        finally:
            self.lab.retire(srv)

    # --------------------------------------- HTTP connection rate: wrk and ab
    def load(self, tool: str, ns: str, host: str, port: int) -> dict[str, Any]:
        """``wrk`` (Connection: close) or ``ab`` (no keep-alive): a new connection per
        request to ``http://host:port/bytes/100``; requests/s, p50/p99 in ms."""
        url = f"http://{host}:{port}{HTTP_ROUTE}"
        secs = max(1, round(self.seconds))
        conc = str(self.a.http_conns)
        if tool == "wrk":
            argv = [
                "wrk",
                "-t",
                "1",
                "-c",
                conc,
                "-d",
                f"{secs}s",
                "--latency",
                "-H",
                "Connection: close",
                url,
            ]
        else:
            argv = [
                "ab",
                "-q",
                "-r",
                "-s",
                "10",
                "-c",
                conc,
                "-t",
                str(secs),
                "-n",
                "10000000",
                url,
            ]
        t0 = os.getloadavg()[0]
        res = subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            timeout=self._timeout(),
        )
        out = parse_wrk(res.stdout) if tool == "wrk" else parse_ab(res.stdout)
        if out.get("rate") is None:
            raise AgentError(f"{tool} said: {res.stdout[-800:]} {res.stderr[-400:]}")
        out["load"] = t0
        return out

    def http_synack(self, tool: str, workers: int) -> dict[str, Any]:
        if workers != 1 and not serve_has_workers():
            return {"error": "not available: `synack serve` has no --workers in this tree"}
        srv, port = self.serve(
            "http",
            None,
            ["--workers", str(workers), "--grace", "1"]
            if serve_has_workers()
            else ["--grace", "1"],
        )
        try:
            res = self.load(tool, self.ns, SYNACK_ADDR, port)
            return self.stop_serve(srv, res)
        finally:
            self.lab.retire(srv)

    def http_kernel(self, tool: str) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns_b, [*HTTP_KERNEL, "--port", str(port)], "kernel asyncio HttpService (veth)"
        )
        try:
            srv.wait_for("READY", 20)
            return self.load(tool, self.ns_a, VETH_B, port)
        finally:
            self.lab.retire(srv)

    def veth(self, ipv6: bool = False) -> dict[str, Any]:
        port = self.port()
        recv = self.lab.start(
            self.ns_b,
            [*KERNEL, "recv", "--port", str(port), *(["--ipv6"] if ipv6 else [])],
            "kernel receiver (veth)",
        )
        try:
            recv.wait_for("READY", 10)
            self.lab.run(
                self.ns_a,
                [
                    *KERNEL,
                    "send",
                    VETH_B6 if ipv6 else VETH_B,
                    str(port),
                    "--seconds",
                    str(self.seconds),
                ],
                "kernel sender (veth)",
                self._timeout(),
            )
            return recv.wait_for("RESULT", 30)
        finally:
            self.lab.retire(recv)

    def iperf3(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(self.ns_b, ["iperf3", "-s", "-1", "-p", str(port)], "iperf3 -s")
        try:
            time.sleep(0.5)
            res = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns_a,
                    "iperf3",
                    "-c",
                    VETH_B,
                    "-p",
                    str(port),
                    "-t",
                    str(max(1, round(self.seconds))),
                    "-J",
                ],
                capture_output=True,
                text=True,
                timeout=self._timeout(),
            )
            data = json.loads(res.stdout)
            if "error" in data:
                raise AgentError(f"iperf3: {data['error']}")
            bps = data["end"]["sum_received"]["bits_per_second"]
            return {"bytes": bps / 8, "seconds": 1.0}
        finally:
            self.lab.retire(srv)

    # ------------------------------------------------ connections per second
    def kernel_clients(self, ns: str, host: str, port: int) -> dict[str, Any]:
        procs = [
            self.lab.start(
                ns,
                [
                    *KERNEL,
                    "cps-client",
                    host,
                    str(port),
                    "--seconds",
                    str(self.seconds),
                    "--threads",
                    str(self.a.threads),
                ],
                f"kernel cps-client {i}",
            )
            for i in range(self.a.clients)
        ]
        results = []
        try:
            for p in procs:
                p.wait(self._timeout())
                results.append(p.wait_for("RESULT", 1))
        finally:
            for p in procs:
                self.lab.retire(p)
        count = sum(r["count"] for r in results)
        errors = sum(r["errors"] for r in results)
        secs = max(r["seconds"] for r in results)
        firsts = [r["first_error"] for r in results if r.get("first_error")]
        return {
            "rate": count / secs,
            "count": count,
            "errors": errors,
            "first_error": firsts[0] if firsts else None,
        }

    def cps_kernel_to_synack(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns,
            [*SYNACK, "cps-server", "--tun", self.tun(), "--port", str(port)],
            "synack cps-server",
        )
        try:
            srv.wait_for("READY", 20)
            res = self.kernel_clients(self.ns, SYNACK_ADDR, port)
            srv.signal(signal.SIGTERM)
            res["server"] = srv.wait_for("RESULT", 10)
        finally:
            self.lab.retire(srv)
        return res

    def cps_synack_to_kernel(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns, [*KERNEL, "cps-server", "--port", str(port)], "kernel cps-server"
        )
        try:
            srv.wait_for("READY", 10)
            res = self.lab.run(
                self.ns,
                [
                    *SYNACK,
                    "cps-client",
                    "10.77.0.1",
                    str(port),
                    "--tun",
                    self.tun(),
                    "--seconds",
                    str(self.seconds),
                    "--concurrency",
                    str(self.a.clients * self.a.threads),
                ],
                "synack cps-client",
                self._timeout(),
            )
        finally:
            self.lab.retire(srv)
        res["rate"] = res["count"] / res["seconds"]
        return res

    def cps_kernel_to_kernel(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns_b, [*KERNEL, "cps-server", "--port", str(port)], "kernel cps-server (veth)"
        )
        try:
            srv.wait_for("READY", 10)
            return self.kernel_clients(self.ns_a, VETH_B, port)
        finally:
            self.lab.retire(srv)

    # ---------------------------------------------------------- latency
    def pingpong(self, ns: str, host: str, port: int) -> dict[str, Any]:
        return self.lab.run(
            ns,
            [*KERNEL, "pingpong", host, str(port), "--count", str(self.a.pings)],
            "kernel pingpong",
            120,
        )

    def latency_synack(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns,
            [*SYNACK, "echo-server", "--tun", self.tun(), "--port", str(port)],
            "synack echo-server",
        )
        try:
            srv.wait_for("READY", 20)
            return self.pingpong(self.ns, SYNACK_ADDR, port)
        finally:
            self.lab.retire(srv)

    def latency_kernel(self) -> dict[str, Any]:
        port = self.port()
        srv = self.lab.start(
            self.ns_b, [*KERNEL, "echo-server", "--port", str(port)], "kernel echo-server (veth)"
        )
        try:
            srv.wait_for("READY", 10)
            return self.pingpong(self.ns_a, VETH_B, port)
        finally:
            self.lab.retire(srv)

    # ----------------------------------------------------------- memory
    def memory(self, traced: bool) -> dict[str, Any]:
        port = self.port()
        n = self.a.conns
        argv = [
            *SYNACK,
            "idle-server",
            "--tun",
            self.tun(),
            "--port",
            str(port),
            "--expect",
            str(n),
            "--timeout",
            "150",
        ]
        if traced:
            argv.append("--tracemalloc")
        srv = self.lab.start(self.ns, argv, "synack idle-server")
        hold = None
        try:
            srv.wait_for("READY", 20)
            hold = self.lab.start(
                self.ns,
                [*KERNEL, "hold", SYNACK_ADDR, str(port), "--count", str(n), "--hold", "300"],
                "kernel hold",
            )
            res = srv.wait_for("RESULT", 180)
        finally:
            if hold is not None:
                self.lab.retire(hold)
            self.lab.retire(srv)
        return res


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(pid: int) -> tuple[float | None, int]:
    """User + system CPU seconds of ``pid`` and all its live descendants, with what
    each has collected from children it reaped (cutime, cstime: proc(5)), and how many
    live processes that was.  (None, 0) if ``pid`` is gone."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            stats[int(entry.name)] = fields
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    if pid not in stats:
        stats_pid = _proc_stat(pid)
        if stats_pid is None:
            return None, 0
        stats[pid] = stats_pid
    ticks = 0
    todo, seen = [pid], 0
    while todo:
        p = todo.pop()
        fields = stats.get(p)
        if fields is None:
            continue
        seen += 1
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        todo += parents.get(p, [])
    return ticks / os.sysconf("SC_CLK_TCK"), seen


def serve_has_workers() -> bool:
    """Whether ``synack serve`` takes ``--workers`` (multi-queue serving)."""
    import contextlib
    import io

    from synack.commands.main import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["serve", "http", "--workers", "2"])
    except SystemExit:
        return False
    return True


def spread(m: dict[str, Any], key: str, ref_key: str) -> str | None:
    """``min-max (median) of N rounds`` of key/ref ratios measured side by side."""
    rounds = m.get("_rounds", {})
    ratios = sorted(
        mbit(r) / mbit(v)  # type: ignore[operator]
        for r, v in zip(rounds.get(key, []), rounds.get(ref_key, []), strict=False)
        if mbit(r) and mbit(v)
    )
    if len(ratios) < 2:
        return None
    med = ratios[len(ratios) // 2]
    return f"ratio over {len(ratios)} rounds: {ratios[0]:.0%}-{ratios[-1]:.0%} (median {med:.0%})"


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s and the 50%/99% latencies (ms) from ``wrk --latency`` output."""
    import re

    out: dict[str, Any] = {"rate": None}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        out["rate"] = float(m.group(1))
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for q in ("50", "99"):
        m = re.search(rf"^\s*{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m:
            out[f"p{q}_ms"] = float(m.group(1)) * units[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    out["errors"] = errors
    return out


def parse_ab(text: str) -> dict[str, Any]:
    """Requests/s and the 50%/99% latencies (ms) from ``ab`` output."""
    import re

    out: dict[str, Any] = {"rate": None}
    m = re.search(r"Requests per second:\s*([\d.]+)", text)
    if m:
        out["rate"] = float(m.group(1))
    for q in ("50", "99"):
        m = re.search(rf"^\s*{q}%\s+(\d+)", text, re.M)
        if m:
            out[f"p{q}_ms"] = float(m.group(1))
    errors = 0
    for pat in (r"Failed requests:\s*(\d+)", r"Non-2xx responses:\s*(\d+)"):
        m = re.search(pat, text)
        if m:
            errors += int(m.group(1))
    out["errors"] = errors
    return out


def attempt(what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure becomes ``{"error": ...}`` for its row."""
    t0 = time.monotonic()
    try:
        res = fn()
    except AgentError as exc:
        log(f"{what}: FAILED: {exc}")
        return {"error": str(exc)}
    log(f"{what}: done in {time.monotonic() - t0:.1f} s")
    return res


def mbit(res: dict[str, Any]) -> float | None:
    if "error" in res or not res.get("seconds"):
        return None
    return float(res["bytes"]) * 8 / float(res["seconds"]) / 1e6


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several rounds (or the first error if all failed)."""
    ok = [r for r in results if mbit(r) is not None]
    if not ok:
        return results[0] if results else {"error": "not run"}
    return max(ok, key=lambda r: mbit(r) or 0.0)


def run_pytcp(timeout: float) -> dict[str, Any]:
    """PyTCP's figures from the other benchmark, as a subprocess; ``error`` if none."""
    if not PYTCP.exists():
        return {"error": f"{PYTCP.relative_to(ROOT)} does not exist"}
    try:
        # --setup: on a fresh machine (as root) build PyTCP's environment first
        # (scripts/install-pytcp-env.sh, about a minute); a built one is reused.
        res = subprocess.run(
            ["python3", str(PYTCP), "--json", "--setup"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"pytcp_bench.py did not finish within {timeout:.0f} s"}
    for line in reversed(res.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    try:
        data = json.loads(res.stdout)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-3:]
    return {
        "error": f"pytcp_bench.py exited {res.returncode} without a JSON object: "
        f"{' / '.join(tail) or 'no output'}"
    }


def _err(res: dict[str, Any]) -> str | None:
    if "error" in res:
        text = str(res["error"])
        return text if text.startswith("not available") else "failed (see notes)"
    return None


def paired(m: dict[str, Any], key: str, ref_key: str) -> tuple[float | None, float | None]:
    """``(value, reference)`` in Mbit/s from the one round where their ratio is best,
    so a row's two figures were measured side by side (the rounds are in
    ``m["_rounds"]``); without rounds, the best of each."""
    rounds = m.get("_rounds", {})
    best_pair: tuple[float | None, float | None] = (mbit(m[key]), mbit(m[ref_key]))
    best_ratio = -1.0
    for res, ref in zip(rounds.get(key, []), rounds.get(ref_key, []), strict=False):
        v, r = mbit(res), mbit(ref)
        if v is not None and r and v / r > best_ratio:
            best_ratio = v / r
            best_pair = (v, r)
    return best_pair


def build_rows(m: dict[str, Any], offload_ok: bool) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for key, res in m.items():
        if (
            key != "pytcp"
            and isinstance(res, dict)
            and "error" in res
            and not str(res["error"]).startswith("not available")
        ):
            notes.append(f"{key} failed: {res['error']}")
    for direction, prefix in (("kernel -> synack", "k2s"), ("synack -> kernel", "s2k")):
        for label, _mtu, offload in VARIANTS:
            res = m[f"{prefix}:{label}"]
            value, veth = paired(m, f"{prefix}:{label}", "veth")
            if offload:
                row = ratio_row(
                    f"bulk {direction}, TUN {label}",
                    value,
                    "Mbit/s",
                    "kernel -> kernel, veth",
                    veth,
                    min_ratio=0.5,
                    error=_err(res),
                )
                if (text := spread(m, f"{prefix}:{label}", "veth")) is not None:
                    row.notes.append(text)
                ready = res.get("ready") or {}
                if value is not None and not ready.get("offload"):
                    row.notes.append(
                        "offload=True was asked for but link.offload is False (plain TUN)"
                    )
            else:
                row = ratio_row(
                    f"bulk {direction}, TUN {label}",
                    value,
                    "Mbit/s",
                    "kernel -> kernel, veth",
                    veth,
                    error=_err(res),
                )
            rows.append(row)
    for key, what in (
        ("serve_discard", "`synack serve discard --offload`, kernel sendall -> synack"),
        ("serve_chargen", "`synack serve chargen --offload`, synack -> kernel recv_into"),
    ):
        value, veth = paired(m, key, "veth")
        row = ratio_row(
            what, value, "Mbit/s", "kernel -> kernel, veth", veth, min_ratio=0.5, error=_err(m[key])
        )
        res = m[key]
        if (text := spread(m, key, "veth")) is not None:
            row.notes.append(text)
        if res.get("cpu_seconds") and res.get("bytes"):
            row.notes.append(
                f"{res['cpu_seconds'] / (res['bytes'] / 1e9):.2f} CPU s per GB "
                f"in the command ({res.get('processes', 1)} processes)"
            )
        rows.append(row)
    if "discard2_w2" in m:
        value, one = paired(m, "discard2_w2", "discard2_w1")
        row = ratio_row(
            "bulk kernel -> `serve discard --offload --workers 2`, two parallel senders",
            value,
            "Mbit/s",
            "the same with `--workers 1`",
            one,
            min_ratio=1.6,
            ratio_as="x",
            error=_err(m["discard2_w2"]),
        )
        if (text := spread(m, "discard2_w2", "discard2_w1")) is not None:
            row.notes.append(text)
        for key in ("discard2_w1", "discard2_w2"):
            res = m[key]
            if res.get("cpu_seconds") and res.get("bytes"):
                row.notes.append(
                    f"{key[-2:]}: {res['cpu_seconds'] / (res['bytes'] / 1e9):.2f} "
                    f"CPU s per GB in the command ({res.get('processes', 1)} "
                    f"processes), per sender {res.get('per_sender_mbit')} Mbit/s"
                )
        rows.append(row)
    k2s_plain = mbit(m["k2s:MTU 1500, no offloads"])
    value, sink = paired(m, "k2s:MTU 1500, no offloads", "sink")
    rows.append(
        ratio_row(
            "bulk kernel -> synack, TUN MTU 1500, no offloads, vs sink",
            value,
            "Mbit/s",
            "bare Python TUN sink, no offloads",
            sink,
            min_ratio=0.6,
            error=_err(m["k2s:MTU 1500, no offloads"]),
        )
    )
    sink, veth = paired(m, "sink", "veth")
    rows.append(
        ratio_row(
            "bare Python TUN sink (kernel -> sink), no offloads",
            sink,
            "Mbit/s",
            "kernel -> kernel, veth",
            veth,
            error=_err(m["sink"]),
        )
    )
    sink_off, veth = paired(m, "sink_offload", "veth")
    rows.append(
        ratio_row(
            "bare Python TUN sink (kernel -> sink), offloads",
            sink_off,
            "Mbit/s",
            "kernel -> kernel, veth",
            veth,
            error=_err(m["sink_offload"]),
        )
    )
    veth = mbit(m["veth"])
    if "iperf3" in m:
        rows.append(
            ratio_row(
                "kernel -> kernel, veth, iperf3 (for scale)",
                mbit(m["iperf3"]),
                "Mbit/s",
                "Python sender/receiver",
                veth,
                error=_err(m["iperf3"]),
            )
        )
    # PyTCP, same setup: plain TUN, MTU 1500.
    py = m["pytcp"]
    py_err = f"not available: {py['error']}" if "error" in py else None
    s2k_plain = mbit(m["s2k:MTU 1500, no offloads"])
    for measure, value, key, need in (
        ("bulk kernel -> synack (MTU 1500, no offloads) vs PyTCP", k2s_plain, "rx_mbit", 30),
        ("bulk synack -> kernel (MTU 1500, no offloads) vs PyTCP", s2k_plain, "tx_mbit", 1000),
    ):
        ref = None if py_err else py.get(key)
        rows.append(
            ratio_row(
                measure,
                value,
                "Mbit/s",
                "PyTCP 3.0.9",
                ref,
                min_ratio=need,
                ratio_as="x",
                error=py_err,
            )
        )
    # Connections per second.
    kk = m["cps_k2k"].get("rate")
    for measure, key in (
        ("connections/s, kernel client -> synack server", "cps_k2s"),
        ("connections/s, synack client -> kernel server", "cps_s2k"),
    ):
        res = m[key]
        row = ratio_row(
            measure,
            res.get("rate"),
            "conn/s",
            "kernel -> kernel, veth",
            kk,
            min_value=10000,
            error=_err(res),
        )
        errors = res.get("errors")
        if errors:
            row.notes.append(f"{errors} failed connections (first: {res.get('first_error')})")
        rows.append(row)
    rows.append(
        ratio_row(
            "connections/s, kernel client -> synack server, vs PyTCP",
            m["cps_k2s"].get("rate"),
            "conn/s",
            "PyTCP 3.0.9",
            None if py_err else py.get("conn_per_s"),
            min_ratio=25,
            ratio_as="x",
            error=py_err or _err(m["cps_k2s"]),
        )
    )
    # HTTP connection rate with wrk and ab: a new connection per request.
    for key in sorted(k for k in m if k.startswith("http_kernel:")):
        tool = key.split(":")[1]
        ref = m[key]
        for workers in (1, 2):
            res = m.get(f"http_synack:{tool}:{workers}", {"error": "not run"})
            what = (
                f"HTTP requests/s, {tool}, new connection per request, GET {HTTP_ROUTE}, "
                f"`serve http --workers {workers}`"
            )
            row = ratio_row(
                what,
                res.get("rate"),
                "req/s",
                "kernel, asyncio + the same HttpService, veth",
                ref.get("rate"),
                min_ratio=0.5,
                error=_err(res) or _err(ref),
            )
            if res.get("cpu_seconds") is not None and "rate" in res:
                row.notes.append(
                    f"{res['cpu_seconds']:.1f} CPU s in the command "
                    f"({res.get('processes', 1)} processes: supervisor and "
                    f"workers)"
                )
            if "rate" in res and "rate" in ref:
                row.notes.append(
                    f"p50/p99 {res.get('p50_ms', '?')}/{res.get('p99_ms', '?')} ms against "
                    f"the kernel's {ref.get('p50_ms', '?')}/{ref.get('p99_ms', '?')} ms; "
                    f"load average {res.get('load', 0):.1f} / {ref.get('load', 0):.1f}; "
                    f"{res.get('errors', 0)} / {ref.get('errors', 0)} errors"
                )
            rows.append(row)
            if workers == 2:
                rows.append(
                    ratio_row(
                        f"  the same, absolute ({tool})",
                        res.get("rate"),
                        "req/s",
                        "—",
                        None,
                        min_value=10000,
                        error=_err(res),
                    )
                )
    # Latency: a ratio above 1 is slower; no target in the issue.
    lat_s, lat_k = m["lat_synack"], m["lat_kernel"]
    for q in ("p50", "p99"):
        rows.append(
            ratio_row(
                f"1-byte ping-pong round trip {q}, kernel <-> synack",
                lat_s.get(f"{q}_us"),
                "µs",
                "kernel <-> kernel, veth",
                lat_k.get(f"{q}_us"),
                ratio_as="x",
                error=_err(lat_s) or _err(lat_k),
            )
        )
    # Memory.
    mem_t, mem_r = m["mem_traced"], m["mem_rss"]
    n_t = mem_t.get("connections")
    rows.append(
        ratio_row(
            f"memory per idle connection, tracemalloc, minus buffers ({n_t or '?'} connections)",
            mem_t.get("traced_per_conn"),
            "B",
            "—",
            None,
            max_value=4096,
            error=_err(mem_t),
        )
    )
    if "synack_files_per_conn" in mem_t:
        rows.append(
            ratio_row(
                "  of which allocated in synack's own modules",
                mem_t.get("synack_files_per_conn"),
                "B",
                "—",
                None,
                error=_err(mem_t),
            )
        )
    rows.append(
        ratio_row(
            f"memory per idle connection, RSS delta "
            f"({mem_r.get('connections') or '?'} connections)",
            mem_r.get("rss_per_conn"),
            "B",
            "—",
            None,
            error=_err(mem_r),
        )
    )
    if mem_t.get("top"):
        top = ", ".join(
            f"{name} {size / max(1, n_t or 1):,.0f} B" for name, size in mem_t["top"][:5]
        )
        notes.append(f"tracemalloc per connection by file: {top}")
    for key in ("mem_traced", "mem_rss"):
        res = m[key]
        if res.get("connections") is not None and res.get("connections") < res.get("expected", 0):
            notes.append(f"{key}: only {res['connections']} of {res['expected']} connections")
    if not offload_ok:
        notes.append("offload rows: Host.tun has no offload= keyword in this tree yet")
    return rows, notes


def build_ipv6_rows(m: dict[str, Any], offload_ok: bool) -> tuple[list[Row], list[str]]:
    """IPv6 bulk with offloads (TSO6) against the same over IPv4 (the round with the
    best ratio, and the spread over rounds), the kernel's own IPv6/IPv4 ratio over
    veth in the same rounds, and the lossy IPv6 transfers."""
    rows: list[Row] = []
    notes: list[str] = []
    if not offload_ok:
        notes.append("IPv6 offload rows: Host.tun has no offload= keyword in this tree")
    if "veth6" in m and "veth" in m:
        # The kernel's own IPv6 cost: the same Python sockets over veth, both families.
        v6, v4 = paired(m, "veth6", "veth")
        row = ratio_row(
            "kernel -> kernel, veth, IPv6",
            v6,
            "Mbit/s",
            "the same over IPv4",
            v4,
            error=_err(m["veth6"]) or _err(m["veth"]),
        )
        if (text := spread(m, "veth6", "veth")) is not None:
            row.notes.append(text)
        rows.append(row)
    for direction, prefix in (("kernel -> synack", "k2s"), ("synack -> kernel", "s2k")):
        key6, key4 = f"{prefix}6:{IPV6_VARIANT}", f"{prefix}:{IPV6_VARIANT}"
        if key6 not in m:
            continue
        res = m[key6]
        if "error" in res:
            notes.append(f"{key6} failed: {res['error']}")
        v6, v4 = paired(m, key6, key4)
        row = ratio_row(
            f"bulk {direction}, TUN {IPV6_VARIANT}, IPv6 (TSO6)",
            v6,
            "Mbit/s",
            "the same over IPv4",
            v4,
            min_ratio=0.9,
            error=_err(res),
        )
        if (text := spread(m, key6, key4)) is not None:
            row.notes.append(text)
        per_round = [
            (mbit(x), mbit(y))
            for x, y in zip(m["_rounds"].get(key6, []), m["_rounds"].get(key4, []), strict=False)
        ]
        if len(per_round) > 1:
            row.notes.append(
                "rounds (IPv6/IPv4): "
                + ", ".join(
                    f"{v:.0f}/{r:.0f}" for v, r in per_round if v is not None and r is not None
                )
            )
        if not (res.get("ready") or {}).get("offload") and "error" not in res:
            row.notes.append("offload=True was asked for but link.offload is False")
        rows.append(row)
    for direction, prefix in (("kernel -> synack", "k2s"), ("synack -> kernel", "s2k")):
        res = m.get(f"loss6:{prefix}")
        if res is None:
            continue
        if "error" in res:
            notes.append(f"loss6:{prefix} failed: {res['error']}")
            rows.append(Row(f"{direction} over IPv6, lossy", "failed (see notes)", "—"))
            continue
        mb = res["bytes"] / 1e6
        row = ratio_row(
            f"{mb:.0f} MB {direction} over IPv6, 1% loss each way, intact",
            mbit(res),
            "Mbit/s",
            "—",
            None,
        )
        row.target, row.met = "every byte, in order", bool(res.get("intact"))
        row.notes.append(f"{res['seconds']:.1f} s, first byte to FIN")
        drops = (res.get("counters") or {}).get("link", {})
        lost = {k: v for k, v in drops.items() if "lost" in k or "loss" in k}
        if lost:
            row.notes.append("impairment: " + ", ".join(f"{k} {v}" for k, v in lost.items()))
        rows.append(row)
    return rows, notes


def measure(lab: Lab, a: argparse.Namespace) -> dict[str, Any]:
    b = Bench(lab, a)
    offload_ok = offload_available()
    m: dict[str, Any] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}
    ipv6_only = a.only == "ipv6"
    for r in range(a.reps):
        log(f"bulk round {r + 1}/{a.reps}, {a.seconds:g} s per transfer")
        plan: list[tuple[str, Callable[[], dict[str, Any]]]] = (
            [("veth", b.veth), ("veth6", lambda: b.veth(ipv6=True))]
            if ipv6_only
            else [
                ("veth", b.veth),
                ("sink", lambda: b.k2tun(SINK, "tun_sink", 1500, False)),
                ("sink_offload", lambda: b.k2tun(SINK, "tun_sink --offload", 1500, True)),
            ]
        )
        if not ipv6_only:
            plan += [
                ("serve_discard", lambda: b.serve_discard(True)),
                ("serve_chargen", lambda: b.serve_chargen(True)),
            ]
            if offload_ok and serve_has_workers():
                plan += [
                    ("discard2_w1", lambda: b.serve_discard(True, workers=1, senders=2)),
                    ("discard2_w2", lambda: b.serve_discard(True, workers=2, senders=2)),
                ]
        for label, mtu, offload in VARIANTS:
            if offload and not offload_ok:
                continue
            if ipv6_only and label != IPV6_VARIANT:
                continue
            plan.append(
                (
                    f"k2s:{label}",
                    lambda mtu=mtu, offload=offload: b.k2tun(
                        [*SYNACK, "bulk-recv"], "synack bulk-recv", mtu, offload
                    ),
                )
            )
            plan.append(
                (f"s2k:{label}", lambda mtu=mtu, offload=offload: b.synack_to_kernel(mtu, offload))
            )
            if label == IPV6_VARIANT and not ipv6_only:
                plan.append(("veth6", lambda: b.veth(ipv6=True)))
            if label == IPV6_VARIANT:  # the same over IPv6 (TSO6), right after IPv4
                plan.append(
                    (
                        f"k2s6:{label}",
                        lambda: b.k2tun(
                            [*SYNACK, "bulk-recv"], "synack bulk-recv (IPv6)", 1500, True, ipv6=True
                        ),
                    )
                )
                plan.append((f"s2k6:{label}", lambda: b.synack_to_kernel(1500, True, ipv6=True)))
        for key, fn in plan:
            res = attempt(key, fn)
            rounds.setdefault(key, []).append(res)
            if mbit(res) is not None:
                log(f"  {key}: {fmt(mbit(res), 'Mbit/s')}")
    for key, results in rounds.items():
        m[key] = best(results)
    m["_rounds"] = rounds
    if a.loss_bytes:
        for direction in ("k2s", "s2k"):
            log(f"{a.loss_bytes / 1e6:g} MB {direction} over IPv6, {a.loss:.0%} loss each way")
            res = attempt(f"loss6:{direction}", lambda d=direction: b.lossy6(d))
            if mbit(res) is not None:
                log(f"  {mbit(res):.1f} Mbit/s, intact: {res.get('intact')}")
            m[f"loss6:{direction}"] = res
    if ipv6_only:
        m["_offload_ok"] = offload_ok
        return m
    for _label, _mtu, offload in VARIANTS:
        if offload and not offload_ok:
            for prefix in ("k2s", "s2k"):
                m[f"{prefix}:{_label}"] = {
                    "error": "not available yet (Host.tun has no offload= keyword)"
                }
    if shutil.which("iperf3"):
        m["iperf3"] = attempt("iperf3", b.iperf3)
    for key, fn in (
        ("cps_k2k", b.cps_kernel_to_kernel),
        ("cps_k2s", b.cps_kernel_to_synack),
        ("cps_s2k", b.cps_synack_to_kernel),
        ("lat_kernel", b.latency_kernel),
        ("lat_synack", b.latency_synack),
        ("mem_traced", lambda: b.memory(True)),
        ("mem_rss", lambda: b.memory(False)),
    ):
        res = attempt(key, fn)
        if "rate" in res:
            log(f"  {key}: {fmt(res['rate'], 'conn/s')} ({res.get('errors', 0)} errors)")
        if key.startswith("mem") and "error" not in res:
            res["expected"] = a.conns
        m[key] = res
    tools = [t for t in ("wrk", "ab") if shutil.which(t)]
    for tool in tools:
        m[f"http_kernel:{tool}"] = attempt(
            f"{tool} -> kernel asyncio HttpService", lambda tool=tool: b.http_kernel(tool)
        )
        for workers in (1, 2):
            m[f"http_synack:{tool}:{workers}"] = attempt(
                f"{tool} -> synack serve http --workers {workers}",
                lambda tool=tool, workers=workers: b.http_synack(tool, workers),
            )
    if not tools:
        m["http_kernel:wrk"] = {"error": "no wrk or ab: sh scripts/install-bench-deps.sh"}
    m["_offload_ok"] = offload_ok
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--seconds", type=float, help="seconds per transfer / rate test")
    p.add_argument("--reps", type=int, help="rounds of bulk transfers (best is kept)")
    p.add_argument("--conns", type=int, help="idle connections for the memory figure")
    p.add_argument("--pings", type=int, help="ping-pong round trips")
    p.add_argument("--clients", type=int, default=2, help="kernel client processes (cps)")
    p.add_argument("--threads", type=int, default=8, help="threads per kernel client")
    p.add_argument(
        "--http-conns",
        type=int,
        default=32,
        help="concurrent connections of wrk and ab (HTTP connection rate)",
    )
    p.add_argument("--no-pytcp", action="store_true", help="do not run pytcp_bench.py")
    p.add_argument("--pytcp-timeout", type=float, default=300.0)
    p.add_argument("--raw", type=Path, help="also write every raw measurement as JSON here")
    p.add_argument(
        "--only",
        choices=("all", "ipv6"),
        default="all",
        help="ipv6: only the IPv6 rows (bulk with offloads both ways against the "
        "same over IPv4, and the lossy IPv6 transfers)",
    )
    p.add_argument(
        "--loss-bytes",
        type=float,
        default=None,
        help="bytes of each lossy IPv6 transfer (default 200e6, --quick 20e6; 0: none)",
    )
    p.add_argument(
        "--loss",
        type=float,
        default=0.01,
        help="packet loss each way on the lossy transfers (default 0.01)",
    )
    a = p.parse_args(argv)
    a.seconds = a.seconds or (1.0 if a.quick else 3.0)
    a.reps = a.reps or (1 if a.quick else 2)
    a.conns = a.conns or (1000 if a.quick else 10000)
    a.pings = a.pings or (1000 if a.quick else 5000)
    a.loss_bytes = int(a.loss_bytes if a.loss_bytes is not None else 20e6 if a.quick else 200e6)

    reason = skip_reason()
    if reason is not None:
        print(f"bench_net: skipping the network benchmarks: {reason}")
        return 0

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    t0 = time.monotonic()
    try:
        with Lab() as lab:
            m = measure(lab, a)
    except KeyboardInterrupt:
        log("interrupted: namespaces and processes removed")
        return 130
    if a.no_pytcp:
        m["pytcp"] = {"error": "skipped (--no-pytcp)"}
    else:
        log("PyTCP: python3 benchmarks/pytcp_bench.py --json")
        m["pytcp"] = run_pytcp(a.pytcp_timeout)
    if a.raw is not None:
        a.raw.write_text(json.dumps(m, indent=1, default=str))
    if a.only == "ipv6":
        rows, notes = build_ipv6_rows(m, m["_offload_ok"])
    else:
        rows, notes = build_rows(m, m["_offload_ok"])
        ipv6_rows, ipv6_notes = build_ipv6_rows(m, m["_offload_ok"])
        rows += ipv6_rows
        notes += ipv6_notes
    cmd = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else "python benchmarks/bench_net.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    notes = [
        f"Bulk: {a.seconds:g} s per transfer, {a.reps} round(s); each bulk row shows "
        f"the round with its best ratio, both figures from that round; kernel ends are Python "
        f"sockets (1 MiB sendall/recv_into) in their own processes; rates measured at the "
        f"receiver, first byte to FIN. Connection rate: {a.clients} kernel client "
        f"processes x {a.threads} threads (or {a.clients * a.threads} synack tasks) for "
        f"{a.seconds:g} s; the kernel server is asyncio streams. Ping-pong: "
        f"{a.pings} round trips, TCP_NODELAY, asyncio echo server.",
        *notes,
        f"Wall time of the network part: {time.monotonic() - t0:.0f} s.",
    ]
    text = render(rows, command=cmd.strip(), notes=notes)
    print(text)
    if a.write:
        write_section(DOC, text)
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
