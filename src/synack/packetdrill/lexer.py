"""Tokens of the packetdrill script language.

The language is line-oriented only by convention: an event starts with a time
and ends where the next time begins, so the lexer produces a flat stream of
tokens that each carry the line (and column) where they start.  Three kinds
of token swallow raw text whole, because what is inside them belongs to
another language: a shell command between backticks, a Python-like block
between ``%{`` and ``}%``, and an option line ``--name=value``.

Comments (``//`` to the end of the line and ``/* ... */``) are dropped from
the token stream but kept in :attr:`Lexed.comments`, because a ``// Failure:``
comment tells the runner where a self-test script is meant to fail.

Anything the lexer cannot read raises :class:`PacketdrillSyntaxError` naming
the file, the line and the problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PacketdrillSyntaxError(Exception):
    """A malformed script: ``path:line: problem``."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class Kind(enum.Enum):
    NUMBER = "number"
    WORD = "word"
    PUNCT = "punctuation"
    STRING = "string"
    COMMAND = "backtick command"
    CODE = "%{ }% block"
    OPTION = "option"
    EOF = "end of file"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    line: int
    col: int
    #: Integer or float value of a NUMBER token.
    value: int | float = 0
    #: Whether whitespace (or a comment) separates this token from the previous one.
    spaced: bool = True

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "end of file"
        if self.kind in (Kind.COMMAND, Kind.CODE):
            return str(self.kind.value)
        return repr(self.text)


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    text: str  # without the // or /* */ markers, stripped


@dataclass(slots=True)
class Lexed:
    tokens: list[Token] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


_PUNCT3 = ("...",)
_PUNCT1 = "<>()[]{},:=~|+-*.;!/&"
_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_WORD_CHARS = _WORD_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def tokenize(text: str, path: str = "<script>") -> Lexed:
    """Split ``text`` into tokens; raise :class:`PacketdrillSyntaxError` on bad input."""
    return _Lexer(text, path).run()


