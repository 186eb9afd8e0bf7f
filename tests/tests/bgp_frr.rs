//! BGP interoperability with FRR 8.4: `ferrolb-speaker bgp-probe` in a
//! "node" namespace peers with FRR (zebra, bgpd, bfdd) in a "router"
//! namespace over a veth pair, and FRR's own view (`vtysh … json`) is
//! checked: sessions over IPv4 and IPv6 transport with 4-octet ASNs,
//! iBGP, route attributes, withdrawal, TCP MD5 and graceful restart.
//!
//! Documentation addresses only (198.51.100.0/24, 2001:db8::/32); nothing
//! is touched outside the namespaces the tests make. Needs root, `ip` and
//! the Debian package `frr`: without them each test prints `SKIPPED: …`,
//! unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_frr -- --nocapture`.

use std::time::Duration;

use ferrolb_e2e::bgp::{
    self, BgpLab, BgpProbe, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, sample_for, wait_until,
};
use ferrolb_e2e::routers::{BfdTimers, Frr, FrrConfig, FrrNeighbor, stop_with_cease};
use serde_json::{Value, json};

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);

/// Probe arguments for a session from `source` to `peer`.
fn session_args(asn: u32, peer: &str, source: &str) -> Vec<String> {
    let mut args = bgp::session_args(asn, peer, ROUTER_ASN, source);
    args.extend(["--router-id".to_owned(), NODE_V4.to_owned()]);
    args
}

fn start_probe(lab: &BgpLab, args: &[String]) -> BgpProbe {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    BgpProbe::start(&lab.node, &args)
}

/// Waits until FRR's `family` RIB holds exactly `prefixes` and `ready`
/// accepts it; returns it.
fn wait_rib(
    frr: &mut Frr,
    family: &str,
    prefixes: &[&str],
    ready: impl Fn(&serde_json::Map<String, Value>) -> bool,
) -> serde_json::Map<String, Value> {
    let mut last = serde_json::Map::new();
    let rib = wait_until(WAIT, || {
        last = frr.rib(family);
        let exact = last.len() == prefixes.len() && prefixes.iter().all(|p| last.contains_key(*p));
        (exact && ready(&last)).then(|| last.clone())
    });
    rib.unwrap_or_else(|| {
        panic!(
            "FRR's {family} RIB is not {prefixes:?} (or not ready): {last:?}\nFRR log:\n{}",
            frr.log()
        )
    })
}

/// Whether any path of the route is marked stale.
fn stale(paths: &Value) -> bool {
    paths
        .as_array()
        .is_some_and(|p| p.iter().any(|path| path["stale"] == true))
}

/// The single path of `prefix` in FRR's detailed view.
fn only_path(frr: &mut Frr, prefix: &str) -> Value {
    let route = frr.route(prefix);
    let paths = route["paths"].as_array().cloned().unwrap_or_default();
    assert_eq!(paths.len(), 1, "{prefix}: {route}");
    paths[0].clone()
}

/// SIGTERM: the probe sends Cease/Administrative Shutdown and exits 0;
/// FRR drops the session and every route.
fn stop_and_check_withdrawn(probe: &mut BgpProbe, frr: &mut Frr, neighbor: &str) {
    stop_with_cease(probe);
    let gone = wait_until(WAIT, || {
        let empty = frr.rib("ipv4").is_empty() && frr.rib("ipv6").is_empty();
        (empty && frr.state(neighbor).as_deref() != Some("Established")).then_some(())
    });
    assert!(
        gone.is_some(),
        "routes or session still in FRR: {:?} {:?} {:?}",
        frr.state(neighbor),
        frr.rib("ipv4"),
        frr.rib("ipv6")
    );
    let reset = frr.neighbor(neighbor);
    assert_eq!(
        reset["lastNotificationReason"], "Cease/Administrative Shutdown",
        "{reset}"
    );
    assert_eq!(
        reset["lastShutdownDescription"], "ferrolb-speaker bgp-probe stopping",
        "{reset}"
    );
}

