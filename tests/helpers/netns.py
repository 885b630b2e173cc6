"""Network-namespace helpers for the interop tests against the Linux kernel.

Every test makes its own namespace (``synack-<what>-<pid>-<n>``) with
:func:`namespace`, runs everything inside it with ``ip netns exec``, and the
namespace is deleted afterwards whatever happens.  Processes are started
through :meth:`Netns.popen` (or :meth:`Netns.serve`), which keeps their
``Popen`` objects: cleanup ends exactly those, by PID (SIGTERM, then SIGKILL),
never anything by name.  Traffic only ever goes to addresses inside the
namespace: the kernel's end of the TUN device (10.77.0.1) and synack's
(10.77.0.2).

Tools are checked with :func:`require`: a missing one skips the test with
the reason, except with ``CI=true`` where it fails (tests/helpers/capabilities.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .capabilities import missing, root_tun_problem

STACK_IP = "10.77.0.2"
KERNEL_ADDR = "10.77.0.1"
KERNEL_IP = f"{KERNEL_ADDR}/24"
TUN = "syn0"
PYTHON = sys.executable
TIMEOUT = 60.0

_counter = itertools.count()

#: apt package for each tool the interop tests use.
PACKAGES = {
    "socat": "socat",
    "curl": "curl",
    "tcpdump": "tcpdump",
    "nc": "netcat-openbsd",
    "ping": "iputils-ping",
    "ss": "iproute2",
    "ip": "iproute2",
    "sysctl": "procps",
    "bash": "bash",
}


def require(*tools: str) -> None:
    """Skip (fail under CI=true) unless root, /dev/net/tun, netns and ``tools`` are there."""
    problem = root_tun_problem(netns=True)
    if problem is not None:
        missing(problem)
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        pkgs = " ".join(sorted({PACKAGES.get(t, t) for t in absent}))
        missing(
            f"needs {', '.join(absent)} (apt-get install {pkgs}, or "
            f"sh scripts/install-system-deps.sh)"
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int, seed: int = 1) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; return their SHA-256."""
    import random

    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            chunk = rng.randbytes(min(left, 1 << 20))
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


