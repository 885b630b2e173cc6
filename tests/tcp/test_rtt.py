"""RFC 6298 retransmission timer arithmetic (concept C2).

Sample values are chosen so that every intermediate result is exact in binary
floating point, so the expected SRTT/RTTVAR/RTO are compared with ``==``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.tcp.rtt import RttEstimator


def test_gains_alpha_beta_k_rfc6298_section2() -> None:
    """§2.3 with alpha = 1/8, beta = 1/4, K = 4, seen in what they do: after the RTT
    steps from 0.5 s to 1.5 s, SRTT closes 1/8 of the remaining gap per sample; once
    samples equal SRTT, RTTVAR decays by 3/4 per sample; RTO stays SRTT + 4 RTTVAR."""
    r = RttEstimator(rto_min=0.0, clock_granularity=0.0)
    r.sample(0.5)
    gap = 1.0
    for _ in range(6):
        r.sample(1.5)
        gap *= 7 / 8
        assert r.srtt == 1.5 - gap
        assert r.rto == r.srtt + 4 * r.rttvar
    srtt = r.srtt
    var = r.rttvar
    for _ in range(6):
        r.sample(srtt)
        var *= 3 / 4
        assert r.srtt == srtt and r.rttvar == var
        assert r.rto == srtt + 4 * var


def test_initial_rto_before_any_sample() -> None:
    """§2.1: until a measurement is made RTO is the initial value (1 s)."""
    r = RttEstimator()
    assert r.srtt is None
    assert r.latest is None
    assert r.samples == 0
    assert r.rto == 1.0
    assert RttEstimator(initial_rto=2.5, rto_min=1.0).rto == 2.5


def test_first_sample_c2() -> None:
    """§2.2: SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR)."""
    r = RttEstimator(rto_min=0.1)
    r.sample(0.5)
    assert r.srtt == 0.5
    assert r.rttvar == 0.25
    assert r.latest == 0.5
    assert r.samples == 1
    assert r.rto == 0.5 + 4 * 0.25  # 1.5


def test_subsequent_samples_exact_values() -> None:
    """§2.3: RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'| (old SRTT), then SRTT <- 7/8 SRTT + 1/8 R'."""
    r = RttEstimator(rto_min=0.1)
    r.sample(0.5)
    r.sample(1.0)
    assert r.rttvar == 0.75 * 0.25 + 0.25 * 0.5  # 0.3125: uses the OLD srtt 0.5
    assert r.srtt == 0.875 * 0.5 + 0.125 * 1.0  # 0.5625
    assert r.rto == 0.5625 + 4 * 0.3125  # 1.8125
    r.sample(0.5625)  # equal to SRTT: variance decays, SRTT unchanged
    assert r.srtt == 0.5625
    assert r.rttvar == 0.75 * 0.3125
    assert r.rto == 0.5625 + 4 * 0.75 * 0.3125
    assert r.samples == 3
    assert r.latest == 0.5625


def test_clock_granularity_floor() -> None:
    """§2.2/2.3: the variance term is at least G (clock granularity)."""
    r = RttEstimator(rto_min=0.0001, clock_granularity=0.125)
    r.sample(0.0625)  # 4*RTTVAR = 0.125 ... equal to G
    assert r.rto == 0.0625 + 0.125
    r2 = RttEstimator(rto_min=0.0001, clock_granularity=0.5)
    r2.sample(0.0625)  # 4*RTTVAR = 0.125 < G = 0.5
    assert r2.rto == 0.0625 + 0.5


def test_rto_min_clamp() -> None:
    """§2.4: RTO below 1 s is rounded up to 1 s (the default rto_min)."""
    r = RttEstimator()
    r.sample(0.01)
    assert r.srtt == 0.01
    assert r.rto == 1.0
    lo = RttEstimator(rto_min=0.2)
    lo.sample(0.01)
    assert lo.rto == 0.2


def test_rto_max_clamp() -> None:
    """§2.5: a maximum may be placed on RTO (at least 60 s)."""
    r = RttEstimator(rto_max=60.0)
    r.sample(30.0)  # 30 + 4*15 = 90
    assert r.rto == 60.0
    r2 = RttEstimator(rto_max=10.0)
    r2.sample(4.0)  # 4 + 8 = 12
    assert r2.rto == 10.0


def test_negative_sample_is_treated_as_zero() -> None:
    r = RttEstimator(rto_min=0.0001, clock_granularity=0.25)
    r.sample(-5.0)
    assert r.latest == 0.0
    assert r.srtt == 0.0
    assert r.rttvar == 0.0
    assert r.rto == 0.25


def test_backoff_doubles_and_caps() -> None:
    """§5.5: RTO <- RTO * 2 on expiry, up to the maximum."""
    r = RttEstimator()
    seen = [r.rto]
    for _ in range(9):
        r.back_off()
        seen.append(r.rto)
    assert seen == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    assert r.backoff == 6  # stops counting once at the cap


def test_backoff_from_measured_rto() -> None:
    r = RttEstimator(rto_min=0.1)
    r.sample(0.5)  # RTO 1.5
    r.back_off()
    assert r.rto == 3.0
    r.back_off()
    assert r.rto == 6.0


def test_new_sample_collapses_backoff() -> None:
    """After backoff a fresh (Karn-clean) sample recomputes RTO from SRTT (§5.7 discussion)."""
    r = RttEstimator(rto_min=0.1)
    r.sample(0.5)
    for _ in range(3):
        r.back_off()
    assert r.rto == 12.0
    r.sample(0.5)
    assert r.backoff == 0
    # rttvar = 3/4*0.25 + 0 = 0.1875, srtt 0.5
    assert r.rto == 0.5 + 4 * 0.1875


def test_reset_for_data_section_5_7() -> None:
    """§5.7: SYN timed out and no RTT measured: RTO for data starts at 3 s."""
    r = RttEstimator()
    r.back_off()
    r.back_off()
    assert r.rto == 4.0
    r.reset_for_data()
    assert r.backoff == 0
    assert r.rto == 3.0
    r.back_off()
    assert r.rto == 6.0


def test_reset_for_data_keeps_a_larger_base_and_measured_values() -> None:
    r = RttEstimator(initial_rto=5.0)
    r.back_off()
    r.reset_for_data()
    assert r.rto == 5.0  # floor only raises
    m = RttEstimator(rto_min=0.1)
    m.sample(0.25)  # RTO 0.75
    m.back_off()
    m.reset_for_data()
    assert m.backoff == 0
    assert m.rto == 0.75  # a measured RTT is not overridden by the 3 s floor


def test_reset_for_data_custom_floor() -> None:
    r = RttEstimator()
    r.reset_for_data(floor=2.0)
    assert r.rto == 2.0


@given(
    st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=30), st.integers(0, 12)
)
def test_rto_always_within_bounds(samples: list[float], backoffs: int) -> None:
    r = RttEstimator(rto_min=1.0, rto_max=60.0)
    for s in samples:
        r.sample(s)
    for _ in range(backoffs):
        r.back_off()
    assert 1.0 <= r.rto <= 60.0
    assert r.srtt is not None and r.srtt >= 0
    assert r.rttvar >= 0
    assert min(samples) - 1e-9 <= r.srtt <= max(samples) + 1e-9


@given(st.floats(0.001, 50.0, allow_nan=False))
def test_constant_samples_converge(rtt: float) -> None:
    r = RttEstimator(rto_min=0.0001, rto_max=1000.0, clock_granularity=0.0)
    for _ in range(200):
        r.sample(rtt)
    assert r.srtt == pytest.approx(rtt)
    assert r.rttvar == pytest.approx(0.0, abs=rtt * 1e-9 + 1e-12)


def test_linux_floors_the_variance_term_not_the_rto() -> None:
    """Linux __tcp_set_rto(): RTO = SRTT + max(4*RTTVAR, rto_min); RFC 6298 §2.4 floors
    the whole RTO at rto_min."""
    from synack.tcp.rtt import RttEstimator as Est

    rfc, linux = Est(1.0, 0.2), Est(1.0, 0.2, floor_variance=True)
    for e in (rfc, linux):
        e.sample(0.020)  # SRTT 20 ms, RTTVAR 10 ms
    assert rfc.rto == pytest.approx(0.200)
    assert linux.rto == pytest.approx(0.220)


def test_linux_bounds_segments_to_half_the_largest_window() -> None:
    """tcp_bound_to_half_wnd(): with a 1000-byte window, 500-byte segments."""
    from synack.packetdrill.parser import parse
    from synack.packetdrill.runner import run_script

    script = (
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
        "+0 listen(3, 1) = 0\n+0 < S 0:0(0) win 1000 <mss 1000>\n"
        "+0 > S. 0:0(0) ack 1 <mss 1460>\n+.02 < . 1:1(0) ack 1 win 1000\n"
        "+0 accept(3, ..., ...) = 4\n+0 write(4, ..., 1000) = 1000\n"
        "+0 > . 1:501(500) ack 1\n+0 > P. 501:1001(500) ack 1\n"
    )
    assert run_script(parse(script), "linux").status == "PASS"
    assert run_script(parse(script), "rfc").status == "FAIL"
