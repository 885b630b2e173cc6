"""Differential fuzzing of synack ``--profile linux`` against the live Linux kernel (issue 14).

hypothesis generates short packetdrill scripts from a small grammar: a passive
open (with a random subset of SYN options), the accepted socket made
non-blocking, then a few random steps -- inbound segments (in window, a hole
ahead, old, overlapping, far beyond the window; flags, payload, ACK values,
windows, TS and SACK options) and system calls (write, read, shutdown, close,
TCP_NODELAY, TCP_CORK) -- and a last call some time later.  Every call's
result is ``...`` (recorded, not checked) and there are no ``>`` lines after
the SYN-ACK, so each script runs to its end on both targets; the runner
records what each target sent (``RunOptions.record``).

The two recordings are compared packet by packet in script terms (the
runner maps sequence numbers through the ISN and TS vals through the script
clock, so ISN and TSval are normalised): flags, seq, ack, length, window and
options with the TS val left out must be equal, and the times must agree
within the kernel target's tolerance (25 ms, or 12.5 % of the time since the
start).  The calls' results must be equal too.

A difference is classified by a signature (which field of which packet, or
which call), and the first script showing each signature is shrunk (steps
removed one at a time while the same signature remains) and saved under
``tests/packetdrill_linux/diff/`` as a regression script: the generated lines plus
the kernel's packets as ``>`` lines, so it fails on synack until the
difference is fixed or listed as an accepted departure.

Progress (scripts run, differences per signature) is kept in
``tests/packetdrill_linux/diff/progress.json``, so a run can stop and resume:

    python benchmarks/difftest.py --scripts 2000          # make difftest (root)
    python benchmarks/difftest.py --scripts 20 --fresh    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synack.packetdrill.kernel import (  # noqa: E402
    KERNEL_TOLERANCE_USECS,
    kernel_problem,
    run_script_kernel,
)
from synack.packetdrill.runner import RunOptions, RunResult, run_script  # noqa: E402

DIFF_DIR = ROOT / "tests" / "packetdrill_linux" / "diff"
PROGRESS = DIFF_DIR / "progress.json"
BATCH = 50
SHRINK_ATTEMPTS = 40

# ------------------------------------------------------------------------ the grammar
DTS = (0.0, 0.0, 0.01, 0.05, 0.2)
FLAGS = (".", ".", ".", "P.", "P.", "F.", "FP.", "R.", "R", "S", "S.", "")
WHERE = ("next", "next", "next", "hole", "old", "overlap", "beyond")
ACKS = ("una", "all", "all", "half", "old", "future")


@dataclass(frozen=True)
class Step:
    kind: str  # data, write, read, shutdown, close, sockopt
    dt: float
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Case:
    sack: bool
    ts: bool
    wscale: bool
    win: int
    steps: tuple[Step, ...] = field(default_factory=tuple)


def _step() -> st.SearchStrategy[Step]:
    dt = st.sampled_from(DTS)
    data = st.builds(
        lambda d, w, n, f, a, win, o: Step("data", d, (w, n, f, a, win, o)),
        dt,
        st.sampled_from(WHERE),
        st.sampled_from((0, 0, 1, 10, 1000)),
        st.sampled_from(FLAGS),
        st.sampled_from(ACKS),
        st.sampled_from((0, 100, 1000, 65535, 65535)),
        st.sampled_from(("ts", "ts", "ts", "sack", "none")),
    )
    write = st.builds(
        lambda d, n: Step("write", d, (n,)), dt, st.sampled_from((1, 10, 1000, 2000, 5000))
    )
    read = st.builds(lambda d, n: Step("read", d, (n,)), dt, st.sampled_from((1, 1000, 100000)))
    shut = st.builds(
        lambda d, h: Step("shutdown", d, (h,)),
        dt,
        st.sampled_from(("SHUT_WR", "SHUT_RD", "SHUT_RDWR")),
    )
    close = st.builds(lambda d: Step("close", d), dt)
    opt = st.builds(
        lambda d, n, v: Step("sockopt", d, (n, v)),
        dt,
        st.sampled_from(("TCP_NODELAY", "TCP_CORK")),
        st.sampled_from((0, 1)),
    )
    return st.one_of(data, data, data, write, write, read, shut, close, opt)


def cases() -> st.SearchStrategy[Case]:
    return st.builds(
        Case,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.sampled_from((1000, 5000, 65535)),
        st.lists(_step(), min_size=1, max_size=8).map(tuple),
    )


def render(case: Case, expected: list[tuple[int, str]] | None = None) -> str:
    """The script for ``case``; with ``expected`` (time in us, ``>`` line text), those
    lines are merged in at their times (absolute times throughout)."""
    opts = ["mss 1000"]
    if case.sack and case.ts:
        opts.append("sackOK,TS val 100 ecr 0")
    elif case.ts:
        opts.append("nop,nop,TS val 100 ecr 0")
    elif case.sack:
        opts.append("nop,nop,sackOK")
    if case.wscale:
        opts.append("nop,wscale 7")
    synack = ["mss 1460"]
    if case.sack and case.ts:
        synack.append("sackOK,TS val 200 ecr 100")
    elif case.ts:
        synack.append("nop,nop,TS val 200 ecr 100")
    elif case.sack:
        synack.append("nop,nop,sackOK")
    if case.wscale:
        synack.append("nop,wscale 8")
    tsopt = "nop,nop,TS val {v} ecr 200"
    events: list[tuple[int, int, str]] = []  # (time us, order, text)
    order = 0

    def ev(t: float, text: str) -> None:
        nonlocal order
        events.append((round(t * 1e6), order, text))
        order += 1

    ev(0, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    ev(0, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
    ev(0, "bind(3, ..., ...) = 0")
    ev(0, "listen(3, 1) = 0")
    ev(0, f"< S 0:0(0) win {case.win} <{','.join(opts)}>")
    ev(0, f"> S. 0:0(0) ack 1 <{','.join(synack)}>")
    t = 0.02
    tsv = 110
    ev(t, f"< . 1:1(0) ack 1 win {case.win}" + (f" <{tsopt.format(v=tsv)}>" if case.ts else ""))
    ev(t, "accept(3, ..., ...) = 4")
    ev(t, "fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
    rnext, written, last_ack = 1, 0, 1
    for s in case.steps:
        t += s.dt
        if s.kind == "data":
            where, n, flags, ack_kind, win, o = s.args
            if where == "next":
                seq = rnext
            elif where == "hole":
                seq = rnext + 1000
            elif where == "old":
                seq = max(rnext - 500, 0)
            elif where == "overlap":
                seq = max(rnext - 5, 1)
            else:
                seq = rnext + 10_000_000
            if "S" in flags:
                n = 0
            if where == "next" and "R" not in flags and "S" not in flags:
                rnext += n + (1 if "F" in flags else 0)
            if ack_kind == "all":
                last_ack = ack = 1 + written
            elif ack_kind == "half":
                last_ack = ack = last_ack + (1 + written - last_ack) // 2
            elif ack_kind == "old":
                ack = max(last_ack - 1000, 0)
            elif ack_kind == "future":
                ack = 1 + written + 5000
            else:
                ack = last_ack
            flag_text = flags or "-"
            line = f"< {flag_text} {seq}:{seq + n}({n})"
            if "." in flags:
                line += f" ack {ack}"
            line += f" win {win}"
            parts = []
            if o in ("ts", "sack") and case.ts:  # "none": no TS even if negotiated
                tsv += 10
                parts.append(tsopt.format(v=tsv))
            if o == "sack" and case.sack and written > 1000:
                parts.append(f"nop,nop,sack {last_ack + 1000}:{min(last_ack + 2000, written + 1)}")
            if parts:
                line += " <" + ",".join(parts) + ">"
            ev(t, line)
        elif s.kind == "write":
            ev(t, f"write(4, ..., {s.args[0]}) = ...")
            written += s.args[0]
        elif s.kind == "read":
            ev(t, f"read(4, ..., {s.args[0]}) = ...")
        elif s.kind == "shutdown":
            ev(t, f"shutdown(4, {s.args[0]}) = ...")
        elif s.kind == "close":
            ev(t, "close(4) = ...")
        elif s.kind == "sockopt":
            ev(t, f"setsockopt(4, SOL_TCP, {s.args[0]}, [{s.args[1]}], 4) = ...")
    ev(t + 0.3, "getsockopt(3, SOL_SOCKET, SO_ERROR, [...], [4]) = ...")
    if expected:
        for us, text in expected:
            # The kernel's packets after the SYN-ACK, merged by time (before an event
            # scheduled at the same moment only if sent strictly earlier).
            events.append((us, -1 if us else 10**9, text))
    events.sort(key=lambda e: (e[0], e[1]))
    head = (
        "// Found by benchmarks/difftest.py: synack --profile linux and the kernel differ.\n"
        '`sysctl -q net.ipv4.tcp_rmem="4096 262144 8388608"`\n\n'
    )
    return head + "".join(f"{us / 1e6:.6f} {text}\n" for us, _o, text in events)


# ----------------------------------------------------------------------- comparing
def _strip_ts(opts: str) -> str:
    return re.sub(r"TS val \d+", "TS", opts)


def compare(kern: RunResult, syn: RunResult, text: str = "") -> tuple[str, str] | None:
    """None, or (signature, description) of the first difference (``text``: the script,
    to name a call that differs)."""
    if kern.failure is not None:
        return None  # the script itself is wrong for this kernel: not a difference
    if syn.failure is not None:
        msg = re.sub(r"\d+", "N", syn.failure.message)[:60]
        return f"fail:{msg}", f"synack failed: {syn.reason()}"
    for (kline, kv, ke), (_sl, sv, se) in zip(kern.calls, syn.calls, strict=False):
        if (kv, ke) != (sv, se):
            lines = text.splitlines()
            src = lines[kline - 1] if 0 < kline <= len(lines) else ""
            m = re.search(r"([a-z_]+)\(\d+, ?(\w*)", src)
            what = f"{m.group(1)}" if m else f"line{kline}"
            if m and m.group(1) in ("setsockopt", "shutdown"):
                what += f"({m.group(2)})"
            return (
                f"call:{what}:{ke or 'ok'}/{se or 'ok'}",
                f"line {kline}: {src.strip()}: kernel returned {kv} errno {ke}, "
                f"synack {sv} errno {se}",
            )
    ko, so = _race_order(kern.outbound, syn.outbound), syn.outbound
    names = ("time", "flags", "seq", "ack", "len", "win", "opts")
    window: tuple[str, str] | None = None
    for i, (k, s) in enumerate(zip(ko, so, strict=False)):
        kk = (*k[:6], _strip_ts(k[6]))
        ss = (*s[:6], _strip_ts(s[6]))
        for j in (1, 2, 3, 4, 6):
            if j == 2 and "S" in k[1] and k[1] == s[1]:
                continue  # a new connection's ISN (its own clock: 64 ns ticks in Linux)
            if kk[j] != ss[j]:
                return (
                    f"{names[j]}:{k[1]}/{s[1]}",
                    f"packet {i}: {names[j]} kernel {kk[j]!r} synack {ss[j]!r}\n"
                    f"  kernel: {k}\n  synack: {s}",
                )
        tol = max(KERNEL_TOLERANCE_USECS, int(0.125 * k[0]))
        if abs(k[0] - s[0]) > tol:
            return (
                f"time:{k[1]}",
                f"packet {i}: kernel at {k[0]} us, synack at {s[0]} us\n"
                f"  kernel: {k}\n  synack: {s}",
            )
        if window is None and kk[5] != ss[5]:
            # Compared last: the advertised window differs in most scripts with data
            # (receive-buffer arithmetic), which would hide every other difference.
            window = (
                "win",
                f"packet {i}: win kernel {kk[5]} synack {ss[5]}\n  kernel: {k}\n  synack: {s}",
            )
    if len(ko) != len(so):
        extra, who = (ko[len(so)], "kernel") if len(ko) > len(so) else (so[len(ko)], "synack")
        return (
            f"count:{who}:{extra[1]}",
            f"only the {who} sent packet {min(len(ko), len(so))}: {extra}",
        )
    return window


def _key(rec: Any) -> tuple[Any, ...]:
    return (*rec[1:5], _strip_ts(rec[6]))


def _race_order(ko: list[Any], so: list[Any]) -> list[Any]:
    """The kernel's packets, with two sent within the tolerance of each other put in
    synack's order where that makes both match: a kernel timer due at the instant of a
    script event (an injected segment, a call) races the injector in real time and
    either may win (an RTO retransmission and the ACK of a segment injected at its
    deadline), where synack's virtual clock always fires the timer first."""
    out = list(ko)
    for i in range(min(len(out), len(so)) - 1):
        a, b = out[i], out[i + 1]
        tol = max(KERNEL_TOLERANCE_USECS, int(0.125 * a[0]))
        if (
            _key(a) != _key(so[i])
            and abs(b[0] - a[0]) <= tol
            and _key(b) == _key(so[i])
            and _key(a) == _key(so[i + 1])
        ):
            out[i], out[i + 1] = b, a
    return out