@dataclass
class Proc:
    """A process started in the namespace, with its output in files."""

    popen: subprocess.Popen[bytes]
    argv: list[str]
    stdout_path: Path
    stderr_path: Path
    _files: list[IO[Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.popen.wait(timeout)

    def wait_for(self, pattern: str, *, timeout: float = 20.0, stream: str = "stdout") -> str:
        """Poll the output until ``pattern`` (a regex) matches; return the match.  Fails
        with the output so far if the process ends or time runs out first."""
        path = self.stdout_path if stream == "stdout" else self.stderr_path
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            text = path.read_text(errors="replace")
            m = rx.search(text)
            if m is not None:
                return m.group(0)
            if self.popen.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited with {self.popen.returncode}"
                    if self.popen.poll() is not None
                    else f"no match within {timeout:g}s"
                )
                raise AssertionError(
                    f"{self.argv!r}: waiting for {pattern!r}: {why}\n"
                    f"--- stdout\n{self.stdout()[-3000:]}\n"
                    f"--- stderr\n{self.stderr()[-3000:]}"
                )
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait; SIGKILL if it does not end in time.  Returns the status."""
        self.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            raise AssertionError(
                f"{self.argv!r} did not stop within {timeout:g}s of "
                f"{signal.Signals(sig).name}\n{self.stderr()[-3000:]}"
            ) from None

    def end(self) -> None:
        """Cleanup: SIGTERM, then SIGKILL, this process only (by its PID)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for fh in self._files:
            fh.close()


class Netns:
    """A network namespace made by :func:`namespace`, and what runs in it."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.procs: list[Proc] = []

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        *argv: str,
        timeout: float = TIMEOUT,
        check: bool = False,
        input: bytes | None = None,
        stdin: IO[Any] | None = None,
        stdout: IO[Any] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command in the namespace to completion (output captured)."""
        res = subprocess.run(
            self.cmd(*argv),
            input=input,
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"{argv!r} failed ({res.returncode}): {res.stderr.decode(errors='replace')}"
            )
        return res

    def popen(
        self, *argv: str, stdin: IO[Any] | int | None = subprocess.DEVNULL, label: str | None = None
    ) -> Proc:
        """Start a command in the namespace; stdout and stderr go to files."""
        n = len(self.procs)
        base = label or Path(argv[0]).name
        out_path = self.workdir / f"{n:02d}-{base}.out"
        err_path = self.workdir / f"{n:02d}-{base}.err"
        out = open(out_path, "wb")  # noqa: SIM115 - closed by Proc.end
        err = open(err_path, "wb")  # noqa: SIM115 - closed by Proc.end
        popen = subprocess.Popen(self.cmd(*argv), stdin=stdin, stdout=out, stderr=err)
        proc = Proc(popen, list(argv), out_path, err_path, [out, err])
        self.procs.append(proc)
        return proc

    # -------------------------------------------------------------- synack
    @staticmethod
    def synack_argv(*args: str) -> list[str]:
        return [PYTHON, "-m", "synack", *args]

    def synack(
        self,
        *args: str,
        timeout: float = TIMEOUT,
        input: bytes | None = None,
        stdin: IO[Any] | None = None,
        stdout: IO[Any] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a synack command in the namespace to completion."""
        return self.run(
            *self.synack_argv(*args), timeout=timeout, input=input, stdin=stdin, stdout=stdout
        )

    def serve(
        self,
        service: str,
        *extra: str,
        tun: str = TUN,
        ip: str = STACK_IP,
        kernel_ip: str | None = KERNEL_IP,
        timeout: float = 20.0,
    ) -> Proc:
        """``synack serve SERVICE --tun syn0 --ip 10.77.0.2 --kernel-ip 10.77.0.1/24 ...``,
        once it says it is listening."""
        argv = ["serve", service, "--tun", tun, "--ip", ip, *extra]
        if kernel_ip is not None:
            argv += ["--kernel-ip", kernel_ip]
        proc = self.popen(*self.synack_argv(*argv), label=f"serve-{service}")
        proc.wait_for(r"listening on \S+", timeout=timeout)
        return proc

    def tun_device(self, name: str = TUN, kernel_ip: str = KERNEL_IP) -> None:
        """A persistent TUN device with the kernel's address, for synack clients to
        attach to (``--no-create``); kernel servers can bind its address first."""
        self.run("ip", "tuntap", "add", "dev", name, "mode", "tun", check=True)
        self.run("ip", "addr", "add", kernel_ip, "dev", name, check=True)
        self.run("ip", "link", "set", name, "up", check=True)

    def wait_listening(self, port: int, timeout: float = 10.0) -> None:
        """Until a kernel socket listens on TCP ``port`` in the namespace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("ss", "-Htln", f"sport = :{port}").stdout.decode()
            if out.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on port {port} after {timeout:g}s")

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            proc.end()


@contextlib.contextmanager
def namespace(what: str, workdir: Path) -> Iterator[Netns]:
    """A fresh namespace ``synack-<what>-<pid>-<n>`` with loopback up; every process
    started in it is ended and the namespace deleted on exit, even on failure."""
    name = f"synack-{what}-{os.getpid()}-{next(_counter)}"[:40]
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ns = Netns(name, workdir)
    try:
        ns.run("ip", "link", "set", "lo", "up", check=True)
        yield ns
    finally:
        try:
            ns.cleanup()
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def summary_value(text: str, row: str) -> str:
    """The value cell of a row in a synack summary table (rich or plain)."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if cells and cells[0] == row and len(cells) > 1:
            return cells[1]
        if line.startswith(row + " "):
            return line[len(row) :].strip().split("  ")[0]
    raise AssertionError(f"no row {row!r} in:\n{text}")


def timed(label: str, start: float, record: dict[str, float] | None = None) -> float:
    """Print (pytest -s shows it) and keep how long something took."""
    elapsed = time.monotonic() - start
    print(f"[timing] {label}: {elapsed:.2f}s")
    if record is not None:
        record[label] = elapsed
    return elapsed


def parse_log(text: str) -> list[dict[str, Any]]:
    """The per-connection lines ``synack serve`` prints, as dicts."""
    out = []
    rx = re.compile(
        r"connection (\d+) from \[?([\d.a-f:]+?)\]?:(\d+) closed after "
        r"([\d.]+)s: (\d+) bytes in(?: \(sha256 ([0-9a-f]{64})\))?, "
        r"(\d+) bytes out(.*)$"
    )
    for line in text.splitlines():
        m = rx.match(line)
        if m is None:
            continue
        rest = m.group(8)
        out.append(
            {
                "id": int(m.group(1)),
                "peer": m.group(2),
                "port": int(m.group(3)),
                "seconds": float(m.group(4)),
                "bytes_in": int(m.group(5)),
                "sha256": m.group(6),
                "bytes_out": int(m.group(7)),
                "error": rest.split("; ", 1)[1] if "; " in rest else None,
                "retransmits": int(r.group(1))
                if (r := re.search(r"(\d+) retransmissions", rest))
                else 0,
                "requests": int(r.group(1)) if (r := re.search(r"(\d+) requests?", rest)) else 0,
            }
        )
    return out


def wait_log(proc: Proc, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Until ``synack serve`` has logged ``count`` finished connections."""
    deadline = time.monotonic() + timeout
    while True:
        logs = parse_log(proc.stdout())
        if len(logs) >= count:
            return logs
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"serve logged {len(logs)} of {count} connections\n"
                f"--- stdout\n{proc.stdout()[-3000:]}\n"
                f"--- stderr\n{proc.stderr()[-3000:]}"
            )
        time.sleep(0.05)


def argv_text(argv: Sequence[str]) -> str:
    return " ".join(argv)
