//! The verdicts: from a [`World`], why a Service is pending, assigned but
//! not announced, or announced; what a node announces and why not the
//! rest; how each node's session with a BGPPeer stands.
//!
//! Nothing here re-implements a rule. The allocation half runs the
//! controller's [`Allocator`] exactly as a controller starting now would
//! (pools set, assignments restored from the Services' status, one
//! reconcile) and asks it [`Allocator::pool_verdicts`]; the announcement
//! half runs the speakers' [`decide`] once per Node, with the inputs every
//! speaker has (membership is not visible from here: Node readiness alone
//! decides liveness), and compares what it says with what the speakers
//! reported (status objects, BGP sessions, conflicts).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_controller::allocator::{
    Allocator, IP_INVALIDATED, NotOurs, OutcomeState, ServiceKey, ServiceOutcome, Snapshot,
    namespace_labels,
};
use ferrolb_speaker::desired::{Desired, Inputs, IpDecision, decide};
use serde::Serialize;

use crate::world::{Origin, SessionSeen, World};

/// The value of `schema` in every JSON explanation.
pub const SCHEMA: &str = "ferrolb.io/explain/v1";

/// Where a Service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every IP of the Service is announced (a node answers ARP/NDP for it,
    /// or a node has an established session to a peer it sends it to).
    Announced,
    /// The Service has no IP.
    Pending,
    /// It has IPs and at least one of them is not announced.
    AssignedNotAnnounced,
}

impl Verdict {
    /// The process's exit code: 0 announced, 1 pending, 2 assigned but not
    /// announced (3 is an error: no verdict).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Announced => 0,
            Verdict::Pending => 1,
            Verdict::AssignedNotAnnounced => 2,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Announced => "announced",
            Verdict::Pending => "pending",
            Verdict::AssignedNotAnnounced => "assigned but not announced",
        }
    }
}

/// `explain service NS/NAME`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExplanation {
    pub schema: &'static str,
    pub kind: &'static str,
    /// `namespace/name`.
    pub service: String,
    /// Where the facts come from.
    pub source: String,
    pub verdict: Verdict,
    pub exit_code: u8,
    /// Why, most important first: for `Pending` the allocator's reason, for
    /// `AssignedNotAnnounced` each IP's reasons (`IP: reason`); empty when
    /// announced.
    pub reasons: Vec<String>,
    pub allocation: Allocation,
    /// One entry per IP in `status.loadBalancer.ingress`.
    pub ips: Vec<IpExplanation>,
    /// Facts that do not change the verdict but may matter.
    pub notes: Vec<String>,
}

/// The allocation half.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// `status.loadBalancer.ingress`: what the Service has.
    pub status_ips: Vec<IpAddr>,
    /// The `ferrolb.io/ip-allocated-from-pool` annotation.
    pub pool: Option<String>,
    /// What the allocator decides now.
    pub allocator: AllocatorDecision,
    /// Every pool in the order tried, with what it would give or why
    /// nothing (listed when the Service is pending).
    pub pools: Vec<PoolEntry>,
    /// Invalid IPAddressPools, ignored by the controller.
    pub ignored_pools: Vec<String>,
}

/// What the allocator decides for the Service now.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocatorDecision {
    /// `Assigned`, `Pending` or `NotServed` (another loadBalancerClass).
    pub state: String,
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
    /// For `Pending`: the reason (the text of its `AllocationFailed`
    /// Event); for `NotServed`: why.
    pub reason: Option<String>,
}

/// One pool's verdict for the Service.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolEntry {
    pub pool: String,
    /// What it would give (empty when rejected).
    pub ips: Vec<IpAddr>,
    /// Why it gives nothing.
    pub rejected: Option<String>,
}

/// The announcement half, for one IP.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpExplanation {
    pub ip: IpAddr,
    /// The pool holding it (None: no pool does).
    pub pool: Option<String>,
    pub announced: bool,
    /// Layer 2, when a node is elected for it.
    pub layer2: Option<Layer2>,
    /// Every route the decision makes for it: one per node and peer.
    pub bgp: Vec<BgpRoute>,
    /// Why it is not announced (empty when it is).
    pub reasons: Vec<String>,
    /// Other hosts claiming it.
    pub conflicts: Vec<String>,
    /// Per node, why that node does not announce it (the decision's reasons).
    pub other_nodes: Vec<NodeReasons>,
}

/// Layer 2 for one IP.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer2 {
    /// The node the decision elects (Node readiness only).
    pub elected_owner: Option<String>,
    /// The nodes whose speakers report answering for it.
    pub answering: Vec<L2Answer>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Answer {
    pub node: String,
    /// Interfaces it answers on (never empty: a node that reports none is
    /// not answering, and its reason says why).
    pub interfaces: Vec<String>,
    /// Since when (the ServiceL2Status' creation; cluster only).
    pub since: Option<String>,
}

