//! `plan -f NEW.yaml`: what would change if a proposal were applied, before
//! it is. The proposal is the current state with the files' objects applied
//! over it (each replaces the object of the same kind, namespace and name,
//! or is added, as `kubectl apply` does), the objects named by `--delete`
//! removed, and with `--prune` every FerroLB configuration object the files
//! do not hold removed. Nothing is written.
//!
//! Nothing here re-implements a rule. The allocation half runs the
//! controller's [`Allocator`]: the current assignments are a controller
//! starting now (pools set, the Services' status claimed again, one round,
//! as `explain` does); the proposed ones are what that same controller
//! does when the configuration changes (`set_pools` with the proposal's
//! valid pools, then one round over the proposal's Services: the cluster
//! loop and the long-running standalone loop keep their allocator across
//! rounds and restore only when they start). A controller restarted over the
//! proposal (restore, then one round) is computed too; where it would
//! decide otherwise, a note says so. The announcement half runs the
//! speakers' [`decide`] for every Node over the current and the proposed
//! configuration with the IPs of each, the live set being the Ready Nodes
//! (as `explain` does: the membership is not visible from outside).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferrolb_bgp::session::RouteAttributes;
use ferrolb_config::config::object_ref;
use ferrolb_config::crd::IPAddressPool;
use ferrolb_config::problem::ObjectRef;
use ferrolb_config::report::{pool_capacity, pool_status};
use ferrolb_config::source::load_paths;
use ferrolb_config::validate::valid_subset;
use ferrolb_config::{Config, Problem};
use ferrolb_controller::allocator::{
    ALLOCATED_FROM_POOL_ANNOTATION, Allocator, LbService as AllocService, OutcomeState,
    ServiceOutcome, Snapshot, namespace_labels,
};
use ferrolb_speaker::desired::{Desired, Inputs, LbService as SpeakerService, decide};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
use kube::Resource;
use serde::Serialize;

use crate::explain::Attributes;
use crate::world::{Origin, World, validate_as_read};

/// The value of `schema` in every JSON plan.
pub const SCHEMA: &str = "ferrolb.io/plan/v1";

/// Exit code: an IP a Service holds would change or be lost (with
/// `--fail-on any-change`: anything would change).
pub const EXIT_CHANGE: u8 = 4;
/// Exit code: the proposal has configuration errors the current
/// configuration does not have (the daemons would ignore those objects).
pub const EXIT_INVALID: u8 = 5;

/// FerroLB's configuration kinds: what `--prune` removes when the files do
/// not hold them.
pub const CONFIG_KINDS: [&str; 6] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "BFDProfile",
    "Community",
];

/// Kinds `--delete` and the files may name, and whether they are namespaced.
const KINDS: [(&str, bool); 11] = [
    ("IPAddressPool", true),
    ("L2Advertisement", true),
    ("BGPAdvertisement", true),
    ("BGPPeer", true),
    ("BFDProfile", true),
    ("Community", true),
    ("Service", true),
    ("EndpointSlice", true),
    ("Secret", true),
    ("Node", false),
    ("Namespace", false),
];

/// When `plan` exits [`EXIT_CHANGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// Never (0 unless there is no plan: 3).
    None,
    /// An IP a Service holds would change or be lost; or the proposal has
    /// new configuration errors (5).
    IpChange,
    /// Anything would change (a Service gets an IP, a pool's usage, an
    /// announcement); or the proposal has new configuration errors (5).
    AnyChange,
}

/// What is proposed.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// Files or directories of manifests (`-f`).
    pub files: Vec<PathBuf>,
    /// `KIND/[NAMESPACE/]NAME` (`--delete`).
    pub delete: Vec<String>,
    /// Remove every FerroLB configuration object the files do not hold.
    pub prune: bool,
}

// ---------------------------------------------------------------- the plan

/// `plan`: the whole answer (also the JSON document).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub schema: &'static str,
    pub kind: &'static str,
    /// Where the current state comes from.
    pub source: String,
    /// What the proposal does to the objects.
    pub edits: Edits,
    /// Every problem of the proposed configuration.
    pub problems: Vec<PlanProblem>,
    /// The proposed configuration has an error the current one has not.
    pub new_errors: bool,
    pub services: ServiceChanges,
    /// Pools whose usage or size changes, added or removed.
    pub pools: Vec<PoolChange>,
    /// Layer-2 IPs whose answering node changes.
    pub layer2: Vec<L2Change>,
    /// BGP routes added, withdrawn, or sent with other attributes.
    pub bgp: Vec<BgpChange>,
    pub notes: Vec<String>,
    /// An IP a Service holds would change or be lost.
    pub ip_change: bool,
    /// Anything at all would change.
    pub any_change: bool,
    pub fail_on: FailOn,
    pub exit_code: u8,
}

/// What the proposal does to the objects (`Kind namespace/name` each).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    pub files: Vec<String>,
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    /// Replaced by an identical object.
    pub unchanged: Vec<String>,
    pub deleted: Vec<String>,
    pub pruned: Vec<String>,
    /// Objects of the files the daemons would not read, and why.
    pub ignored: Vec<String>,
}

