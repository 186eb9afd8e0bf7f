//! Adj-RIB-Out: the routes we announce to the peer, what the peer was last
//! sent, and the pending changes between the two.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::error::EncodeError;
use crate::message::attribute::{
    AsPath, Community, ExtendedCommunity, LargeCommunity, NextHop, Origin, PathAttributes,
};
use crate::message::pack::{pack_announcements, pack_withdrawals};
use crate::message::update::Update;
use crate::prefix::{AddressFamily, Prefix};
use crate::session::config::SessionConfig;
use crate::session::negotiate::Negotiated;

/// LOCAL_PREF sent to internal peers when a route sets none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// The attributes of one announced route. ORIGIN (IGP) and AS_PATH (our AS
/// towards external peers, empty towards internal ones) are added by the
/// session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RouteAttributes {
    /// Next hop; default: from the configuration or the connection's local
    /// address.
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF, sent to internal peers only (default 100 there).
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// EXTENDED COMMUNITIES.
    pub extended_communities: Vec<ExtendedCommunity>,
}

/// Why a route could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsendable {
    /// The family was not negotiated with the peer.
    FamilyNotNegotiated(AddressFamily),
    /// No usable next hop for the family on this session.
    NoNextHop(Prefix),
    /// The codec refused the UPDATE.
    Encode(EncodeError),
}

impl std::fmt::Display for Unsendable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsendable::FamilyNotNegotiated(fam) => write!(f, "{fam} not negotiated"),
            Unsendable::NoNextHop(p) => write!(f, "no usable next hop for {p}"),
            Unsendable::Encode(e) => write!(f, "cannot encode UPDATE: {e}"),
        }
    }
}

/// Turns route attributes into wire attributes for one established session.
pub(crate) struct Exporter<'a> {
    pub(crate) cfg: &'a SessionConfig,
    pub(crate) neg: &'a Negotiated,
    pub(crate) local_addr: IpAddr,
}

impl Exporter<'_> {
    fn path_attributes(&self, attrs: &RouteAttributes) -> PathAttributes {
        let out = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.neg.internal {
                AsPath::new()
            } else {
                AsPath::from_sequence([self.cfg.local_asn])
            }),
            med: attrs.med,
            local_pref: self
                .neg
                .internal
                .then(|| attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
            communities: attrs.communities.clone(),
            large_communities: attrs.large_communities.clone(),
            extended_communities: attrs.extended_communities.clone(),
            ..Default::default()
        };
        if self.neg.four_octet_as {
            out
        } else {
            // RFC 6793 §4.2.2: AS_TRANS in AS_PATH, the real AS in AS4_PATH.
            out.for_two_octet_peer()
        }
    }

    fn next_hop(&self, prefix: Prefix, attrs: &RouteAttributes) -> Result<NextHop, Unsendable> {
        let enh = self.neg.extended_next_hop;
        let none = Unsendable::NoNextHop(prefix);
        match prefix {
            Prefix::V4(_) => match attrs.next_hop {
                Some(IpAddr::V4(a)) => Ok(NextHop::V4(a)),
                Some(IpAddr::V6(a)) if enh => Ok(NextHop::v6(a)),
                Some(IpAddr::V6(_)) => Err(none),
                None => match (self.cfg.next_hop_v4, self.local_addr) {
                    (Some(a), _) => Ok(NextHop::V4(a)),
                    (None, IpAddr::V4(a)) => Ok(NextHop::V4(a)),
                    (None, IpAddr::V6(a)) if enh => Ok(NextHop::v6(a)),
                    (None, IpAddr::V6(_)) => Err(none),
                },
            },
            Prefix::V6(_) => {
                let v6: Ipv6Addr = match attrs.next_hop {
                    Some(IpAddr::V6(a)) => a,
                    // An IPv4 next hop for IPv6 routes is sent IPv4-mapped.
                    Some(IpAddr::V4(a)) => a.to_ipv6_mapped(),
                    None => match (self.cfg.next_hop_v6, self.local_addr) {
                        (Some(a), _) => a,
                        (None, IpAddr::V6(a)) => a,
                        (None, IpAddr::V4(a)) => a.to_ipv6_mapped(),
                    },
                };
                Ok(NextHop::v6(v6))
            }
        }
    }

    /// Whether the route can be sent, and how.
    fn export(
        &self,
        prefix: Prefix,
        attrs: &RouteAttributes,
    ) -> Result<(PathAttributes, NextHop), Unsendable> {
        let family = prefix.unicast_family();
        if !self.neg.families.contains(&family) {
            return Err(Unsendable::FamilyNotNegotiated(family));
        }
        Ok((self.path_attributes(attrs), self.next_hop(prefix, attrs)?))
    }

    /// UPDATEs announcing `routes`, grouped by identical attributes and
    /// packed. Unsendable routes are reported and left out.
    fn announcements<'r>(
        &self,
        routes: impl IntoIterator<Item = (Prefix, &'r RouteAttributes)>,
        problems: &mut Vec<Unsendable>,
    ) -> (Vec<Update>, Vec<Prefix>) {
        let mut index: HashMap<(PathAttributes, NextHop), usize> = HashMap::new();
        let mut groups: Vec<(PathAttributes, NextHop, Vec<Prefix>)> = Vec::new();
        let mut unsent = Vec::new();
        for (prefix, attrs) in routes {
            match self.export(prefix, attrs) {
                Ok((pa, nh)) => {
                    let i = *index.entry((pa.clone(), nh)).or_insert_with(|| {
                        groups.push((pa, nh, Vec::new()));
                        groups.len() - 1
                    });
                    groups[i].2.push(prefix);
                }
                Err(e) => {
                    problems.push(e);
                    unsent.push(prefix);
                }
            }
        }
        let mut updates = Vec::new();
        for (pa, nh, prefixes) in groups {
            match pack_announcements(&pa, nh, &prefixes, &self.neg.codec) {
                Ok(u) => updates.extend(u),
                Err(e) => {
                    problems.push(Unsendable::Encode(e));
                    unsent.extend(prefixes);
                }
            }
        }
        (updates, unsent)
    }
}

