"""The congestion controls a connection can be given by name (``TcpConfig.congestion_control``,
``--cc``): NewReno (RFC 5681, RFC 6582), CUBIC (RFC 9438) and BBR (draft-ietf-ccwg-bbr)."""

from __future__ import annotations

from .bbr import Bbr
from .congestion import CongestionControl, Cubic, NewReno

ALGORITHMS: dict[str, type[CongestionControl]] = {
    NewReno.name: NewReno,
    Cubic.name: Cubic,
    "bbr": Bbr,
}


def create(name: str, mss: int, initial_window: int) -> CongestionControl:
    """Instantiate a registered algorithm by name, with a clear error for unknown names."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; known: {', '.join(sorted(ALGORITHMS))}"
        ) from None
    return cls(mss, initial_window)
