//! The allocator's state and its core decisions: which IPs are held by whom,
//! whether IPs a Service has are still valid for it, and which IPs a Service
//! gets next. The public operations built on these are in `reconcile.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_config::addr::{AddrCount, Family, from_u128, to_u128};
use ferrolb_config::crd::IPAddressPool;

use super::events::{Invalid, PendingReason, Unusable};
use super::pool_index::{NsLabels, PoolIndex, fam_idx};
use super::service::{Created, NotOurs, Policy, Request, ServiceKey, ServiceView};
use super::sharing::{KeyIndex, ShareInfo, Slot};

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// IPs held by one Service, all from one pool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    /// In the Service's family order.
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) pool: Arc<str>,
    pub(crate) share: Arc<ShareInfo>,
}

/// What the allocator knows about a Service.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    Assigned(Record),
    /// Pending; the message of the last `AllocationFailed` Event sent (so the
    /// same reason is not reported again and again).
    Pending(String),
    /// Its status IPs were refused by `restore`; the reason is reported with
    /// its next allocation.
    Lost(Box<Invalid>),
}

/// A Service this allocator does not handle that has addresses in its
/// `status.loadBalancer.ingress`: another controller (or a person) gave them,
/// so they are in use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Other {
    pub(crate) why: NotOurs,
    pub(crate) created: Created,
    pub(crate) ips: Vec<IpAddr>,
}

/// The pure, sans-IO IP allocator. See the [module docs](super).
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    /// The `loadBalancerClass` handled; None handles classless Services.
    pub(crate) class: Option<String>,
    /// Sorted by name, names unique.
    pub(crate) pools: Vec<PoolIndex>,
    /// Indices into `pools` in the order pools are tried (rule 3).
    pub(crate) candidate_order: Vec<usize>,
    /// Hashed for speed; anything ordered sorts explicitly.
    pub(crate) services: HashMap<ServiceKey, Known>,
    /// Per family: address number -> Services holding it.
    holders: [BTreeMap<u128, Slot>; 2],
    /// Sharing key -> per family, the addresses held under that key, indexed
    /// by backend and port.
    keyed: HashMap<String, [KeyIndex; 2]>,
    /// Services not ours with addresses in their status, by key.
    pub(crate) others: HashMap<ServiceKey, Other>,
    /// Per family: address number -> the Services not ours listing it (sorted).
    others_at: [BTreeMap<u128, Vec<ServiceKey>>; 2],
}

/// Why IPs could not be placed in a pool the Service may use.
enum Locate {
    NotCovered(IpAddr),
    Unusable {
        ip: IpAddr,
        pool: String,
        why: Unusable,
    },
    Split(Vec<String>),
}

impl Allocator {
    /// An allocator for Services without a `loadBalancerClass`.
    pub fn new() -> Allocator {
        Allocator::default()
    }

    /// An allocator for Services whose `spec.loadBalancerClass` is `class`
    /// (classless Services are then left alone).
    pub fn with_load_balancer_class(class: impl Into<String>) -> Allocator {
        Allocator {
            class: Some(class.into()),
            ..Allocator::default()
        }
    }

    /// Replaces the pools. Assignments are kept as they are; the next
    /// [`reconcile`](Allocator::reconcile) or [`allocate`](Allocator::allocate)
    /// re-checks each Service against the new pools (rule 7). Pools are keyed
    /// by `metadata.name` (the first of duplicate names wins); entries that do
    /// not parse are skipped. Cost: pools' entries plus the assignments inside them.
    pub fn set_pools(&mut self, pools: &[IPAddressPool]) {
        let mut compiled: Vec<PoolIndex> = pools.iter().map(PoolIndex::compile).collect();
        compiled.sort_by(|a, b| a.name.cmp(&b.name));
        compiled.dedup_by(|b, a| a.name == b.name);
        for pool in &mut compiled {
            for f in FAMILIES {
                let ranges: Vec<(u128, u128)> =
                    pool.space(f).ranges().map(|(lo, hi, _)| (lo, hi)).collect();
                for (lo, hi) in ranges {
                    for n in self.holders[fam_idx(f)].range(lo..=hi).map(|(n, _)| *n) {
                        pool.space_mut(f).mark(n);
                    }
                    for n in self.others_at[fam_idx(f)].range(lo..=hi).map(|(n, _)| *n) {
                        pool.space_mut(f).mark(n);
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..compiled.len()).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&compiled[a], &compiled[b]);
            (pa.priority.is_none(), pa.priority, &pa.name).cmp(&(
                pb.priority.is_none(),
                pb.priority,
                &pb.name,
            ))
        });
        self.pools = compiled;
        self.candidate_order = order;
    }

