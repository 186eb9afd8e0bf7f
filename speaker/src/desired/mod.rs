//! What this node announces: one pure function, [`decide`], from the
//! configuration, the Services with their assigned IPs, EndpointSlices,
//! Nodes, the live members and this node's name to the layer-2 and BGP
//! announcements of this node, and for every IP it does not announce, the
//! reason. The daemon's adapters apply the difference to the `arp` and
//! `bgp` engines; nothing else decides.
//!
//! The rules (MetalLB's, plus the layer-2 election described in
//! [`crate::election`]):
//!
//! - An IP belongs to the pool whose addresses hold it. It is announced
//!   only when an advertisement selects that pool (by `ipAddressPools` or
//!   `ipAddressPoolSelectors`; neither means every pool), its
//!   `serviceSelectors` select the Service and its `nodeSelectors` the
//!   node. A name in `ipAddressPools` that no pool has selects nothing
//!   (a configuration may be applied in any order: it selects the pool once
//!   it exists).
//! - A node labelled `node.kubernetes.io/exclude-from-external-load-balancers`
//!   announces nothing. A node whose `Ready` condition is not `True` is not
//!   eligible (a Node without a `Ready` condition at all, as written in a
//!   standalone directory, is taken as ready). When membership runs, a node
//!   that is not a live member is not eligible for layer 2.
//! - `externalTrafficPolicy: Local`: only nodes with a ready endpoint of the
//!   Service are eligible; serving-but-terminating endpoints count only when
//!   the Service has no ready endpoint anywhere (as kube-proxy does).
//! - Layer 2: one owner per IP among the eligible nodes ([`crate::election`]).
//! - BGP: every eligible node announces the IP's covering prefix
//!   (`aggregationLength`/`aggregationLengthV6`) to each peer the
//!   advertisement names (all when it names none) whose `nodeSelectors`
//!   select the node, with the advertisement's communities (aliases
//!   resolved from `Community` objects) and, to iBGP peers, its `localPref`.
//!   A peer name that no BGPPeer has targets nothing. An advertisement
//!   naming an alias that no `Community` defines announces nothing until one
//!   does: its routes are never sent without a community asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_bgp::session::RouteAttributes;
use ferrolb_bgp::{Community, LargeCommunity, Prefix};
use ferrolb_config::Config;
use ferrolb_config::addr::AddrRange;
use ferrolb_config::community::CommunityValue;
use ferrolb_config::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement};
use ferrolb_config::selector;
use ferrolb_config::validate::peer_is_external;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::election::{self, Candidate};

/// The label that keeps a node out of every announcement.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The label that drains a node: it hands its layer-2 IPs over to other
/// nodes (make-before-break: it keeps answering a while after they take
/// over) and sends its BGP routes with the drain community, then withdraws
/// them (see the daemon's `--drain-wait`).
pub const DRAIN_LABEL: &str = "ferrolb.io/drain";
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's identity, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn of(svc: &Service) -> ServiceKey {
        ServiceKey {
            namespace: svc
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: svc.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the decision reads of a LoadBalancer Service (Services are many:
/// the daemon keeps this, not the objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbService {
    pub key: ServiceKey,
    pub labels: BTreeMap<String, String>,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `spec.externalTrafficPolicy: Local`.
    pub local: bool,
    /// The IPs of `status.loadBalancer.ingress`, without repeats.
    pub ips: Vec<IpAddr>,
    /// Ingress entries that are not IPs (hostnames, garbage), as written.
    pub not_ips: Vec<String>,
}

impl LbService {
    /// The Service's view when it is of type LoadBalancer, else None.
    pub fn from_service(svc: &Service) -> Option<LbService> {
        let spec = svc.spec.as_ref()?;
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return None;
        }
        let (ips, not_ips) = ingress_ips(svc);
        Some(LbService {
            key: ServiceKey::of(svc),
            labels: labels_of(&svc.metadata),
            class: spec.load_balancer_class.clone(),
            deleting: svc.metadata.deletion_timestamp.is_some(),
            local: spec.external_traffic_policy.as_deref() == Some("Local"),
            ips,
            not_ips,
        })
    }

    /// Whether this speaker serves it: of our class, not being deleted.
    pub fn served(&self, lb_class: Option<&str>) -> bool {
        self.class.as_deref() == lb_class && !self.deleting
    }
}