#[test]
fn frr_ebgp_over_ipv4_with_4_octet_asns_and_attributes() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut frr = Frr::start(
        &lab.router,
        &FrrConfig::new(
            ROUTER_ASN,
            ROUTER_V4,
            vec![FrrNeighbor::new(NODE_V4, NODE_ASN)],
        ),
    );
    let mut args = session_args(NODE_ASN, ROUTER_V4, NODE_V4);
    args.extend(
        [
            "--hold-time",
            "9",
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
        ]
        .map(str::to_owned),
    );
    let mut probe = start_probe(&lab, &args);
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    assert_eq!(up["peer_router_id"], ROUTER_V4, "{up}");
    assert_eq!(up["hold_time"], 9, "{up}");
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    assert_eq!(
        up["capabilities"]["families"],
        json!(["ipv4-unicast", "ipv6-unicast"]),
        "{up}"
    );
    assert_eq!(up["internal"], false, "{up}");

    // FRR may reset a session that came up before its address families
    // were configured ("No AFI/SAFI activated for peer"); both sides then
    // connect again: wait (bounded) for FRR's view, not one read.
    let neighbor = wait_until(WAIT, || {
        let n = frr.neighbor(NODE_V4);
        (n["bgpState"] == "Established").then_some(n)
    })
    .unwrap_or_else(|| {
        let n = frr.neighbor(NODE_V4);
        panic!("FRR's session with {} is not Established: {n}", NODE_V4)
    });
    assert_eq!(neighbor["remoteAs"], NODE_ASN, "{neighbor}");
    assert_eq!(neighbor["localAs"], ROUTER_ASN, "{neighbor}");
    assert_eq!(neighbor["remoteRouterId"], NODE_V4, "{neighbor}");
    assert_eq!(neighbor["bgpTimerHoldTimeMsecs"], 9000, "{neighbor}");
    assert_eq!(
        neighbor["neighborCapabilities"]["4byteAs"], "advertisedAndReceived",
        "{neighbor}"
    );

    let v4 = wait_rib(&mut frr, "ipv4", &["198.51.100.77/32"], |_| true);
    let v6 = wait_rib(&mut frr, "ipv6", &["2001:db8::77/128"], |_| true);
    assert!(!stale(&v4["198.51.100.77/32"]) && !stale(&v6["2001:db8::77/128"]));
    for (prefix, next_hop) in [("198.51.100.77/32", NODE_V4), ("2001:db8::77/128", NODE_V6)] {
        let path = only_path(&mut frr, prefix);
        assert_eq!(path["valid"], true, "{prefix}: {path}");
        assert_eq!(path["peer"]["type"], "external", "{prefix}: {path}");
        assert_eq!(
            path["community"]["list"],
            json!(["65000:7", "65000:8"]),
            "{prefix}: {path}"
        );
        assert_eq!(
            path["largeCommunity"]["list"],
            json!(["4200000002:1:2"]),
            "{prefix}: {path}"
        );
        assert_eq!(path["metric"], 50, "{prefix}: {path}");
        assert_eq!(path["origin"], "IGP", "{prefix}: {path}");
        assert_eq!(
            path["aspath"]["segments"],
            json!([{ "type": "as-sequence", "list": [NODE_ASN] }]),
            "{prefix}: {path}"
        );
        assert_eq!(
            path.get("locPrf"),
            None,
            "no LOCAL_PREF over eBGP: {prefix}: {path}"
        );
        assert_eq!(path["nexthops"][0]["ip"], next_hop, "{prefix}: {path}");
        assert_eq!(path["nexthops"][0]["accessible"], true, "{prefix}: {path}");
    }

    stop_and_check_withdrawn(&mut probe, &mut frr, NODE_V4);
}

