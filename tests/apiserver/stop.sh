#!/usr/bin/env bash
# Stops exactly the processes tests/apiserver/start.sh recorded in STATE_DIR/pids.
# The control plane is thrown away with its state, so there is nothing to shut
# down gracefully: SIGKILL at once (a SIGTERM'd kube-apiserver waits seconds for
# etcd or its requests), then wait at most 5 s for each to be gone.
# (tests/apiserver/restart.sh stops processes gracefully: it keeps their data.)
set -uo pipefail
state="${1:?usage: stop.sh STATE_DIR}"
[[ -f $state/pids ]] || exit 0
while read -r name pid; do
    [[ -n ${pid:-} ]] || continue
    kill -9 "$pid" 2>/dev/null
done <"$state/pids"
while read -r name pid; do
    [[ -n ${pid:-} ]] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "apiserver: $name ($pid) still there 5 s after SIGKILL" >&2
    else
        echo "apiserver: stopped $name ($pid)" >&2
    fi
done <"$state/pids"
: >"$state/pids"
