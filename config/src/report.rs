//! Turning problems and pool usage into the status FerroLB writes back:
//! a `ConfigurationState`, a `Valid` condition per object, and pool counts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::addr::{AddrCount, AddrRange, Family, to_u128};
use crate::crd::{ConfigurationStateStatus, IPAddressPool, IPAddressPoolStatus, ReportedProblem};
use crate::problem::{ObjectRef, Problem, count};

/// The status of a component's `ConfigurationState` for these problems.
pub fn configuration_state(problems: &[Problem]) -> ConfigurationStateStatus {
    let (errors, warnings) = count(problems);
    let result = if errors > 0 {
        "Invalid"
    } else if warnings > 0 {
        "ValidWithWarnings"
    } else {
        "Valid"
    };
    ConfigurationStateStatus {
        result: result.to_string(),
        error_count: errors as u32,
        warning_count: warnings as u32,
        error_summary: problems
            .iter()
            .find(|p| p.is_error())
            .map(|p| p.to_string()),
        problems: problems
            .iter()
            .map(|p| ReportedProblem {
                severity: if p.is_error() { "Error" } else { "Warning" }.to_string(),
                kind: p
                    .object
                    .as_ref()
                    .map(|o| o.kind.clone())
                    .unwrap_or_default(),
                namespace: p.object.as_ref().and_then(|o| o.namespace.clone()),
                name: p
                    .object
                    .as_ref()
                    .map(|o| o.name.clone())
                    .unwrap_or_default(),
                field: p.field.clone(),
                message: match (&p.value, &p.source) {
                    (Some(v), Some(src)) => format!("{v:?}: {} ({src})", p.message),
                    (Some(v), None) => format!("{v:?}: {}", p.message),
                    (None, Some(src)) => format!("{} ({src})", p.message),
                    (None, None) => p.message.clone(),
                },
            })
            .collect(),
        conditions: Vec::new(),
    }
}

