"""Draw the loss-state machine (docs/images/loss-states.svg) from its transition table.

The picture is generated from ``synack.tcp.loss_state.TRANSITIONS`` so it cannot
drift from the code: ``tests/tcp/test_loss_state.py`` regenerates it and compares.
Run ``.venv/bin/python scripts/loss_states_svg.py`` after changing the table.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape

from synack.tcp.loss_state import TRANSITIONS, CaState

OUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "loss-states.svg"

#: Open and Disorder (cwnd not reduced) share a box; arrows to and from the other
#: states attach to the box, so the picture shows each kind of move once.
GROUP = (40.0, 60.0, 250.0, 350.0)  # x, y, width, height
POS: dict[CaState, tuple[float, float]] = {
    CaState.DISORDER: (165.0, 150.0),
    CaState.OPEN: (165.0, 330.0),
    CaState.CWR: (560.0, 80.0),
    CaState.RECOVERY: (680.0, 235.0),
    CaState.LOSS: (560.0, 420.0),
}
UNREDUCED = (CaState.OPEN, CaState.DISORDER)
RX, RY = 62.0, 26.0
COLOUR = {
    CaState.OPEN: "#e8f5e9",
    CaState.DISORDER: "#fffde7",
    CaState.CWR: "#e3f2fd",
    CaState.RECOVERY: "#fff3e0",
    CaState.LOSS: "#ffebee",
}
Node = CaState | None  # None: the Open/Disorder box


def _edges() -> dict[tuple[Node, Node], list[str]]:
    """(from, to) -> the triggers of that move, in table order; moves between the box
    and another state are merged (None stands for the box)."""
    out: dict[tuple[Node, Node], list[str]] = defaultdict(list)
    for (old, trigger), news in TRANSITIONS.items():
        for new in sorted(news):
            inside = old in UNREDUCED and new in UNREDUCED
            a: Node = None if old in UNREDUCED and not inside else old
            b: Node = None if new in UNREDUCED and not inside else new
            if trigger not in out[(a, b)]:
                out[(a, b)].append(trigger)
    return out


def _centre(n: Node) -> tuple[float, float]:
    if n is None:
        x, y, w, h = GROUP
        return x + w / 2, y + h / 2
    return POS[n]


def _rim(n: Node, tx: float, ty: float) -> tuple[float, float]:
    """Where an arrow from or to ``n`` towards (tx, ty) meets its outline."""
    cx, cy = _centre(n)
    a = math.atan2(ty - cy, tx - cx)
    if n is None:  # the box: scale the direction to its nearest side
        _, _, w, h = GROUP
        c, si = math.cos(a), math.sin(a)
        k = min(w / 2 / abs(c) if c else math.inf, h / 2 / abs(si) if si else math.inf)
        return cx + k * c, cy + k * si
    return cx + RX * math.cos(a), cy + RY * math.sin(a)


def _arrow(parts: list[str], a: Node, b: Node, label: str, bend: float) -> None:
    (x1, y1), (x2, y2) = _centre(a), _centre(b)
    if a is None or b is None:  # from the box's right edge, level with the state
        other = b if a is None else a
        assert other is not None
        y = POS[other][1]
        gx = GROUP[0] + GROUP[2]
        y = min(max(y, GROUP[1] + 20), GROUP[1] + GROUP[3] - 20)
        if a is None:
            x1, y1 = gx - 1, y
        else:
            x2, y2 = gx - 1, y
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy)
    nx, ny = dy / length, -dx / length
    mx, my = (x1 + x2) / 2 + nx * bend, (y1 + y2) / 2 + ny * bend
    sx, sy = (x1, y1) if a is None else _rim(a, mx, my)
    ex, ey = (x2, y2) if b is None else _rim(b, mx, my)
    parts.append(
        f'<path d="M{sx:.1f},{sy:.1f} Q{mx:.1f},{my:.1f} {ex:.1f},{ey:.1f}" '
        'fill="none" stroke="#444" marker-end="url(#a)"/>'
    )
    # The label sits beside the curve's midpoint, on the outside of the bend.
    lx = (sx + 2 * mx + ex) / 4 + nx * 14
    ly = (sy + 2 * my + ey) / 4 + ny * 14
    anchor = "start" if nx > 0.35 else ("end" if nx < -0.35 else "middle")
    parts.append(
        f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="{anchor}" '
        f'fill="#1a237e">{escape(label)}</text>'
    )


def render() -> str:
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="500" '
        'viewBox="0 0 800 500" font-family="sans-serif" font-size="12">',
        "<title>synack loss states (Linux tcp_ca_state)</title>",
        '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="#444"/></marker></defs>',
        '<rect width="800" height="500" fill="white"/>',
    ]
    x, y, w, h = GROUP
    parts.append(
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="14" fill="#fafafa" '
        'stroke="#888" stroke-dasharray="5,4"/>'
    )
    parts.append(
        f'<text x="{x + w / 2}" y="{y - 10}" text-anchor="middle" fill="#555">'
        "cwnd not reduced</text>"
    )
    edges = _edges()
    for (a, b), triggers in edges.items():
        label = ", ".join(triggers)
        if a is not None and a is b:  # a loop under the state
            cx, cy = POS[a]
            parts.append(
                f'<path d="M{cx + 30:.1f},{cy + RY - 4:.1f} C{cx + 80:.1f},'
                f"{cy + 70:.1f} {cx + 120:.1f},{cy + 10:.1f} {cx + RX:.1f},"
                f'{cy + 4:.1f}" fill="none" stroke="#444" marker-end="url(#a)"/>'
            )
            parts.append(
                f'<text x="{cx + 100:.1f}" y="{cy + 56:.1f}" fill="#1a237e">{escape(label)}</text>'
            )
            continue
        twin = (b, a) in edges
        _arrow(parts, a, b, label, 26.0 if twin else 0.0)
    for state, (cx, cy) in POS.items():
        parts.append(
            f'<ellipse cx="{cx}" cy="{cy}" rx="{RX}" ry="{RY}" '
            f'fill="{COLOUR[state]}" stroke="#333"/>'
        )
        parts.append(
            f'<text x="{cx}" y="{cy - 2}" text-anchor="middle" font-weight="bold">{state}</text>'
        )
        parts.append(
            f'<text x="{cx}" y="{cy + 13}" text-anchor="middle" fill="#555">'
            f"tcpi_ca_state {int(state)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
