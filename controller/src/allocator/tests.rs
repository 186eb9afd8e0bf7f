//! Unit tests: one or more per rule, with the exact Event texts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::addr::AddrCount;
use ferrolb_config::crd::{IPAddressPool, IPAddressPoolSpec, ServiceAllocation};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;

// ---------------------------------------------------------------- helpers

pub(super) fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

pub(super) fn with_alloc(mut p: IPAddressPool, a: ServiceAllocation) -> IPAddressPool {
    p.spec.service_allocation = Some(a);
    p
}

fn priority(p: IPAddressPool, prio: i32) -> IPAddressPool {
    with_alloc(
        p,
        ServiceAllocation {
            priority: Some(prio),
            ..Default::default()
        },
    )
}

pub(super) fn selector(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(k.to_string(), v.to_string())].into()),
        match_expressions: None,
    }
}

/// A Service builder.
#[derive(Clone)]
pub(super) struct S(pub(super) Service);

pub(super) fn svc(ns: &str, name: &str) -> S {
    let mut s = Service::default();
    s.metadata.namespace = Some(ns.into());
    s.metadata.name = Some(name.into());
    s.spec = Some(ServiceSpec {
        type_: Some("LoadBalancer".into()),
        ..Default::default()
    });
    S(s)
}

impl S {
    fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    pub(super) fn created(mut self, secs: i64) -> S {
        self.0.metadata.creation_timestamp = Some(Time(Timestamp::from_second(secs).unwrap()));
        self
    }
    pub(super) fn ann(mut self, k: &str, v: &str) -> S {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }
    pub(super) fn label(mut self, k: &str, v: &str) -> S {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }
    pub(super) fn ports(mut self, ports: &[(i32, &str)]) -> S {
        self.spec().ports = Some(
            ports
                .iter()
                .map(|(p, proto)| ServicePort {
                    port: *p,
                    protocol: Some(proto.to_string()),
                    ..Default::default()
                })
                .collect(),
        );
        self
    }
    pub(super) fn policy(mut self, p: &str) -> S {
        self.spec().ip_family_policy = Some(p.into());
        self
    }
    pub(super) fn families(mut self, f: &[&str]) -> S {
        self.spec().ip_families = Some(f.iter().map(|s| s.to_string()).collect());
        self
    }
    pub(super) fn local(mut self, sel: &[(&str, &str)]) -> S {
        self.spec().external_traffic_policy = Some("Local".into());
        self.spec().selector = Some(
            sel.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }
    pub(super) fn type_(mut self, t: &str) -> S {
        self.spec().type_ = Some(t.into());
        self
    }
    pub(super) fn class(mut self, c: &str) -> S {
        self.spec().load_balancer_class = Some(c.into());
        self
    }
    pub(super) fn lb_ip(mut self, ip: &str) -> S {
        self.spec().load_balancer_ip = Some(ip.into());
        self
    }
    pub(super) fn share(self, key: &str) -> S {
        self.ann("ferrolb.io/allow-shared-ip", key)
    }
    pub(super) fn status(mut self, ips: &[&str]) -> S {
        self.0.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        self
    }
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

pub(super) fn no_ns() -> &'static NamespaceLabels {
    static EMPTY: NamespaceLabels = BTreeMap::new();
    &EMPTY
}

/// The compact form of Services, as the allocator reads them.
pub(super) fn lbs(services: &[Service]) -> Vec<LbService> {
    services.iter().map(LbService::from).collect()
}

pub(super) fn alloc_with(pools: &[IPAddressPool]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools);
    a
}

pub(super) fn run(a: &mut Allocator, services: &[S]) -> Vec<ServiceOutcome> {
    let services: Vec<Service> = services.iter().map(|s| s.0.clone()).collect();
    a.reconcile(Snapshot::new(&lbs(&services), no_ns()))
}

pub(super) fn find<'o>(outcomes: &'o [ServiceOutcome], name: &str) -> &'o ServiceOutcome {
    outcomes
        .iter()
        .find(|o| &*o.service.name == name)
        .unwrap_or_else(|| panic!("no outcome for {name}: {outcomes:#?}"))
}

fn got(outcomes: &[ServiceOutcome], name: &str) -> Vec<String> {
    find(outcomes, name)
        .ips
        .iter()
        .map(|i| i.to_string())
        .collect()
}

/// The single event of an outcome, as (type, reason, message).
fn event(o: &ServiceOutcome) -> (&'static str, &'static str, &str) {
    assert_eq!(o.events.len(), 1, "{o:#?}");
    let e = &o.events[0];
    (e.type_.as_str(), e.reason, e.message.as_str())
}

pub(super) fn pending_message(o: &ServiceOutcome) -> String {
    match &o.state {
        OutcomeState::Pending(r) => r.to_string(),
        other => panic!("not pending: {other:?}"),
    }
}

/// The Service after writing an outcome back (status IPs and pool annotation).
fn written(s: &S, o: &ServiceOutcome) -> S {
    let list: Vec<String> = o.ips.iter().map(|i| i.to_string()).collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let mut s = s.clone().status(&refs);
    if let Some(p) = &o.pool {
        s = s.ann(ALLOCATED_FROM_POOL_ANNOTATION, p);
    }
    s
}

// ---------------------------------------------------------------- which Services

#[test]
fn only_classless_load_balancers_by_default() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "lb"),
            svc("ns", "cluster-ip").type_("ClusterIP"),
            svc("ns", "other-class").class("example.com/other"),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(got(&out, "lb"), ["192.0.2.0"]);
    let o = find(&out, "lb");
    assert!(o.changed);
    assert_eq!(o.pool.as_deref(), Some("a"));
    assert_eq!(
        event(o),
        (
            "Normal",
            "IPAllocated",
            "assigned IP 192.0.2.0 from pool \"a\""
        )
    );
}