/// The `Valid` condition of one object: False with the first error's field and
/// message, True otherwise (warnings are listed in the message).
pub fn valid_condition(
    object: &ObjectRef,
    problems: &[Problem],
    generation: Option<i64>,
    now: Time,
) -> Condition {
    let mine: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.object.as_ref() == Some(object))
        .collect();
    let describe = |p: &Problem| match &p.field {
        Some(f) => format!("{f}: {}", p.message),
        None => p.message.clone(),
    };
    let (status, reason, message) = if let Some(err) = mine.iter().find(|p| p.is_error()) {
        let more = mine.iter().filter(|p| p.is_error()).count() - 1;
        let tail = if more > 0 {
            format!(" (and {more} more errors)")
        } else {
            String::new()
        };
        (
            "False",
            "InvalidConfiguration",
            format!("{}{tail}; this object is ignored", describe(err)),
        )
    } else if !mine.is_empty() {
        let all: Vec<String> = mine.iter().map(|p| describe(p)).collect();
        ("True", "ValidWithWarnings", all.join("; "))
    } else {
        ("True", "Valid", "configuration is valid".to_string())
    };
    Condition {
        type_: "Valid".to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// How many addresses of a range end in .0 or .255 (IPv4 only).
fn buggy_in(r: &AddrRange) -> u64 {
    if r.family() != Family::V4 {
        return 0;
    }
    let (lo, hi) = (to_u128(&r.first()) as u64, to_u128(&r.last()) as u64);
    // Numbers n in [lo, hi] with n % 256 == rem.
    let congruent = |rem: u64| -> u64 {
        let upto = |x: u64| if x < rem { 0 } else { (x - rem) / 256 + 1 };
        upto(hi) - if lo == 0 { 0 } else { upto(lo - 1) }
    };
    congruent(0) + congruent(255)
}

/// Addresses a pool can hand out per family (IPv4, IPv6): entries merged, and
/// .0/.255 removed when `avoidBuggyIPs` is set. Unparsable entries count nothing.
pub fn pool_capacity(pool: &IPAddressPool) -> (AddrCount, AddrCount) {
    let ranges: Vec<AddrRange> = pool
        .spec
        .addresses
        .iter()
        .filter_map(|a| AddrRange::parse(a).ok())
        .collect();
    let merged = crate::addr::merge(&ranges);
    let mut v4 = AddrCount::ZERO;
    let mut v6 = AddrCount::ZERO;
    for r in &merged {
        match r.family() {
            Family::V4 => {
                let mut n = r.len();
                if pool.spec.avoid_buggy_ips {
                    n = n.minus(AddrCount::from(buggy_in(r)));
                }
                v4 = v4.plus(n);
            }
            Family::V6 => v6 = v6.plus(r.len()),
        }
    }
    (v4, v6)
}

/// A pool's status counts given how many of its addresses are assigned.
pub fn pool_status(
    pool: &IPAddressPool,
    assigned_v4: u64,
    assigned_v6: AddrCount,
) -> IPAddressPoolStatus {
    let (cap4, cap6) = pool_capacity(pool);
    let assigned4 = AddrCount::from(assigned_v4);
    IPAddressPoolStatus {
        assigned_ipv4: assigned_v4,
        // IPv4 capacity is at most 2^32, so it always fits.
        available_ipv4: cap4.minus(assigned4).to_u64().unwrap_or(u64::MAX),
        assigned_ipv6: assigned_v6.to_string(),
        available_ipv6: cap6.minus(assigned_v6).to_string(),
        conditions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::IPAddressPoolSpec;

    fn pool(addresses: &[&str], avoid_buggy: bool) -> IPAddressPool {
        IPAddressPool::new(
            "p",
            IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                avoid_buggy_ips: avoid_buggy,
                ..Default::default()
            },
        )
    }

    #[test]
    fn capacity_is_exact_for_every_size() {
        let (v4, v6) = pool_capacity(&pool(
            &["192.0.2.0/24", "2001:db8::/64", "192.0.2.10-192.0.2.12"],
            false,
        ));
        assert_eq!(v4.to_string(), "256");
        assert_eq!(v6.to_string(), "18446744073709551616");
        let (_, v6) = pool_capacity(&pool(&["::/0"], false));
        assert_eq!(v6.to_string(), "340282366920938463463374607431768211456");
        let (v4, _) = pool_capacity(&pool(&["0.0.0.0/0"], false));
        assert_eq!(v4.to_u64(), Some(1 << 32));
    }

    #[test]
    fn avoid_buggy_ips_removes_dot_zero_and_dot_255() {
        assert_eq!(
            pool_capacity(&pool(&["192.0.2.0/24"], true)).0.to_u64(),
            Some(254)
        );
        assert_eq!(
            pool_capacity(&pool(&["192.0.2.0/23"], true)).0.to_u64(),
            Some(508)
        );
        assert_eq!(
            pool_capacity(&pool(&["192.0.2.1-192.0.2.254"], true))
                .0
                .to_u64(),
            Some(254)
        );
        assert_eq!(
            pool_capacity(&pool(&["192.0.2.255-192.0.3.0"], true))
                .0
                .to_u64(),
            Some(0)
        );
        assert_eq!(
            pool_capacity(&pool(&["0.0.0.0/0"], true)).0.to_u64(),
            Some((1 << 32) - 2 * (1 << 24))
        );
        // IPv6 is untouched.
        assert_eq!(
            pool_capacity(&pool(&["2001:db8::/120"], true))
                .1
                .to_string(),
            "256"
        );
    }

    #[test]
    fn pool_status_counts() {
        let st = pool_status(
            &pool(&["192.0.2.0/30", "2001:db8::/64"], false),
            3,
            AddrCount::from(5u64),
        );
        assert_eq!(st.assigned_ipv4, 3);
        assert_eq!(st.available_ipv4, 1);
        assert_eq!(st.assigned_ipv6, "5");
        assert_eq!(st.available_ipv6, "18446744073709551611");
    }

    #[test]
    fn configuration_state_and_conditions() {
        let obj = ObjectRef::new("BGPPeer", Some("ferrolb-system"), "p");
        let problems = vec![
            Problem::error(obj.clone(), "spec.holdTime", "bad hold").with_value("2s"),
            Problem::error(obj.clone(), "spec.myASN", "ASN 0"),
            Problem::warning(
                ObjectRef::new("BGPAdvertisement", Some("ferrolb-system"), "a"),
                "spec.localPref",
                "no effect",
            ),
        ];
        let st = configuration_state(&problems);
        assert_eq!(
            (st.result.as_str(), st.error_count, st.warning_count),
            ("Invalid", 2, 1)
        );
        assert_eq!(st.problems[0].field.as_deref(), Some("spec.holdTime"));
        assert_eq!(st.problems[0].message, "\"2s\": bad hold");
        assert!(
            st.error_summary
                .unwrap()
                .contains("BGPPeer ferrolb-system/p")
        );
        assert_eq!(
            configuration_state(&problems[2..]).result,
            "ValidWithWarnings"
        );
        assert_eq!(configuration_state(&[]).result, "Valid");

        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let c = valid_condition(&obj, &problems, Some(4), now.clone());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidConfiguration")
        );
        assert_eq!(
            c.message,
            "spec.holdTime: bad hold (and 1 more errors); this object is ignored"
        );
        assert_eq!(c.observed_generation, Some(4));
        let adv = ObjectRef::new("BGPAdvertisement", Some("ferrolb-system"), "a");
        let c = valid_condition(&adv, &problems, None, now.clone());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ValidWithWarnings")
        );
        let other = ObjectRef::new("BFDProfile", None, "x");
        assert_eq!(
            valid_condition(&other, &problems, None, now).reason,
            "Valid"
        );
    }
}
