#!/usr/bin/env bash
# Install the configuration tools that tests/tools runs for real:
#   puppet        the Debian package (apt-get, --no-install-recommends)
#   ansible-core  from PyPI, into the virtual environment
#   salt          from PyPI, into the virtual environment
# The virtual environment is $1, else the active one ($VIRTUAL_ENV), else .venv.
# Idempotent (what is there is not reinstalled) and quiet: one line per tool with
# how long it took; a failing step prints its output and stops the script.
#
# Chef and docker compose are not installed: no chef package on the registries,
# no container engine here. Their tests use stand-in executables.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-${VIRTUAL_ENV:-.venv}}"
if [ ! -x "$venv/bin/python" ]; then
    echo "install-tools: no virtual environment at $venv" >&2
    exit 2
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi

# quietly CMD...: run CMD, show its output only when it fails.
quietly() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "install-tools: failed: $*" >&2
        return 1
    fi
    rm -f "$log"
}

# timed NAME CHECK INSTALL...: unless CHECK succeeds, run INSTALL; print the time.
timed() {
    local name=$1 check=$2 start end
    shift 2
    start=$(date +%s.%N)
    if eval "$check" >/dev/null 2>&1; then
        echo "install-tools: $name already installed"
        return
    fi
    quietly "$@"
    end=$(date +%s.%N)
    awk -v n="$name" -v a="$start" -v b="$end" \
        'BEGIN { printf "install-tools: %s installed in %.1fs\n", n, b - a }'
}

apt_puppet() {
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends puppet
}

pip_install() {
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

timed puppet "command -v puppet" apt_puppet
timed ansible-core "test -x '$venv/bin/ansible-playbook'" pip_install ansible-core
timed salt "test -x '$venv/bin/salt-call'" pip_install salt
