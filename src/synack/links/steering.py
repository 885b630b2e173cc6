"""Steering a multi-queue TUN device's packets to the worker that owns their connection.

``synack serve --workers N`` opens one ``IFF_MULTI_QUEUE`` descriptor per worker
process on one device.  For each packet the kernel sends to the device,
``tun_select_queue()`` (``drivers/net/tun.c``) picks the queue: with a steering
program attached (``TUNSETSTEERINGEBPF``) it runs the program on the packet and
takes ``return value % numqueues``; without one it uses its flow table, which a
queue's own writes fill (``tun_flow_update()``) and whose entries expire after
idle time, so a connection a worker opened could come back to another worker
after a quiet spell.  The program here decides on the packet alone, so the answer
is the same for every packet of a connection, forever:

* destination port in 49152-65535 (synack's ephemeral range, RFC 6335 §6): the
  connection is one a worker opened; worker ``i`` of ``N`` takes its local ports
  from the ports ``p`` with ``p % N == i`` (:func:`ephemeral_ports`), so the
  program returns ``dport % N``;
* otherwise (a kernel client reaching one of synack's listening ports) a
  multiplicative hash of the kernel's source port, ``(sport * 0x9E3779B1) >> 16``
  (Knuth's golden-ratio hash; Linux hands out even ports to ``connect()`` first,
  so ``sport % N`` alone would put them all on one queue), modulo ``N``;
* an ICMP error (destination unreachable, source quench, time exceeded,
  parameter problem; RFC 792) or an ICMPv6 error (types below 128, RFC 4443
  §2.1) quoting a TCP segment synack sent goes where that connection's own
  packets go: the same two rules with the quoted ports the other way round
  (the quoted source port is synack's), so the worker owning the connection
  gets its unreachables and Packet Too Bigs (RFC 5927, RFC 8201);
* anything else (other protocols, echo requests, a fragment after the first,
  IPv6 with an extension header, a packet too short for the loads) goes to
  queue 0.

The program is a ``BPF_PROG_TYPE_SOCKET_FILTER`` of 64 instructions,
assembled here as bytes (no compiler) and loaded with the ``bpf(2)`` system call through
ctypes.  It reads the packet with the classic ``BPF_LD | BPF_ABS`` and
``BPF_LD | BPF_IND`` loads, which take their context from R6, return the value in
R0 in host order, and end the program with 0 when the load is out of bounds.
The skb a TUN device transmits starts at the IP header (an L3 device).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import struct
from typing import Final

__all__ = [
    "EPHEMERAL_HIGH",
    "EPHEMERAL_LOW",
    "TUNSETSTEERINGEBPF",
    "attach_steering",
    "ephemeral_ports",
    "expected_queue",
    "load_steering_program",
    "steering_program",
]

EPHEMERAL_LOW: Final = 49152
EPHEMERAL_HIGH: Final = 65535
#: ``_IOR('T', 224, int)`` (include/uapi/linux/if_tun.h).
TUNSETSTEERINGEBPF: Final = 0x800454E0
#: Knuth's multiplicative hash constant, 2**32 / golden ratio.
_GOLDEN: Final = 0x9E3779B1

# bpf(2) commands and program type (include/uapi/linux/bpf.h).
_BPF_PROG_LOAD: Final = 5
_BPF_PROG_TEST_RUN: Final = 10
_BPF_PROG_TYPE_SOCKET_FILTER: Final = 1
#: The bpf system call number per machine (arch/*/syscall tables).
_SYS_BPF: Final = {
    "x86_64": 321,
    "aarch64": 280,
    "armv7l": 386,
    "riscv64": 280,
    "ppc64le": 361,
    "s390x": 351,
    "i686": 357,
}

# Instruction classes, sizes, modes, operations and sources (include/uapi/linux/bpf.h,
# bpf_common.h).
_LD, _ALU, _JMP, _ALU64 = 0x00, 0x04, 0x05, 0x07
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND = 0x20, 0x40
_ADD, _MUL, _AND, _LSH, _RSH, _MOD, _MOV = 0x00, 0x20, 0x50, 0x60, 0x70, 0x90, 0xB0
_JA, _JEQ, _JGE, _JNE, _JSET, _JLT, _EXIT = 0x00, 0x10, 0x30, 0x50, 0x40, 0xA0, 0x90
_PROTO_ICMP, _PROTO_TCP, _PROTO_ICMPV6 = 1, 6, 58
#: ICMP types that quote a packet (RFC 792): destination unreachable, source quench,
#: time exceeded, parameter problem.
_ICMP_ERRORS: Final = (3, 4, 11, 12)
_K, _X = 0x00, 0x08


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: opcode, dst and src register nibbles, s16 offset, s32
    immediate, little-endian as the kernel reads them on the machines listed above."""
    if imm >= 1 << 31:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


