//! BGP interoperability with ExaBGP: `ferrolb-speaker bgp-probe` in a
//! "node" namespace peers with ExaBGP in a "router" namespace over a veth
//! pair, and what ExaBGP parsed (the JSON its API process receives) is
//! checked: sessions over IPv4 and IPv6 transport with 4-octet ASNs,
//! iBGP, route attributes, End-of-RIB, withdrawal and our Cease.
//!
//! Documentation addresses only (198.51.100.0/24, 2001:db8::/32); nothing
//! is touched outside the namespaces the tests make. Needs root, `ip` and
//! ExaBGP from `tests/setup/install-exabgp.sh` (or `FERROLB_EXABGP`):
//! without them each test prints `SKIPPED: …`, unless `CI` is set, where
//! it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_exabgp -- --nocapture`.

use std::time::Duration;

use ferrolb_e2e::bgp::{BgpLab, BgpProbe, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, wait_until};
use ferrolb_e2e::routers::{
    ExaBgp, ExaBgpConfig, ExaBgpNeighbor, ExaBgpRib, require_exabgp, stop_with_cease,
};
use serde_json::{Value, json};

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);

fn start_exabgp(lab: &BgpLab, local: &str, peer: &str, peer_as: u32) -> ExaBgp {
    ExaBgp::start(
        &lab.router,
        &ExaBgpConfig {
            router_id: ROUTER_V4.to_owned(),
            local_as: ROUTER_ASN,
            listen: local.to_owned(),
            neighbors: vec![ExaBgpNeighbor {
                address: peer.to_owned(),
                local_address: local.to_owned(),
                peer_as,
                hold_time: 9,
            }],
        },
    )
}

fn start_probe(lab: &BgpLab, asn: u32, peer: &str, source: &str, extra: &[&str]) -> BgpProbe {
    let extra = [&["--router-id", NODE_V4], extra].concat();
    BgpProbe::start_session(&lab.node, asn, peer, ROUTER_ASN, source, &extra)
}

/// Waits until ExaBGP's session with `peer` is up, holds exactly
/// `prefixes` and has both End-of-RIBs.
fn wait_rib(exabgp: &mut ExaBgp, peer: &str, prefixes: &[&str]) -> ExaBgpRib {
    let mut last = ExaBgpRib::default();
    let rib = wait_until(WAIT, || {
        last = exabgp.rib(peer);
        let exact = last.routes.len() == prefixes.len()
            && prefixes.iter().all(|p| last.routes.contains_key(*p));
        let eor = ["ipv4 unicast", "ipv6 unicast"]
            .iter()
            .all(|f| last.end_of_rib.iter().any(|e| e == f));
        (last.state.as_deref() == Some("up") && exact && eor).then(|| last.clone())
    });
    rib.unwrap_or_else(|| {
        panic!(
            "ExaBGP's view of {peer} is not up with {prefixes:?} and both End-of-RIBs: \
             {last:#?}\nExaBGP log:\n{}",
            exabgp.log()
        )
    })
}

/// The prefixes of every withdrawal ExaBGP received from `peer`.
fn withdrawn(exabgp: &mut ExaBgp, peer: &str) -> Vec<String> {
    let mut prefixes = Vec::new();
    for m in exabgp.messages() {
        if m["type"] != "update" || m["neighbor"]["address"]["peer"] != peer {
            continue;
        }
        let withdraw = &m["neighbor"]["message"]["update"]["withdraw"];
        for nlris in withdraw.as_object().into_iter().flat_map(|f| f.values()) {
            for nlri in nlris.as_array().into_iter().flatten() {
                if let Some(p) = nlri["nlri"].as_str() {
                    prefixes.push(p.to_owned());
                }
            }
        }
    }
    prefixes.sort();
    prefixes
}

/// SIGTERM: the probe withdraws every prefix (ExaBGP sees the UPDATEs),
/// sends Cease/Administrative Shutdown (ExaBGP reports it as the reason
/// the session went down) and exits 0.
fn stop_and_check_withdrawn(
    probe: &mut BgpProbe,
    exabgp: &mut ExaBgp,
    peer: &str,
    prefixes: &[&str],
) {
    stop_with_cease(probe);
    let mut want: Vec<String> = prefixes.iter().map(|p| (*p).to_owned()).collect();
    want.sort();
    let seen = wait_until(WAIT, || (withdrawn(exabgp, peer) == want).then_some(()));
    assert!(
        seen.is_some(),
        "ExaBGP saw withdrawals of {:?}, not {want:?}\nExaBGP log:\n{}",
        withdrawn(exabgp, peer),
        exabgp.log()
    );
    // The first state change after the session was last up.
    let down = wait_until(WAIT, || {
        let states: Vec<Value> = exabgp
            .messages()
            .into_iter()
            .filter(|m| m["type"] == "state" && m["neighbor"]["address"]["peer"] == peer)
            .collect();
        let last_up = states
            .iter()
            .rposition(|m| m["neighbor"]["state"] == "up")?;
        states
            .get(last_up + 1)
            .filter(|m| m["neighbor"]["state"] == "down")
            .cloned()
    })
    .unwrap_or_else(|| panic!("ExaBGP never saw the session go down:\n{}", exabgp.log()));
    let reason = down["neighbor"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("notification received (6,2)"),
        "ExaBGP's reason: {down}"
    );
}

