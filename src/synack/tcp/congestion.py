"""Congestion control behind a small interface, registered by name (RFC 5681).

The connection owns loss *detection* (duplicate ACKs, timeouts); an algorithm
here only decides the congestion window and slow-start threshold in answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class CongestionControl(ABC):
    """What a congestion controller must provide.  Sizes are in bytes."""

    name = "abstract"

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        # RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)) when initial_window is 10.
        self.cwnd = min(initial_window * mss, max(2 * mss, 14600)) if initial_window >= 4 \
            else initial_window * mss
        self.ssthresh = 1 << 30  # RFC 5681 §3.1: arbitrarily high

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    @abstractmethod
    def on_ack(self, acked: int, flight: int, now: float) -> None:
        """New data was cumulatively acknowledged outside recovery."""

    @abstractmethod
    def on_loss(self, flight: int, now: float) -> None:
        """Fast retransmit: entering loss recovery (RFC 5681 §3.2 step 2)."""

    @abstractmethod
    def on_recovery_end(self, now: float) -> None:
        """A full acknowledgement ended fast recovery (RFC 6582 §3.2 step 3)."""

    @abstractmethod
    def on_timeout(self, flight: int, now: float) -> None:
        """The retransmission timer expired (RFC 5681 §3.1 eq. 4)."""


class NewReno(CongestionControl):
    """RFC 5681 slow start and congestion avoidance with RFC 6582 recovery sizing."""

    name = "newreno"

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self._ca_acked = 0

    def on_ack(self, acked: int, flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            # RFC 5681 §3.1 eq. 2 with appropriate byte counting, L = 2*SMSS (RFC 3465).
            self.cwnd += min(acked, 2 * self.mss)
        else:
            # Congestion avoidance: one SMSS per cwnd of acknowledged bytes (RFC 5681 eq. 3).
            self._ca_acked += acked
            if self._ca_acked >= self.cwnd:
                self._ca_acked -= self.cwnd
                self.cwnd += self.mss

    def on_loss(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)  # RFC 5681 eq. 4
        self.cwnd = self.ssthresh + 3 * self.mss
        self._ca_acked = 0

    def on_recovery_end(self, now: float) -> None:
        self.cwnd = self.ssthresh  # RFC 6582 §3.2 step 3, option (1)

    def on_timeout(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss  # loss window, RFC 5681 §3.1
        self._ca_acked = 0


ALGORITHMS: dict[str, type[CongestionControl]] = {NewReno.name: NewReno}


def create(name: str, mss: int, initial_window: int) -> CongestionControl:
    """Instantiate a registered algorithm by name, with a clear error for unknown names."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r}; known: "
                         f"{', '.join(sorted(ALGORITHMS))}") from None
    return cls(mss, initial_window)
