#!/usr/bin/env bash
# Installs the Debian packages some tests drive, if their commands are missing (idempotent):
#   chromium   headless browser: tests/e2e/test_proxy_status.py screenshots the status page
#   prometheus brings promtool:  tests/deploy/test_alert_rules.py runs `promtool test rules`
# Under CI=true those tests fail (not skip) when a tool is missing, so a missing install shows.
set -euo pipefail
declare -A want=([chromium]=chromium [promtool]=prometheus)
missing=()
for cmd in "${!want[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
if ((${#missing[@]} == 0)); then
    echo "system-packages.sh: chromium and promtool present"
    exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "system-packages.sh: need root to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "system-packages.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
