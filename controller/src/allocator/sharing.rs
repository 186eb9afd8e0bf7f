//! IP sharing (rule 6): Services with the same `allow-shared-ip` key may hold the
//! same IP when no port+protocol pair overlaps and their backends match (both
//! `externalTrafficPolicy: Cluster`, or both `Local` with identical selectors).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::intervals::IntervalSet;
use super::service::ServiceKey;

/// A port's protocol (`TCP` when unset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Sctp,
    Other(String),
}

impl Proto {
    fn parse(s: Option<&str>) -> Proto {
        match s {
            None | Some("TCP") => Proto::Tcp,
            Some("UDP") => Proto::Udp,
            Some("SCTP") => Proto::Sctp,
            Some(other) => Proto::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
            Proto::Other(s) => s,
        })
    }
}

/// A port and its protocol.
pub(crate) type Port = (i32, Proto);

/// Where a Service's traffic goes, as far as sharing is concerned: Services
/// may share an IP only with the same backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    /// `externalTrafficPolicy: Cluster` (the default; any value but Local).
    Cluster,
    /// `externalTrafficPolicy: Local`, with `spec.selector` (unset counts as empty).
    Local(BTreeMap<String, String>),
}

/// What decides whether a Service may share an IP with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShareInfo {
    /// The sharing key; None when the Service does not allow sharing.
    pub(crate) key: Option<String>,
    /// (port, protocol) pairs, sorted and unique.
    pub(crate) ports: Vec<Port>,
    pub(crate) backend: Backend,
}

/// The first element two sorted lists have in common.
fn first_common<'a, T: Ord>(a: &'a [T], b: &[T]) -> Option<&'a T> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return Some(&a[i]),
        }
    }
    None
}

impl ShareInfo {
    /// The rules of a Service without a sharing key: it shares with nobody, so
    /// its ports and backend never matter.
    pub(crate) fn none() -> ShareInfo {
        ShareInfo {
            key: None,
            ports: Vec::new(),
            backend: Backend::Cluster,
        }
    }

    pub(crate) fn of(svc: &Service, key: Option<String>) -> ShareInfo {
        let spec = svc.spec.as_ref();
        let mut ports: Vec<(i32, Proto)> = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (p.port, Proto::parse(p.protocol.as_deref())))
            .collect();
        ports.sort();
        ports.dedup();
        let local = spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
        ShareInfo {
            key,
            ports,
            backend: if local {
                Backend::Local(spec.and_then(|s| s.selector.clone()).unwrap_or_default())
            } else {
                Backend::Cluster
            },
        }
    }

    fn local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    fn policy_name(&self) -> &'static str {
        if self.local() { "Local" } else { "Cluster" }
    }

    /// Why this Service may not share an IP with `other` (held by `other_key`),
    /// or None when it may.
    pub(crate) fn refusal(&self, other_key: &ServiceKey, other: &ShareInfo) -> Option<String> {
        let (Some(mine), Some(theirs)) = (&self.key, &other.key) else {
            return Some(if self.key.is_none() {
                "this Service has no allow-shared-ip annotation".to_string()
            } else {
                format!("{other_key} has no allow-shared-ip annotation")
            });
        };
        if mine != theirs {
            return Some(format!(
                "the allow-shared-ip keys differ ({mine:?} here, {theirs:?} on {other_key})"
            ));
        }
        if let Some((port, proto)) = first_common(&self.ports, &other.ports) {
            return Some(format!("both use port {port}/{proto}"));
        }
        if self.local() != other.local() {
            return Some(format!(
                "externalTrafficPolicy differs ({} here, {} on {other_key})",
                self.policy_name(),
                other.policy_name()
            ));
        }
        if self.backend != other.backend {
            return Some(
                "both use externalTrafficPolicy Local but their selectors differ".to_string(),
            );
        }
        None
    }
}