class _Lexer:
    def __init__(self, text: str, path: str) -> None:
        self.s = text
        self.path = path
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.out = Lexed()
        self.spaced = True

    def error(self, problem: str, line: int | None = None) -> PacketdrillSyntaxError:
        return PacketdrillSyntaxError(self.path, self.line if line is None else line, problem)

    def col(self) -> int:
        return self.i - self.line_start + 1

    def advance_over(self, end: int) -> None:
        """Move to ``end``, counting the newlines passed."""
        s = self.s
        pos = s.find("\n", self.i, end)
        while pos != -1:
            self.line += 1
            self.line_start = pos + 1
            pos = s.find("\n", pos + 1, end)
        self.i = end

    def emit(self, kind: Kind, text: str, line: int, col: int, value: int | float = 0) -> None:
        self.out.tokens.append(Token(kind, text, line, col, value, self.spaced))
        self.spaced = False

    def run(self) -> Lexed:
        s = self.s
        n = len(s)
        while self.i < n:
            c = s[self.i]
            if c == "\n":
                self.advance_over(self.i + 1)
                self.spaced = True
            elif c in " \t\r\f\v":
                self.i += 1
                self.spaced = True
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                end = n if end == -1 else end
                self.out.comments.append(Comment(self.line, s[self.i + 2 : end].strip()))
                self.i = end
                self.spaced = True
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end == -1:
                    raise self.error("unterminated /* comment")
                self.out.comments.append(Comment(self.line, s[self.i + 2 : end].strip()))
                self.advance_over(end + 2)
                self.spaced = True
            elif c == "`":
                self.raw_block("`", "`", Kind.COMMAND, "backtick command")
            elif s.startswith("%{", self.i):
                self.raw_block("%{", "}%", Kind.CODE, "%{ block")
            elif s.startswith("--", self.i) and self.i + 2 < n and s[self.i + 2] in _WORD_START:
                self.option()
            elif c in _DIGITS or (c == "." and self.i + 1 < n and s[self.i + 1] in _DIGITS):
                self.number()
            elif c in _WORD_START:
                start = self.i
                j = start + 1
                while j < n and s[j] in _WORD_CHARS:
                    j += 1
                self.emit(Kind.WORD, s[start:j], self.line, self.col())
                self.i = j
            elif c == '"':
                self.string()
            elif s.startswith("...", self.i):
                self.emit(Kind.PUNCT, "...", self.line, self.col())
                self.i += 3
            elif c in _PUNCT1:
                self.emit(Kind.PUNCT, c, self.line, self.col())
                self.i += 1
            else:
                raise self.error(f"unexpected character {c!r}")
        self.emit(Kind.EOF, "", self.line, self.col())
        return self.out

    def raw_block(self, opener: str, closer: str, kind: Kind, what: str) -> None:
        line, col = self.line, self.col()
        start = self.i + len(opener)
        end = self.s.find(closer, start)
        if end == -1:
            raise self.error(f"unterminated {what} (opened here, no closing {closer!r})")
        self.emit(kind, self.s[start:end], line, col)
        self.advance_over(end + len(closer))

    def option(self) -> None:
        s = self.s
        n = len(s)
        line, col = self.line, self.col()
        j = self.i + 2
        while j < n and (s[j] in _WORD_CHARS or s[j] == "-"):
            j += 1
        name = s[self.i + 2 : j]
        value = ""
        if j < n and s[j] == "=":
            k = j + 1
            while k < n and not s[k].isspace():
                k += 1
            value = s[j + 1 : k]
            j = k
        self.emit(Kind.OPTION, f"{name}={value}" if value else name, line, col)
        self.i = j

    def number(self) -> None:
        s = self.s
        n = len(s)
        start = self.i
        line, col = self.line, self.col()
        if s.startswith(("0x", "0X"), start) and start + 2 < n and s[start + 2] in _HEX:
            j = start + 2
            while j < n and s[j] in _HEX:
                j += 1
            self.i = j
            self.check_number_end(s[start:j])
            self.emit(Kind.NUMBER, s[start:j], line, col, int(s[start + 2 : j], 16))
            return
        j = start
        while j < n and s[j] in _DIGITS:
            j += 1
        is_float = False
        # A '.' belongs to the number only when a digit follows ("0...0.2" is 0, ..., 0.2).
        if j + 1 < n and s[j] == "." and s[j + 1] in _DIGITS:
            is_float = True
            j += 1
            while j < n and s[j] in _DIGITS:
                j += 1
        text = s[start:j]
        self.i = j
        self.check_number_end(text)
        self.emit(Kind.NUMBER, text, line, col, float(text) if is_float else int(text))

    def check_number_end(self, text: str) -> None:
        if self.i < len(self.s) and self.s[self.i] in _WORD_START:
            end = self.i
            while end < len(self.s) and self.s[end] in _WORD_CHARS:
                end += 1
            raise self.error(f"malformed number {text + self.s[self.i : end]!r}")

    def string(self) -> None:
        s = self.s
        n = len(s)
        line, col = self.line, self.col()
        j = self.i + 1
        out: list[str] = []
        while True:
            if j >= n or s[j] == "\n":
                raise self.error("unterminated string")
            c = s[j]
            if c == '"':
                break
            if c == "\\":
                if j + 1 >= n:
                    raise self.error("unterminated string")
                esc = s[j + 1]
                if esc == "x" and j + 3 < n and s[j + 2] in _HEX and s[j + 3] in _HEX:
                    out.append(chr(int(s[j + 2 : j + 4], 16)))
                    j += 4
                    continue
                if esc not in _ESCAPES:
                    raise self.error(f"unknown escape \\{esc} in string")
                out.append(_ESCAPES[esc])
                j += 2
                continue
            out.append(c)
            j += 1
        self.emit(Kind.STRING, "".join(out), line, col)
        self.i = j + 1


__all__ = ["Comment", "Kind", "Lexed", "PacketdrillSyntaxError", "Token", "tokenize"]