#[test]
fn frr_ebgp_over_ipv6_transport_with_bfd_configured() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut neighbor = FrrNeighbor::new(NODE_V6, NODE_ASN);
    neighbor.bfd = Some(BfdTimers {
        receive_ms: 200,
        transmit_ms: 250,
        detect_multiplier: 5,
    });
    let mut frr = Frr::start(
        &lab.router,
        &FrrConfig::new(ROUTER_ASN, ROUTER_V4, vec![neighbor]),
    );
    let mut args = session_args(NODE_ASN, ROUTER_V6, NODE_V6);
    args.extend(
        [
            "--prefix",
            "2001:db8::78/128",
            "--prefix",
            "198.51.100.78/32",
            "--next-hop",
            NODE_V4,
            "--large-community",
            "4200000002:3:4",
        ]
        .map(str::to_owned),
    );
    let mut probe = start_probe(&lab, &args);
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    let connected = probe.expect("connected", WAIT, |_| true);
    assert!(
        connected["remote"]
            .as_str()
            .unwrap_or("")
            .contains(ROUTER_V6),
        "{connected}"
    );
    // FRR may reset a session that came up before its address families
    // were configured ("No AFI/SAFI activated for peer"); both sides then
    // connect again: wait (bounded) for FRR's view, not one read.
    let neighbor = wait_until(WAIT, || {
        let n = frr.neighbor(NODE_V6);
        (n["bgpState"] == "Established").then_some(n)
    })
    .unwrap_or_else(|| {
        let n = frr.neighbor(NODE_V6);
        panic!("FRR's session with {} is not Established: {n}", NODE_V6)
    });
    assert_eq!(neighbor["remoteAs"], NODE_ASN, "{neighbor}");

    wait_rib(&mut frr, "ipv6", &["2001:db8::78/128"], |_| true);
    wait_rib(&mut frr, "ipv4", &["198.51.100.78/32"], |_| true);
    for (prefix, next_hop) in [("2001:db8::78/128", NODE_V6), ("198.51.100.78/32", NODE_V4)] {
        let path = only_path(&mut frr, prefix);
        assert_eq!(path["nexthops"][0]["ip"], next_hop, "{prefix}: {path}");
        assert_eq!(path["nexthops"][0]["accessible"], true, "{prefix}: {path}");
        assert_eq!(
            path["largeCommunity"]["list"],
            json!(["4200000002:3:4"]),
            "{prefix}: {path}"
        );
        assert_eq!(path.get("community"), None, "{prefix}: {path}");
        assert_eq!(path.get("metric"), None, "no MED sent: {prefix}: {path}");
    }

    // The harness's BFD configuration reached bfdd (the probe itself does
    // not run BFD, so the session's state is not checked).
    let peers = frr.bfd_peers();
    let bfd = peers
        .iter()
        .find(|p| p["peer"] == NODE_V6)
        .unwrap_or_else(|| panic!("no BFD peer {NODE_V6}: {peers:?}"));
    assert_eq!(bfd["receive-interval"], 200, "{bfd}");
    assert_eq!(bfd["transmit-interval"], 250, "{bfd}");
    assert_eq!(bfd["detect-multiplier"], 5, "{bfd}");

    stop_and_check_withdrawn(&mut probe, &mut frr, NODE_V6);
}

#[test]
fn frr_ibgp_carries_local_preference_and_med() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut frr = Frr::start(
        &lab.router,
        &FrrConfig::new(
            ROUTER_ASN,
            ROUTER_V4,
            vec![FrrNeighbor::new(NODE_V4, ROUTER_ASN)],
        ),
    );
    let mut args = session_args(ROUTER_ASN, ROUTER_V4, NODE_V4);
    args.extend(
        [
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
            "--large-community",
            "4200000001:5:6",
        ]
        .map(str::to_owned),
    );
    let mut probe = start_probe(&lab, &args);
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["internal"], true, "{up}");
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    wait_rib(&mut frr, "ipv4", &["198.51.100.79/32"], |_| true);
    wait_rib(&mut frr, "ipv6", &["2001:db8::79/128"], |_| true);
    for (prefix, next_hop) in [("198.51.100.79/32", NODE_V4), ("2001:db8::79/128", NODE_V6)] {
        let path = only_path(&mut frr, prefix);
        assert_eq!(path["peer"]["type"], "internal", "{prefix}: {path}");
        assert_eq!(path["locPrf"], 250, "{prefix}: {path}");
        assert_eq!(path["metric"], 7, "{prefix}: {path}");
        assert_eq!(
            path["community"]["list"],
            json!(["noExport"]),
            "{prefix}: {path}"
        );
        assert_eq!(
            path["largeCommunity"]["list"],
            json!(["4200000001:5:6"]),
            "{prefix}: {path}"
        );
        assert_eq!(
            path["aspath"]["length"], 0,
            "iBGP AS_PATH must be empty: {path}"
        );
        assert_eq!(path["nexthops"][0]["ip"], next_hop, "{prefix}: {path}");
    }
    stop_and_check_withdrawn(&mut probe, &mut frr, NODE_V4);
}

