#!/usr/bin/env bash
# Stops exactly the processes tests/apiserver/start.sh recorded in STATE_DIR/pids.
set -uo pipefail
state="${1:?usage: stop.sh STATE_DIR}"
[[ -f $state/pids ]] || exit 0
while read -r name pid; do
    [[ -n ${pid:-} ]] || continue
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    echo "apiserver: stopped $name ($pid)" >&2
done <"$state/pids"
: >"$state/pids"