def run_pair(text: str) -> tuple[RunResult, RunResult]:
    with tempfile.NamedTemporaryFile("w", suffix=".pkt", delete=False) as fh:
        fh.write(text)
        path = fh.name
    try:
        opts = RunOptions(record=True)
        syn = run_script(path, "linux", opts)
        kern = run_script_kernel(path, RunOptions(record=True))
    finally:
        os.unlink(path)
    return kern, syn


def check(case: Case) -> tuple[str, str] | None:
    text = render(case)
    return compare(*run_pair(text), text)


def _worker(case: Case) -> tuple[Case, tuple[str, str] | None]:
    return case, check(case)


# ------------------------------------------------------------------------ shrinking
def shrink(case: Case, sig: str) -> Case:
    """Remove steps (and simplify what remains) while the difference keeps ``sig``."""
    attempts = 0

    def same(c: Case) -> bool:
        nonlocal attempts
        attempts += 1
        got = check(c)
        return got is not None and got[0] == sig

    changed = True
    while changed and attempts < SHRINK_ATTEMPTS:
        changed = False
        for i in range(len(case.steps) - 1, -1, -1):
            if attempts >= SHRINK_ATTEMPTS or len(case.steps) <= 1:
                break
            cand = Case(
                case.sack, case.ts, case.wscale, case.win, case.steps[:i] + case.steps[i + 1 :]
            )
            if same(cand):
                case, changed = cand, True
        for flag in ("sack", "ts", "wscale"):
            if getattr(case, flag) and attempts < SHRINK_ATTEMPTS:
                cand = Case(**{**case.__dict__, flag: False})
                if same(cand):
                    case, changed = cand, True
    return case