/// A configuration problem of the proposal, as `ferrolb-controller validate
/// --json` prints it, with whether the current configuration has it too.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanProblem {
    pub severity: String,
    pub file: Option<String>,
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
    /// The whole problem as one line (`FILE:LINE (document N): error: …`).
    pub text: String,
    /// The current configuration does not have it.
    pub new: bool,
}

/// What happens to the Services' IPs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChanges {
    /// Pending (or new) now, assigned with the proposal.
    pub get: Vec<ServiceIps>,
    /// Assigned now, without IPs with the proposal.
    pub lose: Vec<ServiceLoss>,
    /// Assigned now and with the proposal, other IPs (or another pool).
    pub change: Vec<ServiceChange>,
    /// Services keeping their IPs.
    pub unchanged: usize,
    /// Services pending now and with the proposal.
    pub still_pending: usize,
    /// Services the proposal adds that would be pending, and why.
    pub new_pending: Vec<ServicePending>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePending {
    pub service: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIps {
    pub service: String,
    pub ips: Vec<IpAddr>,
    pub pool: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLoss {
    pub service: String,
    pub ips: Vec<IpAddr>,
    pub pool: String,
    /// Why: the allocator's pending reason, or `deleted`, or why it is no
    /// longer FerroLB's.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChange {
    pub service: String,
    pub before: ServiceIps,
    pub after: ServiceIps,
    /// The IPs differ (false: only the pool does).
    pub ips_changed: bool,
}

/// A pool's counts, as the controller writes them in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: u64,
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: u64,
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: String,
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: String,
    /// Families with addresses and none left: `IPv4`, `IPv6`.
    pub exhausted: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolChange {
    pub pool: String,
    /// None: the pool does not exist (or is invalid) now.
    pub before: Option<PoolUsage>,
    /// None: it would not exist (or be invalid).
    pub after: Option<PoolUsage>,
    /// Families exhausted with the proposal and not now.
    pub newly_exhausted: Vec<String>,
    /// Families exhausted now and not with the proposal (or the pool goes).
    pub freed: Vec<String>,
}

/// Who answers ARP/NDP for a layer-2 IP.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Change {
    pub ip: IpAddr,
    pub services: Vec<String>,
    /// Empty: nobody now.
    pub from: Vec<String>,
    /// Empty: nobody with the proposal (not announced on layer 2).
    pub to: Vec<String>,
}

/// One route of one node to one peer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpChange {
    pub prefix: String,
    pub node: String,
    pub peer: String,
    /// `added`, `withdrawn` or `attributes`.
    pub change: &'static str,
    pub before: Option<Attributes>,
    pub after: Option<Attributes>,
    /// Services whose IPs the prefix covers (now or with the proposal).
    pub services: Vec<String>,
}

// ---------------------------------------------------------------- the proposal

/// The proposed state: the configuration as read (invalid objects
/// included), the problems found reading the files, the Services.
struct Proposed {
    full: Config,
    load_problems: Vec<Problem>,
    /// Services of the files, by `namespace/name` (namespace defaulted).
    services: BTreeMap<String, Service>,
    /// Services deleted (`namespace/name`).
    deleted_services: BTreeSet<String>,
    edits: Edits,
}

fn oref_text(o: &ObjectRef) -> String {
    o.to_string()
}

/// Applies `new` over `current` (by kind, namespace, name).
fn apply_kind<K>(current: &mut Vec<K>, new: &[K], edits: &mut Edits)
where
    K: Resource<DynamicType = ()> + Clone + Serialize,
{
    for n in new {
        let r = object_ref(n);
        match current.iter_mut().find(|c| object_ref(*c) == r) {
            Some(c) => {
                let same = applied_form(&*c) == applied_form(n);
                if same {
                    edits.unchanged.push(oref_text(&r));
                } else {
                    edits.replaced.push(oref_text(&r));
                }
                *c = n.clone();
            }
            None => {
                edits.added.push(oref_text(&r));
                current.push(n.clone());
            }
        }
    }
}

