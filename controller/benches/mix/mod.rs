//! The pools and the mix of Services shared by the allocator benchmark and the
//! memory example (`examples/memory.rs` includes this file), so both measure
//! the same input.

use ferrolb_config::crd::{IPAddressPool, IPAddressPoolSpec, ServiceAllocation};

/// A pool in `ferrolb-system`, with a priority when given.
pub fn pool(name: &str, addresses: &[String], priority: Option<i32>) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.to_vec(),
            service_allocation: priority.map(|p| ServiceAllocation {
                priority: Some(p),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    p.metadata.namespace = Some("ferrolb-system".into());
    p
}

/// 50 small prioritised ranges (documentation ranges), then a dual-stack pool
/// with an IPv4 /8 (240.0.0.0/8, reserved, never routed) and an IPv6 /64.
pub fn pools() -> Vec<IPAddressPool> {
    let mut out = Vec::new();
    for i in 0..50 {
        let third = if i < 25 { "198.51.100" } else { "203.0.113" };
        let base = (i % 25) * 8;
        out.push(pool(
            &format!("small-{i:02}"),
            &[format!("{third}.{}-{third}.{}", base + 1, base + 8)],
            Some(i),
        ));
    }
    out.push(pool(
        "big",
        &["240.0.0.0/8".to_string(), "2001:db8:1::/64".to_string()],
        None,
    ));
    out
}

/// Service `i` of the mix: 60 % IPv4, 20 % IPv6, 15 % PreferDualStack, 5 %
/// (every 20th) with an allow-shared-ip key `key-{i % 100}` (5 keys).
/// (ipFamilyPolicy, ipFamilies, sharing key, port)
pub fn shape(i: usize) -> (Option<&'static str>, Vec<&'static str>, Option<String>, i32) {
    let port = 1000 + (i % 20_000) as i32;
    match i % 20 {
        0..=11 => (None, vec![], None, port),
        12..=15 => (Some("SingleStack"), vec!["IPv6"], None, port),
        16..=18 => (Some("PreferDualStack"), vec!["IPv4", "IPv6"], None, port),
        _ => (None, vec![], Some(format!("key-{}", i % 100)), port),
    }
}