class _Asm:
    """Instructions with named jump targets: a jump names a label, and :meth:`code`
    turns it into the offset the kernel wants (instructions after the jump)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: str | int = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def code(self) -> bytes:
        out = []
        for i, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - i - 1
            out.append(_insn(code, dst, src, off, imm))
        return b"".join(out)


def steering_program(workers: int) -> bytes:
    """The program's instructions for ``workers`` queues (see the module docstring).

    Registers: R6 the skb (the loads need it there), R7 an offset into the packet
    (the IPv4 header length, then the quoted packet's), R8 the kernel's port, R9
    synack's port, R0 what each load returns."""
    if not 1 <= workers <= 0xFFFF:
        raise ValueError(f"workers must be in 1..65535, got {workers}")
    a = _Asm()
    a.op(_ALU64 | _MOV | _X, 6, 1)  # r6 = r1 (the skb)
    a.op(_LD | _ABS | _B, imm=0)  # r0 = version and IHL byte
    a.op(_ALU64 | _RSH | _K, 0, imm=4)  # r0 >>= 4: the IP version
    a.op(_JMP | _JEQ | _K, 0, off="v6", imm=6)
    a.op(_JMP | _JNE | _K, 0, off="queue0", imm=4)
    a.op(_LD | _ABS | _H, imm=6)  # r0 = flags and fragment offset
    a.op(_JMP | _JSET | _K, 0, off="queue0", imm=0x1FFF)  # a later fragment
    a.op(_LD | _ABS | _B, imm=0)
    a.op(_ALU64 | _AND | _K, 0, imm=0x0F)  # r0 = IHL, in 32-bit words
    a.op(_ALU64 | _LSH | _K, 0, imm=2)  # r0 = header length in bytes
    a.op(_ALU64 | _MOV | _X, 7, 0)  # r7 = r0
    a.op(_LD | _ABS | _B, imm=9)  # r0 = IPv4 protocol
    a.op(_JMP | _JEQ | _K, 0, off="icmp4", imm=_PROTO_ICMP)
    a.op(_JMP | _JNE | _K, 0, off="queue0", imm=_PROTO_TCP)
    a.op(_LD | _IND | _H, 0, 7, imm=0)  # r0 = TCP source port (at r7)
    a.op(_ALU64 | _MOV | _X, 8, 0)  # r8 = the kernel's port
    a.op(_LD | _IND | _H, 0, 7, imm=2)  # r0 = TCP destination port
    a.op(_ALU64 | _MOV | _X, 9, 0)  # r9 = synack's port
    a.op(_JMP | _JA, off="decide")
    # ICMP errors (RFC 792) quote the IP header and the first 8 bytes of the packet
    # synack sent: its source port is synack's, its destination port the kernel's.
    a.label("icmp4")
    a.op(_LD | _IND | _B, 0, 7, imm=0)  # r0 = ICMP type
    for typ in _ICMP_ERRORS:
        a.op(_JMP | _JEQ | _K, 0, off="quote4", imm=typ)
    a.op(_JMP | _JA, off="queue0")  # echo and the rest: queue 0
    a.label("quote4")
    a.op(_ALU64 | _ADD | _K, 7, imm=8)  # r7 = the quoted IP header
    a.op(_LD | _IND | _B, 0, 7, imm=9)  # r0 = its protocol
    a.op(_JMP | _JNE | _K, 0, off="queue0", imm=_PROTO_TCP)
    a.op(_LD | _IND | _B, 0, 7, imm=0)
    a.op(_ALU64 | _AND | _K, 0, imm=0x0F)
    a.op(_ALU64 | _LSH | _K, 0, imm=2)  # r0 = its header length
    a.op(_ALU64 | _ADD | _X, 7, 0)  # r7 = the quoted TCP header
    a.op(_LD | _IND | _H, 0, 7, imm=0)
    a.op(_ALU64 | _MOV | _X, 9, 0)  # r9 = quoted source: synack's port
    a.op(_LD | _IND | _H, 0, 7, imm=2)
    a.op(_ALU64 | _MOV | _X, 8, 0)  # r8 = quoted destination: the kernel's
    a.op(_JMP | _JA, off="decide")
    a.label("v6")
    a.op(_LD | _ABS | _B, imm=6)  # r0 = IPv6 next header
    a.op(_JMP | _JEQ | _K, 0, off="icmp6", imm=_PROTO_ICMPV6)
    a.op(_JMP | _JNE | _K, 0, off="queue0", imm=_PROTO_TCP)  # not TCP right away
    a.op(_LD | _ABS | _H, imm=40)  # r0 = TCP source port
    a.op(_ALU64 | _MOV | _X, 8, 0)
    a.op(_LD | _ABS | _H, imm=42)  # r0 = TCP destination port
    a.op(_ALU64 | _MOV | _X, 9, 0)
    a.op(_JMP | _JA, off="decide")
    # ICMPv6 errors (types below 128, RFC 4443 §2.1) quote the packet from byte 48:
    # an IPv6 header, then (no extension headers) TCP at 88.
    a.label("icmp6")
    a.op(_LD | _ABS | _B, imm=40)  # r0 = ICMPv6 type
    a.op(_JMP | _JGE | _K, 0, off="queue0", imm=128)  # informational: queue 0
    a.op(_LD | _ABS | _B, imm=48 + 6)  # r0 = the quoted next header
    a.op(_JMP | _JNE | _K, 0, off="queue0", imm=_PROTO_TCP)
    a.op(_LD | _ABS | _H, imm=88)
    a.op(_ALU64 | _MOV | _X, 9, 0)  # r9 = quoted source: synack's port
    a.op(_LD | _ABS | _H, imm=90)
    a.op(_ALU64 | _MOV | _X, 8, 0)  # r8 = quoted destination
    a.label("decide")
    a.op(_JMP | _JLT | _K, 9, off="hash", imm=EPHEMERAL_LOW)  # below the range
    a.op(_ALU64 | _MOV | _X, 0, 9)  # r0 = synack's port (a worker's)
    a.op(_ALU64 | _MOD | _K, 0, imm=workers)  # r0 %= N: its owner
    a.op(_JMP | _EXIT)
    a.label("hash")
    a.op(_ALU64 | _MOV | _X, 0, 8)  # r0 = the kernel's port
    a.op(_ALU | _MUL | _K, 0, imm=_GOLDEN)  # w0 *= golden (32-bit)
    a.op(_ALU | _RSH | _K, 0, imm=16)  # w0 >>= 16
    a.op(_JMP | _JA, off="mod")
    a.label("queue0")
    a.op(_ALU64 | _MOV | _K, 0, imm=0)  # r0 = 0 (queue 0)
    a.label("mod")
    a.op(_ALU64 | _MOD | _K, 0, imm=workers)  # r0 %= N
    a.op(_JMP | _EXIT)
    return a.code()


def expected_queue(packet: bytes, workers: int) -> int:
    """What :func:`steering_program` answers for ``packet`` (an IP packet), in Python:
    the reference the tests hold the loaded program to."""
    if not packet:
        return 0
    version = packet[0] >> 4
    swap = False  # an ICMP error: the quoted packet's ports, synack's first
    if version == 4 and len(packet) >= 20:
        if int.from_bytes(packet[6:8], "big") & 0x1FFF:
            return 0
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] == _PROTO_ICMP:
            if len(packet) <= ihl or packet[ihl] not in _ICMP_ERRORS:
                return 0
            q = ihl + 8
            if len(packet) < q + 10 or packet[q + 9] != _PROTO_TCP:
                return 0
            ihl = q + (packet[q] & 0x0F) * 4
            swap = True
        elif packet[9] != _PROTO_TCP:
            return 0
        ports = packet[ihl : ihl + 4]
    elif version == 6 and len(packet) >= 40:
        if packet[6] == _PROTO_ICMPV6:
            if len(packet) < 55 or packet[40] >= 128 or packet[54] != _PROTO_TCP:
                return 0
            ports = packet[88:92]
            swap = True
        elif packet[6] == _PROTO_TCP:
            ports = packet[40:44]
        else:
            return 0
    else:
        return 0
    if len(ports) < 4:
        return 0
    sport: int
    dport: int
    sport, dport = struct.unpack("!HH", ports)
    if swap:
        sport, dport = dport, sport
    if dport >= EPHEMERAL_LOW:
        return dport % workers
    return (((sport * _GOLDEN) & 0xFFFFFFFF) >> 16) % workers