/// The routes to announce and what the peer has.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdjRibOut {
    /// What we want the peer to have.
    routes: BTreeMap<Prefix, Arc<RouteAttributes>>,
    /// What the peer was sent, on the current session.
    sent: BTreeMap<Prefix, Arc<RouteAttributes>>,
    /// Prefixes changed since the last flush.
    dirty: BTreeSet<Prefix>,
}

impl AdjRibOut {
    pub(crate) fn announce(&mut self, prefix: Prefix, attrs: Arc<RouteAttributes>) {
        self.routes.insert(prefix, attrs);
        self.dirty.insert(prefix);
    }

    pub(crate) fn withdraw(&mut self, prefix: Prefix) {
        if self.routes.remove(&prefix).is_some() {
            self.dirty.insert(prefix);
        }
    }

    pub(crate) fn routes(&self) -> &BTreeMap<Prefix, Arc<RouteAttributes>> {
        &self.routes
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The session went down: the peer has nothing any more.
    pub(crate) fn reset(&mut self) {
        self.sent.clear();
        self.dirty.clear();
    }

    /// The session came up: everything is to be sent.
    pub(crate) fn mark_all_pending(&mut self) {
        self.sent.clear();
        self.dirty = self.routes.keys().copied().collect();
    }

    /// UPDATEs for the pending changes: withdrawals first, then
    /// announcements grouped by attributes. Unchanged routes send nothing.
    pub(crate) fn flush(
        &mut self,
        ex: &Exporter<'_>,
        problems: &mut Vec<Unsendable>,
    ) -> Vec<Update> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut withdraw = Vec::new();
        let mut announce = Vec::new();
        for prefix in dirty {
            match (self.routes.get(&prefix), self.sent.get(&prefix)) {
                (Some(want), Some(have)) if want == have => {}
                (Some(want), _) => announce.push((prefix, want)),
                (None, Some(_)) => withdraw.push(prefix),
                (None, None) => {}
            }
        }
        let (announced, unsent) =
            ex.announcements(announce.iter().map(|(p, a)| (*p, &***a)), problems);
        // A route that was sent but can no longer be is withdrawn.
        for p in &unsent {
            if self.sent.contains_key(p) {
                withdraw.push(*p);
            }
        }
        let mut updates = match pack_withdrawals(&withdraw, &ex.neg.codec) {
            Ok(u) => u,
            Err(e) => {
                problems.push(Unsendable::Encode(e));
                Vec::new()
            }
        };
        updates.extend(announced);
        for p in &withdraw {
            self.sent.remove(p);
        }
        let unsent: BTreeSet<Prefix> = unsent.into_iter().collect();
        for (p, attrs) in announce {
            if !unsent.contains(&p) {
                self.sent.insert(p, attrs.clone());
            }
        }
        updates
    }

    /// UPDATEs re-announcing what the peer was sent for `family` (route
    /// refresh).
    pub(crate) fn resend(
        &self,
        family: AddressFamily,
        ex: &Exporter<'_>,
        problems: &mut Vec<Unsendable>,
    ) -> Vec<Update> {
        let routes = self
            .sent
            .iter()
            .filter(|(p, _)| p.unicast_family() == family)
            .map(|(p, a)| (*p, &**a));
        ex.announcements(routes, problems).0
    }

    /// Number of routes the peer currently has from us.
    pub(crate) fn sent_len(&self) -> usize {
        self.sent.len()
    }
}
