"""Deterministic simulated network: virtual clock, impaired paths, packet routing.

Typical use::

    net = Network(seed=1)
    net.attach(a)
    net.attach(b)
    net.set_link(a.address, b.address, PathConfig(delay=0.025, rate_bps=10e6))
    net.run(until=5.0)
"""

from .clock import Clock, EventHandle, SimulationLimit
from .network import STAT_KEYS, Filter, Host, Network, Process, Tap
from .path import Path, PathConfig, flip_bits, mark_ce

__all__ = [
    "STAT_KEYS",
    "Clock",
    "EventHandle",
    "Filter",
    "Host",
    "Network",
    "Path",
    "PathConfig",
    "Process",
    "SimulationLimit",
    "Tap",
    "flip_bits",
    "mark_ce",
]