#[test]
fn configured_class_handles_only_that_class() {
    let mut a = Allocator::with_load_balancer_class("ferrolb.io/lb");
    a.set_pools(&[pool("a", &["192.0.2.0/30"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "classless"),
            svc("ns", "mine").class("ferrolb.io/lb"),
            svc("ns", "theirs").class("example.com/other"),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(got(&out, "mine"), ["192.0.2.0"]);
    // The single-Service entry point agrees.
    let o = a.allocate(
        &LbService::from(&svc("ns", "classless").0),
        &BTreeMap::new(),
    );
    assert_eq!(
        o.state,
        OutcomeState::Released(ReleaseCause::NotOurs(NotOurs::OtherClass(None)))
    );
    assert!(o.events.is_empty() && !o.changed);
}

#[test]
fn type_change_releases_at_once() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/31"])]);
    let s = svc("ns", "web").created(1);
    let out = run(&mut a, std::slice::from_ref(&s));
    let s = written(&s, &out[0]);
    let out = run(&mut a, &[s.clone().type_("NodePort")]);
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert!(o.changed && o.ips.is_empty() && o.pool.is_none());
    assert!(matches!(o.state, OutcomeState::Released(_)));
    assert_eq!(
        event(o),
        (
            "Normal",
            "IPReleased",
            "released 192.0.2.0: the Service is of type NodePort, not LoadBalancer"
        )
    );
    // Until the release is written, the Service's status still lists the
    // address: it is in use, and nobody else gets it.
    assert_eq!(a.pool_usage("a").0, 1);
    let node_port = written(&s.clone().type_("NodePort"), o);
    let out = run(&mut a, &[s.clone().type_("NodePort"), svc("ns", "next")]);
    assert_eq!(got(&out, "next"), ["192.0.2.1"]);
    // Once the status is cleared, the address is free again.
    let out = run(&mut a, &[node_port, svc("ns", "later")]);
    assert_eq!(got(&out, "later"), ["192.0.2.0"]);
    assert_eq!(a.pool_usage("a").0, 1);
}

#[test]
fn class_change_and_deletion_release() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let x = svc("ns", "x").created(1);
    let y = svc("ns", "y").created(2);
    let out = run(&mut a, &[x.clone(), y.clone()]);
    let (x, y) = (written(&x, &out[0]), written(&y, &out[1]));
    // x changes class, y disappears from the snapshot.
    let out = run(&mut a, &[x.class("example.com/other")]);
    assert_eq!(out.len(), 2);
    assert_eq!(
        event(find(&out, "x")).2,
        "released 192.0.2.0: the Service's loadBalancerClass is \"example.com/other\""
    );
    assert_eq!(
        event(find(&out, "y")).2,
        "released 192.0.2.1: the Service was deleted"
    );
    assert!(find(&out, "y").changed);
    assert_eq!(a.assignments().len(), 0);
    // A Service being deleted releases too; release() by key as well.
    // The stale object still has its status: the IP is claimed again.
    let out = run(&mut a, std::slice::from_ref(&y));
    assert_eq!(got(&out, "y"), ["192.0.2.1"]);
    let mut deleting = y.clone();
    deleting.0.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(9).unwrap()));
    let o = a.allocate(&LbService::from(&deleting.0), &BTreeMap::new());
    assert_eq!(
        o.state,
        OutcomeState::Released(ReleaseCause::NotOurs(NotOurs::Deleting))
    );
    assert!(a.release(&ServiceKey::new("ns", "y")).is_none());
    run(&mut a, &[y]);
    let o = a.release(&ServiceKey::new("ns", "y")).unwrap();
    assert_eq!(
        o.events[0].message,
        "released 192.0.2.1: released on request"
    );
}

// ---------------------------------------------------------------- addresses other Services hold

/// A controller for `class` (None: the default one) over 198.51.100.0/30.
fn alloc_for(class: Option<&str>) -> Allocator {
    let mut a = match class {
        Some(c) => Allocator::with_load_balancer_class(c),
        None => Allocator::new(),
    };
    a.set_pools(&[pool("lan", &["198.51.100.0/30"])]);
    a
}

#[test]
fn address_in_status_of_a_service_of_another_class_is_in_use() {
    // The default controller gave 198.51.100.0 to default/e; a controller
    // for example.com/x must not hand it out again.
    let e = svc("default", "e").created(1).status(&["198.51.100.0"]);
    let classed = svc("default", "classed").class("example.com/x").created(2);
    let mut a = alloc_for(Some("example.com/x"));
    let out = run(&mut a, &[e.clone(), classed.clone()]);
    assert_eq!(out.len(), 1);
    assert_eq!(got(&out, "classed"), ["198.51.100.1"]);
    assert_eq!(
        a.other_holders_of(&ip("198.51.100.0")).collect::<Vec<_>>(),
        [&ServiceKey::new("default", "e")]
    );
    // It counts as used in the pool's status.
    assert_eq!(a.pool_usage("lan").0, 2);

    // The other way round: the default controller and an address that the
    // example.com/x controller gave.
    let classed = classed.status(&["198.51.100.0"]);
    let e = svc("default", "e").created(1);
    let mut a = alloc_for(None);
    let out = run(&mut a, &[classed, e]);
    assert_eq!(got(&out, "e"), ["198.51.100.1"]);
    assert_eq!(a.pool_usage("lan").0, 2);

    // Any Service not ours counts: another type, or being deleted.
    let mut deleting = svc("default", "going").created(3).status(&["198.51.100.1"]);
    deleting.0.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(9).unwrap()));
    let node_port = svc("default", "np")
        .type_("NodePort")
        .status(&["198.51.100.0"]);
    let mut a = alloc_for(None);
    let out = run(
        &mut a,
        &[node_port, deleting, svc("default", "new").created(4)],
    );
    assert_eq!(got(&out, "new"), ["198.51.100.2"]);
    assert_eq!(a.pool_usage("lan").0, 3);
}

#[test]
fn requested_address_held_by_another_class_is_refused_naming_the_holder() {
    let e = svc("default", "e").created(1).status(&["198.51.100.0"]);
    let want = svc("default", "want")
        .class("example.com/x")
        .created(2)
        .ann("ferrolb.io/loadBalancerIPs", "198.51.100.0");
    let mut a = alloc_for(Some("example.com/x"));
    let out = run(&mut a, &[e.clone(), want.clone()]);
    let o = find(&out, "want");
    assert!(o.ips.is_empty());
    let message = "requested IP 198.51.100.0 is in use: default/e (no loadBalancerClass, not served by this controller) has it in status.loadBalancer.ingress; it becomes free when that Service no longer lists it";
    assert_eq!(pending_message(o), message);
    assert_eq!(event(o), ("Warning", "AllocationFailed", message));
    // spec.loadBalancerIP is refused the same way.
    let legacy = svc("default", "legacy")
        .class("example.com/x")
        .created(3)
        .lb_ip("198.51.100.0");
    let o = a.allocate(&LbService::from(&legacy.0), &BTreeMap::new());
    assert_eq!(pending_message(&o), message);

    // The holder is deleted: the address is free again.
    let out = run(&mut a, std::slice::from_ref(&want));
    assert_eq!(got(&out, "want"), ["198.51.100.0"]);
    assert_eq!(
        event(find(&out, "want")),
        (
            "Normal",
            "IPAllocated",
            "assigned IP 198.51.100.0 from pool \"lan\""
        )
    );
    assert_eq!(a.other_holders_of(&ip("198.51.100.0")).count(), 0);
    assert_eq!(a.pool_usage("lan").0, 1);

    // The default controller names the holder's class.
    let classed = svc("default", "classed")
        .class("example.com/x")
        .created(1)
        .status(&["198.51.100.3"]);
    let want = svc("default", "want2")
        .created(2)
        .ann("ferrolb.io/loadBalancerIPs", "198.51.100.3");
    let mut a = alloc_for(None);
    let out = run(&mut a, &[classed.clone(), want.clone()]);
    assert_eq!(
        pending_message(find(&out, "want2")),
        "requested IP 198.51.100.3 is in use: default/classed (loadBalancerClass \"example.com/x\", not served by this controller) has it in status.loadBalancer.ingress; it becomes free when that Service no longer lists it"
    );
    // Its status is cleared (the other controller released it): free.
    let out = run(&mut a, &[classed.status(&[]), want]);
    assert_eq!(got(&out, "want2"), ["198.51.100.3"]);
}

#[test]
fn single_service_decisions_track_other_services_too() {
    let mut a = alloc_for(None);
    let holder = svc("default", "np")
        .type_("NodePort")
        .status(&["198.51.100.0"]);
    let o = a.allocate(&LbService::from(&holder.0), &BTreeMap::new());
    assert!(o.events.is_empty() && !o.changed);
    assert_eq!(a.pool_usage("lan").0, 1);
    let o = a.allocate(&LbService::from(&svc("default", "web").0), &BTreeMap::new());
    assert_eq!(o.ips, [ip("198.51.100.1")]);
    // The holder becomes a LoadBalancer of ours: it claims its own address.
    let o = a.allocate(
        &LbService::from(&holder.clone().type_("LoadBalancer").0),
        &BTreeMap::new(),
    );
    assert_eq!(o.ips, [ip("198.51.100.0")]);
    assert_eq!(a.other_holders_of(&ip("198.51.100.0")).count(), 0);
    // Released by key (deleted): free.
    a.release(&ServiceKey::new("default", "np"));
    assert_eq!(a.pool_usage("lan").0, 1);
    // A Service not ours that is deleted: what it listed is free.
    let other = svc("default", "other")
        .class("example.com/x")
        .status(&["198.51.100.2"]);
    a.allocate(&LbService::from(&other.0), &BTreeMap::new());
    assert_eq!(a.pool_usage("lan").0, 2);
    a.release(&ServiceKey::new("default", "other"));
    assert_eq!(a.pool_usage("lan").0, 1);
}

