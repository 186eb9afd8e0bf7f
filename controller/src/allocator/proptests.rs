//! Property tests: no IP is ever held by two Services that may not share it,
//! allocation is deterministic, and a restart (restore from the outcomes' IPs)
//! gives back the same assignments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::addr::Family;
use ferrolb_config::crd::{IPAddressPool, ServiceAllocation};
use k8s_openapi::api::core::v1::Service;
use proptest::prelude::*;

use super::service::ServiceView;
use super::tests::{S, ip, lbs, no_ns, pool, svc};
use super::*;

#[derive(Debug, Clone)]
struct PoolSpec {
    present: bool,
    big: bool,
    priority: Option<i32>,
    avoid_buggy: bool,
    only_ns1: bool,
    auto_assign: bool,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        prop::bool::weighted(0.85),
        any::<bool>(),
        prop::option::of(0..3i32),
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(present, big, priority, avoid_buggy, only_ns1, auto_assign)| PoolSpec {
                present,
                big,
                priority,
                avoid_buggy,
                only_ns1,
                auto_assign,
            },
        )
}

/// Three small pools (documentation addresses only): IPv4, dual-stack, IPv6.
fn build_pools(specs: &[PoolSpec]) -> Vec<IPAddressPool> {
    let shapes: [(&str, [&[&str]; 2]); 3] = [
        (
            "p-a",
            [
                &["192.0.2.0/30"],
                &["192.0.2.254-192.0.3.1", "192.0.2.0/29"],
            ],
        ),
        (
            "p-b",
            [
                &["198.51.100.0/31", "2001:db8::/127"],
                &["198.51.100.0/30", "2001:db8::/126"],
            ],
        ),
        (
            "p-c",
            [
                &["2001:db8:1::/127"],
                &["2001:db8:1::/126", "203.0.113.0/31"],
            ],
        ),
    ];
    specs
        .iter()
        .zip(shapes)
        .filter(|(s, _)| s.present)
        .map(|(s, (name, addrs))| {
            let mut p = pool(name, addrs[s.big as usize]);
            p.spec.avoid_buggy_ips = s.avoid_buggy;
            p.spec.auto_assign = s.auto_assign;
            if s.priority.is_some() || s.only_ns1 {
                p.spec.service_allocation = Some(ServiceAllocation {
                    priority: s.priority,
                    namespaces: if s.only_ns1 {
                        vec!["ns1".into()]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                });
            }
            p
        })
        .collect()
}

#[derive(Debug, Clone)]
struct SvcSpec {
    ns: u8,
    created: Option<u8>,
    policy: u8,
    families: u8,
    key: u8,
    ports: u8,
    local: Option<u8>,
    requested: Option<u8>,
    pool: u8,
    lb_type: bool,
}

fn svc_spec() -> impl Strategy<Value = SvcSpec> {
    (
        (0..2u8, prop::option::of(0..4u8), 0..4u8, 0..4u8, 0..3u8),
        (
            0..8u8,
            prop::option::weighted(0.3, 0..2u8),
            prop::option::weighted(0.2, 0..8u8),
            0..6u8,
            prop::bool::weighted(0.95),
        ),
    )
        .prop_map(
            |((ns, created, policy, families, key), (ports, local, requested, pool, lb_type))| {
                SvcSpec {
                    ns,
                    created,
                    policy,
                    families,
                    key,
                    ports,
                    local,
                    requested,
                    pool,
                    lb_type,
                }
            },
        )
}

const REQUESTABLE: [&str; 8] = [
    "192.0.2.1",
    "192.0.2.9",
    "198.51.100.1",
    "2001:db8::1",
    "2001:db8:1::1",
    "203.0.113.5",
    "192.0.2.255",
    "192.0.2.1,2001:db8::1",
];

fn build_service(i: usize, s: &SvcSpec) -> Service {
    let mut b: S = svc(&format!("ns{}", s.ns), &format!("s{i}"));
    if let Some(c) = s.created {
        b = b.created(c as i64);
    }
    match s.policy {
        1 => b = b.policy("SingleStack"),
        2 => b = b.policy("PreferDualStack"),
        3 => b = b.policy("RequireDualStack"),
        _ => {}
    }
    match s.families {
        1 => b = b.families(&["IPv4"]),
        2 => b = b.families(&["IPv6"]),
        3 => b = b.families(&["IPv6", "IPv4"]),
        _ => {}
    }
    match s.key {
        1 => b = b.share("k"),
        2 => b = b.share("j"),
        _ => {}
    }
    let ports: Vec<(i32, &str)> = [(80, "TCP"), (443, "TCP"), (53, "UDP")]
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| s.ports & (1 << bit) != 0)
        .map(|(_, p)| p)
        .collect();
    b = b.ports(&ports);
    if let Some(sel) = s.local {
        b = b.local(&[("app", if sel == 0 { "a" } else { "b" })]);
    }
    if let Some(r) = s.requested {
        b = b.ann("ferrolb.io/loadBalancerIPs", REQUESTABLE[r as usize]);
    }
    match s.pool {
        1 => b = b.ann("ferrolb.io/address-pool", "p-c"),
        2 => b = b.ann("metallb.io/address-pool", "p-a"),
        3 => b = b.ann("ferrolb.io/address-pool", "missing"),
        _ => {}
    }
    if !s.lb_type {
        b.0.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    }
    b.0
}