    /// Addresses of `pool` in use: (IPv4 count, IPv6 count); zeros for an
    /// unknown pool. A shared IP counts once; an address in the status of a
    /// Service this allocator does not handle counts too. Feeds
    /// [`ferrolb_config::report::pool_status`].
    pub fn pool_usage(&self, pool: &str) -> (u64, AddrCount) {
        self.pool_by_name(pool)
            .map(|p| self.pools[p].usage())
            .unwrap_or((0, AddrCount::ZERO))
    }

    /// The IPs and pool a Service holds, if any.
    pub fn assignment(&self, service: &ServiceKey) -> Option<(&[IpAddr], &str)> {
        match self.services.get(service)? {
            Known::Assigned(r) => Some((&r.ips, &*r.pool)),
            _ => None,
        }
    }

    /// Every assignment, ordered by Service key.
    pub fn assignments(&self) -> Vec<(&ServiceKey, &[IpAddr], &str)> {
        let mut all: Vec<(&ServiceKey, &[IpAddr], &str)> = self
            .services
            .iter()
            .filter_map(|(k, s)| match s {
                Known::Assigned(r) => Some((k, r.ips.as_slice(), &*r.pool)),
                _ => None,
            })
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// The Services holding `ip`, in the order they got it.
    pub fn holders_of(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.holders[fam_idx(Family::of(ip))]
            .get(&to_u128(ip))
            .into_iter()
            .flat_map(|slot| slot.holders().map(|(k, _)| k))
    }

    /// The Services this allocator does not handle (another
    /// loadBalancerClass, another type, being deleted) that have `ip` in
    /// their `status.loadBalancer.ingress`, by key. While there is one, `ip`
    /// is in use: it is not handed out and counts in its pool's usage.
    pub fn other_holders_of(&self, ip: &IpAddr) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.others_at[fam_idx(Family::of(ip))]
            .get(&to_u128(ip))
            .into_iter()
            .flatten()
    }

    /// Whether a Service this allocator does not handle lists address `n`.
    fn listed_by_other(&self, f: Family, n: u128) -> bool {
        self.others_at[fam_idx(f)].contains_key(&n)
    }

    /// The first Service not ours listing `ip` (by key), with why it is not
    /// ours. With `competing_with`, only a LoadBalancer of another class
    /// (which another controller serves) that is older than that Service
    /// (creationTimestamp, then namespace/name): the one a Service of ours
    /// already holding `ip` gives it up to. The other controller decides the
    /// same way, so exactly one of the two moves. A Service of another type,
    /// or being deleted, is served by nobody: what its status still lists
    /// (until whoever released it clears it) is not given out again, but a
    /// Service of ours holding it (a former sharer) keeps it.
    pub(crate) fn other_holder(
        &self,
        ip: &IpAddr,
        competing_with: Option<&ServiceView<'_>>,
    ) -> Option<(ServiceKey, NotOurs)> {
        self.other_holders_of(ip).find_map(|k| {
            let other = self.others.get(k)?;
            let counts = match competing_with {
                None => true,
                Some(v) => {
                    matches!(other.why, NotOurs::OtherClass(_))
                        && (other.created, k) < v.order_key()
                }
            };
            counts.then(|| (k.clone(), other.why.clone()))
        })
    }

