"""The trace records of ``docs/trace.md``, typed: one :class:`~typing.TypedDict` per
kind (``ev``).  The writers build these (``tcp.conn_trace``, ``stack``, the
scenarios, the commands), :func:`problems` checks a record against them, and
``tests/trace/test_schema.py`` checks both every record a run writes and the
document.  Fields are only ever added, never renamed or removed: a new field is
``NotRequired`` so that older traces still load.

This module is pure typing and the standard library, so the core may import it.
"""


from types import UnionType
from typing import (
    Any,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)


class Record(TypedDict):
    """What every record has."""

    t: float                 # seconds: virtual time, or the loop's clock on a real link
    ev: str                  # the kind, below
    conn: str | None         # "LOCALIP:PORT>REMOTEIP:PORT" from its own side, or null


class OpenRecord(Record):
    mode: Literal["active", "passive"]
    iss: int
    irs: NotRequired[int]


class SegRecord(Record):
    dir: Literal["in", "out"]
    flags: int
    seq: int
    ack: int
    len: int
    win: int
    mss: int | None
    why: str
    state: str
    iss: int | None
    irs: int | None
    wnd: NotRequired[int]
    wscale: NotRequired[int]
    sack_permitted: NotRequired[bool]
    tsval: NotRequired[int]
    tsecr: NotRequired[int | None]
    sack: NotRequired[list[list[int]]]
    ecn: NotRequired[int]
    cwnd: NotRequired[int]
    urg: NotRequired[int]


class StateRecord(Record):
    old: str
    new: str
    concept: str
    why: str


class TimerRecord(Record):
    timer: str
    concept: NotRequired[str]
    retries: NotRequired[int]
    rto: NotRequired[float]
    probe: NotRequired[str]


class TimerSetRecord(Record):
    timer: str
    at: float
    after: float
    rto: float


class TimerCancelRecord(Record):
    timer: str


class CwndRecord(Record):
    cwnd: int
    ssthresh: int
    slow_start: bool
    in_recovery: bool
    pipe: int
    ca_state: NotRequired[str]


class CaStateRecord(Record):
    old: str
    new: str
    trigger: str
    why: str
    high_seq: int | None
    cwnd: int
    ssthresh: int


class RttRecord(Record):
    sample: float
    srtt: float
    rttvar: float
    rto: float


class CcRecord(Record):
    event: str
    cwnd: int
    ssthresh: NotRequired[int]
    old_cwnd: NotRequired[int]
    idle: NotRequired[float]
    old: NotRequired[str]
    new: NotRequired[str]
    pacing_rate: NotRequired[float]
    delivery_rate: NotRequired[float]


class RateRecord(Record):
    delivery_rate: float
    pacing_rate: float
    app_limited: bool
    cwnd: int


class DropRecord(Record):
    reason: str
    concept: str


class UrgentRecord(Record):
    mark: int
    pending: int


class NoteRecord(Record):
    text: str
    concept: str


class ErrorRecord(Record):
    errno: str
    message: str


class SyncookieRecord(Record):
    action: Literal["sent", "validated", "rejected"]
    concept: str


class NetDropRecord(Record):
    reason: str
    src: str
    dst: str
    flags: int | None
    seq: int | None
    len: int | None
    sport: NotRequired[int | None]
    dport: NotRequired[int | None]
    ack: NotRequired[int | None]
    win: NotRequired[int | None]


class RunRecord(Record):
    clock: Literal["wall"]
    started: float
    command: str


class NetInjectRecord(Record):
    src: str
    dst: str
    why: str
    sport: NotRequired[int]
    dport: NotRequired[int]
    flags: NotRequired[int]
    seq: NotRequired[int]
    ack: NotRequired[int]
    len: NotRequired[int]
    win: NotRequired[int]


class LabRecord(Record):
    text: str
    concepts: list[str]
    rfc: str


#: ``ev`` -> its record type.
KINDS: dict[str, type[Record]] = {
    "open": OpenRecord, "seg": SegRecord, "state": StateRecord, "timer": TimerRecord,
    "timer_set": TimerSetRecord, "timer_cancel": TimerCancelRecord, "cwnd": CwndRecord,
    "ca_state": CaStateRecord, "rtt": RttRecord, "cc": CcRecord, "rate": RateRecord,
    "drop": DropRecord, "urgent": UrgentRecord, "note": NoteRecord, "error": ErrorRecord,
    "syncookie": SyncookieRecord, "net_drop": NetDropRecord, "run": RunRecord,
    "net_inject": NetInjectRecord, "lab": LabRecord,
}

#: Fields some kinds carry beyond their type, by prefix: BBR's model in ``rate`` and
#: ``cc`` records (``bbr_state``, ``bbr_bw``, ...; docs/trace.md lists them).
OPEN_PREFIXES: dict[str, str] = {"rate": "bbr_", "cc": "bbr_"}

def required(kind: str) -> frozenset[str]:
    """The fields every record of ``kind`` has."""
    keys: frozenset[str] = getattr(KINDS[kind], "__required_keys__")  # noqa: B009
    return keys


def fields(kind: str) -> frozenset[str]:
    """Every field a record of ``kind`` may have."""
    optional: frozenset[str] = getattr(KINDS[kind], "__optional_keys__")  # noqa: B009
    return required(kind) | optional


def _accepts(hint: Any, value: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value in args
    if origin is Union or origin is UnionType:
        return any(_accepts(a, value) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with ``record`` against its kind's type: missing or unknown fields,
    values of the wrong type.  Records of kinds this version does not know have none
    (readers skip them)."""
    kind = record.get("ev")
    cls = KINDS.get(str(kind))
    if cls is None:
        return []
    out = [f"{kind}: no {name!r}" for name in sorted(required(str(kind)) - record.keys())]
    hints = get_type_hints(cls)
    prefix = OPEN_PREFIXES.get(str(kind))
    for name, value in record.items():
        hint = hints.get(name)
        if hint is None:
            if not (prefix and name.startswith(prefix)):
                out.append(f"{kind}: unknown field {name!r}")
        elif not _accepts(hint, value):
            out.append(f"{kind}: {name}={value!r} is not {hint}")
    return out