fn build_services(specs: &[SvcSpec]) -> Vec<Service> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| build_service(i, s))
        .collect()
}

/// The Service with an outcome written back (status IPs and pool annotation).
fn write_back(svc: &Service, o: Option<&ServiceOutcome>) -> Service {
    let Some(o) = o else { return svc.clone() };
    let list: Vec<String> = o.ips.iter().map(|i| i.to_string()).collect();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let mut b = S(svc.clone()).status(&refs);
    if let Some(ann) = b.0.metadata.annotations.as_mut() {
        ann.remove(ALLOCATED_FROM_POOL_ANNOTATION);
    }
    if let Some(p) = &o.pool {
        b = b.ann(ALLOCATED_FROM_POOL_ANNOTATION, p);
    }
    b.0
}

fn write_all(services: &[Service], outcomes: &[ServiceOutcome]) -> Vec<Service> {
    let by_key: BTreeMap<&ServiceKey, &ServiceOutcome> =
        outcomes.iter().map(|o| (&o.service, o)).collect();
    services
        .iter()
        .map(|s| write_back(s, by_key.get(&ServiceKey::of(s)).copied()))
        .collect()
}

/// Every IP's holders may share it pairwise; outcomes agree with the state;
/// pool counts match the assignments and the addresses Services not ours list.
fn check_invariants(a: &Allocator, outcomes: &[ServiceOutcome]) -> Result<(), TestCaseError> {
    let mut by_ip: BTreeMap<std::net::IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for (key, ips, pool) in a.assignments() {
        prop_assert!(!ips.is_empty());
        for addr in ips {
            by_ip.entry(*addr).or_default().push(key);
            let p = a.pool_by_name(pool).expect("assigned pool exists");
            prop_assert!(a.pools[p].holds(addr), "{addr} not in pool {pool}");
        }
        let fams: Vec<Family> = ips.iter().map(Family::of).collect();
        prop_assert!(fams.len() == 1 || fams[0] != fams[1]);
    }
    for (addr, holders) in &by_ip {
        prop_assert_eq!(a.holders_of(addr).count(), holders.len());
        for (i, x) in holders.iter().enumerate() {
            for y in &holders[i + 1..] {
                let (rx, ry) = (a.record(x).unwrap(), a.record(y).unwrap());
                prop_assert_eq!(
                    rx.share.refusal(y, &ry.share),
                    None,
                    "{} held by {} and {}",
                    addr,
                    x,
                    y
                );
            }
        }
    }
    for o in outcomes {
        match &o.state {
            OutcomeState::Assigned => {
                let (ips, pool) = a.assignment(&o.service).expect("assigned");
                prop_assert_eq!(ips, o.ips.as_slice());
                prop_assert_eq!(Some(pool), o.pool.as_deref());
            }
            _ => {
                prop_assert!(a.assignment(&o.service).is_none());
                prop_assert!(o.ips.is_empty() && o.pool.is_none());
            }
        }
    }
    let mut used: BTreeSet<IpAddr> = by_ip.keys().copied().collect();
    for (key, other) in &a.others {
        for addr in &other.ips {
            prop_assert!(a.other_holders_of(addr).any(|k| k == key));
            used.insert(*addr);
        }
    }
    let mut counts: BTreeMap<&str, (u64, u128)> = BTreeMap::new();
    for addr in &used {
        // Pools do not overlap here: the one that may hand it out counts it.
        let Some(pool) = a.pools.iter().find(|p| p.holds(addr)) else {
            continue;
        };
        let c = counts.entry(&*pool.name).or_default();
        match Family::of(addr) {
            Family::V4 => c.0 += 1,
            Family::V6 => c.1 += 1,
        }
    }
    for p in &a.pools {
        let (v4, v6) = a.pool_usage(&p.name);
        let want = counts.get(&*p.name).copied().unwrap_or_default();
        prop_assert_eq!(v4, want.0);
        prop_assert_eq!(v6.to_u128(), Some(want.1));
    }
    Ok(())
}

