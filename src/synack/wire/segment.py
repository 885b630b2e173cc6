"""The TCP segment as the core sees it (RFC 9293 §3.1, options RFC 7323, RFC 2018).

A :class:`Segment` is one TCP header plus its payload, decoded: no IP
addresses (the stack owns those) and no checksum (verified on the way in,
computed on the way out).  It is the unit that flows between the wire codec,
the stack and a connection.  A segment may carry more than one MSS of
payload: a link with segmentation offload splits it on the way out and
merges on the way in, so nothing in the core assumes ``len <= MSS``.

Flags are plain ``int`` bit masks (``IntFlag`` arithmetic is several times
slower on the hot path).
"""

from __future__ import annotations

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

_FLAG_LETTERS = (
    (SYN, "S"),
    (FIN, "F"),
    (RST, "R"),
    (PSH, "P"),
    (ACK, "."),
    (URG, "U"),
    (ECE, "E"),
    (CWR, "W"),
)


def flags_str(flags: int) -> str:
    """Render flags the way tcpdump does: ``S``, ``S.``, ``P.``, ``F.``, ``R``."""
    out = "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit and bit != ACK)
    if flags & ACK:
        out += "."
    return out or "none"


class Segment:
    """One decoded TCP segment.

    Option fields are ``None``/empty when the option is absent.  ``tsval`` and
    ``tsecr`` are both set or both ``None``.  ``ecn`` carries the two ECN bits
    of the enclosing IP header (RFC 3168 §5) so the core can see CE marks.
    """

    __slots__ = (
        "ack",
        "dst_port",
        "ecn",
        "flags",
        "mss",
        "payload",
        "sack_blocks",
        "sack_permitted",
        "seq",
        "src_port",
        "tsecr",
        "tsval",
        "urgent",
        "window",
        "wscale",
    )

    def __init__(
        self,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        payload: bytes | memoryview = b"",
        *,
        urgent: int = 0,
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        sack_blocks: tuple[tuple[int, int], ...] = (),
        tsval: int | None = None,
        tsecr: int | None = None,
        ecn: int = 0,
    ) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.urgent = urgent
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack_blocks = sack_blocks
        self.tsval = tsval
        self.tsecr = tsecr
        self.ecn = ecn

    @property
    def seg_len(self) -> int:
        """Sequence space occupied: payload bytes, plus one each for SYN and FIN (C17)."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def option_words(self) -> list[str]:
        """The handshake options as tcpdump names them: ``mss N``, ``sackOK``,
        ``TS val V ecr E``, ``wscale S`` (SACK blocks are left to the caller's style)."""
        opts = []
        if self.mss is not None:
            opts.append(f"mss {self.mss}")
        if self.sack_permitted:
            opts.append("sackOK")
        if self.tsval is not None:
            opts.append(f"TS val {self.tsval} ecr {self.tsecr}")
        if self.wscale is not None:
            opts.append(f"wscale {self.wscale}")
        return opts

    def __repr__(self) -> str:
        parts = [
            f"{self.src_port}>{self.dst_port}",
            f"[{flags_str(self.flags)}]",
            f"seq={self.seq}",
        ]
        if self.flags & ACK:
            parts.append(f"ack={self.ack}")
        parts.append(f"win={self.window}")
        if self.payload:
            parts.append(f"len={len(self.payload)}")
        opts = self.option_words()
        if self.sack_blocks:
            opts.append("sack " + " ".join(f"{a}:{b}" for a, b in self.sack_blocks))
        if opts:
            parts.append("<" + ",".join(opts) + ">")
        return "Segment(" + " ".join(parts) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__ if k != "payload"
        ) and bytes(self.payload) == bytes(other.payload)

    __hash__ = None  # type: ignore[assignment]