/// What `kubectl apply` of an object sets: everything but its status and
/// the metadata the API server keeps (resourceVersion, uid, …).
fn applied_form<K: Serialize>(obj: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(serde_json::Value::Object(meta)) = o.get_mut("metadata") {
            meta.retain(|k, _| {
                matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations")
            });
            if let Some(serde_json::Value::Object(a)) = meta.get_mut("annotations") {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
    }
    v
}

/// Removes the object `r` from `list`; whether it was there.
fn remove_kind<K: Resource<DynamicType = ()>>(list: &mut Vec<K>, r: &ObjectRef) -> bool {
    let before = list.len();
    list.retain(|o| object_ref(o) != *r);
    list.len() != before
}

fn remove_object(config: &mut Config, r: &ObjectRef) -> bool {
    match r.kind.as_str() {
        "IPAddressPool" => remove_kind(&mut config.ip_address_pools, r),
        "L2Advertisement" => remove_kind(&mut config.l2_advertisements, r),
        "BGPAdvertisement" => remove_kind(&mut config.bgp_advertisements, r),
        "BGPPeer" => remove_kind(&mut config.bgp_peers, r),
        "BFDProfile" => remove_kind(&mut config.bfd_profiles, r),
        "Community" => remove_kind(&mut config.communities, r),
        "Node" => remove_kind(&mut config.nodes, r),
        "Namespace" => remove_kind(&mut config.namespaces, r),
        "Secret" => remove_kind(&mut config.secrets, r),
        "EndpointSlice" => remove_kind(&mut config.endpoint_slices, r),
        _ => false,
    }
}

/// Every FerroLB configuration object of `config`.
fn config_objects(config: &Config) -> Vec<ObjectRef> {
    let mut out: Vec<ObjectRef> = Vec::new();
    out.extend(config.ip_address_pools.iter().map(object_ref));
    out.extend(config.l2_advertisements.iter().map(object_ref));
    out.extend(config.bgp_advertisements.iter().map(object_ref));
    out.extend(config.bgp_peers.iter().map(object_ref));
    out.extend(config.bfd_profiles.iter().map(object_ref));
    out.extend(config.communities.iter().map(object_ref));
    out
}

/// Reads `KIND/[NAMESPACE/]NAME`; FerroLB's kinds default to `ferrolb_ns`,
/// Services, EndpointSlices and Secrets to `default`.
pub fn parse_object_name(text: &str, ferrolb_ns: &str) -> Result<ObjectRef, String> {
    let parts: Vec<&str> = text.split('/').collect();
    let kinds = || KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
    let Some((kind, namespaced)) = KINDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(parts[0]))
        .copied()
    else {
        return Err(format!(
            "--delete {text}: unknown kind {:?}; one of {}",
            parts[0],
            kinds()
        ));
    };
    let (namespace, name) = match (namespaced, parts.as_slice()) {
        (true, [_, name]) => {
            let ns = if CONFIG_KINDS.contains(&kind) {
                ferrolb_ns
            } else {
                "default"
            };
            (Some(ns.to_string()), *name)
        }
        (true, [_, ns, name]) => (Some(ns.to_string()), *name),
        (false, [_, name]) => (None, *name),
        _ => {
            return Err(format!(
                "--delete {text}: expected {kind}/{}NAME",
                if namespaced { "[NAMESPACE/]" } else { "" }
            ));
        }
    };
    if name.is_empty() || namespace.as_deref() == Some("") {
        return Err(format!("--delete {text}: empty name or namespace"));
    }
    Ok(ObjectRef::new(kind, namespace.as_deref(), name))
}