#[test]
fn double_assignment_across_classes_is_resolved_the_same_way_by_both_controllers() {
    // Before the fix both controllers gave 198.51.100.0 away: default/e
    // (classless, older) and default/classed (example.com/x, newer).
    let e = svc("default", "e")
        .created(1)
        .status(&["198.51.100.0"])
        .ann(ALLOCATED_FROM_POOL_ANNOTATION, "lan");
    let classed = svc("default", "classed")
        .class("example.com/x")
        .created(2)
        .status(&["198.51.100.0"])
        .ann(ALLOCATED_FROM_POOL_ANNOTATION, "lan");
    let raw = [e.0.clone(), classed.0.clone()];

    // The default controller keeps it for the older e.
    let mut d = alloc_for(None);
    let report = d.restore(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(report.claimed, 1);
    assert!(report.refused.is_empty());
    let out = d.reconcile(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(got(&out, "e"), ["198.51.100.0"]);
    assert!(!find(&out, "e").changed && find(&out, "e").events.is_empty());

    // The example.com/x controller moves classed, and says why.
    let mut x = alloc_for(Some("example.com/x"));
    let why = "198.51.100.0 is also in status.loadBalancer.ingress of the older Service default/e (no loadBalancerClass, not served by this controller)";
    let report = x.restore(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(
        report.refused,
        [(ServiceKey::new("default", "classed"), why.to_string())]
    );
    let out = x.reconcile(Snapshot::new(&lbs(&raw), no_ns()));
    let o = find(&out, "classed");
    assert_eq!(o.ips, [ip("198.51.100.1")]);
    assert_eq!(o.events.len(), 2, "{o:#?}");
    assert_eq!(
        (
            o.events[0].type_,
            o.events[0].reason,
            o.events[0].message.as_str()
        ),
        (
            EventType::Warning,
            IP_INVALIDATED,
            format!("released 198.51.100.0: {why}").as_str()
        )
    );
    assert_eq!(o.events[1].reason, IP_ALLOCATED);

    // Without a restart: classed holds 198.51.100.0 when e shows up with it.
    let mut x = alloc_for(Some("example.com/x"));
    let fresh = svc("default", "classed").class("example.com/x").created(2);
    let out = run(&mut x, std::slice::from_ref(&fresh));
    assert_eq!(got(&out, "classed"), ["198.51.100.0"]);
    let held = written(&fresh, &out[0]);
    let out = run(&mut x, &[e.clone(), held.clone()]);
    let o = find(&out, "classed");
    assert_eq!(o.ips, [ip("198.51.100.1")]);
    assert_eq!(o.events[0].message, format!("released 198.51.100.0: {why}"));
    // A younger Service not ours does not move ours.
    let mut x = alloc_for(Some("example.com/x"));
    run(&mut x, std::slice::from_ref(&fresh));
    let late = svc("default", "late").created(5).status(&["198.51.100.0"]);
    let out = run(&mut x, &[late, held]);
    let o = find(&out, "classed");
    assert_eq!(o.ips, [ip("198.51.100.0")]);
    assert!(o.events.is_empty());
}

#[test]
fn former_sharer_that_stops_being_ours_does_not_move_the_others() {
    let mut a = alloc_for(None);
    let x = svc("ns", "x").created(1).share("k").ports(&[(80, "TCP")]);
    let y = svc("ns", "y").created(2).share("k").ports(&[(443, "TCP")]);
    let out = run(&mut a, &[x.clone(), y.clone()]);
    assert_eq!(got(&out, "x"), ["198.51.100.0"]);
    assert_eq!(got(&out, "y"), ["198.51.100.0"]);
    let (x, y) = (written(&x, find(&out, "x")), written(&y, find(&out, "y")));
    // x becomes a NodePort; its status still lists the address until the
    // release is written. y stays; a newcomer that could have shared with y
    // does not get the address while x lists it.
    let z = svc("ns", "z").created(3).share("k").ports(&[(53, "UDP")]);
    let out = run(&mut a, &[x.clone().type_("NodePort"), y.clone(), z.clone()]);
    assert_eq!(
        event(find(&out, "x")).2,
        "released 198.51.100.0: the Service is of type NodePort, not LoadBalancer"
    );
    assert_eq!(got(&out, "y"), ["198.51.100.0"]);
    assert!(find(&out, "y").events.is_empty() && !find(&out, "y").changed);
    assert_eq!(got(&out, "z"), ["198.51.100.1"]);
    // After a restart the same: a NodePort is served by nobody.
    let raw = [x.clone().type_("NodePort").0, y.0.clone()];
    let mut b = alloc_for(None);
    let report = b.restore(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(report.claimed, 1, "{report:?}");

    // x moves to another class instead: another controller serves it now,
    // and the younger y leaves the address to it.
    let mut a = alloc_for(None);
    run(&mut a, &[x.clone(), y.clone()]);
    let out = run(&mut a, &[x.clone().class("example.com/x"), y.clone()]);
    let o = find(&out, "y");
    assert_eq!(o.ips, [ip("198.51.100.1")]);
    assert_eq!(
        o.events[0].message,
        "released 198.51.100.0: 198.51.100.0 is also in status.loadBalancer.ingress of the older Service ns/x (loadBalancerClass \"example.com/x\", not served by this controller)"
    );
}

// ---------------------------------------------------------------- rule 1

#[test]
fn rule1_requested_ips_from_annotations_in_precedence_order() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/24", "2001:db8::/120"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "ferro")
                .ann("ferrolb.io/loadBalancerIPs", "192.0.2.10")
                .ann("metallb.io/loadBalancerIPs", "192.0.2.99"),
            svc("ns", "metallb").ann("metallb.io/loadBalancerIPs", "192.0.2.11"),
            svc("ns", "universe").ann("metallb.universe.tf/loadBalancerIPs", "192.0.2.12"),
            svc("ns", "spec").lb_ip("192.0.2.13"),
            svc("ns", "dual")
                .policy("RequireDualStack")
                .ann("ferrolb.io/loadBalancerIPs", " 2001:db8::7 , 192.0.2.14"),
        ],
    );
    assert_eq!(got(&out, "ferro"), ["192.0.2.10"]);
    assert_eq!(got(&out, "metallb"), ["192.0.2.11"]);
    assert_eq!(got(&out, "universe"), ["192.0.2.12"]);
    assert_eq!(got(&out, "spec"), ["192.0.2.13"]);
    assert_eq!(got(&out, "dual"), ["192.0.2.14", "2001:db8::7"]);
    assert_eq!(
        event(find(&out, "dual")).2,
        "assigned IPs 192.0.2.14, 2001:db8::7 from pool \"a\""
    );
}

#[test]
fn rule1_requested_ip_outside_usable_pools_stays_pending() {
    let restricted = with_alloc(
        pool("restricted", &["198.51.100.0/24"]),
        ServiceAllocation {
            namespaces: vec!["team-a".into()],
            ..Default::default()
        },
    );
    let mut buggy = pool("buggy", &["203.0.113.0/24"]);
    buggy.spec.avoid_buggy_ips = true;
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/24"]), restricted, buggy]);
    let req = |n: &str, v: &str| svc("ns", n).ann("ferrolb.io/loadBalancerIPs", v);
    let out = run(
        &mut a,
        &[
            req("nowhere", "2001:db8::1").families(&["IPv6"]),
            req("not-admitted", "198.51.100.5"),
            req("other-pool", "192.0.2.5").ann("ferrolb.io/address-pool", "restricted"),
            req("dot-zero", "203.0.113.0"),
        ],
    );
    let warn = |n: &str| {
        let o = find(&out, n);
        assert!(o.ips.is_empty());
        let (t, r, m) = event(o);
        assert_eq!((t, r), ("Warning", "AllocationFailed"));
        assert_eq!(pending_message(o), m);
        m.to_string()
    };
    assert_eq!(
        warn("nowhere"),
        "requested IP 2001:db8::1 is not in any IPAddressPool"
    );
    assert_eq!(
        warn("not-admitted"),
        "requested IP 198.51.100.5 is in pool \"restricted\", which does not admit this Service's namespace and labels"
    );
    assert_eq!(
        warn("other-pool"),
        "requested IP 192.0.2.5 is in pool \"a\", not in the requested pool \"restricted\""
    );
    assert_eq!(
        warn("dot-zero"),
        "requested IP 203.0.113.0 is in pool \"buggy\", which avoids addresses ending in .0 and .255 (avoidBuggyIPs)"
    );
}

#[test]
fn rule1_malformed_requests_give_clear_reasons() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/24", "2001:db8::/120"])]);
    let req = |n: &str, v: &str| svc("ns", n).ann("ferrolb.io/loadBalancerIPs", v);
    let out = run(
        &mut a,
        &[
            req("bad-ip", "192.0.2.300"),
            req("three", "192.0.2.1,192.0.2.2,2001:db8::1").policy("PreferDualStack"),
            req("two-v4", "192.0.2.1,192.0.2.2").policy("PreferDualStack"),
            req("single-two", "192.0.2.1,2001:db8::1"),
            req("wrong-family", "2001:db8::1").families(&["IPv4"]),
            req("half-dual", "192.0.2.1").policy("RequireDualStack"),
            svc("ns", "family").families(&["IPv5"]),
            svc("ns", "policy").policy("TripleStack"),
            svc("ns", "dup-families").families(&["IPv4", "IPv4"]),
        ],
    );
    let m = |n: &str| pending_message(find(&out, n));
    assert_eq!(
        m("bad-ip"),
        "annotation ferrolb.io/loadBalancerIPs \"192.0.2.300\": \"192.0.2.300\" is not an IP address"
    );
    assert_eq!(
        m("three"),
        "annotation ferrolb.io/loadBalancerIPs \"192.0.2.1,192.0.2.2,2001:db8::1\" lists 3 IPs; at most one IPv4 and one IPv6 address are allowed"
    );
    assert_eq!(
        m("two-v4"),
        "annotation ferrolb.io/loadBalancerIPs \"192.0.2.1,192.0.2.2\" lists two IPv4 addresses; at most one per family is allowed"
    );
    assert_eq!(
        m("single-two"),
        "annotation ferrolb.io/loadBalancerIPs requests two IPs (192.0.2.1, 2001:db8::1) but ipFamilyPolicy is SingleStack"
    );
    assert_eq!(
        m("wrong-family"),
        "annotation ferrolb.io/loadBalancerIPs requests 2001:db8::1, an IPv6 address, but the Service is SingleStack IPv4"
    );
    assert_eq!(
        m("half-dual"),
        "annotation ferrolb.io/loadBalancerIPs requests only 192.0.2.1 but ipFamilyPolicy RequireDualStack needs one IPv4 and one IPv6 address"
    );
    assert_eq!(
        m("family"),
        "spec.ipFamilies has unknown family \"IPv5\"; expected IPv4 or IPv6"
    );
    assert_eq!(
        m("policy"),
        "spec.ipFamilyPolicy \"TripleStack\" is unknown; expected SingleStack, PreferDualStack or RequireDualStack"
    );
    assert_eq!(
        m("dup-families"),
        "spec.ipFamilies [\"IPv4\", \"IPv4\"] must list at most one IPv4 and one IPv6 family"
    );
    // Garbage in the status never panics either.
    let out = run(
        &mut a,
        &[svc("ns", "garbage-status").status(&["not-an-ip"])],
    );
    let o = find(&out, "garbage-status");
    assert_eq!(o.ips, ips(&["192.0.2.0"]));
    assert_eq!(
        o.events[0].message,
        "cannot keep the IPs in the Service's status: status.loadBalancer.ingress holds \"not-an-ip\", which is not an IP address"
    );
}

