//! Reading a `Service` (untrusted input from the API server or files) into what
//! the allocator needs: whether it is ours, which families and IPs it wants,
//! which pool it asks for, how it may share, and what its status holds.
//! Nothing here panics on malformed input: problems become a pending reason.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::addr::Family;
use std::sync::{Arc, LazyLock};

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::jiff::Timestamp;

use super::sharing::ShareInfo;

/// Annotations requesting specific IPs, in order of precedence.
pub const LOAD_BALANCER_IPS_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// Annotations requesting a pool, in order of precedence.
pub const ADDRESS_POOL_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Annotations naming a sharing key, in order of precedence.
pub const ALLOW_SHARED_IP_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// The annotation the controller writes with the pool an IP came from
/// ([`super::ServiceOutcome::pool`] is its value).
pub const ALLOCATED_FROM_POOL_ANNOTATION: &str = "ferrolb.io/ip-allocated-from-pool";

/// A Service's identity: namespace and name. Displays as `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Service object; a Service without a namespace is in `default`.
    pub fn of(svc: &Service) -> ServiceKey {
        ServiceKey::new(
            svc.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            svc.metadata.name.clone().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a Service present in the snapshot is not handled by this allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// `spec.type` is not `LoadBalancer` (the type, or None when unset).
    NotLoadBalancer(Option<String>),
    /// `spec.loadBalancerClass` is not the one this allocator handles
    /// (the Service's class, None when unset).
    OtherClass(Option<String>),
    /// `metadata.deletionTimestamp` is set.
    Deleting,
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotOurs::NotLoadBalancer(Some(t)) => {
                write!(f, "the Service is of type {t}, not LoadBalancer")
            }
            NotOurs::NotLoadBalancer(None) => {
                f.write_str("the Service has no type (ClusterIP), not LoadBalancer")
            }
            NotOurs::OtherClass(Some(c)) => {
                write!(f, "the Service's loadBalancerClass is {c:?}")
            }
            NotOurs::OtherClass(None) => f.write_str("the Service has no loadBalancerClass"),
            NotOurs::Deleting => f.write_str("the Service is being deleted"),
        }
    }
}

/// How many families the Service wants (`spec.ipFamilyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Single,
    PreferDual,
    RequireDual,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Single => "SingleStack",
            Policy::PreferDual => "PreferDualStack",
            Policy::RequireDual => "RequireDualStack",
        })
    }
}

/// What a Service asks of the allocator, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) policy: Policy,
    /// Families in the Service's order: one for SingleStack, two otherwise.
    pub(crate) families: Vec<Family>,
    /// Requested IPs, in family order; empty when none are requested.
    pub(crate) ips: Vec<IpAddr>,
    /// The requested pool, if any.
    pub(crate) pool: Option<String>,
    pub(crate) share: Arc<ShareInfo>,
}

impl Request {
    /// Sorts IPs into the Service's family order.
    pub(crate) fn in_family_order(&self, ips: &mut [IpAddr]) {
        ips.sort_by_key(|ip| {
            let f = Family::of(ip);
            self.families.iter().position(|x| *x == f).unwrap_or(2)
        });
    }
}

/// A Service read for the allocator.
#[derive(Debug, Clone)]
pub(crate) struct ServiceView<'a> {
    pub(crate) key: ServiceKey,
    pub(crate) created: Option<Timestamp>,
    pub(crate) labels: &'a BTreeMap<String, String>,
    /// None when the Service is ours.
    pub(crate) not_ours: Option<NotOurs>,
    /// The request, or why it is malformed.
    pub(crate) request: Result<Request, String>,
    /// IPs in `status.loadBalancer.ingress`, or why they do not parse.
    pub(crate) status: Result<Vec<IpAddr>, String>,
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();
static EMPTY_SPEC: LazyLock<ServiceSpec> = LazyLock::new(ServiceSpec::default);

fn spec_of(svc: &Service) -> &ServiceSpec {
    svc.spec.as_ref().unwrap_or(&EMPTY_SPEC)
}

