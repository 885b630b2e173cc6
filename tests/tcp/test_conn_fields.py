"""Each TCB variable is declared once (issue #13): the annotations of ConnBase make its
slots, so this test does for the connection's modules what mypy's slot check did for a
literal ``__slots__``: every ``self.X = ...`` names a declared variable (or a property
with a setter), and ``Connection.__init__`` gives each variable a value."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import synack.tcp
from synack.tcp.conn_base import ConnBase
from synack.tcp.connection import Connection

TCP = Path(synack.tcp.__file__).parent
MODULES = [*sorted(TCP.glob("conn_*.py")), TCP / "connection.py"]


def _self_assignments(path: Path) -> set[tuple[str, int]]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for tgt in targets:
            for t in ast.walk(tgt):
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id in ("self", "conn")
                    and isinstance(t.ctx, ast.Store)
                ):
                    names.add((t.attr, node.lineno))
    return names


def test_every_assigned_variable_is_declared_in_conn_base() -> None:
    declared = set(ConnBase.__annotations__)
    assert set(ConnBase.__slots__) == declared | {"__weakref__"}
    undeclared = [
        f"{p.name}:{line} self.{name}"
        for p in MODULES
        for name, line in _self_assignments(p)
        if name not in declared
    ]
    assert not undeclared, undeclared
    assert len(MODULES) >= 8


def test_init_sets_every_variable() -> None:
    conn = Connection(b"\x0a\0\0\x01", 1, b"\x0a\0\0\x02", 2, iss=7)
    missing = [name for name in ConnBase.__annotations__ if not hasattr(conn, name)]
    assert not missing, missing


def test_every_variable_is_used_outside_init() -> None:
    """A variable only ever written by ``__init__`` is dead."""
    text = "".join(p.read_text() for p in MODULES if p.name != "connection.py")
    init = (TCP / "connection.py").read_text()
    rest = init[init.index("def open_active") :]  # what follows __init__
    used = set(re.findall(r"\.(\w+)\b", text + rest))
    dead = [n for n in ConnBase.__annotations__ if n not in used and n != "user_data"]
    assert not dead, dead