// ---------------------------------------------------------------- rule 2

#[test]
fn rule2_requested_pool_is_the_only_one_even_without_auto_assign() {
    let mut manual = pool("manual", &["198.51.100.8/30"]);
    manual.spec.auto_assign = false;
    let mut a = alloc_with(&[pool("auto", &["192.0.2.0/30"]), manual]);
    let p = |n: &str, key: &str, v: &str| svc("ns", n).ann(key, v);
    let out = run(
        &mut a,
        &[
            svc("ns", "plain"),
            p("ferro", "ferrolb.io/address-pool", "manual"),
            p("metallb", "metallb.io/address-pool", "manual"),
            p("universe", "metallb.universe.tf/address-pool", "manual"),
            p("missing", "ferrolb.io/address-pool", "nope"),
            p("v6", "ferrolb.io/address-pool", "manual").families(&["IPv6"]),
        ],
    );
    assert_eq!(got(&out, "plain"), ["192.0.2.0"]);
    assert_eq!(got(&out, "ferro"), ["198.51.100.8"]);
    assert_eq!(got(&out, "metallb"), ["198.51.100.9"]);
    assert_eq!(got(&out, "universe"), ["198.51.100.10"]);
    assert_eq!(
        pending_message(find(&out, "missing")),
        "requested pool \"nope\" does not exist"
    );
    assert_eq!(
        pending_message(find(&out, "v6")),
        "requested pool \"manual\" has no IPv6 addresses"
    );
    // The pool fills up: no fallback to another pool.
    let out = run(
        &mut a,
        &[
            p("ferro", "ferrolb.io/address-pool", "manual"),
            p("metallb", "metallb.io/address-pool", "manual"),
            p("universe", "metallb.universe.tf/address-pool", "manual"),
            p("fourth", "ferrolb.io/address-pool", "manual").created(1),
            p("fifth", "ferrolb.io/address-pool", "manual").created(2),
        ],
    );
    assert_eq!(got(&out, "fourth"), ["198.51.100.11"]);
    assert_eq!(
        pending_message(find(&out, "fifth")),
        "pool \"manual\" exhausted for IPv4"
    );
}

#[test]
fn rule2_requested_pool_still_applies_service_allocation() {
    let p = with_alloc(
        pool("team", &["192.0.2.0/30"]),
        ServiceAllocation {
            namespaces: vec!["team-a".into()],
            ..Default::default()
        },
    );
    let mut a = alloc_with(&[p]);
    let out = run(
        &mut a,
        &[
            svc("team-a", "ok").ann("ferrolb.io/address-pool", "team"),
            svc("team-b", "no").ann("ferrolb.io/address-pool", "team"),
        ],
    );
    assert_eq!(got(&out, "ok"), ["192.0.2.0"]);
    assert_eq!(
        pending_message(find(&out, "no")),
        "requested pool \"team\" does not admit this Service's namespace and labels"
    );
}