/// Everything [`decide`] looks at.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The valid part of the configuration: pools, advertisements, peers,
    /// communities, Nodes and EndpointSlices.
    pub config: &'a Config,
    /// Services with their assigned IPs in `status.loadBalancer.ingress`.
    pub services: &'a [LbService],
    /// Live members of the speakers' membership; None when membership does
    /// not run (then Node readiness alone decides liveness).
    pub members: Option<&'a BTreeSet<String>>,
    /// This node's name.
    pub node: &'a str,
    /// The `loadBalancerClass` served; None serves Services without one.
    pub lb_class: Option<&'a str>,
}

/// This node's layer-2 announcement of one IP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct L2Announcement {
    /// Interfaces named by the advertisements; empty lets the announcer
    /// choose (interfaces whose subnet holds the IP, else the default
    /// route's).
    pub interfaces: Vec<String>,
    /// The Services holding the IP.
    pub services: Vec<ServiceKey>,
}

/// What becomes of one IP of one Service on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpDecision {
    pub ip: Option<IpAddr>,
    /// The pool whose addresses hold the IP (one shared name per pool).
    pub pool: Option<Arc<str>>,
    /// The layer-2 owner elected among eligible nodes, when layer 2 applies.
    pub l2_owner: Option<String>,
    /// Interfaces this node answers on (when it is the owner).
    pub l2_interfaces: Vec<String>,
    /// BGP peers (names, shared per peer) this node announces the IP to,
    /// with the prefix.
    pub bgp: Vec<(Arc<str>, Prefix)>,
    /// Why the IP is not announced here (by layer 2, BGP or at all).
    pub reasons: Vec<String>,
}

impl IpDecision {
    /// Whether this node announces the IP in any mode.
    pub fn announced_here(&self, node: &str) -> bool {
        self.l2_owner.as_deref() == Some(node) || !self.bgp.is_empty()
    }
}

/// What one Service gets on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDecision {
    pub key: ServiceKey,
    /// One entry per ingress IP (or one entry with `ip: None` and the
    /// reason when the ingress holds something unusable).
    pub ips: Vec<IpDecision>,
}

/// Everything this node announces, and why not the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    /// IPs this node answers ARP/NDP for.
    pub l2: BTreeMap<IpAddr, L2Announcement>,
    /// Per BGPPeer name: the prefixes to announce and their attributes.
    /// Routes with the same attributes share one `Arc` (thousands of
    /// prefixes, a handful of attribute sets).
    /// The map of each peer is shared with the BGP adapter, which keeps it
    /// as what it announced.
    pub bgp: BTreeMap<String, Arc<Routes>>,
    /// Per Service, per IP.
    pub services: Vec<ServiceDecision>,
    /// Why this node announces nothing at all, when it does not.
    pub node_excluded: Option<String>,
    /// Why this node is draining, when it is: it is no layer-2 candidate,
    /// and the BGP adapter sends its routes with the drain community, then
    /// withdraws them.
    pub draining: Option<String>,
    /// BGPPeers that select this node, whatever is announced to them.
    pub peers: Vec<String>,
}

struct PoolInfo<'c> {
    pool: &'c IPAddressPool,
    ranges: Vec<AddrRange>,
}

/// The routes to one peer and their attributes.
pub type Routes = BTreeMap<Prefix, Arc<RouteAttributes>>;

/// One shared copy of each distinct set of route attributes, and of each
/// peer and pool name: 10,000 Services hold pointers, not copies.
#[derive(Default)]
struct Interned {
    attributes: std::collections::HashMap<RouteAttributes, Arc<RouteAttributes>>,
    names: std::collections::HashMap<String, Arc<str>>,
}

