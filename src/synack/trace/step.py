"""One explained event of a run (:class:`Step`): when, who, what and why, with the
concept IDs and RFC section it illustrates; the narration (:mod:`.narrate`), the
timeline and the report are made of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from .words import CONCEPT_ID


@dataclass
class Step:
    """One explained event: when, who, what (header) and why (narration)."""

    t: float
    who: str
    kind: str
    header: str
    text: str = ""
    concepts: list[str] = field(default_factory=list)
    rfc: str = ""
    seg: int | None = None
    rec: int | None = None

    def tag(self) -> str:
        bits = []
        if self.concepts:
            bits.append(" ".join(dict.fromkeys(self.concepts)))
        if self.rfc:
            bits.append(self.rfc)
        return f"[{'; '.join(bits)}]" if bits else ""

    def render(self, width: int = 0) -> str:
        head = f"{self.t:10.4f}s  {self.who:<7} {self.header}"
        if not self.text and not self.concepts:
            return head
        body = self.text
        tag = self.tag()
        return f"{head}\n{'':21}{body}  {tag}".rstrip() if body else f"{head}  {tag}"


def concepts_in(text: str) -> list[str]:
    return [f"C{m}" for m in CONCEPT_ID.findall(text)]
