//! IP sharing (rule 6): Services with the same `allow-shared-ip` key may hold the
//! same IP when no port+protocol pair overlaps and their backends match (both
//! `externalTrafficPolicy: Cluster`, or both `Local` with identical selectors).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::service::ServiceKey;

/// A port's protocol (`TCP` when unset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// What decides whether a Service may share an IP with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShareInfo {
    /// The sharing key; None when the Service does not allow sharing.
    pub(crate) key: Option<String>,
    /// (port, protocol) pairs, sorted and unique.
    pub(crate) ports: Vec<(i32, Proto)>,
    /// `externalTrafficPolicy: Local` (anything else is Cluster, the default).
    pub(crate) local: bool,
    /// `spec.selector` (unset counts as empty).
    pub(crate) selector: BTreeMap<String, String>,
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
        ShareInfo {
            key,
            ports,
            local: spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"),
            selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        }
    }

    fn policy_name(&self) -> &'static str {
        if self.local { "Local" } else { "Cluster" }
    }

    fn same_backend(&self, other: &ShareInfo) -> bool {
        self.local == other.local && (!self.local || self.selector == other.selector)
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
        if self.local != other.local {
            return Some(format!(
                "externalTrafficPolicy differs ({} here, {} on {other_key})",
                self.policy_name(),
                other.policy_name()
            ));
        }
        if !self.same_backend(other) {
            return Some(
                "both use externalTrafficPolicy Local but their selectors differ".to_string(),
            );
        }
        None
    }
}

/// The Services holding one address. They may all share with each other, so
/// a newcomer may join exactly when it has their key and backend and none of
/// the ports they use together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub(crate) holders: Vec<(ServiceKey, Arc<ShareInfo>)>,
    /// Union of the holders' ports, sorted; kept only with two holders or more
    /// (a single holder's own list serves otherwise).
    union: Vec<(i32, Proto)>,
}

impl Slot {
    fn ports(&self) -> &[(i32, Proto)] {
        match self.holders.as_slice() {
            [(_, only)] => &only.ports,
            _ => &self.union,
        }
    }

    fn rebuild_union(&mut self) {
        self.union.clear();
        if self.holders.len() > 1 {
            let mut ports: Vec<(i32, Proto)> = self
                .holders
                .iter()
                .flat_map(|(_, s)| s.ports.iter().cloned())
                .collect();
            ports.sort();
            ports.dedup();
            self.union = ports;
        }
    }

    pub(crate) fn add(&mut self, key: ServiceKey, share: Arc<ShareInfo>) {
        self.holders.push((key, share));
        if self.holders.len() > 1 {
            self.rebuild_union();
        }
    }

    /// Removes a holder; true when none is left.
    pub(crate) fn remove(&mut self, key: &ServiceKey) -> bool {
        self.holders.retain(|(k, _)| k != key);
        self.rebuild_union();
        self.holders.is_empty()
    }

    /// Whether `share` may join the holders (none of whom is this Service).
    pub(crate) fn admits(&self, share: &ShareInfo) -> bool {
        let Some((_, first)) = self.holders.first() else {
            return true;
        };
        share.key.is_some()
            && share.key == first.key
            && share.same_backend(first)
            && first_common(&share.ports, self.ports()).is_none()
    }

    /// The first holder other than `me` that `share` may not share with, and why.
    pub(crate) fn refusal(
        &self,
        me: &ServiceKey,
        share: &ShareInfo,
    ) -> Option<(ServiceKey, String)> {
        self.holders
            .iter()
            .filter(|(k, _)| k != me)
            .find_map(|(k, s)| share.refusal(k, s).map(|why| (k.clone(), why)))
    }
}
