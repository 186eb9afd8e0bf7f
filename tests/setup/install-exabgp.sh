#!/usr/bin/env bash
# Installs ExaBGP (PyPI) into a virtualenv of its own for the BGP interop tests
# (tests/tests/bgp_exabgp.rs), only if it is not there yet, and prints the
# venv's path on stdout (the binary is <path>/bin/exabgp). Needs python3 with
# the venv module (Debian: python3-venv). No root needed.
#
#   EXABGP_VERSION   version to install (default: the pinned one below)
#   PYTHON           interpreter to build the venv with (default: python3)
#
# The tests look for the binary there; FERROLB_EXABGP=/path/to/exabgp overrides.
#
# Pinned to 5.0.x: ExaBGP 4.2.x (4.2.25 included) cannot decode a Cease
# NOTIFICATION that carries a Shutdown Communication (RFC 9003) on Python 3
# (`bytes % str` TypeError in Notification.__init__); it answers with a
# NOTIFICATION 1/0 of its own instead of logging our reason.
set -euo pipefail

version="${EXABGP_VERSION:-5.0.15}"
python="${PYTHON:-python3}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/exabgp/$version"
# Written last: a venv without it is an interrupted install and is redone.
marker="$venv/.ferrolb-complete"

if [[ -f "$marker" && -x "$venv/bin/exabgp" ]]; then
    echo "$venv"
    exit 0
fi
if ! "$python" -m venv --help >/dev/null 2>&1; then
    echo "install-exabgp: $python has no venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "exabgp==$version" >&2; then
    rm -rf "$venv"
    echo "install-exabgp: pip install exabgp==$version failed" >&2
    exit 1
fi
if ! "$venv/bin/exabgp" version >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "install-exabgp: $venv/bin/exabgp installed but does not run" >&2
    exit 1
fi
touch "$marker"
echo "$venv"
