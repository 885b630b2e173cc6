"""Goodput through a real impaired path: synack CUBIC and NewReno against Linux CUBIC.

Run by ``make bench-impair`` (as root; not part of ``make test`` or ``make bench``).
It uses the shared impairment tools (``../shared/tools/impair`` beside the
checkout, or ``--impair-dir``): ``netns.sh up`` makes the namespaces impA and
impB, and for every measurement ``bridge.py`` joins them through a userspace
path with, per direction, a rate limiter with a drop-tail queue, a fixed delay
and, on the data direction (impB -> impA), random loss:

    a2b (ACKs):  rate=100mbit,queue=<1 BDP>,delay=25ms
    b2a (data):  rate=100mbit,queue=<1 BDP>,delay=25ms,loss=X%

The sender sits in impB, the receiver (``bulk.py recv-for``, a kernel socket)
in impA and reads for ``--seconds``; goodput is what it read over that time.
Senders, one after the other through the same path:

- Linux CUBIC: ``bulk.py serve-source`` with CC=cubic (TCP_CONGESTION);
- synack CUBIC: ``synack serve chargen --tun tunS ... --cc cubic``;
- synack NewReno: the same with ``--cc newreno``.

With ``--bbr`` the senders are Linux BBR (CC=bbr) and synack BBR (``--cc bbr``,
paced), the target 0.9x Linux BBR, and the table goes between the ``impair-bbr``
markers.

The bridge is restarted for every transfer with the same seed for the three
senders (repetition r uses seed ``--seed + r``), so they meet the same loss
draws.  Each figure is the median of ``--reps`` transfers.  Prints a Markdown
table; ``--write`` puts it into docs/benchmarks.md between the ``impair``
markers.  The namespaces are deleted and the processes started here are
ended by PID on success, error and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from netbench.report import fmt, machine, write_section  # noqa: E402

PY = sys.executable
DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_IMPAIR_DIR = ROOT.parent / "shared" / "tools" / "impair"

BBR_START = "<!-- impair-bbr:start -->"
BBR_END = "<!-- impair-bbr:end -->"
BBR_HEADING = "## Goodput through an impaired path: synack BBR against Linux BBR"
BBR_TARGET = 0.9
START = "<!-- impair:start -->"
END = "<!-- impair:end -->"
HEADING = (
    "## Goodput through an impaired path: synack against Linux CUBIC (`make bench-impair`, as root)"
)

RATE_MBIT = 100.0
RTT_MS = 50.0
#: Loss on the data direction, in percent, for the full and the quick run.
LOSSES = (0.0, 0.1, 1.0, 5.0)
QUICK_LOSSES = (0.0, 1.0)
TARGET = 1.0

LINUX_ADDR, LINUX_PORT = "10.90.1.1", 5001
SYNACK_ADDR, SYNACK_PORT = "10.90.2.2", 19
SYNACK_KERNEL_IP = "10.90.2.1/24"
SYNACK_TUN = "tunS"
NBYTES = 100_000_000_000  # more than any run sends: the receiver ends the transfer


@dataclass(frozen=True)
class Sender:
    key: str
    label: str
    cc: str
    linux: bool


SENDERS = (
    Sender("linux", "Linux CUBIC", "cubic", True),
    Sender("cubic", "synack CUBIC", "cubic", False),
    Sender("newreno", "synack NewReno", "newreno", False),
)
BBR_SENDERS = (
    Sender("linux-bbr", "Linux BBR", "bbr", True),
    Sender("bbr", "synack BBR", "bbr", False),
)


@dataclass
class Run:
    """One transfer: goodput at the receiver, and what the sender and bridge counted."""

    mbit: float | None
    seconds: float = 0.0
    nbytes: int = 0
    retrans: int | None = None
    timeouts: int | None = None
    bridge_cpu: float | None = None  # bridge CPU seconds per wall second
    lost: int | None = None
    qdrop: int | None = None
    cc_seen: str | None = None
    error: str | None = None


@dataclass
class Cell:
    loss: float
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, key: str, attr: str = "mbit") -> float | None:
        vals = [getattr(r, attr) for r in self.runs.get(key, []) if getattr(r, attr) is not None]
        return statistics.median(vals) if vals else None

    def paired_ratio(self, key: str, ref: str) -> float | None:
        """Median over repetitions of ``key``'s goodput over ``ref``'s in the same
        repetition: both met the same seed, so the same loss draws (a ratio of the two
        medians compares different repetitions when their order differs)."""
        vals = [
            a.mbit / b.mbit
            for a, b in zip(self.runs.get(key, []), self.runs.get(ref, []), strict=False)
            if a.mbit is not None and b.mbit
        ]
        return statistics.median(vals) if vals else None


# ---------------------------------------------------------------- pure helpers


def bdp_bytes(rate_mbit: float = RATE_MBIT, rtt_ms: float = RTT_MS) -> int:
    """One bandwidth-delay product in bytes: 100 Mbit/s x 50 ms / 8 = 625000."""
    return round(rate_mbit * 1e6 * rtt_ms / 1e3 / 8)


def loss_text(loss: float) -> str:
    """0.1 -> ``"0.1%"``, 1.0 -> ``"1%"``."""
    return f"{loss:g}%"


def cell_specs(
    loss: float, rate_mbit: float = RATE_MBIT, rtt_ms: float = RTT_MS
) -> tuple[str, str]:
    """The bridge's ``--a2b`` (ACK direction) and ``--b2a`` (data direction) specs."""
    base = f"rate={rate_mbit:g}mbit,queue={bdp_bytes(rate_mbit, rtt_ms)},delay={rtt_ms / 2:g}ms"
    return base, base + (f",loss={loss_text(loss)}" if loss else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument(
        "--quick",
        action="store_true",
        help="short run: 1 repetition of 8 s, loss "
        + ", ".join(map(loss_text, QUICK_LOSSES)).replace("%", "%%"),
    )
    p.add_argument("--reps", type=int, help="transfers per sender and cell (median; default 3)")
    p.add_argument("--seconds", type=float, help="seconds per transfer (default 20)")
    p.add_argument(
        "--loss",
        type=float,
        action="append",
        metavar="PCT",
        help="loss on the data direction in percent (repeatable; default 0 0.1 1 5)",
    )
    p.add_argument("--seed", type=int, default=7, help="bridge seed of the first repetition")
    p.add_argument(
        "--impair-dir",
        type=Path,
        default=DEFAULT_IMPAIR_DIR,
        help="the shared impairment tools (default: ../shared/tools/impair beside the checkout)",
    )
    p.add_argument(
        "--bbr",
        action="store_true",
        help="synack BBR against Linux BBR (its own table and docs section)",
    )
    p.add_argument("--logs", type=Path, help="keep every process's output in this directory")
    p.add_argument(
        "--trace-dir",
        type=Path,
        help="write synack's trace (JSON lines) of every synack transfer here, "
        "as <cc>-loss<pct>-rep<n>.jsonl (costs synack some CPU)",
    )
    a = p.parse_args(argv)
    a.reps = a.reps or (1 if a.quick else 3)
    a.seconds = a.seconds or (8.0 if a.quick else 20.0)
    a.loss = a.loss or list(QUICK_LOSSES if a.quick else LOSSES)
    if a.reps < 1 or a.seconds <= 0:
        p.error("--reps and --seconds must be positive")
    return a


def fmt_ratio(value: float | None, ref: float | None) -> str:
    """Three decimals, so a ratio just under the target does not print as 1.00x."""
    return f"{value / ref:.3f}x" if value is not None and ref else "—"


def met(value: float | None, ref: float | None) -> str:
    if value is None or not ref:
        return "—"
    return "**yes**" if value / ref >= TARGET else "**no**"


def _count(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.3f}x"


def render(
    cells: Sequence[Cell],
    *,
    command: str,
    seconds: float,
    reps: int,
    notes: Sequence[str] = (),
    host: str | None = None,
    when: str | None = None,
) -> str:
    """The Markdown that goes between the markers (and is printed)."""
    when = when or time.strftime("%Y-%m-%d")
    lines = [
        f"Machine: {host or machine()}, {when}. Command: `{command}`.",
        "",
        f"Path: {RATE_MBIT:g} Mbit/s both ways, {RTT_MS:g} ms RTT, drop-tail queue of one "
        f"BDP ({bdp_bytes():,} bytes) per direction, random loss on the data direction; "
        f"goodput at the receiver over {seconds:g} s, median of {reps}.",
        "",
        "Ratio: of the medians; per seed: the median of the repetitions' ratios, each "
        "repetition's senders having met the same seed (the same loss draws).",
        "",
        "| loss | Linux CUBIC | synack CUBIC | ratio | per seed | ≥ 1.0x | synack NewReno "
        "| ratio | per seed | ≥ 1.0x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lin_key = SENDERS[0].key
    for c in cells:
        lin, cub, nr = (c.median(s.key) for s in SENDERS)
        pc, pn = (c.paired_ratio(s.key, lin_key) for s in SENDERS[1:3])
        lines.append(
            " | ".join(
                [
                    "| " + loss_text(c.loss),
                    fmt(lin, "Mbit/s"),
                    fmt(cub, "Mbit/s"),
                    fmt_ratio(cub, lin),
                    _x(pc),
                    met(cub, lin),
                    fmt(nr, "Mbit/s"),
                    fmt_ratio(nr, lin),
                    _x(pn),
                    met(nr, lin),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "Medians per transfer: retransmitted segments / retransmission timeouts "
        "(Linux: the namespace's RetransSegs and TCPTimeouts; synack: its summary), "
        "and the bridge's CPU time per second of its run (the most of any transfer).",
        "",
        "| loss | Linux CUBIC | synack CUBIC | synack NewReno | bridge CPU |",
        "|---|---|---|---|---|",
    ]
    for c in cells:
        row = ["| " + loss_text(c.loss)]
        for s in SENDERS:
            row.append(
                f"{_count(c.median(s.key, 'retrans'))} / {_count(c.median(s.key, 'timeouts'))}"
            )
        cpus = [r.bridge_cpu for rs in c.runs.values() for r in rs if r.bridge_cpu is not None]
        row.append(f"{max(cpus) * 100:.0f}%" if cpus else "—")
        lines.append(" | ".join(row) + " |")
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def render_bbr(
    cells: Sequence[Cell],
    *,
    command: str,
    seconds: float,
    reps: int,
    notes: Sequence[str] = (),
    host: str | None = None,
    when: str | None = None,
) -> str:
    """The ``--bbr`` table: synack BBR against Linux BBR, target 0.9x."""
    when = when or time.strftime("%Y-%m-%d")
    lines = [
        f"Machine: {host or machine()}, {when}. Command: `{command}`.",
        "",
        f"Path: {RATE_MBIT:g} Mbit/s both ways, {RTT_MS:g} ms RTT, drop-tail queue of one "
        f"BDP ({bdp_bytes():,} bytes) per direction, random loss on the data direction; "
        f"goodput at the receiver over {seconds:g} s, median of {reps}.",
        "",
        f"| loss | Linux BBR | synack BBR | ratio | ≥ {BBR_TARGET:g}x | retrans / RTOs "
        "Linux | retrans / RTOs synack |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lin, ours = (c.median(s.key) for s in BBR_SENDERS)
        ok = (
            "—"
            if lin is None or ours is None or not lin
            else ("**yes**" if ours / lin >= BBR_TARGET else "**no**")
        )
        counts = [
            f"{_count(c.median(s.key, 'retrans'))} / {_count(c.median(s.key, 'timeouts'))}"
            for s in BBR_SENDERS
        ]
        lines.append(
            " | ".join(
                [
                    "| " + loss_text(c.loss),
                    fmt(lin, "Mbit/s"),
                    fmt(ours, "Mbit/s"),
                    fmt_ratio(ours, lin),
                    ok,
                    *counts,
                ]
            )
            + " |"
        )
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def parse_recv(text: str) -> tuple[float, int]:
    """``bulk.py recv-for`` prints ``seconds bytes``."""
    secs, nbytes = text.split()[-2:]
    return float(secs), int(nbytes)


def parse_synack_summary(text: str) -> tuple[int | None, int | None]:
    """(retransmissions, timeouts) from ``synack serve``'s summary, plain or rich."""
    m = re.search(r"retransmissions\W+(\d+)\W+timeouts\s+(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def parse_kernel_counters(snmp: str, netstat: str) -> dict[str, int]:
    """RetransSegs (Tcp, /proc/net/snmp) and TCPTimeouts (TcpExt, /proc/net/netstat)."""
    out: dict[str, int] = {}
    for text, prefix, keys in (
        (snmp, "Tcp:", ("RetransSegs",)),
        (netstat, "TcpExt:", ("TCPTimeouts",)),
    ):
        rows = [ln.split()[1:] for ln in text.splitlines() if ln.startswith(prefix)]
        if len(rows) >= 2:
            table = dict(zip(rows[0], rows[1], strict=True))
            for k in keys:
                if k in table:
                    out[k] = int(table[k])
    return out


# ---------------------------------------------------------------- processes


class Lab:
    """The namespaces (via netns.sh) and every process started here, ended by PID."""

    def __init__(self, impair: Path, logdir: Path) -> None:
        self.impair = impair
        self.logdir = logdir
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.paths: dict[int, Path] = {}  # PID -> its output
        self.up = False
        self.n = 0

    def __enter__(self) -> Lab:
        subprocess.run([str(self.impair / "netns.sh"), "up"], check=True)
        self.up = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc, _ in list(self.procs):
            self.stop(proc, timeout=2.0)
        if self.up:
            subprocess.run([str(self.impair / "netns.sh"), "down"], check=False)
            self.up = False

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.n += 1
        log = (self.logdir / f"{self.n:03d}-{name}.log").open("wb")
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.paths[proc.pid] = Path(log.name)
        self.procs.append((proc, log))
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self.paths[proc.pid].read_text(errors="replace")

    def wait_for(self, proc: subprocess.Popen[bytes], text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output(proc):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.paths[proc.pid].name} did not print {text!r}: {self.output(proc)[-800:]}"
        )

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """SIGTERM to this PID, then SIGKILL; forget it."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        for i, (p, log) in enumerate(self.procs):
            if p is proc:
                log.close()
                del self.procs[i]
                break

    @staticmethod
    def ns_read(ns: str, path: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns, "cat", path], capture_output=True, text=True, check=True
        ).stdout

    def kernel_counters(self) -> dict[str, int]:
        return parse_kernel_counters(
            self.ns_read("impB", "/proc/net/snmp"), self.ns_read("impB", "/proc/net/netstat")
        )


def linux_snd_buf_max() -> int:
    """The most send buffer Linux's autotuning gives the kernel sender (tcp_wmem's
    maximum, tcp_sndbuf_expand): synack gets the same, as its send buffer is fixed.
    With less than ~2 BDP a lost segment stalls the sender until it is repaired (the
    SACKed data behind it stays in the buffer), which at 1 MiB capped synack at a
    fraction of the path under random loss."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


def synack_env() -> dict[str, str]:
    """This checkout's sources first, so the synack measured is the one beside the script."""
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_once(
    lab: Lab, sender: Sender, loss: float, seed: int, seconds: float, trace: Path | None = None
) -> Run:
    a2b, b2a = cell_specs(loss)
    bulk = str(lab.impair / "bulk.py")
    bridge = lab.start(
        "bridge",
        [PY, str(lab.impair / "bridge.py"), "--a2b", a2b, "--b2a", b2a, "--seed", str(seed)],
    )
    before: dict[str, int] = {}
    server = None
    run = Run(None)
    try:
        lab.wait_for(bridge, "READY", 15)
        if sender.linux:
            before = lab.kernel_counters()
            server = lab.start(
                "linux",
                [
                    "ip",
                    "netns",
                    "exec",
                    "impB",
                    "env",
                    f"CC={sender.cc}",
                    PY,
                    bulk,
                    "serve-source",
                    str(LINUX_PORT),
                    str(NBYTES),
                ],
            )
            lab.wait_for(server, "ready", 15)
            addr, port_ = LINUX_ADDR, LINUX_PORT
        else:
            server = lab.start(
                f"synack-{sender.cc}",
                [
                    "ip",
                    "netns",
                    "exec",
                    "impB",
                    PY,
                    "-m",
                    "synack",
                    "serve",
                    "chargen",
                    "--tun",
                    SYNACK_TUN,
                    "--ip",
                    SYNACK_ADDR,
                    "--kernel-ip",
                    SYNACK_KERNEL_IP,
                    "--port",
                    str(SYNACK_PORT),
                    "--bytes",
                    str(NBYTES),
                    "--cc",
                    sender.cc,
                    "--grace",
                    "1",
                    "--snd-buf",
                    str(linux_snd_buf_max()),
                    *(["--trace", str(trace)] if trace else []),
                ],
                env=synack_env(),
            )
            lab.wait_for(server, "listening on", 30)
            addr, port_ = SYNACK_ADDR, SYNACK_PORT
        recv = lab.start(
            "recv",
            ["ip", "netns", "exec", "impA", PY, bulk, "recv-for", addr, str(port_), f"{seconds:g}"],
        )
        if sender.linux:  # which algorithm the socket really runs, half way through
            time.sleep(seconds / 2)
            ss = subprocess.run(
                ["ip", "netns", "exec", "impB", "ss", "-tin", "state", "established"],
                capture_output=True,
                text=True,
            ).stdout
            run.cc_seen = next(
                (w for w in ("cubic", "bbr", "reno") if f" {w} " in ss or f"\t{w} " in ss), None
            )
        try:
            recv.wait(seconds + 60)
        except subprocess.TimeoutExpired:
            raise RuntimeError("the receiver did not finish") from None
        run.seconds, run.nbytes = parse_recv(lab.output(recv))
        run.mbit = run.nbytes * 8 / run.seconds / 1e6
        lab.stop(recv)
        time.sleep(0.2)
        lab.stop(server, timeout=15)
        if sender.linux:
            after = lab.kernel_counters()
            run.retrans = after.get("RetransSegs", 0) - before.get("RetransSegs", 0)
            run.timeouts = after.get("TCPTimeouts", 0) - before.get("TCPTimeouts", 0)
        else:
            run.retrans, run.timeouts = parse_synack_summary(lab.output(server))
    finally:
        if server is not None:
            lab.stop(server)
        lab.stop(bridge)
        stats = _bridge_stats(lab.output(bridge))
        if stats:
            run.bridge_cpu = stats["cpu_s"] / max(stats["elapsed_s"], 1e-9)
            run.lost = stats["b2a"]["lost"]
            run.qdrop = stats["b2a"]["qdrop"]
    return run


def _bridge_stats(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def log(msg: str) -> None:
    print(f"bench_impair: {msg}", file=sys.stderr, flush=True)


def check_env(a: argparse.Namespace) -> str | None:
    """Why this cannot run here, or None."""
    if os.geteuid() != 0:
        return (
            "needs root (network namespaces, TUN devices): run "
            "`sudo make bench-impair` or `sudo .venv/bin/python benchmarks/bench_impair.py`"
        )
    for f in ("bridge.py", "bulk.py", "netns.sh"):
        if not (a.impair_dir / f).is_file():
            return (
                f"{a.impair_dir / f} not found: pass --impair-dir DIR (the shared "
                f"tools/impair folder)"
            )
    have = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    if "impA" in have or "impB" in have:
        return "namespaces impA/impB exist already (another run?): `netns.sh down` first"
    return None


def measure(lab: Lab, a: argparse.Namespace, senders: Sequence[Sender] = SENDERS) -> list[Cell]:
    cells = []
    for loss in a.loss:
        cell = Cell(loss)
        cells.append(cell)
        for rep in range(a.reps):
            for s in senders:
                trace = None
                if a.trace_dir is not None and not s.linux:
                    a.trace_dir.mkdir(parents=True, exist_ok=True)
                    trace = (
                        a.trace_dir / f"{s.cc}-loss{loss_text(loss).rstrip('%')}-rep{rep + 1}.jsonl"
                    ).resolve()
                run = run_once(lab, s, loss, a.seed + rep, a.seconds, trace)
                cell.runs.setdefault(s.key, []).append(run)
                extra = f", cc {run.cc_seen}" if s.linux else ""
                log(
                    f"loss {loss_text(loss)} rep {rep + 1}/{a.reps} {s.label}: "
                    f"{fmt(run.mbit, 'Mbit/s')}, retrans {run.retrans}, RTOs {run.timeouts}, "
                    f"bridge lost {run.lost} qdrop {run.qdrop} cpu "
                    f"{(run.bridge_cpu or 0) * 100:.0f}%{extra}"
                )
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    a.impair_dir = a.impair_dir.resolve()
    reason = check_env(a)
    if reason is not None:
        print(f"bench_impair: {reason}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a background job may have inherited it ignored
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-impair-") as tmp:
        logdir = a.logs or Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        try:
            with Lab(a.impair_dir, logdir) as lab:
                cells = measure(lab, a, BBR_SENDERS if a.bbr else SENDERS)
        except KeyboardInterrupt:
            log("interrupted: namespaces and processes removed")
            return 130
    cmd = (
        "make bench-impair"
        if os.environ.get("MAKELEVEL")
        else "python benchmarks/bench_impair.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    if a.bbr:
        return _finish_bbr(a, cells, cmd.strip(), t0)
    seen = {r.cc_seen for c in cells for r in c.runs.get("linux", [])}
    notes = [
        f"The bridge (`{a.impair_dir.name}/bridge.py`, restarted per transfer) uses seed "
        f"{a.seed} + repetition for all three senders, so they meet the same loss draws. "
        "Linux sends from `bulk.py serve-source` with CC=cubic "
        f"(seen on the socket: {', '.join(sorted(str(s) for s in seen))}); synack from "
        "`synack serve chargen --cc cubic|newreno` on a TUN in impB; both defaults "
        "otherwise (SACK, timestamps, window scaling).",
        f"Wall time: {time.monotonic() - t0:.0f} s.",
    ]
    text = render(cells, command=cmd.strip(), seconds=a.seconds, reps=a.reps, notes=notes)
    print(text)
    if a.write:
        write_section(DOC, text, start=START, end=END, heading=HEADING)
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


def _finish_bbr(a: argparse.Namespace, cells: Sequence[Cell], cmd: str, t0: float) -> int:
    seen = {r.cc_seen for c in cells for r in c.runs.get("linux-bbr", [])}
    notes = [
        f"The bridge (`{a.impair_dir.name}/bridge.py`, restarted per transfer) uses seed "
        f"{a.seed} + repetition for both senders, so they meet the same loss draws. "
        "Linux sends from `bulk.py serve-source` with CC=bbr (seen on the socket: "
        f"{', '.join(sorted(str(s) for s in seen))}; the kernel's tcp_bbr.c); synack "
        "from `synack serve chargen --cc bbr` (draft-ietf-ccwg-bbr, paced) on a TUN in "
        f"impB, with `--snd-buf {linux_snd_buf_max()}`: the send buffer Linux's "
        "autotuning may give its own sender (tcp_wmem's maximum).",
        f"Wall time: {time.monotonic() - t0:.0f} s; load average "
        f"{os.getloadavg()[0]:.1f} at the end (2 cores, shared with other sessions).",
    ]
    text = render_bbr(cells, command=cmd, seconds=a.seconds, reps=a.reps, notes=notes)
    print(text)
    if a.write:
        write_section(DOC, text, start=BBR_START, end=BBR_END, heading=BBR_HEADING)
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
