//! What the allocator tells the world: Kubernetes Events (type, reason,
//! message) and the exact reason a Service is pending.

use std::fmt;
use std::net::IpAddr;

use ferrolb_config::addr::Family;

use super::service::{NotOurs, ServiceKey};

/// Event reason: IPs were assigned (Normal). The message names the IPs and the pool.
pub const IP_ALLOCATED: &str = "IPAllocated";
/// Event reason: the Service is pending (Warning). The message is a [`PendingReason`].
pub const ALLOCATION_FAILED: &str = "AllocationFailed";
/// Event reason: IPs the Service held (or had in its status) can no longer be
/// used and were released (Warning); the message says why. A new allocation follows.
pub const IP_INVALIDATED: &str = "IPInvalidated";
/// Event reason: the Service stopped being handled by this allocator and its
/// IPs were released (Normal).
pub const IP_RELEASED: &str = "IPReleased";

/// Kubernetes Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// `"Normal"` or `"Warning"`, as the Events API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An Event to record on the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    /// One of [`IP_ALLOCATED`], [`ALLOCATION_FAILED`], [`IP_INVALIDATED`], [`IP_RELEASED`].
    pub reason: &'static str,
    pub message: String,
}

pub(crate) fn ip_list(ips: &[IpAddr]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(ips.len() * 24);
    for (i, ip) in ips.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{ip}");
    }
    out
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

impl Event {
    /// `assigned IP 192.0.2.1 from pool "a"`, or `assigned IPs 192.0.2.1, 2001:db8::1 from pool "a"`.
    pub(crate) fn allocated(ips: &[IpAddr], pool: &str) -> Event {
        use std::fmt::Write;
        let noun = if ips.len() == 1 { "IP" } else { "IPs" };
        let mut message = String::with_capacity(64);
        let _ = write!(message, "assigned {noun} ");
        for (i, ip) in ips.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(message, "{sep}{ip}");
        }
        let _ = write!(message, " from pool {pool:?}");
        Event {
            type_: EventType::Normal,
            reason: IP_ALLOCATED,
            message,
        }
    }

    pub(crate) fn failed(reason: &PendingReason) -> Event {
        Event {
            type_: EventType::Warning,
            reason: ALLOCATION_FAILED,
            message: reason.to_string(),
        }
    }

    /// `released 192.0.2.200: pool "a" no longer contains 192.0.2.200`
    pub(crate) fn invalidated(ips: &[IpAddr], why: &Invalid) -> Event {
        let message = if ips.is_empty() {
            format!("cannot keep the IPs in the Service's status: {why}")
        } else {
            format!("released {}: {why}", ip_list(ips))
        };
        Event {
            type_: EventType::Warning,
            reason: IP_INVALIDATED,
            message,
        }
    }

    pub(crate) fn released(ips: &[IpAddr], cause: &ReleaseCause) -> Event {
        Event {
            type_: EventType::Normal,
            reason: IP_RELEASED,
            message: format!("released {}: {cause}", ip_list(ips)),
        }
    }
}

/// Why a Service's IPs were released because it is no longer ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCause {
    /// Present, but no longer handled by this allocator.
    NotOurs(NotOurs),
    /// Absent from the snapshot (deleted).
    Deleted,
    /// [`super::Allocator::release`] was called.
    Requested,
}

impl fmt::Display for ReleaseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseCause::NotOurs(n) => n.fmt(f),
            ReleaseCause::Deleted => f.write_str("the Service was deleted"),
            ReleaseCause::Requested => f.write_str("released on request"),
        }
    }
}

/// Why an address pool cannot give a requested IP to this Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The pool's `serviceAllocation` does not admit the Service.
    NotAdmitted,
    /// The Service asks for another pool (named).
    OtherPoolRequested(String),
    /// The pool has `avoidBuggyIPs` and the address ends in .0 or .255.
    Buggy,
}

