//! Per-pool verdicts: for one Service, every pool the allocator would
//! consider and what it would give, or why it gives nothing. The detail
//! behind a [`PendingReason`](super::PendingReason), for `explain` and the
//! controller's log. Pure: computed from the allocator's state, which it
//! does not change. Every check is the one allocation makes
//! ([`Allocator::find`], [`PoolIndex::admission`], the sharing and
//! other-holder checks), in the same order.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::addr::{AddrCount, Family};

use super::events::{Other, ip_list};
use super::pool_index::{NsLabels, PoolIndex};
use super::service::{LbService, NotOurs, Policy, Request, ServiceKey, ServiceView};
use super::state::Allocator;

/// Which restriction of a pool's `serviceAllocation` a Service does not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `namespaces` does not list the Service's namespace.
    NamespaceNotListed {
        namespace: String,
        namespaces: Vec<String>,
    },
    /// No `namespaceSelectors` entry selects the Service's namespace.
    NamespaceNotSelected { namespace: String },
    /// No `serviceSelectors` entry selects the Service's labels.
    ServiceNotSelected,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NamespaceNotListed {
                namespace,
                namespaces,
            } => write!(
                f,
                "serviceAllocation.namespaces [{}] does not include namespace {namespace}",
                namespaces.join(", ")
            ),
            Refusal::NamespaceNotSelected { namespace } => write!(
                f,
                "serviceAllocation.namespaceSelectors do not select namespace {namespace} (by its labels)"
            ),
            Refusal::ServiceNotSelected => f.write_str(
                "serviceAllocation.serviceSelectors do not select the Service (by its labels)",
            ),
        }
    }
}

/// Why one pool gives a Service no IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolRejection {
    /// The Service asks for another pool (`ferrolb.io/address-pool`).
    OtherPoolRequested { requested: String },
    /// `serviceAllocation` does not admit the Service.
    NotAdmitted(Refusal),
    /// `autoAssign: false`, and the Service asks neither for the pool nor for
    /// one of its IPs.
    AutoAssignDisabled,
    /// The pool has no address of this family (for `RequireDualStack`: the
    /// family it lacks).
    FamilyNotOffered { family: Family },
    /// Every address of this family is in use (`used` of `total`). With a
    /// sharing key: a Service holding an address under the same key, and
    /// the sharing rule that refuses it (None when no address of the pool is
    /// held under the key).
    Exhausted {
        family: Family,
        used: AddrCount,
        total: AddrCount,
        sharing: Option<(ServiceKey, String)>,
    },
    /// A requested IP is outside the pool.
    RequestedIpOutside { ip: IpAddr },
    /// The pool holds the first requested IP but not this other one (the
    /// requested IPs must come from one pool).
    RequestedIpsSplit { outside: IpAddr },
    /// `avoidBuggyIPs`, and the requested IP ends in .0 or .255.
    RequestedIpBuggy { ip: IpAddr },
    /// A requested IP is held by another Service and sharing is refused.
    RequestedIpInUse {
        ip: IpAddr,
        holder: ServiceKey,
        why: String,
    },
    /// A requested IP is in the status of a Service this allocator does not
    /// handle.
    RequestedIpHeldByOther {
        ip: IpAddr,
        holder: ServiceKey,
        why: NotOurs,
    },
}

