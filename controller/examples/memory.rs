//! Memory of the controller holding many Services (issue: "controller RSS
//! under 100 MB with 100,000 Services held"), and the input of the standalone
//! lab run. No network, no API server.
//!
//!     cargo run --release -p ferrolb-controller --example memory -- cluster 100000
//!     cargo run --release -p ferrolb-controller --example memory -- cluster-full-objects 100000
//!     cargo run --release -p ferrolb-controller --example memory -- write-lab DIR 100000
//!
//! `cluster` feeds Services through the path the cluster mode uses: each one
//! arrives as the JSON an API server sends (with managedFields and kubectl's
//! last-applied-configuration annotation, as `kubectl apply` leaves them), is
//! deserialized into a k8s-openapi `Service` as the watcher does, and goes
//! into the [`ServiceCache`] as a watch event, which keeps only its compact
//! form. Then the allocation rounds of the cluster loop run
//! (`ferrolb_controller::cluster::round`: restore, then reconcile over an
//! `Arc` snapshot of the cache); each outcome to write is "written" at once,
//! as the loop's writers drain its queue, and comes back as a watch event
//! with the status and pool annotation (as it would after the PATCH); a
//! second round finds nothing to do. VmRSS and VmHWM (peak) of this process are printed at each
//! step, with the heap bytes in use (counted by this program's allocator) to
//! tell live data from memory the C allocator keeps mapped.
//! `cluster-full-objects` holds the full objects instead, as the reflector
//! store did before, for comparison.
//!
//! `write-lab` writes DIR/pools.yaml and DIR/services.yaml (the same pools and
//! mix of Services) for `ferrolb-controller --standalone DIR --once`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "../benches/mix/mod.rs"]
mod mix;
use ferrolb_controller::allocator::{
    ALLOCATED_FROM_POOL_ANNOTATION, Allocator, LbService, NamespaceLabels, Snapshot,
};
use ferrolb_controller::cluster::round;
use ferrolb_controller::cluster::store::{Change, ServiceCache};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher;
use mix::{pools, shape};
use serde_json::{Value, json};

/// Counts the bytes allocated and not yet freed, to tell live data from
/// what the process keeps mapped (RSS).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
        PEAK.fetch_max(now, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// VmRSS and VmHWM of this process, in MB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(step: &str) {
    let (now, peak) = rss();
    let mb = |a: &AtomicUsize| a.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    let (live, live_peak) = (mb(&LIVE), mb(&PEAK));
    println!(
        "{step:<58} VmRSS {now:6.1} MB  VmHWM {peak:6.1} MB  heap in use {live:6.1} MB (peak {live_peak:6.1} MB)"
    );
}

/// Service `i` as an API server sends it, optionally with status and the pool
/// annotation (after the controller wrote them).
fn api_object(i: usize, written: Option<(&[std::net::IpAddr], &str)>) -> String {
    let (policy, families, key, port) = shape(i);
    let name = format!("svc-{i:06}");
    let namespace = format!("ns-{}", i % 50);
    let mut spec = json!({
        "ports": [{"name": "http", "protocol": "TCP", "port": port, "targetPort": 8080}],
        "selector": {"app": name},
        "clusterIP": format!("10.{}.{}.{}", 96 + i / 65536 % 4, i / 256 % 256, i % 256),
        "clusterIPs": [format!("10.{}.{}.{}", 96 + i / 65536 % 4, i / 256 % 256, i % 256)],
        "type": "LoadBalancer",
        "sessionAffinity": "None",
        "externalTrafficPolicy": "Cluster",
        "allocateLoadBalancerNodePorts": false,
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": if families.is_empty() { vec!["IPv4"] } else { families.clone() },
        "ipFamilyPolicy": policy.unwrap_or("SingleStack"),
    });
    let applied = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name, "team": format!("team-{}", i % 7)},
            "annotations": key.as_ref().map(|k| json!({"ferrolb.io/allow-shared-ip": k})),
        },
        "spec": spec.clone(),
    });
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        Value::String(applied.to_string()),
    );
    if let Some(k) = &key {
        annotations.insert(
            "ferrolb.io/allow-shared-ip".into(),
            Value::String(k.clone()),
        );
    }
    let mut status = json!({"loadBalancer": {}});
    if let Some((ips, pool)) = written {
        annotations.insert(
            ALLOCATED_FROM_POOL_ANNOTATION.into(),
            Value::String(pool.to_string()),
        );
        let ingress: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        status = json!({"loadBalancer": {"ingress": ingress}});
    }
    spec["ports"][0]["nodePort"] = json!(30000 + (i % 2700));
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", i, i % 65536, i % 4096, (i * 7) % 4096, i * 2654435761usize % (1 << 48)),
            "resourceVersion": format!("{}", 100_000 + i),
            "creationTimestamp": format!("2026-01-{:02}T{:02}:{:02}:{:02}Z", 1 + i / 86400 % 28, i / 3600 % 24, i / 60 % 60, i % 60),
            "labels": {"app": name, "team": format!("team-{}", i % 7)},
            "annotations": annotations,
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {
                        "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                        "f:labels": {".": {}, "f:app": {}, "f:team": {}}
                    },
                    "f:spec": {
                        "f:allocateLoadBalancerNodePorts": {}, "f:externalTrafficPolicy": {},
                        "f:internalTrafficPolicy": {}, "f:ipFamilyPolicy": {},
                        "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                        "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}
                    }
                }
            }]
        },
        "spec": spec,
        "status": status,
    })
    .to_string()
}

