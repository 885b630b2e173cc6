"""The ``synack`` command line: discovers the subcommands in :mod:`synack.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from .. import __version__, commands

#: Libraries outside the standard library that some commands need, and the extra of
#: pyproject.toml that installs them.
OPTIONAL = {"h11": "cli", "rich": "cli", "matplotlib": "plot"}


def _command_modules() -> tuple[list[ModuleType], dict[str, str]]:
    """The command modules, and {command: missing library} for those that cannot be
    imported without an optional library (the core needs none)."""
    mods, missing = [], {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        except ModuleNotFoundError as exc:
            lib = (exc.name or "").partition(".")[0]
            if lib not in OPTIONAL:
                raise
            source = Path(commands.__path__[0], f"{info.name}.py")
            if source.is_file() and "\ndef register(" in source.read_text(encoding="utf-8"):
                missing[info.name] = lib  # a command, not a helper module of the commands
            continue
        if hasattr(mod, "register") and hasattr(mod, "run"):
            mods.append(mod)
    return mods, missing


def _needs(command: str, lib: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(
            f"synack {command}: needs the {lib} library, which is not installed; "
            f"install it with: pip install 'synack[{OPTIONAL[lib]}]' "
            f"(or pip install {lib})",
            file=sys.stderr,
        )
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synack", description="A TCP/IP stack in Python.")
    parser.add_argument("--version", action="version", version=f"synack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    mods, missing = _command_modules()
    for mod in mods:
        p = mod.register(sub)
        p.set_defaults(_run=mod.run)
    for name, lib in missing.items():
        # still listed, and still accepting its arguments, so the user learns what is
        # missing rather than that the command does not exist
        p = sub.add_parser(
            name, help=f"(needs {lib}: pip install 'synack[{OPTIONAL[lib]}]')", add_help=False
        )
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(_run=_needs(name, lib))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    args._argv = words  # what the user typed, for hints that start from it
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `synack demo | head`): stop quietly, as Unix
        # tools do, without a traceback or a second error while flushing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A file the command could not read or write, found only on the way: one line,
        # as for the paths checked up front, never a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"synack {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