impl<'a> ServiceView<'a> {
    pub(crate) fn read(svc: &'a Service, class: Option<&str>) -> ServiceView<'a> {
        let spec = spec_of(svc);
        let not_ours = if svc.metadata.deletion_timestamp.is_some() {
            Some(NotOurs::Deleting)
        } else if spec.type_.as_deref() != Some("LoadBalancer") {
            Some(NotOurs::NotLoadBalancer(spec.type_.clone()))
        } else if spec.load_balancer_class.as_deref() != class {
            Some(NotOurs::OtherClass(spec.load_balancer_class.clone()))
        } else {
            None
        };
        ServiceView {
            key: ServiceKey::of(svc),
            created: svc.metadata.creation_timestamp.as_ref().map(|t| t.0),
            labels: svc.metadata.labels.as_ref().unwrap_or(&EMPTY_LABELS),
            request: if not_ours.is_none() {
                parse_request(svc)
            } else {
                Err(String::new())
            },
            not_ours,
            status: status_ips(svc),
        }
    }

    /// The allocation order: creationTimestamp (missing first), then namespace/name.
    pub(crate) fn order_key(&self) -> (Option<Timestamp>, &ServiceKey) {
        (self.created, &self.key)
    }
}

fn annotation<'s>(svc: &'s Service, names: &[&'static str]) -> Option<(&'static str, &'s str)> {
    let ann = svc.metadata.annotations.as_ref()?;
    names
        .iter()
        .find_map(|n| ann.get(*n).map(|v| (*n, v.trim())))
        .filter(|(_, v)| !v.is_empty())
}

fn parse_family(s: &str) -> Result<Family, String> {
    match s {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(format!(
            "spec.ipFamilies has unknown family {other:?}; expected IPv4 or IPv6"
        )),
    }
}

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_request(svc: &Service) -> Result<Request, String> {
    let spec = spec_of(svc);
    let policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => Policy::Single,
        Some("PreferDualStack") => Policy::PreferDual,
        Some("RequireDualStack") => Policy::RequireDual,
        Some(other) => {
            return Err(format!(
                "spec.ipFamilyPolicy {other:?} is unknown; expected SingleStack, PreferDualStack or RequireDualStack"
            ));
        }
    };
    let declared: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .map(|s| parse_family(s))
        .collect::<Result<_, _>>()?;
    if declared.len() > 2 || (declared.len() == 2 && declared[0] == declared[1]) {
        return Err(format!(
            "spec.ipFamilies {:?} must list at most one IPv4 and one IPv6 family",
            spec.ip_families.clone().unwrap_or_default()
        ));
    }

    // Requested IPs: the first annotation present, else spec.loadBalancerIP.
    let (source, raw) = match annotation(svc, &LOAD_BALANCER_IPS_ANNOTATIONS) {
        Some((name, v)) => (format!("annotation {name}"), Some(v.to_string())),
        None => (
            "spec.loadBalancerIP".to_string(),
            spec.load_balancer_ip
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        ),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(raw) = &raw {
        for part in raw.split(',').map(str::trim) {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("{source} {raw:?}: {part:?} is not an IP address"))?;
            ips.push(ip);
        }
        if ips.len() > 2 {
            return Err(format!(
                "{source} {raw:?} lists {} IPs; at most one IPv4 and one IPv6 address are allowed",
                ips.len()
            ));
        }
        if ips.len() == 2 && Family::of(&ips[0]) == Family::of(&ips[1]) {
            return Err(format!(
                "{source} {raw:?} lists two {} addresses; at most one per family is allowed",
                Family::of(&ips[0])
            ));
        }
    }

    // Families wanted, in order.
    let families: Vec<Family> = match policy {
        Policy::Single => {
            let first = match (declared.first(), ips.first()) {
                (Some(f), _) => *f,
                // Unset ipFamilies: follow the requested IP, else IPv4.
                (None, Some(ip)) => Family::of(ip),
                (None, None) => Family::V4,
            };
            vec![first]
        }
        Policy::PreferDual | Policy::RequireDual => {
            let first = declared.first().copied().unwrap_or(Family::V4);
            vec![first, other(first)]
        }
    };
    if !ips.is_empty() {
        if policy == Policy::Single && ips.len() == 2 {
            return Err(format!(
                "{source} requests two IPs ({}) but ipFamilyPolicy is SingleStack",
                list(&ips)
            ));
        }
        // Dual-stack policies accept either family; SingleStack only its own.
        if policy == Policy::Single
            && let Some(bad) = ips.iter().find(|ip| Family::of(ip) != families[0])
        {
            return Err(format!(
                "{source} requests {bad}, an {} address, but the Service is SingleStack {}",
                Family::of(bad),
                families[0]
            ));
        }
        if policy == Policy::RequireDual && ips.len() != 2 {
            return Err(format!(
                "{source} requests only {} but ipFamilyPolicy RequireDualStack needs one IPv4 and one IPv6 address",
                list(&ips)
            ));
        }
    }

    let pool = annotation(svc, &ADDRESS_POOL_ANNOTATIONS).map(|(_, v)| v.to_string());
    let share = Arc::new(ShareInfo::of(
        svc,
        annotation(svc, &ALLOW_SHARED_IP_ANNOTATIONS).map(|(_, v)| v.to_string()),
    ));
    let mut req = Request {
        policy,
        families,
        ips,
        pool,
        share,
    };
    let mut ips = std::mem::take(&mut req.ips);
    req.in_family_order(&mut ips);
    req.ips = ips;
    Ok(req)
}

fn status_ips(svc: &Service) -> Result<Vec<IpAddr>, String> {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out = Vec::new();
    for ing in ingress.into_iter().flatten() {
        if let Some(ip) = ing.ip.as_deref() {
            let parsed: IpAddr = ip.trim().parse().map_err(|_| {
                format!("status.loadBalancer.ingress holds {ip:?}, which is not an IP address")
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
    }
    Ok(out)
}
