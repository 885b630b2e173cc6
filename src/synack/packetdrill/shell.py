"""Interpret the shell commands packetdrill scripts run, without running them.

Real packetdrill executes backtick commands with ``/bin/sh``.  Under synack
there is no kernel to configure: what those commands mean is sysctl settings
(``sysctl -q k=v``, ``set_sysctls.py /proc/sys/...=v``, ``defaults.sh``
files full of them), which become stack configuration, plus host chores
(``ip``, ``tc``, ``ethtool``, ``nstat``, restore scripts) that have nothing to
act on here.  :func:`interpret` turns a command into a list of
:class:`SysctlSet` and :class:`Skipped` effects; nothing is ever executed.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SysctlSet:
    key: str  # dotted: net.ipv4.tcp_sack
    value: str
    source: str  # what the command looked like, for reports


@dataclass(frozen=True, slots=True)
class Skipped:
    command: str
    reason: str


Effect = SysctlSet | Skipped

_ARITH = re.compile(r"\$\(\(([^()]*(?:\([^()]*\)[^()]*)*)\)\)")
_MAX_DEPTH = 4

#: Commands that act on the host, which a virtual stack does not have.
_HOST_COMMANDS = {
    "ip": "routing/metrics command: there is no host routing table here",
    "tc": "queueing discipline: the virtual link has no qdisc (no pacing)",
    "ethtool": "NIC offload settings: the runner already accepts offloaded (aggregated) "
    "segments and never requires them",
    "nstat": "kernel SNMP counters are not modelled; the check is not run",
    "sleep": "wall-clock sleep has no meaning in virtual time",
    "echo": "output only",
    "true": "no-op",
    ":": "no-op",
}


def interpret(command: str, script_dir: Path, *, depth: int = 0) -> list[Effect]:
    """The effects of backtick ``command`` run from ``script_dir``."""
    effects: list[Effect] = []
    for raw in _logical_lines(command):
        effects.extend(_interpret_line(raw, script_dir, depth))
    return effects


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        out.extend(part.strip() for part in _split_sequence(stripped) if part.strip())
    return out


def _split_sequence(line: str) -> list[str]:
    """Split ``a; b && c`` into commands (quotes respected)."""
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == ";" or line.startswith(("&&", "||"), i):
            parts.append("".join(cur))
            cur = []
            i += 1 if ch == ";" else 2
            continue
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _eval_arith(expr: str) -> int:
    """Evaluate shell ``$((...))`` integer arithmetic (+ - * / % and parentheses)."""
    tree = ast.parse(expr.strip(), mode="eval")

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, (ast.Div, ast.FloorDiv)) and b:
                return int(a / b)
            if isinstance(node.op, ast.Mod) and b:
                return a % b
        raise ValueError(f"unsupported shell arithmetic: {expr!r}")

    return ev(tree)


def _expand(line: str) -> str:
    return _ARITH.sub(lambda m: str(_eval_arith(m.group(1))), line)


def _interpret_line(line: str, script_dir: Path, depth: int) -> list[Effect]:
    first_pipe = _split_pipe(line)
    try:
        words = shlex.split(_expand(first_pipe), comments=True)
    except ValueError as exc:
        return [Skipped(line, f"cannot parse as a shell command ({exc})")]
    words = _drop_redirections(words)
    if not words:
        return []
    prog = words[0]
    base = prog.rsplit("/", 1)[-1]
    if base == "sysctl":
        return _sysctl(words[1:], line)
    if base == "set_sysctls.py":
        return _set_sysctls(words[1:], line)
    if base.endswith(".sh"):
        return _shell_file(prog, line, script_dir, depth)
    if base in _HOST_COMMANDS:
        return [Skipped(line, _HOST_COMMANDS[base])]
    return [Skipped(line, "unknown command; not run (the runner only interprets sysctl settings)")]


def _split_pipe(line: str) -> str:
    """The first command of a pipeline (quotes respected)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "|" and not line.startswith("||", i):
            return line[:i]
    return line


def _drop_redirections(words: list[str]) -> list[str]:
    out: list[str] = []
    skip_next = False
    for w in words:
        if skip_next:
            skip_next = False
            continue
        if re.fullmatch(r"\d*>>?|\d*<", w):
            skip_next = True
            continue
        if re.fullmatch(r"\d*>>?\S+|\d*>&\d+|&>\S+|\d*<\S+", w):
            continue
        out.append(w)
    return out


def _sysctl(args: list[str], line: str) -> list[Effect]:
    effects: list[Effect] = []
    for a in args:
        if a.startswith("-"):
            continue  # -q, -w, -e: quiet/write/ignore flags
        if "=" not in a:
            effects.append(Skipped(line, f"reads {a}; nothing to set"))
            continue
        key, value = a.split("=", 1)
        effects.append(SysctlSet(key.strip().replace("/", "."), value.strip(), line))
    return effects


def _set_sysctls(args: list[str], line: str) -> list[Effect]:
    effects: list[Effect] = []
    for a in args:
        if "=" not in a:
            effects.append(Skipped(line, f"argument {a!r} is not PATH=VALUE"))
            continue
        path, value = a.split("=", 1)
        if not path.startswith("/proc/sys/"):
            effects.append(Skipped(line, f"{path} is not under /proc/sys"))
            continue
        key = path[len("/proc/sys/") :].strip("/").replace("/", ".")
        effects.append(SysctlSet(key, value.strip(), line))
    return effects


def _shell_file(prog: str, line: str, script_dir: Path, depth: int) -> list[Effect]:
    path = (script_dir / prog).resolve() if not prog.startswith("/") else Path(prog)
    if "sysctl_restore" in prog:
        return [
            Skipped(
                line,
                "restores sysctls a helper changed; every script already runs "
                "on a fresh virtual stack",
            )
        ]
    if depth >= _MAX_DEPTH:
        return [Skipped(line, "shell files nested too deeply")]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Skipped(line, f"cannot read {path}: {exc.strerror or exc}")]
    return interpret(text, path.parent, depth=depth + 1)


__all__ = ["Effect", "Skipped", "SysctlSet", "interpret"]