impl fmt::Display for PoolRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolRejection::OtherPoolRequested { requested } => write!(
                f,
                "the Service requests pool {requested:?} (annotation ferrolb.io/address-pool)"
            ),
            PoolRejection::NotAdmitted(r) => r.fmt(f),
            PoolRejection::AutoAssignDisabled => f.write_str(
                "autoAssign is false, and the Service requests neither this pool nor one of its IPs",
            ),
            PoolRejection::FamilyNotOffered { family } => {
                write!(f, "the pool has no {family} addresses")
            }
            PoolRejection::Exhausted {
                family,
                used,
                total,
                sharing,
            } => {
                write!(
                    f,
                    "exhausted: {used} of {total} {family} addresses in use"
                )?;
                if let Some((holder, why)) = sharing {
                    write!(
                        f,
                        "; sharing refused by {holder}, which holds one under the same allow-shared-ip key: {why}"
                    )?;
                }
                Ok(())
            }
            PoolRejection::RequestedIpOutside { ip } => {
                write!(f, "does not contain the requested IP {ip}")
            }
            PoolRejection::RequestedIpsSplit { outside } => write!(
                f,
                "does not contain the requested IP {outside} (the requested IPs must come from one pool)"
            ),
            PoolRejection::RequestedIpBuggy { ip } => write!(
                f,
                "avoids addresses ending in .0 and .255 (avoidBuggyIPs), and the requested IP is {ip}"
            ),
            PoolRejection::RequestedIpInUse { ip, holder, why } => write!(
                f,
                "the requested IP {ip} is in use by {holder} and cannot be shared: {why}"
            ),
            PoolRejection::RequestedIpHeldByOther { ip, holder, why } => write!(
                f,
                "the requested IP {ip} is in use: {} has it in status.loadBalancer.ingress",
                Other(holder, why)
            ),
        }
    }
}

/// What one pool would give a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolVerdict {
    /// The pool's name.
    pub pool: String,
    /// The IPs it would give (in the Service's family order), or why none.
    pub result: Result<Vec<IpAddr>, PoolRejection>,
}

impl fmt::Display for PoolVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(ips) => write!(f, "pool {:?}: would give {}", self.pool, ip_list(ips)),
            Err(r) => write!(f, "pool {:?}: {r}", self.pool),
        }
    }
}

