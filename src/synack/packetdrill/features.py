"""Features a script may need that synack does not have, and the one line that says so.

A script that needs one fails at the first line that uses it with
``needs <feature> (<reference>), which synack does not implement`` -- never a parse
error, and never a guess at the behaviour.  The kernel target runs such scripts.
"""

from __future__ import annotations

#: Feature name -> the specification that defines it.
FEATURES = {
    "TCP Fast Open": "RFC 7413",
    "MSG_ZEROCOPY": "Linux Documentation/networking/msg_zerocopy.rst",
    "TCP MD5 signatures": "RFC 2385",
    "SO_TIMESTAMPING": "Linux Documentation/networking/timestamping.rst",
    "IPv6": "RFC 8200",
}

#: Socket options (level, name) and send flags that need a missing feature.
OPTION_FEATURES = {
    (6, 23): "TCP Fast Open",  # TCP_FASTOPEN
    (6, 30): "TCP Fast Open",  # TCP_FASTOPEN_CONNECT
    (6, 33): "TCP Fast Open",  # TCP_FASTOPEN_NO_COOKIE
    (6, 14): "TCP MD5 signatures",  # TCP_MD5SIG
    (1, 60): "MSG_ZEROCOPY",  # SO_ZEROCOPY
    (1, 37): "SO_TIMESTAMPING",  # SO_TIMESTAMPING_OLD
    (1, 65): "SO_TIMESTAMPING",  # SO_TIMESTAMPING_NEW
}
FLAG_FEATURES = {
    0x20000000: "TCP Fast Open",  # MSG_FASTOPEN
    0x4000000: "MSG_ZEROCOPY",  # MSG_ZEROCOPY
}


def needs_feature(what: str, feature: str) -> str:
    """The one line a script fails with when ``what`` needs ``feature``."""
    return f"{what} needs {feature} ({FEATURES[feature]}), which synack does not implement"


__all__ = ["FEATURES", "FLAG_FEATURES", "OPTION_FEATURES", "needs_feature"]
