"""``%{ ... }%`` blocks: Python-like assertions over a ``tcp_info``-like snapshot.

Upstream packetdrill hands these blocks to a Python interpreter with the
socket's ``TCP_INFO`` fields as ``tcpi_*`` variables.  Here they are parsed
with :mod:`ast` and evaluated by a small interpreter that knows only what
such blocks need (assert, assignment, if, arithmetic, comparisons, boolean
logic, a few builtins), so a script cannot run arbitrary code.

The variables come from :meth:`synack.tcp.connection.Connection.info`,
mapped to Linux's names and units by :func:`tcp_info_vars`; a block that
uses a field synack cannot provide raises :class:`MissingField`, and the
runner skips the block with a note rather than guessing a value.
"""

from __future__ import annotations

import ast
import operator
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from ..tcp.connection import Connection
from ..tcp.states import State

#: Linux TCP_CA_* congestion-avoidance states (include/uapi/linux/tcp.h).
CA_STATES = {
    "TCP_CA_Open": 0,
    "TCP_CA_Disorder": 1,
    "TCP_CA_CWR": 2,
    "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
}
_TCP_STATES = {
    State.ESTABLISHED: 1,
    State.SYN_SENT: 2,
    State.SYN_RECEIVED: 3,
    State.FIN_WAIT_1: 4,
    State.FIN_WAIT_2: 5,
    State.TIME_WAIT: 6,
    State.CLOSED: 7,
    State.CLOSE_WAIT: 8,
    State.LAST_ACK: 9,
    State.LISTEN: 10,
    State.CLOSING: 11,
}
_CONSTANTS: dict[str, object] = {
    **CA_STATES,
    "TCP_ESTABLISHED": 1,
    "TCP_SYN_SENT": 2,
    "TCP_SYN_RECV": 3,
    "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5,
    "TCP_TIME_WAIT": 6,
    "TCP_CLOSE": 7,
    "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9,
    "TCP_LISTEN": 10,
    "TCP_CLOSING": 11,
    "True": True,
    "False": False,
    "None": None,
}
_INFINITE_SSTHRESH = 0x7FFFFFFF  # Linux TCP_INFINITE_SSTHRESH (include/net/tcp.h)
_CONSTANTS["TCP_INFINITE_SSTHRESH"] = _INFINITE_SSTHRESH


class CodeError(Exception):
    """The block is not valid or uses something the evaluator does not support."""


class MissingField(CodeError):
    """The block reads a ``tcpi_*`` field synack does not provide."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not available from synack's Connection.info()")
        self.name = name


class AssertionFailed(Exception):
    def __init__(self, source: str, detail: object) -> None:
        text = f"assertion failed: {source}"
        if detail is not None:
            text += f" ({detail!r})"
        super().__init__(text)


def tcp_info_vars(conn: Connection | None) -> dict[str, object]:
    """``tcpi_*`` variables for ``conn`` in Linux's units (packets, microseconds)."""
    if conn is None:
        return {}
    info = conn.info()
    mss = max(int(conn.eff_mss), 1)
    out: dict[str, object] = {
        "tcpi_state": _TCP_STATES.get(conn.state, 0),
        "tcpi_snd_mss": conn.eff_mss,
        "tcpi_advmss": conn.config.mss,
        "tcpi_snd_cwnd": int(info["cwnd"]) // mss,
        "tcpi_rto": round(float(info["rto"]) * 1e6),
        "tcpi_backoff": info["backoff"],
        "tcpi_total_retrans": info["retransmits"],
        "tcpi_ca_state": info["ca_state"],
        "tcpi_snd_wnd": info["snd_wnd"],
        "tcpi_rcv_wnd": info["rcv_wnd"],
        "tcpi_bytes_acked": info["bytes_acked"],
        "tcpi_bytes_received": info["bytes_received"],
        "tcpi_segs_out": info["segs_out"],
        "tcpi_segs_in": info["segs_in"],
    }
    ssthresh = int(info["ssthresh"])
    out["tcpi_snd_ssthresh"] = _INFINITE_SSTHRESH if ssthresh >= 1 << 30 else ssthresh // mss
    if info.get("srtt") is not None:
        out["tcpi_rtt"] = round(float(info["srtt"]) * 1e6)
        out["tcpi_rttvar"] = round(float(info["rttvar"]) * 1e6)
    return out


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "round": round,
    "len": len,
    "bool": bool,
}


def run_code(text: str, variables: Mapping[str, object], printed: list[str] | None = None) -> None:
    """Evaluate a block; raise :class:`AssertionFailed`, :class:`MissingField` or
    :class:`CodeError`.  What the block's ``print`` calls print is appended to
    ``printed`` (one line per call)."""
    source = textwrap.dedent(text).strip()
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise CodeError(f"not valid Python: {exc.msg} (block line {exc.lineno})") from None
    env: dict[str, object] = {**_CONSTANTS, **variables}
    out = printed if printed is not None else []

    def _print(*args: object) -> None:
        out.append(" ".join(str(a) for a in args))

    env["print"] = _print
    for stmt in tree.body:
        _exec(stmt, env)


def _exec(stmt: ast.stmt, env: dict[str, object]) -> None:
    if isinstance(stmt, ast.Assert):
        if not _eval(stmt.test, env):
            detail = _eval(stmt.msg, env) if stmt.msg is not None else None
            raise AssertionFailed(ast.unparse(stmt.test), detail)
    elif isinstance(stmt, ast.Expr):
        _eval(stmt.value, env)
    elif isinstance(stmt, ast.Assign):
        value = _eval(stmt.value, env)
        for target in stmt.targets:
            if not isinstance(target, ast.Name):
                raise CodeError("only simple names can be assigned")
            env[target.id] = value
    elif isinstance(stmt, ast.AugAssign):
        if not isinstance(stmt.target, ast.Name):
            raise CodeError("only simple names can be assigned")
        op = _BINOPS.get(type(stmt.op))
        if op is None:
            raise CodeError(f"unsupported operator {type(stmt.op).__name__}")
        env[stmt.target.id] = op(_eval(stmt.target, env), _eval(stmt.value, env))
    elif isinstance(stmt, ast.If):
        for s in stmt.body if _eval(stmt.test, env) else stmt.orelse:
            _exec(s, env)
    elif isinstance(stmt, ast.Pass):
        pass
    else:
        raise CodeError(f"unsupported statement: {type(stmt).__name__}")


def _eval(node: ast.expr, env: dict[str, object]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id.startswith("tcpi_"):
            raise MissingField(node.id)
        raise CodeError(f"unknown name {node.id!r}")
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise CodeError(f"unsupported operator {type(node.op).__name__}")
        return op(_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not v
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return +v
        if isinstance(node.op, ast.Invert):
            return ~v
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, env)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _eval(v, env)
            if result:
                return result
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op_node, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env)
            cmp = _CMPOPS.get(type(op_node))
            if cmp is None:
                raise CodeError(f"unsupported comparison {type(op_node).__name__}")
            if not cmp(left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, env) if _eval(node.test, env) else _eval(node.orelse, env)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, env) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fn = _FUNCS.get(node.func.id)
        if node.func.id == "print" and callable(env.get("print")):
            fn = env["print"]  # type: ignore[assignment]
        if fn is None:
            raise CodeError(f"function {node.func.id!r} is not available")
        return fn(*(_eval(a, env) for a in node.args))
    raise CodeError(f"unsupported expression: {ast.unparse(node)}")


__all__ = ["CA_STATES", "AssertionFailed", "CodeError", "MissingField", "run_code", "tcp_info_vars"]
