"""The timers object (issue #13): one deadline per kind, the earliest, the expired ones in
the order handle_timer fires them, and handle_timer skipping a timer an earlier handler
cancelled."""

from __future__ import annotations

from helpers.crafted import established
from synack.tcp import timers as T
from synack.tcp.config import TcpConfig
from synack.tcp.timers import Timers


def test_one_deadline_per_kind_and_the_earliest_is_next() -> None:
    t = Timers()
    assert t.next() is None and list(t.expired(1e9)) == []
    t.set(T.RTO, 5.0)
    t.set(T.KEEPALIVE, 7200.0)
    t.set(T.DELAYED_ACK, 0.2)
    assert t.get(T.RTO) == 5.0 and t.rto == 5.0
    assert t.next() == 0.2
    t.set(T.DELAYED_ACK, 9.0)  # re-arming moves it: one deadline per kind
    assert t.next() == 5.0
    t.cancel(T.RTO)
    assert t.get(T.RTO) is None and t.next() == 9.0
    t.cancel_all()
    assert t.next() is None and all(t.get(k) is None for k in T.KINDS)


def test_expired_lists_the_due_kinds_in_firing_order() -> None:
    t = Timers()
    for i, kind in enumerate(T.KINDS):
        t.set(kind, 1.0 + i)
    assert list(t.expired(0.5)) == []
    assert list(t.expired(3.0)) == [T.TIME_WAIT, T.DELAYED_ACK, T.RTO]
    assert list(t.expired(100.0)) == [
        T.TIME_WAIT,
        T.FIN_WAIT_2,
        T.DELAYED_ACK,
        T.RACK_REORDER,
        T.TLP,
        T.RTO,
        T.KEEPALIVE,
    ]


def test_expired_looks_at_each_kind_when_it_is_reached() -> None:
    """A handler that cancels a later timer (RACK entering recovery cancels the TLP) or
    arms one for now (a clamped RTO) changes what follows, as in-turn checks would."""
    t = Timers()
    t.rack_reorder = t.tlp = 1.0
    seen = []
    for kind in t.expired(2.0):
        seen.append(kind)
        if kind == T.RACK_REORDER:
            t.rack_reorder = None
            t.tlp = None
            t.rto = 2.0
    assert seen == [T.RACK_REORDER, T.RTO]


def test_connection_timers_all_cancelled_on_close_and_next_timer_follows() -> None:
    tcb = established(TcpConfig.classic(keepalive=True, keepalive_idle=60.0))
    conn = tcb.conn
    assert conn._timers.keepalive is not None
    conn.send(b"x" * 100)
    tcb.out(0.0)
    assert conn._timers.rto is not None
    assert conn.next_timer() == min(conn._timers.rto, conn._timers.keepalive)
    conn.abort(0.1)
    assert conn.next_timer() is None
    assert all(conn._timers.get(k) is None for k in T.KINDS)