impl Interned {
    fn get(&mut self, attrs: RouteAttributes) -> Arc<RouteAttributes> {
        self.attributes
            .entry(attrs)
            .or_insert_with_key(|a| Arc::new(a.clone()))
            .clone()
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(name.to_string(), n.clone());
        n
    }
}

/// How one node stands, for eligibility.
struct NodeInfo<'c> {
    name: &'c str,
    labels: BTreeMap<String, String>,
    /// None when eligible; else why not (for layer 2 and BGP alike).
    not_eligible: Option<String>,
    /// Why the node is not a live member (layer 2 only).
    not_live: Option<String>,
    /// Why the node is draining (not a layer-2 candidate).
    draining: Option<String>,
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// Why a Node may not announce (excluded by label, or not Ready); None when it may.
pub fn node_ineligibility(node: &Node) -> Option<String> {
    let name = name_of(&node.metadata);
    if node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_LABEL))
    {
        return Some(format!("node {name} is labelled {EXCLUDE_LABEL}"));
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status != "True" => Some(format!(
            "node {name} is not Ready (condition Ready is {})",
            c.status
        )),
        _ => None,
    }
}

/// The IPs in a Service's `status.loadBalancer.ingress`, and the entries
/// that are not IPs.
pub fn ingress_ips(svc: &Service) -> (Vec<IpAddr>, Vec<String>) {
    let mut ips = Vec::new();
    let mut bad = Vec::new();
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for entry in ingress.into_iter().flatten() {
        match entry.ip.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) if !ips.contains(&ip) => ips.push(ip),
            Some(Ok(_)) => {}
            Some(Err(_)) => bad.push(entry.ip.clone().unwrap_or_default()),
            None => bad.push(entry.hostname.clone().unwrap_or_default()),
        }
    }
    (ips, bad)
}

/// Nodes with an endpoint of the Service that counts for
/// `externalTrafficPolicy: Local`: ready ones; when there is none anywhere,
/// serving-but-terminating ones.
pub fn endpoint_nodes(slices: &[EndpointSlice], key: &ServiceKey) -> BTreeSet<String> {
    let mut ready = BTreeSet::new();
    let mut serving = BTreeSet::new();
    for slice in slices {
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if ns != key.namespace || owner.map(String::as_str) != Some(key.name.as_str()) {
            continue;
        }
        for ep in &slice.endpoints {
            let Some(node) = &ep.node_name else { continue };
            let cond = ep.conditions.as_ref();
            // Kubernetes: an unset `ready` is to be read as ready; an unset
            // `serving` as `ready`; an unset `terminating` as false.
            let is_ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let is_serving = cond.and_then(|c| c.serving).unwrap_or(is_ready);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            if is_ready && !terminating {
                ready.insert(node.clone());
            } else if is_serving && terminating {
                serving.insert(node.clone());
            }
        }
    }
    if ready.is_empty() { serving } else { ready }
}

fn selects_pool(
    names: &[String],
    selectors: &[LabelSelector],
    adv_ns: &str,
    pool: &IPAddressPool,
) -> bool {
    pool.metadata.namespace.as_deref().unwrap_or_default() == adv_ns
        && ((names.is_empty() && selectors.is_empty())
            || names.iter().any(|n| n == name_of(&pool.metadata))
            || selectors
                .iter()
                .any(|s| selector::matches(s, &labels_of(&pool.metadata))))
}

/// The selection fields L2Advertisement and BGPAdvertisement share.
trait Selects {
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    fn pools(&self) -> (&[String], &[LabelSelector]);
    fn service_selectors(&self) -> &[LabelSelector];

    /// Whether the advertisement applies to `pool` and to a Service with
    /// these labels.
    fn selects(&self, pool: &IPAddressPool, svc_labels: &BTreeMap<String, String>) -> bool {
        let ns = self.meta().namespace.as_deref().unwrap_or_default();
        let (names, selectors) = self.pools();
        selects_pool(names, selectors, ns, pool)
            && selector::matches_any(self.service_selectors(), svc_labels)
    }
}

