//! Validation of a whole configuration. [`validate`] returns every problem it
//! finds, each naming the object, the field path, the value and the reason.
//! [`valid_subset`] keeps the objects without errors, so that one bad object
//! never stops the good ones from working.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Resource;

use crate::addr::{AddrRange, Family, RangeError};
use crate::community::CommunityValue;
use crate::config::{Config, object_ref};
use crate::crd::{BGPPeer, DynamicAsn, IPAddressPool};
use crate::duration;
use crate::problem::{ObjectRef, Problem};
use crate::selector;

/// The hold time used when a BGPPeer sets none.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);

/// Collects problems for one object.
struct Sink<'a> {
    obj: ObjectRef,
    out: &'a mut Vec<Problem>,
}

impl Sink<'_> {
    fn error(&mut self, field: impl Into<String>, value: Option<String>, msg: impl Into<String>) {
        let mut p = Problem::error(self.obj.clone(), field, msg);
        p.value = value;
        self.out.push(p);
    }
    fn warning(&mut self, field: impl Into<String>, value: Option<String>, msg: impl Into<String>) {
        let mut p = Problem::warning(self.obj.clone(), field, msg);
        p.value = value;
        self.out.push(p);
    }
    fn selectors(&mut self, field: &str, sels: &[LabelSelector]) {
        for (i, sel) in sels.iter().enumerate() {
            for (sub, msg) in selector::check(sel) {
                self.error(format!("{field}[{i}].{sub}"), None, msg);
            }
        }
    }
}

/// A pool's address entries that parsed, with their index in `spec.addresses`.
fn pool_ranges(pool: &IPAddressPool) -> Vec<(usize, AddrRange)> {
    pool.spec
        .addresses
        .iter()
        .enumerate()
        .filter_map(|(i, a)| AddrRange::parse(a).ok().map(|r| (i, r)))
        .collect()
}

fn ns(obj: &impl Resource) -> &str {
    obj.meta().namespace.as_deref().unwrap_or_default()
}

fn name(obj: &impl Resource) -> &str {
    obj.meta().name.as_deref().unwrap_or_default()
}

fn labels(obj: &impl Resource) -> BTreeMap<String, String> {
    obj.meta().labels.clone().unwrap_or_default()
}

/// Pools an advertisement applies to: those named, those matching a selector,
/// or all pools of its namespace when it names none and selects none.
pub fn pools_for<'c>(
    cfg: &'c Config,
    namespace: &str,
    names: &[String],
    selectors: &[LabelSelector],
) -> Vec<&'c IPAddressPool> {
    cfg.ip_address_pools
        .iter()
        .filter(|p| ns(*p) == namespace)
        .filter(|p| {
            (names.is_empty() && selectors.is_empty())
                || names.iter().any(|n| n == name(*p))
                || selectors.iter().any(|s| selector::matches(s, &labels(*p)))
        })
        .collect()
}

/// Whether a peer is external (eBGP) as configured; None when it cannot be told.
pub fn peer_is_external(peer: &BGPPeer) -> Option<bool> {
    match (peer.spec.dynamic_asn, peer.spec.peer_asn) {
        (Some(DynamicAsn::External), _) => Some(true),
        (Some(DynamicAsn::Internal), _) => Some(false),
        (None, Some(asn)) => Some(asn != peer.spec.local_asn.unwrap_or(peer.spec.my_asn)),
        (None, None) => None,
    }
}

/// Parses an optional duration field, reporting problems; None when unset or bad.
fn duration_field(sink: &mut Sink, field: &str, value: &Option<String>) -> Option<Duration> {
    let v = value.as_ref()?;
    match duration::parse(v) {
        Ok(d) => Some(d),
        Err(e) => {
            sink.error(field, Some(v.clone()), e);
            None
        }
    }
}

fn check_interface_name(sink: &mut Sink, field: &str, ifname: &str) {
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname.contains(['/', ' ', '\t', '\n', ':'])
        || ifname == "."
        || ifname == ".."
    {
        sink.error(
            field,
            Some(ifname.to_string()),
            "not a valid Linux interface name (1-15 characters, no '/', ':' or spaces)",
        );
    }
}

/// Validates the whole configuration and returns every problem found, each with
/// the object's source position when it was read from a file.
pub fn validate(cfg: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    validate_pools(cfg, &mut out);
    validate_l2(cfg, &mut out);
    let alias_names = validate_communities(cfg, &mut out);
    validate_bgp_advertisements(cfg, &alias_names, &mut out);
    validate_peers(cfg, &mut out);
    validate_bfd(cfg, &mut out);
    for p in &mut out {
        if p.source.is_none()
            && let Some(obj) = &p.object
        {
            p.source = cfg.source_of(obj);
        }
    }
    out
}

