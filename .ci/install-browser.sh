#!/usr/bin/env bash
# Install what tests/dashboard/test_browser.py drives for real, from Debian:
#   chromium         the browser, run headless
#   chromium-driver  chromedriver, which selenium (the test extra) talks to
# Nothing is downloaded at test time. Idempotent and quiet: one line per
# package; a failing step prints its output.
set -euo pipefail

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi

missing=()
for pair in chromium:chromium chromedriver:chromium-driver; do
    tool=${pair%%:*} package=${pair##*:}
    if [ -x "/usr/bin/$tool" ]; then
        echo "install-browser: $tool already installed"
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
       "${sudo[@]}" apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-browser: failed to install ${missing[*]}" >&2
    exit 1
fi
end=$(date +%s.%N)
awk -v n="${missing[*]}" -v a="$start" -v b="$end" \
    'BEGIN { printf "install-browser: %s installed in %.1fs\n", n, b - a }'
