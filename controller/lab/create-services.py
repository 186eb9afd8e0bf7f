#!/usr/bin/env python3
"""Creates N LoadBalancer Services (with 50 namespaces) in the control plane of
controller/lab/start-apiserver-100k.sh, by POSTs on 16 connections: about
200 per second on a 2-core VM, where kubectl takes 30 s per 1,000.

    controller/lab/create-services.py STATE_DIR N [FIRST]

FIRST (default 0) is the index of the first Service (svc-FIRST ...), so that
several batches of N go into one control plane.

Each Service looks like one made with `kubectl apply`: labels, a selector, one
port, kubectl's last-applied-configuration annotation; 5 % (every 20th) have
an allow-shared-ip key key-{i % 100} (so 5 keys). allocateLoadBalancerNodePorts
is false (no NodePorts). Progress every 10 s; exit status 1 if any creation failed.
"""
import http.client
import json
import ssl
import sys
import threading
import time

state, n = sys.argv[1], int(sys.argv[2])
first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
threads = 16
env = dict(l.split("=", 1) for l in open(f"{state}/env").read().split())
host, port = env["APISERVER_URL"].removeprefix("https://").split(":")
ctx = ssl.create_default_context(cafile=f"{state}/pki/ca.crt")
ctx.load_cert_chain(f"{state}/pki/admin.crt", f"{state}/pki/admin.key")


def connect():
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)


def post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def service(i):
    name = f"svc-{i:06d}"
    namespace = f"ns-{i % 50}"
    annotations = {}
    if i % 20 == 19:
        annotations["ferrolb.io/allow-shared-ip"] = f"key-{i % 100}"
    labels = {"app": name, "team": f"team-{i % 7}"}
    spec = {
        "type": "LoadBalancer",
        "allocateLoadBalancerNodePorts": False,
        "selector": {"app": name},
        # 1000-9999: clear of the kubelet's 10250, which Services may not expose.
        "ports": [{"name": "http", "port": 1000 + i % 9000, "protocol": "TCP", "targetPort": 8080}],
    }
    applied = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": namespace, "labels": labels,
                            "annotations": dict(annotations)},
               "spec": spec}
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(applied)
    return namespace, {"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "labels": labels, "annotations": annotations},
                       "spec": spec}


conn = connect()
for ns in range(50):
    post(conn, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{ns}"}})

errors, done, lock = [], [0], threading.Lock()


def worker(lane):
    conn = connect()
    for i in range(first + lane, first + n, threads):
        namespace, body = service(i)
        status, data = 0, b""
        for _ in range(5):
            try:
                status, data = post(conn, f"/api/v1/namespaces/{namespace}/services", body)
                break
            except (OSError, http.client.HTTPException) as e:
                conn, data = connect(), str(e).encode()
        with lock:
            if status not in (201, 409):
                errors.append((i, status, data[:300]))
            done[0] += 1


start = time.time()
workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
while any(w.is_alive() for w in workers):
    time.sleep(10)
    print(f"{done[0]} sent after {time.time() - start:.0f} s, {len(errors)} failed", flush=True)
print(f"created {n - len(errors)} of {n} in {time.time() - start:.1f} s")
for e in errors[:5]:
    print("failed:", e)
sys.exit(1 if errors else 0)
