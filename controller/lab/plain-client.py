#!/usr/bin/env python3
"""The ceiling for the controller's first round: a plain client that does the
controller's writes for N Services made by create-services.py (svc-FIRST ...),
as fast as the API server lets it, and nothing else (no watch, no decisions).

    controller/lab/plain-client.py STATE_DIR N FIRST [WRITES] [CONNECTIONS]

WRITES (default 3) is the write scheme per Service:
  3  merge-PATCH .../services/NAME/status (status.loadBalancer.ingress),
     merge-PATCH .../services/NAME (the ferrolb.io/ip-allocated-from-pool
     annotation), POST an events.k8s.io/v1 Event: the controller before the
     change;
  2  one merge-PATCH of .../status carrying the ingress and the annotation,
     then the Event: the controller after it.
CONNECTIONS (default 16) keep-alive HTTPS connections, spread over 4
processes (one Python process cannot fill 16 connections: the GIL).
The IPs written are 203.0.113.x: only data in the API server, no packet.
Prints "plain WRITES CONNECTIONS: N Services in S s = R Services/s, W writes/s,
E failed"; exit status 1 if any write failed.
"""
import http.client
import json
import multiprocessing
import ssl
import sys
import threading
import time

PROCESSES = 4


def run_lane(state, first, n, writes, lanes, lane, out):
    env = dict(l.split("=", 1) for l in open(f"{state}/env").read().split())
    host, port = env["APISERVER_URL"].removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=f"{state}/pki/ca.crt")
    ctx.load_cert_chain(f"{state}/pki/admin.crt", f"{state}/pki/admin.key")

    def connect():
        return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)

    conn = connect()
    failed = 0

    def send(method, path, body, ctype):
        nonlocal conn
        for _ in range(3):
            try:
                conn.request(method, path, body=json.dumps(body), headers={"Content-Type": ctype})
                r = conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                conn = connect()
        return 0

    merge = "application/merge-patch+json"
    for i in range(first + lane, first + n, lanes):
        name, ns = f"svc-{i:06d}", f"ns-{i % 50}"
        svc = f"/api/v1/namespaces/{ns}/services/{name}"
        ingress = {"loadBalancer": {"ingress": [{"ip": f"203.0.113.{i % 256}"}]}}
        annotation = {"annotations": {"ferrolb.io/ip-allocated-from-pool": "ceiling"}}
        if writes == 3:
            codes = [send("PATCH", svc + "/status", {"status": ingress}, merge),
                     send("PATCH", svc, {"metadata": annotation}, merge)]
        else:
            codes = [send("PATCH", svc + "/status", {"metadata": annotation, "status": ingress}, merge)]
        now = time.time()
        event = {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": f"{name}.{int(now * 1e9):x}{lane:x}", "namespace": ns},
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
            "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
            "note": f"Assigned IP [\"203.0.113.{i % 256}\"] from pool \"ceiling\"",
            "reportingController": "plain-client", "reportingInstance": "plain-client",
            "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": ns, "name": name},
        }
        codes.append(send("POST", f"/apis/events.k8s.io/v1/namespaces/{ns}/events", event,
                          "application/json"))
        failed += sum(1 for c in codes if not 200 <= c < 300)
    out.put(failed)


def run_process(state, first, n, writes, lanes, lanes_here, out):
    threads = [threading.Thread(target=run_lane, args=(state, first, n, writes, lanes, lane, out))
               for lane in lanes_here]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    state, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    writes = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    lanes = int(sys.argv[5]) if len(sys.argv) > 5 else 16
    assert writes in (2, 3), "WRITES is 2 or 3"
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=run_process,
                                     args=(state, first, n, writes, lanes, range(p, lanes, PROCESSES), out))
             for p in range(min(PROCESSES, lanes))]
    start = time.time()
    for p in procs:
        p.start()
    failed = sum(out.get() for _ in range(lanes))
    for p in procs:
        p.join()
    secs = time.time() - start
    print(f"plain {writes} {lanes}: {n} Services in {secs:.1f} s = {n / secs:.0f} Services/s, "
          f"{n * writes / secs:.0f} writes/s, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
