//! BGP unnumbered against FRR 8.4: a node and a router joined by one veth
//! link that has only IPv6 link-local addresses. The node's speaker runs
//! in standalone mode with a `BGPPeer` naming `interface: eth0` (no
//! `peerAddress`); FRR has `neighbor eth0 interface remote-as 64512`.
//!
//! The speaker learns FRR's link-local address from FRR's Router
//! Advertisements and sends its own (lifetime 0), from which FRR's zebra
//! learns ours; the session comes up over the link-local addresses, and
//! an IPv4 and an IPv6 Service IP arrive at FRR with the node's link-local
//! next hop (IPv4 through the extended next hop of RFC 8950), and FRR
//! installs the IPv4 route in its kernel via that IPv6 next hop. The
//! speaker's status shows the session Established.
//!
//! Documentation addresses only (the Service IPs 203.0.113.10 and
//! 2001:db8:5::10, the router IDs in 198.51.100.0/24), inside the test's
//! own namespaces, deleted on drop. Needs root, `ip` and the Debian
//! package `frr`: without them the test prints `SKIPPED: …`, unless `CI`
//! is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_unnumbered -- --nocapture`.

use std::time::Duration;

use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::netns::Netns;
use ferrolb_e2e::routers::{Frr, FrrConfig};
use ferrolb_e2e::speaker_lab::{Speaker, speaker_status};

/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(40);

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.0/24, "2001:db8:5::/112"]}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: uplink, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, interface: eth0}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed], communities: ["64512:7"]}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status:
  addresses: [{type: InternalIP, address: 198.51.100.11}]
"#;

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 203.0.113.10}, {ip: "2001:db8:5::10"}]}}
"#;

/// The link-local address of `dev` in `ns`, once it is usable.
fn link_local(ns: &Netns, dev: &str) -> String {
    let found = wait_until(Duration::from_secs(10), || {
        let text = ns.ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "link"]);
        if text.contains("tentative") {
            return None;
        }
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_owned)
    });
    found.unwrap_or_else(|| panic!("no link-local address on {dev} in {}", ns.name()))
}

#[test]
fn unnumbered_session_with_frr_carries_ipv4_and_ipv6_over_link_local() {
    let mut tools = vec![("ip", "iproute2")];
    tools.extend_from_slice(Frr::TOOLS);
    if !ferrolb_e2e::require(&tools) {
        return;
    }
    let prefix = format!("flb-unn{}", std::process::id());
    let router = Netns::create(&format!("{prefix}-r"));
    let node = Netns::create(&format!("{prefix}-n"));
    // One link, eth0 on both sides, created inside the namespaces.
    router.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        node.name(),
    ]);
    for ns in [&router, &node] {
        ns.sysctl("net.ipv6.conf.eth0.accept_dad", "0");
        ns.ip(&["link", "set", "eth0", "up"]);
    }
    let router_ll = link_local(&router, "eth0");
    let node_ll = link_local(&node, "eth0");

    // FRR with an interface neighbour: zebra sends Router Advertisements on
    // eth0 and learns the node's link-local address from the node's.
    let mut frr = {
        let f = Frr::start(&router, &FrrConfig::new(64513, "198.51.100.1", Vec::new()));
        f.configure(&[
            "router bgp 64513",
            "no bgp ebgp-requires-policy",
            "neighbor eth0 interface remote-as 64512",
            "address-family ipv4 unicast",
            "neighbor eth0 activate",
            "exit-address-family",
            "address-family ipv6 unicast",
            "neighbor eth0 activate",
            "exit-address-family",
        ]);
        f
    };

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), CONFIG).expect("config");
    std::fs::create_dir_all(dir.path().join("status")).expect("status dir");
    std::fs::write(dir.path().join("status/services.yaml"), SERVICES).expect("services");
    let speaker = Speaker::start(&node, dir.path(), "node1");
    let logs = |frr: &Frr<'_>| {
        format!(
            "--- speaker ---\n{}\n--- FRR ---\n{}",
            speaker.log(),
            frr.log()
        )
    };

    let up = wait_until(WAIT, || {
        let n = frr.json("show bgp neighbors eth0 json");
        (n["eth0"]["bgpState"] == "Established").then_some(n)
    });
    let n = up.unwrap_or_else(|| panic!("no session over eth0:\n{}", logs(&frr)));
    println!(
        "FRR's neighbour eth0: {} (hostname {}), extended next hop {}",
        n["eth0"]["bgpState"],
        n["eth0"]["hostname"],
        n["eth0"]["neighborCapabilities"]["extendedNexthop"]
    );

    for prefix in ["203.0.113.10/32", "2001:db8:5::10/128"] {
        let route = wait_until(WAIT, || {
            let r = frr.route(prefix);
            (!r.is_null()).then_some(r)
        });
        let route = route.unwrap_or_else(|| panic!("{prefix} never arrived:\n{}", logs(&frr)));
        let path = &route["paths"][0];
        let hops: Vec<String> = path["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["ip"].as_str().map(str::to_owned))
            .collect();
        println!(
            "{prefix}: next hops {hops:?}, communities {}",
            path["community"]["string"]
        );
        assert!(
            hops.contains(&node_ll),
            "{prefix}: next hops {hops:?} lack the node's link-local {node_ll}:\n{route:#}"
        );
        assert_eq!(path["community"]["string"], "64512:7", "{route:#}");
    }

    // FRR's kernel forwards to the Service IP through the node's
    // link-local address (an IPv4 route with an IPv6 next hop).
    let installed = wait_until(WAIT, || {
        let text = router.ip(&["route", "show", "203.0.113.10"]);
        (text.contains("inet6") && text.contains("eth0")).then_some(text)
    });
    let installed = installed.unwrap_or_else(|| panic!("FRR installed no route:\n{}", logs(&frr)));
    println!("router's kernel: {}", installed.trim());
    assert!(installed.contains(&node_ll), "{installed}");

    // The speaker reports the session.
    let status = wait_until(WAIT, || {
        let s = std::fs::read_to_string(dir.path().join("status/speaker-node1.yaml")).ok()?;
        (s.contains("state: Established")).then_some(s)
    });
    assert!(
        status.is_some(),
        "status never showed the session:\n{}",
        logs(&frr)
    );
    let summary = speaker_status(dir.path(), "node1");
    let announced = summary["announced"].as_array().cloned().unwrap_or_default();
    println!("speaker status, announced: {announced:?}");
    assert_eq!(announced.len(), 2, "{summary:#}");
    println!("router link-local {router_ll}, node link-local {node_ll}");
}
