//! The allocator's public operations: restore after a restart, reconcile a
//! whole snapshot, allocate or release one Service.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use super::events::{Event, Invalid, PendingReason, ReleaseCause};
use super::pool_index::NsLabels;
use super::service::{LbService, ServiceKey, ServiceView};
use super::state::{Allocator, Known, Record};

/// IPs a Service holds and their pool.
type Holding = (Vec<IpAddr>, Arc<str>);
/// What a Service holds, or why it is pending.
type Held = Result<Holding, PendingReason>;

/// Labels of every Namespace, by name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// The label Kubernetes puts on every Namespace; added when missing (files in
/// standalone mode often lack it) so namespace selectors behave the same.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// [`NamespaceLabels`] from Namespace objects.
pub fn namespace_labels(namespaces: &[Namespace]) -> NamespaceLabels {
    namespaces
        .iter()
        .filter_map(|ns| {
            Some((
                ns.metadata.name.clone()?,
                ns.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Everything a whole-snapshot operation reads: all Services (any type; the
/// allocator picks its own) and the labels of their Namespaces. Pools are set
/// separately with [`Allocator::set_pools`]. The Services may be held in any
/// way that lends an [`LbService`] (`LbService` itself, `Arc<LbService>`, …).
#[derive(Debug)]
pub struct Snapshot<'a, S = LbService> {
    pub services: &'a [S],
    pub namespaces: &'a NamespaceLabels,
}

impl<S> Clone for Snapshot<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Snapshot<'_, S> {}

impl<'a, S: AsRef<LbService>> Snapshot<'a, S> {
    pub fn new(services: &'a [S], namespaces: &'a NamespaceLabels) -> Snapshot<'a, S> {
        Snapshot {
            services,
            namespaces,
        }
    }
}

/// Where a Service stands after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeState {
    /// It holds [`ServiceOutcome::ips`] from [`ServiceOutcome::pool`].
    Assigned,
    /// It holds no IP, for this reason (also sent as an `AllocationFailed` Event
    /// when the reason is new).
    Pending(PendingReason),
    /// It is no longer ours: its IPs were released. Clear
    /// `status.loadBalancer.ingress` and the `ferrolb.io/ip-allocated-from-pool`
    /// annotation when [`ServiceOutcome::changed`] is true.
    Released(ReleaseCause),
}

/// What to do with one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOutcome {
    pub service: ServiceKey,
    /// The IPs for `status.loadBalancer.ingress`, in the Service's family order;
    /// empty when pending or released.
    pub ips: Vec<IpAddr>,
    /// The pool they come from: the value of the
    /// `ferrolb.io/ip-allocated-from-pool` annotation. None without IPs.
    pub pool: Option<String>,
    /// Whether the Service object must be written: its status IPs differ from
    /// `ips` (as sets) or its pool annotation differs from `pool`. For a
    /// released Service: whether its status still holds released IPs or the
    /// annotation (always true for a deleted Service).
    pub changed: bool,
    pub state: OutcomeState,
    /// Events to record on the Service, in order.
    pub events: Vec<Event>,
}

impl ServiceOutcome {
    pub fn is_pending(&self) -> bool {
        matches!(self.state, OutcomeState::Pending(_))
    }
}

/// What [`Allocator::restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Services whose status IPs were claimed again.
    pub claimed: usize,
    /// Services whose status IPs were refused, with why (e.g. an older Service
    /// claimed the same IP, or a pool no longer holds it). They get new IPs, with
    /// a Warning, at their next allocation.
    pub refused: Vec<(ServiceKey, String)>,
}

/// Whether writing `ips`/`pool` changes the Service.
fn differs(view: &ServiceView<'_>, ips: &[IpAddr], pool: Option<&str>) -> bool {
    // Status IPs are deduplicated when read, and `ips` never repeat.
    let same_ips = match view.status() {
        Ok(have) => have.len() == ips.len() && ips.iter().all(|ip| have.contains(ip)),
        Err(_) => false,
    };
    !same_ips || view.svc.pool_annotation() != pool
}

/// The namespace of each of `namespaces_of` (by position); each namespace's
/// labels are prepared once.
struct NsTable<'n> {
    table: Vec<NsLabels<'n>>,
    index: Vec<u32>,
}

impl<'n> NsTable<'n> {
    fn new(
        namespaces: &'n NamespaceLabels,
        namespaces_of: impl Iterator<Item = &'n str>,
    ) -> NsTable<'n> {
        let mut seen: HashMap<&'n str, u32> = HashMap::new();
        let mut table = Vec::new();
        let index = namespaces_of
            .map(|ns| {
                *seen.entry(ns).or_insert_with(|| {
                    table.push(NsLabels::new(ns, namespaces.get(ns)));
                    // Fewer namespaces than Services, and Services fit in memory.
                    u32::try_from(table.len() - 1).unwrap_or(u32::MAX)
                })
            })
            .collect();
        NsTable { table, index }
    }

    fn get(&self, i: usize) -> &NsLabels<'n> {
        &self.table[self.index[i] as usize]
    }
}

