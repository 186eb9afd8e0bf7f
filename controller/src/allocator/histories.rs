//! History-based property tests (issue #19): seeded random histories of pool
//! edits, Service creates, edits and deletes, sharing, requested IPs, other
//! controllers' status writes and controller restarts, driven the way the
//! controller drives the allocator (every round: `set_pools`, then `restore`
//! after a start, then `reconcile`; the outcomes that changed are written
//! back onto the Services), and checked after every step against a model of
//! the rules written independently of the allocator's code:
//!
//! - (a) no address is held by two Services that may not share it: the
//!   allocator's own rule ([`ShareInfo::refusal`](super::sharing)) and a
//!   restatement of MetalLB's (same non-empty `allow-shared-ip` key, no
//!   port+protocol pair in common with TCP for an unset protocol, both
//!   `externalTrafficPolicy: Cluster` or both `Local` with equal selectors);
//!   and an address another controller's Service lists is kept by ours only
//!   when ours already had it and, against another class, is the older;
//! - (b) no Service moves while nothing touches it, its pool or its
//!   addresses: across live rounds and across restarts (a new allocator
//!   restored only from what a restarted controller reads: the pools and the
//!   Services with the status and annotation written for them);
//! - (c) every Service that could get an address has one: for each pending
//!   Service `pool_verdicts` gives a reason for every pool, and a brute-force
//!   scan finds no pool admitting it with free or shareable addresses that
//!   fit its request;
//! - (d) each pool's usage (and the status built from it) equals a recount
//!   of the addresses the outcomes assign and other Services list.
//!
//! History `i` uses seed `base + i`, so a failure is replayed from the seed it
//! prints; the steps printed are the failing history shrunk to a minimal list.
//!
//! The normal test command runs [`QUICK_HISTORIES`] histories. The long mode:
//!
//! ```text
//! FERROLB_ALLOC_HISTORIES=1000000 cargo test --release -p ferrolb-controller --lib \
//!     allocator::histories::long -- --ignored --nocapture
//! ```
//!
//! with `FERROLB_ALLOC_HISTORY_BASE` (first seed), `FERROLB_ALLOC_HISTORIES`
//! (count, default 1,000,000) and `FERROLB_ALLOC_HISTORY_SECS` (stop starting
//! new histories after this many seconds; the summary says how many ran).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_config::addr::{AddrCount, AddrRange, Family, from_u128, to_u128};
use ferrolb_config::crd::{IPAddressPool, ServiceAllocation};
use ferrolb_config::report::pool_status;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::tests::{S, pool, selector, svc};
use super::*;

/// Histories the normal test command runs (debug build).
const QUICK_HISTORIES: u64 = 200;
/// The first seed when `FERROLB_ALLOC_HISTORY_BASE` is not set.
const DEFAULT_BASE: u64 = 19_000_000;
/// Seeds that once failed, replayed by the normal test command (the first
/// run of 1,000,000 histories, seeds 19,000,000 to 19,999,999, found none).
const REGRESSION_SEEDS: &[u64] = &[];

// ------------------------------------------------------------------ inputs

const POOL_NAMES: [&str; 4] = ["p-a", "p-b", "p-c", "p-d"];

/// Each pool's possible `addresses` (documentation ranges only; pools never
/// overlap, entries of one pool neither, as validation requires), from
/// small to larger: editing the shape shrinks or grows a pool.
const SHAPES: [&[&[&str]]; 4] = [
    &[
        &["192.0.2.1/32"],
        &["192.0.2.0/31"],
        &["192.0.2.0/30"],
        &["192.0.2.0/29"],
        &["192.0.2.254-192.0.2.255", "192.0.2.0/30"],
    ],
    &[
        &["198.51.100.0/31", "2001:db8::/127"],
        &["198.51.100.0/30", "2001:db8::/126"],
        &["198.51.100.0/30"],
        &["2001:db8::/127"],
        &["2001:db8::1/128", "198.51.100.255/32", "198.51.100.1/32"],
    ],
    &[
        &["2001:db8:1::/127"],
        &["2001:db8:1::/126", "203.0.113.0/31"],
        &["2001:db8:1::/128", "203.0.113.0/30"],
    ],
    &[
        &["203.0.113.128/31"],
        &["203.0.113.128/30", "2001:db8:2::/127"],
        &["203.0.113.255/32", "2001:db8:2::/128"],
    ],
];

/// Values of a requested-IPs annotation or of `spec.loadBalancerIP`.
const REQUESTABLE: [&str; 17] = [
    "192.0.2.1",
    "192.0.2.3",
    "192.0.2.0",
    "192.0.2.255",
    "192.0.2.77",
    "198.51.100.1",
    "198.51.100.255",
    "2001:db8::1",
    "198.51.100.0,2001:db8::",
    "2001:db8::1, 198.51.100.1",
    "2001:db8:1::1",
    "203.0.113.1",
    "203.0.113.129",
    "2001:db8:2::1",
    "192.0.2.1,2001:db8::1",
    "203.0.113.0, 2001:db8:1::",
    "not-an-ip",
];

/// Addresses another controller may write in the status of its Services.
const LISTABLE: [&str; 10] = [
    "192.0.2.0",
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.200",
    "198.51.100.0",
    "198.51.100.1",
    "2001:db8::",
    "2001:db8::1",
    "2001:db8:1::",
    "203.0.113.128",
];

/// Ports a Service may have: (port, protocol; None is TCP).
const PORTS: [(i32, Option<&str>); 6] = [
    (80, Some("TCP")),
    (80, None),
    (443, Some("TCP")),
    (53, Some("UDP")),
    (53, Some("TCP")),
    (80, Some("SCTP")),
];

/// Sharing keys; the blank one counts as no key.
const KEYS: [&str; 3] = ["k", "j", "  "];

const SLOTS: usize = 10;
const OTHER_CLASS: &str = "example.com/other";

// ------------------------------------------------------------------ model

/// Which Services `serviceAllocation` admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    All,
    /// `namespaces: [ns1]`.
    OnlyNs1,
    /// `namespaceSelectors: tier=gold` (ns0 has that label).
    GoldNamespaces,
    /// `serviceSelectors: app=web`.
    WebServices,
}

#[derive(Debug, Clone, PartialEq)]
struct PoolModel {
    shape: u8,
    priority: Option<i32>,
    avoid_buggy: bool,
    auto_assign: bool,
    admit: Admit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ours,
    OtherClass,
    NodePort,
}

