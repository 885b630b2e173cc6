"""Tests for the virtual clock and event queue."""

from __future__ import annotations

import pytest

from synack.sim import Clock, SimulationLimit


def test_events_run_in_time_order_with_ties_in_insertion_order() -> None:
    clock = Clock()
    log: list[tuple[float, str]] = []
    clock.schedule(2.0, lambda now: log.append((now, "c")))
    clock.schedule(1.0, lambda now: log.append((now, "a")))
    clock.schedule(1.0, lambda now: log.append((now, "b")))
    clock.schedule(2.0, lambda now: log.append((now, "d")))
    assert clock.run() == 2.0
    assert log == [(1.0, "a"), (1.0, "b"), (2.0, "c"), (2.0, "d")]


def test_cancelled_event_does_not_run_or_advance_the_clock() -> None:
    clock = Clock()
    fired: list[float] = []
    clock.schedule(1.0, fired.append)
    handle = clock.schedule(5.0, fired.append)
    assert handle.when == 5.0 and not handle.cancelled
    handle.cancel()
    assert handle.cancelled
    assert clock.pending() == 1
    assert clock.run() == 1.0
    assert fired == [1.0]
    assert clock.next_time() is None


def test_until_is_inclusive_and_sets_the_clock_exactly() -> None:
    clock = Clock()
    fired: list[float] = []
    clock.schedule(1.0, fired.append)
    clock.schedule(1.5, fired.append)
    assert clock.run(until=1.0) == 1.0
    assert fired == [1.0]
    assert clock.run(until=1.25) == 1.25
    assert clock.now == 1.25
    assert clock.run(until=10.0) == 10.0
    assert fired == [1.0, 1.5]


def test_stop_is_checked_after_each_event() -> None:
    clock = Clock()
    fired: list[float] = []
    for t in (1.0, 2.0, 3.0):
        clock.schedule(t, fired.append)
    assert clock.run(until=9.0, stop=lambda: len(fired) == 2) == 2.0
    assert fired == [1.0, 2.0]
    assert clock.run(stop=lambda: True) == 2.0  # already true: nothing runs


def test_callbacks_can_schedule_more_events_including_now() -> None:
    clock = Clock()
    log: list[tuple[float, str]] = []

    def first(now: float) -> None:
        log.append((now, "first"))
        clock.schedule(now, lambda t: log.append((t, "same-instant")))
        clock.call_later(0.5, lambda t: log.append((t, "later")))

    clock.schedule(1.0, first)
    clock.schedule(1.0, lambda t: log.append((t, "second")))
    clock.run()
    assert log == [(1.0, "first"), (1.0, "second"), (1.0, "same-instant"), (1.5, "later")]


def test_max_events_raises_simulation_limit() -> None:
    clock = Clock()

    def again(now: float) -> None:
        clock.schedule(now, again)

    clock.schedule(0.0, again)
    with pytest.raises(SimulationLimit, match="more than 100 events"):
        clock.run(max_events=100)


def test_exactly_max_events_is_allowed() -> None:
    clock = Clock()
    for i in range(10):
        clock.schedule(float(i), lambda now: None)
    assert clock.run(max_events=10) == 9.0


def test_time_never_goes_backwards() -> None:
    clock = Clock()
    clock.run(until=3.0)
    with pytest.raises(ValueError, match="before now"):
        clock.schedule(2.0, lambda now: None)
    with pytest.raises(ValueError, match="before now"):
        clock.run(until=1.0)
    with pytest.raises(ValueError, match="delay"):
        clock.call_later(-1.0, lambda now: None)
    with pytest.raises(ValueError):
        clock.schedule(float("nan"), lambda now: None)
    # The raw fast path clamps a past time to now.
    seen: list[float] = []
    clock.push(1.0, lambda now, arg: seen.append(now))
    clock.run()
    assert seen == [3.0]


def test_hook_runs_after_every_event() -> None:
    clock = Clock()
    calls: list[float] = []
    clock.hook = lambda: calls.append(clock.now)
    clock.schedule(1.0, lambda now: None)
    clock.schedule(2.0, lambda now: None)
    clock.run()
    assert calls == [1.0, 2.0]


def test_run_is_not_reentrant() -> None:
    clock = Clock()
    errors: list[str] = []

    def nested(now: float) -> None:
        assert clock.running
        try:
            clock.run()
        except RuntimeError as exc:
            errors.append(str(exc))

    clock.schedule(1.0, nested)
    clock.run()
    assert not clock.running
    assert errors and "re-entrant" in errors[0]