def regression_script(case: Case, sig: str, desc: str) -> str:
    """The generated script plus the kernel's packets as ``>`` lines."""
    kern, _syn = run_pair(render(case))
    lines = []
    for rec in kern.outbound[1:]:  # [0] is the SYN-ACK, already a line
        us, flags, seq, ack, n, win, opts = rec
        text = f"> {flags} {seq}:{(seq + n) & 0xFFFFFFFF}({n})"
        if "." in flags:
            text += f" ack {ack}"
        text += f" win {win}"
        text += f" <{opts}>" if opts else ""
        lines.append((us, text))
    body = render(case, lines)
    note = "".join(f"// {ln}\n" for ln in [f"signature: {sig}", *desc.splitlines()])
    return note + body


# ------------------------------------------------------------------------ the driver
def generate(batch: int, n: int) -> list[Case]:
    out: list[Case] = []

    @seed(batch)
    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: Case) -> None:
        out.append(case)

    collect()
    return out


def load_progress(path: Path = PROGRESS) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {"batches": 0, "scripts": 0, "differences": 0, "signatures": {}}


def save_progress(p: dict[str, Any], path: Path = PROGRESS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(p, indent=1, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scripts", type=int, default=2000, help="run until this many in total")
    ap.add_argument("--jobs", type=int, default=3, help="scripts run at the same time")
    ap.add_argument("--fresh", action="store_true", help="ignore (and replace) the progress")
    ap.add_argument("--no-save", action="store_true", help="do not write progress or scripts")
    ap.add_argument(
        "--progress",
        type=Path,
        default=PROGRESS,
        help="progress file (a new one starts a run with fresh counts)",
    )
    ap.add_argument(
        "--no-scripts",
        action="store_true",
        help="count differences only: shrink and save no scripts",
    )
    args = ap.parse_args()
    problem = kernel_problem()
    if problem:
        print(f"difftest: {problem}", file=sys.stderr)
        return 2
    prog = (
        {"batches": 0, "scripts": 0, "differences": 0, "signatures": {}}
        if args.fresh
        else load_progress(args.progress)
    )
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with ctx.Pool(args.jobs) as pool:
        while prog["scripts"] < args.scripts:
            n = min(BATCH, args.scripts - prog["scripts"])
            batch = generate(prog["batches"], n)
            for case, diff in pool.imap_unordered(_worker, batch):
                prog["scripts"] += 1
                if diff is None:
                    continue
                sig, _desc = diff
                prog["differences"] += 1
                entry = prog["signatures"].setdefault(sig, {"count": 0})
                entry["count"] += 1
                if "script" not in entry and not (args.no_save or args.no_scripts):
                    small = shrink(case, sig)
                    got = check(small)
                    if got is None or got[0] != sig:  # timing: not the same on every run
                        small, got = case, diff
                    stem = re.sub(r"[^a-z0-9]+", "_", sig.lower()).strip("_")[:40]
                    name = f"{len(prog['signatures']):03d}_{stem}.pkt"  # unique per signature
                    DIFF_DIR.mkdir(parents=True, exist_ok=True)
                    (DIFF_DIR / name).write_text(regression_script(small, sig, got[1]))
                    entry["script"] = name
                    print(f"new difference {sig}: saved {name}", flush=True)
            prog["batches"] += 1
            if not args.no_save:
                save_progress(prog, args.progress)
            rate = prog["scripts"] / max(time.monotonic() - started, 1e-9)
            print(
                f"{prog['scripts']} scripts, {prog['differences']} differences, "
                f"{len(prog['signatures'])} signatures ({rate:.1f} scripts/s)",
                flush=True,
            )
    for sig, entry in sorted(prog["signatures"].items(), key=lambda kv: -kv[1]["count"]):
        print(f"{entry['count']:6d}  {sig}  {entry.get('script', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