/// One route of an IP from one node to one peer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpRoute {
    pub node: String,
    pub peer: String,
    pub prefix: String,
    #[serde(flatten)]
    pub attributes: Attributes,
    /// The node's session with the peer, as its speaker reported it.
    pub session: Option<SessionSeen>,
    /// Sent: the session is established and the speaker reports the
    /// Service announced to the peer.
    pub announced: bool,
}

/// A route's attributes.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub local_pref: Option<u32>,
}

impl Attributes {
    /// The attributes as the speaker sends them.
    pub fn of(a: &ferrolb_bgp::session::RouteAttributes) -> Attributes {
        Attributes {
            communities: a.communities.iter().map(ToString::to_string).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
            local_pref: a.local_pref,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReasons {
    pub node: String,
    pub reasons: Vec<String>,
}

/// The decision of every Node's speaker, by node name.
pub fn decisions(world: &World) -> BTreeMap<String, Desired> {
    let names: BTreeSet<&str> = world
        .config
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    names
        .into_iter()
        .map(|node| {
            (
                node.to_string(),
                decide(Inputs {
                    config: &world.config,
                    services: &world.speaker_services,
                    members: None,
                    node,
                    lb_class: world.lb_class.as_deref(),
                }),
            )
        })
        .collect()
}

/// The allocator as a controller starting now: pools set, every Service's
/// status claimed again, one reconcile.
fn allocate(world: &World) -> (Allocator, Vec<ServiceOutcome>) {
    let mut alloc = match &world.lb_class {
        Some(c) => Allocator::with_load_balancer_class(c.clone()),
        None => Allocator::new(),
    };
    alloc.set_pools(&world.config.ip_address_pools);
    let labels = namespace_labels(&world.config.namespaces);
    let snap = Snapshot::new(&world.services, &labels);
    alloc.restore(snap);
    let outcomes = alloc.reconcile(snap);
    (alloc, outcomes)
}

fn source(world: &World) -> String {
    world
        .origin
        .as_ref()
        .map(Origin::describe)
        .unwrap_or_default()
}

/// Where a speaker's own report is, for messages.
fn speaker_report_name(world: &World, node: &str) -> String {
    match &world.origin {
        Some(Origin::Directory(d)) => d
            .join("status")
            .join(format!("speaker-{node}.yaml"))
            .display()
            .to_string(),
        Some(Origin::Cluster { namespace }) => {
            format!("ConfigurationState {namespace}/speaker-{node}")
        }
        None => format!("speaker-{node}"),
    }
}

fn served_text(world: &World) -> String {
    match &world.lb_class {
        Some(c) => format!("Services of loadBalancerClass {c:?}"),
        None => "Services without a loadBalancerClass".to_string(),
    }
}

fn arp(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ARP" } else { "NDP" }
}

/// `explain service NAMESPACE/NAME`. An error (no verdict, exit 3) when the
/// Service does not exist or is no LoadBalancer FerroLB could serve.
pub fn explain_service(
    world: &World,
    namespace: &str,
    name: &str,
) -> Result<ServiceExplanation, String> {
    let key = ServiceKey::new(namespace, name);
    let svc = world
        .services
        .iter()
        .find(|s| s.key == key)
        .ok_or_else(|| format!("Service {key} not found in the {}", source(world)))?;
    let mut out = ServiceExplanation {
        schema: SCHEMA,
        kind: "Service",
        service: key.to_string(),
        source: source(world),
        verdict: Verdict::Pending,
        exit_code: 1,
        reasons: Vec::new(),
        allocation: Allocation {
            status_ips: svc.status_ips().to_vec(),
            pool: svc.pool_annotation().map(str::to_string),
            ..Allocation::default()
        },
        ips: Vec::new(),
        notes: world.notes.clone(),
    };
    out.allocation.ignored_pools = world
        .problems
        .iter()
        .filter(|p| p.is_error())
        .filter(|p| p.object.as_ref().is_some_and(|o| o.kind == "IPAddressPool"))
        .map(|p| format!("ignored because invalid: {p}"))
        .collect();

    match svc.not_ours(world.lb_class.as_deref()) {
        Some(NotOurs::NotLoadBalancer(t)) => {
            return Err(format!(
                "Service {key} is of type {}, not LoadBalancer: FerroLB gives IPs to LoadBalancer Services only",
                t.as_deref().unwrap_or("ClusterIP")
            ));
        }
        Some(NotOurs::Deleting) => {
            return Err(format!("Service {key} is being deleted"));
        }
        Some(why @ NotOurs::OtherClass(_)) => {
            let reason = format!(
                "{why}, but this FerroLB serves {} (class mismatch; --lb-class names the class its controller and speakers are run with)",
                served_text(world)
            );
            if !out.allocation.status_ips.is_empty() {
                return Err(format!(
                    "Service {key} is not FerroLB's ({reason}); its IPs come from another load balancer"
                ));
            }
            out.allocation.allocator = AllocatorDecision {
                state: "NotServed".into(),
                reason: Some(reason.clone()),
                ..AllocatorDecision::default()
            };
            out.reasons.push(reason);
            return Ok(out);
        }
        None => {}
    }

    let (alloc, outcomes) = allocate(world);
    let outcome = outcomes.iter().find(|o| o.service == key);
    out.allocation.allocator = match outcome.map(|o| &o.state) {
        Some(OutcomeState::Assigned) => AllocatorDecision {
            state: "Assigned".into(),
            ips: outcome.map(|o| o.ips.clone()).unwrap_or_default(),
            pool: outcome.and_then(|o| o.pool.clone()),
            reason: None,
        },
        Some(OutcomeState::Pending(r)) => AllocatorDecision {
            state: "Pending".into(),
            reason: Some(r.to_string()),
            ..AllocatorDecision::default()
        },
        _ => AllocatorDecision {
            state: "Pending".into(),
            reason: Some("the allocator gave no outcome for the Service".into()),
            ..AllocatorDecision::default()
        },
    };
    for e in outcome.iter().flat_map(|o| &o.events) {
        if e.reason == IP_INVALIDATED {
            out.notes.push(format!(
                "the controller's next round would do this: {}",
                e.message
            ));
        }
    }

    if out.allocation.status_ips.is_empty() {
        let labels = namespace_labels(&world.config.namespaces);
        let decision = &out.allocation.allocator;
        match (&decision.reason, decision.ips.is_empty()) {
            (Some(reason), _) => {
                out.reasons.push(reason.clone());
                out.allocation.pools = alloc
                    .pool_verdicts(svc, labels.get(namespace))
                    .into_iter()
                    .map(|v| PoolEntry {
                        pool: v.pool,
                        ips: v.result.clone().unwrap_or_default(),
                        rejected: v.result.err().map(|r| r.to_string()),
                    })
                    .collect();
                if world.config.ip_address_pools.is_empty()
                    && !out.allocation.ignored_pools.is_empty()
                {
                    out.reasons
                        .push("every IPAddressPool is invalid and ignored".to_string());
                }
            }
            (None, false) => out.reasons.push(format!(
                "status.loadBalancer.ingress is empty, but the allocator assigns {} from pool {} now: the controller has not written it (is ferrolb-controller running{}?)",
                join(&decision.ips),
                decision.pool.as_deref().unwrap_or("?"),
                match &world.origin {
                    Some(Origin::Directory(d)) => format!(
                        "? ferrolb-controller --standalone {} writes status/services.yaml",
                        d.display()
                    ),
                    _ => String::new(),
                }
            )),
            (None, true) => out
                .reasons
                .push("status.loadBalancer.ingress is empty".to_string()),
        }
        return Ok(out);
    }

    // Assigned: what the allocator says about the IPs it holds.
    let decision = &out.allocation.allocator;
    if decision.state == "Assigned" {
        let same = decision.ips.len() == out.allocation.status_ips.len()
            && decision
                .ips
                .iter()
                .all(|ip| out.allocation.status_ips.contains(ip));
        if !same {
            out.notes.push(format!(
                "the allocator would now assign {} from pool {} instead",
                join(&decision.ips),
                decision.pool.as_deref().unwrap_or("?")
            ));
        }
        if out.allocation.pool.is_none() {
            out.allocation.pool = decision.pool.clone();
        }
    } else if let Some(r) = &decision.reason {
        out.notes.push(format!(
            "the allocator would now release these IPs and leave the Service pending: {r}"
        ));
    }

    let decisions = decisions(world);
    if decisions.is_empty() {
        out.notes.push(
            "there are no Node objects: no speaker announces anything (standalone: write the cluster's Nodes into the directory)".to_string(),
        );
    }
    let key_text = key.to_string();
    let elected: BTreeMap<IpAddr, Option<String>> = out
        .allocation
        .status_ips
        .iter()
        .map(|ip| {
            let owner = decisions
                .values()
                .find_map(|d| ip_decision(d, &key_text, *ip).and_then(|x| x.l2_owner.clone()));
            (*ip, owner)
        })
        .collect();
    for ip in out.allocation.status_ips.clone() {
        out.ips
            .push(explain_ip(world, &key_text, ip, &decisions, &elected));
    }
    if out.ips.iter().all(|i| i.announced) {
        out.verdict = Verdict::Announced;
    } else {
        // Objects the daemons ignore may be why.
        for p in world.problems.iter().filter(|p| p.is_error()) {
            if p.object.as_ref().is_none_or(|o| o.kind != "IPAddressPool") {
                out.notes.push(format!("ignored because invalid: {p}"));
            }
        }
        out.verdict = Verdict::AssignedNotAnnounced;
        for i in out.ips.iter().filter(|i| !i.announced) {
            for r in &i.reasons {
                out.reasons.push(format!("{}: {r}", i.ip));
            }
        }
    }
    out.exit_code = out.verdict.exit_code();
    Ok(out)
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The decision about one IP of one Service in a node's decision.
fn ip_decision<'d>(d: &'d Desired, service: &str, ip: IpAddr) -> Option<&'d IpDecision> {
    d.services
        .iter()
        .find(|s| s.key.to_string() == service)?
        .ips
        .iter()
        .find(|x| x.ip == Some(ip))
}

fn push_unique(list: &mut Vec<String>, text: String) {
    if !list.contains(&text) {
        list.push(text);
    }
}

fn explain_ip(
    world: &World,
    service: &str,
    ip: IpAddr,
    decisions: &BTreeMap<String, Desired>,
    elected: &BTreeMap<IpAddr, Option<String>>,
) -> IpExplanation {
    let observed = &world.observed;
    let owner = elected.get(&ip).cloned().flatten();
    let mut out = IpExplanation {
        ip,
        pool: None,
        announced: false,
        layer2: None,
        bgp: Vec::new(),
        reasons: Vec::new(),
        conflicts: Vec::new(),
        other_nodes: Vec::new(),
    };

    // What each node's decision says.
    let mut decision_reasons: Vec<String> = Vec::new();
    // The interfaces the advertisements name for the elected owner.
    let mut listed: Vec<String> = Vec::new();
    for (node, desired) in decisions {
        let Some(d) = ip_decision(desired, service, ip) else {
            continue;
        };
        if owner.as_deref() == Some(node.as_str()) {
            listed = d.l2_interfaces.clone();
        }
        if out.pool.is_none() {
            out.pool = d.pool.as_deref().map(str::to_string);
        }
        for (peer, prefix) in &d.bgp {
            let peer: &str = peer;
            let attributes = desired
                .bgp
                .get(peer)
                .and_then(|routes| routes.get(prefix))
                .map(|a| Attributes::of(a))
                .unwrap_or_default();
            let session = observed
                .sessions
                .get(peer)
                .and_then(|by_node| by_node.get(node))
                .cloned();
            let reported = observed.bgp.iter().any(|b| {
                b.service == service && b.node == *node && b.peers.iter().any(|p| p == peer)
            });
            out.bgp.push(BgpRoute {
                node: node.clone(),
                peer: peer.to_string(),
                prefix: prefix.to_string(),
                attributes,
                announced: reported && session.as_ref().is_some_and(SessionSeen::established),
                session,
            });
        }
        if !d.reasons.is_empty() && !d.announced_here(node) {
            out.other_nodes.push(NodeReasons {
                node: node.clone(),
                reasons: d.reasons.clone(),
            });
        }
        for r in &d.reasons {
            // "node X is the elected owner" only says another node answers.
            if owner
                .as_ref()
                .is_some_and(|o| r.ends_with(&format!("node {o} is the elected owner")))
            {
                continue;
            }
            push_unique(&mut decision_reasons, r.clone());
        }
    }

    // Layer 2: who answers, by the speakers' reports.
    let status_nodes: Vec<&crate::world::L2Seen> = observed
        .l2
        .iter()
        .filter(|s| s.service == service)
        .collect();
    let answering_nodes: Vec<String> = match &observed.l2_by_ip {
        Some(by_ip) => by_ip
            .iter()
            .filter(|(i, _)| *i == ip)
            .map(|(_, n)| n.clone())
            .collect(),
        None => {
            let nodes: BTreeSet<&str> = status_nodes.iter().map(|s| s.node.as_str()).collect();
            match &owner {
                Some(o) if nodes.contains(o.as_str()) => vec![o.clone()],
                _ => {
                    // A status naming another node: the one not elected for
                    // any other IP of the Service answers for this one.
                    let others: BTreeSet<&str> = elected
                        .iter()
                        .filter(|(i, _)| **i != ip)
                        .filter_map(|(_, o)| o.as_deref())
                        .collect();
                    nodes.difference(&others).map(|n| n.to_string()).collect()
                }
            }
        }
    };
    let mut silent_reasons: Vec<String> = Vec::new();
    if owner.is_some() || !answering_nodes.is_empty() {
        let answering: Vec<L2Answer> = answering_nodes
            .iter()
            .map(|n| {
                let seen = status_nodes.iter().find(|s| s.node == *n);
                L2Answer {
                    node: n.clone(),
                    interfaces: seen.map(|s| s.interfaces.clone()).unwrap_or_default(),
                    since: seen.and_then(|s| s.since.clone()),
                }
            })
            .collect();
        // A status that names no interface: the node holds the IP but
        // none of its interfaces can announce it (e.g. the advertisement
        // names interfaces the node does not have).
        let (answering, silent): (Vec<L2Answer>, Vec<L2Answer>) =
            answering.into_iter().partition(|a| {
                !a.interfaces.is_empty() || !status_nodes.iter().any(|s| s.node == a.node)
            });
        for a in &silent {
            let why = if listed.is_empty() {
                format!(
                    "none of its interfaces has an address in a subnet holding {ip}, nor the default route"
                )
            } else {
                format!(
                    "the L2Advertisement names {}, and node {} has none of them (or none is up)",
                    listed.join(", "),
                    a.node
                )
            };
            silent_reasons.push(format!(
                "node {} is elected to answer {} for {ip}, but answers on no interface: {why}",
                a.node,
                arp(&ip)
            ));
        }
        if let Some(o) = &owner
            && !answering.is_empty()
            && !answering.iter().any(|a| a.node == *o)
        {
            out.conflicts.push(format!(
                "the decision over Node readiness elects {o}, but {} answers {} for it (the speakers' membership may see {o} as not live)",
                answering_nodes.join(", "),
                arp(&ip)
            ));
        }
        if answering.len() > 1 {
            out.conflicts.push(format!(
                "more than one node reports answering {} for it: {}",
                arp(&ip),
                answering_nodes.join(", ")
            ));
        }
        out.layer2 = Some(Layer2 {
            elected_owner: owner.clone(),
            answering,
        });
    }
    for c in &observed.conflicts {
        let about_ip =
            c.ip == Some(ip) || (c.ip.is_none() && c.text.contains(&format!("claims {ip} ")));
        let about_service = c.service.as_deref().is_none_or(|s| s == service);
        if about_ip && about_service {
            push_unique(&mut out.conflicts, c.text.clone());
        }
    }

    let l2_announced = out.layer2.as_ref().is_some_and(|l| !l.answering.is_empty());
    let bgp_announced = out.bgp.iter().any(|r| r.announced);
    out.announced = l2_announced || bgp_announced;
    if out.announced {
        return out;
    }

    // Not announced: the decision's reasons, then what the speakers say.
    out.reasons = decision_reasons;
    let silent_owner = owner.as_ref().is_some_and(|o| {
        silent_reasons
            .iter()
            .any(|r| r.starts_with(&format!("node {o} ")))
    });
    out.reasons.append(&mut silent_reasons);
    if let Some(o) = owner.as_ref().filter(|_| !silent_owner) {
        let why = match observed.speakers.get(o) {
            None => format!(
                "its speaker has not reported ({} does not exist): is ferrolb-speaker running on {o}?",
                speaker_report_name(world, o)
            ),
            Some(r) => match &r.layer2_error {
                Some(e) => format!("its speaker cannot run layer 2: {e}"),
                None => "its speaker does not report answering for it".to_string(),
            },
        };
        out.reasons.push(format!(
            "node {o} is elected to answer {} for {ip}, but {why}",
            arp(&ip)
        ));
    }
    let mut sessions_down = Vec::new();
    for r in &out.bgp {
        let text = match &r.session {
            Some(s) if s.established() => format!(
                "node {} has an established session to BGPPeer {}, but its speaker does not report announcing the Service to it",
                r.node, r.peer
            ),
            Some(s) => format!(
                "no established session from node {} to BGPPeer {} (state {}{}): {} is not sent",
                r.node,
                r.peer,
                s.state,
                s.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default(),
                r.prefix
            ),
            None if observed.speakers.contains_key(&r.node) => format!(
                "no established session from node {} to BGPPeer {}: its speaker reports no session with it",
                r.node, r.peer
            ),
            None => format!(
                "no established session from node {} to BGPPeer {}: its speaker has not reported ({} does not exist)",
                r.node,
                r.peer,
                speaker_report_name(world, &r.node)
            ),
        };
        push_unique(&mut sessions_down, text);
    }
    out.reasons.extend(sessions_down);
    if out.reasons.is_empty() {
        out.reasons.push(if decisions.is_empty() {
            "there are no Node objects".to_string()
        } else {
            "no speaker's decision covers it".to_string()
        });
    }
    out
}

// ---------------------------------------------------------------- node

/// `explain node NAME`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExplanation {
    pub schema: &'static str,
    pub kind: &'static str,
    pub node: String,
    pub source: String,
    /// Why the node announces nothing at all (None: it is eligible).
    pub excluded: Option<String>,
    /// Its speaker's own report (None: it has not reported).
    pub speaker: Option<SpeakerView>,
    /// Every BGPPeer selecting the node: the session and the routes sent.
    pub peers: Vec<NodePeer>,
    /// What the node announces.
    pub announces: Vec<NodeAnnouncement>,
    /// Every Service IP the node does not announce, and why.
    pub not_announced: Vec<NodeNotAnnounced>,
    pub conflicts: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerView {
    pub membership: Option<String>,
    pub layer2_error: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePeer {
    pub peer: String,
    pub session: Option<SessionSeen>,
    /// The routes the decision sends on the session.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub prefix: String,
    #[serde(flatten)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAnnouncement {
    pub service: String,
    pub ip: IpAddr,
    /// Answers ARP/NDP for it.
    pub layer2: bool,
    pub interfaces: Vec<String>,
    /// Peers and prefixes it is sent to.
    pub bgp: Vec<PeerPrefix>,
    /// Whether the speaker's status objects say so too.
    pub reported: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPrefix {
    pub peer: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeNotAnnounced {
    pub service: String,
    pub ip: Option<IpAddr>,
    pub pool: Option<String>,
    pub reasons: Vec<String>,
}

/// `explain node NAME`: an error when there is no such Node.
pub fn explain_node(world: &World, node: &str) -> Result<NodeExplanation, String> {
    if !world
        .config
        .nodes
        .iter()
        .any(|n| n.metadata.name.as_deref() == Some(node))
    {
        return Err(format!("Node {node} not found in the {}", source(world)));
    }
    let desired = decide(Inputs {
        config: &world.config,
        services: &world.speaker_services,
        members: None,
        node,
        lb_class: world.lb_class.as_deref(),
    });
    let observed = &world.observed;
    let report = observed.speakers.get(node);
    let mut out = NodeExplanation {
        schema: SCHEMA,
        kind: "Node",
        node: node.to_string(),
        source: source(world),
        excluded: desired.node_excluded.clone(),
        speaker: report.map(|r| SpeakerView {
            membership: r.membership.clone(),
            layer2_error: r.layer2_error.clone(),
            problems: r.problems.clone(),
        }),
        peers: Vec::new(),
        announces: Vec::new(),
        not_announced: Vec::new(),
        conflicts: Vec::new(),
        notes: world.notes.clone(),
    };
    if report.is_none() {
        out.notes.push(format!(
            "its speaker has not reported ({} does not exist): what follows is what it would do",
            speaker_report_name(world, node)
        ));
    }
    for peer in &desired.peers {
        let routes = desired
            .bgp
            .get(peer)
            .map(|routes| {
                routes
                    .iter()
                    .map(|(prefix, a)| Route {
                        prefix: prefix.to_string(),
                        attributes: Attributes::of(a),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.peers.push(NodePeer {
            peer: peer.clone(),
            session: observed
                .sessions
                .get(peer)
                .and_then(|m| m.get(node))
                .cloned(),
            routes,
        });
    }
    for s in &desired.services {
        let service = s.key.to_string();
        for d in &s.ips {
            if let Some(ip) = d.ip
                && d.announced_here(node)
            {
                let layer2 = d.l2_owner.as_deref() == Some(node);
                let reported_l2 = match &observed.l2_by_ip {
                    Some(set) => set.contains(&(ip, node.to_string())),
                    None => observed
                        .l2
                        .iter()
                        .any(|x| x.service == service && x.node == node),
                };
                let reported_bgp = observed
                    .bgp
                    .iter()
                    .any(|x| x.service == service && x.node == node);
                out.announces.push(NodeAnnouncement {
                    service: service.clone(),
                    ip,
                    layer2,
                    interfaces: d.l2_interfaces.clone(),
                    bgp: d
                        .bgp
                        .iter()
                        .map(|(p, prefix)| PeerPrefix {
                            peer: p.to_string(),
                            prefix: prefix.to_string(),
                        })
                        .collect(),
                    reported: (!layer2 || reported_l2) && (d.bgp.is_empty() || reported_bgp),
                });
            }
            if !d.reasons.is_empty() {
                out.not_announced.push(NodeNotAnnounced {
                    service: service.clone(),
                    ip: d.ip,
                    pool: d.pool.as_deref().map(str::to_string),
                    reasons: d.reasons.clone(),
                });
            }
        }
    }
    for c in &observed.conflicts {
        let here = match &c.node {
            Some(n) => n == node,
            None => c.text.contains(&format!(" on {node}'s ")),
        };
        if here {
            push_unique(&mut out.conflicts, c.text.clone());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- peer

/// `explain peer NAME`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerExplanation {
    pub schema: &'static str,
    pub kind: &'static str,
    pub peer: String,
    pub source: String,
    pub peer_address: Option<String>,
    pub interface: Option<String>,
    pub my_asn: u32,
    pub peer_asn: Option<u32>,
    /// BGPAdvertisements that reach it (naming it, or naming no peer).
    pub advertisements: Vec<String>,
    /// Every Node: whether the peer selects it, its session, the routes sent.
    pub nodes: Vec<PeerNode>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerNode {
    pub node: String,
    pub selected: bool,
    /// Why the node runs no session with the peer, or announces nothing.
    pub reason: Option<String>,
    pub session: Option<SessionSeen>,
    /// The routes the decision sends on the session.
    pub routes: Vec<Route>,
}

/// `explain peer NAME`: an error when there is no such (valid) BGPPeer.
pub fn explain_peer(world: &World, peer: &str) -> Result<PeerExplanation, String> {
    let Some(p) = world
        .config
        .bgp_peers
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(peer))
    else {
        let invalid: Vec<String> = world
            .problems
            .iter()
            .filter(|x| x.is_error())
            .filter(|x| {
                x.object
                    .as_ref()
                    .is_some_and(|o| o.kind == "BGPPeer" && o.name == peer)
            })
            .map(ToString::to_string)
            .collect();
        return Err(if invalid.is_empty() {
            format!("BGPPeer {peer} not found in the {}", source(world))
        } else {
            format!(
                "BGPPeer {peer} is invalid and ignored: {}",
                invalid.join("; ")
            )
        });
    };
    let mut out = PeerExplanation {
        schema: SCHEMA,
        kind: "BGPPeer",
        peer: peer.to_string(),
        source: source(world),
        peer_address: p.spec.peer_address.clone(),
        interface: p.spec.interface.clone(),
        my_asn: p.spec.my_asn,
        peer_asn: p.spec.peer_asn,
        advertisements: world
            .config
            .bgp_advertisements
            .iter()
            .filter(|a| a.spec.peers.is_empty() || a.spec.peers.iter().any(|n| n == peer))
            .filter_map(|a| a.metadata.name.clone())
            .collect(),
        nodes: Vec::new(),
    };
    for (node, desired) in decisions(world) {
        let selected = desired.peers.iter().any(|n| n == peer);
        let routes: Vec<Route> = desired
            .bgp
            .get(peer)
            .map(|routes| {
                routes
                    .iter()
                    .map(|(prefix, a)| Route {
                        prefix: prefix.to_string(),
                        attributes: Attributes::of(a),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reason = if !selected {
            Some(format!(
                "the BGPPeer's nodeSelectors do not select node {node}"
            ))
        } else {
            desired.node_excluded.clone()
        };
        out.nodes.push(PeerNode {
            session: world
                .observed
                .sessions
                .get(peer)
                .and_then(|m| m.get(&node))
                .cloned(),
            node,
            selected,
            reason,
            routes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{BgpSeen, L2Seen, Observed, SessionSeen};

    const CONFIG: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10/31, \"2001:db8::10/127\"]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {ipAddressPools: [lan]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: routed, namespace: ferrolb-system}\nspec: {addresses: [203.0.113.10/32]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: routed, namespace: ferrolb-system}\nspec: {ipAddressPools: [routed], localPref: 200}\n---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: router, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64512, peerAddress: 198.51.100.1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node3}\n";

    /// A Service with its assigned IPs, as the controller writes it into
    /// `status/services.yaml`.
    fn service(name: &str, spec: &str, pool: &str, ips: &[&str]) -> String {
        let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, annotations: {{ferrolb.io/ip-allocated-from-pool: {pool}}}}}\nspec: {{type: LoadBalancer, {spec}ports: [{{port: 80}}]}}\nstatus: {{loadBalancer: {{ingress: [{}]}}}}\n",
            ingress.join(", ")
        )
    }

    /// A World read from a directory holding `CONFIG` and these Services
    /// with their IPs, as a cluster reports speakers (status per Service).
    fn world(services: &[String]) -> (tempfile::TempDir, World) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        let inputs: Vec<String> = services
            .iter()
            .map(|s| s.split("status:").next().unwrap().to_string())
            .collect();
        std::fs::write(dir.path().join("services.yaml"), inputs.join("---\n")).unwrap();
        std::fs::create_dir(dir.path().join("status")).unwrap();
        std::fs::write(
            dir.path().join("status/services.yaml"),
            services.join("---\n"),
        )
        .unwrap();
        let mut w = crate::world::from_directory(dir.path(), None).unwrap();
        w.observed = Observed::default();
        (dir, w)
    }

    fn seen_l2(w: &mut World, node: &str) {
        w.observed.speakers.insert(node.into(), Default::default());
        w.observed.l2.push(L2Seen {
            service: "default/web".into(),
            node: node.into(),
            interfaces: vec!["eth0".into()],
            since: Some("2026-01-01T00:00:00Z".into()),
        });
    }

    #[test]
    fn per_service_status_objects_are_attributed_to_each_ip() {
        let (_d, mut w) = world(&[service(
            "web",
            "ipFamilyPolicy: RequireDualStack, ",
            "lan",
            &["198.51.100.10", "2001:db8::10"],
        )]);
        let decided = decisions(&w);
        let owner = |ip: &str| {
            decided
                .values()
                .find_map(|d| {
                    ip_decision(d, "default/web", ip.parse().unwrap())?
                        .l2_owner
                        .clone()
                })
                .unwrap()
        };
        let (o4, o6) = (owner("198.51.100.10"), owner("2001:db8::10"));
        // Nothing reported yet: assigned, not announced, the owner named.
        let e = explain_service(&w, "default", "web").unwrap();
        assert_eq!(e.verdict, Verdict::AssignedNotAnnounced);
        assert_eq!(e.exit_code, 2);
        assert!(
            e.reasons[0].contains(&format!("node {o4} is elected to answer ARP")),
            "{:?}",
            e.reasons
        );
        // Both owners report (in a cluster: one ServiceL2Status each).
        seen_l2(&mut w, &o4);
        if o6 != o4 {
            seen_l2(&mut w, &o6);
        }
        let e = explain_service(&w, "default", "web").unwrap();
        assert_eq!(e.verdict, Verdict::Announced, "{e:#?}");
        for (i, o) in [(0, &o4), (1, &o6)] {
            let l2 = e.ips[i].layer2.as_ref().unwrap();
            assert_eq!(l2.answering.len(), 1);
            assert_eq!(&l2.answering[0].node, o);
            assert_eq!(
                l2.answering[0].since.as_deref(),
                Some("2026-01-01T00:00:00Z")
            );
            assert!(e.ips[i].conflicts.is_empty(), "{:?}", e.ips[i].conflicts);
        }
    }

    #[test]
    fn a_status_naming_another_node_is_announced_with_a_note() {
        let (_d, mut w) = world(&[service("web", "", "lan", &["198.51.100.10"])]);
        let e = explain_service(&w, "default", "web").unwrap();
        let elected = e.ips[0]
            .layer2
            .as_ref()
            .unwrap()
            .elected_owner
            .clone()
            .unwrap();
        let other = ["node1", "node2", "node3"]
            .into_iter()
            .find(|n| *n != elected)
            .unwrap();
        seen_l2(&mut w, other);
        let e = explain_service(&w, "default", "web").unwrap();
        assert_eq!(e.verdict, Verdict::Announced);
        assert_eq!(e.ips[0].layer2.as_ref().unwrap().answering[0].node, other);
        assert!(
            e.ips[0].conflicts[0].contains(&format!("elects {elected}, but {other} answers ARP")),
            "{:?}",
            e.ips[0].conflicts
        );
    }

    #[test]
    fn bgp_needs_an_established_session_and_the_speakers_status() {
        let (_d, mut w) = world(&[service("routed", "", "routed", &["203.0.113.10"])]);
        for n in ["node1", "node2", "node3"] {
            w.observed.speakers.insert(n.into(), Default::default());
            w.observed.bgp.push(BgpSeen {
                service: "default/routed".into(),
                node: n.into(),
                peers: vec!["router".into()],
            });
        }
        let session = |state: &str| SessionSeen {
            state: state.into(),
            last_error: (state != "Established").then(|| "hold timer expired".into()),
            ..SessionSeen::default()
        };
        let sessions = w.observed.sessions.entry("router".into()).or_default();
        sessions.insert("node1".into(), session("Active"));
        sessions.insert("node2".into(), session("Connect"));
        let e = explain_service(&w, "default", "routed").unwrap();
        assert_eq!(e.verdict, Verdict::AssignedNotAnnounced);
        assert_eq!(
            e.ips[0].reasons,
            [
                "no established session from node node1 to BGPPeer router (state Active, last error: hold timer expired): 203.0.113.10/32 is not sent",
                "no established session from node node2 to BGPPeer router (state Connect, last error: hold timer expired): 203.0.113.10/32 is not sent",
                "no established session from node node3 to BGPPeer router: its speaker reports no session with it",
            ]
        );
        // iBGP: the advertisement's local preference is sent.
        assert_eq!(e.ips[0].bgp[0].attributes.local_pref, Some(200));
        w.observed
            .sessions
            .get_mut("router")
            .unwrap()
            .insert("node3".into(), session("Established"));
        let e = explain_service(&w, "default", "routed").unwrap();
        assert_eq!(e.verdict, Verdict::Announced);
        let sent: Vec<&str> = e.ips[0]
            .bgp
            .iter()
            .filter(|r| r.announced)
            .map(|r| r.node.as_str())
            .collect();
        assert_eq!(sent, ["node3"]);
        // The peer's view: each node's session and the route it sends.
        let p = explain_peer(&w, "router").unwrap();
        assert_eq!(p.nodes.len(), 3);
        assert!(p.nodes.iter().all(|n| n.selected && n.routes.len() == 1));
        assert_eq!(p.nodes[2].session.as_ref().unwrap().state, "Established");
        assert!(explain_peer(&w, "nope").is_err());
    }

    #[test]
    fn node_explanation_lists_what_it_announces_and_why_not_the_rest() {
        let (_d, w) = world(&[
            service("web", "", "lan", &["198.51.100.10"]),
            service("routed", "", "routed", &["203.0.113.10"]),
        ]);
        let e = explain_service(&w, "default", "web").unwrap();
        let owner = e.ips[0]
            .layer2
            .as_ref()
            .unwrap()
            .elected_owner
            .clone()
            .unwrap();
        let other = ["node1", "node2", "node3"]
            .into_iter()
            .find(|n| *n != owner)
            .unwrap();
        let n = explain_node(&w, other).unwrap();
        assert!(n.speaker.is_none());
        assert_eq!(n.peers.len(), 1);
        assert_eq!(n.peers[0].routes[0].prefix, "203.0.113.10/32");
        assert_eq!(n.announces.len(), 1);
        assert_eq!(n.announces[0].service, "default/routed");
        assert_eq!(n.not_announced[0].service, "default/web");
        assert!(
            n.not_announced[0].reasons[0].ends_with(&format!("node {owner} is the elected owner")),
            "{:?}",
            n.not_announced
        );
        assert!(explain_node(&w, "node9").is_err());
    }
}
