#!/usr/bin/env bash
# Lab run for docs/BENCHMARKS.md: the release controller in cluster mode against
# a real API server holding N LoadBalancer Services (default 100,000).
#
#   controller/lab/measure-cluster.sh STATE_DIR [N]
#
# 1. starts the control plane of start-apiserver-100k.sh in STATE_DIR (all on
#    127.0.0.1), applies the CRDs and the benchmark's pools (those of
#    `examples/memory.rs write-lab`: 50 small ranges, an IPv4 /8 and an IPv6
#    /64) and creates N Services with create-services.py;
# 2. starts the controller and samples its VmRSS / VmHWM every 2 s into
#    STATE_DIR/rss.tsv until its first round (restore, allocate, write every
#    Service's status and an Event each) has ended, then for 60 s more;
# 3. restarts it and checks that no Service changed IP (rule 8), with the
#    same samples for the second process.
# Everything it started is stopped on exit, also on failure. Nothing leaves
# 127.0.0.1 and no packet carries the pools' addresses: the controller only
# writes them into the API server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="${1:?usage: measure-cluster.sh STATE_DIR [N]}"
n="${2:-100000}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"
log() { printf '%s lab: %s\n' "$(date +%T)" "$*" >&2; }

controller_pid=""
cleanup() {
    [[ -n $controller_pid ]] && kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
    "$root/tests/apiserver/stop.sh" "$state"
}
trap cleanup EXIT

log "building the release controller and the lab's input generator"
(cd "$root" && cargo build --release --locked -q -p ferrolb-controller --bin ferrolb-controller --example memory)

"$here/start-apiserver-100k.sh" "$state"
# shellcheck disable=SC1091
source "$state/env"
export KUBECONFIG
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }

k apply -f "$root/deploy/crds.yaml" >/dev/null
for _ in $(seq 1 60); do
    k get ipaddresspools.ferrolb.io -A >/dev/null 2>&1 && break
    sleep 1
done
k create namespace ferrolb-system >/dev/null
"$target/release/examples/memory" write-lab "$state/lab" 0
k apply -f "$state/lab/pools.yaml" >/dev/null
log "creating $n Services"
python3 "$here/create-services.py" "$state" "$n" | tail -n 1 >&2

metrics_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
metric() {
    { curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" || true; } |
        awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

# Starts the controller, samples it until its first round has ended and 60 s
# more. Writes "<seconds to first round end> <VmRSS MB> <VmHWM MB>" to
# STATE_DIR/result-NAME.
run_controller() {
    local name="$1" start now rounds rss hwm elapsed
    "$target/release/ferrolb-controller" --kubeconfig "$KUBECONFIG" \
        --metrics-addr "127.0.0.1:$metrics_port" --identity "lab-$name" \
        >"$state/controller-$name.log" 2>&1 &
    controller_pid=$!
    start=$(date +%s.%N)
    local done_at=""
    for _ in $(seq 1 1800); do
        sleep 2
        kill -0 "$controller_pid" 2>/dev/null || { log "controller exited"; tail "$state/controller-$name.log" >&2; return 1; }
        now=$(date +%s.%N)
        elapsed=$(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
        rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$controller_pid/status")
        hwm=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$controller_pid/status")
        rounds=$(metric ferrolb_controller_reconcile_duration_seconds_count)
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$elapsed" "$rss" "$hwm" "$rounds" >>"$state/rss.tsv"
        if [[ -z $done_at && ${rounds%.*} -ge 1 ]]; then
            done_at=$elapsed
            log "$name: first round ended after ${done_at} s (VmRSS $rss MB, VmHWM $hwm MB)"
        fi
        if [[ -n $done_at ]] && awk -v e="$elapsed" -v d="$done_at" 'BEGIN { exit !(e > d + 60) }'; then
            echo "$done_at $rss $hwm" >"$state/result-$name"
            return 0
        fi
    done
    log "$name: no round ended within an hour"
    return 1
}

# "namespace name IPs" of every LoadBalancer Service (IPs "<none>" when pending).
ingress() {
    k get services -A --no-headers \
        -o custom-columns='NS:.metadata.namespace,NAME:.metadata.name,TYPE:.spec.type,IP:.status.loadBalancer.ingress[*].ip' |
        awk '$3 == "LoadBalancer" { print $1, $2, $4 }' | sort
}

printf 'process\tseconds\tVmRSS_MB\tVmHWM_MB\trounds\n' >"$state/rss.tsv"
run_controller first
read -r first_done first_rss first_hwm <"$state/result-first"
ingress >"$state/ingress-first.txt"
pending=$(awk '$3 == "<none>"' "$state/ingress-first.txt" | wc -l)
log "first: $(wc -l <"$state/ingress-first.txt") Services, $pending without an IP"
kill "$controller_pid" && wait "$controller_pid" 2>/dev/null || true
controller_pid=""

run_controller second
read -r second_done second_rss second_hwm <"$state/result-second"
ingress >"$state/ingress-second.txt"
if cmp -s "$state/ingress-first.txt" "$state/ingress-second.txt"; then
    kept="every Service kept its IPs"
else
    kept="$(diff "$state/ingress-first.txt" "$state/ingress-second.txt" | grep -c '^>') Services changed IP"
fi
log "second: $kept"

cat <<EOF
Services: $n ($pending pending after the first round)
first start:  round ended after $first_done s; 60 s later VmRSS $first_rss MB, peak (VmHWM) $first_hwm MB
restart:      round ended after $second_done s; 60 s later VmRSS $second_rss MB, peak (VmHWM) $second_hwm MB; $kept
samples: $state/rss.tsv
EOF
[[ $kept == "every Service kept its IPs" ]]