impl Selects for L2Advertisement {
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn pools(&self) -> (&[String], &[LabelSelector]) {
        (
            &self.spec.ip_address_pools,
            &self.spec.ip_address_pool_selectors,
        )
    }
    fn service_selectors(&self) -> &[LabelSelector] {
        &self.spec.service_selectors
    }
}

impl Selects for BGPAdvertisement {
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn pools(&self) -> (&[String], &[LabelSelector]) {
        (
            &self.spec.ip_address_pools,
            &self.spec.ip_address_pool_selectors,
        )
    }
    fn service_selectors(&self) -> &[LabelSelector] {
        &self.spec.service_selectors
    }
}

/// Sum of the weights of an advertisement's preferred selectors a node matches.
fn preference(adv: &L2Advertisement, labels: &BTreeMap<String, String>) -> i64 {
    adv.spec
        .preferred_node_selectors
        .iter()
        .filter(|p| selector::matches(&p.preference, labels))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// A community value or alias, resolved in the advertisement's namespace.
fn resolve_community(cfg: &Config, namespace: &str, text: &str) -> Result<CommunityValue, String> {
    if CommunityValue::looks_like_value(text) {
        return CommunityValue::parse(text);
    }
    cfg.communities
        .iter()
        .filter(|c| c.metadata.namespace.as_deref().unwrap_or_default() == namespace)
        .flat_map(|c| &c.spec.communities)
        .find(|a| a.name == text)
        .ok_or_else(|| {
            format!(
                "community alias {text:?} is not defined by any Community in namespace {namespace}; the advertisement announces nothing until one defines it"
            )
        })
        .and_then(|a| {
            CommunityValue::parse(&a.value).map_err(|e| format!("community alias {text:?}: {e}"))
        })
}

/// The covering prefix of `ip` at the advertisement's aggregation length.
fn covering_prefix(adv: &BGPAdvertisement, ip: IpAddr) -> Result<Prefix, String> {
    let (len, max) = match ip {
        IpAddr::V4(_) => (adv.spec.aggregation_length, 32),
        IpAddr::V6(_) => (adv.spec.aggregation_length_v6, 128),
    };
    let len = u8::try_from(len)
        .ok()
        .filter(|l| i32::from(*l) <= max)
        .ok_or_else(|| format!("aggregation length {len} is outside 0-{max}"))?;
    let net = ipnet::IpNet::new(ip, len)
        .map_err(|e| e.to_string())?
        .trunc();
    Prefix::new(net.addr(), len).map_err(|e| e.to_string())
}

/// The communities of an advertisement, resolved in its namespace; Err
/// naming the first that cannot be resolved (an alias no Community defines
/// yet): the advertisement then announces nothing, rather than routes
/// without a community the operator asked for (such as no-export).
fn advertisement_communities(
    cfg: &Config,
    adv: &BGPAdvertisement,
) -> Result<RouteAttributes, String> {
    let ns = adv.metadata.namespace.as_deref().unwrap_or_default();
    let mut attrs = RouteAttributes::default();
    for text in &adv.spec.communities {
        match resolve_community(cfg, ns, text)? {
            CommunityValue::Standard(a, b) => attrs
                .communities
                .push(Community((u32::from(a) << 16) | u32::from(b))),
            CommunityValue::Large(g, l1, l2) => attrs.large_communities.push(LargeCommunity {
                global_admin: g,
                local_data1: l1,
                local_data2: l2,
            }),
        }
    }
    Ok(attrs)
}

/// The attributes of an advertisement's routes to one peer: its resolved
/// communities and, to iBGP peers, its local preference.
fn route_attributes(
    communities: &RouteAttributes,
    adv: &BGPAdvertisement,
    peer: &BGPPeer,
) -> RouteAttributes {
    let mut attrs = communities.clone();
    if peer_is_external(peer) == Some(false) {
        attrs.local_pref = adv.spec.local_pref;
    }
    attrs
}

/// Two advertisements of one prefix to one peer: the union of their
/// communities and the higher local preference.
fn merge_attributes(into: &mut RouteAttributes, from: RouteAttributes) {
    for c in from.communities {
        if !into.communities.contains(&c) {
            into.communities.push(c);
        }
    }
    for c in from.large_communities {
        if !into.large_communities.contains(&c) {
            into.large_communities.push(c);
        }
    }
    into.local_pref = match (into.local_pref, from.local_pref) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    into.communities.sort();
    into.large_communities.sort();
}

/// Decides what this node announces. Pure: the same inputs always give the
/// same result on every node.
pub fn decide(inputs: Inputs<'_>) -> Desired {
    let cfg = inputs.config;
    let mut desired = Desired::default();
    let mut interned = Interned::default();
    let pools: Vec<PoolInfo<'_>> = cfg
        .ip_address_pools
        .iter()
        .map(|pool| PoolInfo {
            pool,
            ranges: pool
                .spec
                .addresses
                .iter()
                .filter_map(|a| AddrRange::parse(a).ok())
                .collect(),
        })
        .collect();
    let nodes: Vec<NodeInfo<'_>> = cfg
        .nodes
        .iter()
        .map(|n| {
            let name = name_of(&n.metadata);
            NodeInfo {
                name,
                labels: labels_of(&n.metadata),
                not_eligible: node_ineligibility(n),
                not_live: match inputs.members {
                    Some(m) if !m.contains(name) => {
                        Some(format!("node {name} is not a live member of the speakers"))
                    }
                    _ => None,
                },
                draining: n
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(DRAIN_LABEL))
                    .filter(|v| v.as_str() == "true")
                    .map(|_| format!("node {name} is draining (label {DRAIN_LABEL}=true)")),
            }
        })
        .collect();
    let me = nodes.iter().find(|n| n.name == inputs.node);
    let my_labels = me.map(|n| n.labels.clone()).unwrap_or_default();
    desired.node_excluded = match me {
        None => Some(format!(
            "there is no Node object named {}: this speaker announces nothing",
            inputs.node
        )),
        Some(n) => n.not_eligible.clone(),
    };
    desired.draining = me.and_then(|n| n.draining.clone());
    desired.peers = cfg
        .bgp_peers
        .iter()
        .filter(|p| selector::matches_any(&p.spec.node_selectors, &my_labels))
        .map(|p| name_of(&p.metadata).to_string())
        .collect();

    let excluded = desired.node_excluded.clone();
    let mut services: Vec<&LbService> = inputs
        .services
        .iter()
        .filter(|s| s.served(inputs.lb_class))
        .collect();
    services.sort_by(|a, b| a.key.cmp(&b.key));
    for svc in services {
        let key = svc.key.clone();
        let svc_labels = &svc.labels;
        let endpoint_nodes = svc
            .local
            .then(|| endpoint_nodes(&cfg.endpoint_slices, &key));
        let (ips, bad) = (svc.ips.iter().copied(), svc.not_ips.iter().cloned());
        // Exactly sized: one decision per IP, for every Service.
        let mut decision = ServiceDecision {
            key: key.clone(),
            ips: Vec::with_capacity(svc.ips.len() + svc.not_ips.len()),
        };
        for text in bad {
            decision.ips.push(IpDecision {
                reasons: vec![format!(
                    "status.loadBalancer.ingress holds {text:?}, which is not an IP address"
                )],
                ..IpDecision::default()
            });
        }
        for ip in ips {
            let d = decide_ip(
                inputs,
                &pools,
                &nodes,
                &my_labels,
                excluded.as_deref(),
                &key,
                svc_labels,
                endpoint_nodes.as_ref(),
                ip,
                &mut desired,
                &mut interned,
            );
            decision.ips.push(d);
        }
        desired.services.push(decision);
    }
    desired
}