#[test]
fn frr_tcp_md5_wrong_password_never_establishes_and_right_one_does() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut neighbor = FrrNeighbor::new(NODE_V4, NODE_ASN);
    neighbor.password = Some("ferrolb-md5-right".to_owned());
    let mut frr = Frr::start(
        &lab.router,
        &FrrConfig::new(ROUTER_ASN, ROUTER_V4, vec![neighbor]),
    );
    let secrets = tempfile::tempdir().expect("temp dir");
    let wrong = secrets.path().join("wrong");
    let right = secrets.path().join("right");
    std::fs::write(&wrong, "ferrolb-md5-wrong\n").expect("password file");
    std::fs::write(&right, "ferrolb-md5-right\n").expect("password file");
    let mut base = session_args(NODE_ASN, ROUTER_V4, NODE_V4);
    base.extend(["--prefix", "198.51.100.83/32", "--password-file"].map(str::to_owned));

    // Wrong password: for a bounded window, neither side gets anywhere.
    let mut args = base.clone();
    args.push(wrong.to_str().expect("utf-8").to_owned());
    let mut probe = start_probe(&lab, &args);
    probe.expect("state", WAIT, |l| l["to"] == "connect");
    let states = sample_for(Duration::from_secs(6), || {
        frr.state(NODE_V4).unwrap_or_default()
    });
    assert!(
        !states
            .iter()
            .any(|s| s == "Established" || s == "OpenConfirm"),
        "FRR got a session with a wrong password: {states:?}"
    );
    assert!(
        !probe.saw("established"),
        "probe established with a wrong password:\n{}",
        probe.transcript()
    );
    assert!(frr.rib("ipv4").is_empty(), "{:?}", frr.rib("ipv4"));
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    assert!(!probe.saw("established"));

    // The right password against the same FRR establishes.
    let mut args = base;
    args.push(right.to_str().expect("utf-8").to_owned());
    let mut probe = start_probe(&lab, &args);
    probe.expect("established", WAIT, |_| true);
    wait_rib(&mut frr, "ipv4", &["198.51.100.83/32"], |_| true);
    let summary = frr.json("show bgp summary json");
    let peer = &summary["ipv4Unicast"]["peers"][NODE_V4];
    assert_eq!(peer["state"], "Established", "{summary}");
    assert_eq!(peer["connectionsEstablished"], 1, "{summary}");
    stop_and_check_withdrawn(&mut probe, &mut frr, NODE_V4);
}