#[test]
fn exabgp_ebgp_over_ipv4_with_attributes() {
    if !require_exabgp() {
        return;
    }
    let lab = BgpLab::new();
    let mut exabgp = start_exabgp(&lab, ROUTER_V4, NODE_V4, NODE_ASN);
    let prefixes = ["198.51.100.77/32", "2001:db8::77/128"];
    let mut probe = start_probe(
        &lab,
        NODE_ASN,
        ROUTER_V4,
        NODE_V4,
        &[
            "--prefix",
            prefixes[0],
            "--prefix",
            prefixes[1],
            "--next-hop",
            NODE_V6,
            "--community",
            "65000:7",
            "--community",
            "no-export",
            "--large-community",
            "4200000002:1:2",
            "--large-community",
            "4200000002:9:10",
            "--med",
            "50",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    assert_eq!(up["hold_time"], 9, "ExaBGP's hold time: {up}");
    assert_eq!(up["capabilities"]["four_octet_as"], true, "{up}");
    assert_eq!(up["internal"], false, "{up}");

    let rib = wait_rib(&mut exabgp, NODE_V4, &prefixes);
    for (prefix, family, next_hop) in [
        (prefixes[0], "ipv4 unicast", NODE_V4),
        (prefixes[1], "ipv6 unicast", NODE_V6),
    ] {
        let route = &rib.routes[prefix];
        let attrs = &route["attribute"];
        assert_eq!(route["family"], family, "{prefix}: {route}");
        assert_eq!(route["next_hop"], next_hop, "{prefix}: {route}");
        assert_eq!(attrs["origin"], "igp", "{prefix}: {route}");
        assert_eq!(attrs["med"], 50, "{prefix}: {route}");
        assert_eq!(
            attrs["community"],
            json!([[65000, 7], [65535, 65281]]),
            "{prefix}: {route}"
        );
        assert_eq!(
            attrs["large-community"],
            json!([[NODE_ASN, 1, 2], [NODE_ASN, 9, 10]]),
            "{prefix}: {route}"
        );
        assert_eq!(
            attrs["as-path"],
            json!({ "0": { "element": "as-sequence", "value": [NODE_ASN] } }),
            "{prefix}: {route}"
        );
        assert_eq!(
            attrs.get("local-preference"),
            None,
            "no LOCAL_PREF over eBGP: {route}"
        );
    }
    stop_and_check_withdrawn(&mut probe, &mut exabgp, NODE_V4, &prefixes);
}

#[test]
fn exabgp_ebgp_over_ipv6_transport() {
    if !require_exabgp() {
        return;
    }
    let lab = BgpLab::new();
    let mut exabgp = start_exabgp(&lab, ROUTER_V6, NODE_V6, NODE_ASN);
    let prefixes = ["2001:db8::78/128", "198.51.100.78/32"];
    let mut probe = start_probe(
        &lab,
        NODE_ASN,
        ROUTER_V6,
        NODE_V6,
        &[
            "--prefix",
            prefixes[0],
            "--prefix",
            prefixes[1],
            "--next-hop",
            NODE_V4,
            "--large-community",
            "4200000002:3:4",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    let rib = wait_rib(&mut exabgp, NODE_V6, &prefixes);
    for (prefix, next_hop) in [(prefixes[0], NODE_V6), (prefixes[1], NODE_V4)] {
        let route = &rib.routes[prefix];
        assert_eq!(route["next_hop"], next_hop, "{prefix}: {route}");
        assert_eq!(
            route["attribute"]["large-community"],
            json!([[NODE_ASN, 3, 4]]),
            "{prefix}: {route}"
        );
        assert_eq!(route["attribute"].get("community"), None, "{route}");
        assert_eq!(route["attribute"].get("med"), None, "{route}");
    }
    stop_and_check_withdrawn(&mut probe, &mut exabgp, NODE_V6, &prefixes);
}

#[test]
fn exabgp_ibgp_carries_local_preference() {
    if !require_exabgp() {
        return;
    }
    let lab = BgpLab::new();
    let mut exabgp = start_exabgp(&lab, ROUTER_V4, NODE_V4, ROUTER_ASN);
    let prefixes = ["198.51.100.79/32", "2001:db8::79/128"];
    let mut probe = start_probe(
        &lab,
        ROUTER_ASN,
        ROUTER_V4,
        NODE_V4,
        &[
            "--prefix",
            prefixes[0],
            "--prefix",
            prefixes[1],
            "--next-hop",
            NODE_V6,
            "--local-pref",
            "250",
        ],
    );
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["internal"], true, "{up}");
    let rib = wait_rib(&mut exabgp, NODE_V4, &prefixes);
    for prefix in prefixes {
        let attrs: &Value = &rib.routes[prefix]["attribute"];
        assert_eq!(attrs["local-preference"], 250, "{prefix}: {attrs}");
        let path = &attrs["as-path"];
        let empty = path.as_object().is_none_or(|segments| {
            segments
                .values()
                .all(|s| s["value"].as_array().is_none_or(Vec::is_empty))
        });
        assert!(empty, "iBGP AS_PATH must be empty: {prefix}: {attrs}");
    }
    stop_and_check_withdrawn(&mut probe, &mut exabgp, NODE_V4, &prefixes);
}