fn validate_pools(cfg: &Config, out: &mut Vec<Problem>) {
    for pool in &cfg.ip_address_pools {
        let mut s = Sink {
            obj: object_ref(pool),
            out,
        };
        if pool.spec.addresses.is_empty() {
            s.error(
                "spec.addresses",
                None,
                "a pool needs at least one address range",
            );
        }
        let mut parsed: Vec<(usize, AddrRange)> = Vec::new();
        for (i, a) in pool.spec.addresses.iter().enumerate() {
            let field = format!("spec.addresses[{i}]");
            match AddrRange::parse(a) {
                Ok(r) => {
                    if let Some((addr, len)) = a.trim().split_once('/')
                        && let (Ok(ip), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u8>())
                        && ip != r.first()
                    {
                        s.warning(
                            &field,
                            Some(a.clone()),
                            format!(
                                "host bits are set: the pool covers the whole network {}/{len}",
                                r.first()
                            ),
                        );
                    }
                    for (j, other) in &parsed {
                        if let Some(common) = r.intersect(other) {
                            s.error(
                                &field,
                                Some(a.clone()),
                                format!(
                                    "overlaps spec.addresses[{j}] {:?} of the same pool at {common}",
                                    pool.spec.addresses[*j]
                                ),
                            );
                        }
                    }
                    parsed.push((i, r));
                }
                Err(e) => {
                    let msg = match &e {
                        RangeError::Backwards { first, last, .. } => {
                            format!("first address {first} is after last address {last}")
                        }
                        RangeError::MixedFamilies { first, last, .. } => format!(
                            "range mixes IPv4 and IPv6 ({first} and {last}); write one range per family"
                        ),
                        other => other.to_string(),
                    };
                    s.error(field, Some(a.clone()), msg);
                }
            }
        }
        if let Some(sa) = &pool.spec.service_allocation {
            for (i, n) in sa.namespaces.iter().enumerate() {
                if !is_dns_label(n) {
                    s.error(
                        format!("spec.serviceAllocation.namespaces[{i}]"),
                        Some(n.clone()),
                        "not a valid namespace name (lowercase letters, digits and '-', at most 63)",
                    );
                }
            }
            s.selectors(
                "spec.serviceAllocation.namespaceSelectors",
                &sa.namespace_selectors,
            );
            s.selectors(
                "spec.serviceAllocation.serviceSelectors",
                &sa.service_selectors,
            );
        }
    }
    // Overlaps between pools: reported on the pool whose name sorts later.
    let mut entries: Vec<(AddrRange, &IPAddressPool, usize)> = Vec::new();
    for pool in &cfg.ip_address_pools {
        for (i, r) in pool_ranges(pool) {
            entries.push((r, pool, i));
        }
    }
    entries.sort_by_key(|(r, _, _)| *r);
    let mut reported = BTreeSet::new();
    for (k, (r, pool, i)) in entries.iter().enumerate() {
        for (r2, pool2, j) in entries[k + 1..].iter() {
            if r2.family() != r.family()
                || crate::addr::to_u128(&r2.first()) > crate::addr::to_u128(&r.last())
            {
                break;
            }
            if std::ptr::eq(*pool, *pool2) {
                continue;
            }
            let Some(common) = r.intersect(r2) else {
                continue;
            };
            let ((a, ai), (b, bi)) = if (ns(*pool), name(*pool)) <= (ns(*pool2), name(*pool2)) {
                ((*pool, *i), (*pool2, *j))
            } else {
                ((*pool2, *j), (*pool, *i))
            };
            if !reported.insert((object_ref(a), ai, object_ref(b), bi)) {
                continue;
            }
            out.push(
                Problem::error(
                    object_ref(b),
                    format!("spec.addresses[{bi}]"),
                    format!(
                        "overlaps IPAddressPool {}/{} spec.addresses[{ai}] {:?} at {common}; an address may belong to one pool only",
                        ns(a),
                        name(a),
                        a.spec.addresses[ai]
                    ),
                )
                .with_value(b.spec.addresses[bi].clone()),
            );
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// References by name to other objects. A configuration may be split across
/// files or applied in any order, so a name that nothing has yet is a warning
/// (the entry selects nothing until the object exists); only an empty name,
/// which no object can have, is an error.
/// `missing` is the warning's message.
fn check_reference(
    s: &mut Sink,
    field: String,
    kind: &str,
    n: &str,
    exists: bool,
    missing: String,
) {
    if n.trim().is_empty() {
        s.error(
            field,
            Some(n.to_string()),
            format!("is empty; expected the name of a {kind}"),
        );
    } else if !exists {
        s.warning(field, Some(n.to_string()), missing);
    }
}

fn check_pool_names(s: &mut Sink, cfg: &Config, namespace: &str, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        let exists = cfg
            .ip_address_pools
            .iter()
            .any(|p| ns(p) == namespace && name(p) == n);
        check_reference(
            s,
            format!("spec.ipAddressPools[{i}]"),
            "IPAddressPool",
            n,
            exists,
            format!("selects nothing until IPAddressPool {namespace}/{n} exists"),
        );
    }
}

fn validate_l2(cfg: &Config, out: &mut Vec<Problem>) {
    for adv in &cfg.l2_advertisements {
        let mut s = Sink {
            obj: object_ref(adv),
            out,
        };
        check_pool_names(&mut s, cfg, ns(adv), &adv.spec.ip_address_pools);
        s.selectors(
            "spec.ipAddressPoolSelectors",
            &adv.spec.ip_address_pool_selectors,
        );
        s.selectors("spec.serviceSelectors", &adv.spec.service_selectors);
        s.selectors("spec.nodeSelectors", &adv.spec.node_selectors);
        for (i, pref) in adv.spec.preferred_node_selectors.iter().enumerate() {
            if !(1..=100).contains(&pref.weight) {
                s.error(
                    format!("spec.preferredNodeSelectors[{i}].weight"),
                    Some(pref.weight.to_string()),
                    "weight must be from 1 to 100",
                );
            }
            for (sub, msg) in selector::check(&pref.preference) {
                s.error(
                    format!("spec.preferredNodeSelectors[{i}].preference.{sub}"),
                    None,
                    msg,
                );
            }
        }
        for (i, ifname) in adv.spec.interfaces.iter().enumerate() {
            check_interface_name(&mut s, &format!("spec.interfaces[{i}]"), ifname);
        }
    }
}

/// Checks Community objects; returns the alias names defined per namespace.
fn validate_communities(cfg: &Config, out: &mut Vec<Problem>) -> BTreeSet<(String, String)> {
    let mut names = BTreeSet::new();
    for c in &cfg.communities {
        let mut s = Sink {
            obj: object_ref(c),
            out,
        };
        let mut seen = BTreeSet::new();
        for (i, alias) in c.spec.communities.iter().enumerate() {
            if alias.name.trim().is_empty() {
                s.error(
                    format!("spec.communities[{i}].name"),
                    None,
                    "alias name is empty",
                );
            } else if alias.name.contains(':') {
                s.error(
                    format!("spec.communities[{i}].name"),
                    Some(alias.name.clone()),
                    "an alias name must not contain ':' (it would read as a community value); `ferrolb-controller migrate` renames such MetalLB aliases",
                );
            } else if let Some(known) = CommunityValue::well_known(&alias.name)
                && let Ok(value) = CommunityValue::parse(&alias.value)
                && value != known
            {
                // The same name and value as the well-known community is
                // harmless: it means the same wherever it is used.
                let n = alias.name.trim();
                s.error(
                    format!("spec.communities[{i}].name"),
                    Some(alias.name.clone()),
                    format!(
                        "conflicts with the well-known community {n} ({known}): this alias gives it the value {value}, but a BGPAdvertisement naming {n} always gets {known}; rename the alias (`ferrolb-controller migrate` renames it to metallb-{n}) or set its value to {known}"
                    ),
                );
            } else if !seen.insert(alias.name.clone()) {
                s.error(
                    format!("spec.communities[{i}].name"),
                    Some(alias.name.clone()),
                    "alias defined twice in this Community",
                );
            }
            if let Err(e) = CommunityValue::parse(&alias.value) {
                s.error(
                    format!("spec.communities[{i}].value"),
                    Some(alias.value.clone()),
                    e,
                );
            }
            names.insert((ns(c).to_string(), alias.name.clone()));
        }
    }
    names
}

fn validate_bgp_advertisements(
    cfg: &Config,
    aliases: &BTreeSet<(String, String)>,
    out: &mut Vec<Problem>,
) {
    for adv in &cfg.bgp_advertisements {
        let namespace = ns(adv).to_string();
        let mut s = Sink {
            obj: object_ref(adv),
            out,
        };
        let spec = &adv.spec;
        let v4_ok = (0..=32).contains(&spec.aggregation_length);
        let v6_ok = (0..=128).contains(&spec.aggregation_length_v6);
        if !v4_ok {
            s.error(
                "spec.aggregationLength",
                Some(spec.aggregation_length.to_string()),
                "must be from 0 to 32",
            );
        }
        if !v6_ok {
            s.error(
                "spec.aggregationLengthV6",
                Some(spec.aggregation_length_v6.to_string()),
                "must be from 0 to 128",
            );
        }
        check_pool_names(&mut s, cfg, &namespace, &spec.ip_address_pools);
        s.selectors(
            "spec.ipAddressPoolSelectors",
            &spec.ip_address_pool_selectors,
        );
        s.selectors("spec.serviceSelectors", &spec.service_selectors);
        s.selectors("spec.nodeSelectors", &spec.node_selectors);
        for (i, c) in spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            if CommunityValue::looks_like_value(c) {
                if let Err(e) = CommunityValue::parse(c) {
                    s.error(field, Some(c.clone()), e);
                }
            } else if c.trim().is_empty() {
                s.error(
                    field,
                    Some(c.clone()),
                    "is empty; expected a community value (65000:100, large:1:2:3, no-export) or an alias defined in a Community object",
                );
            } else if !aliases.contains(&(namespace.clone(), c.clone())) {
                s.warning(
                    field,
                    Some(c.clone()),
                    format!(
                        "not a community value (65000:100, large:1:2:3, no-export), so an alias, and no Community object in namespace {namespace} defines it; this advertisement announces nothing until one does"
                    ),
                );
            }
        }
        for (i, p) in spec.peers.iter().enumerate() {
            let exists = cfg
                .bgp_peers
                .iter()
                .any(|peer| ns(peer) == namespace && name(peer) == p);
            check_reference(
                &mut s,
                format!("spec.peers[{i}]"),
                "BGPPeer",
                p,
                exists,
                format!("selects nothing until BGPPeer {namespace}/{p} exists"),
            );
        }
        // Aggregation must not be shorter than a pool's own prefixes.
        let pools = pools_for(
            cfg,
            &namespace,
            &spec.ip_address_pools,
            &spec.ip_address_pool_selectors,
        );
        for pool in pools {
            for (i, r) in pool_ranges(pool) {
                let (agg, field, ok) = match r.family() {
                    Family::V4 => (spec.aggregation_length, "spec.aggregationLength", v4_ok),
                    Family::V6 => (
                        spec.aggregation_length_v6,
                        "spec.aggregationLengthV6",
                        v6_ok,
                    ),
                };
                if !ok {
                    continue;
                }
                if let Some(net) = r
                    .to_cidrs()
                    .into_iter()
                    .find(|n| i32::from(n.prefix_len()) > agg)
                {
                    s.error(
                        field,
                        Some(agg.to_string()),
                        format!(
                            "aggregation length {agg} is shorter than prefix {net} of IPAddressPool {}/{} spec.addresses[{i}] {:?}; the aggregate would cover addresses outside the pool",
                            ns(pool),
                            name(pool),
                            pool.spec.addresses[i]
                        ),
                    );
                }
            }
        }
        if let Some(lp) = spec.local_pref {
            let targeted: Vec<&BGPPeer> = cfg
                .bgp_peers
                .iter()
                .filter(|p| {
                    ns(*p) == namespace
                        && (spec.peers.is_empty() || spec.peers.iter().any(|n| n == name(*p)))
                })
                .collect();
            if !targeted.is_empty() && targeted.iter().all(|p| peer_is_external(p) == Some(true)) {
                let names: Vec<&str> = targeted.iter().map(|p| name(*p)).collect();
                s.warning(
                    "spec.localPref",
                    Some(lp.to_string()),
                    format!(
                        "LOCAL_PREF is only sent to iBGP peers, and every peer this advertisement targets is eBGP ({}); it has no effect",
                        names.join(", ")
                    ),
                );
            }
        }
    }
}

fn validate_peers(cfg: &Config, out: &mut Vec<Problem>) {
    let mut sessions: BTreeMap<(String, String, u16, String), ObjectRef> = BTreeMap::new();
    for peer in &cfg.bgp_peers {
        let mut s = Sink {
            obj: object_ref(peer),
            out,
        };
        let spec = &peer.spec;
        if spec.my_asn == 0 {
            s.error(
                "spec.myASN",
                Some("0".into()),
                "ASN 0 is reserved (RFC 7607); use 1-4294967295",
            );
        }
        if spec.local_asn == Some(0) {
            s.error(
                "spec.localASN",
                Some("0".into()),
                "ASN 0 is reserved (RFC 7607); use 1-4294967295",
            );
        }
        match (spec.peer_asn, spec.dynamic_asn) {
            (Some(0), _) => s.error(
                "spec.peerASN",
                Some("0".into()),
                "ASN 0 is reserved (RFC 7607); use 1-4294967295",
            ),
            (Some(_), Some(_)) => s.error(
                "spec.dynamicASN",
                None,
                "set either peerASN or dynamicASN, not both",
            ),
            (None, None) => s.error(
                "spec.peerASN",
                None,
                "set peerASN, or dynamicASN (internal or external)",
            ),
            _ => {}
        }
        let mut peer_ip = None;
        match (&spec.peer_address, &spec.interface) {
            (Some(_), Some(_)) => s.error(
                "spec.interface",
                None,
                "set either peerAddress or interface (unnumbered peering), not both",
            ),
            (None, None) => s.error(
                "spec.peerAddress",
                None,
                "set peerAddress, or interface for unnumbered peering",
            ),
            (Some(a), None) => match a.trim().parse::<IpAddr>() {
                Ok(ip) => peer_ip = Some(ip),
                Err(_) => s.error(
                    "spec.peerAddress",
                    Some(a.clone()),
                    "not an IPv4 or IPv6 address",
                ),
            },
            (None, Some(ifname)) => check_interface_name(&mut s, "spec.interface", ifname),
        }
        if let Some(src) = &spec.source_address {
            match src.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    if let Some(pip) = peer_ip
                        && Family::of(&ip) != Family::of(&pip)
                    {
                        s.error(
                            "spec.sourceAddress",
                            Some(src.clone()),
                            format!(
                                "is {} but peerAddress {pip} is {}",
                                Family::of(&ip),
                                Family::of(&pip)
                            ),
                        );
                    }
                }
                Err(_) => s.error(
                    "spec.sourceAddress",
                    Some(src.clone()),
                    "not an IPv4 or IPv6 address",
                ),
            }
        }
        if let Some(rid) = &spec.router_id
            && rid.trim().parse::<std::net::Ipv4Addr>().is_err()
        {
            s.error(
                "spec.routerID",
                Some(rid.clone()),
                "a router ID is written as an IPv4 address",
            );
        }
        if spec.peer_port == 0 {
            s.error(
                "spec.peerPort",
                Some("0".into()),
                "port must be from 1 to 65535",
            );
        }
        let hold = duration_field(&mut s, "spec.holdTime", &spec.hold_time);
        if let Some(h) = hold {
            if h.subsec_nanos() != 0 {
                s.error(
                    "spec.holdTime",
                    spec.hold_time.clone(),
                    "BGP hold time is whole seconds",
                );
            } else if h.as_secs() == 1 || h.as_secs() == 2 {
                s.error(
                    "spec.holdTime",
                    spec.hold_time.clone(),
                    "BGP allows a hold time of 0 (no keepalives) or at least 3s (RFC 4271 §4.2)",
                );
            } else if h.as_secs() > 65535 {
                s.error(
                    "spec.holdTime",
                    spec.hold_time.clone(),
                    "BGP hold time is at most 65535s",
                );
            }
        }
        let keepalive = duration_field(&mut s, "spec.keepaliveTime", &spec.keepalive_time);
        if let Some(k) = keepalive {
            let h = hold.unwrap_or(DEFAULT_HOLD_TIME);
            if k > h {
                s.error(
                    "spec.keepaliveTime",
                    spec.keepalive_time.clone(),
                    format!(
                        "keepalive time {} is longer than the hold time {}{}",
                        show(k),
                        show(h),
                        if hold.is_none() { " (the default)" } else { "" }
                    ),
                );
            }
        }
        if let Some(c) = duration_field(&mut s, "spec.connectTime", &spec.connect_time)
            && (c < Duration::from_secs(1) || c > Duration::from_secs(65535))
        {
            s.error(
                "spec.connectTime",
                spec.connect_time.clone(),
                "connect time must be from 1s to 65535s",
            );
        }
        if spec.password.is_some() && spec.password_secret.is_some() {
            s.error(
                "spec.passwordSecret",
                None,
                "set either password or passwordSecret, not both",
            );
        }
        if let Some(sec) = &spec.password_secret {
            let sec_ns = sec
                .namespace
                .clone()
                .unwrap_or_else(|| ns(peer).to_string());
            match cfg
                .secrets
                .iter()
                .find(|x| ns(*x) == sec_ns && name(*x) == sec.name)
            {
                None => s.warning(
                    "spec.passwordSecret",
                    Some(format!("{sec_ns}/{}", sec.name)),
                    "Secret not found; sessions to this peer cannot start until it exists",
                ),
                Some(secret) => {
                    if secret.type_.as_deref() != Some("kubernetes.io/basic-auth") {
                        s.error(
                            "spec.passwordSecret",
                            Some(format!("{sec_ns}/{}", sec.name)),
                            format!(
                                "Secret has type {:?}; expected kubernetes.io/basic-auth",
                                secret.type_.as_deref().unwrap_or("Opaque")
                            ),
                        );
                    }
                    let has_pw = secret
                        .data
                        .as_ref()
                        .is_some_and(|d| d.contains_key("password"))
                        || secret
                            .string_data
                            .as_ref()
                            .is_some_and(|d| d.contains_key("password"));
                    if !has_pw {
                        s.error(
                            "spec.passwordSecret",
                            Some(format!("{sec_ns}/{}", sec.name)),
                            "Secret has no \"password\" key",
                        );
                    }
                }
            }
        }
        if let Some(bfd) = &spec.bfd_profile {
            let exists = cfg
                .bfd_profiles
                .iter()
                .any(|b| ns(b) == ns(peer) && name(b) == bfd);
            check_reference(
                &mut s,
                "spec.bfdProfile".to_string(),
                "BFDProfile",
                bfd,
                exists,
                format!(
                    "BFDProfile {}/{bfd} does not exist: sessions to this peer run without BFD until it does, then restart with it",
                    ns(peer)
                ),
            );
        }
        s.selectors("spec.nodeSelectors", &spec.node_selectors);
        if let Some(vrf) = &spec.vrf {
            check_interface_name(&mut s, "spec.vrf", vrf);
        }
        if spec.ebgp_multi_hop && peer_is_external(peer) == Some(false) {
            s.warning(
                "spec.ebgpMultiHop",
                Some("true".into()),
                "has no effect on an iBGP peer",
            );
        }
        // Two peers for the same session on the same nodes.
        let target = spec
            .peer_address
            .as_ref()
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
            .map(|a| a.to_string())
            .or_else(|| spec.interface.as_ref().map(|i| format!("interface {i}")));
        if let Some(target) = target {
            let key = (
                target.clone(),
                spec.vrf.clone().unwrap_or_default(),
                spec.peer_port,
                serde_json::to_string(&spec.node_selectors).unwrap_or_default(),
            );
            if let Some(first) = sessions.get(&key) {
                s.error(
                    "spec.peerAddress",
                    Some(target),
                    format!("the same session (address, port, VRF and node selectors) is already defined by {first}"),
                );
            } else {
                sessions.insert(key, s.obj.clone());
            }
        }
    }
}

