#!/usr/bin/env bash
# The demo: FerroLB's controller in standalone mode over deploy/demo/ (pools
# and Services as Kubernetes YAML, no cluster needed). Builds the controller,
# allocates once into a copy of the directory, and prints which Service got
# which address, and the Events. Only writes files; sends no packets.
#
#   deploy/demo/run.sh            (KEEP=1 keeps the output directory)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"

echo "building ferrolb-controller..." >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build -q --release -p ferrolb-controller --bin ferrolb-controller)

work="$(mktemp -d)"
[[ ${KEEP:-} == 1 ]] || trap 'rm -rf "$work"' EXIT
cp "$here/pools.yaml" "$here/services.yaml" "$work/"

echo "\$ ferrolb-controller --standalone $work --once"
"$target/release/ferrolb-controller" --standalone "$work" --once

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
