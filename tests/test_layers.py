"""The layers of the tree (CONTRIBUTING.md): a module imports only from its own
layer or the layers below it, never upward, and nothing imports in a circle.

The check reads the source (every import, also those inside functions; imports
under ``if TYPE_CHECKING:`` are for the type checker only and are skipped), so
it fails on the import that breaks the rule, with the file and line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

SRC = ROOT / "src"

#: Lowest first.  A package may import any package of a lower rank, and itself.
LAYERS: list[tuple[str, ...]] = [
    ("synack", "trace.schema"),  # the package root (its version) and the typed
    # trace records, which every writer uses
    ("wire",),  # packet codecs
    ("tcp",),  # the sans-IO connection
    ("stack",),  # demux, listeners, ICMP: a host's TCP
    ("sim",),  # the simulated network and clock
    ("links",),  # TUN, memory and impaired links
    ("trace",),  # reading and drawing a run
    ("aio",),  # the asyncio driver, transport, streams, Host
    ("sockets",),  # the blocking socket API on a Host
    ("scenarios", "services", "packetdrill"),  # programs built on the runtimes
    ("commands",),  # the command line
    ("__main__",),  # `python -m synack`
]
RANK = {pkg: rank for rank, group in enumerate(LAYERS) for pkg in group}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((SRC / "synack").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _layer(module: str) -> str:
    if module == "synack.trace.schema":
        return "trace.schema"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "synack"


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for each synack import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] == "synack":
                    found.append((target, node.lineno, top))
                    for alias in node.names:  # `from . import seq` imports a module
                        sub = f"{target}.{alias.name}"
                        rel = Path(*sub.split("."))
                        if (SRC / rel).with_suffix(".py").exists() or (SRC / rel).is_dir():
                            found.append((sub, node.lineno, top))
            elif isinstance(node, ast.Import):
                found.extend(
                    (a.name, node.lineno, top)
                    for a in node.names
                    if a.name.split(".")[0] == "synack"
                )
            inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for field in ("body", "orelse", "finalbody"):
                sub_nodes = getattr(node, field, None)
                if isinstance(sub_nodes, list):
                    visit(sub_nodes, inner)
            for handler in getattr(node, "handlers", []):
                visit(handler.body, inner)

    visit(ast.parse(path.read_text()).body, True)
    return found


def test_every_package_has_a_layer() -> None:
    packages = {_layer(m) for m, _ in _modules()}
    assert "trace.schema" in packages
    assert packages <= RANK.keys(), f"packages without a layer: {packages - RANK.keys()}"


def test_no_module_flat_at_the_top_but_the_entry_points() -> None:
    flat = sorted(p.name for p in (SRC / "synack").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py"], flat


def test_no_upward_imports() -> None:
    bad = []
    for module, path in _modules():
        for target, line, _top in _imports(module, path):
            src, dst = _layer(module), _layer(target)
            if src != dst and RANK[dst] >= RANK[src]:
                bad.append(
                    f"{path.relative_to(SRC)}:{line}: {src} imports {target} "
                    f"({dst} is not below {src})"
                )
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    """The module-level import graph is acyclic (Tarjan's strongly connected components)."""
    graph: dict[str, set[str]] = {}
    names = {m for m, _ in _modules()}
    for module, path in _modules():
        graph[module] = {
            t for t, _line, top in _imports(module, path) if top and t in names and t != module
        }
    # a package __init__ is imported before its modules; an edge from a module to its
    # own package is satisfied by then, so it is not a cycle
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    assert not cycles, f"import cycles: {cycles}"


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """No module depends on another having been imported first (a run-time cycle)."""
    modules = [m for m, _ in _modules() if m != "synack.__main__"]
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [k for k in sys.modules if k == 'synack' or k.startswith('synack.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        bad.append(f'{name}: {exc}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_test_file_imports_another() -> None:
    """Shared code lives in tests/helpers/ and fixtures in conftest.py: a test file never
    imports another test file (whose tests would then run twice, or not stand alone)."""
    tests = SRC.parent / "tests"
    names = {p.stem for p in tests.rglob("test_*.py")}
    bad = []
    for path in sorted(tests.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            bad += [
                f"{path.relative_to(tests)}:{node.lineno}: {m}"
                for m in mods
                if m.split(".")[-1] in names or m.split(".")[0] in names
            ]
    assert not bad, "\n".join(bad)