fn service_key_text(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The FerroLB namespace the daemons read (cluster), or None (a standalone
/// directory: every namespace).
fn ferrolb_namespace(world: &World) -> Option<&str> {
    match &world.origin {
        Some(Origin::Cluster { namespace }) => Some(namespace),
        _ => None,
    }
}

fn propose(world: &World, proposal: &Proposal) -> Result<Proposed, String> {
    let mut edits = Edits {
        files: proposal
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        ..Edits::default()
    };
    let loaded = if proposal.files.is_empty() {
        ferrolb_config::source::Loaded::default()
    } else {
        load_paths(&proposal.files).map_err(|e| e.to_string())?
    };
    let mut files = loaded.config;
    // Objects of another namespace are not read by a cluster's daemons.
    if let Some(ns) = ferrolb_namespace(world) {
        let outside: Vec<ObjectRef> = config_objects(&files)
            .into_iter()
            .filter(|r| r.namespace.as_deref() != Some(ns))
            .collect();
        for r in outside {
            remove_object(&mut files, &r);
            edits.ignored.push(format!(
                "{r}: not in FerroLB's namespace {ns}, which the daemons read"
            ));
        }
    }
    let in_files: BTreeSet<ObjectRef> = config_objects(&files).into_iter().collect();

    let mut full = world.full.clone();
    apply_kind(
        &mut full.ip_address_pools,
        &files.ip_address_pools,
        &mut edits,
    );
    apply_kind(
        &mut full.l2_advertisements,
        &files.l2_advertisements,
        &mut edits,
    );
    apply_kind(
        &mut full.bgp_advertisements,
        &files.bgp_advertisements,
        &mut edits,
    );
    apply_kind(&mut full.bgp_peers, &files.bgp_peers, &mut edits);
    apply_kind(&mut full.bfd_profiles, &files.bfd_profiles, &mut edits);
    apply_kind(&mut full.communities, &files.communities, &mut edits);
    apply_kind(&mut full.nodes, &files.nodes, &mut edits);
    apply_kind(&mut full.namespaces, &files.namespaces, &mut edits);
    apply_kind(&mut full.secrets, &files.secrets, &mut edits);
    apply_kind(
        &mut full.endpoint_slices,
        &files.endpoint_slices,
        &mut edits,
    );
    for (r, pos) in &files.sources {
        if r.kind != "Service" {
            full.sources.insert(r.clone(), pos.clone());
        }
    }

    // Services: applied over the current ones (their status is kept).
    let current_services: BTreeSet<String> =
        world.services.iter().map(|s| s.key.to_string()).collect();
    let mut services = BTreeMap::new();
    for svc in &files.services {
        let key = service_key_text(svc);
        let r = object_ref(svc);
        if current_services.contains(&key) {
            edits.replaced.push(oref_text(&r));
        } else {
            edits.added.push(oref_text(&r));
        }
        services.insert(key, svc.clone());
    }

    let ferrolb_ns = ferrolb_namespace(world).unwrap_or(ferrolb_config::DEFAULT_NAMESPACE);
    let mut deleted_services = BTreeSet::new();
    for d in &proposal.delete {
        let r = parse_object_name(d, ferrolb_ns)?;
        let found = if r.kind == "Service" {
            let key = format!("{}/{}", r.namespace.as_deref().unwrap_or("default"), r.name);
            let found = current_services.contains(&key) || services.contains_key(&key);
            services.remove(&key);
            deleted_services.insert(key);
            found
        } else {
            full.sources.remove(&r);
            remove_object(&mut full, &r)
        };
        if !found {
            return Err(format!(
                "--delete {d}: there is no {r} in the {}",
                world
                    .origin
                    .as_ref()
                    .map(Origin::describe)
                    .unwrap_or_default()
            ));
        }
        edits.deleted.push(oref_text(&r));
    }
    if proposal.prune {
        for r in config_objects(&full) {
            if !in_files.contains(&r) {
                remove_object(&mut full, &r);
                full.sources.remove(&r);
                edits.pruned.push(oref_text(&r));
            }
        }
    }
    // The directory's reading problems stay, except those of objects the
    // proposal replaced or removed.
    let touched: BTreeSet<String> = edits
        .replaced
        .iter()
        .chain(&edits.unchanged)
        .chain(&edits.deleted)
        .chain(&edits.pruned)
        .cloned()
        .collect();
    let mut load_problems: Vec<Problem> = world
        .load_problems
        .iter()
        .filter(|p| {
            p.object
                .as_ref()
                .is_none_or(|o| !touched.contains(&oref_text(o)))
        })
        .cloned()
        .collect();
    load_problems.extend(loaded.problems);
    Ok(Proposed {
        full,
        load_problems,
        services,
        deleted_services,
        edits,
    })
}

// ---------------------------------------------------------------- allocation

/// Where a Service stands in one state.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Assigned { ips: Vec<IpAddr>, pool: String },
    Pending(String),
}

fn new_allocator(world: &World) -> Allocator {
    match &world.lb_class {
        Some(c) => Allocator::with_load_balancer_class(c.clone()),
        None => Allocator::new(),
    }
}

fn held_of(outcomes: &[ServiceOutcome]) -> BTreeMap<String, Held> {
    let mut out = BTreeMap::new();
    for o in outcomes {
        let held = match &o.state {
            OutcomeState::Assigned => Held::Assigned {
                ips: o.ips.clone(),
                pool: o.pool.clone().unwrap_or_default(),
            },
            OutcomeState::Pending(r) => Held::Pending(r.to_string()),
            OutcomeState::Released(_) => continue,
        };
        out.insert(o.service.to_string(), held);
    }
    out
}

/// A Service carrying only what the controller writes: status IPs and the
/// pool annotation.
fn written(ips: &[IpAddr], pool: Option<&str>) -> Service {
    let mut svc = Service::default();
    if let Some(p) = pool {
        svc.metadata.annotations = Some(
            [(ALLOCATED_FROM_POOL_ANNOTATION.to_string(), p.to_string())]
                .into_iter()
                .collect(),
        );
    }
    svc.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(
                ips.iter()
                    .map(|ip| LoadBalancerIngress {
                        ip: Some(ip.to_string()),
                        ..LoadBalancerIngress::default()
                    })
                    .collect(),
            ),
        }),
        ..ServiceStatus::default()
    });
    svc
}

fn pool_usage(alloc: &Allocator, pool: &IPAddressPool) -> PoolUsage {
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    let (v4, v6) = alloc.pool_usage(name);
    let status = pool_status(pool, v4, v6);
    let (cap4, cap6) = pool_capacity(pool);
    let mut exhausted = Vec::new();
    if cap4.to_string() != "0" && status.available_ipv4 == 0 {
        exhausted.push("IPv4".to_string());
    }
    if cap6.to_string() != "0" && status.available_ipv6 == "0" {
        exhausted.push("IPv6".to_string());
    }
    PoolUsage {
        assigned_ipv4: status.assigned_ipv4,
        available_ipv4: status.available_ipv4,
        assigned_ipv6: status.assigned_ipv6,
        available_ipv6: status.available_ipv6,
        exhausted,
    }
}

