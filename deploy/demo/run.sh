#!/usr/bin/env bash
# The demo.
#
# As root (on Debian): the whole product in a lab of network namespaces
# (deploy/demo/lab.sh). It installs what it needs, builds both binaries, runs
# the controller and a speaker per node over deploy/demo/lab/ with a GoBGP
# router and a client, and shows each Service's IPs and how they are
# announced, who answers them, the router's BGP table, and a node failure
# with the measured takeover. It cleans up on exit, Ctrl-C or failure.
#
# Without root, or with --allocation-only: the controller alone, in
# standalone mode over deploy/demo/ (pools.yaml and services.yaml, Kubernetes
# YAML, no cluster needed). Builds the controller, allocates once into a copy
# of the directory, and prints which Service got which address, and the
# Events. Only writes files; sends no packets.
#
#   deploy/demo/run.sh [--allocation-only]    (KEEP=1 keeps the output directory)
#
# FERROLB_CONTROLLER_BIN (and for the lab FERROLB_SPEAKER_BIN) name binaries
# to run instead of building them; CARGO_TARGET_DIR where they are built
# (default ~/.cache/ferrolb/target, as tests/run-all.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"

case "${1:-}" in
"" | --allocation-only) ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [--allocation-only]" >&2
    exit 2
    ;;
esac

if [[ -z ${1:-} ]]; then
    [[ $(id -u) -eq 0 ]] && exec "$here/lab.sh"
    packages=$(grep -v '^\s*#' "$root/tests/setup/demo-packages.txt" | sed 's/\s.*//' | grep -v '^$' | paste -sd' ')
    cat >&2 <<NOTE
The full demo (the speakers announcing the addresses in a lab of network
namespaces, with a GoBGP router, a client and a node failure) needs root on
Debian: it creates network namespaces and raw sockets, and installs the
Debian packages it lacks ($packages);
it builds with cargo (a current stable Rust toolchain). Run it as root:

    sudo $0

Meanwhile, the allocation-only demo (no root, no packets): the controller
alone over deploy/demo/pools.yaml and services.yaml.

NOTE
fi

if [[ -n ${FERROLB_CONTROLLER_BIN:-} ]]; then
    controller=$FERROLB_CONTROLLER_BIN
else
    echo "building ferrolb-controller..." >&2
    (cd "$root" && CARGO_TARGET_DIR="$target" cargo build -q --release -p ferrolb-controller --bin ferrolb-controller)
    controller="$target/release/ferrolb-controller"
fi

work="$(mktemp -d)"
[[ ${KEEP:-} == 1 ]] || trap 'rm -rf "$work"' EXIT
cp "$here/pools.yaml" "$here/services.yaml" "$work/"

echo "\$ ferrolb-controller --standalone $work --once"
"$controller" --standalone "$work" --once

echo
echo "Services (from $work/status/services.yaml):"
# One line per YAML document of services.yaml: namespace/name, pool, addresses.
awk '
    function flush() {
        if (name != "")
            printf "  %-18s %-10s %s\n", ns "/" name, (pool == "" ? "-" : pool), (ips == "" ? "<pending>" : ips)
        name = ns = pool = ips = ""
    }
    /^---/ { flush() }
    /^  name: / { name = $2 }
    /^  namespace: / { ns = $2 }
    /ferrolb.io\/ip-allocated-from-pool: / { pool = $2 }
    /^    - ip: / { gsub(/"/, "", $3); ips = (ips == "" ? $3 : ips ", " $3) }
    END { flush() }
' "$work/status/services.yaml"

echo
echo "Events (from $work/status/events.yaml):"
sed 's/^/  /' "$work/status/events.yaml"
[[ ${KEEP:-} == 1 ]] && echo && echo "output kept in $work"
exit 0
