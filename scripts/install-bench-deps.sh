#!/bin/sh
# Install the system packages the network benchmarks (benchmarks/bench_net.py) use
# (Debian/Ubuntu):
#   iproute2  - ip: network namespaces, veth pairs, TUN devices
#   iperf3    - an extra kernel <-> kernel throughput row, for scale (optional)
#   procps    - sysctl, ps (diagnostics)
#   wrk       - HTTP load generator: connection rate (a new connection per request)
#   apache2-utils - ab, the same measurement with latency percentiles
# The benchmark's other endpoints are Python (the standard library and synack).  PyTCP's environment is scripts/install-pytcp-env.sh's.
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
need ip iproute2
need iperf3 iperf3
need sysctl procps
need wrk wrk
need ab apache2-utils
if [ -z "$missing" ]; then
    echo "benchmark dependencies present: ip iperf3 sysctl wrk ab"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
# iperf3 asks whether to start a daemon at boot; answer no, non-interactively.
echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