fn pools_usage(alloc: &Allocator, config: &Config) -> BTreeMap<String, PoolUsage> {
    let mut out = BTreeMap::new();
    for p in &config.ip_address_pools {
        let name = p.metadata.name.clone().unwrap_or_default();
        // The first of duplicate names counts, as in the allocator.
        out.entry(name).or_insert_with(|| pool_usage(alloc, p));
    }
    out
}

// ---------------------------------------------------------------- announcements

fn decisions(
    config: &Config,
    services: &[SpeakerService],
    lb_class: Option<&str>,
) -> BTreeMap<String, Desired> {
    let names: BTreeSet<&str> = config
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
                    config,
                    services,
                    members: None,
                    node,
                    lb_class,
                }),
            )
        })
        .collect()
}

/// Per layer-2 IP: the nodes answering, and the Services.
fn l2_owners(
    decided: &BTreeMap<String, Desired>,
) -> BTreeMap<IpAddr, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<IpAddr, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for (node, d) in decided {
        for (ip, a) in &d.l2 {
            let e = out.entry(*ip).or_default();
            e.0.insert(node.clone());
            e.1.extend(a.services.iter().map(ToString::to_string));
        }
    }
    out
}

type RouteKey = (String, String, String); // (prefix, node, peer)

/// Every route: (prefix, node, peer) -> attributes; and per prefix the
/// Services it carries.
fn routes(
    decided: &BTreeMap<String, Desired>,
) -> (
    BTreeMap<RouteKey, Arc<RouteAttributes>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut out = BTreeMap::new();
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, d) in decided {
        for (peer, rs) in &d.bgp {
            for (prefix, attrs) in rs.iter() {
                out.insert(
                    (prefix.to_string(), node.clone(), peer.clone()),
                    attrs.clone(),
                );
            }
        }
        for s in &d.services {
            for ip in &s.ips {
                for (_, prefix) in &ip.bgp {
                    services
                        .entry(prefix.to_string())
                        .or_default()
                        .insert(s.key.to_string());
                }
            }
        }
    }
    (out, services)
}

// ---------------------------------------------------------------- plan

fn problem_entry(p: &Problem, new: bool) -> PlanProblem {
    PlanProblem {
        severity: p.severity.to_string(),
        file: p.source.as_ref().map(|s| s.file.clone()),
        document: p.source.as_ref().map(|s| s.document),
        line: p.source.as_ref().map(|s| s.line),
        kind: p.object.as_ref().map(|o| o.kind.clone()),
        namespace: p.object.as_ref().and_then(|o| o.namespace.clone()),
        name: p.object.as_ref().map(|o| o.name.clone()),
        field: p.field.clone(),
        value: p.value.clone(),
        message: p.message.clone(),
        text: p.to_string(),
        new,
    }
}

/// A problem without where it was read (the same problem of an object read
/// from the directory and from a proposal's file).
fn problem_identity(p: &Problem) -> (String, Option<ObjectRef>, Option<String>, String) {
    (
        p.severity.to_string(),
        p.object.clone(),
        p.field.clone(),
        p.message.clone(),
    )
}

