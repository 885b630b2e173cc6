#!/usr/bin/env bash
# Build the environment that benchmarks/pytcp_bench.py runs PyTCP in.
#
# PyTCP 3.0.9 (PyPI: pytcp) needs Python >= 3.14, which Debian 12 lacks.
# This script debootstraps a minimal Debian testing (or unstable) tree into
# .bench-env/root, installs python3.14 + venv support from Debian there,
# creates a venv at /opt/pytcp-venv inside that tree and pip-installs
# pytcp==3.0.9 into it from PyPI.  Nothing is fetched from anywhere but
# the Debian mirror this machine's apt already uses and PyPI.
#
# Idempotent: each finished step leaves a stamp file; a rerun skips what is
# done and redoes a step that was interrupted.  Run as root.
#
# Environment overrides:
#   BENCH_ENV_DIR      where to build (default: <repo>/.bench-env)
#   BENCH_DEBIAN_SUITE suite to bootstrap (default: try testing, then unstable)
#   BENCH_DEBIAN_MIRROR Debian mirror URL (default: the one in apt's sources)
#   PYTCP_VERSION      pytcp version (default: 3.0.9)
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${BENCH_ENV_DIR:-$REPO_DIR/.bench-env}"
ROOT="$ENV_DIR/root"
VENV=/opt/pytcp-venv
PYTCP_VERSION="${PYTCP_VERSION:-3.0.9}"
PYVER=3.14