/// The Services holding one address, in the order they got it. They may all
/// share with each other (same key, same backend, no port in common), so a
/// newcomer may join exactly when it has their key and backend and none of the
/// ports they use together: a check of its own ports, whatever the number of
/// holders.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// The usual case: one holder, nothing allocated.
    One(ServiceKey, Arc<ShareInfo>),
    Many(Box<Shared>),
}

/// An address held by two Services or more.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared {
    /// Holders by arrival number.
    order: BTreeMap<u64, (ServiceKey, Arc<ShareInfo>)>,
    arrival: HashMap<ServiceKey, u64>,
    next: u64,
    /// Ports in use, with how many holders use each (one, as holders are
    /// compatible; counted so that a removal is always exact).
    ports: HashMap<Port, u32>,
}

impl Shared {
    fn add(&mut self, key: ServiceKey, share: Arc<ShareInfo>) {
        for p in share.ports.iter() {
            *self.ports.entry(p.clone()).or_default() += 1;
        }
        if let Some(old) = self.arrival.insert(key.clone(), self.next) {
            // Added twice: the newer entry replaces the older.
            if let Some((_, old_share)) = self.order.remove(&old) {
                self.forget_ports(&old_share);
            }
        }
        self.order.insert(self.next, (key, share));
        self.next += 1;
    }

    fn forget_ports(&mut self, share: &ShareInfo) {
        for p in share.ports.iter() {
            if let Some(c) = self.ports.get_mut(p) {
                *c -= 1;
                if *c == 0 {
                    self.ports.remove(p);
                }
            }
        }
    }

    fn first(&self) -> Option<&(ServiceKey, Arc<ShareInfo>)> {
        self.order.values().next()
    }
}

impl Slot {
    pub(crate) fn new(key: ServiceKey, share: Arc<ShareInfo>) -> Slot {
        Slot::One(key, share)
    }

    /// The holders, in the order they got the address.
    pub(crate) fn holders(&self) -> impl Iterator<Item = (&ServiceKey, &Arc<ShareInfo>)> + '_ {
        let (one, many) = match self {
            Slot::One(k, s) => (Some((k, s)), None),
            Slot::Many(m) => (None, Some(m.order.values().map(|(k, s)| (k, s)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Slot::One(..) => 1,
            Slot::Many(m) => m.order.len(),
        }
    }

    /// Any holder's sharing rules (key and backend are the same for all).
    fn any(&self) -> Option<&ShareInfo> {
        match self {
            Slot::One(_, s) => Some(s),
            Slot::Many(m) => m.first().map(|(_, s)| &**s),
        }
    }

    /// Whether a holder uses port `p`, not counting `mine` (a holder's own rules).
    fn uses(&self, p: &Port, mine: Option<&ShareInfo>) -> bool {
        let count = match self {
            Slot::One(_, s) => s.ports.binary_search(p).is_ok() as u32,
            Slot::Many(m) => m.ports.get(p).copied().unwrap_or(0),
        };
        let own = mine.is_some_and(|m| m.ports.binary_search(p).is_ok()) as u32;
        count > own
    }

    pub(crate) fn add(&mut self, key: ServiceKey, share: Arc<ShareInfo>) {
        match self {
            Slot::One(k, s) if *k == key => *s = share,
            Slot::One(k, s) => {
                let mut m = Shared::default();
                m.add(k.clone(), s.clone());
                m.add(key, share);
                *self = Slot::Many(Box::new(m));
            }
            Slot::Many(m) => m.add(key, share),
        }
    }

    /// Removes a holder; true when none is left.
    pub(crate) fn remove(&mut self, key: &ServiceKey) -> bool {
        match self {
            Slot::One(k, _) => k == key,
            Slot::Many(m) => {
                if let Some(n) = m.arrival.remove(key)
                    && let Some((_, share)) = m.order.remove(&n)
                {
                    m.forget_ports(&share);
                }
                if m.order.len() == 1 {
                    let (k, s) = m.order.pop_first().expect("one holder").1;
                    *self = Slot::One(k, s);
                }
                false
            }
        }
    }

    /// Whether `share` may join the holders, not counting `mine` (the rules
    /// of this same Service when it is itself a holder). Cost: its own ports.
    pub(crate) fn admits(&self, share: &ShareInfo, mine: Option<&ShareInfo>) -> bool {
        if self.len() <= mine.is_some() as usize {
            return true;
        }
        let Some(any) = self.any() else {
            return true;
        };
        share.key.is_some()
            && share.key == any.key
            && share.backend == any.backend
            && !share.ports.iter().any(|p| self.uses(p, mine))
    }

    /// The first holder other than `me` that `share` may not share with, and why.
    pub(crate) fn refusal(
        &self,
        me: &ServiceKey,
        share: &ShareInfo,
    ) -> Option<(ServiceKey, String)> {
        self.holders()
            .filter(|(k, _)| *k != me)
            .find_map(|(k, s)| share.refusal(k, s).map(|why| (k.clone(), why)))
    }
}

/// Addresses of one family held under one sharing key, indexed so that the
/// lowest address a newcomer may share is found by jumping over runs of
/// addresses that use one of its ports, not by checking every address.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyIndex {
    by_backend: HashMap<Backend, BackendIndex>,
}

#[derive(Debug, Clone, Default)]
struct BackendIndex {
    /// Address numbers held under the key with this backend.
    addrs: IntervalSet,
    /// For each port, the addresses where a holder uses it.
    by_port: HashMap<Port, IntervalSet>,
}

impl KeyIndex {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_backend.is_empty()
    }