/// Computes the plan of `proposal` over `world`.
pub fn plan(world: &World, proposal: &Proposal, fail_on: FailOn) -> Result<Plan, String> {
    if proposal.files.is_empty() && proposal.delete.is_empty() {
        return Err("nothing proposed: give -f FILE (or --delete KIND/[NS/]NAME)".into());
    }
    let proposed = propose(world, proposal)?;
    let lb_class = world.lb_class.as_deref();

    // The proposal's configuration, validated as the daemons validate it.
    let mut problems = proposed.load_problems.clone();
    problems.extend(validate_as_read(&proposed.full, world.secrets_unread));
    let after_config = valid_subset(&proposed.full, &problems);
    let current: BTreeSet<_> = world.problems.iter().map(problem_identity).collect();
    let plan_problems: Vec<PlanProblem> = problems
        .iter()
        .map(|p| problem_entry(p, !current.contains(&problem_identity(p))))
        .collect();
    let new_errors = problems
        .iter()
        .any(|p| p.is_error() && !current.contains(&problem_identity(p)));

    // Now: a controller starting over the current state (as explain).
    let before_labels = namespace_labels(&world.config.namespaces);
    let mut alloc = new_allocator(world);
    alloc.set_pools(&world.config.ip_address_pools);
    let snap = Snapshot::new(&world.services, &before_labels);
    alloc.restore(snap);
    let before_outcomes = alloc.reconcile(snap);
    let before = held_of(&before_outcomes);
    let before_pools = pools_usage(&alloc, &world.config);

    let mut notes = Vec::new();
    let mut lagging = Vec::new();
    for s in &world.services {
        let key = s.key.to_string();
        let status: BTreeSet<IpAddr> = s.status_ips().iter().copied().collect();
        let now: BTreeSet<IpAddr> = match before.get(&key) {
            Some(Held::Assigned { ips, .. }) => ips.iter().copied().collect(),
            Some(Held::Pending(_)) => BTreeSet::new(),
            None => continue,
        };
        if status != now {
            lagging.push(key);
        }
    }
    if !lagging.is_empty() {
        notes.push(format!(
            "the controller has not caught up with the current state: its next round changes {} without the proposal; the plan compares with what it assigns now",
            lagging.join(", ")
        ));
    }
    notes.extend(world.notes.iter().cloned());

    // The proposal's Services, with what the controller wrote on them now.
    let write_now = |key: &str, svc: &mut AllocService| match before.get(key) {
        Some(Held::Assigned { ips, pool }) => svc.set_status_from(&written(ips, Some(pool))),
        Some(Held::Pending(_)) => svc.set_status_from(&written(&[], None)),
        None => {}
    };
    let mut after_services: Vec<AllocService> = Vec::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for s in &world.services {
        let key = s.key.to_string();
        if proposed.deleted_services.contains(&key) {
            continue;
        }
        let mut svc = match proposed.services.get(&key) {
            Some(file) => {
                replaced.insert(key.clone());
                let mut file = file.clone();
                if let Some(meta) = world.service_meta.get(&key) {
                    let m = &mut file.metadata;
                    if m.creation_timestamp.is_none() {
                        m.creation_timestamp = meta.creation_timestamp.clone();
                    }
                    if m.uid.is_none() {
                        m.uid = meta.uid.clone();
                    }
                }
                let mut svc = AllocService::from(&file);
                svc.set_status_from(&written(s.status_ips(), s.pool_annotation()));
                svc
            }
            None => s.clone(),
        };
        write_now(&key, &mut svc);
        after_services.push(svc);
    }
    for (key, file) in &proposed.services {
        if !replaced.contains(key) {
            let mut svc = AllocService::from(file);
            svc.set_status_from(&written(&[], None));
            after_services.push(svc);
        }
    }

    // With the proposal: the running controller's next round.
    let after_labels = namespace_labels(&after_config.namespaces);
    let after_snap = Snapshot::new(&after_services, &after_labels);
    let mut running = alloc.clone();
    running.set_pools(&after_config.ip_address_pools);
    let after = held_of(&running.reconcile(after_snap));
    let after_pools = pools_usage(&running, &after_config);
    // A controller restarted over the proposal.
    let mut restarted = new_allocator(world);
    restarted.set_pools(&after_config.ip_address_pools);
    restarted.restore(after_snap);
    let after_restart = held_of(&restarted.reconcile(after_snap));
    let differ: Vec<String> = after
        .keys()
        .chain(after_restart.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| after.get(*k) != after_restart.get(*k))
        .cloned()
        .collect();
    if !differ.is_empty() {
        notes.push(format!(
            "a controller restarted after the change (assignments restored from the Services' status, then one round) would decide otherwise for {}; the plan shows what a running controller does",
            differ.join(", ")
        ));
    }

    // The Services' diff.
    let mut services = ServiceChanges::default();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (
                Some(Held::Assigned { ips: b, pool: bp }),
                Some(Held::Assigned { ips: a, pool: ap }),
            ) => {
                let same_ips = b.len() == a.len() && b.iter().all(|ip| a.contains(ip));
                if same_ips && bp == ap {
                    services.unchanged += 1;
                } else {
                    services.change.push(ServiceChange {
                        service: key.clone(),
                        before: ServiceIps {
                            service: key.clone(),
                            ips: b.clone(),
                            pool: bp.clone(),
                        },
                        after: ServiceIps {
                            service: key.clone(),
                            ips: a.clone(),
                            pool: ap.clone(),
                        },
                        ips_changed: !same_ips,
                    });
                }
            }
            (Some(Held::Assigned { ips, pool }), other) => services.lose.push(ServiceLoss {
                service: key.clone(),
                ips: ips.clone(),
                pool: pool.clone(),
                reason: match other {
                    Some(Held::Pending(r)) => r.clone(),
                    _ if proposed.deleted_services.contains(key) => "deleted".to_string(),
                    _ => "no longer a LoadBalancer Service FerroLB serves".to_string(),
                },
            }),
            (_, Some(Held::Assigned { ips, pool })) => services.get.push(ServiceIps {
                service: key.clone(),
                ips: ips.clone(),
                pool: pool.clone(),
            }),
            (Some(Held::Pending(_)), Some(Held::Pending(_))) => services.still_pending += 1,
            (None, Some(Held::Pending(r))) => services.new_pending.push(ServicePending {
                service: key.clone(),
                reason: r.clone(),
            }),
            _ => {}
        }
    }

    // Pools.
    let mut pools = Vec::new();
    let names: BTreeSet<&String> = before_pools.keys().chain(after_pools.keys()).collect();
    for name in names {
        let (b, a) = (before_pools.get(name), after_pools.get(name));
        if b == a {
            continue;
        }
        let ex = |u: Option<&PoolUsage>| -> BTreeSet<String> {
            u.map(|u| u.exhausted.iter().cloned().collect())
                .unwrap_or_default()
        };
        let (eb, ea) = (ex(b), ex(a));
        pools.push(PoolChange {
            pool: name.clone(),
            before: b.cloned(),
            after: a.cloned(),
            newly_exhausted: ea.difference(&eb).cloned().collect(),
            freed: eb.difference(&ea).cloned().collect(),
        });
    }

    // Announcements: the speakers' decision now and with the proposal.
    let with_ips = |mut s: SpeakerService, held: &BTreeMap<String, Held>| {
        match held.get(&s.key.to_string()) {
            Some(Held::Assigned { ips, .. }) => s.ips = ips.clone(),
            Some(Held::Pending(_)) => s.ips.clear(),
            // Released by the controller (no longer ours): it clears the
            // status of what it gave.
            None if before.contains_key(&s.key.to_string()) => s.ips.clear(),
            None => {}
        }
        s
    };
    let before_speaker: Vec<SpeakerService> = world
        .speaker_services
        .iter()
        .map(|s| with_ips(s.clone(), &before))
        .collect();
    let mut after_speaker: Vec<SpeakerService> = Vec::new();
    for s in &world.speaker_services {
        let key = s.key.to_string();
        if proposed.deleted_services.contains(&key) || proposed.services.contains_key(&key) {
            continue;
        }
        after_speaker.push(with_ips(s.clone(), &after));
    }
    for file in proposed.services.values() {
        if let Some(s) = SpeakerService::from_service(file) {
            after_speaker.push(with_ips(s, &after));
        }
    }
    let decided_before = decisions(&world.config, &before_speaker, lb_class);
    let decided_after = decisions(&after_config, &after_speaker, lb_class);

    let (l2b, l2a) = (l2_owners(&decided_before), l2_owners(&decided_after));
    let mut layer2 = Vec::new();
    let ips: BTreeSet<&IpAddr> = l2b.keys().chain(l2a.keys()).collect();
    for ip in ips {
        let empty = (BTreeSet::new(), BTreeSet::new());
        let (b, a) = (l2b.get(ip).unwrap_or(&empty), l2a.get(ip).unwrap_or(&empty));
        if b.0 != a.0 {
            layer2.push(L2Change {
                ip: *ip,
                services: b.1.union(&a.1).cloned().collect(),
                from: b.0.iter().cloned().collect(),
                to: a.0.iter().cloned().collect(),
            });
        }
    }
    let ((rb, sb), (ra, sa)) = (routes(&decided_before), routes(&decided_after));
    let mut bgp = Vec::new();
    let route_keys: BTreeSet<&RouteKey> = rb.keys().chain(ra.keys()).collect();
    for k in route_keys {
        let (b, a) = (rb.get(k), ra.get(k));
        let change = match (b, a) {
            (Some(b), Some(a)) if b == a => continue,
            (Some(_), Some(_)) => "attributes",
            (Some(_), None) => "withdrawn",
            (None, _) => "added",
        };
        let mut svcs: BTreeSet<String> = sb.get(&k.0).cloned().unwrap_or_default();
        svcs.extend(sa.get(&k.0).cloned().unwrap_or_default());
        bgp.push(BgpChange {
            prefix: k.0.clone(),
            node: k.1.clone(),
            peer: k.2.clone(),
            change,
            before: b.map(|x| Attributes::of(x)),
            after: a.map(|x| Attributes::of(x)),
            services: svcs.into_iter().collect(),
        });
    }

    let ip_change = !services.lose.is_empty() || services.change.iter().any(|c| c.ips_changed);
    let any_change = ip_change
        || !services.get.is_empty()
        || !services.change.is_empty()
        || !services.new_pending.is_empty()
        || !pools.is_empty()
        || !layer2.is_empty()
        || !bgp.is_empty();
    let exit_code = match fail_on {
        FailOn::None => 0,
        FailOn::IpChange if ip_change => EXIT_CHANGE,
        FailOn::AnyChange if any_change => EXIT_CHANGE,
        _ if new_errors => EXIT_INVALID,
        _ => 0,
    };
    Ok(Plan {
        schema: SCHEMA,
        kind: "Plan",
        source: world
            .origin
            .as_ref()
            .map(Origin::describe)
            .unwrap_or_default(),
        edits: proposed.edits,
        problems: plan_problems,
        new_errors,
        services,
        pools,
        layer2,
        bgp,
        notes,
        ip_change,
        any_change,
        fail_on,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10-198.51.100.12]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {ipAddressPools: [lan]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node2}\n";

    fn service(name: &str, annotations: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, annotations: {{{annotations}}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
        )
    }

    /// A directory with `CONFIG` and these Services, after one round of
    /// the real standalone controller (its `status/services.yaml`).
    fn world(services: &[String]) -> (tempfile::TempDir, World) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        std::fs::write(dir.path().join("services.yaml"), services.join("---\n")).unwrap();
        ferrolb_controller::standalone::Standalone::new(dir.path(), None)
            .run_once()
            .unwrap();
        let w = crate::world::from_directory(dir.path(), None).unwrap();
        (dir, w)
    }

    fn proposal(dir: &std::path::Path, text: &str) -> Proposal {
        let f = dir.join("proposal.yml.txt");
        std::fs::write(&f, text).unwrap();
        Proposal {
            files: vec![f],
            ..Proposal::default()
        }
    }

    #[test]
    fn object_names_default_their_namespace_by_kind() {
        let r = parse_object_name("ipaddresspool/lan", "lb").unwrap();
        assert_eq!(r, ObjectRef::new("IPAddressPool", Some("lb"), "lan"));
        let r = parse_object_name("Service/web", "lb").unwrap();
        assert_eq!(r, ObjectRef::new("Service", Some("default"), "web"));
        let r = parse_object_name("Service/shop/web", "lb").unwrap();
        assert_eq!(r, ObjectRef::new("Service", Some("shop"), "web"));
        let r = parse_object_name("Node/node1", "lb").unwrap();
        assert_eq!(r, ObjectRef::new("Node", None, "node1"));
        for bad in ["Node/a/b", "Widget/x", "Service/", "IPAddressPool"] {
            assert!(parse_object_name(bad, "lb").is_err(), "{bad}");
        }
    }

    #[test]
    fn services_edited_added_and_deleted() {
        let (dir, w) = world(&[
            service("a", ""),
            service("b", ""),
            service("c", "ferrolb.io/loadBalancerIPs: \"198.51.100.12\""),
        ]);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        // a asks for another IP, d is new, c is deleted.
        let mut p = proposal(
            dir.path(),
            &[
                service("a", "ferrolb.io/loadBalancerIPs: \"198.51.100.12\""),
                service("d", ""),
            ]
            .join("---\n"),
        );
        p.delete = vec!["Service/c".into()];
        let plan = plan(&w, &p, FailOn::IpChange).unwrap();
        assert_eq!(plan.edits.replaced, ["Service default/a"]);
        assert_eq!(plan.edits.added, ["Service default/d"]);
        assert_eq!(plan.edits.deleted, ["Service default/c"]);
        let s = &plan.services;
        assert_eq!(s.change.len(), 1, "{s:#?}");
        assert_eq!(s.change[0].service, "default/a");
        assert_eq!(s.change[0].after.ips, [ip("198.51.100.12")]);
        assert_eq!(s.lose.len(), 1);
        assert_eq!(
            (s.lose[0].service.as_str(), s.lose[0].reason.as_str()),
            ("default/c", "deleted")
        );
        // d gets the IP a gave up.
        assert_eq!(s.get.len(), 1);
        assert_eq!(s.get[0].service, "default/d");
        assert_eq!(s.get[0].ips, s.change[0].before.ips);
        assert_eq!(s.unchanged, 1);
        assert!(plan.ip_change);
        assert_eq!(plan.exit_code, EXIT_CHANGE);
        // The same three IPs are announced, each by the node elected for it
        // (the election is per IP): no layer-2 owner moves.
        assert!(plan.layer2.is_empty(), "{:?}", plan.layer2);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        // --fail-on none: 0.
        assert_eq!(super::plan(&w, &p, FailOn::None).unwrap().exit_code, 0);
    }

    #[test]
    fn pruning_and_exhaustion() {
        let (dir, w) = world(&[service("a", ""), service("b", "")]);
        // Only the pool, one address wider: the advertisement is pruned.
        let p = Proposal {
            prune: true,
            ..proposal(
                dir.path(),
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10-198.51.100.11]}\n",
            )
        };
        let plan = plan(&w, &p, FailOn::AnyChange).unwrap();
        assert_eq!(plan.edits.pruned, ["L2Advertisement ferrolb-system/lan"]);
        assert_eq!(plan.services.unchanged, 2, "{:#?}", plan.services);
        assert!(!plan.ip_change);
        assert_eq!(plan.pools.len(), 1);
        assert_eq!(plan.pools[0].newly_exhausted, ["IPv4"]);
        // Nothing is announced any more.
        assert_eq!(plan.layer2.len(), 2);
        assert!(
            plan.layer2
                .iter()
                .all(|c| c.to.is_empty() && c.from.len() == 1)
        );
        assert_eq!(plan.exit_code, EXIT_CHANGE, "any-change");
    }

    #[test]
    fn a_cluster_ignores_objects_outside_its_namespace_and_deletes_must_exist() {
        let (dir, mut w) = world(&[service("a", "")]);
        w.origin = Some(Origin::Cluster {
            namespace: "ferrolb-system".into(),
        });
        let p = proposal(
            dir.path(),
            "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: other, namespace: elsewhere}\nspec: {addresses: [203.0.113.0/24]}\n",
        );
        let plan = plan(&w, &p, FailOn::IpChange).unwrap();
        assert!(plan.edits.added.is_empty());
        assert_eq!(plan.edits.ignored.len(), 1, "{:?}", plan.edits);
        assert!(!plan.any_change);
        let p = Proposal {
            delete: vec!["BGPPeer/none".into()],
            ..Proposal::default()
        };
        let e = super::plan(&w, &p, FailOn::IpChange).unwrap_err();
        assert!(e.contains("there is no BGPPeer ferrolb-system/none"), "{e}");
    }
}