def ephemeral_ports(worker: int, workers: int) -> range:
    """Worker ``worker``'s (0-based) share of 49152-65535: the ports ``p`` with
    ``p % workers == worker``, the ones the steering program sends back to it."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is not in 0..{workers - 1}")
    first = EPHEMERAL_LOW + (worker - EPHEMERAL_LOW) % workers
    return range(first, EPHEMERAL_HIGH + 1, workers)


# ------------------------------------------------------------------ the syscall
def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2): no system call number known for {platform.machine()}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    res = int(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(2) command {cmd}: {os.strerror(err)}")
    return res


def load_steering_program(workers: int) -> int:
    """Load the program into the kernel (``BPF_PROG_LOAD``); returns its descriptor.
    OSError when the kernel refuses (no BPF, no privilege), with the verifier's log."""
    insns = steering_program(workers)
    code = ctypes.create_string_buffer(insns, len(insns))
    licence = ctypes.create_string_buffer(b"MIT")  # uses no GPL-only helpers
    log = ctypes.create_string_buffer(4096)
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, the BPF_PROG_LOAD part
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        _BPF_PROG_TYPE_SOCKET_FILTER,
        len(insns) // 8,
        ctypes.addressof(code),
        ctypes.addressof(licence),
        1,
        len(log),
        ctypes.addressof(log),
    )
    struct.pack_into("16s", attr, 48, b"synack_steer")  # prog_name, after kern_version
    # and prog_flags
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}" + (f": {text[-500:]}" if text else "")) from None


