#!/usr/bin/env bash
# Lab run for docs/BENCHMARKS.md ("Controller first round: ours vs a plain
# client"): how fast the controller's first round writes N new Services,
# against what a plain client (plain-client.py) gets from the same API server
# for the same writes.
#
#   controller/lab/measure-first-round.sh STATE_DIR N RUN...
#
# RUN is one of
#   controller:BINARY[:IN_FLIGHT]  a controller binary (release build), with
#                                  FERROLB_LAB_WRITES_IN_FLIGHT=IN_FLIGHT when given
#   plain:WRITES:CONNECTIONS       plain-client.py (WRITES 3 or 2, see there)
#
# Starts the control plane of start-apiserver-100k.sh in STATE_DIR (all on
# 127.0.0.1), applies the CRDs and the pools of `examples/memory.rs write-lab`
# (which must be built: target/release/examples/memory). Then, for each RUN in
# turn, creates a new batch of N Services (create-services.py, the k-th batch
# is svc-(k*N) ...) and runs RUN on it: a controller is started, its first
# round (restore of the earlier batches, which it does not write again, then
# allocate and write the new batch) is timed by its own
# ferrolb_controller_reconcile_duration_seconds metric, every Service of the
# batch is checked to have an IP, and it is stopped (SIGTERM releases the
# Lease for the next one). A plain run is best put last: the IPs it writes
# are in no pool, so a controller after it would rewrite that batch.
# Prints one line per RUN; everything it started is stopped on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="${1:?usage: measure-first-round.sh STATE_DIR N RUN...}"
n="${2:?usage: measure-first-round.sh STATE_DIR N RUN...}"
shift 2
mkdir -p "$state"
state="$(cd "$state" && pwd)"
target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/target}"
log() { printf '%s lab: %s\n' "$(date +%T)" "$*" >&2; }

controller_pid=""
cleanup() {
    if [[ -n $controller_pid ]]; then
        kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
    fi
    "$root/tests/apiserver/stop.sh" "$state"
}
trap cleanup EXIT

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

metrics_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
metric() {
    { curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" || true; } |
        awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

batch=0
for run in "$@"; do
    first=$((batch * n))
    batch=$((batch + 1))
    log "batch $batch: creating $n Services (svc-$first ...)"
    python3 "$here/create-services.py" "$state" "$n" "$first" | tail -n 1 >&2
    sleep 5 # let the API server's watch cache settle
    IFS=: read -r kind a b <<<"$run"
    case $kind in
    plain)
        python3 "$here/plain-client.py" "$state" "$n" "$first" "$a" "$b"
        ;;
    controller)
        FERROLB_LAB_WRITES_IN_FLIGHT="${b:-}" RUST_LOG=info,ferrolb_controller::cluster=debug "$a" --kubeconfig "$KUBECONFIG" \
            --metrics-addr "127.0.0.1:$metrics_port" --identity "lab-$batch" \
            >"$state/controller-$batch.log" 2>&1 &
        controller_pid=$!
        secs=""
        for _ in $(seq 1 7200); do
            sleep 0.5
            kill -0 "$controller_pid" 2>/dev/null || {
                log "controller exited"
                tail "$state/controller-$batch.log" >&2
                exit 1
            }
            if [[ $(metric ferrolb_controller_reconcile_duration_seconds_count) != 0 ]]; then
                secs=$(metric ferrolb_controller_reconcile_duration_seconds_sum)
                break
            fi
        done
        [[ -n $secs ]] || { log "no round ended within an hour"; exit 1; }
        kill "$controller_pid" && wait "$controller_pid" 2>/dev/null || true
        controller_pid=""
        # Every Service of the batch has an IP.
        with_ip=$(k get services -A --no-headers \
            -o custom-columns='NAME:.metadata.name,IP:.status.loadBalancer.ingress[*].ip' |
            awk -v lo="$first" -v hi="$((first + n))" '
                { i = substr($1, 5) + 0 }
                i >= lo && i < hi && $2 != "<none>" { c++ }
                END { print c + 0 }')
        # The controller logs when the round's Service writes (before its
        # Events) were done; older builds do not.
        statuses=$(sed 's/\x1b\[[0-9;]*m//g' "$state/controller-$batch.log" | grep -m1 'round ended' |
            sed -n 's/.*statuses_written_after=\([0-9.]*\).*/\1/p' || true)
        awk -v r="$run" -v n="$n" -v s="$secs" -v w="$with_ip" -v st="${statuses:-}" 'BEGIN {
            printf "%s: %d Services in %.1f s = %.0f Services/s; %d of them with an IP", r, n, s, n / s, w
            if (st != "") printf "; all statuses written after %.1f s", st
            printf "\n" }'
        ;;
    *)
        log "unknown RUN $run"
        exit 1
        ;;
    esac
done