log() { printf '[install-pytcp-env] %s\n' "$*" >&2; }
die() { printf '[install-pytcp-env] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"

# Run a command inside the chroot with a clean environment, so the host's
# pip configuration (local wheel folders, constraints) does not leak in.
in_root() {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
        chroot "$ROOT" "$@"
}

# --- Debian mirror: the first plain Debian archive URL in apt's sources ----
find_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    # one-line format: deb [opts] URL suite comps ; deb822: URIs: URL
    # Keep URLs whose path ends in /debian (not debian-security, ports, ...).
    sed -nE -e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([a-z+]+:\/\/[^[:space:]]+).*/\2/p' \
            -e 's/^[[:space:]]*URIs:[[:space:]]*(.*)$/\1/p' "${files[@]}" \
        | tr ' ' '\n' | sed -e 's:/*$::' | grep -E '^[a-z+]+://[^ ]+/debian$' | head -n1
}

MIRROR="${BENCH_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR="$(find_mirror || true)"
    [ -n "$MIRROR" ] || die "no Debian mirror (a URL ending in /debian) found in /etc/apt/sources.list{,.d}; set BENCH_DEBIAN_MIRROR"
fi
log "Debian mirror: $MIRROR"

# --- tools on the host -------------------------------------------------------
need_pkgs=()
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need_pkgs+=(debian-archive-keyring)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing host packages: ${need_pkgs[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" \
        || die "apt-get install ${need_pkgs[*]} failed"
fi

mkdir -p "$ENV_DIR"

# --- choose a suite that carries python$PYVER --------------------------------
suite_has_python() {  # $1 = suite; checks the suite's Packages index
    local url="$MIRROR/dists/$1/main/binary-amd64/Packages.xz"
    local tmp="$ENV_DIR/Packages-$1.xz" rc=0
    curl -fsS -m 300 -o "$tmp" "$url" || { log "  could not fetch $url"; return 1; }
    xz -dc "$tmp" | grep -x "Package: python$PYVER-venv" > /dev/null || rc=1
    rm -f "$tmp"
    return $rc
}

SUITE_FILE="$ENV_DIR/suite"
if [ -f "$ENV_DIR/.debootstrap-done" ] && [ -f "$SUITE_FILE" ]; then
    SUITE="$(cat "$SUITE_FILE")"
else
    SUITE=""
    for s in ${BENCH_DEBIAN_SUITE:-testing unstable}; do
        log "checking whether Debian $s has python$PYVER-venv ..."
        if suite_has_python "$s"; then SUITE="$s"; break; fi
        log "  $s: no python$PYVER-venv in $MIRROR/dists/$s/main/binary-amd64/Packages.xz"
    done
    [ -n "$SUITE" ] || die "no Debian suite on $MIRROR carries python$PYVER (tried: ${BENCH_DEBIAN_SUITE:-testing unstable})"
    echo "$SUITE" > "$SUITE_FILE"
fi
log "Debian suite: $SUITE"

# --- debootstrap --------------------------------------------------------------
if [ ! -f "$ENV_DIR/.debootstrap-done" ]; then
    if [ -e "$ROOT" ]; then
        log "removing unfinished tree $ROOT"
        # never follow into mounts: nothing here is mounted by us, but be safe
        if grep -q " $ROOT/" /proc/mounts; then
            die "$ROOT has something mounted in it; unmount it first"
        fi
        rm -rf --one-file-system "$ROOT"
    fi
    mkdir -p "$ROOT"
    log "debootstrap --variant=minbase $SUITE into $ROOT (a few minutes) ..."
    start=$(date +%s)
    # the 'testing'/'sid' scripts of debootstrap cover newer codenames too
    script=/usr/share/debootstrap/scripts/sid
    if ! debootstrap --variant=minbase \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            --include="python$PYVER,python$PYVER-venv,ca-certificates" \
            "$SUITE" "$ROOT" "$MIRROR" "$script" > "$ENV_DIR/debootstrap.log" 2>&1; then
        tail -n 30 "$ENV_DIR/debootstrap.log" >&2
        die "debootstrap failed (full log: $ENV_DIR/debootstrap.log)"
    fi
    log "debootstrap finished in $(( $(date +%s) - start )) s"
    chroot "$ROOT" apt-get clean > /dev/null 2>&1 || true  # drop the downloaded .debs
    touch "$ENV_DIR/.debootstrap-done"
fi

# --- make the tree usable: DNS, local CAs, /dev/net/tun --------------------------
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# Trust anchors the host added locally (e.g. an egress proxy's CA) so that
# pip inside the tree can reach PyPI the way the host does.
if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    in_root update-ca-certificates > /dev/null 2>&1 \
        || log "warning: update-ca-certificates failed inside the tree"
fi
mkdir -p "$ROOT/dev/net"
[ -c "$ROOT/dev/net/tun" ] || mknod -m 666 "$ROOT/dev/net/tun" c 10 200
# PyTCP's daemon keeps a control socket / pid files under /run and /tmp
mkdir -p "$ROOT/run" "$ROOT/tmp" && chmod 1777 "$ROOT/tmp"

in_root "python$PYVER" -c 'import sys; assert sys.version_info >= (3, 14), sys.version' \
    || die "python$PYVER inside $ROOT does not run"

# --- venv + pytcp -------------------------------------------------------------
if ! in_root "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating venv $VENV inside the tree"
    rm -rf --one-file-system "${ROOT:?}$VENV"
    in_root "python$PYVER" -m venv "$VENV" || die "python$PYVER -m venv failed"
fi

installed="$(in_root "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pytcp"))' 2>/dev/null || true)"
if [ "$installed" != "$PYTCP_VERSION" ]; then
    log "pip install pytcp==$PYTCP_VERSION (from PyPI) ..."
    if ! in_root "$VENV/bin/pip" install --no-cache-dir "pytcp==$PYTCP_VERSION" \
            > "$ENV_DIR/pip.log" 2>&1; then
        tail -n 30 "$ENV_DIR/pip.log" >&2
        die "pip install pytcp==$PYTCP_VERSION failed (full log: $ENV_DIR/pip.log)"
    fi
fi

pyv="$(in_root "$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
ptv="$(in_root "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pytcp"))')"
[ "$ptv" = "$PYTCP_VERSION" ] || die "pytcp $PYTCP_VERSION not importable in the venv (found: ${ptv:-none})"
printf 'suite=%s\nmirror=%s\npython=%s\npytcp=%s\nroot=%s\nvenv=%s\n' \
    "$SUITE" "$MIRROR" "$pyv" "$ptv" "$ROOT" "$VENV" > "$ENV_DIR/READY"
log "ready: Python $pyv, pytcp $ptv in $ROOT (venv $VENV); size $(du -sh --one-file-system "$ENV_DIR" | cut -f1)"
