"""The trace records of ``docs/trace.md``, typed: one :class:`~typing.TypedDict` per
kind, each naming its kind in ``ev`` as a :data:`~typing.Literal`, and
:data:`TraceRecord`, their union, which a type checker narrows on ``ev``::

    for r in records:                  # r: TraceRecord
        if r["ev"] == "seg":           # r: SegRecord from here on
            ...

The writers build these (``tcp.conn_trace``, ``stack``, the scenarios, the
commands), :func:`problems` checks a record against them, and
``tests/trace/test_trace_schema.py`` checks both every record a run writes and the
document.  Fields are only ever added, never renamed or removed: a new field is
``NotRequired`` so that older traces still load, and readers read it with
``.get()``.

This module is pure typing and the standard library, so the core may import it.
"""

from collections.abc import Mapping
from types import UnionType
from typing import (
    Any,
    Literal,
    NotRequired,
    TypeAlias,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)


class Record(TypedDict):
    """What every record has besides its kind: each kind's type below adds
    ``ev: Literal[kind]`` (a field's type cannot be narrowed in a subclass, so
    ``ev`` is not declared here)."""

    t: float  # seconds: virtual time, or the loop's clock on a real link
    conn: str | None  # "LOCALIP:PORT>REMOTEIP:PORT" from its own side, or null


class BbrModel(TypedDict, total=False):
    """BBR's model, on the ``rate`` and ``cc`` records of a BBR sender
    (``tcp.bbr.Bbr.info``, draft-ietf-ccwg-bbr §2)."""

    bbr_state: str
    bbr_bw: float
    bbr_max_bw: float
    bbr_bw_lo: float | None
    bbr_min_rtt: float | None
    bbr_pacing_gain: float
    bbr_cwnd_gain: float
    bbr_inflight_hi: int | None
    bbr_inflight_lo: int | None
    bbr_round_count: int


class OpenRecord(Record):
    ev: Literal["open"]
    mode: Literal["active", "passive"]
    iss: int
    irs: NotRequired[int]


class SegRecord(Record):
    ev: Literal["seg"]
    dir: Literal["in", "out"]
    flags: int
    seq: int
    ack: int
    len: int
    win: int
    mss: int | None
    why: str
    state: str | None  # null on the records of a packetdrill run on the kernel
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
    ev: Literal["state"]
    old: str
    new: str
    concept: str
    why: str


class TimerRecord(Record):
    ev: Literal["timer"]
    timer: str
    concept: NotRequired[str]
    retries: NotRequired[int]
    rto: NotRequired[float]
    probe: NotRequired[str]


class TimerSetRecord(Record):
    ev: Literal["timer_set"]
    timer: str
    at: float
    after: float
    rto: float


class TimerCancelRecord(Record):
    ev: Literal["timer_cancel"]
    timer: str


class CwndRecord(Record):
    ev: Literal["cwnd"]
    cwnd: int
    ssthresh: int
    slow_start: bool
    in_recovery: bool
    pipe: int
    ca_state: NotRequired[str]


class CaStateRecord(Record):
    ev: Literal["ca_state"]
    old: str
    new: str
    trigger: str
    why: str
    high_seq: int | None
    cwnd: int
    ssthresh: int


class RttRecord(Record):
    ev: Literal["rtt"]
    sample: float
    srtt: float
    rttvar: float
    rto: float


class CcRecord(Record, BbrModel):
    ev: Literal["cc"]
    event: str
    cwnd: int
    ssthresh: NotRequired[int]
    old_cwnd: NotRequired[int]
    idle: NotRequired[float]
    old: NotRequired[str]
    new: NotRequired[str]
    pacing_rate: NotRequired[float]
    delivery_rate: NotRequired[float]


class RateRecord(Record, BbrModel):
    ev: Literal["rate"]
    delivery_rate: float
    pacing_rate: float
    app_limited: bool
    cwnd: int


class DropRecord(Record):
    ev: Literal["drop"]
    reason: str
    concept: str


class UrgentRecord(Record):
    ev: Literal["urgent"]
    mark: int
    pending: int


class NoteRecord(Record):
    ev: Literal["note"]
    text: str
    concept: str


class ErrorRecord(Record):
    ev: Literal["error"]
    errno: str
    message: str


class SyncookieRecord(Record):
    ev: Literal["syncookie"]
    action: Literal["sent", "validated", "rejected"]
    concept: str


class NetDropRecord(Record):
    ev: Literal["net_drop"]
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


class RunRecord(TypedDict):
    """The first record of a trace written on a real link (``commands.realnet``): it
    has no ``conn``."""

    t: float
    ev: Literal["run"]
    conn: NotRequired[None]
    clock: Literal["wall"]
    started: float
    command: str


class NetInjectRecord(Record):
    ev: Literal["net_inject"]
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
    ev: Literal["lab"]
    text: str
    concepts: list[str]
    rfc: str


#: Any record of a kind this version knows; ``r["ev"] == "seg"`` narrows it to
#: :class:`SegRecord`.  Records of other kinds are left out by the loader
#: (:func:`synack.trace.load.load_trace`): readers skip kinds they do not know.
TraceRecord: TypeAlias = (
    OpenRecord
    | SegRecord
    | StateRecord
    | TimerRecord
    | TimerSetRecord
    | TimerCancelRecord
    | CwndRecord
    | CaStateRecord
    | RttRecord
    | CcRecord
    | RateRecord
    | DropRecord
    | UrgentRecord
    | NoteRecord
    | ErrorRecord
    | SyncookieRecord
    | NetDropRecord
    | RunRecord
    | NetInjectRecord
    | LabRecord
)

#: ``ev`` -> its record type (from each type's ``ev`` literal).
KINDS: dict[str, type[Mapping[str, object]]] = {
    get_args(get_type_hints(cls)["ev"])[0]: cls for cls in get_args(TraceRecord)
}


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


def problems(record: Mapping[str, object]) -> list[str]:
    """What is wrong with ``record`` against its kind's type: missing or unknown fields,
    values of the wrong type.  Records of kinds this version does not know have none
    (readers skip them)."""
    kind = record.get("ev")
    cls = KINDS.get(str(kind))
    if cls is None:
        return []
    out = [f"{kind}: no {name!r}" for name in sorted(required(str(kind)) - record.keys())]
    hints = get_type_hints(cls)
    for name, value in record.items():
        hint = hints.get(name)
        if hint is None:
            out.append(f"{kind}: unknown field {name!r}")
        elif not _accepts(hint, value):
            out.append(f"{kind}: {name}={value!r} is not {hint}")
    return out