    /// Records that `share` (whose key this is) now holds address `n`;
    /// `first`: nobody held it before.
    pub(crate) fn add(&mut self, n: u128, share: &ShareInfo, first: bool) {
        let b = self.by_backend.entry(share.backend.clone()).or_default();
        if first {
            b.addrs.insert(n);
        }
        for p in share.ports.iter() {
            b.by_port.entry(p.clone()).or_default().insert(n);
        }
    }

    /// Records that `share` left address `n`; `slot` is what remains there
    /// (None when nobody holds it any more).
    pub(crate) fn remove(&mut self, n: u128, share: &ShareInfo, slot: Option<&Slot>) {
        let Some(b) = self.by_backend.get_mut(&share.backend) else {
            return;
        };
        for p in share.ports.iter() {
            if slot.is_some_and(|s| s.uses(p, None)) {
                continue;
            }
            if let Some(set) = b.by_port.get_mut(p) {
                set.remove(n);
                if set.is_empty() {
                    b.by_port.remove(p);
                }
            }
        }
        if slot.is_none() {
            b.addrs.remove(n);
        }
        if b.addrs.is_empty() {
            self.by_backend.remove(&share.backend);
        }
    }

    /// The lowest address in `[lo, hi]` held under the key that `share` may
    /// join (same backend, none of its ports in use there), and that `accept`
    /// takes; `accept` returns None to stop the search, Some(false) to skip.
    pub(crate) fn first_joinable(
        &self,
        share: &ShareInfo,
        lo: u128,
        hi: u128,
        mut accept: impl FnMut(u128) -> Option<bool>,
    ) -> Option<Option<u128>> {
        let Some(b) = self.by_backend.get(&share.backend) else {
            return Some(None);
        };
        let mut cur = lo;
        while let Some(n) = b.addrs.first_at_or_after(cur).filter(|n| *n <= hi) {
            let busy = share
                .ports
                .iter()
                .find_map(|p| b.by_port.get(p).and_then(|s| s.run_of(n)));
            let next = match busy {
                // Every address of that run uses the port: skip it whole.
                Some((_, last)) => last.checked_add(1),
                None => match accept(n) {
                    None => return None,
                    Some(true) => return Some(Some(n)),
                    Some(false) => n.checked_add(1),
                },
            };
            match next {
                Some(c) => cur = c,
                None => break,
            }
        }
        Some(None)
    }
}
