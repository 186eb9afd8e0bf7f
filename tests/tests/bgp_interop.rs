//! BGP interoperability: `ferrolb-speaker bgp-probe` in a "node" namespace
//! peers with a real BGP daemon in a "router" namespace over a veth pair,
//! and the daemon's own view (its JSON CLI) is checked.
//!
//! Routers covered: GoBGP (`gobgpd`, queried with `gobgp -j neighbor` and
//! `gobgp -j global rib -a ipv4|ipv6`).
//!
//! Documentation addresses only (198.51.100.0/24, 2001:db8::/32); nothing
//! is touched outside the namespaces the tests make. Needs root, `ip`,
//! `gobgpd` and `gobgp`: without them each test prints `SKIPPED: …`,
//! unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_interop -- --nocapture`.

use std::time::Duration;

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, GOBGP_ESTABLISHED, GoBgp, GoBgpNeighbor, NODE_V4, NODE_V6, ROUTER_V4,
    ROUTER_V6, stop_with_cease, wait_until,
};
use serde_json::Value;

const GOBGP_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("gobgpd", "gobgpd"),
    ("gobgp", "gobgpd"),
];
const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);

/// The attribute of type `code` of the first path of `prefix`.
fn attr(rib: &serde_json::Map<String, Value>, prefix: &str, code: u64) -> Value {
    rib[prefix][0]["attrs"]
        .as_array()
        .and_then(|attrs| attrs.iter().find(|a| a["type"] == code).cloned())
        .unwrap_or(Value::Null)
}

fn session_state(gobgp: &mut GoBgp, lab: &BgpLab, neighbor: &str) -> Option<u64> {
    gobgp.neighbor(&lab.router, neighbor)["state"]["session_state"].as_u64()
}

/// Waits for `prefixes` of `family` to be in GoBGP's RIB and returns it.
fn wait_rib(
    gobgp: &mut GoBgp,
    lab: &BgpLab,
    family: &str,
    prefixes: &[&str],
) -> serde_json::Map<String, Value> {
    wait_until(WAIT, || {
        let rib = gobgp.rib(&lab.router, family);
        prefixes.iter().all(|p| rib.contains_key(*p)).then_some(rib)
    })
    .unwrap_or_else(|| {
        panic!(
            "{prefixes:?} not in GoBGP's {family} RIB: {:?}\ngobgpd log:\n{}",
            gobgp.rib(&lab.router, family),
            gobgp.log()
        )
    })
}

/// SIGTERM: the probe withdraws, sends Cease/Administrative Shutdown (the
/// NOTIFICATION after its `stopping` line, not an earlier collision's
/// Cease 6/7) and exits 0; the routes and the session are gone from GoBGP.
fn stop_and_check_withdrawn(probe: &mut BgpProbe, gobgp: &mut GoBgp, lab: &BgpLab, neighbor: &str) {
    stop_with_cease(probe);
    let gone = wait_until(WAIT, || {
        let empty =
            gobgp.rib(&lab.router, "ipv4").is_empty() && gobgp.rib(&lab.router, "ipv6").is_empty();
        (empty && session_state(gobgp, lab, neighbor) != Some(GOBGP_ESTABLISHED)).then_some(())
    });
    assert!(
        gone.is_some(),
        "routes or session still in GoBGP: {:?} {:?}",
        gobgp.rib(&lab.router, "ipv4"),
        gobgp.rib(&lab.router, "ipv6")
    );
}

