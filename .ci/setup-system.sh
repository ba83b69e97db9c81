#!/usr/bin/env bash
# The system packages the test suite needs beyond Python's, installed once per machine
# (`make system-deps`; .ci/run calls it): Debian's chromium, which renders the HTML
# dashboard in tests/test_dashboard.py. Uses sudo unless root; the package lists are
# updated only when the install fails without.
set -euo pipefail
PACKAGES=(chromium)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" || {
    $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
