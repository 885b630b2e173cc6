#!/bin/sh
# Install the system packages synack's capture and report tests need (Debian/Ubuntu):
#   tshark    - reads the pcap/pcapng files and checks its TCP analysis flags
#   chromium  - loads the HTML report headless (driven over the DevTools protocol)
# Idempotent: installs only what is missing.  Needs root (or sudo).
set -eu
missing=""
command -v tshark >/dev/null 2>&1 || missing="$missing tshark"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing="$missing chromium"
if [ -z "$missing" ]; then
    echo "system dependencies present: tshark, chromium"
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
