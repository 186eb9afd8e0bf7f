#!/usr/bin/env bash
# Restarts processes of a control plane made by start.sh, with the same
# arguments (data, ports, certificates):
#   tests/apiserver/restart.sh STATE_DIR etcd kube-apiserver
# Waits until the API server answers /readyz again (at most 60 s).
set -euo pipefail
state="${1:?usage: restart.sh STATE_DIR NAME...}"
shift
for name in "$@"; do
    pid="$(awk -v n="$name" '$1 == n {print $2}' "$state/pids" | tail -n1)"
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
done
# Forget the stopped processes so that stop.sh never signals a reused pid.
for name in "$@"; do
    awk -v n="$name" '$1 != n' "$state/pids" >"$state/pids.new" && mv "$state/pids.new" "$state/pids"
done
for name in "$@"; do
    mapfile -t cmd <"$state/$name.cmd"
    "${cmd[@]}" >>"$state/$name.log" 2>&1 &
    echo "$name $!" >>"$state/pids"
done
pki="$state/pki"
url="$(awk -F= '/^APISERVER_URL=/{print $2}' "$state/env")"
for _ in $(seq 1 120); do
    if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$url/readyz" >/dev/null 2>&1; then
        echo "apiserver: restarted $* and ready" >&2
        exit 0
    fi
    sleep 0.5
done
echo "apiserver: not ready 60 s after restarting $*" >&2
exit 1