// ---------------------------------------------------------------- rule 3

#[test]
fn rule3_priority_then_name_and_skips_full_pools() {
    let mut a = alloc_with(&[
        pool("a-none", &["203.0.113.0/32"]),
        pool("b-none", &["203.0.113.10/32"]),
        priority(pool("z-prio-1", &["198.51.100.0/32"]), 1),
        priority(pool("y-prio-5", &["192.0.2.0/32"]), 5),
        priority(pool("x-prio-5", &["192.0.2.100/32"]), 5),
    ]);
    let names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let services: Vec<S> = names
        .iter()
        .enumerate()
        .map(|(i, n)| svc("ns", n).created(i as i64))
        .collect();
    let out = run(&mut a, &services);
    let pools: Vec<Option<&str>> = names
        .iter()
        .map(|n| find(&out, n).pool.as_deref())
        .collect();
    assert_eq!(
        pools,
        [
            Some("z-prio-1"),
            Some("x-prio-5"),
            Some("y-prio-5"),
            Some("a-none"),
            Some("b-none"),
            None
        ]
    );
    assert_eq!(
        pending_message(find(&out, "s6")),
        "pool \"z-prio-1\" exhausted for IPv4; pool \"x-prio-5\" exhausted for IPv4; pool \"y-prio-5\" exhausted for IPv4; pool \"a-none\" exhausted for IPv4; pool \"b-none\" exhausted for IPv4"
    );
}

#[test]
fn rule3_service_allocation_filters_and_auto_assign() {
    let by_ns = with_alloc(
        pool("by-ns", &["192.0.2.0/32"]),
        ServiceAllocation {
            priority: Some(1),
            namespaces: vec!["team-a".into()],
            ..Default::default()
        },
    );
    let by_ns_label = with_alloc(
        pool("by-ns-label", &["192.0.2.1/32"]),
        ServiceAllocation {
            priority: Some(2),
            namespace_selectors: vec![selector("tier", "gold")],
            ..Default::default()
        },
    );
    let by_svc_label = with_alloc(
        pool("by-svc-label", &["192.0.2.2/32"]),
        ServiceAllocation {
            priority: Some(3),
            service_selectors: vec![selector("app", "web")],
            ..Default::default()
        },
    );
    let by_name_label = with_alloc(
        pool("by-name-label", &["192.0.2.3/32"]),
        ServiceAllocation {
            priority: Some(4),
            namespace_selectors: vec![selector(NAMESPACE_NAME_LABEL, "team-d")],
            ..Default::default()
        },
    );
    let mut manual = pool("manual", &["198.51.100.0/24"]);
    manual.spec.auto_assign = false;
    let mut a = alloc_with(&[by_ns, by_ns_label, by_svc_label, by_name_label, manual]);
    let namespaces: NamespaceLabels = [(
        "team-c".to_string(),
        [("tier".to_string(), "gold".to_string())].into(),
    )]
    .into();
    let services: Vec<Service> = [
        svc("team-a", "a"),
        svc("team-c", "c"),
        svc("team-x", "web").label("app", "web"),
        svc("team-d", "d"),
        svc("team-x", "nothing"),
    ]
    .into_iter()
    .map(|s| s.0)
    .collect();
    let out = a.reconcile(Snapshot::new(&lbs(&services), &namespaces));
    assert_eq!(got(&out, "a"), ["192.0.2.0"]);
    assert_eq!(got(&out, "c"), ["192.0.2.1"]);
    assert_eq!(got(&out, "web"), ["192.0.2.2"]);
    assert_eq!(got(&out, "d"), ["192.0.2.3"]);
    assert_eq!(
        event(find(&out, "nothing")),
        (
            "Warning",
            "AllocationFailed",
            "no IPAddressPool with autoAssign admits namespace \"team-x\" and the Service's labels"
        )
    );
    let mut empty = Allocator::new();
    let out = run(&mut empty, &[svc("ns", "x")]);
    assert_eq!(pending_message(&out[0]), "no IPAddressPool is configured");
}

// ---------------------------------------------------------------- rule 4

#[test]
fn rule4_lowest_free_address_in_written_order() {
    let mut a = alloc_with(&[pool("a", &["198.51.100.7-198.51.100.8", "192.0.2.0/31"])]);
    let services: Vec<S> = (0..5)
        .map(|i| svc("ns", &format!("s{i}")).created(i))
        .collect();
    let out = run(&mut a, &services);
    let all: Vec<Vec<String>> = (0..5).map(|i| got(&out, &format!("s{i}"))).collect();
    assert_eq!(
        all,
        [
            vec!["198.51.100.7"],
            vec!["198.51.100.8"],
            vec!["192.0.2.0"],
            vec!["192.0.2.1"],
            vec![]
        ]
    );
    // A freed address is the lowest again.
    let mut rest = services.clone();
    rest.remove(1);
    let rest: Vec<S> = rest
        .iter()
        .map(|s| {
            let o = find(&out, s.0.metadata.name.as_deref().unwrap());
            written(s, o)
        })
        .collect();
    let out = run(&mut a, &rest);
    assert_eq!(got(&out, "s4"), ["198.51.100.8"]);
    assert!(!find(&out, "s0").changed && find(&out, "s0").events.is_empty());
}

#[test]
fn rule4_avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut p = pool("a", &["192.0.2.254-198.51.100.1"]);
    p.spec.avoid_buggy_ips = true;
    let mut a = alloc_with(&[p]);
    let services: Vec<S> = (0..3)
        .map(|i| svc("ns", &format!("s{i}")).created(i))
        .collect();
    let out = run(&mut a, &services);
    assert_eq!(got(&out, "s0"), ["192.0.2.254"]);
    assert_eq!(got(&out, "s1"), ["192.0.3.1"]);
    assert_eq!(got(&out, "s2"), ["192.0.3.2"]);
    assert_eq!(a.pool_usage("a").0, 3);
}

#[test]
fn huge_pools_are_not_enumerated() {
    let mut a = alloc_with(&[pool("v6", &["::/0"]), pool("v4", &["0.0.0.0/0"])]);
    let services: Vec<S> = (0..3)
        .map(|i| svc("ns", &format!("s{i}")).created(i).families(&["IPv6"]))
        .chain([svc("ns", "v4")])
        .collect();
    let out = run(&mut a, &services);
    assert_eq!(got(&out, "s2"), ["::2"]);
    assert_eq!(got(&out, "v4"), ["0.0.0.0"]);
    assert_eq!(a.pool_usage("v6"), (0, AddrCount::from(3u64)));
    assert_eq!(a.pool_usage("v4"), (1, AddrCount::ZERO));
    assert_eq!(a.pool_usage("unknown"), (0, AddrCount::ZERO));
}

// ---------------------------------------------------------------- rule 5

