"""Round-trip time estimation and the retransmission timeout (RFC 6298, concept C2)."""

from __future__ import annotations


class RttEstimator:
    """SRTT/RTTVAR smoothing and RTO computation per RFC 6298 §2.

    Karn's rule (§3: no samples from retransmitted segments) is the caller's
    job; backoff (§5.5) is kept here so the current RTO is one number.
    """

    __slots__ = (
        "_base_rto",
        "backoff",
        "clock_granularity",
        "floor_variance",
        "latest",
        "rto_max",
        "rto_min",
        "rttvar",
        "samples",
        "srtt",
    )

    ALPHA = 1 / 8
    BETA = 1 / 4
    K = 4

    def __init__(
        self,
        initial_rto: float = 1.0,
        rto_min: float = 1.0,
        rto_max: float = 60.0,
        clock_granularity: float = 0.001,
        floor_variance: bool = False,
    ) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.latest: float | None = None
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.clock_granularity = clock_granularity
        #: Linux tcp_rtt_estimator()/__tcp_set_rto(): rto_min floors the variance term,
        #: RTO = SRTT + max(4*RTTVAR, rto_min), instead of the whole RTO (RFC 6298 §2.4).
        self.floor_variance = floor_variance
        self._base_rto = initial_rto  # §2.1
        self.backoff = 0
        self.samples = 0

    def sample(self, r: float) -> None:
        """Feed one RTT measurement R (§2.2 first, §2.3 later ones)."""
        r = max(r, 0.0)
        self.latest = r
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = (1 - self.BETA) * self.rttvar + self.BETA * abs(self.srtt - r)
            self.srtt = (1 - self.ALPHA) * self.srtt + self.ALPHA * r
        var = max(self.clock_granularity, self.K * self.rttvar)
        if self.floor_variance:
            var = max(var, self.rto_min)
        self._base_rto = self.srtt + var
        self.backoff = 0  # a fresh sample ends backoff (§5.7 discussion)
        self.samples += 1

    @property
    def rto(self) -> float:
        """The current timeout, clamped to [rto_min, rto_max] (§2.4, §2.5) and backed off."""
        base = min(max(self._base_rto, self.rto_min), self.rto_max)
        return min(base * (1 << self.backoff), self.rto_max)

    def back_off(self) -> None:
        """Double the timeout after it expires (§5.5)."""
        if self.rto < self.rto_max:
            self.backoff += 1

    def reset_for_data(self, floor: float = 3.0) -> None:
        """§5.7: if the SYN timed out with RTO < 3 s, start data with RTO 3 s."""
        if self.srtt is None:
            self._base_rto = max(self._base_rto, floor)
        self.backoff = 0
