#!/usr/bin/env bash
# Install what tests/controller/test_watch.py drives for real, from Debian:
#   git        commits, pushes, `git daemon` on 127.0.0.1, `git log --notes`
#   gpg        a signing key and signed commits (gpg-agent signs)
#   gpgv       what `setpoint watch --require-signed` verifies signatures with
# Idempotent and quiet: one line per package; a failing step prints its output.
set -euo pipefail

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi

missing=()
for pair in git:git gpg:gpg gpg-agent:gpg-agent gpgv:gpgv; do
    tool=${pair%%:*} package=${pair##*:}
    if command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/bin/$tool" ]; then
        echo "install-git-tools: $tool already installed"
    else
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s.%N)
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" apt-get update -qq && \
       "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-git-tools: failed to install ${missing[*]}" >&2
    exit 1
fi
end=$(date +%s.%N)
awk -v n="${missing[*]}" -v a="$start" -v b="$end" \
    'BEGIN { printf "install-git-tools: %s installed in %.1fs\n", n, b - a }'