/// Why a node may not announce the Service (eligibility and endpoints).
fn node_blocked(node: &NodeInfo<'_>, endpoint_nodes: Option<&BTreeSet<String>>) -> Option<String> {
    if let Some(r) = &node.not_eligible {
        return Some(r.clone());
    }
    match endpoint_nodes {
        Some(eps) if !eps.contains(node.name) => Some(format!(
            "externalTrafficPolicy is Local and node {} has no ready endpoint",
            node.name
        )),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn decide_ip(
    inputs: Inputs<'_>,
    pools: &[PoolInfo<'_>],
    nodes: &[NodeInfo<'_>],
    my_labels: &BTreeMap<String, String>,
    excluded: Option<&str>,
    key: &ServiceKey,
    svc_labels: &BTreeMap<String, String>,
    endpoint_nodes: Option<&BTreeSet<String>>,
    ip: IpAddr,
    desired: &mut Desired,
    interned: &mut Interned,
) -> IpDecision {
    let cfg = inputs.config;
    let mut d = IpDecision {
        ip: Some(ip),
        ..IpDecision::default()
    };
    let Some(pool) = pools
        .iter()
        .find(|p| p.ranges.iter().any(|r| r.contains(&ip)))
    else {
        d.reasons
            .push(format!("not announcing {ip}: no IPAddressPool holds it"));
        return d;
    };
    let pool_name = name_of(&pool.pool.metadata).to_string();
    d.pool = Some(interned.name(&pool_name));

    // Layer 2.
    let l2_advs: Vec<&L2Advertisement> = cfg
        .l2_advertisements
        .iter()
        .filter(|a| a.selects(pool.pool, svc_labels))
        .collect();
    let bgp_advs: Vec<&BGPAdvertisement> = cfg
        .bgp_advertisements
        .iter()
        .filter(|a| a.selects(pool.pool, svc_labels))
        .collect();
    if l2_advs.is_empty() && bgp_advs.is_empty() {
        d.reasons.push(format!(
            "not announcing {ip}: no L2Advertisement or BGPAdvertisement selects pool {pool_name} and Service {key}"
        ));
        return d;
    }
    if !l2_advs.is_empty() {
        let mut candidates = Vec::new();
        let mut why_not = Vec::new();
        // Why this node is not a candidate, when it is not.
        let mut mine = None;
        for node in nodes {
            let applying: Vec<&&L2Advertisement> = l2_advs
                .iter()
                .filter(|a| selector::matches_any(&a.spec.node_selectors, &node.labels))
                .collect();
            if applying.is_empty() {
                let r = format!(
                    "no L2Advertisement selecting pool {pool_name} selects node {}",
                    node.name
                );
                if node.name == inputs.node {
                    mine = Some(r.clone());
                }
                why_not.push(r);
                continue;
            }
            if let Some(r) = node_blocked(node, endpoint_nodes)
                .or_else(|| node.not_live.clone())
                .or_else(|| node.draining.clone())
            {
                if node.name == inputs.node {
                    mine = Some(r.clone());
                }
                why_not.push(r);
                continue;
            }
            let weight = applying
                .iter()
                .map(|a| preference(a, &node.labels))
                .max()
                .unwrap_or(0);
            candidates.push(Candidate {
                node: node.name,
                weight,
            });
        }
        match election::owner(ip, &candidates) {
            Some(owner) => {
                d.l2_owner = Some(owner.to_string());
                if owner == inputs.node {
                    let mut interfaces: Vec<String> = Vec::new();
                    let mut any = false;
                    for a in l2_advs
                        .iter()
                        .filter(|a| selector::matches_any(&a.spec.node_selectors, my_labels))
                    {
                        if a.spec.interfaces.is_empty() {
                            any = true;
                        }
                        for i in &a.spec.interfaces {
                            if !interfaces.contains(i) {
                                interfaces.push(i.clone());
                            }
                        }
                    }
                    if any {
                        interfaces.clear();
                    }
                    d.l2_interfaces = interfaces.clone();
                    let entry = desired.l2.entry(ip).or_insert_with(|| L2Announcement {
                        interfaces,
                        services: Vec::new(),
                    });
                    entry.services.push(key.clone());
                } else {
                    // This node's own reason first, when it could not be
                    // elected at all (an Event then says why it stopped).
                    d.reasons.push(match &mine {
                        Some(r) => format!(
                            "not answering for {ip} on layer 2: {r}; node {owner} is the elected owner"
                        ),
                        None => format!(
                            "not answering for {ip} on layer 2: node {owner} is the elected owner"
                        ),
                    });
                }
            }
            None => {
                why_not.dedup();
                d.reasons.push(format!(
                    "not announcing {ip} on layer 2: no node is eligible ({})",
                    why_not.join("; ")
                ));
            }
        }
    }

    // BGP: this node only.
    if !bgp_advs.is_empty() {
        let me = nodes.iter().find(|n| n.name == inputs.node);
        let blocked = match me {
            None => Some(
                excluded
                    .unwrap_or("this node has no Node object")
                    .to_string(),
            ),
            Some(n) => node_blocked(n, endpoint_nodes),
        };
        if let Some(r) = blocked {
            d.reasons.push(format!("not announcing {ip} over BGP: {r}"));
        } else {
            let mut any_adv = false;
            for adv in &bgp_advs {
                if !selector::matches_any(&adv.spec.node_selectors, my_labels) {
                    continue;
                }
                any_adv = true;
                let prefix = match covering_prefix(adv, ip) {
                    Ok(p) => p,
                    Err(e) => {
                        d.reasons.push(format!(
                            "not announcing {ip} over BGP for BGPAdvertisement {}: {e}",
                            name_of(&adv.metadata)
                        ));
                        continue;
                    }
                };
                let communities = match advertisement_communities(cfg, adv) {
                    Ok(c) => c,
                    Err(e) => {
                        d.reasons.push(format!(
                            "not announcing {ip} over BGP for BGPAdvertisement {}: {e}",
                            name_of(&adv.metadata)
                        ));
                        continue;
                    }
                };
                let peers = cfg.bgp_peers.iter().filter(|p| {
                    let name = name_of(&p.metadata);
                    (adv.spec.peers.is_empty() || adv.spec.peers.iter().any(|n| n == name))
                        && selector::matches_any(&p.spec.node_selectors, my_labels)
                });
                let mut any_peer = false;
                for peer in peers {
                    any_peer = true;
                    let name = interned.name(name_of(&peer.metadata));
                    let mut attrs = route_attributes(&communities, adv, peer);
                    // Unique while deciding: make_mut never copies here.
                    let routes = Arc::make_mut(desired.bgp.entry(name.to_string()).or_default());
                    match routes.get_mut(&prefix) {
                        Some(existing) => {
                            let mut merged = RouteAttributes::clone(existing);
                            merge_attributes(&mut merged, attrs);
                            *existing = interned.get(merged);
                        }
                        None => {
                            attrs.communities.sort();
                            attrs.large_communities.sort();
                            routes.insert(prefix, interned.get(attrs));
                        }
                    }
                    if !d.bgp.contains(&(name.clone(), prefix)) {
                        d.bgp.push((name, prefix));
                    }
                }
                if !any_peer {
                    let adv_ns = adv.metadata.namespace.as_deref().unwrap_or_default();
                    let undefined: Vec<&str> = adv
                        .spec
                        .peers
                        .iter()
                        .filter(|n| {
                            !cfg.bgp_peers.iter().any(|p| {
                                name_of(&p.metadata) == n.as_str()
                                    && p.metadata.namespace.as_deref().unwrap_or_default() == adv_ns
                            })
                        })
                        .map(String::as_str)
                        .collect();
                    let undefined = if undefined.is_empty() {
                        String::new()
                    } else {
                        format!(" (not defined yet: BGPPeer {})", undefined.join(", "))
                    };
                    d.reasons.push(format!(
                        "not announcing {ip} over BGP for BGPAdvertisement {}: no BGPPeer it names selects node {}{undefined}",
                        name_of(&adv.metadata),
                        inputs.node
                    ));
                }
            }
            if !any_adv {
                d.reasons.push(format!(
                    "not announcing {ip} over BGP: no BGPAdvertisement selecting pool {pool_name} selects node {}",
                    inputs.node
                ));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests;
