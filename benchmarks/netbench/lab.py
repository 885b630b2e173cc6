"""The benchmark's own network namespaces and the processes it runs in them.

Every namespace is named ``sbench-<pid>-<what>`` and made here; every process
is started here (``ip netns exec NS argv``, which execs ``argv`` in place, so
the PID we hold is the agent itself).  :meth:`Lab.close` ends exactly those
processes by PID (SIGTERM, then SIGKILL) and deletes exactly those
namespaces; it runs on success, on failure and on Ctrl-C (the caller turns
SIGTERM into an exception so ``finally`` runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["Agent", "AgentError", "Lab", "parse_line"]


class AgentError(RuntimeError):
    """An agent failed, timed out or said something unexpected."""


def parse_line(line: str, prefix: str) -> dict[str, Any] | None:
    """``'RESULT {"a": 1}'`` -> ``{"a": 1}`` for prefix ``RESULT``; None otherwise."""
    if not line.startswith(prefix + " ") and line != prefix:
        return None
    body = line[len(prefix) :].strip()
    if not body:
        return {}
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"{prefix} line carries {type(value).__name__}, not an object")
    return value


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise AgentError(
            f"`{' '.join(argv)}` failed ({res.returncode}): "
            f"{res.stderr.strip() or res.stdout.strip()}"
        )
    return res


class Agent:
    """One process we started; its stdout is read line by line, stderr kept in a file."""

    def __init__(
        self, label: str, argv: list[str], popen: subprocess.Popen[bytes], errfile: Any
    ) -> None:
        self.label = label
        self.argv = argv
        self.popen = popen
        self._err = errfile
        self._buf = b""
        self.lines: list[str] = []
        self._eof = False
        assert popen.stdout is not None
        self._fd = popen.stdout.fileno()
        os.set_blocking(self._fd, False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr_text(self) -> str:
        try:
            self._err.seek(0)
            return str(self._err.read().decode(errors="replace"))
        except (OSError, ValueError):
            return ""

    def _fill(self, timeout: float) -> None:
        if self._eof:
            time.sleep(min(timeout, 0.05))
            return
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._eof = True
            return
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.lines.append(line.decode(errors="replace").rstrip("\r"))

    def wait_for(self, prefix: str, timeout: float) -> dict[str, Any]:
        """The first ``prefix {json}`` line, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                got = parse_line(line, prefix)
                if got is not None:
                    if "error" in got and prefix == "RESULT":
                        raise AgentError(f"{self.label}: {got['error']}")
                    return got
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if self._eof and self.popen.poll() is not None:
                raise AgentError(
                    f"{self.label} exited ({self.popen.returncode}) before {prefix}: {self._tail()}"
                )
            if left <= 0:
                raise AgentError(
                    f"{self.label}: no {prefix} within {timeout:.0f} s: {self._tail()}"
                )
            self._fill(min(left, 0.5))

    def wait_line(self, start: str, timeout: float) -> str:
        """The first stdout line starting with ``start`` (for the CLI's own output)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if line.startswith(start):
                    return line
            seen = len(self.lines)
            if self._eof and self.popen.poll() is not None:
                raise AgentError(
                    f"{self.label} exited ({self.popen.returncode}) before "
                    f"{start!r}: {self._tail()}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentError(
                    f"{self.label}: no {start!r} within {timeout:.0f} s: {self._tail()}"
                )
            self._fill(min(left, 0.5))

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the process has used so far (/proc/PID/stat)."""
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _tail(self) -> str:
        out = " | ".join(self.lines[-5:])
        err = self.stderr_text().strip().splitlines()[-8:]
        return f"stdout: {out or '-'}; stderr: {' / '.join(err) or '-'}"

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; reap it."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        with contextlib.suppress(OSError):
            self._err.close()
        with contextlib.suppress(OSError, AttributeError):
            assert self.popen.stdout is not None
            self.popen.stdout.close()

    def wait(self, timeout: float) -> int:
        """Wait for it to exit (reading its stdout meanwhile); kill it on timeout."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop(0.5)
                raise AgentError(
                    f"{self.label} did not finish within {timeout:.0f} s: {self._tail()}"
                )
            self._fill(min(left, 0.2))
        while not self._eof:
            self._fill(0.2)
        return self.popen.returncode


class Lab:
    """Namespaces and processes of one benchmark run; :meth:`close` removes them all."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"sbench-{os.getpid()}"
        self.namespaces: list[str] = []
        self.agents: list[Agent] = []

    def netns(self, what: str) -> str:
        name = f"{self.tag}-{what}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def veth(self, ns_a: str, ns_b: str, ip_a: str, ip_b: str, mtu: int = 1500) -> None:
        """A veth pair ``va`` in ``ns_a`` (``ip_a``, a /24) and ``vb`` in ``ns_b``."""
        _run(
            [
                "ip",
                "-n",
                ns_a,
                "link",
                "add",
                "va",
                "mtu",
                str(mtu),
                "type",
                "veth",
                "peer",
                "name",
                "vb",
                "mtu",
                str(mtu),
                "netns",
                ns_b,
            ]
        )
        _run(["ip", "-n", ns_a, "addr", "add", f"{ip_a}/24", "dev", "va"])
        _run(["ip", "-n", ns_b, "addr", "add", f"{ip_b}/24", "dev", "vb"])
        _run(["ip", "-n", ns_a, "link", "set", "va", "up"])
        _run(["ip", "-n", ns_b, "link", "set", "vb", "up"])

    def start(self, ns: str, argv: Sequence[str], label: str) -> Agent:
        full = ["ip", "netns", "exec", ns, *argv]
        err = tempfile.TemporaryFile()  # noqa: SIM115 (the Agent closes it in stop())
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        popen = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env
        )
        agent = Agent(label, full, popen, err)
        self.agents.append(agent)
        return agent

    def run(self, ns: str, argv: Sequence[str], label: str, timeout: float) -> dict[str, Any]:
        """Start an agent, wait for it to finish, return its RESULT."""
        agent = self.start(ns, argv, label)
        try:
            agent.wait(timeout)
            return agent.wait_for("RESULT", 1.0)
        finally:
            self.retire(agent)

    def retire(self, agent: Agent) -> None:
        agent.stop()
        with contextlib.suppress(ValueError):
            self.agents.remove(agent)

    def stop_all(self) -> None:
        for agent in list(self.agents):
            self.retire(agent)

    def close(self) -> None:
        self.stop_all()
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "delete", ns], check=False)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