/// As the watcher does: the JSON text of one object into a k8s-openapi Service.
fn decode(text: &str) -> Service {
    serde_json::from_str(text).expect("valid Service JSON")
}

fn cluster(n: usize) {
    let pools = pools();
    let ns = NamespaceLabels::new();
    report("start");

    let cache = ServiceCache::default();
    cache.apply(Change::ListStart);
    for i in 0..n {
        let obj = decode(&api_object(i, None));
        cache.apply(Change::from(watcher::Event::InitApply(obj)));
    }
    cache.apply(Change::ListDone);
    report(&format!("{} Services listed into the cache", cache.len()));

    // Round 1: a new leader restores, then reconciles (the cluster loop's
    // `round`). Each outcome to write is written at once, as the loop's
    // writers drain its short queue: the written Service comes back through
    // the watch with its status and pool annotation.
    let mut alloc = Allocator::new();
    alloc.set_pools(&pools);
    let services = cache.snapshot();
    let mut written = 0usize;
    round(&mut alloc, &services, &ns, true, |o| {
        if o.changed || !o.events.is_empty() {
            let i: usize = o.service.name["svc-".len()..].parse().expect("our name");
            let obj = decode(&api_object(
                i,
                Some((&o.ips, o.pool.as_deref().unwrap_or(""))),
            ));
            cache.apply(Change::from(watcher::Event::Apply(obj)));
            written += 1;
        }
    });
    drop(services);
    report(&format!(
        "round 1: {} Services allocated, {written} written back",
        alloc.assignments().len()
    ));

    // Round 2: the steady state, nothing to do.
    alloc.set_pools(&pools);
    let services = cache.snapshot();
    let mut changed = 0usize;
    round(&mut alloc, &services, &ns, false, |o| {
        changed += (o.changed || !o.events.is_empty()) as usize;
    });
    drop(services);
    report(&format!(
        "round 2 (steady state): {changed} outcomes to write"
    ));
    assert_eq!(changed, 0, "the steady state writes nothing");
    let one = cache.snapshot()[0].clone();
    println!("one held Service: {:?}", one.key);
}

/// For comparison: the full objects held as a reflector store holds them, and
/// converted at each round.
fn cluster_full_objects(n: usize) {
    let pools = pools();
    let ns = NamespaceLabels::new();
    report("start");
    let objects: Vec<Arc<Service>> = (0..n)
        .map(|i| Arc::new(decode(&api_object(i, None))))
        .collect();
    report(&format!("{} full Service objects held", objects.len()));
    let mut alloc = Allocator::new();
    alloc.set_pools(&pools);
    let services: Vec<LbService> = objects.iter().map(|s| LbService::from(&**s)).collect();
    let snap = Snapshot::new(&services, &ns);
    alloc.restore(snap);
    let outcomes = alloc.reconcile(snap);
    report(&format!(
        "round 1: {} outcomes, full objects and a compact copy held",
        outcomes.len()
    ));
}

fn write_lab(dir: &std::path::Path, n: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut pools_yaml = String::new();
    for p in pools() {
        let prio = p
            .spec
            .service_allocation
            .as_ref()
            .and_then(|a| a.priority)
            .map(|p| format!("  serviceAllocation: {{priority: {p}}}\n"))
            .unwrap_or_default();
        let _ = write!(
            pools_yaml,
            "---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {}\n  namespace: ferrolb-system\nspec:\n  addresses: [{}]\n{prio}",
            p.metadata.name.as_deref().unwrap_or_default(),
            p.spec.addresses.join(", "),
        );
    }
    std::fs::write(dir.join("pools.yaml"), pools_yaml)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("services.yaml"))?);
    for i in 0..n {
        let (policy, families, key, port) = shape(i);
        let mut text = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:06}\n  namespace: ns-{}\n",
            i % 50
        );
        if let Some(k) = key {
            let _ = write!(
                text,
                "  annotations:\n    ferrolb.io/allow-shared-ip: {k}\n"
            );
        }
        let _ = write!(
            text,
            "spec:\n  type: LoadBalancer\n  ports:\n  - port: {port}\n    protocol: TCP\n"
        );
        if let Some(p) = policy {
            let _ = writeln!(text, "  ipFamilyPolicy: {p}");
        }
        if !families.is_empty() {
            let _ = writeln!(text, "  ipFamilies: [{}]", families.join(", "));
        }
        out.write_all(text.as_bytes())?;
    }
    out.flush()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |s: Option<&String>| s.and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match args.first().map(String::as_str) {
        Some("cluster") => cluster(count(args.get(1))),
        Some("cluster-full-objects") => cluster_full_objects(count(args.get(1))),
        Some("write-lab") if args.len() >= 2 => {
            let dir = std::path::Path::new(&args[1]);
            if let Err(e) = write_lab(dir, count(args.get(2))) {
                eprintln!("cannot write {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!(
                "usage: memory cluster [N] | memory cluster-full-objects [N] | memory write-lab DIR [N]"
            );
            std::process::exit(2);
        }
    }
}
