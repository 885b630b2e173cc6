"""A parsed packetdrill script (:class:`Script`): its events, each a time and an action
(a packet, a system call, a shell command or Python code), the expressions of system
calls, TCP options and the expected failure.  :mod:`.parser` builds it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path

from .lexer import Comment

U32 = 0xFFFFFFFF


U16 = 0xFFFF


class TimeKind(enum.Enum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"
    ANY = "any"
    ABSOLUTE_RANGE = "absolute range"
    RELATIVE_RANGE = "relative range"

    @property
    def relative(self) -> bool:
        return self in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE, TimeKind.ANY)

    @property
    def ranged(self) -> bool:
        return self in (TimeKind.ABSOLUTE_RANGE, TimeKind.RELATIVE_RANGE)


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """When an event happens; values in microseconds."""

    kind: TimeKind
    usecs: int = 0
    end_usecs: int | None = None  # the far end of a range

    def __str__(self) -> str:
        if self.kind is TimeKind.ANY:
            return "*"
        plus = "+" if self.kind.relative else ""
        text = f"{plus}{self.usecs / 1e6:g}"
        if self.end_usecs is not None:
            text += f"~{plus}{self.end_usecs / 1e6:g}"
        return text


# ----------------------------------------------------------------------------- packets
@dataclass(frozen=True, slots=True)
class TcpOption:
    """One TCP option as written in a script."""

    kind: str  # "nop", "eol", "mss", "wscale", "sackOK", "sack", "TS", "FO", "FOEXP"
    value: int = 0  # mss / wscale
    cookie: bytes = b""  # FO, FOEXP (TCP Fast Open, RFC 7413 §4.1.1)
    blocks: tuple[tuple[int, int], ...] = ()  # sack
    val: int = 0  # TS
    ecr: int = 0  # TS

    def __str__(self) -> str:
        if self.kind in ("mss", "wscale"):
            return f"{self.kind} {self.value}"
        if self.kind == "sack":
            return "sack " + " ".join(f"{a}:{b}" for a, b in self.blocks)
        if self.kind == "TS":
            return f"TS val {self.val} ecr {self.ecr}"
        if self.kind in ("FO", "FOEXP") and self.cookie:
            return f"{self.kind} {self.cookie.hex()}"
        return self.kind


#: Flag letters in the order packetdrill prints them.
FLAG_LETTERS = "SFRPUEW"


#: IP ECN codepoints (RFC 3168 §5) by script name; ect01 means "ECT(0) or ECT(1)".
ECN_CODEPOINTS = {"noecn": 0, "no_ecn": 0, "ect1": 1, "ect0": 2, "ce": 3, "ect01": -1}


@dataclass(frozen=True, slots=True)
class PacketSpec:
    direction: str  # "<" inbound (script to stack) or ">" outbound (stack to script)
    flags: str  # letters from FLAG_LETTERS, then "." for ACK; "" for none
    seq: int
    end: int
    length: int
    ack: int | None = None
    win: int | None = None
    urg: int | None = None
    #: None means the ``<...>`` wildcard; () means "no options".
    options: tuple[TcpOption, ...] | None = ()
    src_port: int | None = None
    dst_port: int | None = None
    #: IP ECN codepoint written as [no_ecn], [ect0], [ect1], [ce] or [ect01] (either of
    #: the ECT codepoints, outbound only); None when the script does not say.
    ecn: str | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == "<"

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def describe(self) -> str:
        parts = [self.direction]
        if self.ecn is not None:
            parts.append(f"[{self.ecn}]")
        parts += [self.flags or "-", f"{self.seq}:{self.end}({self.length})"]
        if self.ack is not None:
            parts.append(f"ack {self.ack}")
        if self.win is not None:
            parts.append(f"win {self.win}")
        if self.urg is not None:
            parts.append(f"urg {self.urg}")
        if self.options is None:
            parts.append("<...>")
        elif self.options:
            parts.append("<" + ",".join(str(o) for o in self.options) + ">")
        return " ".join(parts)


# ------------------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class EllipsisExpr:
    def __str__(self) -> str:
        return "..."


@dataclass(frozen=True, slots=True)
class IntExpr:
    value: int
    text: str = ""

    def __str__(self) -> str:
        return self.text or str(self.value)


@dataclass(frozen=True, slots=True)
class WordExpr:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class StringExpr:
    text: str
    repeat: bool = False  # "abc"... (packetdrill: fill a buffer with this)

    def __str__(self) -> str:
        return f'"{self.text}"' + ("..." if self.repeat else "")


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return "[" + ", ".join(str(i) for i in self.items) + "]"


@dataclass(frozen=True, slots=True)
class StructExpr:
    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return "{" + ", ".join(str(i) for i in self.items) + "}"


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    op: str  # "|" or "="
    lhs: Expr
    rhs: Expr

    def __str__(self) -> str:
        sep = "|" if self.op == "|" else "="
        return f"{self.lhs}{sep}{self.rhs}"


@dataclass(frozen=True, slots=True)
class CallExpr:
    name: str
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(str(a) for a in self.args) + ")"


Expr = (
    EllipsisExpr | IntExpr | WordExpr | StringExpr | ListExpr | StructExpr | BinaryExpr | CallExpr
)


@dataclass(frozen=True, slots=True)
class SyscallSpec:
    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    #: For a blocking call (``TIME...END``): END.
    end: TimeSpec | None = None

    @property
    def blocking(self) -> bool:
        return self.end is not None

    def describe(self) -> str:
        text = f"{self.name}(" + ", ".join(str(a) for a in self.args) + f") = {self.result}"
        if self.errno:
            text += f" {self.errno}"
        return text


@dataclass(frozen=True, slots=True)
class CommandSpec:
    text: str


@dataclass(frozen=True, slots=True)
class CodeSpec:
    text: str


Action = PacketSpec | SyscallSpec | CommandSpec | CodeSpec


@dataclass(frozen=True, slots=True)
class Event:
    line: int
    time: TimeSpec
    action: Action

    def describe(self) -> str:
        a = self.action
        if isinstance(a, (PacketSpec, SyscallSpec)):
            body = a.describe()
        elif isinstance(a, CommandSpec):
            body = f"`{a.text.strip()}`"
        else:
            body = "%{ " + a.text.strip() + " }%"
        return f"{self.time} {body}"


@dataclass(frozen=True, slots=True)
class ExpectedFailure:
    """A ``// Failure: REGEX`` comment: the script must fail at ``line`` with REGEX."""

    line: int
    comment_line: int
    pattern: str

    def matches(self, message: str) -> bool:
        try:
            return re.search(self.pattern, message) is not None
        except re.error:
            return self.pattern in message


@dataclass(slots=True)
class Script:
    path: str
    options: list[tuple[str, str, int]] = field(default_factory=list)  # name, value, line
    init_commands: list[tuple[CommandSpec, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    cleanup_commands: list[tuple[CommandSpec, int]] = field(default_factory=list)
    expected_failure: ExpectedFailure | None = None
    comments: list[Comment] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return Path(self.path).resolve().parent
