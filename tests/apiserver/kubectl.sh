#!/usr/bin/env bash
# Prints the path of a kubectl matching the test API server (Debian's
# kubernetes-client 1.20), unpacked into the cache without installing it, so it
# never collides with another kubectl on the machine.
set -euo pipefail
cache="${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
version="$(apt-cache policy kubernetes-client | awk '/Candidate:/{print $2}')"
dir="$cache/kubectl/$version"
if [[ ! -x $dir/usr/bin/kubectl ]]; then
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -qq "kubernetes-client=$version" >&2)
    mkdir -p "$dir"
    dpkg -x "$tmp"/kubernetes-client_*.deb "$dir"
    rm -rf "$tmp"
fi
echo "$dir/usr/bin/kubectl"