    /// Records what a Service not ours lists in its status (`None`: nothing,
    /// or it is ours or gone), marking its addresses as used.
    pub(crate) fn set_other(&mut self, key: &ServiceKey, other: Option<Other>) {
        if self.others.get(key) == other.as_ref() {
            return;
        }
        if let Some(old) = self.others.remove(key) {
            for ip in &old.ips {
                let (f, n) = (Family::of(ip), to_u128(ip));
                let map = &mut self.others_at[fam_idx(f)];
                let Some(keys) = map.get_mut(&n) else {
                    continue;
                };
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    map.remove(&n);
                    if !self.holders[fam_idx(f)].contains_key(&n) {
                        for pool in &mut self.pools {
                            pool.space_mut(f).unmark(n);
                        }
                    }
                }
            }
        }
        let Some(other) = other else {
            return;
        };
        for ip in &other.ips {
            let (f, n) = (Family::of(ip), to_u128(ip));
            let keys = self.others_at[fam_idx(f)].entry(n).or_default();
            if let Err(at) = keys.binary_search(key) {
                keys.insert(at, key.clone());
            }
            for pool in &mut self.pools {
                pool.space_mut(f).mark(n);
            }
        }
        self.others.insert(key.clone(), other);
    }

    /// What a Service not ours lists in its status, if anything (an
    /// unparsable status lists nothing).
    pub(crate) fn other_of(view: &ServiceView<'_>) -> Option<Other> {
        let why = view.not_ours.clone()?;
        let ips = view.status().ok().filter(|ips| !ips.is_empty())?;
        Some(Other {
            why,
            created: view.order_key().0,
            ips: ips.to_vec(),
        })
    }

    /// Replaces every listing of Services not ours by those in `views` (the
    /// not-ours Services of a snapshot, each key once). Cost: one look at
    /// each view, plus the listings that changed.
    pub(crate) fn set_others<'v>(&mut self, views: impl Iterator<Item = &'v ServiceView<'v>>) {
        let now: HashMap<&ServiceKey, Other> = views
            .filter_map(|v| Some((v.key, Allocator::other_of(v)?)))
            .collect();
        let gone: Vec<ServiceKey> = self
            .others
            .keys()
            .filter(|k| !now.contains_key(k))
            .cloned()
            .collect();
        for key in gone {
            self.set_other(&key, None);
        }
        for (key, other) in now {
            self.set_other(key, Some(other));
        }
    }

    pub(crate) fn pool_by_name(&self, name: &str) -> Option<usize> {
        self.pools.binary_search_by(|p| (*p.name).cmp(name)).ok()
    }

    pub(crate) fn record(&self, key: &ServiceKey) -> Option<&Record> {
        match self.services.get(key)? {
            Known::Assigned(r) => Some(r),
            _ => None,
        }
    }

    /// Makes `rec` the Service's assignment, indexing its IPs.
    pub(crate) fn commit(&mut self, key: &ServiceKey, rec: Record) {
        for ip in &rec.ips {
            let (f, n) = (Family::of(ip), to_u128(ip));
            let first = match self.holders[fam_idx(f)].entry(n) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(Slot::new(key.clone(), rec.share.clone()));
                    true
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    o.get_mut().add(key.clone(), rec.share.clone());
                    false
                }
            };
            if first {
                for pool in &mut self.pools {
                    pool.space_mut(f).mark(n);
                }
            }
            if let Some(k) = &rec.share.key {
                let index = match self.keyed.get_mut(k.as_str()) {
                    Some(i) => i,
                    None => self.keyed.entry(k.clone()).or_default(),
                };
                index[fam_idx(f)].add(n, &rec.share, first);
            }
        }
        self.services.insert(key.clone(), Known::Assigned(rec));
    }

    /// Removes the Service's assignment (its state is left unset) and returns it.
    pub(crate) fn uncommit(&mut self, key: &ServiceKey) -> Option<Record> {
        if !matches!(self.services.get(key), Some(Known::Assigned(_))) {
            return None;
        }
        let Some(Known::Assigned(rec)) = self.services.remove(key) else {
            return None;
        };
        for ip in &rec.ips {
            let (f, n) = (Family::of(ip), to_u128(ip));
            let map = &mut self.holders[fam_idx(f)];
            let Some(slot) = map.get_mut(&n) else {
                continue;
            };
            let emptied = slot.remove(key);
            if emptied {
                map.remove(&n);
                if !self.others_at[fam_idx(f)].contains_key(&n) {
                    for pool in &mut self.pools {
                        pool.space_mut(f).unmark(n);
                    }
                }
            }
            if let Some(k) = &rec.share.key
                && let Some(index) = self.keyed.get_mut(k.as_str())
            {
                index[fam_idx(f)].remove(n, &rec.share, map.get(&n));
                if index.iter().all(KeyIndex::is_empty) {
                    self.keyed.remove(k.as_str());
                }
            }
        }
        Some(rec)
    }

    /// The first Service other than `me` holding `ip` that `share` may not share
    /// it with, and why. Cost: `share`'s ports, unless there is a conflict.
    pub(crate) fn conflict(
        &self,
        me: &ServiceKey,
        share: &ShareInfo,
        ip: &IpAddr,
    ) -> Option<(ServiceKey, String)> {
        let slot = self.holders[fam_idx(Family::of(ip))].get(&to_u128(ip))?;
        // When `me` holds the address itself, its own ports do not count.
        let mine = self
            .record(me)
            .filter(|r| r.ips.contains(ip))
            .map(|r| &*r.share);
        if slot.admits(share, mine) {
            return None;
        }
        slot.refusal(me, share)
    }

    /// Why a Service with a sharing key cannot join any address of pool `p`
    /// and family `f` already held under the same key: the first such
    /// address (by address) whose holders refuse `share`, with the holder
    /// and the rule. None when no address of the pool is held under the key.
    pub(crate) fn sharing_refusal(
        &self,
        p: usize,
        f: Family,
        me: &ServiceKey,
        share: &ShareInfo,
    ) -> Option<(ServiceKey, String)> {
        let key = share.key.as_ref()?;
        let space = self.pools[p].space(f);
        for (lo, hi, _) in space.ranges() {
            for (n, slot) in self.holders[fam_idx(f)].range(lo..=hi) {
                if space.ordinal_of(*n).is_none()
                    || !slot.holders().any(|(_, s)| s.key.as_ref() == Some(key))
                {
                    continue;
                }
                if let Some(refusal) = slot.refusal(me, share) {
                    return Some(refusal);
                }
                if let Some(other) = self.other_holders_of(&from_u128(f, *n)).next() {
                    return Some((
                        other.clone(),
                        "its address is also in the status of a Service this controller does not handle".to_string(),
                    ));
                }
            }
        }
        None
    }

    /// The pool where all `ips` lie and that this Service may use (ignoring
    /// autoAssign, and ignoring other holders). `hint` (the pool the IPs came
    /// from) is tried first.
    fn locate(
        &self,
        view: &ServiceView<'_>,
        req: &Request,
        ns: &NsLabels<'_>,
        ips: &[IpAddr],
        hint: Option<&str>,
    ) -> Result<usize, Locate> {
        let first = ips[0];
        let hint = hint.and_then(|h| self.pool_by_name(h));
        let covering = hint
            .into_iter()
            .chain((0..self.pools.len()).filter(|&p| Some(p) != hint))
            .filter(|&p| self.pools[p].covers(&first));
        let mut first_err = None;
        for p in covering {
            let pool = &self.pools[p];
            let err = if let Some(other) = ips.iter().find(|ip| !pool.covers(ip)) {
                let mut pools = vec![pool.name.to_string()];
                match self.pools.iter().find(|q| q.covers(other)) {
                    Some(q) => {
                        pools.push(q.name.to_string());
                        Locate::Split(pools)
                    }
                    None => Locate::NotCovered(*other),
                }
            } else if let Some(wanted) = req.pool().filter(|w| *w != &*pool.name) {
                Locate::Unusable {
                    ip: first,
                    pool: pool.name.to_string(),
                    why: Unusable::OtherPoolRequested(wanted.to_string()),
                }
            } else if !pool.admits(ns, view.labels()) {
                Locate::Unusable {
                    ip: first,
                    pool: pool.name.to_string(),
                    why: Unusable::NotAdmitted,
                }
            } else if let Some(bad) = ips.iter().find(|ip| !pool.holds(ip)) {
                Locate::Unusable {
                    ip: *bad,
                    pool: pool.name.to_string(),
                    why: Unusable::Buggy,
                }
            } else {
                return Ok(p);
            };
            first_err.get_or_insert(err);
        }
        Err(first_err.unwrap_or(Locate::NotCovered(first)))
    }

    /// Whether IPs the Service holds, or has in its status, are valid for it
    /// (rule 7); the record to keep if so. `prev_pool` is the pool they were
    /// assigned from, when known.
    pub(crate) fn check_existing(
        &self,
        view: &ServiceView<'_>,
        req: &Request,
        ns: &NsLabels<'_>,
        ips: &[IpAddr],
        prev_pool: Option<&str>,
        restoring: bool,
    ) -> Result<Record, Invalid> {
        let mut ips = ips.to_vec();
        req.in_family_order(&mut ips);
        let fams: Vec<Family> = ips.iter().map(Family::of).collect();
        let (f0, f1) = (req.families[0], req.families.get(1).copied());
        // Requested IPs were checked against the policy when parsed; only
        // equality with the request matters then.
        let fits = !req.ips().is_empty()
            || match req.policy {
                Policy::Single => fams == [f0],
                Policy::PreferDual => fams == [f0] || f1.is_some_and(|f1| fams == [f0, f1]),
                Policy::RequireDual => fams.len() == 2 && fams[0] != fams[1],
            };
        if !fits {
            let wants = match req.policy {
                Policy::Single => format!("one {f0} address"),
                Policy::PreferDual => format!(
                    "an {f0} address, and an {} address where a pool has both",
                    f1.unwrap_or(f0)
                ),
                Policy::RequireDual => "one IPv4 and one IPv6 address".to_string(),
            };
            return Err(Invalid::Families(format!(
                "the Service wants {wants} (ipFamilyPolicy {})",
                req.policy
            )));
        }
        if !req.ips().is_empty() && req.ips() != ips.as_slice() {
            return Err(Invalid::NotRequested {
                requested: req.ips().to_vec(),
            });
        }
        let p = self
            .locate(view, req, ns, &ips, prev_pool)
            .map_err(|e| match e {
                Locate::NotCovered(ip) => match prev_pool {
                    Some(pool) if self.pool_by_name(pool).is_none() => Invalid::PoolDeleted {
                        pool: pool.to_string(),
                    },
                    Some(pool) => Invalid::LeftPool {
                        ip,
                        pool: pool.to_string(),
                    },
                    None => Invalid::NotInAnyPool { ip },
                },
                Locate::Unusable { ip, pool, why } => Invalid::Unusable { ip, pool, why },
                Locate::Split(pools) => Invalid::Split { pools },
            })?;
        for ip in &ips {
            if let Some((holder, why)) = self.conflict(view.key, &req.share, ip) {
                return Err(Invalid::InUse {
                    ip: *ip,
                    holder,
                    why,
                    older: restoring,
                });
            }
            // Listed by a Service not ours as well: the older one keeps it
            // (the other controller decides the same way, so one moves).
            if let Some((holder, why)) = self.other_holder(ip, Some(view)) {
                return Err(Invalid::HeldByOther {
                    ip: *ip,
                    holder,
                    why,
                });
            }
        }
        Ok(Record {
            ips,
            pool: self.pools[p].name.clone(),
            share: req.share.clone(),
        })
    }

    /// The lowest address of `pool` and family `f` that is free, or held only
    /// by Services this one may share with (rule 4 and 6). Cost: one lookup
    /// for the lowest free address; with a sharing key, a walk over the
    /// addresses held under the key that jumps over whole runs using one of
    /// the Service's ports (so not one step per Service under the key).
    pub(crate) fn find(&self, p: usize, f: Family, share: &ShareInfo) -> Option<IpAddr> {
        let space = self.pools[p].space(f);
        if share.key.is_none() && space.is_full() {
            return None;
        }
        let free = space.lowest_free();
        if let Some(index) = share
            .key
            .as_ref()
            .and_then(|k| self.keyed.get(k.as_str()))
            .map(|sets| &sets[fam_idx(f)])
            .filter(|s| !s.is_empty())
        {
            // Addresses held under the same key, in the pool's order, below the
            // lowest free one: the first one compatible with all holders wins.
            for (lo, hi, first_ord) in space.ranges() {
                if free.is_some_and(|(fo, _)| first_ord > fo) {
                    break;
                }
                let found = index.first_joinable(share, lo, hi, |n| {
                    match space.ordinal_of(n) {
                        // Held, but not one the pool hands out (avoidBuggyIPs).
                        None => Some(false),
                        // Past the lowest free address: that one wins.
                        Some(ord) if free.is_some_and(|(fo, _)| ord > fo) => None,
                        // Also listed by a Service not ours: not shareable.
                        Some(_) if self.listed_by_other(f, n) => Some(false),
                        Some(_) => Some(true),
                    }
                });
                match found {
                    Some(Some(n)) => return Some(from_u128(f, n)),
                    Some(None) => {}
                    None => break,
                }
            }
        }
        free.map(|(_, n)| from_u128(f, n))
    }

    /// [`find`](Allocator::find) done the slow, obvious way (every ordinal in
    /// turn, every holder's rules): the reference the index is checked against.
    #[cfg(test)]
    pub(crate) fn find_by_scan(&self, p: usize, f: Family, share: &ShareInfo) -> Option<IpAddr> {
        let space = self.pools[p].space(f);
        let mut ord = 0u128;
        while let Some(n) = space.address_of(ord) {
            match self.holders[fam_idx(f)].get(&n) {
                _ if self.listed_by_other(f, n) => {}
                None => return Some(from_u128(f, n)),
                Some(slot) if slot.holders().all(|(k, s)| share.refusal(k, s).is_none()) => {
                    return Some(from_u128(f, n));
                }
                Some(_) => {}
            }
            ord += 1;
        }
        None
    }

    /// [`find`](Allocator::find) for tests.
    #[cfg(test)]
    pub(crate) fn find_for_test(&self, p: usize, f: Family, share: &ShareInfo) -> Option<IpAddr> {
        self.find(p, f, share)
    }

    /// Picks IPs from the first of `cands` that can satisfy the Service's families
    /// (rule 5). `explicit`: the pool was requested by annotation.
    fn choose(
        &self,
        req: &Request,
        cands: &[usize],
        explicit: bool,
    ) -> Result<Record, PendingReason> {
        let done = |p: usize, ips: Vec<IpAddr>| Record {
            ips,
            pool: self.pools[p].name.clone(),
            share: req.share.clone(),
        };
        let f0 = req.families[0];
        let lacks = |f: Family| {
            if explicit {
                PendingReason::PoolLacksFamily {
                    pool: self.pools[cands[0]].name.to_string(),
                    family: f,
                }
            } else {
                PendingReason::NoPoolWithFamily { family: f }
            }
        };
        let single = |f: Family| -> Result<Record, PendingReason> {
            let with = || {
                cands
                    .iter()
                    .copied()
                    .filter(move |&p| self.pools[p].space(f).has_addresses())
            };
            if with().next().is_none() {
                return Err(lacks(f));
            }
            for p in with() {
                if let Some(ip) = self.find(p, f, &req.share) {
                    return Ok(done(p, vec![ip]));
                }
            }
            Err(PendingReason::Exhausted(
                with()
                    .map(|p| (self.pools[p].name.to_string(), f))
                    .collect(),
            ))
        };
        match req.policy {
            Policy::Single => single(f0),
            Policy::PreferDual => {
                let f1 = req.families[1];
                for &p in cands.iter().filter(|&&p| self.pools[p].is_dual_stack()) {
                    if let (Some(a), Some(b)) =
                        (self.find(p, f0, &req.share), self.find(p, f1, &req.share))
                    {
                        return Ok(done(p, vec![a, b]));
                    }
                }
                single(f0)
            }
            Policy::RequireDual => {
                let f1 = req.families[1];
                let dual: Vec<usize> = cands
                    .iter()
                    .copied()
                    .filter(|&p| self.pools[p].is_dual_stack())
                    .collect();
                if dual.is_empty() {
                    if explicit {
                        let missing = if self.pools[cands[0]].space(f0).has_addresses() {
                            f1
                        } else {
                            f0
                        };
                        return Err(lacks(missing));
                    }
                    return Err(PendingReason::NoDualStackPool);
                }
                let mut exhausted = Vec::new();
                for &p in &dual {
                    let a = self.find(p, f0, &req.share);
                    let b = self.find(p, f1, &req.share);
                    match (a, b) {
                        (Some(a), Some(b)) => return Ok(done(p, vec![a, b])),
                        (a, b) => {
                            if a.is_none() {
                                exhausted.push((self.pools[p].name.to_string(), f0));
                            }
                            if b.is_none() {
                                exhausted.push((self.pools[p].name.to_string(), f1));
                            }
                        }
                    }
                }
                Err(PendingReason::Exhausted(exhausted))
            }
        }
    }

    /// New IPs for a Service that holds none (rules 1-6).
    pub(crate) fn find_new(
        &self,
        view: &ServiceView<'_>,
        req: &Request,
        ns: &NsLabels<'_>,
    ) -> Result<Record, PendingReason> {
        if !req.ips().is_empty() {
            let p = self
                .locate(view, req, ns, req.ips(), None)
                .map_err(|e| match e {
                    Locate::NotCovered(ip) => PendingReason::RequestedIpNotInPool { ip },
                    Locate::Unusable { ip, pool, why } => {
                        PendingReason::RequestedIpUnusable { ip, pool, why }
                    }
                    Locate::Split(pools) => PendingReason::RequestedIpsSplit { pools },
                })?;
            for ip in req.ips() {
                if let Some((holder, why)) = self.conflict(view.key, &req.share, ip) {
                    return Err(PendingReason::RequestedIpInUse {
                        ip: *ip,
                        holder,
                        why,
                    });
                }
                if let Some((holder, why)) = self.other_holder(ip, None) {
                    return Err(PendingReason::RequestedIpHeldByOther {
                        ip: *ip,
                        holder,
                        why,
                    });
                }
            }
            return Ok(Record {
                ips: req.ips().to_vec(),
                pool: self.pools[p].name.clone(),
                share: req.share.clone(),
            });
        }
        if let Some(name) = req.pool() {
            let p = self
                .pool_by_name(name)
                .ok_or_else(|| PendingReason::UnknownPool {
                    pool: name.to_string(),
                })?;
            if !self.pools[p].admits(ns, view.labels()) {
                return Err(PendingReason::PoolDoesNotAdmit {
                    pool: name.to_string(),
                });
            }
            return self.choose(req, &[p], true);
        }
        if self.pools.is_empty() {
            return Err(PendingReason::NoPools);
        }
        let cands: Vec<usize> = self
            .candidate_order
            .iter()
            .copied()
            .filter(|&p| {
                let pool = &self.pools[p];
                pool.auto_assign && pool.admits(ns, view.labels())
            })
            .collect();
        if cands.is_empty() {
            return Err(PendingReason::NoPoolAdmits {
                namespace: view.key.namespace.to_string(),
            });
        }
        self.choose(req, &cands, false)
    }
}