#[test]
fn rule5_families() {
    let mut a = alloc_with(&[
        priority(pool("v4-only", &["192.0.2.0/30"]), 1),
        priority(pool("dual", &["198.51.100.0/30", "2001:db8::/126"]), 2),
    ]);
    let out = run(
        &mut a,
        &[
            svc("ns", "single-default").created(1),
            svc("ns", "single-v6").created(2).families(&["IPv6"]),
            svc("ns", "prefer")
                .created(3)
                .policy("PreferDualStack")
                .families(&["IPv6", "IPv4"]),
            svc("ns", "require").created(4).policy("RequireDualStack"),
        ],
    );
    assert_eq!(got(&out, "single-default"), ["192.0.2.0"]);
    assert_eq!(got(&out, "single-v6"), ["2001:db8::"]);
    assert_eq!(got(&out, "prefer"), ["2001:db8::1", "198.51.100.0"]);
    assert_eq!(find(&out, "prefer").pool.as_deref(), Some("dual"));
    assert_eq!(got(&out, "require"), ["198.51.100.1", "2001:db8::2"]);

    // Without a dual-stack pool: PreferDualStack takes the first family only,
    // RequireDualStack stays pending.
    let mut a = alloc_with(&[pool("v4-only", &["192.0.2.0/30"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "prefer").policy("PreferDualStack"),
            svc("ns", "require").policy("RequireDualStack"),
            svc("ns", "v6").families(&["IPv6"]),
        ],
    );
    assert_eq!(got(&out, "prefer"), ["192.0.2.0"]);
    assert_eq!(
        event(find(&out, "require")),
        (
            "Warning",
            "AllocationFailed",
            "ipFamilyPolicy RequireDualStack needs a pool with both IPv4 and IPv6 addresses, and no pool that admits this Service has both"
        )
    );
    assert_eq!(
        pending_message(find(&out, "v6")),
        "no IPAddressPool that admits this Service has IPv6 addresses"
    );
}

#[test]
fn rule5_require_dual_stack_takes_both_from_one_pool() {
    // The first pool has only IPv6 room left; the second gives both.
    let mut a = alloc_with(&[
        priority(pool("p1", &["192.0.2.0/32", "2001:db8::/127"]), 1),
        priority(pool("p2", &["198.51.100.0/31", "2001:db8:1::/127"]), 2),
    ]);
    let out = run(
        &mut a,
        &[
            svc("ns", "v4").created(1),
            svc("ns", "dual").created(2).policy("RequireDualStack"),
            svc("ns", "dual2").created(3).policy("RequireDualStack"),
            svc("ns", "dual3").created(4).policy("RequireDualStack"),
        ],
    );
    assert_eq!(got(&out, "v4"), ["192.0.2.0"]);
    assert_eq!(got(&out, "dual"), ["198.51.100.0", "2001:db8:1::"]);
    assert_eq!(got(&out, "dual2"), ["198.51.100.1", "2001:db8:1::1"]);
    assert_eq!(
        pending_message(find(&out, "dual3")),
        "pool \"p1\" exhausted for IPv4; pool \"p2\" exhausted for IPv4; pool \"p2\" exhausted for IPv6"
    );
}

// ---------------------------------------------------------------- rule 6

#[test]
fn rule6_compatible_services_share_the_lowest_address() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "plain").created(1),
            svc("ns", "http")
                .created(2)
                .share("k")
                .ports(&[(80, "TCP")]),
            svc("ns", "dns")
                .created(3)
                .share("k")
                .ports(&[(53, "UDP"), (80, "UDP")]),
            svc("ns", "http2")
                .created(4)
                .share("k")
                .ports(&[(80, "TCP")]),
            svc("ns", "other-key")
                .created(5)
                .share("j")
                .ports(&[(22, "TCP")]),
        ],
    );
    assert_eq!(got(&out, "plain"), ["192.0.2.0"]);
    assert_eq!(got(&out, "http"), ["192.0.2.1"]);
    assert_eq!(got(&out, "dns"), ["192.0.2.1"]);
    // Port 80/TCP overlaps: the next address.
    assert_eq!(got(&out, "http2"), ["192.0.2.2"]);
    assert_eq!(got(&out, "other-key"), ["192.0.2.3"]);
    assert_eq!(
        a.holders_of(&ip("192.0.2.1")).cloned().collect::<Vec<_>>(),
        [ServiceKey::new("ns", "http"), ServiceKey::new("ns", "dns")]
    );
    // Shared IPs count once.
    assert_eq!(a.pool_usage("a").0, 4);
}

#[test]
fn rule6_many_services_under_one_key_take_the_lowest_joinable_address() {
    // 300 Services on port 80 under one key: one address each. Then a Service
    // on port 443 joins the lowest of them, and one on 80 and 443 takes the
    // lowest free address; after the first holder of .0 leaves, .0 still has
    // the 443 Service, and a newcomer on 80 takes it again.
    let mut a = alloc_with(&[pool("a", &["198.51.100.0/24", "203.0.113.0/24"])]);
    let mut services: Vec<S> = (0..300)
        .map(|i| {
            svc("ns", &format!("web{i:03}"))
                .created(i)
                .share("k")
                .ports(&[(80, "TCP")])
        })
        .collect();
    services.push(
        svc("ns", "tls")
            .created(1000)
            .share("k")
            .ports(&[(443, "TCP")]),
    );
    services.push(
        svc("ns", "both")
            .created(1001)
            .share("k")
            .ports(&[(80, "TCP"), (443, "TCP")]),
    );
    let out = run(&mut a, &services);
    assert_eq!(got(&out, "web000"), ["198.51.100.0"]);
    assert_eq!(got(&out, "web255"), ["198.51.100.255"]);
    assert_eq!(got(&out, "web299"), ["203.0.113.43"]);
    assert_eq!(got(&out, "tls"), ["198.51.100.0"]);
    assert_eq!(got(&out, "both"), ["203.0.113.44"]);
    assert_eq!(a.pool_usage("a").0, 301);

    // web000 goes away: .0 keeps the tls Service; a new one on port 80 joins it.
    let mut next: Vec<S> = services
        .iter()
        .zip(&out)
        .filter(|(s, _)| s.0.metadata.name.as_deref() != Some("web000"))
        .map(|(s, o)| written(s, o))
        .collect();
    next.push(
        svc("ns", "late")
            .created(2000)
            .share("k")
            .ports(&[(80, "TCP")]),
    );
    let out = run(&mut a, &next);
    assert_eq!(got(&out, "late"), ["198.51.100.0"]);
    assert_eq!(
        a.holders_of(&ip("198.51.100.0"))
            .cloned()
            .collect::<Vec<_>>(),
        [ServiceKey::new("ns", "tls"), ServiceKey::new("ns", "late")]
    );
    // A Service may change its own ports in place while sharing: only the
    // others' ports count against it.
    // (Outcomes list the released web000 first: match them by name.)
    let mut edited: Vec<S> = next
        .iter()
        .map(|s| written(s, find(&out, s.0.metadata.name.as_deref().unwrap())))
        .collect();
    let late = edited
        .iter_mut()
        .find(|s| s.0.metadata.name.as_deref() == Some("late"))
        .unwrap();
    *late = late.clone().ports(&[(80, "TCP"), (8080, "TCP")]);
    let out = run(&mut a, &edited);
    assert_eq!(got(&out, "late"), ["198.51.100.0"]);
    assert!(!find(&out, "late").changed);
    // But not to a port another holder uses.
    let late = edited
        .iter_mut()
        .find(|s| s.0.metadata.name.as_deref() == Some("late"))
        .unwrap();
    *late = late.clone().ports(&[(443, "TCP")]);
    let out = run(&mut a, &edited);
    let late = find(&out, "late");
    // The lowest address without port 443: web001's.
    assert_eq!(got(&out, "late"), ["198.51.100.1"]);
    let e = &late.events[0];
    assert_eq!(
        (e.type_.as_str(), e.reason, e.message.as_str()),
        (
            "Warning",
            IP_INVALIDATED,
            "released 198.51.100.0: 198.51.100.0 is also held by ns/tls and cannot be shared: both use port 443/TCP"
        )
    );
}

