#!/usr/bin/env bash
# Installs what the full demo (deploy/demo/run.sh as root) needs on a Debian
# machine: the packages of demo-packages.txt, a subset of what
# install-deps.sh installs for the tests. Quick and quiet when they are all
# there: apt-get only runs for missing ones. The Rust toolchain is checked by
# the demo itself (it builds with cargo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

mapfile -t wanted < <(grep -v '^\s*#' "$here/demo-packages.txt" | sed 's/\s.*//' | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "install-demo-deps: Debian packages present (${wanted[*]})"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-demo-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "install-demo-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
