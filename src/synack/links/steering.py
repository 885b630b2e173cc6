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
* anything else (not TCP, a fragment after the first, IPv6 with an extension
  header, a packet too short for the loads) goes to queue 0.

The program is a ``BPF_PROG_TYPE_SOCKET_FILTER`` of 35 instructions, assembled
here as bytes (no compiler) and loaded with the ``bpf(2)`` system call through
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
_SYS_BPF: Final = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280,
                   "ppc64le": 361, "s390x": 351, "i686": 357}

# Instruction classes, sizes, modes, operations and sources (include/uapi/linux/bpf.h,
# bpf_common.h).
_LD, _ALU, _JMP, _ALU64 = 0x00, 0x04, 0x05, 0x07
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND = 0x20, 0x40
_MUL, _AND, _LSH, _RSH, _MOD, _MOV = 0x20, 0x50, 0x60, 0x70, 0x90, 0xB0
_JA, _JEQ, _JNE, _JSET, _JLT, _EXIT = 0x00, 0x10, 0x50, 0x40, 0xA0, 0x90
_K, _X = 0x00, 0x08


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: opcode, dst and src register nibbles, s16 offset, s32
    immediate, little-endian as the kernel reads them on the machines listed above."""
    if imm >= 1 << 31:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def steering_program(workers: int) -> bytes:
    """The program's instructions for ``workers`` queues (see the module docstring).

    Registers: R6 the skb (the loads need it there), R7 the IPv4 header length,
    R8 the source port, R9 the destination port, R0 what each load returns.
    Jump offsets count instructions after the jump."""
    if not 1 <= workers <= 0xFFFF:
        raise ValueError(f"workers must be in 1..65535, got {workers}")
    p = [
        _insn(_ALU64 | _MOV | _X, 6, 1),          # 0  r6 = r1 (the skb)
        _insn(_LD | _ABS | _B, imm=0),             # 1  r0 = version and IHL byte
        _insn(_ALU64 | _RSH | _K, 0, imm=4),       # 2  r0 >>= 4: the IP version
        _insn(_JMP | _JEQ | _K, 0, off=14, imm=6),  # 3  IPv6: to 18
        _insn(_JMP | _JNE | _K, 0, off=27, imm=4),  # 4  neither: to 32 (queue 0)
        _insn(_LD | _ABS | _B, imm=9),             # 5  r0 = IPv4 protocol
        _insn(_JMP | _JNE | _K, 0, off=25, imm=6),  # 6  not TCP: to 32
        _insn(_LD | _ABS | _H, imm=6),             # 7  r0 = flags and fragment offset
        _insn(_JMP | _JSET | _K, 0, off=23, imm=0x1FFF),  # 8  a later fragment: to 32
        _insn(_LD | _ABS | _B, imm=0),             # 9  r0 = version and IHL byte
        _insn(_ALU64 | _AND | _K, 0, imm=0x0F),    # 10 r0 = IHL, in 32-bit words
        _insn(_ALU64 | _LSH | _K, 0, imm=2),       # 11 r0 = header length in bytes
        _insn(_ALU64 | _MOV | _X, 7, 0),           # 12 r7 = r0
        _insn(_LD | _IND | _H, 0, 7, imm=0),       # 13 r0 = TCP source port (at r7)
        _insn(_ALU64 | _MOV | _X, 8, 0),           # 14 r8 = sport
        _insn(_LD | _IND | _H, 0, 7, imm=2),       # 15 r0 = TCP destination port
        _insn(_ALU64 | _MOV | _X, 9, 0),           # 16 r9 = dport
        _insn(_JMP | _JA, off=6),                  # 17 to 24
        _insn(_LD | _ABS | _B, imm=6),             # 18 r0 = IPv6 next header
        _insn(_JMP | _JNE | _K, 0, off=12, imm=6),  # 19 not TCP right away: to 32
        _insn(_LD | _ABS | _H, imm=40),            # 20 r0 = TCP source port
        _insn(_ALU64 | _MOV | _X, 8, 0),           # 21 r8 = sport
        _insn(_LD | _ABS | _H, imm=42),            # 22 r0 = TCP destination port
        _insn(_ALU64 | _MOV | _X, 9, 0),           # 23 r9 = dport
        _insn(_JMP | _JLT | _K, 9, off=3, imm=EPHEMERAL_LOW),  # 24 below the range: 28
        _insn(_ALU64 | _MOV | _X, 0, 9),           # 25 r0 = dport (a worker's port)
        _insn(_ALU64 | _MOD | _K, 0, imm=workers),  # 26 r0 %= N: its owner
        _insn(_JMP | _EXIT),                       # 27 return r0
        _insn(_ALU64 | _MOV | _X, 0, 8),           # 28 r0 = sport (the kernel's port)
        _insn(_ALU | _MUL | _K, 0, imm=_GOLDEN),   # 29 w0 *= golden (32-bit)
        _insn(_ALU | _RSH | _K, 0, imm=16),        # 30 w0 >>= 16
        _insn(_JMP | _JA, off=1),                  # 31 to 33
        _insn(_ALU64 | _MOV | _K, 0, imm=0),       # 32 r0 = 0 (queue 0)
        _insn(_ALU64 | _MOD | _K, 0, imm=workers),  # 33 r0 %= N
        _insn(_JMP | _EXIT),                       # 34 return r0
    ]
    return b"".join(p)


def expected_queue(packet: bytes, workers: int) -> int:
    """What :func:`steering_program` answers for ``packet`` (an IP packet), in Python:
    the reference the tests hold the loaded program to."""
    if not packet:
        return 0
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        if packet[9] != 6 or int.from_bytes(packet[6:8], "big") & 0x1FFF:
            return 0
        ihl = (packet[0] & 0x0F) * 4
        ports = packet[ihl:ihl + 4]
    elif version == 6 and len(packet) >= 40:
        if packet[6] != 6:
            return 0
        ports = packet[40:44]
    else:
        return 0
    if len(ports) < 4:
        return 0
    sport: int
    dport: int
    sport, dport = struct.unpack("!HH", ports)
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
        raise OSError(errno.ENOSYS, f"bpf(2): no system call number known for "
                      f"{platform.machine()}")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    res = int(libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr,
                           ctypes.c_uint(len(attr))))
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
    struct.pack_into("<IIQQIIQ", attr, 0, _BPF_PROG_TYPE_SOCKET_FILTER,
                     len(insns) // 8, ctypes.addressof(code), ctypes.addressof(licence),
                     1, len(log), ctypes.addressof(log))
    struct.pack_into("16s", attr, 48, b"synack_steer")  # prog_name, after kern_version
    # and prog_flags
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}" + (f": {text[-500:]}" if text else "")
                      ) from None


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
    struct.pack_into("<IIIIQQII", attr, 0, prog_fd, 0, len(frame), 0,
                     ctypes.addressof(data), 0, 1, 0)
    _bpf(_BPF_PROG_TEST_RUN, attr)
    retval: int = struct.unpack_from("<I", attr, 4)[0]
    return retval


def attach_steering(tun_fd: int, prog_fd: int) -> None:
    """``TUNSETSTEERINGEBPF``: make ``prog_fd`` the device's queue selector (the device
    keeps its own reference; ``prog_fd`` may be closed afterwards).  -1 detaches."""
    fcntl.ioctl(tun_fd, TUNSETSTEERINGEBPF, struct.pack("i", prog_fd))
