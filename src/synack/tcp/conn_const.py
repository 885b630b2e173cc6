"""Constants the parts of :class:`~synack.tcp.connection.Connection` share: sizes from
the wire (RFC 9293 §3.7.1, RFC 7323) and from Linux's memory model, ECN codepoints
(RFC 3168), the states by name and the tracer's type."""

from __future__ import annotations

from collections.abc import Callable

from ..trace.schema import TraceRecord
from . import seq
from .states import State

MASK = seq.MASK
DEFAULT_PEER_MSS = 536  # RFC 9293 §3.7.1 (IPv4) when the peer sends no MSS option
DEFAULT_PEER_MSS6 = 1220  # RFC 9293 §3.7.1 for IPv6: the 1280 minimum MTU less 60
IPV6_MIN_MTU = 1280  # RFC 8200 §5: path MTU discovery never goes below (RFC 8201 §4)
TS_OPTION_LEN = 12  # NOP, NOP, kind 8 len 10: taken out of each segment's payload
PAWS_IDLE = 24 * 24 * 3600.0  # RFC 7323 §5.5: TS.Recent older than 24 days is invalid
ECT0 = 0b10
CE = 0b11
SKB_STRUCT = 256  # Linux: SKB_DATA_ALIGN(sizeof(struct sk_buff)), part of every truesize
GSO_MAX_SIZE = 65536  # Linux GSO_LEGACY_MAX_SIZE: the largest skb tcp_sendmsg builds

#: A tracer receives one flat dict per event (docs/trace.md, typed in trace.schema).
Tracer = Callable[[TraceRecord], None]

S_CLOSED = State.CLOSED
S_SYN_SENT = State.SYN_SENT
S_LISTEN = State.LISTEN
S_SYN_RECEIVED = State.SYN_RECEIVED
S_ESTABLISHED = State.ESTABLISHED
S_FIN_WAIT_1 = State.FIN_WAIT_1
S_FIN_WAIT_2 = State.FIN_WAIT_2
S_CLOSE_WAIT = State.CLOSE_WAIT
S_CLOSING = State.CLOSING
S_LAST_ACK = State.LAST_ACK
S_TIME_WAIT = State.TIME_WAIT

#: States whose send path may emit data and FIN.  (Tuples, not sets: a member test
#: then compares identities in C, where a set would call Enum's Python __hash__.)
_OUTPUT_STATES = (S_ESTABLISHED, S_CLOSE_WAIT, S_FIN_WAIT_1, S_CLOSING, S_LAST_ACK)
_PREDICTED_STATES = (S_ESTABLISHED, S_FIN_WAIT_1, S_FIN_WAIT_2)  # header prediction