def test_run(prog_fd: int, packet: bytes) -> int:
    """Run the loaded program on ``packet`` (``BPF_PROG_TEST_RUN``) and return its answer.
    The kernel treats the data as an Ethernet frame and hands a socket filter the
    skb from the network header on, as a TUN device does: so a dummy 14-byte
    Ethernet header with the IP EtherType goes first."""
    ethertype = b"\x86\xdd" if packet and packet[0] >> 4 == 6 else b"\x08\x00"
    frame = b"\x02" * 12 + ethertype + packet
    data = ctypes.create_string_buffer(frame, len(frame))
    attr = ctypes.create_string_buffer(80)  # the test part of union bpf_attr
    # prog_fd, retval, data_size_in, data_size_out, data_in, data_out, repeat, duration
    struct.pack_into(
        "<IIIIQQII", attr, 0, prog_fd, 0, len(frame), 0, ctypes.addressof(data), 0, 1, 0
    )
    _bpf(_BPF_PROG_TEST_RUN, attr)
    retval: int = struct.unpack_from("<I", attr, 4)[0]
    return retval


def attach_steering(tun_fd: int, prog_fd: int) -> None:
    """``TUNSETSTEERINGEBPF``: make ``prog_fd`` the device's queue selector (the device
    keeps its own reference; ``prog_fd`` may be closed afterwards).  -1 detaches."""
    fcntl.ioctl(tun_fd, TUNSETSTEERINGEBPF, struct.pack("i", prog_fd))