#[test]
fn frr_graceful_restart_keeps_routes_stale_until_the_probe_is_back() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    let lab = BgpLab::new();
    let mut neighbor = FrrNeighbor::new(NODE_V4, NODE_ASN);
    neighbor.graceful_restart = true;
    let mut cfg = FrrConfig::new(ROUTER_ASN, ROUTER_V4, vec![neighbor]);
    cfg.restart_time = Some(30);
    // Longer than every wait below: stale routes can only go because of
    // our End-of-RIB, not FRR's timer.
    cfg.stalepath_time = Some(120);
    let mut frr = Frr::start(&lab.router, &cfg);
    let mut base = session_args(NODE_ASN, ROUTER_V4, NODE_V4);
    base.extend(["--graceful-restart", "--next-hop", NODE_V6].map(str::to_owned));
    let prefix_args = |prefixes: &[&str]| {
        let mut args = base.clone();
        for p in prefixes {
            args.extend(["--prefix".to_owned(), (*p).to_owned()]);
        }
        args
    };

    let mut first = start_probe(
        &lab,
        &prefix_args(&["198.51.100.80/32", "198.51.100.81/32", "2001:db8::80/128"]),
    );
    let up = first.expect("established", WAIT, |_| true);
    let gr = &up["capabilities"]["graceful_restart"];
    assert_eq!(gr["restart_time"], 30, "FRR's restart time: {up}");
    let neighbor = frr.neighbor(NODE_V4);
    assert_eq!(
        neighbor["neighborCapabilities"]["gracefulRestart"], "advertisedAndReceived",
        "{neighbor}"
    );
    assert_eq!(
        neighbor["neighborCapabilities"]["gracefulRestartRemoteTimerMsecs"], 120_000,
        "the probe's restart time: {neighbor}"
    );
    // FRR saw our F bit: it will keep our routes across a restart until
    // our End-of-RIB.
    for family in ["ipv4Unicast", "ipv6Unicast"] {
        assert_eq!(
            neighbor["gracefulRestartInfo"][family]["fBit"], true,
            "{family}: {neighbor}"
        );
    }
    let not_stale = |rib: &serde_json::Map<String, Value>| rib.values().all(|p| !stale(p));
    wait_rib(
        &mut frr,
        "ipv4",
        &["198.51.100.80/32", "198.51.100.81/32"],
        not_stale,
    );
    wait_rib(&mut frr, "ipv6", &["2001:db8::80/128"], not_stale);

    // SIGKILL: no NOTIFICATION, no withdrawal; FRR keeps the routes, stale.
    drop(first);
    let all_stale = |rib: &serde_json::Map<String, Value>| rib.values().all(stale);
    let down = wait_until(WAIT, || {
        (frr.state(NODE_V4).as_deref() != Some("Established")).then_some(())
    });
    assert!(down.is_some(), "FRR still Established after SIGKILL");
    wait_rib(
        &mut frr,
        "ipv4",
        &["198.51.100.80/32", "198.51.100.81/32"],
        all_stale,
    );
    wait_rib(&mut frr, "ipv6", &["2001:db8::80/128"], all_stale);

    // Back without .81. We advertise the forwarding state as preserved,
    // so FRR keeps the stale routes across the reconnection (RFC 4724
    // §4.2) and removes the ones we no longer announce only on our
    // End-of-RIB (its stale-path timer is 120 s, longer than WAIT).
    let mut second = start_probe(
        &lab,
        &prefix_args(&["198.51.100.80/32", "2001:db8::80/128"]),
    );
    second.expect("established", WAIT, |_| true);
    wait_rib(&mut frr, "ipv4", &["198.51.100.80/32"], not_stale);
    wait_rib(&mut frr, "ipv6", &["2001:db8::80/128"], not_stale);
    let eor = wait_until(WAIT, || {
        let info = frr.neighbor(NODE_V4)["gracefulRestartInfo"].clone();
        let received = |family: &str| info[family]["endOfRibStatus"]["endOfRibRecv"] == true;
        (received("ipv4Unicast") && received("ipv6Unicast")).then_some(info)
    });
    assert!(
        eor.is_some(),
        "FRR did not record our End-of-RIB: {}",
        frr.neighbor(NODE_V4)
    );
    let gone = wait_until(WAIT, || {
        let rib = frr.rib("ipv4");
        (!rib.contains_key("198.51.100.81/32")).then_some(())
    });
    assert!(
        gone.is_some(),
        "198.51.100.81/32 still in FRR after our End-of-RIB: {:?}",
        frr.rib("ipv4")
    );
    let summary = frr.json("show bgp summary json");
    assert_eq!(
        summary["ipv4Unicast"]["peers"][NODE_V4]["pfxRcd"], 1,
        "{summary}"
    );
    stop_and_check_withdrawn(&mut second, &mut frr, NODE_V4);
}
