//! BGP interoperability with BIRD 2: `ferrolb-speaker bgp-probe` in a
//! "node" namespace peers with BIRD in a "router" namespace over a veth
//! pair, and BIRD's own view (`birdc show protocols all`, `birdc show
//! route all`) is checked: sessions over IPv4 and IPv6 transport with
//! 4-octet ASNs, iBGP, route attributes, withdrawal and TCP MD5.
//!
//! Documentation addresses only (198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32); nothing is touched outside the namespaces the tests
//! make. Needs root, `ip` and the Debian package `bird2`: without them
//! each test prints `SKIPPED: …`, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_bird -- --nocapture`.

use std::time::Duration;

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, sample_for, wait_until,
};
use ferrolb_e2e::routers::{
    Bird, BirdConfig, BirdExport, BirdNeighbor, BirdRoute, stop_with_cease,
};
use serde_json::Value;

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);
/// The BGP protocol of the probe in BIRD's configuration.
const PEER: &str = "node";

fn config(neighbor: BirdNeighbor, static_routes: &[&str]) -> BirdConfig {
    BirdConfig {
        router_id: ROUTER_V4.to_owned(),
        neighbors: vec![neighbor],
        static_routes: static_routes.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// Probe arguments for a session from `source` to `peer`, then `extra`.
fn start_probe(lab: &BgpLab, asn: u32, peer: &str, source: &str, extra: &[&str]) -> BgpProbe {
    let extra = [&["--router-id", NODE_V4], extra].concat();
    BgpProbe::start_session(&lab.node, asn, peer, ROUTER_ASN, source, &extra)
}

/// Waits until the routes BIRD got from the probe are exactly `prefixes`.
fn wait_routes(bird: &mut Bird, prefixes: &[&str]) -> Vec<BirdRoute> {
    let mut last = Vec::new();
    let routes = wait_until(WAIT, || {
        last = bird.routes_from(PEER);
        let mut got: Vec<&str> = last.iter().map(|r| r.prefix.as_str()).collect();
        got.sort_unstable();
        let mut want = prefixes.to_vec();
        want.sort_unstable();
        (got == want).then(|| last.clone())
    });
    routes.unwrap_or_else(|| {
        panic!(
            "BIRD's routes from the probe are not {prefixes:?}: {last:#?}\nBIRD log:\n{}",
            bird.log()
        )
    })
}

fn route<'r>(routes: &'r [BirdRoute], prefix: &str) -> &'r BirdRoute {
    routes
        .iter()
        .find(|r| r.prefix == prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {routes:#?}"))
}

/// SIGTERM: the probe sends Cease/Administrative Shutdown and exits 0;
/// BIRD drops the session and every route from it.
fn stop_and_check_withdrawn(probe: &mut BgpProbe, bird: &mut Bird) {
    stop_with_cease(probe);
    let gone = wait_until(WAIT, || {
        let empty = bird.routes_from(PEER).is_empty();
        (empty && bird.bgp_state(PEER).as_deref() != Some("Established")).then_some(())
    });
    assert!(
        gone.is_some(),
        "routes or session still in BIRD: {:?} {:#?}",
        bird.bgp_state(PEER),
        bird.routes_from(PEER)
    );
    let protocol = bird.protocol(PEER);
    assert!(
        protocol.contains("Received: Administrative shutdown"),
        "BIRD did not record our Cease:\n{protocol}"
    );
}

#[test]
fn bird_ebgp_over_ipv4_with_attributes_and_static_export() {
    if !ferrolb_e2e::require(Bird::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut neighbor = BirdNeighbor::new(PEER, ROUTER_V4, ROUTER_ASN, NODE_V4, NODE_ASN);
    neighbor.ipv4 = Some(BirdExport::Static);
    neighbor.hold_time = Some(9);
    let mut bird = Bird::start(
        &lab.router,
        &config(neighbor, &["203.0.113.0/24", "2001:db8:ff::/48"]),
    );
    let mut probe = start_probe(
        &lab,
        NODE_ASN,
        ROUTER_V4,
        NODE_V4,
        &[
            "--hold-time",
            "30",
            "--prefix",
            "198.51.100.77/32",
            "--prefix",
            "2001:db8::77/128",
            "--next-hop",
            NODE_V6,
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
    assert_eq!(up["peer_router_id"], ROUTER_V4, "{up}");
    assert_eq!(up["hold_time"], 9, "BIRD's 9 s beats our 30 s: {up}");
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    assert_eq!(up["internal"], false, "{up}");

    let protocol = bird.protocol(PEER);
    assert_eq!(
        bird.bgp_state(PEER).as_deref(),
        Some("Established"),
        "{protocol}"
    );
    assert!(
        protocol.contains("Session:          external AS4"),
        "{protocol}"
    );
    assert!(
        protocol.contains("Neighbor ID:      198.51.100.2"),
        "{protocol}"
    );

    let routes = wait_routes(&mut bird, &["198.51.100.77/32", "2001:db8::77/128"]);
    for (prefix, table, next_hop) in [
        ("198.51.100.77/32", "master4", NODE_V4),
        ("2001:db8::77/128", "master6", NODE_V6),
    ] {
        let r = route(&routes, prefix);
        assert_eq!(r.table, table, "{r:#?}");
        assert!(r.primary, "{r:#?}");
        assert_eq!(r.communities(), vec![(65000, 7), (65000, 8)], "{r:#?}");
        assert_eq!(r.large_communities(), vec![(NODE_ASN, 1, 2)], "{r:#?}");
        assert_eq!(r.med(), Some(50), "{r:#?}");
        assert_eq!(r.as_path(), vec![NODE_ASN], "{r:#?}");
        assert_eq!(
            r.attrs.get("BGP.origin").map(String::as_str),
            Some("IGP"),
            "{r:#?}"
        );
        assert_eq!(r.next_hop(), Some(next_hop), "{r:#?}");
        assert_eq!(r.via.as_deref(), Some(next_hop), "{r:#?}");
    }

    // BIRD exports its static IPv4 route (and only that: the IPv6 channel
    // exports nothing) and its End-of-RIB for both families.
    let received = probe.expect("routes_received", WAIT, |l| {
        l["family"] == "ipv4-unicast" && l["current"] == 1
    });
    assert_eq!(received["announced"], 1, "{received}");
    probe.expect("end_of_rib", WAIT, |l| l["family"] == "ipv6-unicast");
    probe.expect("end_of_rib", WAIT, |l| l["family"] == "ipv4-unicast");
    let transcript = probe.transcript();
    assert!(
        !transcript.lines().any(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|l| l["event"] == "routes_received" && l["family"] == "ipv6-unicast")
        }),
        "BIRD exported IPv6 routes with `export none`:\n{transcript}"
    );

    stop_and_check_withdrawn(&mut probe, &mut bird);
}

#[test]
fn bird_ebgp_over_ipv6_transport() {
    if !ferrolb_e2e::require(Bird::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let neighbor = BirdNeighbor::new(PEER, ROUTER_V6, ROUTER_ASN, NODE_V6, NODE_ASN);
    let mut bird = Bird::start(&lab.router, &config(neighbor, &[]));
    let mut probe = start_probe(
        &lab,
        NODE_ASN,
        ROUTER_V6,
        NODE_V6,
        &[
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
    let protocol = bird.protocol(PEER);
    assert!(
        protocol.contains("Neighbor address: 2001:db8::2"),
        "{protocol}"
    );
    let routes = wait_routes(&mut bird, &["198.51.100.78/32", "2001:db8::78/128"]);
    for (prefix, next_hop) in [("2001:db8::78/128", NODE_V6), ("198.51.100.78/32", NODE_V4)] {
        let r = route(&routes, prefix);
        assert_eq!(r.next_hop(), Some(next_hop), "{r:#?}");
        assert_eq!(r.large_communities(), vec![(NODE_ASN, 3, 4)], "{r:#?}");
        assert!(r.communities().is_empty(), "{r:#?}");
        assert_eq!(r.med(), None, "no MED sent: {r:#?}");
    }
    stop_and_check_withdrawn(&mut probe, &mut bird);
}

#[test]
fn bird_ibgp_carries_local_preference() {
    if !ferrolb_e2e::require(Bird::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let neighbor = BirdNeighbor::new(PEER, ROUTER_V4, ROUTER_ASN, NODE_V4, ROUTER_ASN);
    let mut bird = Bird::start(&lab.router, &config(neighbor, &[]));
    let mut probe = start_probe(
        &lab,
        ROUTER_ASN,
        ROUTER_V4,
        NODE_V4,
        &[
            "--prefix",
            "198.51.100.79",
            "--prefix",
            "2001:db8::79",
            "--next-hop",
            NODE_V6,
            "--local-pref",
            "250",
            "--med",
            "7",
            "--community",
            "no-export",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["internal"], true, "{up}");
    let protocol = bird.protocol(PEER);
    assert!(
        protocol.contains("Session:          internal"),
        "{protocol}"
    );
    let routes = wait_routes(&mut bird, &["198.51.100.79/32", "2001:db8::79/128"]);
    for (prefix, next_hop) in [("198.51.100.79/32", NODE_V4), ("2001:db8::79/128", NODE_V6)] {
        let r = route(&routes, prefix);
        assert_eq!(r.local_pref(), Some(250), "{r:#?}");
        assert_eq!(r.med(), Some(7), "{r:#?}");
        assert_eq!(r.communities(), vec![(65535, 65281)], "no-export: {r:#?}");
        assert!(r.as_path().is_empty(), "iBGP AS_PATH must be empty: {r:#?}");
        assert_eq!(r.next_hop(), Some(next_hop), "{r:#?}");
    }
    stop_and_check_withdrawn(&mut probe, &mut bird);
}

#[test]
fn bird_tcp_md5_wrong_password_never_establishes_and_right_one_does() {
    if !ferrolb_e2e::require(Bird::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut neighbor = BirdNeighbor::new(PEER, ROUTER_V4, ROUTER_ASN, NODE_V4, NODE_ASN);
    neighbor.password = Some("ferrolb-md5-right".to_owned());
    let mut bird = Bird::start(&lab.router, &config(neighbor, &[]));
    let secrets = tempfile::tempdir().expect("temp dir");
    let wrong = secrets.path().join("wrong");
    let right = secrets.path().join("right");
    std::fs::write(&wrong, "ferrolb-md5-wrong\n").expect("password file");
    std::fs::write(&right, "ferrolb-md5-right\n").expect("password file");
    let args = |file: &std::path::Path| {
        [
            "--prefix".to_owned(),
            "198.51.100.83/32".to_owned(),
            "--password-file".to_owned(),
            file.to_str().expect("utf-8").to_owned(),
        ]
    };

    // Wrong password: for a bounded window, neither side gets anywhere.
    let wrong_args = args(&wrong);
    let wrong_args: Vec<&str> = wrong_args.iter().map(String::as_str).collect();
    let mut probe = start_probe(&lab, NODE_ASN, ROUTER_V4, NODE_V4, &wrong_args);
    probe.expect("state", WAIT, |l| l["to"] == "connect");
    let states = sample_for(Duration::from_secs(6), || {
        bird.bgp_state(PEER).unwrap_or_default()
    });
    assert!(
        !states
            .iter()
            .any(|s| s == "Established" || s == "OpenConfirm"),
        "BIRD got a session with a wrong password: {states:?}"
    );
    assert!(
        !probe.saw("established"),
        "probe established with a wrong password:\n{}",
        probe.transcript()
    );
    assert!(bird.routes_from(PEER).is_empty());
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    assert!(!probe.saw("established"));

    // The right password against the same BIRD establishes.
    let right_args = args(&right);
    let right_args: Vec<&str> = right_args.iter().map(String::as_str).collect();
    let mut probe = start_probe(&lab, NODE_ASN, ROUTER_V4, NODE_V4, &right_args);
    probe.expect("established", WAIT, |_| true);
    wait_routes(&mut bird, &["198.51.100.83/32"]);
    assert_eq!(bird.bgp_state(PEER).as_deref(), Some("Established"));
    stop_and_check_withdrawn(&mut probe, &mut bird);
}