fn show(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn validate_bfd(cfg: &Config, out: &mut Vec<Problem>) {
    for p in &cfg.bfd_profiles {
        let mut s = Sink {
            obj: object_ref(p),
            out,
        };
        let checks: [(&str, Option<u32>, u32, u32); 5] = [
            ("spec.receiveInterval", p.spec.receive_interval, 10, 60000),
            ("spec.transmitInterval", p.spec.transmit_interval, 10, 60000),
            ("spec.detectMultiplier", p.spec.detect_multiplier, 2, 255),
            ("spec.echoInterval", p.spec.echo_interval, 10, 60000),
            ("spec.minimumTtl", p.spec.minimum_ttl, 1, 254),
        ];
        for (field, value, lo, hi) in checks {
            if let Some(v) = value
                && !(lo..=hi).contains(&v)
            {
                s.error(
                    field,
                    Some(v.to_string()),
                    format!("must be from {lo} to {hi}"),
                );
            }
        }
        if p.spec.echo_mode == Some(true) && p.spec.passive_mode == Some(true) {
            s.warning(
                "spec.echoMode",
                Some("true".into()),
                "echo mode has no effect on a passive session until the peer starts it",
            );
        }
    }
}

/// The configuration without the objects that have errors: what the controller
/// and speaker act on. Warnings do not remove an object.
pub fn valid_subset(cfg: &Config, problems: &[Problem]) -> Config {
    let bad: BTreeSet<&ObjectRef> = problems
        .iter()
        .filter(|p| p.is_error())
        .filter_map(|p| p.object.as_ref())
        .collect();
    fn keep<K: Resource<DynamicType = ()> + Clone>(
        items: &[K],
        bad: &BTreeSet<&ObjectRef>,
    ) -> Vec<K> {
        items
            .iter()
            .filter(|o| !bad.contains(&object_ref(*o)))
            .cloned()
            .collect()
    }
    Config {
        ip_address_pools: keep(&cfg.ip_address_pools, &bad),
        l2_advertisements: keep(&cfg.l2_advertisements, &bad),
        bgp_advertisements: keep(&cfg.bgp_advertisements, &bad),
        bgp_peers: keep(&cfg.bgp_peers, &bad),
        bfd_profiles: keep(&cfg.bfd_profiles, &bad),
        communities: keep(&cfg.communities, &bad),
        services: cfg.services.clone(),
        nodes: cfg.nodes.clone(),
        namespaces: cfg.namespaces.clone(),
        secrets: cfg.secrets.clone(),
        endpoint_slices: cfg.endpoint_slices.clone(),
        sources: cfg.sources.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_stream;
    use crate::problem::Severity;

    fn load(file: &str) -> (Config, Vec<Problem>) {
        let path = format!("{}/testdata/validate/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_stream(&text, file);
        let mut problems = parsed.problems;
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut problems);
        assert!(
            problems.is_empty(),
            "{file} should parse cleanly: {problems:#?}"
        );
        (cfg, problems)
    }

    fn summary(problems: &[Problem]) -> Vec<(Severity, String, String)> {
        problems
            .iter()
            .map(|p| {
                (
                    p.severity,
                    p.object
                        .as_ref()
                        .map(|o| o.name.clone())
                        .unwrap_or_default(),
                    p.field.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn good_configuration_has_no_problems() {
        let (cfg, _) = load("good.yaml");
        assert_eq!(cfg.object_count(), 9);
        let problems = validate(&cfg);
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(valid_subset(&cfg, &problems).ip_address_pools.len(), 2);
    }

    #[test]
    fn every_mistake_is_named_with_object_field_and_reason() {
        let (cfg, _) = load("bad.yaml");
        let problems = validate(&cfg);
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expected: &[(Severity, &str, &str, &str)] = &[
            (
                Severity::Error,
                "pool-a",
                "spec.addresses[0]",
                "first address 192.0.2.20 is after last address 192.0.2.10",
            ),
            (
                Severity::Error,
                "pool-a",
                "spec.addresses[1]",
                "mixes IPv4 and IPv6",
            ),
            (
                Severity::Error,
                "pool-a",
                "spec.addresses[2]",
                "\"192.0.2.300\" is not an IP address",
            ),
            (
                Severity::Error,
                "pool-a",
                "spec.addresses[3]",
                "is not an IP address, a CIDR or a first-last range",
            ),
            (
                Severity::Error,
                "pool-b",
                "spec.addresses[0]",
                "overlaps IPAddressPool ferrolb-system/pool-a spec.addresses[4] \"192.0.2.0/28\" at 192.0.2.8/29",
            ),
            (
                Severity::Warning,
                "l2-bad",
                "spec.ipAddressPools[1]",
                "selects nothing until IPAddressPool ferrolb-system/missing-pool exists",
            ),
            (
                Severity::Warning,
                "adv-bad",
                "spec.communities[1]",
                "no Community object in namespace ferrolb-system defines it; this advertisement announces nothing until one does",
            ),
            (
                Severity::Error,
                "adv-bad",
                "spec.communities[2]",
                "not a number from 0 to 65535",
            ),
            (
                Severity::Warning,
                "adv-bad",
                "spec.peers[1]",
                "selects nothing until BGPPeer ferrolb-system/ghost-peer exists",
            ),
            (
                Severity::Error,
                "adv-bad",
                "spec.aggregationLength",
                "aggregation length 24 is shorter than prefix 192.0.2.8/29",
            ),
            (
                Severity::Error,
                "adv-bad",
                "spec.aggregationLengthV6",
                "aggregation length 48 is shorter than prefix 2001:db8::/64",
            ),
            (
                Severity::Warning,
                "adv-bad",
                "spec.localPref",
                "every peer this advertisement targets is eBGP (ebgp-peer)",
            ),
            (
                Severity::Error,
                "ebgp-peer",
                "spec.myASN",
                "ASN 0 is reserved",
            ),
            (
                Severity::Error,
                "ebgp-peer",
                "spec.holdTime",
                "0 (no keepalives) or at least 3s",
            ),
            (
                Severity::Error,
                "ebgp-peer",
                "spec.passwordSecret",
                "either password or passwordSecret, not both",
            ),
            (
                Severity::Warning,
                "ebgp-peer",
                "spec.passwordSecret",
                "Secret not found",
            ),
            (
                Severity::Warning,
                "ebgp-peer",
                "spec.bfdProfile",
                "BFDProfile ferrolb-system/no-such-profile does not exist: sessions to this peer run without BFD",
            ),
            (
                Severity::Error,
                "slow-keepalive",
                "spec.keepaliveTime",
                "keepalive time 60s is longer than the hold time 30s",
            ),
            (
                Severity::Error,
                "too-fast",
                "spec.receiveInterval",
                "must be from 10 to 60000",
            ),
            (
                Severity::Error,
                "too-fast",
                "spec.detectMultiplier",
                "must be from 2 to 255",
            ),
        ];
        assert_eq!(problems.len(), expected.len(), "{text:#?}");
        for (p, (sev, name, field, msg)) in problems.iter().zip(expected) {
            assert_eq!(p.severity, *sev, "{p}");
            assert_eq!(p.object.as_ref().unwrap().name, *name, "{p}");
            assert_eq!(p.field.as_deref(), Some(*field), "{p}");
            assert!(
                p.message.contains(msg),
                "{p}\nexpected message to contain: {msg}"
            );
            let src = p.source.as_ref().expect("source position");
            assert_eq!(src.file, "bad.yaml");
        }
        // Positions point at each object's document.
        assert_eq!(problems[4].source.as_ref().unwrap().document, 2);
        assert_eq!(problems[4].source.as_ref().unwrap().line, 14);
        assert_eq!(problems[19].source.as_ref().unwrap().document, 7);
        // Values are quoted in the message a person reads.
        assert!(text[0].contains(
            "IPAddressPool ferrolb-system/pool-a: spec.addresses[0] \"192.0.2.20-192.0.2.10\""
        ));
    }

    #[test]
    fn invalid_objects_are_dropped_and_valid_ones_kept() {
        let (mut cfg, _) = load("bad.yaml");
        let (good, _) = load("good.yaml");
        cfg.ip_address_pools.extend(good.ip_address_pools);
        let problems = validate(&cfg);
        let valid = valid_subset(&cfg, &problems);
        let names: Vec<&str> = valid.ip_address_pools.iter().map(name).collect();
        // "public" (192.0.2.0/26) overlaps pool-a and pool-b, and sorts after them:
        // it is the one refused. "internal" is untouched by the bad objects.
        assert_eq!(names, ["internal"]);
        assert!(problems.iter().any(|p| {
            p.object.as_ref().unwrap().name == "public"
                && p.message
                    .contains("overlaps IPAddressPool ferrolb-system/pool-a")
        }));
        assert!(valid.bgp_peers.is_empty());
        // l2-bad only names a pool that does not exist (a warning): kept.
        let l2: Vec<&str> = valid.l2_advertisements.iter().map(name).collect();
        assert_eq!(l2, ["l2-bad"]);
        // Warnings alone keep an object.
        let warn_only = Problem::warning(object_ref(&cfg.bfd_profiles[0]), "spec", "w");
        assert_eq!(valid_subset(&cfg, &[warn_only]).bfd_profiles.len(), 1);
    }

    fn peer(spec: &str) -> Config {
        let text = format!(
            "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: p\nspec:\n{spec}"
        );
        let parsed = parse_stream(&text, "t.yaml");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut Vec::new());
        cfg
    }

    #[test]
    fn peer_rules() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n", &[]),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  holdTime: 1s\n",
                &[("spec.holdTime", "at least 3s")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  holdTime: 0s\n",
                &[],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  holdTime: 3s\n",
                &[],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  holdTime: 1.5s\n",
                &[("spec.holdTime", "whole seconds")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  holdTime: ninety\n",
                &[("spec.holdTime", "")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  keepaliveTime: 91s\n",
                &[("spec.keepaliveTime", "hold time 90s (the default)")],
            ),
            (
                "  myASN: 1\n  peerASN: 0\n  peerAddress: 192.0.2.1\n",
                &[("spec.peerASN", "ASN 0")],
            ),
            (
                "  myASN: 1\n  peerAddress: 192.0.2.1\n",
                &[("spec.peerASN", "dynamicASN")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  dynamicASN: internal\n  peerAddress: 192.0.2.1\n",
                &[("spec.dynamicASN", "not both")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n",
                &[("spec.peerAddress", "interface")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  interface: eth0\n",
                &[("spec.interface", "not both")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1.5\n",
                &[("spec.peerAddress", "not an IPv4 or IPv6")],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  sourceAddress: 2001:db8::1\n",
                &[(
                    "spec.sourceAddress",
                    "is IPv6 but peerAddress 192.0.2.1 is IPv4",
                )],
            ),
            (
                "  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n  routerID: 2001:db8::1\n",
                &[("spec.routerID", "IPv4 address")],
            ),
            (
                "  myASN: 1\n  peerASN: 1\n  peerAddress: 192.0.2.1\n  ebgpMultiHop: true\n",
                &[("spec.ebgpMultiHop", "iBGP")],
            ),
            (
                "  myASN: 1\n  dynamicASN: external\n  interface: eth0\n  connectTime: 0s\n",
                &[("spec.connectTime", "from 1s")],
            ),
            (
                "  myASN: 1\n  localASN: 0\n  peerASN: 2\n  peerAddress: 192.0.2.1\n",
                &[("spec.localASN", "ASN 0")],
            ),
        ];
        for (spec, expected) in cases {
            let problems = validate(&peer(spec));
            let got: Vec<(String, String)> = problems
                .iter()
                .map(|p| (p.field.clone().unwrap_or_default(), p.message.clone()))
                .collect();
            assert_eq!(got.len(), expected.len(), "spec:\n{spec}\ngot {got:#?}");
            for ((field, msg), (ef, em)) in got.iter().zip(expected.iter()) {
                assert_eq!(field, ef, "spec:\n{spec}");
                assert!(msg.contains(em), "spec:\n{spec}\n{msg} should contain {em}");
            }
        }
    }

    #[test]
    fn duplicate_sessions_and_objects_are_reported() {
        let one = "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: NAME\nspec:\n  myASN: 1\n  peerASN: 2\n  peerAddress: 192.0.2.1\n";
        let text = format!(
            "{}---\n{}---\n{}",
            one.replace("NAME", "a"),
            one.replace("NAME", "b"),
            one.replace("NAME", "a")
        );
        let parsed = parse_stream(&text, "dup.yaml");
        let mut load_problems = parsed.problems;
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut load_problems);
        assert_eq!(load_problems.len(), 1);
        assert!(
            load_problems[0]
                .message
                .contains("defined twice; the definition at dup.yaml:1 (document 1) is used"),
            "{}",
            load_problems[0]
        );
        assert_eq!(load_problems[0].source.as_ref().unwrap().document, 3);
        let problems = validate(&cfg);
        assert_eq!(
            summary(&problems),
            [(
                Severity::Error,
                "b".to_string(),
                "spec.peerAddress".to_string()
            )]
        );
        assert!(
            problems[0]
                .message
                .contains("already defined by BGPPeer ferrolb-system/a")
        );
    }

    fn config_of(text: &str) -> Config {
        let parsed = parse_stream(text, "split.yaml");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut Vec::new());
        cfg
    }

    #[test]
    fn references_to_objects_not_applied_yet_are_warnings() {
        // One half of a configuration split across files: the advertisements
        // and the peer name a pool, a peer, a community alias and a BFD profile
        // that the other half defines.
        let first = "apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp}
spec: {ipAddressPools: [routed], peers: [tor, core], communities: [edge, no-export]}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, bfdProfile: fast}
";
        let second = "apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [198.51.100.0/26]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed}
spec: {addresses: [203.0.113.0/26]}
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: aliases}
spec: {communities: [{name: edge, value: \"64512:300\"}]}
---
apiVersion: ferrolb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 300}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: core}
spec: {myASN: 64512, peerASN: 64514, peerAddress: 192.0.2.2}
";
        let alone = config_of(first);
        let problems = validate(&alone);
        let got: Vec<(Severity, String, String, String)> = problems
            .iter()
            .map(|p| {
                (
                    p.severity,
                    p.object.as_ref().unwrap().to_string(),
                    p.field.clone().unwrap(),
                    p.message.clone(),
                )
            })
            .collect();
        let w = |obj: &str, field: &str, msg: &str| {
            (
                Severity::Warning,
                obj.to_string(),
                field.to_string(),
                msg.to_string(),
            )
        };
        assert_eq!(
            got,
            [
                w(
                    "L2Advertisement ferrolb-system/l2",
                    "spec.ipAddressPools[0]",
                    "selects nothing until IPAddressPool ferrolb-system/lan exists"
                ),
                w(
                    "BGPAdvertisement ferrolb-system/bgp",
                    "spec.ipAddressPools[0]",
                    "selects nothing until IPAddressPool ferrolb-system/routed exists"
                ),
                w(
                    "BGPAdvertisement ferrolb-system/bgp",
                    "spec.communities[0]",
                    "not a community value (65000:100, large:1:2:3, no-export), so an alias, and no Community object in namespace ferrolb-system defines it; this advertisement announces nothing until one does"
                ),
                w(
                    "BGPAdvertisement ferrolb-system/bgp",
                    "spec.peers[1]",
                    "selects nothing until BGPPeer ferrolb-system/core exists"
                ),
                w(
                    "BGPPeer ferrolb-system/tor",
                    "spec.bfdProfile",
                    "BFDProfile ferrolb-system/fast does not exist: sessions to this peer run without BFD until it does, then restart with it"
                ),
            ]
        );
        // Warnings keep every object.
        assert_eq!(
            valid_subset(&alone, &problems).object_count(),
            alone.object_count()
        );
        // The other half alone has nothing dangling; both together, in
        // either order, have no problem at all.
        assert!(validate(&config_of(second)).is_empty());
        for text in [
            format!("{first}---\n{second}"),
            format!("{second}---\n{first}"),
        ] {
            let problems = validate(&config_of(&text));
            assert!(problems.is_empty(), "{problems:#?}");
        }
        // Only what can never be right is an error: an empty name.
        let empty = config_of(
            "apiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: e}\nspec: {ipAddressPools: [\"\"], peers: [\" \"], communities: [\"\"]}\n",
        );
        let fields: Vec<(Severity, String)> = validate(&empty)
            .iter()
            .map(|p| (p.severity, p.field.clone().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                (Severity::Error, "spec.ipAddressPools[0]".to_string()),
                (Severity::Error, "spec.communities[0]".to_string()),
                (Severity::Error, "spec.peers[0]".to_string()),
            ]
        );
    }

    #[test]
    fn community_aliases_named_like_well_known_communities() {
        let cfg = config_of(
            "apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: metallb}
spec:
  communities:
  - {name: no-export, value: \"65535:65281\"}
  - {name: no-advertise, value: no-advertise}
  - {name: blackhole, value: \"65000:666\"}
  - {name: \"65000:1\", value: \"65000:2\"}
  - {name: no-peer, value: \"65535:99999\"}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv}
spec: {communities: [no-export, no-advertise]}
",
        );
        let got: Vec<String> = validate(&cfg).iter().map(|p| p.to_string()).collect();
        // The first two mean what the well-known names mean: accepted.
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0].contains(
                "error: Community ferrolb-system/metallb: spec.communities[2].name \"blackhole\": conflicts with the well-known community blackhole (65535:666): this alias gives it the value 65000:666, but a BGPAdvertisement naming blackhole always gets 65535:666; rename the alias (`ferrolb-controller migrate` renames it to metallb-blackhole) or set its value to 65535:666"
            ),
            "{got:#?}"
        );
        assert!(
            got[1].contains(
                "spec.communities[3].name \"65000:1\": an alias name must not contain ':'"
            ),
            "{got:#?}"
        );
        // A bad value is reported on the value only.
        assert!(
            got[2].contains("spec.communities[4].value \"65535:99999\""),
            "{got:#?}"
        );
    }

    #[test]
    fn selectors_and_interfaces_are_checked() {
        let text = "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: l\nspec:\n  interfaces: [\"this-name-is-too-long0\"]\n  nodeSelectors:\n    - matchExpressions: [{key: a, operator: Maybe}]\n  preferredNodeSelectors:\n    - weight: 0\n      preference: {matchLabels: {z: a}}\n";
        let parsed = parse_stream(text, "l2.yaml");
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut Vec::new());
        let fields: Vec<String> = validate(&cfg)
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.nodeSelectors[0].matchExpressions[0].operator",
                "spec.preferredNodeSelectors[0].weight",
                "spec.interfaces[0]"
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let text = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  namespace: x\nspec:\n  addresses: 5\n";
        let parsed = parse_stream(text, "t.yaml");
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.problems.len(), 1);
        let p = &parsed.problems[0];
        assert_eq!(p.field.as_deref(), Some("spec.addresses"));
        assert_eq!(p.object.as_ref().unwrap().to_string(), "IPAddressPool x/p");
        assert_eq!(p.message, "expected a sequence, found the number 5", "{p}");
        assert_eq!((p.source.as_ref().unwrap().line, p.column), (7, Some(14)));
    }
}