impl Allocator {
    fn read<'s>(&self, svc: &'s LbService) -> ServiceView<'s> {
        ServiceView::read(svc, self.class.as_deref())
    }

    /// Whether this allocator handles the Service (type LoadBalancer, the
    /// configured class, not being deleted).
    pub fn handles(&self, svc: &LbService) -> bool {
        svc.not_ours(self.class.as_deref()).is_none()
    }

    /// Step 1 for a Service holding IPs: keep them if still valid, else release
    /// them and say why.
    fn revalidate(&mut self, view: &ServiceView<'_>, ns: &NsLabels<'_>, events: &mut Vec<Event>) {
        let Some(old) = self.record(view.key) else {
            return;
        };
        // Checked in place: conflicts never count the Service itself.
        let checked = match view.request() {
            Ok(req) => self.check_existing(view, req, ns, &old.ips, Some(&*old.pool), false),
            Err(_) => Err(Invalid::BadRequest),
        };
        match checked {
            Ok(rec) if rec == *old => {}
            Ok(rec) => {
                self.uncommit(view.key);
                self.commit(view.key, rec);
            }
            Err(why) => {
                if let Some(old) = self.uncommit(view.key) {
                    events.push(Event::invalidated(&old.ips, &why));
                }
            }
        }
    }

    /// Step 2 for a Service the allocator has never seen: claim the IPs in its
    /// status if they are valid (rule 8).
    fn claim_status(
        &mut self,
        view: &ServiceView<'_>,
        ns: &NsLabels<'_>,
    ) -> Result<Option<Holding>, Invalid> {
        let ips = match view.status() {
            Ok([]) => return Ok(None),
            Ok(ips) => ips,
            Err(m) => return Err(Invalid::BadStatus(m.to_string())),
        };
        let req = view.request().map_err(|_| Invalid::BadRequest)?;
        let rec = self.check_existing(view, req, ns, ips, None, true)?;
        let held = (rec.ips.clone(), rec.pool.clone());
        self.commit(view.key, rec);
        Ok(Some(held))
    }

    /// Step 3: new IPs for a Service holding none.
    fn allocate_fresh(
        &mut self,
        view: &ServiceView<'_>,
        ns: &NsLabels<'_>,
        events: &mut Vec<Event>,
    ) -> Held {
        let previous = self.services.remove(view.key);
        if let Some(Known::Lost(why)) = &previous {
            events.push(Event::invalidated(view.status().unwrap_or_default(), why));
        }
        let found = match view.request() {
            Ok(req) => self.find_new(view, req, ns),
            Err(m) => Err(PendingReason::InvalidRequest(m.to_string())),
        };
        match found {
            Ok(rec) => {
                events.push(Event::allocated(&rec.ips, &rec.pool));
                let held = (rec.ips.clone(), rec.pool.clone());
                self.commit(view.key, rec);
                Ok(held)
            }
            Err(reason) => {
                let message = reason.to_string();
                let repeated = matches!(&previous, Some(Known::Pending(m)) if *m == message);
                if !repeated {
                    events.push(Event::failed(&reason));
                }
                self.services
                    .insert(view.key.clone(), Known::Pending(message));
                Err(reason)
            }
        }
    }

    /// What the Service holds now, if anything.
    fn held(&self, key: &ServiceKey) -> Option<Holding> {
        self.record(key).map(|r| (r.ips.clone(), r.pool.clone()))
    }

    fn outcome(&self, view: &ServiceView<'_>, result: Held, events: Vec<Event>) -> ServiceOutcome {
        let (ips, pool, state) = match result {
            Ok((ips, pool)) => (ips, Some(pool.to_string()), OutcomeState::Assigned),
            Err(reason) => (Vec::new(), None, OutcomeState::Pending(reason)),
        };
        ServiceOutcome {
            service: view.key.clone(),
            changed: differs(view, &ips, pool.as_deref()),
            ips,
            pool,
            state,
            events,
        }
    }

    /// Releases a Service that is no longer ours; None if it held nothing.
    fn release_with(
        &mut self,
        key: &ServiceKey,
        cause: ReleaseCause,
        svc: Option<&LbService>,
    ) -> Option<ServiceOutcome> {
        let rec: Option<Record> = self.uncommit(key);
        self.services.remove(key);
        let rec = rec?;
        let changed = match svc {
            None => true,
            Some(svc) => {
                svc.status_ips().iter().any(|ip| rec.ips.contains(ip))
                    || svc.pool_annotation().is_some()
            }
        };
        Some(ServiceOutcome {
            service: key.clone(),
            ips: Vec::new(),
            pool: None,
            changed,
            events: vec![Event::released(&rec.ips, &cause)],
            state: OutcomeState::Released(cause),
        })
    }

    /// Releases a Service's IPs at once (e.g. it was deleted). None if it held none.
    /// The Service is gone: what its status listed is free too.
    pub fn release(&mut self, service: &ServiceKey) -> Option<ServiceOutcome> {
        self.set_other(service, None);
        self.release_with(service, ReleaseCause::Requested, None)
    }

    /// Records the addresses that Services not ours list in their status
    /// (they are in use, whoever gave them), replacing what was recorded
    /// before. Of duplicate keys only the first counts.
    fn note_others<S: AsRef<LbService>>(&mut self, snapshot: Snapshot<'_, S>) {
        let mut seen: HashSet<&ServiceKey> = HashSet::new();
        let views: Vec<ServiceView<'_>> = snapshot
            .services
            .iter()
            .map(|s| self.read(s.as_ref()))
            .filter(|v| seen.insert(v.key) && v.not_ours.is_some())
            .collect();
        self.set_others(views.iter());
    }

    /// After a restart, before allocating anything: claims the IPs in every
    /// Service's `status.loadBalancer.ingress` again (rule 8). Services are taken
    /// in order of creationTimestamp, then namespace/name, so when two claim the
    /// same IP and may not share it, the older keeps it. IPs no longer valid
    /// (pool edited while the controller was down, …) are not claimed, nor IPs
    /// that an older Service not ours also has in its status. Only Services
    /// the allocator does not know yet are read. Call
    /// [`set_pools`](Allocator::set_pools) first.
    pub fn restore<S: AsRef<LbService>>(&mut self, snapshot: Snapshot<'_, S>) -> RestoreReport {
        let mut report = RestoreReport::default();
        self.note_others(snapshot);
        let mut views: Vec<ServiceView<'_>> = snapshot
            .services
            .iter()
            .map(|s| self.read(s.as_ref()))
            .filter(|v| v.not_ours.is_none() && !self.services.contains_key(v.key))
            .collect();
        views.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let labels = NsTable::new(snapshot.namespaces, views.iter().map(|v| &*v.key.namespace));
        let mut seen: HashSet<&ServiceKey> = HashSet::with_capacity(views.len());
        for (i, view) in views.iter().enumerate() {
            // A duplicate key in the snapshot: the first (oldest) one counts.
            if !seen.insert(view.key) {
                continue;
            }
            match self.claim_status(view, labels.get(i)) {
                Ok(Some(_)) => report.claimed += 1,
                Ok(None) => {}
                Err(why) => {
                    report.refused.push((view.key.clone(), why.to_string()));
                    self.services
                        .insert(view.key.clone(), Known::Lost(Box::new(why)));
                }
            }
        }
        report
    }

    /// Decides for one Service (after a watch event): keeps its IPs if still
    /// valid (rule 7), claims its status IPs if the allocator has never seen it
    /// (rule 8), or allocates new ones (rules 1-6). A Service that is not ours is
    /// released. `namespace_labels` are its Namespace's labels.
    pub fn allocate(
        &mut self,
        service: &LbService,
        namespace_labels: &BTreeMap<String, String>,
    ) -> ServiceOutcome {
        let view = self.read(service);
        if let Some(why) = &view.not_ours {
            let released =
                self.release_with(view.key, ReleaseCause::NotOurs(why.clone()), Some(service));
            // What its status lists is in use.
            self.set_other(view.key, Allocator::other_of(&view));
            return released.unwrap_or_else(|| ServiceOutcome {
                service: view.key.clone(),
                ips: Vec::new(),
                pool: None,
                changed: false,
                events: Vec::new(),
                state: OutcomeState::Released(ReleaseCause::NotOurs(why.clone())),
            });
        }
        self.set_other(view.key, None);
        let ns = NsLabels::new(&view.key.namespace, Some(namespace_labels));
        let mut events = Vec::new();
        let result = match self.services.get(view.key) {
            Some(Known::Assigned(_)) => {
                self.revalidate(&view, &ns, &mut events);
                match self.held(view.key) {
                    Some(held) => Ok(held),
                    None => self.allocate_fresh(&view, &ns, &mut events),
                }
            }
            Some(_) => self.allocate_fresh(&view, &ns, &mut events),
            None => match self.claim_status(&view, &ns) {
                Ok(Some(held)) => Ok(held),
                Ok(None) => self.allocate_fresh(&view, &ns, &mut events),
                Err(why) => {
                    events.push(Event::invalidated(view.status().unwrap_or_default(), &why));
                    self.allocate_fresh(&view, &ns, &mut events)
                }
            },
        };
        self.outcome(&view, result, events)
    }

    /// Reconciles a whole snapshot and says what to do with each Service:
    ///
    /// 1. Services gone, or no longer ours, are released (outcome
    ///    [`OutcomeState::Released`]). The addresses in the status of every
    ///    Service not ours are recorded as in use.
    /// 2. Services holding IPs keep them if still valid; otherwise the IPs are
    ///    released with a Warning (rule 7).
    /// 3. Services never seen claim the IPs in their status (rule 8).
    /// 4. The rest get new IPs (rules 1-6).
    ///
    /// Steps 2-4 take Services in order of creationTimestamp, then
    /// namespace/name, so the same input always gives the same result. Outcomes
    /// list released Services first (by key), then every Service of ours in
    /// that order. Of duplicate keys in the snapshot only the first counts.
    pub fn reconcile<S: AsRef<LbService>>(
        &mut self,
        snapshot: Snapshot<'_, S>,
    ) -> Vec<ServiceOutcome> {
        let mut outcomes = Vec::new();
        self.reconcile_each(snapshot, |o| outcomes.push(o));
        outcomes
    }

    /// [`reconcile`](Allocator::reconcile), handing each outcome to `each` as
    /// it is decided (in the same order) instead of collecting them all: a
    /// caller that keeps only some of them (those to write) saves the memory
    /// of one outcome per Service.
    pub fn reconcile_each<S: AsRef<LbService>>(
        &mut self,
        snapshot: Snapshot<'_, S>,
        mut each: impl FnMut(ServiceOutcome),
    ) {
        let mut views: Vec<ServiceView<'_>> = snapshot
            .services
            .iter()
            .map(|s| self.read(s.as_ref()))
            .collect();

        // 1. Release what is gone or no longer ours (and drop duplicate keys).
        let mut duplicate = vec![false; views.len()];
        let mut stale: Vec<(ServiceKey, Option<usize>)> = {
            let mut present: HashMap<&ServiceKey, usize> = HashMap::with_capacity(views.len());
            for (i, v) in views.iter().enumerate() {
                if *present.entry(v.key).or_insert(i) != i {
                    duplicate[i] = true;
                }
            }
            self.services
                .keys()
                .map(|k| (k, present.get(k).copied()))
                .filter(|(_, i)| i.is_none_or(|i| views[i].not_ours.is_some()))
                .map(|(k, i)| (k.clone(), i))
                .collect()
        };
        stale.sort_unstable();
        for (key, idx) in stale {
            let (cause, svc) = match idx {
                Some(i) => (
                    ReleaseCause::NotOurs(views[i].not_ours.clone().expect("filtered")),
                    Some(views[i].svc),
                ),
                None => (ReleaseCause::Deleted, None),
            };
            if let Some(o) = self.release_with(&key, cause, svc) {
                each(o);
            }
        }
        // What Services not ours list in their status is in use.
        self.set_others(
            views
                .iter()
                .zip(&duplicate)
                .filter(|(v, dup)| !**dup && v.not_ours.is_some())
                .map(|(v, _)| v),
        );
        let mut i = 0;
        views.retain(|v| {
            i += 1;
            v.not_ours.is_none() && !duplicate[i - 1]
        });
        drop(duplicate);
        let mut ours = views;
        ours.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let labels = NsTable::new(snapshot.namespaces, ours.iter().map(|v| &*v.key.namespace));
        // Events of steps 2 and 3, by position in `ours` (few Services have any).
        let mut events: HashMap<usize, Vec<Event>> = HashMap::new();
        // Room for every Service at once, rather than growing step by step.
        self.services
            .reserve(ours.len().saturating_sub(self.services.len()));

        // 2. Keep valid assignments.
        for (i, view) in ours.iter().enumerate() {
            let mut ev = Vec::new();
            self.revalidate(view, labels.get(i), &mut ev);
            if !ev.is_empty() {
                events.insert(i, ev);
            }
        }
        // 3. Claim the status of Services never seen.
        for (i, view) in ours.iter().enumerate() {
            if events.contains_key(&i) || self.services.contains_key(view.key) {
                continue;
            }
            if let Err(why) = self.claim_status(view, labels.get(i)) {
                events.insert(
                    i,
                    vec![Event::invalidated(view.status().unwrap_or_default(), &why)],
                );
            }
        }
        // 4. Allocate the rest.
        for (i, view) in ours.iter().enumerate() {
            let mut ev = events.remove(&i).unwrap_or_default();
            let result = match self.held(view.key) {
                Some(held) => Ok(held),
                None => self.allocate_fresh(view, labels.get(i), &mut ev),
            };
            each(self.outcome(view, result, ev));
        }
    }
}