impl Allocator {
    /// Every pool, in the order allocation tries them (`priority`, then
    /// name), with the IPs it would give `service` now or why it gives none.
    /// Meant for a Service that holds nothing (a pending one): addresses it
    /// holds count as in use. Empty when the allocator does not handle the
    /// Service or its request is malformed (its pending reason says why).
    /// `namespace_labels` are the labels of the Service's Namespace.
    ///
    /// When the Service is pending, every verdict is a rejection; otherwise
    /// the pool allocation picks is the first that gives IPs (for
    /// `PreferDualStack`: the first giving two, else the first giving one).
    pub fn pool_verdicts(
        &self,
        service: &LbService,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> Vec<PoolVerdict> {
        let view = ServiceView::read(service, self.class.as_deref());
        if view.not_ours.is_some() {
            return Vec::new();
        }
        let Ok(req) = view.request() else {
            return Vec::new();
        };
        let ns = NsLabels::new(&view.key.namespace, namespace_labels);
        self.candidate_order
            .iter()
            .map(|&p| PoolVerdict {
                pool: self.pools[p].name.to_string(),
                result: self.pool_verdict(&view, req, &ns, p),
            })
            .collect()
    }

    fn pool_verdict(
        &self,
        view: &ServiceView<'_>,
        req: &Request,
        ns: &NsLabels<'_>,
        p: usize,
    ) -> Result<Vec<IpAddr>, PoolRejection> {
        let pool: &PoolIndex = &self.pools[p];
        let requested = req.ips();
        if let Some(first) = requested.first() {
            // As `locate`, then the holders' checks of `find_new`.
            if !pool.covers(first) {
                return Err(PoolRejection::RequestedIpOutside { ip: *first });
            }
            if let Some(other) = requested.iter().find(|ip| !pool.covers(ip)) {
                return Err(PoolRejection::RequestedIpsSplit { outside: *other });
            }
            if let Some(wanted) = req.pool().filter(|w| *w != &*pool.name) {
                return Err(PoolRejection::OtherPoolRequested {
                    requested: wanted.to_string(),
                });
            }
            pool.admission(ns, view.labels())
                .map_err(PoolRejection::NotAdmitted)?;
            if let Some(bad) = requested.iter().find(|ip| !pool.holds(ip)) {
                return Err(PoolRejection::RequestedIpBuggy { ip: *bad });
            }
            for ip in requested {
                if let Some((holder, why)) = self.conflict(view.key, &req.share, ip) {
                    return Err(PoolRejection::RequestedIpInUse {
                        ip: *ip,
                        holder,
                        why,
                    });
                }
                if let Some((holder, why)) = self.other_holder(ip, None) {
                    return Err(PoolRejection::RequestedIpHeldByOther {
                        ip: *ip,
                        holder,
                        why,
                    });
                }
            }
            return Ok(requested.to_vec());
        }
        match req.pool() {
            Some(wanted) if wanted != &*pool.name => {
                return Err(PoolRejection::OtherPoolRequested {
                    requested: wanted.to_string(),
                });
            }
            Some(_) => {}
            None if !pool.auto_assign => return Err(PoolRejection::AutoAssignDisabled),
            None => {}
        }
        pool.admission(ns, view.labels())
            .map_err(PoolRejection::NotAdmitted)?;
        self.fill(view.key, req, p)
    }

    /// The addresses pool `p` would give (as `choose` with this pool alone).
    fn fill(&self, me: &ServiceKey, req: &Request, p: usize) -> Result<Vec<IpAddr>, PoolRejection> {
        let pool = &self.pools[p];
        let one = |f: Family| -> Result<IpAddr, PoolRejection> {
            let space = pool.space(f);
            if !space.has_addresses() {
                return Err(PoolRejection::FamilyNotOffered { family: f });
            }
            self.find(p, f, &req.share)
                .ok_or_else(|| PoolRejection::Exhausted {
                    family: f,
                    used: AddrCount::from(space.used_count()),
                    total: space.capacity(),
                    sharing: self.sharing_refusal(p, f, me, &req.share),
                })
        };
        let f0 = req.families[0];
        match req.policy {
            Policy::Single => Ok(vec![one(f0)?]),
            Policy::PreferDual => {
                let f1 = req.families[1];
                if pool.is_dual_stack()
                    && let (Ok(a), Ok(b)) = (one(f0), one(f1))
                {
                    return Ok(vec![a, b]);
                }
                Ok(vec![one(f0)?])
            }
            Policy::RequireDual => {
                let f1 = req.families[1];
                // A missing family first, as allocation reports it.
                for f in [f0, f1] {
                    if !pool.space(f).has_addresses() {
                        return Err(PoolRejection::FamilyNotOffered { family: f });
                    }
                }
                Ok(vec![one(f0)?, one(f1)?])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ferrolb_config::crd::ServiceAllocation;
    use k8s_openapi::api::core::v1::Service;

    use super::super::tests::{
        S, alloc_with, find, lbs, no_ns, pending_message, pool, run, selector, svc, with_alloc,
    };
    use super::super::*;

    /// The verdicts for `s` (not yet seen) once `others` are allocated, as
    /// `pool: text` lines, and the pending reason allocation gives it.
    fn verdicts(
        pools: &[ferrolb_config::crd::IPAddressPool],
        others: &[S],
        s: S,
        ns_labels: Option<&BTreeMap<String, String>>,
    ) -> (Vec<String>, String) {
        let mut a = alloc_with(pools);
        run(&mut a, others);
        let lb = LbService::from(&s.0);
        let lines = a
            .pool_verdicts(&lb, ns_labels)
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut all: Vec<S> = others.to_vec();
        all.push(s.clone());
        let out = run(&mut a, &all);
        let name = s.0.metadata.name.clone().unwrap();
        let o = find(&out, &name);
        let pending = if o.is_pending() {
            pending_message(o)
        } else {
            format!("assigned {:?} from {:?}", o.ips, o.pool)
        };
        (lines, pending)
    }

    #[test]
    fn each_pool_says_why_it_refuses() {
        let mut reserved = pool("reserved", &["198.51.100.200/32"]);
        reserved.spec.auto_assign = false;
        let pools = [
            with_alloc(
                pool("shop", &["198.51.100.10/32"]),
                ServiceAllocation {
                    namespaces: vec!["shop".into()],
                    ..Default::default()
                },
            ),
            with_alloc(
                pool("gold", &["198.51.100.20/32"]),
                ServiceAllocation {
                    namespace_selectors: vec![selector("tier", "gold")],
                    ..Default::default()
                },
            ),
            with_alloc(
                pool("web-only", &["198.51.100.30/32"]),
                ServiceAllocation {
                    service_selectors: vec![selector("app", "web")],
                    ..Default::default()
                },
            ),
            reserved,
            pool("v6", &["2001:db8::/128"]),
            pool("tiny", &["192.0.2.0/31"]),
        ];
        let (lines, pending) = verdicts(
            &pools,
            &[svc("default", "a"), svc("default", "b")],
            svc("default", "c"),
            None,
        );
        assert_eq!(
            lines,
            [
                "pool \"gold\": serviceAllocation.namespaceSelectors do not select namespace default (by its labels)",
                "pool \"reserved\": autoAssign is false, and the Service requests neither this pool nor one of its IPs",
                "pool \"shop\": serviceAllocation.namespaces [shop] does not include namespace default",
                "pool \"tiny\": exhausted: 2 of 2 IPv4 addresses in use",
                "pool \"v6\": the pool has no IPv4 addresses",
                "pool \"web-only\": serviceAllocation.serviceSelectors do not select the Service (by its labels)",
            ]
        );
        assert_eq!(pending, "pool \"tiny\" exhausted for IPv4");
    }

    #[test]
    fn requested_ips_name_the_pool_and_the_holder() {
        let pools = [
            pool("a", &["192.0.2.0/30"]),
            pool("b", &["198.51.100.0/30"]),
        ];
        let req = |s: S, ip: &str| s.ann("ferrolb.io/loadBalancerIPs", ip);
        // Outside every pool.
        let (lines, pending) = verdicts(&pools, &[], req(svc("ns", "x"), "203.0.113.9"), None);
        assert_eq!(
            lines,
            [
                "pool \"a\": does not contain the requested IP 203.0.113.9",
                "pool \"b\": does not contain the requested IP 203.0.113.9",
            ]
        );
        assert_eq!(
            pending,
            "requested IP 203.0.113.9 is not in any IPAddressPool"
        );
        // Held by a Service without a sharing key.
        let holder = req(svc("ns", "first"), "192.0.2.1").created(1);
        let (lines, _) = verdicts(
            &pools,
            std::slice::from_ref(&holder),
            req(svc("ns", "x"), "192.0.2.1").created(2),
            None,
        );
        assert_eq!(
            lines[0],
            "pool \"a\": the requested IP 192.0.2.1 is in use by ns/first and cannot be shared: this Service has no allow-shared-ip annotation"
        );
        // Same key, same port.
        let (lines, pending) = verdicts(
            &pools,
            &[holder.clone().share("k").ports(&[(80, "TCP")])],
            req(svc("ns", "x"), "192.0.2.1")
                .created(2)
                .share("k")
                .ports(&[(80, "TCP")]),
            None,
        );
        assert_eq!(
            lines[0],
            "pool \"a\": the requested IP 192.0.2.1 is in use by ns/first and cannot be shared: both use port 80/TCP"
        );
        assert!(pending.ends_with("both use port 80/TCP"), "{pending}");
        // Same key, other ports, different backends.
        let (lines, _) = verdicts(
            &pools,
            &[holder.share("k").ports(&[(80, "TCP")])],
            req(svc("ns", "x"), "192.0.2.1")
                .created(2)
                .share("k")
                .ports(&[(443, "TCP")])
                .local(&[("app", "x")]),
            None,
        );
        assert_eq!(
            lines[0],
            "pool \"a\": the requested IP 192.0.2.1 is in use by ns/first and cannot be shared: externalTrafficPolicy differs (Local here, Cluster on ns/first)"
        );
        // In another Service's status (another class).
        let (lines, _) = verdicts(
            &pools,
            &[svc("ns", "theirs")
                .class("example.com/other")
                .status(&["198.51.100.1"])],
            req(svc("ns", "x"), "198.51.100.1"),
            None,
        );
        assert_eq!(
            lines[1],
            "pool \"b\": the requested IP 198.51.100.1 is in use: ns/theirs (loadBalancerClass \"example.com/other\", not served by this controller) has it in status.loadBalancer.ingress"
        );
        // Another pool requested.
        let (lines, _) = verdicts(
            &pools,
            &[],
            req(svc("ns", "x"), "192.0.2.1").ann("ferrolb.io/address-pool", "b"),
            None,
        );
        assert_eq!(
            lines[0],
            "pool \"a\": the Service requests pool \"b\" (annotation ferrolb.io/address-pool)"
        );
    }

    #[test]
    fn a_full_pool_names_the_sharing_rule_that_refuses() {
        let pools = [pool("one", &["192.0.2.7/32"])];
        let (lines, pending) = verdicts(
            &pools,
            &[svc("ns", "dns-tcp").share("dns").ports(&[(53, "TCP")])],
            svc("ns", "dns-tcp2").share("dns").ports(&[(53, "TCP")]),
            None,
        );
        assert_eq!(
            lines,
            [
                "pool \"one\": exhausted: 1 of 1 IPv4 addresses in use; sharing refused by ns/dns-tcp, which holds one under the same allow-shared-ip key: both use port 53/TCP"
            ]
        );
        assert_eq!(pending, "pool \"one\" exhausted for IPv4");
        // A compatible Service joins it: the verdict gives the shared IP.
        let (lines, pending) = verdicts(
            &pools,
            &[svc("ns", "dns-tcp").share("dns").ports(&[(53, "TCP")])],
            svc("ns", "dns-udp").share("dns").ports(&[(53, "UDP")]),
            None,
        );
        assert_eq!(lines, ["pool \"one\": would give 192.0.2.7"]);
        assert_eq!(pending, "assigned [192.0.2.7] from Some(\"one\")");
    }

    #[test]
    fn namespace_labels_are_read() {
        let pools = [with_alloc(
            pool("gold", &["198.51.100.20/32"]),
            ServiceAllocation {
                namespace_selectors: vec![selector("tier", "gold")],
                ..Default::default()
            },
        )];
        let labels: BTreeMap<String, String> = [("tier".to_string(), "gold".to_string())].into();
        let (lines, _) = verdicts(&pools, &[], svc("team", "x"), Some(&labels));
        assert_eq!(lines, ["pool \"gold\": would give 198.51.100.20"]);
    }

    #[test]
    fn dual_stack_needs_both_families() {
        let pools = [
            pool("v4", &["192.0.2.0/30"]),
            pool("v6", &["2001:db8::/126"]),
        ];
        let (lines, pending) =
            verdicts(&pools, &[], svc("ns", "x").policy("RequireDualStack"), None);
        assert_eq!(
            lines,
            [
                "pool \"v4\": the pool has no IPv6 addresses",
                "pool \"v6\": the pool has no IPv4 addresses",
            ]
        );
        assert!(
            pending.starts_with("ipFamilyPolicy RequireDualStack"),
            "{pending}"
        );
    }

    #[test]
    fn nothing_for_services_not_ours_or_malformed() {
        let a = alloc_with(&[pool("a", &["192.0.2.0/30"])]);
        let other: Vec<Service> = vec![
            svc("ns", "c").class("example.com/x").0,
            svc("ns", "m").ann("ferrolb.io/loadBalancerIPs", "nope").0,
        ];
        for s in lbs(&other) {
            assert!(a.pool_verdicts(&s, None).is_empty());
        }
        let _ = no_ns();
    }
}
