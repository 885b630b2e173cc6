"""The simulated bottleneck of the congestion-control tests: 100 Mbit/s, 50 ms RTT,
a drop-tail queue of one bandwidth-delay product, and the modern stack's config
with every relevant knob explicit."""

from __future__ import annotations

from synack.sim import PathConfig
from synack.tcp.config import TcpConfig

RATE = 100_000_000  # bit/s
DELAY = 0.025  # one way: RTT 50 ms
RTT = 2 * DELAY
BDP = int(RATE * RTT / 8)  # 625,000 bytes
MIB4 = 4 << 20


def config(cc: str, **changes: object) -> TcpConfig:
    """The modern stack, every relevant knob explicit (the defaults may change)."""
    base: dict[str, object] = {
        "mss": 1460,
        "congestion_control": cc,
        "window_scaling": True,
        "timestamps": True,
        "sack": True,
        "rack": True,
        "tlp": True,
        "ecn": "off",
        "rcv_buf": MIB4,
        "snd_buf": MIB4,
        "delayed_ack": 0.2,
        "nodelay": False,
        "initial_window": 10,
        "rto_min": 1.0,
        "rto_initial": 1.0,
        "keepalive": False,
        "window_in_segments": True,
        "max_ooo_blocks": 64,
        "abc_limit": 2,
        "tlp_wc_delack": 0.2,
        "quickack": 0,
        "psh_every_burst": False,
        "user_timeout": None,
    }
    base.update(changes)
    return TcpConfig(**base)  # type: ignore[arg-type]


def bottleneck(rate: float = RATE, delay: float = DELAY, **kw: object) -> PathConfig:
    """A drop-tail bottleneck with a queue of one bandwidth-delay product."""
    kw.setdefault("queue_bytes", int(rate * 2 * delay / 8))
    return PathConfig(delay=delay, rate_bps=rate, **kw)  # type: ignore[arg-type]
