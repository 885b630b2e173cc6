"""Subcommands of the ``synack`` command line, one module each.

A module here is a command if it defines ``NAME``, ``register(sub)`` (adds
its parser to an argparse subparsers object and returns it) and
``run(args) -> int``.  :mod:`synack.commands.main` discovers them, so adding a command
never means editing a shared list.  Shared argument types live here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address bracketed (RFC 5952 §6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probability(text: str) -> float:
    """argparse type: a probability in [0, 1]."""
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability must be between 0 and 1, got {p}")
    return p


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """argparse type factory: a non-negative int or float."""

    def parse(text: str) -> int | float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
        return v

    return parse


def in_range(
    kind: type[int] | type[float],
    low: float,
    high: float,
    noun: str,
    *,
    not_a: str = "not a number",
) -> Callable[[str], Any]:
    """argparse type factory: a number of ``kind`` in ``[low, high]``, with messages
    like "an MSS must be in 88..65495, got 1"."""

    def parse(text: str) -> int | float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{not_a}: {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"{noun} must be in {low:g}..{high:g}, got {v:g}")
        return v

    return parse


#: argparse type: a TCP port number.
port = in_range(int, 1, 65535, "a port", not_a="not a port number")


def own_command(args: argparse.Namespace, *extra: str) -> str:
    """The command line the user typed (``synack ...``), with ``extra`` words added:
    a hint starts from what they gave, never from a made-up default."""
    words = ["synack", *getattr(args, "_argv", [args.command])]
    words += extra
    return shlex.join(words)


def unwritable(path: str | os.PathLike[str], *, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written (created or replaced), or None.  An existing file
    (``/dev/null`` too) needs only to be writable itself; a new one needs its folder to
    exist and be writable.  ``folder``: ``path`` is an output folder, made if missing,
    but only one level deep (a missing parent is a mistake more often than a wish)."""
    target = Path(path)
    if folder:
        if target.is_dir():
            return None if os.access(target, os.W_OK) else f"{path} is not writable"
        if target.exists():
            return f"{path} is not a folder"
    elif target.is_dir():
        return f"{path} is a folder"
    elif target.exists():
        return None if os.access(target, os.W_OK) else f"{path} is not writable"
    parent = target.parent
    if not parent.is_dir():
        return f"no folder {parent}"
    if not os.access(parent, os.W_OK):
        return f"cannot create {path}: {parent} is not writable"
    return None


def check_outputs(
    command: str, files: dict[str, object], folders: dict[str, object] | None = None
) -> int | None:
    """Check every output a command will write before it starts; print one line and
    return 2 for the first that cannot be written, None when all can.  ``files`` and
    ``folders`` map an option name (``--trace``) to its value (None: not given)."""
    for opts, is_folder in ((files, False), (folders or {}, True)):
        for option, value in opts.items():
            if value in (None, "", "-"):
                continue
            why = unwritable(str(value), folder=is_folder)
            if why is not None:
                print(f"synack {command}: cannot write {option} {value}: {why}", file=sys.stderr)
                return 2
    return None