#[derive(Debug, Clone, PartialEq)]
struct SvcModel {
    ns: u8,
    created: i64,
    kind: Kind,
    /// 0 unset, 1 SingleStack, 2 PreferDualStack, 3 RequireDualStack.
    policy: u8,
    /// 0 unset, 1 [IPv4], 2 [IPv6], 3 [IPv6, IPv4], 4 [IPv4, IPv6].
    families: u8,
    /// (annotation name, key) indices.
    share: Option<(u8, u8)>,
    /// Bit set over [`PORTS`].
    ports: u8,
    /// `externalTrafficPolicy: Local` with selector app=a (0), app=b (1) or
    /// none (2); None: Cluster (with selector app=a, which sharing ignores).
    local: Option<u8>,
    /// Requested IPs by annotation: (annotation name, [`REQUESTABLE`] index).
    ips_ann: Option<(u8, u8)>,
    /// `spec.loadBalancerIP` ([`REQUESTABLE`] index).
    lb_ip: Option<u8>,
    /// Requested pool: (annotation name, pool index; 4 names no pool).
    pool_req: Option<(u8, u8)>,
    /// Label app=web.
    web: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Pool(u8, Option<PoolModel>),
    Create(u8, SvcModel),
    /// A new spec; namespace and creation time stay.
    Edit(u8, SvcModel),
    Delete(u8),
    /// Another controller (or a person) writes the Service's status.
    WriteStatus(u8, Vec<u8>),
    /// The controller stops; these steps happen while it is down; it starts.
    Restart(Vec<Step>),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Pool(p, m) => write!(f, "pool {} := {m:?}", POOL_NAMES[*p as usize]),
            Step::Create(s, m) => write!(f, "create s{s} {m:?}"),
            Step::Edit(s, m) => write!(f, "edit s{s} {m:?}"),
            Step::Delete(s) => write!(f, "delete s{s}"),
            Step::WriteStatus(s, l) => write!(
                f,
                "status of s{s} := {:?}",
                l.iter().map(|i| LISTABLE[*i as usize]).collect::<Vec<_>>()
            ),
            Step::Restart(inner) => {
                write!(f, "restart; while down: [")?;
                for (i, s) in inner.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{s}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A history: its steps, and whether single-Service watch events are also
/// fed to [`Allocator::allocate`] / [`Allocator::release`] before each round.
#[derive(Debug, Clone)]
struct History {
    events: bool,
    steps: Vec<Step>,
}

// ------------------------------------------------------------- generation

struct Gen {
    rng: TestRng,
    pools: [Option<PoolModel>; 4],
    svcs: [Option<SvcModel>; SLOTS],
    clock: i64,
}

fn rng_for(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(b"ferrolb#");
    bytes[16..24].copy_from_slice(b"issue-19");
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

impl Gen {
    fn below(&mut self, n: u8) -> u8 {
        self.rng.random_range(0..n)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pool_model(&mut self, slot: usize) -> PoolModel {
        PoolModel {
            shape: self.below(SHAPES[slot].len() as u8),
            priority: self
                .chance(0.4)
                .then(|| i32::from(self.rng.random_range(0..3u8))),
            avoid_buggy: self.chance(0.3),
            auto_assign: self.chance(0.8),
            admit: self.admit(),
        }
    }

    fn admit(&mut self) -> Admit {
        if self.chance(0.7) {
            return Admit::All;
        }
        [Admit::OnlyNs1, Admit::GoldNamespaces, Admit::WebServices][self.below(3) as usize]
    }

    fn edit_pool(&mut self, slot: usize, mut m: PoolModel) -> PoolModel {
        match self.below(5) {
            0 => {
                // Shrink or grow.
                let n = SHAPES[slot].len() as u8;
                m.shape = (m.shape + 1 + self.below(n - 1)) % n;
            }
            1 => {
                m.priority = match m.priority {
                    Some(_) if self.chance(0.5) => None,
                    _ => Some(i32::from(self.below(3))),
                }
            }
            2 => m.avoid_buggy = !m.avoid_buggy,
            3 => m.auto_assign = !m.auto_assign,
            _ => m.admit = self.admit(),
        }
        m
    }

    fn svc_model(&mut self, created: i64) -> SvcModel {
        let kind = match self.below(20) {
            0 => Kind::OtherClass,
            1 => Kind::NodePort,
            _ => Kind::Ours,
        };
        let mut m = SvcModel {
            ns: self.below(2),
            created,
            kind,
            policy: 0,
            families: 0,
            share: None,
            ports: 0,
            local: None,
            ips_ann: None,
            lb_ip: None,
            pool_req: None,
            web: self.chance(0.3),
        };
        self.set_policy(&mut m);
        if self.chance(0.5) {
            m.families = 1 + self.below(4);
        }
        if self.chance(0.6) {
            m.share = Some(self.share());
        }
        m.ports = self.ports();
        if self.chance(0.25) {
            m.local = Some(self.below(3));
        }
        if self.chance(0.2) {
            m.ips_ann = Some((self.below(3), self.below(REQUESTABLE.len() as u8)));
        }
        if self.chance(0.1) {
            m.lb_ip = Some(self.below(REQUESTABLE.len() as u8));
        }
        if self.chance(0.15) {
            m.pool_req = Some((self.below(3), self.below(5)));
        }
        m
    }

    fn set_policy(&mut self, m: &mut SvcModel) {
        m.policy = match self.below(20) {
            0..10 => 0,
            10..14 => 1,
            14..17 => 2,
            _ => 3,
        };
    }

    fn share(&mut self) -> (u8, u8) {
        let key = match self.below(10) {
            0..6 => 0,
            6..9 => 1,
            _ => 2,
        };
        (self.below(3), key)
    }

    fn ports(&mut self) -> u8 {
        let mut bits = 0;
        for b in 0..PORTS.len() {
            if self.chance(0.3) {
                bits |= 1 << b;
            }
        }
        bits
    }

    fn edit_svc(&mut self, mut m: SvcModel) -> SvcModel {
        for _ in 0..1 + self.below(2) {
            match self.below(11) {
                0 | 1 => m.ports = self.ports(),
                2 => m.share = (m.share.is_none() || self.chance(0.3)).then(|| self.share()),
                3 => {
                    m.local = if self.chance(0.5) {
                        Some(self.below(3))
                    } else {
                        None
                    }
                }
                4 => {
                    m.ips_ann = self
                        .chance(0.6)
                        .then(|| (self.below(3), self.below(REQUESTABLE.len() as u8)))
                }
                5 => {
                    m.lb_ip = self
                        .chance(0.5)
                        .then(|| self.below(REQUESTABLE.len() as u8))
                }
                6 => m.pool_req = self.chance(0.6).then(|| (self.below(3), self.below(5))),
                7 => self.set_policy(&mut m),
                8 => m.families = self.below(5),
                9 => {
                    m.kind = match (m.kind, self.below(3)) {
                        (Kind::Ours, 0) => Kind::NodePort,
                        (Kind::Ours, _) => Kind::OtherClass,
                        _ => Kind::Ours,
                    }
                }
                _ => m.web = !m.web,
            }
        }
        m
    }

    /// One step (no restart when `down`: the steps of a restart).
    fn step(&mut self, down: bool) -> Step {
        let occupied: Vec<u8> = (0..SLOTS as u8)
            .filter(|s| self.svcs[*s as usize].is_some())
            .collect();
        let free: Vec<u8> = (0..SLOTS as u8)
            .filter(|s| self.svcs[*s as usize].is_none())
            .collect();
        let not_ours: Vec<u8> = occupied
            .iter()
            .copied()
            .filter(|s| self.svcs[*s as usize].as_ref().unwrap().kind != Kind::Ours)
            .collect();
        let roll = self.below(100);
        let step = match roll {
            0..15 => {
                let slot = self.below(4) as usize;
                let next = match self.pools[slot].clone() {
                    None => Some(self.pool_model(slot)),
                    Some(_) if self.chance(0.2) => None,
                    Some(m) => Some(self.edit_pool(slot, m)),
                };
                Step::Pool(slot as u8, next)
            }
            15..50 if !free.is_empty() => {
                let slot = free[self.below(free.len() as u8) as usize];
                // Coarse creation times: some Services are created in the same second.
                self.clock += i64::from(self.below(2));
                Step::Create(slot, self.svc_model(self.clock))
            }
            15..75 if !occupied.is_empty() => {
                let slot = occupied[self.below(occupied.len() as u8) as usize];
                let m = self.svcs[slot as usize].clone().unwrap();
                Step::Edit(slot, self.edit_svc(m))
            }
            75..86 if !occupied.is_empty() => {
                Step::Delete(occupied[self.below(occupied.len() as u8) as usize])
            }
            86..91 if !not_ours.is_empty() => {
                let slot = not_ours[self.below(not_ours.len() as u8) as usize];
                let n = self.below(3);
                let list = (0..n).map(|_| self.below(LISTABLE.len() as u8)).collect();
                Step::WriteStatus(slot, list)
            }
            91.. if !down => {
                let n = if self.chance(0.5) {
                    0
                } else {
                    1 + self.below(3)
                };
                Step::Restart((0..n).map(|_| self.step(true)).collect())
            }
            _ if !free.is_empty() => {
                let slot = free[self.below(free.len() as u8) as usize];
                Step::Create(slot, self.svc_model(self.clock))
            }
            _ => Step::Delete(occupied[self.below(occupied.len() as u8) as usize]),
        };
        if !matches!(step, Step::Restart(_)) {
            shadow_apply(&mut self.pools, &mut self.svcs, &step);
        }
        step
    }
}

/// What a step does to pools and Service specs (statuses aside).
fn shadow_apply(
    pools: &mut [Option<PoolModel>; 4],
    svcs: &mut [Option<SvcModel>; SLOTS],
    step: &Step,
) {
    match step {
        Step::Pool(p, m) => pools[*p as usize] = m.clone(),
        Step::Create(s, m) => {
            let slot = &mut svcs[*s as usize];
            if slot.is_none() {
                *slot = Some(m.clone());
            }
        }
        Step::Edit(s, m) => {
            if let Some(old) = svcs[*s as usize].as_mut() {
                *old = SvcModel {
                    ns: old.ns,
                    created: old.created,
                    ..m.clone()
                };
            }
        }
        Step::Delete(s) => svcs[*s as usize] = None,
        Step::WriteStatus(..) => {}
        Step::Restart(inner) => {
            for s in inner {
                shadow_apply(pools, svcs, s);
            }
        }
    }
}

fn generate(seed: u64) -> History {
    let mut g = Gen {
        rng: rng_for(seed),
        pools: Default::default(),
        svcs: Default::default(),
        clock: 0,
    };
    let events = g.chance(0.3);
    // Start with a pool or two, so most histories allocate from the first step.
    let mut steps = Vec::new();
    for slot in 0..4 {
        if g.chance(0.5) {
            let m = g.pool_model(slot);
            g.pools[slot] = Some(m.clone());
            steps.push(Step::Pool(slot as u8, Some(m)));
        }
    }
    let n = g.rng.random_range(10..=40usize);
    while steps.len() < n {
        let s = g.step(false);
        steps.push(s);
    }
    History { events, steps }
}

// --------------------------------------------- the rules, restated for tests

fn ns_name(ns: u8) -> &'static str {
    ["ns0", "ns1"][ns as usize]
}

fn namespace_labels() -> NamespaceLabels {
    [
        ("ns0".to_string(), [("tier".into(), "gold".into())].into()),
        ("ns1".to_string(), BTreeMap::new()),
    ]
    .into()
}

fn key_of(slot: u8, m: &SvcModel) -> ServiceKey {
    ServiceKey::new(ns_name(m.ns), format!("s{slot}"))
}

fn slot_of(key: &ServiceKey) -> Option<u8> {
    key.name.strip_prefix('s')?.parse().ok()
}

/// A pool's addresses that it may hand out, in the order written.
#[derive(Debug, Clone)]
struct PoolAddrs {
    usable: Vec<IpAddr>,
}

fn pool_addrs(slot: usize, m: &PoolModel) -> PoolAddrs {
    let mut usable = Vec::new();
    for entry in SHAPES[slot][m.shape as usize] {
        let r = AddrRange::parse(entry).expect("test shapes parse");
        let f = r.family();
        for n in to_u128(&r.first())..=to_u128(&r.last()) {
            let ip = from_u128(f, n);
            let buggy = f == Family::V4 && matches!(n & 0xff, 0 | 255);
            if !(m.avoid_buggy && buggy) {
                usable.push(ip);
            }
        }
    }
    PoolAddrs { usable }
}

fn build_pool(slot: usize, m: &PoolModel) -> IPAddressPool {
    let mut p = pool(POOL_NAMES[slot], SHAPES[slot][m.shape as usize]);
    p.spec.avoid_buggy_ips = m.avoid_buggy;
    p.spec.auto_assign = m.auto_assign;
    if m.priority.is_some() || m.admit != Admit::All {
        let mut a = ServiceAllocation {
            priority: m.priority,
            ..Default::default()
        };
        match m.admit {
            Admit::All => {}
            Admit::OnlyNs1 => a.namespaces = vec!["ns1".into()],
            Admit::GoldNamespaces => a.namespace_selectors = vec![selector("tier", "gold")],
            Admit::WebServices => a.service_selectors = vec![selector("app", "web")],
        }
        p.spec.service_allocation = Some(a);
    }
    p
}

fn admits(p: &PoolModel, m: &SvcModel) -> bool {
    match p.admit {
        Admit::All => true,
        Admit::OnlyNs1 => m.ns == 1,
        Admit::GoldNamespaces => m.ns == 0,
        Admit::WebServices => m.web,
    }
}

fn other_family(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

/// What a valid Service asks for.
#[derive(Debug, Clone)]
struct Want {
    /// 1 SingleStack, 2 PreferDualStack, 3 RequireDualStack.
    policy: u8,
    families: Vec<Family>,
    /// Requested IPs, in family order.
    ips: Vec<IpAddr>,
    /// Requested pool.
    pool: Option<&'static str>,
}

const POOL_REQUESTS: [&str; 5] = ["p-a", "p-b", "p-c", "p-d", "no-such-pool"];

/// The request, or None when it is malformed (the rules of `service.rs`,
/// restated: requested IPs from the first annotation, else
/// `spec.loadBalancerIP`; at most one per family; SingleStack takes one of
/// its family; RequireDualStack needs both or none).
fn want(m: &SvcModel) -> Option<Want> {
    let raw = m
        .ips_ann
        .map(|(_, v)| v)
        .or(m.lb_ip)
        .map(|v| REQUESTABLE[v as usize]);
    let mut ips = Vec::new();
    if let Some(raw) = raw {
        for part in raw.split(',') {
            ips.push(part.trim().parse::<IpAddr>().ok()?);
        }
    }
    if ips.len() > 2 || (ips.len() == 2 && Family::of(&ips[0]) == Family::of(&ips[1])) {
        return None;
    }
    let declared: &[Family] = match m.families {
        0 => &[],
        1 => &[Family::V4],
        2 => &[Family::V6],
        3 => &[Family::V6, Family::V4],
        _ => &[Family::V4, Family::V6],
    };
    let policy = m.policy.max(1);
    let families = if policy == 1 {
        vec![
            declared
                .first()
                .copied()
                .or(ips.first().map(Family::of))
                .unwrap_or(Family::V4),
        ]
    } else {
        let f0 = declared.first().copied().unwrap_or(Family::V4);
        vec![f0, other_family(f0)]
    };
    if !ips.is_empty() {
        if policy == 1 && (ips.len() == 2 || Family::of(&ips[0]) != families[0]) {
            return None;
        }
        if policy == 3 && ips.len() != 2 {
            return None;
        }
    }
    ips.sort_by_key(|ip| families.iter().position(|f| *f == Family::of(ip)));
    Some(Want {
        policy,
        families,
        ips,
        pool: m.pool_req.map(|(_, p)| POOL_REQUESTS[p as usize]),
    })
}

/// Where a Service's traffic goes, as far as sharing goes.
#[derive(Debug, PartialEq)]
enum Backend {
    Cluster,
    Local(Option<u8>),
}

fn share_key(m: &SvcModel) -> Option<&'static str> {
    m.share
        .map(|(_, k)| KEYS[k as usize].trim())
        .filter(|k| !k.is_empty())
}

fn port_set(m: &SvcModel) -> BTreeSet<(i32, &'static str)> {
    PORTS
        .iter()
        .enumerate()
        .filter(|(b, _)| m.ports & (1 << b) != 0)
        .map(|(_, (port, proto))| (*port, proto.unwrap_or("TCP")))
        .collect()
}

fn backend(m: &SvcModel) -> Backend {
    match m.local {
        None => Backend::Cluster,
        Some(2) => Backend::Local(None),
        Some(s) => Backend::Local(Some(s)),
    }
}

/// MetalLB's sharing rule, restated: both have the same non-empty key, no
/// port+protocol pair in common, and the same backend (both Cluster, or both
/// Local with equal selectors).
fn may_share(a: &SvcModel, b: &SvcModel) -> bool {
    match (share_key(a), share_key(b)) {
        (Some(x), Some(y)) => {
            x == y && port_set(a).is_disjoint(&port_set(b)) && backend(a) == backend(b)
        }
        _ => false,
    }
}

fn build_service(slot: u8, e: &Entry) -> Service {
    const IPS_ANN: [&str; 3] = LOAD_BALANCER_IPS_ANNOTATIONS;
    let m = &e.m;
    let mut b: S = svc(ns_name(m.ns), &format!("s{slot}")).created(m.created);
    match m.kind {
        Kind::Ours => {}
        Kind::OtherClass => b = b.class(OTHER_CLASS),
        Kind::NodePort => b = b.type_("NodePort"),
    }
    match m.policy {
        1 => b = b.policy("SingleStack"),
        2 => b = b.policy("PreferDualStack"),
        3 => b = b.policy("RequireDualStack"),
        _ => {}
    }
    match m.families {
        1 => b = b.families(&["IPv4"]),
        2 => b = b.families(&["IPv6"]),
        3 => b = b.families(&["IPv6", "IPv4"]),
        4 => b = b.families(&["IPv4", "IPv6"]),
        _ => {}
    }
    if let Some((name, key)) = m.share {
        b = b.ann(
            ALLOW_SHARED_IP_ANNOTATIONS[name as usize],
            KEYS[key as usize],
        );
    }
    match m.local {
        Some(sel) => b = b.local(&[("app", ["a", "b", "-"][sel as usize])][..(sel < 2) as usize]),
        None => {
            b.0.spec.as_mut().expect("built with a spec").selector =
                Some([("app".to_string(), "a".to_string())].into());
        }
    }
    if let Some((name, v)) = m.ips_ann {
        b = b.ann(IPS_ANN[name as usize], REQUESTABLE[v as usize]);
    }
    if let Some(v) = m.lb_ip {
        b = b.lb_ip(REQUESTABLE[v as usize]);
    }
    if let Some((name, p)) = m.pool_req {
        b = b.ann(
            ADDRESS_POOL_ANNOTATIONS[name as usize],
            POOL_REQUESTS[p as usize],
        );
    }
    if m.web {
        b = b.label("app", "web");
    }
    if !e.status.is_empty() {
        let list: Vec<String> = e.status.iter().map(ToString::to_string).collect();
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        b = b.status(&refs);
    }
    if let Some(p) = &e.pool_ann {
        b = b.ann(ALLOCATED_FROM_POOL_ANNOTATION, p);
    }
    let mut s = b.0;
    let ports: Vec<ServicePort> = PORTS
        .iter()
        .enumerate()
        .filter(|(bit, _)| m.ports & (1 << bit) != 0)
        .map(|(_, (port, proto))| ServicePort {
            port: *port,
            protocol: proto.map(str::to_string),
            ..Default::default()
        })
        .collect();
    if !ports.is_empty() {
        s.spec.as_mut().expect("built with a spec").ports = Some(ports);
    }
    s
}

// ---------------------------------------------------------------- running

#[derive(Debug, Clone)]
struct Entry {
    m: SvcModel,
    /// `status.loadBalancer.ingress`, as last written.
    status: Vec<IpAddr>,
    /// `ferrolb.io/ip-allocated-from-pool`, as last written.
    pool_ann: Option<String>,
    /// The compact form, built again after each change.
    lb: Option<Arc<LbService>>,
}

impl Entry {
    fn lb(&mut self, slot: u8) -> Arc<LbService> {
        if self.lb.is_none() {
            self.lb = Some(Arc::new(LbService::from(&build_service(slot, self))));
        }
        self.lb.clone().expect("just built")
    }

    fn write(&mut self, ips: &[IpAddr], pool: Option<&str>) {
        self.status = ips.to_vec();
        self.pool_ann = pool.map(str::to_string);
        self.lb = None;
    }
}

/// What the steps since the last round touched.
#[derive(Debug, Default)]
struct Touched {
    slots: BTreeSet<u8>,
    pools: BTreeSet<u8>,
}

/// Counts over a run, to show what the histories exercised.
#[derive(Debug, Default, Clone)]
struct Stats {
    histories: u64,
    steps: u64,
    rounds: u64,
    restarts: u64,
    pure_restarts: u64,
    event_calls: u64,
    assigned: u64,
    pending: u64,
    pending_checked_by_scan: u64,
    shared_addresses: u64,
    kept_across_restarts: u64,
    kept_across_rounds: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.histories += o.histories;
        self.steps += o.steps;
        self.rounds += o.rounds;
        self.restarts += o.restarts;
        self.pure_restarts += o.pure_restarts;
        self.event_calls += o.event_calls;
        self.assigned += o.assigned;
        self.pending += o.pending;
        self.pending_checked_by_scan += o.pending_checked_by_scan;
        self.shared_addresses += o.shared_addresses;
        self.kept_across_restarts += o.kept_across_restarts;
        self.kept_across_rounds += o.kept_across_rounds;
    }
}

struct Run {
    pools: [Option<PoolModel>; 4],
    pool_objs: Vec<IPAddressPool>,
    addrs: [Option<PoolAddrs>; 4],
    svcs: [Option<Entry>; SLOTS],
    alloc: Allocator,
    ns_labels: NamespaceLabels,
    /// After the last round: slot -> (IPs, pool).
    assigned: BTreeMap<u8, (Vec<IpAddr>, String)>,
    stats: Stats,
}

/// A failed check: where and what.
#[derive(Debug, Clone)]
struct Failure {
    step: usize,
    message: String,
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

impl Run {
    fn new() -> Run {
        Run {
            pools: Default::default(),
            pool_objs: Vec::new(),
            addrs: Default::default(),
            svcs: Default::default(),
            alloc: Allocator::new(),
            ns_labels: namespace_labels(),
            assigned: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    fn pools_changed(&mut self) {
        self.pool_objs = (0..4)
            .filter_map(|i| self.pools[i].as_ref().map(|m| build_pool(i, m)))
            .collect();
        self.addrs = std::array::from_fn(|i| self.pools[i].as_ref().map(|m| pool_addrs(i, m)));
    }

    /// Applies a step to the world; the slot a watch event would be about.
    fn apply(&mut self, step: &Step, touched: &mut Touched) -> Option<u8> {
        match step {
            Step::Pool(p, m) => {
                self.pools[*p as usize] = m.clone();
                touched.pools.insert(*p);
                self.pools_changed();
                None
            }
            Step::Create(s, m) => {
                let slot = &mut self.svcs[*s as usize];
                if slot.is_some() {
                    return None;
                }
                *slot = Some(Entry {
                    m: m.clone(),
                    status: Vec::new(),
                    pool_ann: None,
                    lb: None,
                });
                touched.slots.insert(*s);
                Some(*s)
            }
            Step::Edit(s, m) => {
                let e = self.svcs[*s as usize].as_mut()?;
                e.m = SvcModel {
                    ns: e.m.ns,
                    created: e.m.created,
                    ..m.clone()
                };
                e.lb = None;
                touched.slots.insert(*s);
                Some(*s)
            }
            Step::Delete(s) => {
                self.svcs[*s as usize].take()?;
                touched.slots.insert(*s);
                Some(*s)
            }
            Step::WriteStatus(s, list) => {
                let e = self.svcs[*s as usize].as_mut()?;
                e.status = list
                    .iter()
                    .map(|i| LISTABLE[*i as usize].parse().unwrap())
                    .collect();
                e.status.dedup();
                e.lb = None;
                touched.slots.insert(*s);
                Some(*s)
            }
            Step::Restart(_) => None,
        }
    }

    fn pool_index(name: &str) -> Option<usize> {
        POOL_NAMES.iter().position(|p| *p == name)
    }

    /// A watch event for one Service: `allocate` it (or `release` it when
    /// gone), as an event-driven controller would, and write the outcome.
    fn event(&mut self, slot: u8) -> Check {
        self.stats.event_calls += 1;
        let labels = self.ns_labels.clone();
        let Some(e) = self.svcs[slot as usize].as_mut() else {
            // Deleted: every namespace, as the key is not known any more.
            for ns in 0..2 {
                self.alloc
                    .release(&ServiceKey::new(ns_name(ns), format!("s{slot}")));
            }
            return self.check_holders();
        };
        self.alloc.set_pools(&self.pool_objs);
        let lb = e.lb(slot);
        let o = self
            .alloc
            .allocate(&lb, labels.get(ns_name(e.m.ns)).expect("known namespace"));
        if o.changed {
            e.write(&o.ips, o.pool.as_deref());
        }
        self.check_holders()
    }

    /// (a) after a single-Service decision: holders of each address may share.
    fn check_holders(&self) -> Check {
        let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
        for (key, ips, _) in self.alloc.assignments() {
            for ip in ips {
                by_ip.entry(*ip).or_default().push(key);
            }
        }
        for (ip, holders) in &by_ip {
            for (i, x) in holders.iter().enumerate() {
                for y in &holders[i + 1..] {
                    let (rx, ry) = (
                        self.alloc.record(x).expect("assigned"),
                        self.alloc.record(y).expect("assigned"),
                    );
                    ensure!(
                        rx.share.refusal(y, &ry.share).is_none(),
                        "{ip} held by {x} and {y}, which may not share (allocator's rule)"
                    );
                    let model = |k: &ServiceKey| {
                        let s = slot_of(k)?;
                        let e = self.svcs[s as usize].as_ref()?;
                        (key_of(s, &e.m) == *k).then_some(&e.m)
                    };
                    if let (Some(mx), Some(my)) = (model(x), model(y)) {
                        ensure!(
                            may_share(mx, my),
                            "{ip} held by {x} and {y}, which may not share (restated rule)"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// One allocation round as the controller runs it, then every check,
    /// then the write-back. `restart`: a new allocator first.
    fn round(&mut self, touched: &Touched, restart: bool) -> Check {
        self.stats.rounds += 1;
        if restart {
            self.alloc = Allocator::new();
        }
        self.alloc.set_pools(&self.pool_objs);
        let mut services: Vec<Arc<LbService>> = Vec::new();
        for (slot, e) in self.svcs.iter_mut().enumerate() {
            if let Some(e) = e {
                services.push(e.lb(slot as u8));
            }
        }
        let snap = Snapshot::new(&services, &self.ns_labels);
        if restart {
            self.alloc.restore(snap);
        }
        let out = self.alloc.reconcile(snap);
        self.check_round(&out, touched, restart)?;
        // Write back what changed (a deleted Service is gone).
        let mut assigned = BTreeMap::new();
        for o in &out {
            let slot = slot_of(&o.service).ok_or("outcome for an unknown Service")?;
            if let OutcomeState::Assigned = o.state {
                assigned.insert(slot, (o.ips.clone(), o.pool.clone().unwrap_or_default()));
            }
            if o.changed
                && let Some(e) = self.svcs[slot as usize].as_mut()
            {
                e.write(&o.ips, o.pool.as_deref());
            }
        }
        self.assigned = assigned;
        Ok(())
    }

    fn check_round(&mut self, out: &[ServiceOutcome], touched: &Touched, restart: bool) -> Check {
        // Outcomes: one for each Service of ours, released ones for the rest.
        let mut mine: BTreeMap<u8, &ServiceOutcome> = BTreeMap::new();
        for o in out {
            let slot = slot_of(&o.service).ok_or_else(|| format!("unknown {}", o.service))?;
            let entry = self.svcs[slot as usize].as_ref();
            let ours = entry.is_some_and(|e| e.m.kind == Kind::Ours);
            match &o.state {
                OutcomeState::Released(_) => {
                    ensure!(!ours, "{} is ours but was released: {o:?}", o.service);
                    ensure!(
                        o.ips.is_empty() && o.pool.is_none(),
                        "released with IPs: {o:?}"
                    );
                }
                _ => {
                    ensure!(ours, "outcome for {}, which is not ours: {o:?}", o.service);
                    ensure!(
                        mine.insert(slot, o).is_none(),
                        "two outcomes for {}",
                        o.service
                    );
                }
            }
        }
        for (slot, e) in self.svcs.iter().enumerate() {
            if let Some(e) = e
                && e.m.kind == Kind::Ours
            {
                ensure!(
                    mine.contains_key(&(slot as u8)),
                    "no outcome for s{slot}, which is ours"
                );
            }
        }

        // What Services not ours list in their status (as read this round).
        let mut listed: BTreeMap<IpAddr, Vec<u8>> = BTreeMap::new();
        for (slot, e) in self.svcs.iter().enumerate() {
            if let Some(e) = e
                && e.m.kind != Kind::Ours
            {
                for ip in &e.status {
                    listed.entry(*ip).or_default().push(slot as u8);
                }
            }
        }

        // Each outcome on its own: consistent, and valid for the Service.
        let mut holders: BTreeMap<IpAddr, Vec<u8>> = BTreeMap::new();
        for (&slot, o) in &mine {
            let e = self.svcs[slot as usize].as_ref().expect("checked above");
            let key = key_of(slot, &e.m);
            let mut have = e.status.clone();
            have.sort();
            let mut ips = o.ips.clone();
            ips.sort();
            ensure!(
                o.changed == (have != ips || e.pool_ann.as_deref() != o.pool.as_deref()),
                "s{slot}: changed is {} but status {:?} / pool {:?} and outcome {:?} / {:?}",
                o.changed,
                e.status,
                e.pool_ann,
                o.ips,
                o.pool
            );
            let w = want(&e.m);
            match &o.state {
                OutcomeState::Assigned => {
                    self.stats.assigned += 1;
                    let (a_ips, a_pool) = self
                        .alloc
                        .assignment(&key)
                        .ok_or_else(|| format!("s{slot} assigned but the allocator has nothing"))?;
                    ensure!(
                        a_ips == o.ips.as_slice() && Some(a_pool) == o.pool.as_deref(),
                        "s{slot}: outcome {:?} but allocator {a_ips:?} {a_pool}",
                        o
                    );
                    let w = w.ok_or_else(|| format!("s{slot} assigned with a bad request"))?;
                    self.check_assignment(slot, &e.m, &w, o)?;
                    for ip in &o.ips {
                        holders.entry(*ip).or_default().push(slot);
                    }
                }
                OutcomeState::Pending(reason) => {
                    self.stats.pending += 1;
                    ensure!(
                        o.ips.is_empty() && o.pool.is_none(),
                        "pending with IPs: {o:?}"
                    );
                    ensure!(
                        self.alloc.assignment(&key).is_none(),
                        "s{slot} pending but the allocator has an assignment"
                    );
                    ensure!(
                        w.is_none() == matches!(reason, PendingReason::InvalidRequest(_)),
                        "s{slot}: pending for {reason} but the restated rules say the request is {}",
                        if w.is_some() { "valid" } else { "malformed" }
                    );
                }
                OutcomeState::Released(_) => unreachable!("filtered above"),
            }
        }

        // (a) no address held by two Services that may not share it, and
        // addresses other Services list are respected.
        for (ip, hs) in &holders {
            if hs.len() > 1 {
                self.stats.shared_addresses += 1;
            }
            for (i, x) in hs.iter().enumerate() {
                let mx = &self.svcs[*x as usize].as_ref().unwrap().m;
                for y in &hs[i + 1..] {
                    let my = &self.svcs[*y as usize].as_ref().unwrap().m;
                    ensure!(
                        may_share(mx, my),
                        "{ip} held by s{x} and s{y}, which may not share (restated rule)"
                    );
                    let (kx, ky) = (key_of(*x, mx), key_of(*y, my));
                    let (rx, ry) = (
                        self.alloc.record(&kx).unwrap(),
                        self.alloc.record(&ky).unwrap(),
                    );
                    if let Some(why) = rx.share.refusal(&ky, &ry.share) {
                        return Err(format!(
                            "{ip} held by s{x} and s{y}, refused by the allocator's rule: {why}"
                        ));
                    }
                }
                for l in listed.get(ip).into_iter().flatten() {
                    let ml = &self.svcs[*l as usize].as_ref().unwrap().m;
                    let had = self.svcs[*x as usize].as_ref().unwrap().status.contains(ip);
                    ensure!(
                        had,
                        "s{x} was given {ip}, which s{l} (not ours) lists in its status"
                    );
                    if ml.kind == Kind::OtherClass {
                        ensure!(
                            (mx.created, key_of(*x, mx)) < (ml.created, key_of(*l, ml)),
                            "s{x} keeps {ip}, which the older s{l} of another class lists"
                        );
                    }
                }
            }
        }
        self.check_holders()?;

        // (b) nothing moves that nothing touched.
        for (slot, (ips, pool)) in &self.assigned {
            let untouched = !touched.slots.contains(slot)
                && Run::pool_index(pool).is_none_or(|p| !touched.pools.contains(&(p as u8)))
                && ips.iter().all(|ip| !listed.contains_key(ip))
                && touched.slots.iter().all(|t| {
                    self.svcs[*t as usize]
                        .as_ref()
                        .is_none_or(|e| ips.iter().all(|ip| !e.status.contains(ip)))
                });
            if !untouched || self.svcs[*slot as usize].is_none() {
                continue;
            }
            let o = mine
                .get(slot)
                .ok_or_else(|| format!("s{slot} held {ips:?} and has no outcome now"))?;
            ensure!(
                o.ips == *ips && o.pool.as_deref() == Some(pool.as_str()),
                "s{slot} moved from {ips:?} ({pool}) to {:?} ({:?}) {}, though nothing touched it, its pool or its addresses",
                o.ips,
                o.pool,
                if restart {
                    "across a restart"
                } else {
                    "in a live round"
                }
            );
            ensure!(
                !o.changed && o.events.is_empty(),
                "s{slot} kept {ips:?} but the outcome says changed={} events={:?}",
                o.changed,
                o.events
            );
            if restart {
                self.stats.kept_across_restarts += 1;
            } else {
                self.stats.kept_across_rounds += 1;
            }
        }

        // (c) every Service that could get an address has one.
        let npools = self.pools.iter().flatten().count();
        for (&slot, o) in &mine {
            if !o.is_pending() {
                continue;
            }
            let e = self.svcs[slot as usize].as_ref().unwrap();
            let Some(w) = want(&e.m) else { continue };
            let lb = e.lb.clone().expect("built this round");
            let verdicts = self
                .alloc
                .pool_verdicts(&lb, self.ns_labels.get(ns_name(e.m.ns)));
            ensure!(
                verdicts.len() == npools && verdicts.iter().all(|v| v.result.is_err()),
                "s{slot} is pending ({:?}) but the pool verdicts are {verdicts:?}",
                o.state
            );
            self.stats.pending_checked_by_scan += 1;
            if let Some(found) = self.could_get(slot, &e.m, &w, &holders, &listed) {
                return Err(format!(
                    "s{slot} is pending ({:?}) but could get {found}",
                    o.state
                ));
            }
        }

        // (d) pool usage equals a recount.
        for (i, name) in POOL_NAMES.iter().enumerate() {
            let (v4, v6) = self.alloc.pool_usage(name);
            let Some(pa) = &self.addrs[i] else {
                ensure!(
                    v4 == 0 && v6 == AddrCount::ZERO,
                    "pool {name} is gone but its usage is {v4}/{v6}"
                );
                continue;
            };
            let used: BTreeSet<IpAddr> = pa
                .usable
                .iter()
                .copied()
                .filter(|ip| holders.contains_key(ip) || listed.contains_key(ip))
                .collect();
            let count = |f: Family| used.iter().filter(|ip| Family::of(ip) == f).count() as u64;
            let cap = |f: Family| pa.usable.iter().filter(|ip| Family::of(ip) == f).count() as u64;
            let (r4, r6) = (count(Family::V4), count(Family::V6));
            ensure!(
                v4 == r4 && v6.to_u64() == Some(r6),
                "pool {name}: usage {v4} IPv4 / {v6} IPv6 but a recount gives {r4} / {r6} ({used:?})"
            );
            let obj = self
                .pool_objs
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .expect("present pool built");
            let st = pool_status(obj, v4, v6);
            ensure!(
                st.assigned_ipv4 == r4
                    && st.available_ipv4 == cap(Family::V4) - r4
                    && st.assigned_ipv6 == r6.to_string()
                    && st.available_ipv6 == (cap(Family::V6) - r6).to_string(),
                "pool {name}: status {st:?} but a recount gives {r4} of {} IPv4, {r6} of {} IPv6",
                cap(Family::V4),
                cap(Family::V6)
            );
        }
        Ok(())
    }

    /// An assignment checked against the restated rules: one pool that may
    /// hand out every IP and admits the Service, the requested pool and IPs,
    /// the families the policy allows; a new allocation without a request
    /// comes from an `autoAssign` pool.
    fn check_assignment(&self, slot: u8, m: &SvcModel, w: &Want, o: &ServiceOutcome) -> Check {
        let pool = o.pool.as_deref().unwrap_or_default();
        let p =
            Run::pool_index(pool).ok_or_else(|| format!("s{slot} given unknown pool {pool}"))?;
        let (pm, pa) = match (&self.pools[p], &self.addrs[p]) {
            (Some(pm), Some(pa)) => (pm, pa),
            _ => return Err(format!("s{slot} holds IPs from {pool}, which is gone")),
        };
        for ip in &o.ips {
            ensure!(
                pa.usable.contains(ip),
                "s{slot} holds {ip}, which pool {pool} may not hand out"
            );
        }
        ensure!(
            admits(pm, m),
            "s{slot} holds IPs of {pool}, which does not admit it"
        );
        if let Some(req) = w.pool {
            ensure!(
                req == pool,
                "s{slot} requested pool {req} but holds IPs of {pool}"
            );
        }
        let fams: Vec<Family> = o.ips.iter().map(Family::of).collect();
        if w.ips.is_empty() {
            let ok = match w.policy {
                1 => fams == w.families[..1],
                2 => fams == w.families[..1] || fams == w.families,
                _ => fams == w.families,
            };
            ensure!(
                ok,
                "s{slot} holds {:?}, which its family policy {} {:?} does not allow",
                o.ips,
                w.policy,
                w.families
            );
            let fresh = o.events.iter().any(|e| e.reason == IP_ALLOCATED);
            if fresh && w.pool.is_none() {
                ensure!(
                    pm.auto_assign,
                    "s{slot} was newly given {:?} from {pool}, whose autoAssign is false",
                    o.ips
                );
            }
        } else {
            ensure!(
                o.ips == w.ips,
                "s{slot} requested {:?} but holds {:?}",
                w.ips,
                o.ips
            );
        }
        Ok(())
    }

    /// Brute force: the addresses a pending Service could have now (free, or
    /// held only by Services it may share with, and listed by no Service not
    /// ours), if any.
    fn could_get(
        &self,
        slot: u8,
        m: &SvcModel,
        w: &Want,
        holders: &BTreeMap<IpAddr, Vec<u8>>,
        listed: &BTreeMap<IpAddr, Vec<u8>>,
    ) -> Option<String> {
        let available = |ip: &IpAddr| {
            !listed.contains_key(ip)
                && holders.get(ip).into_iter().flatten().all(|h| {
                    *h != slot && may_share(m, &self.svcs[*h as usize].as_ref().unwrap().m)
                })
        };
        if !w.ips.is_empty() {
            for (p, (pm, pa)) in self.pools.iter().zip(&self.addrs).enumerate() {
                let (Some(pm), Some(pa)) = (pm, pa) else {
                    continue;
                };
                let fits = w.ips.iter().all(|ip| pa.usable.contains(ip))
                    && admits(pm, m)
                    && w.pool.is_none_or(|r| r == POOL_NAMES[p]);
                if fits && w.ips.iter().all(available) {
                    return Some(format!("its requested {:?} in {}", w.ips, POOL_NAMES[p]));
                }
            }
            return None;
        }
        for (p, (pm, pa)) in self.pools.iter().zip(&self.addrs).enumerate() {
            let (Some(pm), Some(pa)) = (pm, pa) else {
                continue;
            };
            let candidate = admits(pm, m)
                && match w.pool {
                    Some(r) => r == POOL_NAMES[p],
                    None => pm.auto_assign,
                };
            if !candidate {
                continue;
            }
            let free = |f: Family| {
                pa.usable
                    .iter()
                    .find(|ip| Family::of(ip) == f && available(ip))
            };
            let needed: &[Family] = if w.policy == 3 {
                &w.families
            } else {
                &w.families[..1]
            };
            let found: Option<Vec<&IpAddr>> = needed.iter().map(|f| free(*f)).collect();
            if let Some(found) = found {
                return Some(format!("{found:?} from {}", POOL_NAMES[p]));
            }
        }
        None
    }
}

/// Runs a history; the first failed check, with the step it followed.
fn run_history(h: &History) -> Result<Stats, Failure> {
    let mut run = Run::new();
    for (i, step) in h.steps.iter().enumerate() {
        let fail = |message: String| Failure { step: i, message };
        let mut touched = Touched::default();
        match step {
            Step::Restart(inner) => {
                for s in inner {
                    run.apply(s, &mut touched);
                }
                run.stats.restarts += 1;
                if inner.is_empty() {
                    run.stats.pure_restarts += 1;
                }
                run.round(&touched, true).map_err(fail)?;
            }
            _ => {
                if let Some(slot) = run.apply(step, &mut touched)
                    && h.events
                {
                    run.event(slot).map_err(fail)?;
                }
                run.round(&touched, false).map_err(fail)?;
            }
        }
        run.stats.steps += 1;
    }
    run.stats.histories += 1;
    Ok(run.stats)
}

/// The failing history with as many steps (and steps of restarts) removed
/// as keep it failing. Bounded: each pass removes a step or ends.
fn shrink(mut h: History) -> (History, Failure) {
    let mut failure = run_history(&h).expect_err("shrinking a failing history");
    loop {
        let mut smaller = None;
        'search: for i in (0..h.steps.len()).rev() {
            let mut c = h.clone();
            c.steps.remove(i);
            if let Err(f) = run_history(&c) {
                smaller = Some((c, f));
                break;
            }
            if let Step::Restart(inner) = &h.steps[i] {
                for j in 0..inner.len() {
                    let mut c = h.clone();
                    if let Step::Restart(inner) = &mut c.steps[i] {
                        inner.remove(j);
                    }
                    if let Err(f) = run_history(&c) {
                        smaller = Some((c, f));
                        break 'search;
                    }
                }
            }
        }
        match smaller {
            Some((c, f)) => {
                h = c;
                failure = f;
            }
            None => return (h, failure),
        }
    }
}

fn report(seed: u64, h: History) -> String {
    let (h, f) = shrink(h);
    let mut s = format!(
        "history seed {seed} (events: {}) failed after step {}: {}\nminimal steps ({}):\n",
        h.events,
        f.step,
        f.message,
        h.steps.len()
    );
    for (i, step) in h.steps.iter().enumerate() {
        s.push_str(&format!("  {i:2}: {step}\n"));
    }
    s
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// Runs `count` histories from seed `base`, stopping early after
/// `max_time`; the failures (at most 10 reported) and the counts.
fn run_many(
    base: u64,
    count: u64,
    max_time: Option<Duration>,
    progress: bool,
) -> (Vec<String>, Stats, Duration) {
    let start = Instant::now();
    let mut total = Stats::default();
    let mut failures = Vec::new();
    let mut failed = 0u64;
    for i in 0..count {
        if max_time.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let seed = base + i;
        let h = generate(seed);
        match run_history(&h) {
            Ok(s) => total.add(&s),
            Err(_) => {
                failed += 1;
                if failures.len() < 10 {
                    let r = report(seed, h);
                    eprintln!("{r}");
                    failures.push(r);
                }
            }
        }
        if progress && (i + 1) % 50_000 == 0 {
            eprintln!(
                "histories: {} done ({failed} failed), {:.0} s",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    if failed > failures.len() as u64 {
        failures.push(format!("… {failed} failed histories in all"));
    }
    (failures, total, start.elapsed())
}

fn summary(base: u64, stats: &Stats, elapsed: Duration) -> String {
    format!(
        "{} histories (seeds {base}..{}), {} steps, {} rounds ({} restarts, {} with nothing changed while down), \
         {} single-Service events, {} assigned and {} pending outcomes checked ({} pending scanned), \
         {} shared addresses seen, {} Services kept across restarts and {} across live rounds, in {:.1} s",
        stats.histories,
        base + stats.histories,
        stats.steps,
        stats.rounds,
        stats.restarts,
        stats.pure_restarts,
        stats.event_calls,
        stats.assigned,
        stats.pending,
        stats.pending_checked_by_scan,
        stats.shared_addresses,
        stats.kept_across_restarts,
        stats.kept_across_rounds,
        elapsed.as_secs_f64()
    )
}

#[test]
fn histories_keep_the_invariants() {
    let base = env_u64("FERROLB_ALLOC_HISTORY_BASE").unwrap_or(DEFAULT_BASE);
    let (failures, stats, elapsed) = run_many(base, QUICK_HISTORIES, None, false);
    eprintln!("{}", summary(base, &stats, elapsed));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for &seed in REGRESSION_SEEDS {
        let h = generate(seed);
        if run_history(&h).is_err() {
            panic!("regression seed {}", report(seed, h));
        }
    }
    // The histories do exercise what they check.
    assert!(stats.shared_addresses > 0 && stats.kept_across_restarts > 0);
    assert!(stats.pending_checked_by_scan > 0 && stats.event_calls > 0);
}

#[test]
fn histories_are_reproducible_from_their_seed() {
    let a = generate(DEFAULT_BASE + 7);
    let b = generate(DEFAULT_BASE + 7);
    assert_eq!(a.steps, b.steps);
    assert_ne!(a.steps, generate(DEFAULT_BASE + 8).steps);
}

/// The checkers themselves: the brute-force scan finds a free address when
/// there is one and none when the pool is full, and the restated sharing
/// rule refuses what MetalLB's refuses (no key, a port+protocol in common,
/// an unset protocol being TCP, Cluster with Local, Local with other
/// selectors).
#[test]
fn the_checks_catch_violations() {
    let mut run = Run::new();
    let p = PoolModel {
        shape: 1,
        priority: None,
        avoid_buggy: false,
        auto_assign: true,
        admit: Admit::All,
    };
    let mut touched = Touched::default();
    run.apply(&Step::Pool(0, Some(p)), &mut touched);
    let m = |created| SvcModel {
        ns: 0,
        created,
        kind: Kind::Ours,
        policy: 0,
        families: 0,
        share: None,
        ports: 1,
        local: None,
        ips_ann: None,
        lb_ip: None,
        pool_req: None,
        web: false,
    };
    for s in 0..3u8 {
        run.apply(&Step::Create(s, m(i64::from(s))), &mut touched);
    }
    run.round(&touched, false).expect("a correct round");
    // 192.0.2.0/31 holds two: s2 is pending.
    assert_eq!(run.assigned.len(), 2);
    let holders: BTreeMap<IpAddr, Vec<u8>> = [
        ("192.0.2.0".parse().unwrap(), vec![0]),
        ("192.0.2.1".parse().unwrap(), vec![1]),
    ]
    .into();
    let listed = BTreeMap::new();
    let e2 = run.svcs[2].as_ref().unwrap();
    let w = want(&e2.m).unwrap();
    assert_eq!(run.could_get(2, &e2.m, &w, &holders, &listed), None);
    // Had s1 not been given its address, s2 could have it.
    let fewer: BTreeMap<IpAddr, Vec<u8>> = [("192.0.2.0".parse().unwrap(), vec![0])].into();
    assert!(run.could_get(2, &e2.m, &w, &fewer, &listed).is_some());
    // Two Services without a sharing key may not share.
    assert!(!may_share(&run.svcs[0].as_ref().unwrap().m, &e2.m));
    let mut a = m(0);
    a.share = Some((0, 0));
    let mut b = m(1);
    b.share = Some((1, 0));
    assert!(!may_share(&a, &b), "both use port 80/TCP");
    b.ports = 1 << 2;
    assert!(may_share(&a, &b));
    b.ports = 1 << 1;
    assert!(!may_share(&a, &b), "an unset protocol is TCP");
    b.ports = 1 << 5;
    assert!(may_share(&a, &b), "80/SCTP is not 80/TCP");
    b.local = Some(0);
    assert!(!may_share(&a, &b), "Cluster and Local");
    a.local = Some(1);
    assert!(!may_share(&a, &b), "Local with other selectors");
    a.local = Some(0);
    assert!(may_share(&a, &b));
}

/// The long mode (issue #19): many histories in a release build.
#[test]
#[ignore = "long: run with --release -- --ignored --nocapture"]
fn long() {
    let base = env_u64("FERROLB_ALLOC_HISTORY_BASE").unwrap_or(DEFAULT_BASE);
    let count = env_u64("FERROLB_ALLOC_HISTORIES").unwrap_or(1_000_000);
    let max_time = env_u64("FERROLB_ALLOC_HISTORY_SECS").map(Duration::from_secs);
    eprintln!(
        "running {count} histories from seed {base}{}",
        max_time.map_or(String::new(), |t| format!(
            ", for at most {} s",
            t.as_secs()
        ))
    );
    let (failures, stats, elapsed) = run_many(base, count, max_time, true);
    eprintln!("{}", summary(base, &stats, elapsed));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
