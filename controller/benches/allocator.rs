//! Allocator benchmarks (issue: 100,000 Services over pools that include an
//! IPv4 /8, an IPv6 /64 and 50 small ranges, a dual-stack mix and sharing keys).
//!
//! Pure computation, no network: the /8 is 240.0.0.0/8 (reserved, never
//! routed); the rest are documentation ranges.
//!
//!     cargo bench -p ferrolb-controller --bench allocator

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrolb_config::crd::IPAddressPool;
use ferrolb_controller::allocator::{Allocator, LbService, NamespaceLabels, Snapshot};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use kube::api::ObjectMeta;

mod mix;
use mix::{pool, pools};

const SERVICES: usize = 100_000;

/// The mix of `mix::shape` as Service objects.
fn services(n: usize) -> Vec<Service> {
    (0..n)
        .map(|i| {
            let (policy, families, key, port) = mix::shape(i);
            let annotations: BTreeMap<String, String> = key
                .map(|k| ("ferrolb.io/allow-shared-ip".to_string(), k))
                .into_iter()
                .collect();
            let families =
                (!families.is_empty()).then(|| families.iter().map(|f| f.to_string()).collect());
            Service {
                metadata: ObjectMeta {
                    name: Some(format!("svc-{i:06}")),
                    namespace: Some(format!("ns-{}", i % 50)),
                    annotations: Some(annotations),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".into()),
                    ip_family_policy: policy.map(str::to_string),
                    ip_families: families,
                    ports: Some(vec![ServicePort {
                        port,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                status: None,
            }
        })
        .collect()
}

fn compact(svcs: &[Service]) -> Vec<LbService> {
    svcs.iter().map(LbService::from).collect()
}

fn allocated(svcs: &[Service], ns: &NamespaceLabels, pools: &[IPAddressPool]) -> Vec<Service> {
    let mut alloc = Allocator::new();
    alloc.set_pools(pools);
    let outcomes = alloc.reconcile(Snapshot::new(&compact(svcs), ns));
    let mut out = svcs.to_vec();
    let by_name: BTreeMap<String, Vec<String>> = outcomes
        .iter()
        .map(|o| {
            (
                o.service.name.to_string(),
                o.ips.iter().map(|ip| ip.to_string()).collect(),
            )
        })
        .collect();
    for s in &mut out {
        let ips = by_name
            .get(s.metadata.name.as_ref().unwrap())
            .cloned()
            .unwrap_or_default();
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.into_iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let pools = pools();
    let ns = NamespaceLabels::new();
    let objects = services(SERVICES);
    let with_status = compact(&allocated(&objects, &ns, &pools));
    let svcs = compact(&objects);

    let mut g = c.benchmark_group("allocator");
    g.sample_size(10);
    // What the controller does once per Service as it is read (watch event
    // or file): keep only what the allocator needs, parsed.
    g.bench_function("read 100k Services into their compact form", |b| {
        b.iter(|| black_box(compact(&objects).len()))
    });
    g.bench_function("reconcile 100k new Services", |b| {
        b.iter_batched_ref(
            || {
                let mut a = Allocator::new();
                a.set_pools(&pools);
                a
            },
            |a| black_box(a.reconcile(Snapshot::new(&svcs, &ns)).len()),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("restore 100k assignments after a restart", |b| {
        b.iter_batched_ref(
            || {
                let mut a = Allocator::new();
                a.set_pools(&pools);
                a
            },
            |a| black_box(a.restore(Snapshot::new(&with_status, &ns)).claimed),
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // One more allocation into a pool holding 10,000 assignments: an IPv4 /18
    // and an IPv6 /64 must cost the same (nothing walks the pool).
    let mut single = c.benchmark_group("allocate one Service next to 10k assigned");
    for (name, cidr, family) in [
        ("IPv4 /18", "240.0.0.0/18", "IPv4"),
        ("IPv6 /64", "2001:db8:1::/64", "IPv6"),
        ("IPv6 /32", "2001:db8::/32", "IPv6"),
    ] {
        let p = vec![pool("p", &[cidr.to_string()], None)];
        let mut base: Vec<Service> = services(10_000);
        for s in &mut base {
            let spec = s.spec.as_mut().unwrap();
            spec.ip_family_policy = None;
            spec.ip_families = Some(vec![family.to_string()]);
            s.metadata.annotations = None;
        }
        let mut alloc = Allocator::new();
        alloc.set_pools(&p);
        alloc.reconcile(Snapshot::new(&compact(&base), &ns));
        let mut extra = services(1).remove(0);
        extra.metadata.name = Some("extra".into());
        extra.metadata.annotations = None;
        extra.spec.as_mut().unwrap().ip_families = Some(vec![family.to_string()]);
        let extra = LbService::from(&extra);
        let labels = BTreeMap::new();
        single.bench_function(name, |b| {
            b.iter_batched_ref(
                || alloc.clone(),
                |a| black_box(a.allocate(&extra, &labels).ips.len()),
                BatchSize::LargeInput,
            )
        });
    }
    single.finish();

    // 10,000 Services under one allow-shared-ip key: every sharing check must
    // cost O(ports), not O(Services already under the key).
    let mut shared = c.benchmark_group("10k Services under one sharing key");
    shared.sample_size(10);
    let p = vec![pool("p", &["240.0.0.0/8".to_string()], None)];
    for (name, port_of) in [
        // All ports differ: everyone shares the first IP.
        (
            "distinct ports, one shared IP",
            (|i| 1000 + i as i32) as fn(usize) -> i32,
        ),
        // All use port 80: one IP each, every IP held under the key.
        ("same port, one IP each", |_| 80),
        // Ten ports in turn: 1,000 IPs, each shared by ten Services.
        ("ten ports in turn, 1,000 shared IPs", |i| {
            8000 + (i % 10) as i32
        }),
    ] {
        let mut svcs = services(10_000);
        for (i, s) in svcs.iter_mut().enumerate() {
            s.metadata.annotations = Some(BTreeMap::from([(
                "ferrolb.io/allow-shared-ip".to_string(),
                "one-key".to_string(),
            )]));
            let spec = s.spec.as_mut().unwrap();
            spec.ip_family_policy = None;
            spec.ip_families = None;
            spec.ports.as_mut().unwrap()[0].port = port_of(i);
        }
        let svcs = compact(&svcs);
        shared.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut a = Allocator::new();
                    a.set_pools(&p);
                    a
                },
                |a| black_box(a.reconcile(Snapshot::new(&svcs, &ns)).len()),
                BatchSize::LargeInput,
            )
        });
    }
    shared.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
