"""Stack profiles for the packetdrill runner: RFC-first (default) and Linux.

A profile is *configuration*, never a special case in the runner or the
core: a set of :class:`~synack.tcp.config.TcpConfig` values, the sysctls the
host starts with, and how the socket layer treats buffer sizes.  The Linux
profile makes synack behave as the kernel the corpus scripts were written
against, where the RFCs leave room (timers, buffer arithmetic, option
layout); the RFC profile is synack's own defaults.

Sysctl settings from scripts (``defaults.sh``, ``set_sysctls.py``,
``sysctl -q``) are mapped onto the same fields by :func:`config_from_sysctls`.
A Linux behaviour that no TcpConfig field can express yet is reported as an
*unmet need* (the field name it would take), so a run says exactly what the
core lacks instead of imitating it here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..tcp import algorithms
from ..tcp.config import TcpConfig

#: What synack's TcpConfig can express right now (fields are added as the core grows).
TCP_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(TcpConfig))
_DEFAULTS = TcpConfig()


@dataclass(frozen=True, slots=True)
class Want:
    """A configuration value a profile asks for, with the reason."""

    field: str
    value: object
    why: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    #: TcpConfig values this profile wants (fields TcpConfig lacks become unmet needs).
    wants: tuple[Want, ...] = ()
    #: The host's sysctls before the script runs (a fresh kernel's defaults).
    sysctls: Mapping[str, str] = field(default_factory=dict)
    #: SO_SNDBUF/SO_RCVBUF store twice the value asked for (Linux sock_setsockopt).
    double_socket_buffers: bool = False
    #: Behaviours the core cannot express as configuration yet: (proposed field, what).
    missing: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class ConfigResult:
    config: TcpConfig
    applied: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)


RFC = Profile(
    name="rfc",
    description="synack's own RFC-first defaults (RFC 9293, RFC 6298 1 s minimum RTO, "
    "200 ms delayed ACK, initial window 10, Nagle off)",
)

LINUX = Profile(
    name="linux",
    description="the Linux kernel the corpus was written against: 200 ms minimum RTO, "
    "40 ms delayed ACK, Nagle on, SACK/timestamps/window scaling on, CUBIC, "
    "window scale from tcp_rmem, doubled SO_SNDBUF/SO_RCVBUF",
    wants=(
        Want("rto_min", 0.2, "TCP_RTO_MIN is 200 ms (RFC 6298 asks for 1 s)"),
        Want("rto_initial", 1.0, "TCP_TIMEOUT_INIT is 1 s"),
        Want("delayed_ack", 0.04, "TCP_DELACK_MIN: the delayed-ACK timer starts at 40 ms"),
        Want("nodelay", False, "Nagle's algorithm is on until TCP_NODELAY"),
        Want(
            "mss_half_window",
            True,
            "segments no larger than half the peer's largest window (tcp_bound_to_half_wnd)",
        ),
        Want(
            "rto_min_on_rttvar",
            True,
            "rto_min floors the variance term: RTO = SRTT + "
            "max(4*RTTVAR, rto_min) (tcp_rtt_estimator, __tcp_set_rto)",
        ),
        Want(
            "psh_write_end",
            True,
            "PSH marks the end of each write and every half max "
            "window written (tcp_mark_push, forced_push)",
        ),
        Want(
            "psh_retrans_kept",
            True,
            "a retransmission carries PSH if the data it resends "
            "was first sent with it (tcp_retransmit_skb keeps the skb's flags)",
        ),
        Want(
            "fin_needs_window",
            True,
            "the FIN waits until its sequence number fits the peer's window (tcp_snd_wnd_test)",
        ),
        Want(
            "tlp_new_data_rto_from_head",
            True,
            "a loss probe of new data keeps the RTO "
            "counted from the oldest outstanding segment (tcp_rearm_rto, "
            "tcp_rto_delta_us)",
        ),
        Want(
            "cwnd_in_packets",
            True,
            "each segment sent takes a whole packet of cwnd, "
            "however short (tcp_write_xmit, tcp_xmit_retransmit_queue)",
        ),
        Want(
            "held_data_probe",
            True,
            "data corked with nothing in flight leaves on the "
            "probe timer, one RTO later (tcp_check_probe_timer, tcp_write_wakeup)",
        ),
        Want(
            "drop_no_ack_first",
            True,
            "a segment without ACK, RST or SYN is dropped "
            "before the sequence check (tcp_rcv_established, tcp_rcv_state_process)",
        ),
        Want(
            "nagle_minshall",
            True,
            "Nagle holds a partial segment only while the last "
            "small segment is unacknowledged (tcp_nagle_check, tcp_minshall_check)",
        ),
        Want(
            "retrans_collapse",
            True,
            "a short retransmission absorbs the lost segments "
            "after it that fit one MSS, with their PSH/FIN (tcp_retrans_try_collapse)",
        ),
        Want(
            "zero_window_probe_old_seq",
            True,
            "zero-window probes are bare ACKs at "
            "SND.UNA - 1 (tcp_write_wakeup, tcp_xmit_probe_skb)",
        ),
        Want(
            "max_window_from_ack",
            True,
            "a passive open's max_window is the handshake "
            "ACK's window, not the SYN's (tcp_create_openreq_child)",
        ),
        Want(
            "old_ack_bytes_acked",
            True,
            "an ACK below SND.UNA - min(max_window, "
            "bytes_acked) gets a challenge ACK and is dropped (tcp_ack, RFC 5961 §5.2)",
        ),
        Want(
            "challenge_ack_oow_limit",
            True,
            "challenge ACKs are limited to one per "
            "tcp_invalid_ratelimit (500 ms) per socket, shared with out-of-window replies "
            "(tcp_send_challenge_ack, __tcp_oow_rate_limited)",
        ),
        Want(
            "rst_on_data_after_shut_rd",
            True,
            "new data in FIN-WAIT-1/2 after "
            "shutdown(SHUT_RD) resets the connection (tcp_rcv_state_process, tcp_reset)",
        ),
        Want(
            "reset_errno_by_state",
            True,
            "an RST leaves EPIPE in CLOSE-WAIT and ECONNRESET in CLOSING/LAST-ACK (tcp_reset)",
        ),
        Want(
            "rst_after_fin_match",
            True,
            "an RST at RCV.NXT - 1 in CLOSE-WAIT, LAST-ACK or CLOSING resets (tcp_reset_check)",
        ),
        Want("initial_window", 10, "TCP_INIT_CWND is 10 segments"),
        Want("msl", 30.0, "TIME-WAIT lasts TCP_TIMEWAIT_LEN = 60 s = 2*MSL"),
        Want("fin_wait_2_timeout", 60.0, "tcp_fin_timeout is 60 s"),
        Want("max_retransmits", 15, "tcp_retries2 is 15"),
        Want("tlp_min", 0.01, "TCP_TIMEOUT_MIN for the loss probe timer is 10 ms"),
        Want("window_in_segments", True, "__tcp_select_window offers whole segments"),
        Want(
            "quickack",
            16,
            "quick-ACK mode: the first segments are ACKed at once (TCP_MAX_QUICKACKS)",
        ),
        Want("psh_every_burst", True, "PSH on the last segment of every burst transmitted"),
        Want(
            "psh_burst_segments",
            2,
            "bursts leave as TSO packets of tcp_min_tso_segs (2) "
            "segments (tcp_tso_autosize at a low pacing rate), each ending with PSH "
            "(tcp_gso_segment), Nagle or not; limited-transmit segments carry none",
        ),
        Want(
            "delayed_ack_fin",
            True,
            "a FIN in ESTABLISHED enters 'pingpong' mode: its ACK waits for the delayed-ACK timer",
        ),
        Want(
            "sack_reset_on_fin",
            True,
            "tcp_fin() resets the SACK state: no D-SACK for a duplicate that arrives with the FIN",
        ),
        Want(
            "orphan_rst_from_ack",
            True,
            "data for a closed socket: tcp_reset() then "
            "tcp_v4_send_reset(), an RST with seq = the segment's ACK and no ACK flag",
        ),
        Want(
            "tlp_clamp_to_rto",
            True,
            "tcp_schedule_loss_probe: the probe fires at the RTO's "
            "time when that is earlier (PTO = min(PTO, RTO))",
        ),
        Want(
            "abc_limit",
            None,
            "slow start adds every newly acknowledged segment to cwnd (no RFC 3465 cap)",
        ),
        Want(
            "cwnd_count_delivered",
            True,
            "cwnd grows by the segments an ACK newly delivers "
            "(tcp_cong_control's acked_sacked): SACKed or duplicate-ACKed ones counted before",
        ),
        Want(
            "tlp_wc_delack",
            0.2,
            "the loss probe allows 200 ms for the peer's delayed ACK "
            "when one segment is out (RFC 8985 §7.2)",
        ),
        Want(
            "accept_beyond_window",
            True,
            "tcp_sequence(): a segment ending past the window "
            "is kept whole if no data waits to be read, else dropped whole",
        ),
        Want(
            "rcv_truesize_headroom",
            424,
            "receive memory counts skb truesize: TUN's kmalloc "
            "buffer for the packet (payload + 40 header + 64 NET_SKB_PAD + 320 "
            "skb_shared_info, to a power of two) + 256 sk_buff; window = free memory x "
            "payload/truesize (tcp_win_from_space, scaling_ratio)",
        ),
        Want(
            "snd_skb_overhead",
            1280,
            "send memory counts skb truesize: payload + 1280 per "
            "skb (1 KB head + sk_buff); skbs of the size goal, split into TSO packets",
        ),
        Want(
            "rcv_ssthresh",
            True,
            "receive-window slow start: the window starts at half "
            "tcp_rmem[1] in whole MSS, is capped by rcv_ssthresh, clamped when the "
            "payload/truesize ratio changes, grown by tcp_grow_window(); not rounded to "
            "segments with window scaling (tcp_select_initial_window, __tcp_select_window)",
        ),
        Want(
            "rst_window",
            True,
            "an RST from a connection carries the window, after "
            "close() freed the unread data (tcp_close, tcp_send_active_reset)",
        ),
        Want(
            "snd_wake_ratio",
            0.5,
            "a blocked writer wakes when free send memory >= half the "
            "memory in use (sk_stream_write_space)",
        ),
    ),
    sysctls={
        # A fresh kernel's values; defaults.sh files then override most of them.
        "net.ipv4.tcp_timestamps": "1",
        "net.ipv4.tcp_sack": "1",
        "net.ipv4.tcp_window_scaling": "1",
        "net.ipv4.tcp_rmem": "4096 131072 6291456",
        "net.ipv4.tcp_wmem": "4096 16384 4194304",
        "net.ipv4.tcp_syn_retries": "6",
        "net.ipv4.tcp_synack_retries": "5",
        "net.ipv4.tcp_congestion_control": "cubic",
        "net.ipv4.tcp_ecn": "2",
        "net.ipv4.tcp_recovery": "1",
        "net.ipv4.tcp_early_retrans": "3",
        "net.ipv4.tcp_dsack": "1",
        "net.ipv4.tcp_reordering": "3",
        "net.core.rmem_max": "212992",
        "net.core.wmem_max": "212992",
    },
    double_socket_buffers=True,
)

PROFILES: dict[str, Profile] = {RFC.name: RFC, LINUX.name: LINUX}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


# ------------------------------------------------------------------------- sysctls
def _flag(v: str) -> bool:
    return _int(v) != 0


def _int(v: str) -> int:
    return int(v.strip(), 0)


def _triple(v: str) -> tuple[int, int, int]:
    parts = v.split()
    if len(parts) != 3:
        raise ValueError(f"expected 'min default max', got {v!r}")
    a, b, c = (int(p) for p in parts)
    return a, b, c


#: sysctl -> (TcpConfig field, converter) for the direct mappings.
_DIRECT: dict[str, tuple[str, object]] = {
    "net.ipv4.tcp_timestamps": ("timestamps", _flag),
    "net.ipv4.tcp_sack": ("sack", _flag),
    "net.ipv4.tcp_window_scaling": ("window_scaling", _flag),
    "net.ipv4.tcp_syn_retries": ("syn_retries", _int),
    "net.ipv4.tcp_synack_retries": ("synack_retries", _int),
    "net.ipv4.tcp_retries2": ("max_retransmits", _int),
    "net.ipv4.tcp_fin_timeout": ("fin_wait_2_timeout", lambda v: float(_int(v))),
    "net.ipv4.tcp_recovery": ("rack", lambda v: bool(_int(v) & 1)),
    "net.ipv4.tcp_early_retrans": ("tlp", lambda v: _int(v) >= 3),
    "net.ipv4.tcp_keepalive_time": ("keepalive_idle", lambda v: float(_int(v))),
    "net.ipv4.tcp_keepalive_intvl": ("keepalive_interval", lambda v: float(_int(v))),
    "net.ipv4.tcp_keepalive_probes": ("keepalive_count", _int),
    "net.ipv4.tcp_ecn": ("ecn", lambda v: {0: "off", 1: "on"}.get(_int(v), "passive")),
    "net.ipv4.tcp_dsack": ("dsack", _flag),
    "net.ipv4.tcp_frto": ("frto", _int),
    "net.ipv4.tcp_reordering": ("dupthresh", _int),
    "net.ipv4.tcp_slow_start_after_idle": ("slow_start_after_idle", _flag),
    "net.ipv4.tcp_min_tso_segs": ("psh_burst_segments", _int),
}

#: Values for which synack's fixed behaviour already equals the sysctl.
_BUILTIN: dict[tuple[str, str], str] = {
    ("net.ipv4.tcp_reordering", "3"): "synack's duplicate-ACK threshold is fixed at 3",
    ("net.ipv4.tcp_frto", "0"): "synack has no F-RTO",
    ("net.ipv4.tcp_dsack", "1"): "synack reports duplicate segments with D-SACK whenever "
    "SACK is on",
}

#: Sysctls that have nothing to act on in synack, with the reason.
_NO_EFFECT: dict[str, str] = {
    "net.ipv4.tcp_fack": "FACK was removed from Linux (4.15); RACK replaces it",
    "net.ipv4.tcp_tso_win_divisor": "TSO deferral: synack never defers to build bigger "
    "segments, and the runner aggregates segments anyway",
    "net.ipv4.tcp_pacing_ss_ratio": "synack does not pace",
    "net.ipv4.tcp_pacing_ca_ratio": "synack does not pace",
    "net.ipv4.tcp_notsent_lowat": "unlimited (the value scripts set) is synack's behaviour",
    "net.ipv4.tcp_fastopen": "TCP Fast Open is not used by these scripts",
    "net.ipv4.tcp_fastopen_key": "TCP Fast Open is not used by these scripts",
    "net.ipv4.tcp_syncookies": "SYN cookies only matter when the SYN queue overflows",
    "net.ipv4.tcp_ecn_option": "AccECN options are not implemented",
    "net.core.rmem_max": "used by the socket layer for SO_RCVBUF",
    "net.core.wmem_max": "used by the socket layer for SO_SNDBUF",
}


def config_from_sysctls(profile: Profile, sysctls: Mapping[str, str]) -> ConfigResult:
    """The TcpConfig ``profile`` gives under ``sysctls``, with what was applied and what not."""
    values: dict[str, object] = {}
    res_applied: list[str] = []
    res_ignored: list[str] = []
    res_unmet: list[str] = []
    for w in profile.wants:
        if w.field in TCP_CONFIG_FIELDS:
            values[w.field] = w.value
            res_applied.append(f"{w.field}={w.value!r} ({w.why})")
        else:
            res_unmet.append(f"TcpConfig.{w.field}={w.value!r}: {w.why}")
    for key, value in sysctls.items():
        if key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
            continue  # after the feature flags: the receive buffer depends on window scaling
        if key == "net.ipv4.tcp_congestion_control":
            name = value.strip()
            if name in algorithms.ALGORITHMS:
                values["congestion_control"] = name
                res_applied.append(f"{key}={name} -> congestion_control={name!r}")
            else:
                res_unmet.append(
                    f"{key}={name}: no congestion control of that name "
                    f"(known: {', '.join(sorted(algorithms.ALGORITHMS))})"
                )
            continue
        if key in _NO_EFFECT:
            res_ignored.append(f"{key}={value}: {_NO_EFFECT[key]}")
            continue
        rule = _DIRECT.get(key)
        if rule is None:
            res_ignored.append(f"{key}={value}: unknown to synack, ignored")
            continue
        fname, conv = rule
        try:
            converted = conv(value)  # type: ignore[operator]
        except ValueError as exc:
            res_ignored.append(f"{key}={value}: bad value ({exc})")
            continue
        if fname in TCP_CONFIG_FIELDS:
            values[fname] = converted
            res_applied.append(f"{key}={value} -> {fname}={converted!r}")
        elif (key, value.strip()) in _BUILTIN:
            res_ignored.append(f"{key}={value}: {_BUILTIN[(key, value.strip())]}")
        else:
            res_unmet.append(f"{key}={value}: needs TcpConfig.{fname}")
    _buffers(sysctls, values, res_applied, res_ignored)
    for fname, what in profile.missing:
        if fname not in TCP_CONFIG_FIELDS:
            res_unmet.append(f"TcpConfig.{fname}: {what}")
    known = {k: v for k, v in values.items() if k in TCP_CONFIG_FIELDS}
    if not known.get("window_scaling", _DEFAULTS.window_scaling):
        rcv = known.get("rcv_buf", _DEFAULTS.rcv_buf)
        if isinstance(rcv, int) and rcv > 65535:
            known["rcv_buf"] = 65535
            res_applied.append("rcv_buf=65535 (no window scaling: a window cannot offer more)")
    config = TcpConfig(**known)  # type: ignore[arg-type]
    return ConfigResult(config, res_applied, res_ignored, res_unmet)


def _buffers(
    sysctls: Mapping[str, str], values: dict[str, object], applied: list[str], ignored: list[str]
) -> None:
    scaling = bool(values.get("window_scaling", False))
    rmem = sysctls.get("net.ipv4.tcp_rmem")
    if rmem is not None:
        try:
            _, default, top = _triple(rmem)
        except ValueError as exc:
            ignored.append(f"net.ipv4.tcp_rmem={rmem}: {exc}")
        else:
            if scaling and values.get("rcv_ssthresh"):
                # The buffer starts at tcp_rmem[1] (sk_rcvbuf); the window scale is chosen
                # for what autotuning may grow it to (tcp_select_initial_window()).
                values["rcv_buf"] = default
                try:
                    rmem_max = _int(sysctls.get("net.core.rmem_max", "212992"))
                except ValueError:
                    rmem_max = 212992
                values["rcv_wscale_space"] = max(top, rmem_max)
                applied.append(
                    f"net.ipv4.tcp_rmem={rmem} -> rcv_buf={default} (sk_rcvbuf), "
                    f"rcv_wscale_space={max(top, rmem_max)} (max(tcp_rmem[2], "
                    "rmem_max): the window scale)"
                )
            elif scaling:
                # Linux autotunes the receive buffer up to tcp_rmem[2] and picks the window
                # scale that lets the window reach it; synack derives the scale from rcv_buf.
                values["rcv_buf"] = top
                applied.append(
                    f"net.ipv4.tcp_rmem={rmem} -> rcv_buf={top} (the autotuning "
                    "ceiling, which sets the window scale)"
                )
            else:
                values["rcv_buf"] = min(default, 65535)
                applied.append(
                    f"net.ipv4.tcp_rmem={rmem} -> rcv_buf={min(default, 65535)} "
                    "(no window scaling: at most 65535)"
                )
    wmem = sysctls.get("net.ipv4.tcp_wmem")
    if wmem is not None:
        try:
            _, default, _top = _triple(wmem)
        except ValueError as exc:
            ignored.append(f"net.ipv4.tcp_wmem={wmem}: {exc}")
        else:
            values["snd_buf"] = default
            applied.append(f"net.ipv4.tcp_wmem={wmem} -> snd_buf={default}")


def socket_buffer(
    profile: Profile, sysctls: Mapping[str, str], option: str, value: int, window_scaling: bool
) -> int:
    """The buffer size SO_SNDBUF/SO_RCVBUF ``value`` gives (``option`` 'snd' or 'rcv')."""
    value = max(value, 1)
    if profile.double_socket_buffers:
        cap_key = "net.core.rmem_max" if option == "rcv" else "net.core.wmem_max"
        try:
            cap = _int(sysctls.get(cap_key, "212992"))
        except ValueError:
            cap = 212992
        value = 2 * min(value, cap)
        value = max(value, 2304 if option == "rcv" else 4608)  # SOCK_MIN_RCVBUF/SNDBUF
    if option == "rcv" and not window_scaling:
        value = min(value, 65535)
    return value


__all__ = [
    "LINUX",
    "PROFILES",
    "RFC",
    "TCP_CONFIG_FIELDS",
    "ConfigResult",
    "Profile",
    "Want",
    "config_from_sysctls",
    "get_profile",
    "socket_buffer",
]