/// Why a Service is pending. `Display` gives the exact Event message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingReason {
    /// Malformed annotations or spec (the message says which and why).
    InvalidRequest(String),
    /// No IPAddressPool exists at all.
    NoPools,
    /// No pool with `autoAssign: true` admits the Service's namespace and labels.
    NoPoolAdmits { namespace: String },
    /// Pools admit the Service, but none has addresses of this family.
    NoPoolWithFamily { family: Family },
    /// Every pool that could serve the Service has no free address of these families.
    Exhausted(Vec<(String, Family)>),
    /// RequireDualStack, and no admitting pool has both families.
    NoDualStackPool,
    /// The requested pool does not exist.
    UnknownPool { pool: String },
    /// The requested pool's `serviceAllocation` does not admit the Service.
    PoolDoesNotAdmit { pool: String },
    /// The requested pool has no addresses of this family.
    PoolLacksFamily { pool: String, family: Family },
    /// A requested IP is in no pool at all.
    RequestedIpNotInPool { ip: IpAddr },
    /// A requested IP is in a pool this Service may not use.
    RequestedIpUnusable {
        ip: IpAddr,
        pool: String,
        why: Unusable,
    },
    /// The requested IPs are in different pools.
    RequestedIpsSplit { pools: Vec<String> },
    /// A requested IP is held by another Service and sharing is refused.
    RequestedIpInUse {
        ip: IpAddr,
        holder: ServiceKey,
        why: String,
    },
    /// A requested IP is in the `status.loadBalancer.ingress` of a Service
    /// this allocator does not handle (`why` says why not: another
    /// loadBalancerClass, another type, being deleted): another controller
    /// (or a person) gave it that address, so it is in use.
    RequestedIpHeldByOther {
        ip: IpAddr,
        holder: ServiceKey,
        why: NotOurs,
    },
}

/// A Service this allocator does not handle, named with why not (its class,
/// its type, or that it is being deleted): `default/e (no
/// loadBalancerClass, not served by this controller)`.
pub(crate) struct Other<'a>(pub(crate) &'a ServiceKey, pub(crate) &'a NotOurs);

impl fmt::Display for Other<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Other(key, why) = self;
        match why {
            NotOurs::OtherClass(Some(c)) => write!(
                f,
                "{key} (loadBalancerClass {c:?}, not served by this controller)"
            ),
            NotOurs::OtherClass(None) => write!(
                f,
                "{key} (no loadBalancerClass, not served by this controller)"
            ),
            NotOurs::NotLoadBalancer(Some(t)) => write!(f, "{key} (type {t}, not LoadBalancer)"),
            NotOurs::NotLoadBalancer(None) => {
                write!(f, "{key} (type ClusterIP, not LoadBalancer)")
            }
            NotOurs::Deleting => write!(f, "{key} (being deleted)"),
        }
    }
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::InvalidRequest(m) => f.write_str(m),
            PendingReason::NoPools => f.write_str("no IPAddressPool is configured"),
            PendingReason::NoPoolAdmits { namespace } => write!(
                f,
                "no IPAddressPool with autoAssign admits namespace {namespace:?} and the Service's labels"
            ),
            PendingReason::NoPoolWithFamily { family } => write!(
                f,
                "no IPAddressPool that admits this Service has {family} addresses"
            ),
            PendingReason::Exhausted(list) => {
                let parts: Vec<String> = list
                    .iter()
                    .map(|(pool, fam)| format!("pool {pool:?} exhausted for {fam}"))
                    .collect();
                f.write_str(&parts.join("; "))
            }
            PendingReason::NoDualStackPool => f.write_str(
                "ipFamilyPolicy RequireDualStack needs a pool with both IPv4 and IPv6 addresses, and no pool that admits this Service has both",
            ),
            PendingReason::UnknownPool { pool } => {
                write!(f, "requested pool {pool:?} does not exist")
            }
            PendingReason::PoolDoesNotAdmit { pool } => write!(
                f,
                "requested pool {pool:?} does not admit this Service's namespace and labels"
            ),
            PendingReason::PoolLacksFamily { pool, family } => {
                write!(f, "requested pool {pool:?} has no {family} addresses")
            }
            PendingReason::RequestedIpNotInPool { ip } => {
                write!(f, "requested IP {ip} is not in any IPAddressPool")
            }
            PendingReason::RequestedIpUnusable { ip, pool, why } => match why {
                Unusable::NotAdmitted => write!(
                    f,
                    "requested IP {ip} is in pool {pool:?}, which does not admit this Service's namespace and labels"
                ),
                Unusable::OtherPoolRequested(req) => write!(
                    f,
                    "requested IP {ip} is in pool {pool:?}, not in the requested pool {req:?}"
                ),
                Unusable::Buggy => write!(
                    f,
                    "requested IP {ip} is in pool {pool:?}, which avoids addresses ending in .0 and .255 (avoidBuggyIPs)"
                ),
            },
            PendingReason::RequestedIpsSplit { pools } => write!(
                f,
                "requested IPs are in different pools ({}); they must come from one pool",
                quoted_list(pools)
            ),
            PendingReason::RequestedIpInUse { ip, holder, why } => write!(
                f,
                "requested IP {ip} is in use by {holder} and cannot be shared: {why}"
            ),
            PendingReason::RequestedIpHeldByOther { ip, holder, why } => write!(
                f,
                "requested IP {ip} is in use: {} has it in status.loadBalancer.ingress; it becomes free when that Service no longer lists it",
                Other(holder, why)
            ),
        }
    }
}