#[test]
fn rule6_backends_must_match() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let out = run(
        &mut a,
        &[
            svc("ns", "local-a")
                .created(1)
                .share("k")
                .ports(&[(80, "TCP")])
                .local(&[("app", "a")]),
            svc("ns", "local-a2")
                .created(2)
                .share("k")
                .ports(&[(81, "TCP")])
                .local(&[("app", "a")]),
            svc("ns", "local-b")
                .created(3)
                .share("k")
                .ports(&[(82, "TCP")])
                .local(&[("app", "b")]),
            svc("ns", "cluster")
                .created(4)
                .share("k")
                .ports(&[(83, "TCP")]),
        ],
    );
    assert_eq!(got(&out, "local-a"), ["192.0.2.0"]);
    assert_eq!(got(&out, "local-a2"), ["192.0.2.0"]);
    assert_eq!(got(&out, "local-b"), ["192.0.2.1"]);
    assert_eq!(got(&out, "cluster"), ["192.0.2.2"]);
}

#[test]
fn rule6_requested_ip_in_use_names_holder_and_why() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/24"])]);
    let want = |s: S| s.ann("ferrolb.io/loadBalancerIPs", "192.0.2.7");
    let out = run(
        &mut a,
        &[
            want(
                svc("ns", "owner")
                    .created(1)
                    .share("k")
                    .ports(&[(80, "TCP")]),
            ),
            want(svc("ns", "no-key").created(2)),
            want(
                svc("ns", "same-port")
                    .created(3)
                    .share("k")
                    .ports(&[(80, "TCP")]),
            ),
            want(svc("ns", "other-key").created(4).share("j")),
            want(svc("ns", "local").created(5).share("k").local(&[])),
            want(svc("ns", "ok").created(6).share("k").ports(&[(443, "TCP")])),
        ],
    );
    let m = |n: &str| pending_message(find(&out, n));
    assert_eq!(got(&out, "owner"), ["192.0.2.7"]);
    assert_eq!(got(&out, "ok"), ["192.0.2.7"]);
    assert_eq!(
        m("no-key"),
        "requested IP 192.0.2.7 is in use by ns/owner and cannot be shared: this Service has no allow-shared-ip annotation"
    );
    assert_eq!(
        m("same-port"),
        "requested IP 192.0.2.7 is in use by ns/owner and cannot be shared: both use port 80/TCP"
    );
    assert_eq!(
        m("other-key"),
        "requested IP 192.0.2.7 is in use by ns/owner and cannot be shared: the allow-shared-ip keys differ (\"j\" here, \"k\" on ns/owner)"
    );
    assert_eq!(
        m("local"),
        "requested IP 192.0.2.7 is in use by ns/owner and cannot be shared: externalTrafficPolicy differs (Local here, Cluster on ns/owner)"
    );
    let plain = svc("ns", "plain").created(7);
    let owner2 = svc("ns", "owner2")
        .created(0)
        .ann("ferrolb.io/loadBalancerIPs", "192.0.2.9");
    let out = run(
        &mut a,
        &[
            owner2,
            want(plain)
                .ann("ferrolb.io/loadBalancerIPs", "192.0.2.9")
                .share("k"),
        ],
    );
    assert_eq!(
        pending_message(find(&out, "plain")),
        "requested IP 192.0.2.9 is in use by ns/owner2 and cannot be shared: ns/owner2 has no allow-shared-ip annotation"
    );
}

// ---------------------------------------------------------------- rule 7

#[test]
fn rule7_pool_shrink_reallocates_only_affected_services() {
    let mut a = alloc_with(&[
        pool("a", &["192.0.2.0/29"]),
        pool("b", &["198.51.100.0/30"]),
    ]);
    let services: Vec<S> = (0..4)
        .map(|i| svc("ns", &format!("s{i}")).created(i))
        .collect();
    let out = run(&mut a, &services);
    let services: Vec<S> = services
        .iter()
        .zip(&out)
        .map(|(s, o)| written(s, o))
        .collect();
    assert_eq!(got(&out, "s3"), ["192.0.2.3"]);
    // Shrink pool a to .0-.1 and add room elsewhere.
    a.set_pools(&[
        pool("a", &["192.0.2.0/31"]),
        pool("b", &["198.51.100.0/30"]),
    ]);
    let out = run(&mut a, &services);
    for n in ["s0", "s1"] {
        let o = find(&out, n);
        assert!(!o.changed && o.events.is_empty(), "{o:#?}");
    }
    let o = find(&out, "s2");
    assert!(o.changed);
    assert_eq!(o.ips, ips(&["198.51.100.0"]));
    assert_eq!(o.events.len(), 2);
    assert_eq!(
        (
            o.events[0].type_,
            o.events[0].reason,
            o.events[0].message.as_str()
        ),
        (
            EventType::Warning,
            "IPInvalidated",
            "released 192.0.2.2: pool \"a\" no longer contains 192.0.2.2"
        )
    );
    assert_eq!(
        o.events[1].message,
        "assigned IP 198.51.100.0 from pool \"b\""
    );
    assert_eq!(got(&out, "s3"), ["198.51.100.1"]);
    assert_eq!(a.pool_usage("a").0, 2);
    assert_eq!(a.pool_usage("b").0, 2);
}

#[test]
fn rule7_pool_deletion_and_request_changes() {
    let mut a = alloc_with(&[
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
    ]);
    let s = svc("ns", "s").created(1);
    let out = run(&mut a, std::slice::from_ref(&s));
    let s = written(&s, &out[0]);
    assert_eq!(
        s.0.metadata.annotations.as_ref().unwrap()[ALLOCATED_FROM_POOL_ANNOTATION],
        "a"
    );
    a.set_pools(&[pool("b", &["198.51.100.0/30"])]);
    let out = run(&mut a, std::slice::from_ref(&s));
    assert_eq!(
        out[0].events[0].message,
        "released 192.0.2.0: pool \"a\" was deleted"
    );
    assert_eq!(out[0].ips, ips(&["198.51.100.0"]));
    let s = written(&s, &out[0]);
    // A new request for an IP replaces the old one.
    let s2 = s.clone().ann("ferrolb.io/loadBalancerIPs", "198.51.100.3");
    let out = run(&mut a, std::slice::from_ref(&s2));
    assert_eq!(
        out[0].events[0].message,
        "released 198.51.100.0: the Service requests 198.51.100.3"
    );
    assert_eq!(out[0].ips, ips(&["198.51.100.3"]));
    // Moving the range to another pool keeps the IP and changes the pool name.
    let s2 = written(&s2, &out[0]);
    a.set_pools(&[pool("c", &["198.51.100.0/30"])]);
    let out = run(&mut a, std::slice::from_ref(&s2));
    assert!(out[0].events.is_empty());
    assert_eq!(out[0].ips, ips(&["198.51.100.3"]));
    assert_eq!(out[0].pool.as_deref(), Some("c"));
    assert!(out[0].changed, "the pool annotation must be rewritten");
}

#[test]
fn rule7_service_allocation_edit_invalidates() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let s = svc("team-b", "s");
    let out = run(&mut a, std::slice::from_ref(&s));
    let s = written(&s, &out[0]);
    a.set_pools(&[with_alloc(
        pool("a", &["192.0.2.0/30"]),
        ServiceAllocation {
            namespaces: vec!["team-a".into()],
            ..Default::default()
        },
    )]);
    let out = run(&mut a, &[s]);
    let o = &out[0];
    assert_eq!(
        o.events[0].message,
        "released 192.0.2.0: pool \"a\" does not admit this Service's namespace and labels"
    );
    assert_eq!(
        o.events[1].message,
        "no IPAddressPool with autoAssign admits namespace \"team-b\" and the Service's labels"
    );
    assert!(o.changed && o.ips.is_empty());
}