/// After a whole reconcile: an address a Service not ours lists is held by a
/// Service of ours only if ours had it in its status already, and, when the
/// lister is a LoadBalancer of another class, only if ours is the older.
fn check_others_respected(a: &Allocator, services: &[LbService]) -> Result<(), TestCaseError> {
    let by_key: BTreeMap<&ServiceKey, &LbService> = services.iter().map(|s| (&s.key, s)).collect();
    for (key, ips, _) in a.assignments() {
        let mine = ServiceView::read(by_key[key], None);
        for addr in ips {
            for other_key in a.other_holders_of(addr) {
                let other = &a.others[other_key];
                prop_assert!(
                    !matches!(other.why, NotOurs::OtherClass(_))
                        || (other.created, other_key) > mine.order_key(),
                    "{} holds {} listed by the older {}",
                    key,
                    addr,
                    other_key
                );
                prop_assert!(
                    mine.status().unwrap_or_default().contains(addr),
                    "{} was given {}, which {} lists",
                    key,
                    addr,
                    other_key
                );
            }
        }
    }
    Ok(())
}

/// Addresses of the pools of [`build_pools`] (and one outside them) that
/// Services may have in their status.
const LISTABLE: [&str; 9] = [
    "192.0.2.0",
    "192.0.2.1",
    "192.0.2.3",
    "198.51.100.0",
    "198.51.100.1",
    "2001:db8::",
    "2001:db8::1",
    "2001:db8:1::",
    "10.0.0.1",
];

/// A Service with addresses in its status: of ours (classless), or not ours
/// (another class, another type, being deleted).
fn listing_service(i: usize, created: u8, which: u8, ips: &[u8]) -> Service {
    let list: Vec<&str> = ips.iter().map(|n| LISTABLE[*n as usize]).collect();
    let mut b = svc("ns", &format!("l{i}")).created(created as i64);
    b = match which {
        0 => b,
        1 => b.class("example.com/other"),
        2 => b.type_("NodePort"),
        _ => {
            b.0.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
                ));
            b
        }
    };
    b.status(&list).0
}