/// Why IPs a Service holds (or has in its status) can no longer be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The Service's request became malformed.
    BadRequest,
    /// The status does not parse.
    BadStatus(String),
    PoolDeleted {
        pool: String,
    },
    LeftPool {
        ip: IpAddr,
        pool: String,
    },
    NotInAnyPool {
        ip: IpAddr,
    },
    Unusable {
        ip: IpAddr,
        pool: String,
        why: Unusable,
    },
    Split {
        pools: Vec<String>,
    },
    NotRequested {
        requested: Vec<IpAddr>,
    },
    /// The IPs' families do not fit the Service (message: what it wants).
    Families(String),
    InUse {
        ip: IpAddr,
        holder: ServiceKey,
        why: String,
        /// Lost to an older Service while claiming status after a restart.
        older: bool,
    },
    /// An older Service this allocator does not handle has the IP in its
    /// status too (see [`PendingReason::RequestedIpHeldByOther`]).
    HeldByOther {
        ip: IpAddr,
        holder: ServiceKey,
        why: NotOurs,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::BadRequest => f.write_str("the Service's request is invalid"),
            Invalid::BadStatus(m) => f.write_str(m),
            Invalid::PoolDeleted { pool } => write!(f, "pool {pool:?} was deleted"),
            Invalid::LeftPool { ip, pool } => {
                write!(f, "pool {pool:?} no longer contains {ip}")
            }
            Invalid::NotInAnyPool { ip } => write!(f, "{ip} is not in any IPAddressPool"),
            Invalid::Unusable { ip, pool, why } => match why {
                Unusable::NotAdmitted => write!(
                    f,
                    "pool {pool:?} does not admit this Service's namespace and labels"
                ),
                Unusable::OtherPoolRequested(req) => write!(
                    f,
                    "the Service requests pool {req:?} but {ip} is in pool {pool:?}"
                ),
                Unusable::Buggy => write!(
                    f,
                    "pool {pool:?} avoids addresses ending in .0 and .255 (avoidBuggyIPs)"
                ),
            },
            Invalid::Split { pools } => {
                write!(f, "the IPs are in different pools ({})", quoted_list(pools))
            }
            Invalid::NotRequested { requested } => {
                write!(f, "the Service requests {}", ip_list(requested))
            }
            Invalid::Families(m) => f.write_str(m),
            Invalid::InUse {
                ip,
                holder,
                why,
                older,
            } => {
                let older = if *older { "older Service " } else { "" };
                write!(
                    f,
                    "{ip} is also held by {older}{holder} and cannot be shared: {why}"
                )
            }
            Invalid::HeldByOther { ip, holder, why } => write!(
                f,
                "{ip} is also in status.loadBalancer.ingress of the older Service {}",
                Other(holder, why)
            ),
        }
    }
}
