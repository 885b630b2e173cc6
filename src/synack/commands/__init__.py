"""Subcommands of the ``synack`` command line, one module each.

A module here is a command if it defines ``NAME``, ``register(sub)`` (adds
its parser to an argparse subparsers object and returns it) and
``run(args) -> int``.  :mod:`synack.cli` discovers them, so adding a command
never means editing a shared list.  Shared argument types live here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


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


def port(text: str) -> int:
    """argparse type: a TCP port number."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be in 1..65535, got {v}")
    return v
