#!/usr/bin/env bash
# Starts a throw-away Kubernetes control plane on 127.0.0.1 only (or, with
# APISERVER_BIND=ADDR, the API server on ADDR: run it inside a test network
# namespace that holds ADDR, so that other test namespaces reach it): etcd,
# kube-apiserver (RBAC on) and kube-controller-manager (service-account tokens,
# namespace cleanup), with certificates made for this run.
#
#   tests/apiserver/start.sh STATE_DIR
#
# Writes STATE_DIR/kubeconfig (cluster admin), STATE_DIR/env (KUBECONFIG, KUBECTL,
# APISERVER_URL), and STATE_DIR/pids; tests/apiserver/stop.sh STATE_DIR stops
# exactly those processes. Binaries come from build-binaries.sh (cached).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${1:?usage: start.sh STATE_DIR}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
log() { echo "apiserver: $*" >&2; }
bind="${APISERVER_BIND:-127.0.0.1}"

bindir="$("$here/build-binaries.sh" | tail -n1)"
kubectl="$("$here/kubectl.sh")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
etcd_client="$(free_port)"
etcd_peer="$(free_port)"
api_port="$(free_port)"
cm_port="$(free_port)"

# Certificates: a CA, the server's certificate, an admin client certificate and
# the service-account signing key.
pki="$state/pki"
mkdir -p "$pki"
(
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=ferrolb-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:'"$bind"',DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=ferrolb-test-admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)

: >"$state/pids"
# Each process's command line is kept (one argument per line) so that
# restart.sh can stop and start it again with the same data, ports and certs.
launch() {
    local name="$1"
    shift
    printf '%s\n' "$@" >"$state/$name.cmd"
    "$@" >>"$state/$name.log" 2>&1 &
    echo "$name $!" >>"$state/pids"
}
launch etcd etcd --name ferrolb-test --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "ferrolb-test=http://127.0.0.1:$etcd_peer"

# Service ClusterIPs are only numbers in etcd here; still, documentation ranges.
# Dual-stack (alpha in 1.20) so that bulk tests can use the large IPv6 range.
launch kube-apiserver "$bindir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address "$bind" --advertise-address "$bind" --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode RBAC \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 203.0.113.0/24,2001:db8:fff::/112 \
    --feature-gates IPv6DualStack=true \
    --allow-privileged

cat >"$state/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://$bind:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
KC

ready=""
for _ in $(seq 1 120); do
    if curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://$bind:$api_port/readyz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.5
done
if [[ -z $ready ]]; then
    log "kube-apiserver did not become ready in 60 s; last log lines:"
    tail -n 20 "$state/kube-apiserver.log" >&2
    "$here/stop.sh" "$state"
    exit 1
fi

launch kube-controller-manager "$bindir/kube-controller-manager" \
    --kubeconfig "$state/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --port 0 \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false \
    --controllers "serviceaccount-token,serviceaccount,namespace,garbagecollector" \
    --leader-elect=false \
    --feature-gates IPv6DualStack=true --service-cluster-ip-range 203.0.113.0/24,2001:db8:fff::/112

cat >"$state/env" <<ENV
KUBECONFIG=$state/kubeconfig
KUBECTL=$kubectl
APISERVER_URL=https://$bind:$api_port
ENV
log "ready at https://127.0.0.1:$api_port (state in $state)"