// ---------------------------------------------------------------- rule 8

#[test]
fn rule8_restart_keeps_every_ip() {
    let pools = [pool("a", &["192.0.2.0/29"]), pool("b", &["2001:db8::/64"])];
    let mut a = alloc_with(&pools);
    let services: Vec<S> = (0..5)
        .map(|i| svc("ns", &format!("s{i}")).created(10 - i))
        .chain([svc("ns", "v6").families(&["IPv6"]).created(3)])
        .collect();
    let out = run(&mut a, &services);
    let services: Vec<S> = services
        .iter()
        .map(|s| written(s, find(&out, s.0.metadata.name.as_deref().unwrap())))
        .collect();
    // Release one in the middle so the restored layout has a hole.
    let services: Vec<S> = services
        .into_iter()
        .filter(|s| s.0.metadata.name.as_deref() != Some("s2"))
        .collect();
    let before: Vec<(ServiceKey, Vec<IpAddr>)> = out
        .iter()
        .filter(|o| &*o.service.name != "s2")
        .map(|o| (o.service.clone(), o.ips.clone()))
        .collect();

    let mut b = alloc_with(&pools);
    let raw: Vec<Service> = services.iter().map(|s| s.0.clone()).collect();
    let report = b.restore(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(
        report,
        RestoreReport {
            claimed: 5,
            refused: vec![]
        }
    );
    let mut with_new = services.clone();
    with_new.push(svc("ns", "new").created(100));
    let out = run(&mut b, &with_new);
    for (key, ips) in before {
        let o = find(&out, &key.name);
        assert_eq!(o.ips, ips);
        assert!(!o.changed && o.events.is_empty(), "{o:#?}");
    }
    // The new Service fills the hole.
    assert_eq!(got(&out, "new"), ["192.0.2.2"]);
}

#[test]
fn rule8_restart_conflict_older_service_wins() {
    let pools = [pool("a", &["192.0.2.0/30"])];
    let mut a = alloc_with(&pools);
    let older = svc("ns", "zz-older").created(1).status(&["192.0.2.1"]);
    let newer = svc("ns", "aa-newer").created(2).status(&["192.0.2.1"]);
    let tie_a = svc("ns", "tie-a").created(5).status(&["192.0.2.2"]);
    let tie_b = svc("ns", "tie-b").created(5).status(&["192.0.2.2"]);
    let raw: Vec<Service> = [&newer, &older, &tie_b, &tie_a]
        .iter()
        .map(|s| s.0.clone())
        .collect();
    let report = a.restore(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(report.claimed, 2);
    assert_eq!(
        report.refused,
        [
            (
                ServiceKey::new("ns", "aa-newer"),
                "192.0.2.1 is also held by older Service ns/zz-older and cannot be shared: this Service has no allow-shared-ip annotation".to_string()
            ),
            (
                ServiceKey::new("ns", "tie-b"),
                "192.0.2.2 is also held by older Service ns/tie-a and cannot be shared: this Service has no allow-shared-ip annotation".to_string()
            ),
        ]
    );
    let out = a.reconcile(Snapshot::new(&lbs(&raw), no_ns()));
    assert_eq!(got(&out, "zz-older"), ["192.0.2.1"]);
    assert_eq!(got(&out, "tie-a"), ["192.0.2.2"]);
    let o = find(&out, "aa-newer");
    assert_eq!(o.ips, ips(&["192.0.2.0"]));
    assert_eq!(
        o.events[0].message,
        "released 192.0.2.1: 192.0.2.1 is also held by older Service ns/zz-older and cannot be shared: this Service has no allow-shared-ip annotation"
    );
    assert_eq!(o.events[1].message, "assigned IP 192.0.2.0 from pool \"a\"");
    assert_eq!(got(&out, "tie-b"), ["192.0.2.3"]);

    // reconcile alone (without restore) resolves the same way.
    let mut b = alloc_with(&pools);
    let out2 = b.reconcile(Snapshot::new(&lbs(&raw), no_ns()));
    let ips_of = |out: &[ServiceOutcome]| {
        let mut v: Vec<(String, Vec<IpAddr>)> = out
            .iter()
            .map(|o| (o.service.to_string(), o.ips.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ips_of(&out), ips_of(&out2));
}

#[test]
fn rule8_deterministic_order_of_new_allocations() {
    let pools = [pool("a", &["192.0.2.0/30"])];
    let services = vec![
        svc("b", "x").created(2),
        svc("a", "y").created(2),
        svc("z", "first").created(1),
        svc("a", "no-timestamp"),
    ];
    let mut reversed = services.clone();
    reversed.reverse();
    let out1 = run(&mut alloc_with(&pools), &services);
    let out2 = run(&mut alloc_with(&pools), &reversed);
    assert_eq!(out1, out2);
    let order: Vec<String> = out1
        .iter()
        .map(|o| format!("{} {}", o.service, o.ips[0]))
        .collect();
    assert_eq!(
        order,
        [
            "a/no-timestamp 192.0.2.0",
            "z/first 192.0.2.1",
            "a/y 192.0.2.2",
            "b/x 192.0.2.3"
        ]
    );
}

// ---------------------------------------------------------------- rule 9 and events

#[test]
fn rule9_pending_reasons_and_event_repetition() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/32", "2001:db8::/128"])]);
    let services = [
        svc("ns", "first").created(1),
        svc("ns", "second").created(2),
        svc("ns", "v6").created(3).families(&["IPv6"]),
        svc("ns", "v6b").created(4).families(&["IPv6"]),
    ];
    let out = run(&mut a, &services);
    assert_eq!(
        event(find(&out, "second")),
        (
            "Warning",
            "AllocationFailed",
            "pool \"a\" exhausted for IPv4"
        )
    );
    assert_eq!(event(find(&out, "v6b")).2, "pool \"a\" exhausted for IPv6");
    // Same reason next time: still pending, no new Event.
    let out = run(&mut a, &services);
    let o = find(&out, "second");
    assert!(o.is_pending() && o.events.is_empty() && !o.changed);
    // Room appears: allocated.
    a.set_pools(&[pool("a", &["192.0.2.0/31", "2001:db8::/128"])]);
    let out = run(&mut a, &services);
    assert_eq!(
        event(find(&out, "second")),
        (
            "Normal",
            "IPAllocated",
            "assigned IP 192.0.2.1 from pool \"a\""
        )
    );
}

#[test]
fn single_service_allocate_matches_reconcile() {
    let mut a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
    let labels = BTreeMap::new();
    let s = svc("ns", "s");
    let o = a.allocate(&LbService::from(&s.0), &labels);
    assert_eq!(o.ips, ips(&["192.0.2.0"]));
    assert_eq!(event(&o).0, "Normal");
    let s = written(&s, &o);
    let o = a.allocate(&LbService::from(&s.0), &labels);
    assert!(!o.changed && o.events.is_empty());
    // An unknown Service with a status claims it.
    let t = svc("ns", "t").status(&["192.0.2.3"]);
    let o = a.allocate(&LbService::from(&t.0), &labels);
    assert_eq!(o.ips, ips(&["192.0.2.3"]));
    assert!(o.events.is_empty());
    assert!(o.changed, "pool annotation missing");
    assert_eq!(a.assignments().len(), 2);
    assert_eq!(a.assignment(&ServiceKey::new("ns", "t")).unwrap().1, "a");
}

#[test]
fn allocator_can_move_between_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Allocator>();
    send_sync::<ServiceOutcome>();
    let ns = namespace_labels(&[]);
    assert!(ns.is_empty());
}