#[test]
fn gobgp_ebgp_over_ipv4_with_4_octet_asns_and_communities() {
    if !ferrolb_e2e::require(GOBGP_TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut gobgp = GoBgp::start(
        &lab.router,
        ROUTER_ASN,
        &[GoBgpNeighbor::new(NODE_V4, NODE_ASN)],
    );
    let mut probe = BgpProbe::start_session(
        &lab.node,
        NODE_ASN,
        ROUTER_V4,
        ROUTER_ASN,
        NODE_V4,
        &[
            "--hold-time",
            "9",
            "--prefix",
            "198.51.100.77/32",
            "--prefix",
            "2001:db8::77/128",
            "--community",
            "65000:7",
            "--community",
            "65000:8",
            "--large-community",
            "4200000002:1:2",
            "--med",
            "50",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    assert_eq!(up["hold_time"], 9, "{up}");
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    assert_eq!(up["internal"], false, "{up}");

    let neighbor = gobgp.neighbor(&lab.router, NODE_V4);
    assert_eq!(
        neighbor["state"]["session_state"], GOBGP_ESTABLISHED,
        "{neighbor}"
    );
    assert_eq!(neighbor["state"]["peer_asn"], NODE_ASN, "{neighbor}");
    assert_eq!(
        neighbor["timers"]["state"]["negotiated_hold_time"], 9,
        "{neighbor}"
    );

    let v4 = wait_rib(&mut gobgp, &lab, "ipv4", &["198.51.100.77/32"]);
    let v6 = wait_rib(&mut gobgp, &lab, "ipv6", &["2001:db8::77/128"]);
    assert_eq!(v4.len(), 1, "{v4:?}");
    assert_eq!(v6.len(), 1, "{v6:?}");
    let communities = serde_json::json!([(65000u64 << 16) | 7, (65000u64 << 16) | 8]);
    let large = serde_json::json!([{ "ASN": NODE_ASN, "LocalData1": 1, "LocalData2": 2 }]);
    for (rib, prefix) in [(&v4, "198.51.100.77/32"), (&v6, "2001:db8::77/128")] {
        assert_eq!(
            attr(rib, prefix, 8)["communities"],
            communities,
            "{prefix}: {rib:?}"
        );
        assert_eq!(attr(rib, prefix, 32)["value"], large, "{prefix}: {rib:?}");
        assert_eq!(
            attr(rib, prefix, 2)["as_paths"][0]["asns"],
            serde_json::json!([NODE_ASN]),
            "{rib:?}"
        );
        assert_eq!(attr(rib, prefix, 4)["metric"], 50, "{prefix}: {rib:?}");
        assert_eq!(
            attr(rib, prefix, 5),
            Value::Null,
            "no LOCAL_PREF over eBGP: {rib:?}"
        );
    }
    assert_eq!(
        attr(&v4, "198.51.100.77/32", 3)["nexthop"],
        NODE_V4,
        "{v4:?}"
    );

    stop_and_check_withdrawn(&mut probe, &mut gobgp, &lab, NODE_V4);
}

#[test]
fn gobgp_ebgp_over_ipv6_transport() {
    if !ferrolb_e2e::require(GOBGP_TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut gobgp = GoBgp::start(
        &lab.router,
        ROUTER_ASN,
        &[GoBgpNeighbor::new(NODE_V6, NODE_ASN)],
    );
    let mut probe = BgpProbe::start_session(
        &lab.node,
        NODE_ASN,
        ROUTER_V6,
        ROUTER_ASN,
        NODE_V6,
        &[
            "--router-id",
            NODE_V4,
            "--prefix",
            "2001:db8::78/128",
            "--prefix",
            "198.51.100.78/32",
            "--next-hop",
            NODE_V4,
            "--large-community",
            "4200000002:3:4",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    let connected = probe.expect("connected", WAIT, |_| true);
    assert!(
        connected["remote"]
            .as_str()
            .unwrap_or("")
            .contains(ROUTER_V6),
        "{connected}"
    );
    let v6 = wait_rib(&mut gobgp, &lab, "ipv6", &["2001:db8::78/128"]);
    let v4 = wait_rib(&mut gobgp, &lab, "ipv4", &["198.51.100.78/32"]);
    assert_eq!(
        attr(&v6, "2001:db8::78/128", 14)["nexthop"],
        NODE_V6,
        "{v6:?}"
    );
    assert_eq!(
        attr(&v4, "198.51.100.78/32", 3)["nexthop"],
        NODE_V4,
        "{v4:?}"
    );
    assert_eq!(
        attr(&v6, "2001:db8::78/128", 32)["value"],
        serde_json::json!([{ "ASN": NODE_ASN, "LocalData1": 3, "LocalData2": 4 }]),
        "{v6:?}"
    );
    stop_and_check_withdrawn(&mut probe, &mut gobgp, &lab, NODE_V6);
}

#[test]
fn gobgp_ibgp_carries_local_preference() {
    if !ferrolb_e2e::require(GOBGP_TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut gobgp = GoBgp::start(
        &lab.router,
        ROUTER_ASN,
        &[GoBgpNeighbor::new(NODE_V4, ROUTER_ASN)],
    );
    let mut probe = BgpProbe::start_session(
        &lab.node,
        ROUTER_ASN,
        ROUTER_V4,
        ROUTER_ASN,
        NODE_V4,
        &[
            "--prefix",
            "198.51.100.79",
            "--prefix",
            "2001:db8::79",
            "--local-pref",
            "250",
            "--community",
            "no-export",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["internal"], true, "{up}");
    let v4 = wait_rib(&mut gobgp, &lab, "ipv4", &["198.51.100.79/32"]);
    let v6 = wait_rib(&mut gobgp, &lab, "ipv6", &["2001:db8::79/128"]);
    for (rib, prefix) in [(&v4, "198.51.100.79/32"), (&v6, "2001:db8::79/128")] {
        assert_eq!(attr(rib, prefix, 5)["value"], 250, "{prefix}: {rib:?}");
        assert_eq!(
            attr(rib, prefix, 8)["communities"],
            serde_json::json!([0xFFFF_FF01u32]),
            "{rib:?}"
        );
        let as_path = attr(rib, prefix, 2);
        let empty = as_path["as_paths"].as_array().is_none_or(|segs| {
            segs.iter()
                .all(|s| s["asns"].as_array().is_none_or(Vec::is_empty))
        });
        assert!(empty, "iBGP AS_PATH must be empty: {as_path}");
    }
    stop_and_check_withdrawn(&mut probe, &mut gobgp, &lab, NODE_V4);
}
