#!/usr/bin/env bash
# The control plane of tests/apiserver/start.sh, with what holding 100,000
# LoadBalancer Services needs: a Service ClusterIP range that large
# (198.18.0.0/15, the benchmarking range: 131,070 addresses; the IPv6 range of
# the tests is capped at 65,536 by a v1.20 API server) and
# ServiceLBNodePortControl, so that Services with
# allocateLoadBalancerNodePorts: false take no NodePort (there are only 2,768),
# and an etcd quota of 8 GiB: 100,000 Services with their status writes and
# Events fill etcd's default 2 GiB before the API server compacts it, and
# every write then fails with "mvcc: database space exceeded".
# For measurements, not tests (docs/BENCHMARKS.md says how it is used).
#
#   controller/lab/start-apiserver-100k.sh STATE_DIR     (stop: tests/apiserver/stop.sh STATE_DIR)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apiserver="$(cd "$here/../../tests/apiserver" && pwd)"
state="${1:?usage: start-apiserver-100k.sh STATE_DIR}"
script="$(mktemp)"
trap 'rm -f "$script"' EXIT
sed -e "s|^here=.*|here=$apiserver|" \
    -e 's|--service-cluster-ip-range 203.0.113.0/24,2001:db8:fff::/112|--service-cluster-ip-range 198.18.0.0/15|g' \
    -e 's|--feature-gates IPv6DualStack=true|--feature-gates IPv6DualStack=true,ServiceLBNodePortControl=true|g' \
    -e 's|--initial-cluster "ferrolb-test=http://127.0.0.1:$etcd_peer"$|& --quota-backend-bytes 8589934592|' \
    "$apiserver/start.sh" >"$script"
grep -q 198.18.0.0/15 "$script" && grep -q ServiceLBNodePortControl "$script" &&
    grep -q -- --quota-backend-bytes "$script" || {
    echo "start-apiserver-100k: tests/apiserver/start.sh changed; update the flags here" >&2
    exit 1
}
bash "$script" "$state"
