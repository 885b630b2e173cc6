"""Shared capability checks for tests that need root, /dev/net/tun or network namespaces.

A missing capability skips the test with the reason, except in CI
(``CI=true``), where everything is supposed to run: there it fails the test.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

TUN_PATH = "/dev/net/tun"
_names = itertools.count()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(reason: str) -> None:
    """Skip (or, with CI=true, fail) the calling test because ``reason``."""
    if in_ci():
        pytest.fail(f"CI=true but a required capability is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _netns_problem() -> str | None:
    name = f"synack-cap-{os.getpid()}"
    add = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if add.returncode != 0:
        return f"cannot create a network namespace: {add.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def root_tun_problem(*, netns: bool = True) -> str | None:
    """Why TUN tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (TUN devices and network namespaces need CAP_NET_ADMIN)"
    if not _has_net_admin():
        return "root without CAP_NET_ADMIN (a restricted container?): TUN and netns need it"
    if not os.path.exists(TUN_PATH):
        return f"{TUN_PATH} is missing (modprobe tun, or pass the device to the container)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    if netns:
        return _netns_problem()
    return None


def _has_net_admin() -> bool:
    """CAP_NET_ADMIN (bit 12) in this process's effective capability set."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 12))
    except (OSError, ValueError):
        pass
    return True  # cannot tell: let the tests try and report what fails


def require_root_tun(*, netns: bool = True) -> None:
    """Skip (fail under CI=true) unless root, /dev/net/tun, `ip` and netns are there."""
    problem = root_tun_problem(netns=netns)
    if problem is not None:
        missing(problem)


@contextlib.contextmanager
def network_namespace(prefix: str = "synack-test") -> Iterator[str]:
    """A fresh network namespace with a unique name; deleted on exit whatever happens."""
    name = f"{prefix}-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