fn summary(outcomes: &[ServiceOutcome]) -> BTreeMap<String, Vec<std::net::IpAddr>> {
    outcomes
        .iter()
        .map(|o| (o.service.to_string(), o.ips.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_ip_is_held_by_incompatible_services(
        pools1 in prop::collection::vec(pool_spec(), 3),
        pools2 in prop::collection::vec(pool_spec(), 3),
        specs in prop::collection::vec(svc_spec(), 0..24),
        edits in prop::collection::vec(svc_spec(), 0..24),
        keep in prop::collection::vec(any::<bool>(), 24),
    ) {
        let mut a = Allocator::new();
        a.set_pools(&build_pools(&pools1));
        let services = build_services(&specs);
        let out = a.reconcile(Snapshot::new(&lbs(&services), no_ns()));
        check_invariants(&a, &out)?;

        // Pools change, some Services change or go away, new ones come.
        a.set_pools(&build_pools(&pools2));
        let mut next: Vec<Service> = write_all(&services, &out)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .map(|(i, s)| match edits.get(i) {
                Some(e) if i % 3 == 0 => {
                    let mut changed = build_service(i, e);
                    changed.status = s.status.clone();
                    changed
                }
                _ => s,
            })
            .collect();
        next.extend(edits.iter().enumerate().map(|(i, e)| build_service(100 + i, e)));
        let out = a.reconcile(Snapshot::new(&lbs(&next), no_ns()));
        check_invariants(&a, &out)?;

        // One-by-one decisions keep the invariant too.
        let mut last = Vec::new();
        for s in &next {
            last.push(a.allocate(&LbService::from(s), &BTreeMap::new()));
            check_invariants(&a, &last)?;
        }
    }

    #[test]
    fn allocation_is_deterministic(
        pools in prop::collection::vec(pool_spec(), 3),
        specs in prop::collection::vec(svc_spec(), 0..24),
        rotate in 0..24usize,
    ) {
        let pools = build_pools(&pools);
        let services = build_services(&specs);
        let run = |list: &[Service]| {
            let mut a = Allocator::new();
            a.set_pools(&pools);
            a.reconcile(Snapshot::new(&lbs(list), no_ns()))
        };
        let first = run(&services);
        prop_assert_eq!(&first, &run(&services));
        // The order of the snapshot does not matter either.
        let mut rotated = services.clone();
        if !rotated.is_empty() {
            let r = rotate % rotated.len();
            rotated.rotate_left(r);
            rotated.reverse();
        }
        prop_assert_eq!(&first, &run(&rotated));
    }

    #[test]
    fn restart_rebuild_gives_the_same_assignments(
        pools in prop::collection::vec(pool_spec(), 3),
        specs in prop::collection::vec(svc_spec(), 0..24),
    ) {
        let pools = build_pools(&pools);
        let services = build_services(&specs);
        let mut a = Allocator::new();
        a.set_pools(&pools);
        let out = a.reconcile(Snapshot::new(&lbs(&services), no_ns()));
        let written = write_all(&services, &out);

        let mut b = Allocator::new();
        b.set_pools(&pools);
        let report = b.restore(Snapshot::new(&lbs(&written), no_ns()));
        prop_assert!(report.refused.is_empty(), "{:?}", report.refused);
        prop_assert_eq!(
            report.claimed,
            out.iter().filter(|o| !o.ips.is_empty()).count()
        );
        let again = b.reconcile(Snapshot::new(&lbs(&written), no_ns()));
        prop_assert_eq!(summary(&out), summary(&again));
        for o in &again {
            if !o.ips.is_empty() {
                prop_assert!(!o.changed && o.events.is_empty(), "{:?}", o);
            }
        }
        let usage = |x: &Allocator| {
            x.pools.iter().map(|p| x.pool_usage(&p.name)).collect::<Vec<_>>()
        };
        prop_assert_eq!(usage(&a), usage(&b));
        check_invariants(&b, &again)?;
    }

    /// Addresses that Services not ours list are never handed out, and a
    /// Service of ours keeps (or claims) one only when it is the older.
    #[test]
    fn addresses_other_services_list_are_in_use(
        pools in prop::collection::vec(pool_spec(), 3),
        specs in prop::collection::vec(svc_spec(), 0..16),
        listing in prop::collection::vec(
            (0..8u8, 0..4u8, prop::collection::vec(0..9u8, 1..3)),
            0..10,
        ),
        dropped in prop::collection::vec(any::<bool>(), 10),
    ) {
        let mut a = Allocator::new();
        a.set_pools(&build_pools(&pools));
        let mut services = build_services(&specs);
        services.extend(
            listing
                .iter()
                .enumerate()
                .map(|(i, (created, which, ips))| listing_service(i, *created, *which, ips)),
        );
        let compact = lbs(&services);
        let report = a.restore(Snapshot::new(&compact, no_ns()));
        let _ = report;
        let out = a.reconcile(Snapshot::new(&compact, no_ns()));
        check_invariants(&a, &out)?;
        check_others_respected(&a, &compact)?;

        // Some of the listing Services go away: what they listed is free
        // again, and the invariants hold.
        let next: Vec<Service> = write_all(&services, &out)
            .into_iter()
            .filter(|s| {
                let name = s.metadata.name.as_deref().unwrap_or_default();
                !name
                    .strip_prefix('l')
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| dropped[n])
            })
            .collect();
        let compact = lbs(&next);
        let out = a.reconcile(Snapshot::new(&compact, no_ns()));
        check_invariants(&a, &out)?;
        check_others_respected(&a, &compact)?;
        for s in &compact {
            if a.handles(s) {
                continue;
            }
            for addr in s.status_ips() {
                prop_assert!(a.other_holders_of(addr).any(|k| *k == s.key));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The per-pool verdicts agree with allocation: a new Service is pending
    /// exactly when every pool refuses it, and otherwise gets what the first
    /// pool giving IPs gives (for PreferDualStack: the first giving two).
    #[test]
    fn pool_verdicts_agree_with_allocation(
        pools in prop::collection::vec(pool_spec(), 3),
        specs in prop::collection::vec(svc_spec(), 0..16),
        probe in svc_spec(),
    ) {
        let mut a = Allocator::new();
        a.set_pools(&build_pools(&pools));
        let services = build_services(&specs);
        a.reconcile(Snapshot::new(&lbs(&services), no_ns()));
        let probe = LbService::from(&build_service(999, &probe));
        let verdicts = a.pool_verdicts(&probe, None);
        let outcome = a.clone().allocate(&probe, &BTreeMap::new());
        let view = ServiceView::read(&probe, None);
        match (&outcome.state, view.request()) {
            (OutcomeState::Pending(PendingReason::InvalidRequest(_)), _)
            | (OutcomeState::Released(_), _) => prop_assert!(verdicts.is_empty()),
            (OutcomeState::Pending(reason), _) => prop_assert!(
                verdicts.iter().all(|v| v.result.is_err()),
                "pending ({}) but {:?}", reason, verdicts
            ),
            (OutcomeState::Assigned, Ok(req)) => {
                let giving = || verdicts.iter().filter_map(|v| Some((&v.pool, v.result.as_ref().ok()?)));
                let pick = match req.policy {
                    super::service::Policy::PreferDual if req.ips().is_empty() => giving()
                        .find(|(_, ips)| ips.len() == 2)
                        .or_else(|| giving().next()),
                    _ => giving().next(),
                };
                prop_assert_eq!(
                    pick.map(|(p, ips)| (p.clone(), ips.clone())),
                    Some((outcome.pool.clone().unwrap_or_default(), outcome.ips.clone())),
                    "{:?}", verdicts
                );
            }
            (OutcomeState::Assigned, Err(e)) => prop_assert!(false, "assigned with a bad request: {}", e),
        }
    }
}

/// A Service sharing by key `k` or `j` (or not at all) on some of four ports,
/// with a Cluster or a Local backend.
fn sharer(i: usize, key: u8, ports: u8, local: Option<bool>) -> Service {
    let mut b = svc("ns", &format!("s{i:03}")).created(i as i64);
    match key {
        1 => b = b.share("k"),
        2 => b = b.share("j"),
        _ => {}
    }
    let list: Vec<(i32, &str)> = [(80, "TCP"), (443, "TCP"), (53, "UDP"), (53, "TCP")]
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| ports & (1 << bit) != 0)
        .map(|(_, p)| p)
        .collect();
    b = b.ports(&list);
    if let Some(sel) = local {
        b = b.local(&[("app", if sel { "a" } else { "b" })]);
    }
    b.0
}

fn sharer_spec() -> impl Strategy<Value = (u8, u8, Option<bool>)> {
    (
        prop::sample::select(vec![0u8, 1, 1, 1, 2]),
        0..16u8,
        prop::option::weighted(0.2, any::<bool>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The sharing index finds exactly what checking every address and every
    /// holder finds, after allocations and releases in any order.
    #[test]
    fn sharing_index_agrees_with_a_full_scan(
        avoid_buggy in any::<bool>(),
        specs in prop::collection::vec(sharer_spec(), 0..60),
        gone in prop::collection::vec(any::<bool>(), 60),
        probes in prop::collection::vec(sharer_spec(), 1..6),
        listed in prop::collection::vec((0..16u8, any::<bool>(), any::<bool>()), 0..8),
    ) {
        let mut p = pool("p", &["192.0.2.250-192.0.3.5", "198.51.100.0/28", "2001:db8::/124"]);
        p.spec.avoid_buggy_ips = avoid_buggy;
        let mut a = Allocator::new();
        a.set_pools(&[p]);
        let services: Vec<Service> = specs
            .iter()
            .enumerate()
            .map(|(i, (k, ports, local))| sharer(i, *k, *ports, *local))
            .collect();
        // Services not ours listing addresses, before or after the others
        // allocate: nothing new goes to those addresses.
        let others: Vec<(Service, bool)> = listed
            .iter()
            .enumerate()
            .map(|(i, (n, v6, early))| {
                let addr = if *v6 { format!("2001:db8::{n:x}") } else { format!("198.51.100.{n}") };
                let s = svc("ns", &format!("other{i}")).type_("NodePort").status(&[&addr]);
                (s.0, *early)
            })
            .collect();
        for (s, _) in others.iter().filter(|(_, early)| *early) {
            a.allocate(&LbService::from(s), &BTreeMap::new());
        }
        for s in &services {
            a.allocate(&LbService::from(s), &BTreeMap::new());
        }
        for (s, _) in others.iter().filter(|(_, early)| !*early) {
            a.allocate(&LbService::from(s), &BTreeMap::new());
        }
        for (s, g) in services.iter().zip(&gone) {
            if *g {
                a.release(&ServiceKey::of(s));
            }
        }
        let out: Vec<ServiceOutcome> = Vec::new();
        check_invariants(&a, &out)?;
        for (i, (k, ports, local)) in probes.iter().enumerate() {
            let probe = sharer(900 + i, *k, *ports, *local);
            let probe = LbService::from(&probe);
            let view = ServiceView::read(&probe, None);
            let share = &view.request().expect("valid request").share;
            for f in [Family::V4, Family::V6] {
                prop_assert_eq!(
                    a.find_for_test(0, f, share),
                    a.find_by_scan(0, f, share),
                    "family {}", f
                );
            }
        }
    }
}

#[test]
fn requestable_addresses_parse() {
    for r in REQUESTABLE {
        for part in r.split(',') {
            ip(part);
        }
    }
}
