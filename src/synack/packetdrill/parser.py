"""The packetdrill script grammar, as far as real scripts use it.

A script is::

    option lines        --mss=1000  --tolerance_usecs=10000  (before any event)
    init command        `../common/defaults.sh`               (untimed, before events)
    events              TIME ACTION, one after another
    cleanup command     `/tmp/sysctl_restore_${PPID}.sh`      (untimed, after events)

TIME is ``0`` / ``1.5`` / ``.1`` (absolute seconds), ``+0`` / ``+.1`` (relative),
``a~b`` or ``+a~+b`` (a range, outbound packets only), ``*`` (any time,
outbound packets only).  A system call may add ``...END`` after its time: it
blocks and must return at END.

ACTION is one of

* a packet: ``<`` (injected) or ``>`` (expected), optional ``SPORT>DPORT``,
  flags (``S F R P . E W U`` letters, ``-`` for none), ``START:END(LEN)``,
  optional ``ack N``, ``win N``, ``urg N`` and an option list
  ``<mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7,sack 1:2 3:4,eol>`` or the
  wildcard ``<...>``;
* a system call: ``name(arg, ...) = RESULT [ERRNO] [(note)]`` where an
  argument is ``...``, an integer, a symbol, ``a|b``, ``[x]``, ``{k=v, ...}``,
  a string or ``f(x)``;
* a backtick shell command or a ``%{ ... }%`` code block.

Every problem is a :class:`~synack.packetdrill.lexer.PacketdrillSyntaxError`
naming the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

from .lexer import Comment, Kind, PacketdrillSyntaxError, Token, tokenize
from .spec import (
    ECN_CODEPOINTS,
    FLAG_LETTERS,
    U16,
    U32,
    Action,
    BinaryExpr,
    CallExpr,
    CodeSpec,
    CommandSpec,
    EllipsisExpr,
    Event,
    ExpectedFailure,
    Expr,
    IntExpr,
    ListExpr,
    PacketSpec,
    Script,
    StringExpr,
    StructExpr,
    SyscallSpec,
    TcpOption,
    TimeKind,
    TimeSpec,
    WordExpr,
)


# ---------------------------------------------------------------------------- parsing
def parse_file(path: str | Path) -> Script:
    """Read and parse one script file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PacketdrillSyntaxError(str(p), 1, f"not UTF-8 text: {exc}") from None
    return parse(text, str(p))


def parse(text: str, path: str = "<script>") -> Script:
    """Parse script ``text``; ``path`` is used in error messages."""
    lexed = tokenize(text, path)
    parser = _Parser(lexed.tokens, path)
    script = parser.script()
    script.comments = lexed.comments
    script.expected_failure = _expected_failure(lexed.comments, script)
    return script


def _expected_failure(comments: list[Comment], script: Script) -> ExpectedFailure | None:
    found = None
    for c in comments:
        if not c.text.startswith("Failure:"):
            continue
        after = [e.line for e in script.events if e.line > c.line]
        if not after:
            raise PacketdrillSyntaxError(
                script.path, c.line, "a '// Failure:' comment must precede an event"
            )
        found = ExpectedFailure(min(after), c.line, c.text[len("Failure:") :].strip())
    return found


_ERRNO_RE = re.compile(r"^E[A-Z0-9]+$")
_FLAG_WORD_RE = re.compile(f"^[{FLAG_LETTERS}]+$")
_TIME_START = frozenset({"+", "*"})


