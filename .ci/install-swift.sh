#!/usr/bin/env bash
# Install what the real-Swift store tests need (run as root; idempotent, quiet):
#
#   1. Debian's minimal Swift set (swift python3-swift memcached, no recommends):
#      Swift 2.30, whose s3api answers 501 to a conditional PUT.
#   2. Swift >= 2.36 from PyPI into its own venv ($SETPOINT_SWIFT_VENV, default
#      /opt/setpoint-swift-venv), whose s3api honours PUT If-None-Match: *.
#
# The tests start both servers themselves (tests/swift_fixtures.py runs
# tools/swift-saio.sh); with CI=true they fail, never skip, if either is missing.
# Each step is skipped when already done; prints one timing line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT_PYPI_VERSION=${SWIFT_PYPI_VERSION:-2.38.3}
VENV=${SETPOINT_SWIFT_VENV:-/opt/setpoint-swift-venv}
PKGS="swift python3-swift memcached"

say() { echo "install-swift: $*"; }
t_all=$SECONDS

# -- 1. Debian packages ----------------------------------------------------------
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    t0=$SECONDS
    [ "$(id -u)" = 0 ] || { say "ERROR: run as root to install:$missing"; exit 1; }
    apt-get update -qq >/dev/null
    # tools/swift-saio.sh install: --no-install-recommends, and a temporary
    # policy-rc.d so no stock service (uwsgi proxy on 0.0.0.0:8080) starts.
    out=$(mktemp)
    if ! SWIFT_SAIO_APT_PKGS="$PKGS" bash tools/swift-saio.sh install >"$out" 2>&1; then
        tail -n 40 "$out"; rm -f "$out"; say "ERROR: apt-get install failed"; exit 1
    fi
    rm -f "$out"
    say "apt:$missing installed in $((SECONDS - t0))s"
else
    say "apt: $PKGS already installed"
fi

# -- 2. Swift from PyPI in its own venv --------------------------------------------
have_new() {
    [ -x "$VENV/bin/python3" ] && [ -x "$VENV/bin/swift-ring-builder" ] \
        && "$VENV/bin/python3" -s - "$SWIFT_PYPI_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version("swift") != sys.argv[1])
EOF
}
if have_new; then
    say "pypi: swift $SWIFT_PYPI_VERSION already in $VENV"
else
    t0=$SECONDS
    base_py=/usr/bin/python3
    "$base_py" -c 'import ensurepip, venv' 2>/dev/null || base_py=python3
    if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
        say "ERROR: $VENV exists and is not a virtualenv; not touching it"; exit 1
    fi
    rm -rf "$VENV"
    "$base_py" -m venv "$VENV"
    out=$(mktemp)
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check "swift==$SWIFT_PYPI_VERSION" \
        >"$out" 2>&1; then
        tail -n 40 "$out"; rm -f "$out"; say "ERROR: pip install swift failed"; exit 1
    fi
    rm -f "$out"
    have_new || { say "ERROR: swift $SWIFT_PYPI_VERSION not importable from $VENV"; exit 1; }
    say "pypi: swift $SWIFT_PYPI_VERSION installed into $VENV in $((SECONDS - t0))s"
fi

say "done in $((SECONDS - t_all))s"
