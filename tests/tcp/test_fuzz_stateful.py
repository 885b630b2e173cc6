"""Stateful fuzzing of a connection pair (issue 8 item 5).

A hypothesis ``RuleBasedStateMachine`` drives two :class:`Connection` objects
joined by a tiny in-memory wire that can deliver, reorder, duplicate and lose
segments.  Connection A is also attacked: random segments (any flags,
sequence and acknowledgement numbers, windows, options, payloads) and
mutations of the segments B really sent.  Between steps the application calls
(send, recv, shutdown, close, abort) and timer firings are interleaved
arbitrarily.  After every step the invariants are checked:

* SND.UNA <= SND.NXT (as stream positions) on both ends;
* the right edge of the window each end advertises never moves left;
* B (never attacked) delivers exactly a prefix of what A's application sent;
  A delivers, at every offset, B's byte or a byte the attacker injected (forged
  payload is all 0xFF, real data is 0x00-0x7F), never anything else;
* no exception escapes except the documented BrokenPipeError from ``send``
  after the sending side was closed; illegal state transitions would raise
  IllegalTransition and fail;
* ``next_timer()`` is None or a finite float.
"""

from __future__ import annotations

import math
from collections import deque

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from synack.tcp import seq
from synack.tcp.config import TcpConfig
from synack.tcp.connection import Connection
from synack.tcp.states import CAN_SEND, State
from synack.wire.segment import ACK, FIN, RST, SYN, Segment

A_IP, B_IP = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
MASK = 0xFFFFFFFF
FORGED = 0xFF

CONFIGS = [
    TcpConfig.classic(rcv_buf=4096, snd_buf=8192, mss=536),
    TcpConfig(rcv_buf=20000, snd_buf=30000, mss=1000),  # wscale, timestamps, SACK
    TcpConfig(
        rcv_buf=3000,
        snd_buf=5000,
        mss=500,
        delayed_ack=0.0,
        nodelay=True,
        max_ooo_blocks=2,
        keepalive=True,
        keepalive_idle=5.0,
        keepalive_interval=1.0,
        keepalive_count=2,
        max_retransmits=4,
        rto_max=8.0,
    ),
]

app_data = st.binary(min_size=1, max_size=3000).map(lambda b: bytes(x & 0x7F for x in b))


class Edge:
    """Tracks the right edge (ACK + scaled window) of what one end advertises."""

    def __init__(self) -> None:
        self.right: int | None = None

    def see(self, conn: Connection, seg: Segment) -> None:
        if seg.flags & (SYN | RST) or not seg.flags & ACK:
            return
        right = (seg.ack + (seg.window << conn.rcv_wscale)) & MASK
        if self.right is not None:
            assert seq.ge(right, self.right), (
                f"{conn.name}: right edge moved left {self.right} -> {right}"
            )
        self.right = right


class PairMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.a_sent = bytearray()
        self.b_sent = bytearray()
        self.a_got = bytearray()
        self.b_got = bytearray()
        self.a2b: deque[Segment] = deque()
        self.b2a: deque[Segment] = deque()
        self.b_history: deque[Segment] = deque(maxlen=16)
        self.edges = {"a": Edge(), "b": Edge()}

    @initialize(
        cfg=st.sampled_from(CONFIGS),
        iss_a=st.integers(0, MASK),
        iss_b=st.integers(0, MASK),
        auto_read=st.sampled_from("abnn"),
    )
    def open(self, cfg: TcpConfig, iss_a: int, iss_b: int, auto_read: str) -> None:
        self.auto_read = auto_read  # which applications read everything after each step
        self.a = Connection.open_active(A_IP, 40000, B_IP, 80, iss=iss_a, now=0.0, config=cfg)
        (syn,) = self.a.segments_to_send(0.0)
        self.b = Connection.open_passive(syn, B_IP, A_IP, iss=iss_b, now=0.0, config=cfg)
        self.flush()

    # ------------------------------------------------------------------ plumbing
    def flush(self) -> None:
        if self.auto_read in "ab":
            self.a_got.extend(self.a.recv())
            self.b_got.extend(self.b.recv())
        for name, conn, wire in (("a", self.a, self.a2b), ("b", self.b, self.b2a)):
            for s in conn.segments_to_send(self.now):
                self.edges[name].see(conn, s)
                wire.append(s)
                if name == "b":
                    self.b_history.append(s)

    def conn(self, which: str) -> Connection:
        return self.a if which == "a" else self.b

    # ------------------------------------------------------------------ application
    @rule(which=st.sampled_from("ab"), data=app_data)
    def send(self, which: str, data: bytes) -> None:
        c = self.conn(which)
        writable = c.state in CAN_SEND and not self._fin_queued(c)
        try:
            n = c.send(data)
        except BrokenPipeError:
            assert not writable, f"send refused in {c.state}"
            return
        assert 0 <= n <= len(data)
        (self.a_sent if which == "a" else self.b_sent).extend(data[:n])
        self.flush()

    @rule(data=app_data)
    def send_b(self, data: bytes) -> None:
        self.send("b", data)

    @rule(data=app_data)
    def send_a(self, data: bytes) -> None:
        self.send("a", data)

    @staticmethod
    def _fin_queued(c: Connection) -> bool:
        return c.state not in (
            State.SYN_SENT,
            State.SYN_RECEIVED,
            State.ESTABLISHED,
            State.CLOSE_WAIT,
        )

    @rule(which=st.sampled_from("ab"), n=st.integers(-1, 5000))
    def recv(self, which: str, n: int) -> None:
        data = self.conn(which).recv(n)
        (self.a_got if which == "a" else self.b_got).extend(data)
        self.flush()

    @precondition(lambda self: self.now > 0.5)
    @rule(which=st.sampled_from("ab"))
    def shutdown(self, which: str) -> None:
        self.conn(which).shutdown(self.now)
        self.flush()

    @precondition(lambda self: self.now > 1.0)
    @rule(which=st.sampled_from("ab"))
    def close(self, which: str) -> None:
        self.conn(which).close(self.now)
        self.flush()

    @precondition(lambda self: self.now > 2.0)
    @rule(which=st.sampled_from("ab"))
    def abort(self, which: str) -> None:
        self.conn(which).abort(self.now)
        self.flush()

    # ------------------------------------------------------------------ time
    @rule(dt=st.floats(0.0, 3.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        for c in (self.a, self.b):
            for _ in range(100):
                t = c.next_timer()
                if t is None or t > self.now:
                    break
                c.handle_timer(self.now)
        self.flush()

    # ------------------------------------------------------------------ the wire
    @rule(
        direction=st.sampled_from(["a2b", "b2a"]),
        index=st.integers(0, 1000),
        action=st.sampled_from(["deliver", "deliver", "deliver", "drop", "duplicate"]),
    )
    def wire(self, direction: str, index: int, action: str) -> None:
        q = self.a2b if direction == "a2b" else self.b2a
        if not q:
            return
        i = index % len(q) if index % 4 else 0  # mostly in order, sometimes reordered
        seg = q[i]
        if action == "drop":
            del q[i]
            return
        if action == "deliver":
            del q[i]
        (self.b if direction == "a2b" else self.a).receive(seg, self.now)
        self.flush()

    @rule(n=st.integers(1, 40))
    def deliver_all(self, n: int) -> None:
        for _ in range(n):
            moved = False
            for q, dst in ((self.a2b, self.b), (self.b2a, self.a)):
                if q:
                    dst.receive(q.popleft(), self.now)
                    moved = True
            self.flush()
            if not moved:
                return

    @rule(n=st.integers(1, 40))
    def deliver_more(self, n: int) -> None:
        self.deliver_all(n)

    # ------------------------------------------------------------------ the attacker
    @rule(
        flags=st.integers(0, 255),
        near=st.booleans(),
        dseq=st.integers(-70000, 70000),
        rseq=st.integers(0, MASK),
        dack=st.integers(-70000, 70000),
        rack=st.integers(0, MASK),
        window=st.integers(0, 65535),
        length=st.integers(0, 2000),
        mss=st.none() | st.integers(0, 65535),
        wscale=st.none() | st.integers(0, 255),
        sackp=st.booleans(),
        blocks=st.lists(st.tuples(st.integers(0, MASK), st.integers(0, MASK)), max_size=4),
        ts=st.none() | st.tuples(st.integers(0, MASK), st.integers(0, MASK)),
    )
    def forge(
        self,
        flags: int,
        near: bool,
        dseq: int,
        rseq: int,
        dack: int,
        rack: int,
        window: int,
        length: int,
        mss: int | None,
        wscale: int | None,
        sackp: bool,
        blocks: list[tuple[int, int]],
        ts: tuple[int, int] | None,
    ) -> None:
        a = self.a
        sq = (a.rcv_nxt + dseq) & MASK if near else rseq
        ak = (a.snd_una + dack) & MASK if near else rack
        seg = Segment(
            80,
            40000,
            sq,
            ak,
            flags,
            window,
            bytes([FORGED]) * length,
            mss=mss,
            wscale=wscale,
            sack_permitted=sackp,
            sack_blocks=tuple(blocks),
            tsval=ts[0] if ts else None,
            tsecr=ts[1] if ts else None,
        )
        a.receive(seg, self.now)
        self.flush()

    @precondition(lambda self: len(self.b_history) > 0)
    @rule(
        index=st.integers(0, 15),
        field=st.sampled_from(["seq", "ack", "flags", "window", "sack", "ts", "payload"]),
        delta=st.integers(-5000, 5000),
        bit=st.integers(0, 7),
    )
    def mutate(self, index: int, field: str, delta: int, bit: int) -> None:
        """Replay one of B's real segments to A with one field changed."""
        s = self.b_history[index % len(self.b_history)]
        m = Segment(
            s.src_port,
            s.dst_port,
            s.seq,
            s.ack,
            s.flags,
            s.window,
            s.payload,
            mss=s.mss,
            wscale=s.wscale,
            sack_permitted=s.sack_permitted,
            sack_blocks=s.sack_blocks,
            tsval=s.tsval,
            tsecr=s.tsecr,
        )
        if field == "seq":
            m.seq = (s.seq + delta) & MASK
            m.payload = bytes([FORGED]) * len(s.payload)  # shifted data is forged data
        elif field == "ack":
            m.ack = (s.ack + delta) & MASK
        elif field == "flags":
            m.flags = s.flags ^ (1 << bit)
            if m.flags & ~s.flags & (SYN | FIN):
                m.payload = bytes([FORGED]) * len(s.payload)  # SYN/FIN shift the data
        elif field == "window":
            m.window = (s.window + delta) & 0xFFFF
        elif field == "sack":
            base = s.ack
            m.sack_blocks = (((base + delta) & MASK, (base + delta + 100 * bit) & MASK),)
        elif field == "ts":
            m.tsval = ((s.tsval or 0) + delta) & MASK
            m.tsecr = ((s.tsecr or 0) - delta) & MASK
        else:
            m.payload = bytes([FORGED]) * (abs(delta) % 1500)
        self.a.receive(m, self.now)
        self.flush()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def send_positions(self) -> None:
        for c in (self.a, self.b):
            info = c.info()
            assert info["unacked"] >= 0, c  # SND.UNA <= SND.NXT as positions
            assert c.unsent <= c.config.snd_buf
            assert c.readable <= c.config.rcv_buf

    @invariant()
    def timers_are_finite(self) -> None:
        for c in (self.a, self.b):
            t = c.next_timer()
            assert t is None or (isinstance(t, float) and math.isfinite(t)), t

    @invariant()
    def b_delivers_a_prefix_of_what_a_sent(self) -> None:
        assert self.b_got == self.a_sent[: len(self.b_got)]

    @invariant()
    def a_delivers_only_b_bytes_or_forged_bytes(self) -> None:
        got, sent = self.a_got, self.b_sent
        for i, x in enumerate(got):
            assert x == FORGED or (i < len(sent) and x == sent[i]), (i, x)


PairMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_connection_pair_under_attack = PairMachine.TestCase


class CleanPairMachine(PairMachine):
    """No attacker: then A too must deliver exactly a prefix of what B sent."""

    @invariant()
    def a_delivers_a_prefix_of_what_b_sent(self) -> None:
        assert self.a_got == self.b_sent[: len(self.a_got)]


for _name in ("forge", "mutate"):
    setattr(CleanPairMachine, _name, None)

CleanPairMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_connection_pair_clean_network = CleanPairMachine.TestCase