class _Parser:
    def __init__(self, tokens: list[Token], path: str) -> None:
        self.toks = tokens
        self.pos = 0
        self.path = path

    # ------------------------------------------------------------------ helpers
    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.toks[min(self.pos + ahead, len(self.toks) - 1)]

    def take(self) -> Token:
        t = self.toks[self.pos]
        if t.kind is not Kind.EOF:
            self.pos += 1
        return t

    def error(self, problem: str, tok: Token | None = None) -> PacketdrillSyntaxError:
        t = self.tok if tok is None else tok
        return PacketdrillSyntaxError(self.path, t.line, problem)

    def error_missing(self, problem: str) -> PacketdrillSyntaxError:
        """Something is missing: blame the line of the last token read, not the next line
        (which usually starts the next event)."""
        t = self.tok
        if self.pos > 0 and (t.kind is Kind.EOF or t.line > self.toks[self.pos - 1].line):
            t = self.toks[self.pos - 1]
        return PacketdrillSyntaxError(self.path, t.line, problem)

    def is_punct(self, text: str, tok: Token | None = None) -> bool:
        t = self.tok if tok is None else tok
        return t.kind is Kind.PUNCT and t.text == text

    def is_word(self, text: str) -> bool:
        return self.tok.kind is Kind.WORD and self.tok.text == text

    def expect_punct(self, text: str, what: str) -> Token:
        if not self.is_punct(text):
            raise self.error_missing(f"expected {text!r} {what}, found {self.tok.describe()}")
        return self.take()

    def expect_int(self, what: str, lo: int = 0, hi: int = U32) -> int:
        t = self.tok
        if t.kind is not Kind.NUMBER or not isinstance(t.value, int):
            raise self.error_missing(f"expected an integer {what}, found {t.describe()}")
        self.take()
        if not lo <= t.value <= hi:
            raise self.error(f"{what} {t.value} out of range {lo}..{hi}", t)
        return t.value

    def at_time_start(self) -> bool:
        t = self.tok
        return t.kind is Kind.NUMBER or (t.kind is Kind.PUNCT and t.text in _TIME_START)

    # ------------------------------------------------------------------ script
    def script(self) -> Script:
        sc = Script(self.path)
        while self.tok.kind is Kind.OPTION:
            t = self.take()
            name, _, value = t.text.partition("=")
            sc.options.append((name, value, t.line))
        while self.tok.kind is Kind.COMMAND:
            t = self.take()
            sc.init_commands.append((CommandSpec(t.text), t.line))
        while self.tok.kind is not Kind.EOF:
            t = self.tok
            if t.kind is Kind.OPTION:
                raise self.error(f"option --{t.text} must come before the first event")
            if t.kind is Kind.COMMAND:
                self.take()
                sc.cleanup_commands.append((CommandSpec(t.text), t.line))
                continue
            if sc.cleanup_commands:
                raise PacketdrillSyntaxError(
                    self.path,
                    sc.cleanup_commands[-1][1],
                    "a backtick command between events needs a time (only commands before "
                    "the first event and after the last one may be untimed)",
                )
            sc.events.append(self.event())
        if not sc.events:
            raise PacketdrillSyntaxError(self.path, 1, "script has no events")
        return sc

    def event(self) -> Event:
        start = self.tok
        if not self.at_time_start():
            raise self.error(f"expected a time at the start of an event, found {start.describe()}")
        time = self.time()
        end: TimeSpec | None = None
        if self.is_punct("..."):
            self.take()
            if time.kind.ranged or time.kind is TimeKind.ANY:
                raise self.error(
                    "a blocking system call needs a plain start time, not a range or '*'"
                )
            end = self.time()
            if end.kind not in (TimeKind.ABSOLUTE, TimeKind.RELATIVE):
                raise self.error("the end time of a blocking call must be a plain time")
        t = self.tok
        action: Action
        if t.kind is Kind.PUNCT and t.text in ("<", ">"):
            if end is not None:
                raise self.error("'...' (blocking) is only allowed on system calls", t)
            action = self.packet()
            if action.inbound and (time.kind.ranged or time.kind is TimeKind.ANY):
                raise self.error("time ranges and '*' are only allowed on outbound packets", start)
        elif t.kind is Kind.WORD:
            action = self.syscall(end)
        elif t.kind is Kind.COMMAND:
            self.take()
            action = CommandSpec(t.text)
        elif t.kind is Kind.CODE:
            self.take()
            action = CodeSpec(t.text)
        else:
            raise self.error(
                f"expected a packet ('<' or '>'), a system call, a backtick command "
                f"or a %{{ }}% block after the time, found {t.describe()}"
            )
        if not isinstance(action, (PacketSpec, SyscallSpec)) and end is not None:
            raise self.error("'...' (blocking) is only allowed on system calls", t)
        if (time.kind.ranged or time.kind is TimeKind.ANY) and not isinstance(action, PacketSpec):
            raise self.error("time ranges and '*' are only allowed on outbound packets", start)
        return Event(start.line, time, action)

    def time(self) -> TimeSpec:
        if self.is_punct("*"):
            self.take()
            return TimeSpec(TimeKind.ANY)
        rel, usecs = self.time_value()
        if not self.is_punct("~"):
            return TimeSpec(TimeKind.RELATIVE if rel else TimeKind.ABSOLUTE, usecs)
        self.take()
        rel2, end = self.time_value()
        if rel != rel2:
            raise self.error("both ends of a time range must be relative ('+') or both absolute")
        if end < usecs:
            raise self.error("a time range must not end before it starts")
        return TimeSpec(TimeKind.RELATIVE_RANGE if rel else TimeKind.ABSOLUTE_RANGE, usecs, end)

    def time_value(self) -> tuple[bool, int]:
        rel = False
        if self.is_punct("+"):
            self.take()
            rel = True
        t = self.tok
        if t.kind is not Kind.NUMBER:
            raise self.error(f"expected a time in seconds, found {t.describe()}")
        self.take()
        if t.text.lower().startswith("0x"):
            raise self.error(f"a time must be decimal seconds, not {t.text}", t)
        return rel, round(float(t.value) * 1_000_000)

    # ------------------------------------------------------------------ packets
    def packet(self) -> PacketSpec:
        dir_tok = self.take()
        direction = dir_tok.text
        ecn = None
        if (self.is_punct("[") or self.is_punct("(")) and self.peek().kind is Kind.WORD:
            closer = "]" if self.is_punct("[") else ")"
            self.take()
            ecn_tok = self.take()
            if ecn_tok.text not in ECN_CODEPOINTS:
                raise self.error(
                    f"unknown IP ECN codepoint {ecn_tok.text!r} (known: "
                    f"{', '.join(ECN_CODEPOINTS)})",
                    ecn_tok,
                )
            if ecn_tok.text == "ect01" and direction == "<":
                raise self.error("[ect01] can only be used with outbound packets", ecn_tok)
            ecn = ecn_tok.text
            self.expect_punct(closer, "after the ECN codepoint")
        src_port = dst_port = None
        if self.tok.kind is Kind.NUMBER and self.is_punct(">", self.peek()):
            src_port = self.expect_int("source port", 1, U16)
            self.take()
            dst_port = self.expect_int("destination port", 1, U16)
        flags = self.flags()
        seq = self.expect_int("start sequence number")
        self.expect_punct(":", "between the start and end sequence numbers")
        end = self.expect_int("end sequence number")
        self.expect_punct("(", "before the payload length")
        length_tok = self.tok
        length = self.expect_int("payload length", 0, U16)
        self.expect_punct(")", "after the payload length")
        if end != seq + length:
            raise self.error(
                f"inconsistent sequence numbers: {seq}:{end} is {end - seq} bytes "
                f"but the length says {length}",
                length_tok,
            )
        fields: dict[str, int] = {}
        while self.tok.kind is Kind.WORD and self.tok.text in ("ack", "win", "urg"):
            name = self.take().text
            if name in fields:
                raise self.error(f"'{name}' given twice")
            hi = U32 if name == "ack" else U16
            what = {"ack": "acknowledgement number", "win": "window", "urg": "urgent pointer"}
            fields[name] = self.expect_int(what[name], 0, hi)
        options: tuple[TcpOption, ...] | None = ()
        if self.is_punct("<"):
            options = self.options()
        ack = fields.get("ack")
        if direction == "<" and "win" not in fields:
            raise self.error("window must be specified for inbound packets ('win N')", dir_tok)
        if direction == "<" and "." in flags and ack is None:
            raise self.error("an inbound packet with the ACK flag ('.') needs 'ack N'", dir_tok)
        return PacketSpec(
            direction,
            flags,
            seq,
            end,
            length,
            ack,
            fields.get("win"),
            fields.get("urg"),
            options,
            src_port,
            dst_port,
            ecn,
        )

    def flags(self) -> str:
        t = self.tok
        if self.is_punct("-"):
            self.take()
            return ""
        letters = ""
        if t.kind is Kind.WORD:
            if not _FLAG_WORD_RE.match(t.text):
                raise self.error(
                    f"bad TCP flags {t.text!r}: use the letters {FLAG_LETTERS} "
                    "and '.' for ACK, or '-' for none"
                )
            if len(set(t.text)) != len(t.text):
                raise self.error(f"TCP flag repeated in {t.text!r}")
            letters = t.text
            self.take()
            if self.is_punct(".") and not self.tok.spaced:
                self.take()
                return _canonical_flags(letters) + "."
            return _canonical_flags(letters)
        if self.is_punct("."):
            self.take()
            return "."
        raise self.error(
            f"expected TCP flags (like S, S., P., F., R, '.' or '-'), found {t.describe()}"
        )

    def options(self) -> tuple[TcpOption, ...] | None:
        self.expect_punct("<", "to open the option list")
        if self.is_punct("..."):
            self.take()
            self.expect_punct(">", "after '<...'")
            return None
        opts: list[TcpOption] = []
        while True:
            opts.append(self.option())
            if self.is_punct(","):
                self.take()
                continue
            if self.is_punct(">"):
                self.take()
                break
            raise self.error_missing(
                f"expected ',' or '>' in the option list, found {self.tok.describe()}"
            )
        size = sum(_option_size(o) for o in opts)
        if size > 40:
            raise self.error_missing(f"TCP options take {size} bytes; at most 40 fit in a header")
        return tuple(opts)

    def option(self) -> TcpOption:
        t = self.tok
        if t.kind is not Kind.WORD:
            raise self.error(f"expected a TCP option name, found {t.describe()}")
        self.take()
        name = t.text
        if name in ("nop", "eol"):
            return TcpOption(name)
        if name == "mss":
            return TcpOption("mss", self.expect_int("mss value", 0, U16))
        if name == "wscale":
            return TcpOption("wscale", self.expect_int("window scale shift", 0, 255))
        if name == "sackOK":
            return TcpOption("sackOK")
        if name == "sack":
            blocks: list[tuple[int, int]] = []
            while self.tok.kind is Kind.NUMBER:
                left = self.expect_int("SACK left edge")
                self.expect_punct(":", "in a SACK block")
                right = self.expect_int("SACK right edge")
                blocks.append((left, right))
            if not blocks:
                raise self.error_missing("'sack' needs at least one block START:END")
            if len(blocks) > 4:
                raise self.error_missing("at most 4 SACK blocks fit in a TCP header")
            return TcpOption("sack", blocks=tuple(blocks))
        if name == "TS":
            if not self.is_word("val"):
                raise self.error_missing(f"expected 'TS val N ecr N', found {self.tok.describe()}")
            self.take()
            val = self.expect_int("TS val")
            if not self.is_word("ecr"):
                raise self.error_missing(
                    f"expected 'ecr N' after the TS val, found {self.tok.describe()}"
                )
            self.take()
            ecr = self.expect_int("TS ecr")
            return TcpOption("TS", val=val, ecr=ecr)
        if name in ("FO", "FOEXP"):
            # TCP Fast Open (RFC 7413 §4.1.1; FOEXP is the experimental kind 254 with magic
            # 0xF989): an optional cookie of 4-16 bytes, written in hex.
            cookie = b""
            if self.tok.kind in (Kind.WORD, Kind.NUMBER) and not self.is_punct(","):
                ctok = self.take()
                text = ctok.text[2:] if ctok.text.lower().startswith("0x") else ctok.text
                try:
                    cookie = bytes.fromhex(text)
                except ValueError:
                    raise self.error(
                        f"a Fast Open cookie is hex digits, found {ctok.text!r}", ctok
                    ) from None
                if not 4 <= len(cookie) <= 16:
                    raise self.error(
                        f"a Fast Open cookie has 4 to 16 bytes, not {len(cookie)}", ctok
                    )
            return TcpOption(name, cookie=cookie)
        raise self.error(
            f"unknown or unsupported TCP option {name!r} (known: nop, eol, mss, "
            "wscale, sackOK, sack, TS, FO, FOEXP)",
            t,
        )

    # ----------------------------------------------------------------- syscalls
    def syscall(self, end: TimeSpec | None) -> SyscallSpec:
        name_tok = self.take()
        name = name_tok.text
        if not self.is_punct("("):
            raise self.error(
                f"expected '(' after the system call name {name!r}, found {self.tok.describe()}"
            )
        args = self.call_args()
        if not self.is_punct("="):
            raise self.error_missing(
                f"expected '= RESULT' after {name}(...), found {self.tok.describe()}"
            )
        self.take()
        result = self.expr()
        errno_name = None
        if self.tok.kind is Kind.WORD and _ERRNO_RE.match(self.tok.text):
            errno_name = self.take().text
        note = None
        if self.is_punct("(") and self.tok.line == self.toks[self.pos - 1].line:
            note = self.note()
        return SyscallSpec(name, args, result, errno_name, note, end)

    def call_args(self) -> tuple[Expr, ...]:
        self.expect_punct("(", "to open the argument list")
        args: list[Expr] = []
        if self.is_punct(")"):
            self.take()
            return ()
        while True:
            args.append(self.expr())
            if self.is_punct(","):
                self.take()
                continue
            if self.is_punct(")"):
                self.take()
                return tuple(args)
            raise self.error_missing(
                f"expected ',' or ')' in the argument list, found {self.tok.describe()}"
            )

    def note(self) -> str:
        open_tok = self.take()
        depth = 1
        words: list[str] = []
        while depth:
            t = self.tok
            if t.kind is Kind.EOF:
                raise self.error("unterminated '(' note after the result", open_tok)
            self.take()
            if self.is_punct("(", t):
                depth += 1
            elif self.is_punct(")", t):
                depth -= 1
                if not depth:
                    break
            words.append(t.text)
        return " ".join(words)

    def expr(self) -> Expr:
        left = self.unary()
        while self.is_punct("|"):
            self.take()
            left = BinaryExpr("|", left, self.unary())
        return left

    def unary(self) -> Expr:
        t = self.tok
        if self.is_punct("..."):
            self.take()
            return EllipsisExpr()
        if t.kind is Kind.NUMBER:
            self.take()
            if not isinstance(t.value, int):
                raise self.error(f"expected an integer, found {t.text}", t)
            return IntExpr(t.value, t.text)
        if self.is_punct("-") and self.peek().kind is Kind.NUMBER:
            self.take()
            n = self.take()
            if not isinstance(n.value, int):
                raise self.error(f"expected an integer, found -{n.text}", n)
            return IntExpr(-n.value, "-" + n.text)
        if t.kind is Kind.STRING:
            self.take()
            if self.is_punct("..."):
                self.take()
                return StringExpr(t.text, repeat=True)
            return StringExpr(t.text)
        if self.is_punct("["):
            return ListExpr(self.bracketed("[", "]"))
        if self.is_punct("{"):
            return StructExpr(self.bracketed("{", "}"))
        if t.kind is Kind.WORD:
            self.take()
            if self.is_punct("(") and not self.tok.spaced:
                call = CallExpr(t.text, self.call_args())
                if self.is_punct("="):  # a struct field with a count: msg_iov(1)=[...]
                    self.take()
                    return BinaryExpr("=", call, self.expr())
                return call
            if self.is_punct("="):
                self.take()
                return BinaryExpr("=", WordExpr(t.text), self.expr())
            return WordExpr(t.text)
        raise self.error_missing(f"expected an expression, found {t.describe()}")

    def bracketed(self, opener: str, closer: str) -> tuple[Expr, ...]:
        self.expect_punct(opener, "")
        items: list[Expr] = []
        if self.is_punct(closer):
            self.take()
            return ()
        while True:
            items.append(self.expr())
            if self.is_punct(","):
                self.take()
                continue
            if self.is_punct(closer):
                self.take()
                return tuple(items)
            raise self.error_missing(f"expected ',' or {closer!r}, found {self.tok.describe()}")


def _canonical_flags(letters: str) -> str:
    return "".join(ch for ch in FLAG_LETTERS if ch in letters)


def _option_size(o: TcpOption) -> int:
    if o.kind in ("FO", "FOEXP"):
        return (2 if o.kind == "FO" else 4) + len(o.cookie)
    return {"nop": 1, "eol": 1, "mss": 4, "wscale": 3, "sackOK": 2, "TS": 10}.get(
        o.kind, 2 + 8 * len(o.blocks)
    )


__all__ = [
    "ECN_CODEPOINTS",
    "FLAG_LETTERS",
    "Action",
    "BinaryExpr",
    "CallExpr",
    "CodeSpec",
    "CommandSpec",
    "EllipsisExpr",
    "Event",
    "ExpectedFailure",
    "Expr",
    "IntExpr",
    "ListExpr",
    "PacketSpec",
    "PacketdrillSyntaxError",
    "Script",
    "StringExpr",
    "StructExpr",
    "SyscallSpec",
    "TcpOption",
    "TimeKind",
    "TimeSpec",
    "WordExpr",
    "parse",
    "parse_file",
]
