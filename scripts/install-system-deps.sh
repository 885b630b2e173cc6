#!/bin/sh
# Install the system packages synack's tests need (Debian/Ubuntu):
#   tshark          - reads the pcap/pcapng files and checks its TCP analysis flags
#   chromium        - loads the HTML report headless (driven over the DevTools protocol)
#   socat, curl     - kernel-side clients and servers in the interop tests
#   tcpdump         - captures handshakes on the TUN device (option negotiation)
#   netcat-openbsd  - nc, another kernel-side client
#   iproute2        - ip (TUN devices, network namespaces) and ss
#   iputils-ping    - ping of synack's address
#   procps          - sysctl (the kernel's TCP options, per network namespace)
# Idempotent: installs only what is missing, with at most one `apt-get update`.
# Needs root (or sudo).
set -eu
missing=""
need() {  # need COMMAND PACKAGE: add PACKAGE unless COMMAND exists
    command -v "$1" >/dev/null 2>&1 || case " $missing " in
        *" $2 "*) ;;
        *) missing="$missing $2" ;;
    esac
}
need tshark tshark
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing="$missing chromium"
need socat socat
need curl curl
need tcpdump tcpdump
need nc netcat-openbsd
need ip iproute2
need ss iproute2
need ping iputils-ping
need sysctl procps
if [ -z "$missing" ]; then
    echo "system dependencies present: tshark chromium socat curl tcpdump nc ip ss ping sysctl"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
# tshark asks whether non-root users may capture; answer no, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" \
    | $SUDO debconf-set-selections 2>/dev/null || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
