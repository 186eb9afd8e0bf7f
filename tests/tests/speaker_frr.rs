//! End-to-end tests of the speaker daemon in standalone mode against FRR
//! 8.4 (zebra, bgpd, bfdd) as the router: the lab of
//! [`ferrolb_e2e::speaker_lab`] (three node namespaces, a client and the
//! router on one bridge), FRR in AS 64513 with the three nodes' IPv4
//! addresses as eBGP neighbours (AS 64512), each speaker peering with it
//! through one BGPPeer.
//!
//! ```text
//!   [router] 198.51.100.1   FRR AS 64513, neighbours .11 .12 .13 (BFD in one test)
//!   [client] 198.51.100.2
//!   [node1..3] 198.51.100.11-13  speakers, AS 64512
//!   layer-2 pool 198.51.100.100-119; BGP pools 203.0.113.0/28 (communities,
//!   localPref) and 203.0.113.16/28 (aggregationLength 30)
//! ```
//!
//! What FRR sees is read with `vtysh … json`: a Cluster Service's route
//! from every node (ECMP) with the advertisement's communities, an
//! aggregated /30, no LOCAL_PREF over eBGP; an `externalTrafficPolicy:
//! Local` Service announced only from the node of its endpoint, following
//! the EndpointSlice when it moves (and the layer-2 owner of a Local
//! layer-2 Service with it); a node whose link is cut withdrawn within the
//! 3 s hold time, and sooner with BFD (both times printed). Without a
//! router, a gratuitous ARP from the client for an owned IP shows up as a
//! conflict in the owner's status and log. A drained node hands over
//! before it lets go, and a rolling restart of every speaker (SIGTERM,
//! drain, start again, one node at a time) fails no TCP connect of a
//! client looping on a layer-2 IP and on a BGP IP routed through FRR.
//!
//! Needs root, `ip`, `ping`, `sysctl` and the Debian package `frr` (and
//! `arping` for the conflict test): without them each test prints
//! `SKIPPED: …`, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test speaker_frr -- --test-threads 1 --nocapture`.

use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{sample_for, wait_until};
use ferrolb_e2e::connect_loop::{ConnectLoop, while_connecting};
use ferrolb_e2e::lab_routes::{hops_of, time_until, wait_bfd_peer_up, wait_hops, wait_zebra_hops};
use ferrolb_e2e::routers::{BfdTimers, Frr};
use ferrolb_e2e::speaker_lab::{
    self, CLIENT_MAC, NODES, Network, Router, SETTLE, SpeakerLab, assigned, frr_config,
    gratuitous_arp, greeting, ping, settled_owner, wait_moved,
};
use serde_json::{Value, json};

/// Bound of the wait for a withdrawal after a link cut.
const WITHDRAWAL_BOUND: Duration = Duration::from_secs(15);
/// The BGPPeer's hold time in the link-cut tests, seconds.
const SHORT_HOLD: u64 = 3;
/// What FRR's polling may add to the hold time before the test fails.
const POLL_MARGIN: Duration = Duration::from_millis(1500);
/// BFD interval (both sides, both directions), milliseconds.
const BFD_INTERVAL_MS: u32 = 100;
/// BFD detection multiplier.
const BFD_MULTIPLIER: u8 = 3;
/// FRR's BFD timers and the BFDProfile's, from the two above.
const BFD_TIMERS: BfdTimers = BfdTimers {
    receive_ms: BFD_INTERVAL_MS,
    transmit_ms: BFD_INTERVAL_MS,
    detect_multiplier: BFD_MULTIPLIER,
};

/// Pools, advertisements and the membership Secret every test uses; the
/// BGPPeer comes from [`config`].
const BASE_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.100-198.51.100.119]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: aggregated, namespace: ferrolb-system}
spec:
  addresses: [203.0.113.16/28]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
  communities: ["64512:100", "large:64512:1:2"]
  localPref: 200
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: aggregated, namespace: ferrolb-system}
spec:
  ipAddressPools: [aggregated]
  aggregationLength: 30
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "e2e-test-key-0123456789abcdef"}
"#;

/// [`BASE_CONFIG`] with the BGPPeer to FRR (hold time `hold`), and with
/// BFDProfile `fast` (100 ms / 100 ms / ×3) as its `bfdProfile` when `bfd`.
fn config(hold: &str, bfd: bool) -> String {
    let mut text = BASE_CONFIG.to_owned();
    text += &format!(
        "---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: router, namespace: ferrolb-system}}\n\
         spec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: 198.51.100.1\n  holdTime: {hold}\n"
    );
    if bfd {
        text += &format!(
            "  bfdProfile: fast\n---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\n\
             metadata: {{name: fast, namespace: ferrolb-system}}\n\
             spec: {{receiveInterval: {BFD_INTERVAL_MS}, transmitInterval: {BFD_INTERVAL_MS}, detectMultiplier: {BFD_MULTIPLIER}}}\n"
        );
    }
    text
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: cluster
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: aggregated
  namespace: default
  annotations: {ferrolb.io/address-pool: aggregated}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: local-bgp
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: local-l2, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
"#;

/// The EndpointSlices of the two Local Services, each with one ready
/// endpoint on the named node.
fn endpoint_slices(local_bgp_node: &str, local_l2_node: &str) -> String {
    [
        ("local-bgp", local_bgp_node, "198.51.100.51"),
        ("local-l2", local_l2_node, "198.51.100.52"),
    ]
    .iter()
    .map(|(service, node, address)| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: {service}-abcde\n  namespace: default\n  labels: {{kubernetes.io/service-name: {service}}}\n\
             addressType: IPv4\n\
             endpoints:\n- addresses: [\"{address}\"]\n  nodeName: {node}\n  conditions: {{ready: true}}\n\
             ports: [{{port: 8080, protocol: TCP}}]\n"
        )
    })
    .collect::<Vec<_>>()
    .join("---\n")
}

/// Starts the lab with FRR (BFD on its neighbours with the tests' timers
/// when `bfd`), [`config`]`(hold, bfd)`, [`SERVICES`] and the
/// EndpointSlices (local-bgp on node2, local-l2 on node1).
fn frr_lab<'n>(net: &'n Network, hold: &str, bfd: bool) -> SpeakerLab<'n> {
    let timers = bfd.then_some(BFD_TIMERS);
    let config = config(hold, bfd);
    let slices = endpoint_slices("node2", "node1");
    SpeakerLab::start(
        net,
        &[
            ("config.yaml", &config),
            ("services.yaml", SERVICES),
            ("endpointslices.yaml", &slices),
        ],
        Router::Frr(frr_config(timers)),
    )
}

/// The single IPv4 address of Service `name`.
fn single_v4(lab: &SpeakerLab, name: &str) -> String {
    let ips = assigned(lab.dir(), name);
    assert_eq!(ips.len(), 1, "{name}: {ips:?}");
    ips[0].clone()
}

/// A Cluster Service's route arrives from all three nodes: three
/// valid paths in FRR, multipath, and three next hops in zebra's route;
/// each with the advertisement's standard and large community and no
/// LOCAL_PREF (the advertisement's `localPref` is for iBGP only; this
/// session is eBGP). A Service of the `aggregationLength: 30` pool
/// arrives as its /30, never as a /32; layer-2 Services are not in BGP.
#[test]
fn frr_cluster_service_from_every_node_with_communities_and_aggregation() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, "9s", false);
    let cluster = format!("{}/32", single_v4(&lab, "cluster"));
    let aggregated_ip = single_v4(&lab, "aggregated");
    assert_eq!(aggregated_ip, "203.0.113.16");
    let aggregated = "203.0.113.16/30";
    let all = ["node1", "node2", "node3"];
    wait_hops(&mut lab, &cluster, &all);
    wait_hops(&mut lab, aggregated, &all);

    let paths = lab.frr_paths(&cluster);
    assert_eq!(paths.len(), 3, "{paths:?}");
    for path in &paths {
        assert_eq!(path["valid"], true, "{path}");
        assert_eq!(path["peer"]["type"], "external", "{path}");
        assert_eq!(path["community"]["list"], json!(["64512:100"]), "{path}");
        assert_eq!(
            path["largeCommunity"]["list"],
            json!(["64512:1:2"]),
            "{path}"
        );
        assert_eq!(
            path["aspath"]["segments"],
            json!([{ "type": "as-sequence", "list": [64512] }]),
            "{path}"
        );
        assert_eq!(path.get("locPrf"), None, "localPref sent over eBGP: {path}");
        assert_eq!(path["nexthops"][0]["accessible"], true, "{path}");
    }
    // ECMP: bgpd puts the three paths in one multipath set and zebra
    // installs the route with three next hops.
    let multipath = paths.iter().filter(|p| p["multipath"] == true).count();
    assert_eq!(multipath, 3, "not one multipath set: {paths:?}");
    let zebra_hops = wait_zebra_hops(&mut lab, &cluster, &all);

    // The aggregated Service: the /30, from every node, without the first
    // advertisement's communities; no /32 of it.
    for path in lab.frr_paths(aggregated) {
        assert_eq!(path["valid"], true, "{path}");
        assert_eq!(path.get("community"), None, "{path}");
        assert_eq!(path.get("largeCommunity"), None, "{path}");
    }
    assert!(
        lab.frr_paths(&format!("{aggregated_ip}/32")).is_empty(),
        "{aggregated_ip}/32 announced besides its /30"
    );

    // Exactly these routes (the Local Service from its endpoint's node);
    // the layer-2 Services' IPs are not in BGP.
    let local = format!("{}/32", single_v4(&lab, "local-bgp"));
    wait_hops(&mut lab, &local, &["node2"]);
    let mut prefixes: Vec<String> = lab.frr().rib("ipv4").keys().cloned().collect();
    prefixes.sort();
    let mut want = vec![cluster.clone(), aggregated.to_owned(), local];
    want.sort();
    assert_eq!(prefixes, want);
    assert!(lab.frr().rib("ipv6").is_empty());
    println!(
        "FRR: {cluster} from {} nodes (multipath), {aggregated} from every node, zebra next hops {zebra_hops:?}",
        paths.len()
    );
}

/// `externalTrafficPolicy: Local`: the BGP Service's route comes only
/// from the node of its ready endpoint (node2), and the layer-2 Service is
/// owned by its endpoint's node (node1). Rewriting both EndpointSlices to
/// node3 withdraws node2's path and brings node3's, and moves the layer-2
/// owner (status files, the client's neighbour entry and a TCP
/// connection) to node3.
#[test]
fn frr_local_service_follows_its_endpoint() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, "9s", false);
    let cluster = format!("{}/32", single_v4(&lab, "cluster"));
    let local_ip = single_v4(&lab, "local-bgp");
    let local = format!("{local_ip}/32");
    let l2_ip = single_v4(&lab, "local-l2");
    // Every session is up and has sent its routes: the Cluster Service
    // comes from all three.
    wait_hops(&mut lab, &cluster, &["node1", "node2", "node3"]);
    wait_hops(&mut lab, &local, &["node2"]);
    let samples = sample_for(Duration::from_secs(2), || lab.next_hops(&local));
    assert!(
        samples.iter().all(|h| *h == hops_of(&["node2"])),
        "{local}: {samples:?}"
    );
    let status = lab.status("node1");
    let reasons = status["notAnnounced"].to_string();
    assert!(
        reasons.contains("externalTrafficPolicy is Local and node node1 has no ready endpoint"),
        "node1's reasons: {status}"
    );

    let owner = wait_until(SETTLE, || {
        let o = lab.l2_owners(&l2_ip);
        (o.len() == 1).then(|| o[0])
    });
    assert_eq!(owner, Some("node1"), "{l2_ip}\n{}", lab.logs());
    let client = &net.client.ns;
    assert!(
        wait_until(SETTLE, || ping(client, &l2_ip).then_some(())).is_some(),
        "ping {l2_ip}:\n{}",
        lab.logs()
    );
    assert_eq!(greeting(client, &l2_ip).as_deref(), Ok("node1"));

    // Both endpoints move to node3: node2's path goes, node3's comes, the
    // layer-2 owner becomes node3 (each time from the rewrite).
    lab.write("endpointslices.yaml", &endpoint_slices("node3", "node3"));
    let moved_at = Instant::now();
    let (node2, node3) = (NODES[1].v4.to_owned(), NODES[2].v4.to_owned());
    let (mut withdrawn, mut announced, mut l2_moved) = (None, None, None);
    let done = time_until(moved_at, SETTLE, || {
        let hops = lab.next_hops(&local);
        let at = Some(moved_at.elapsed());
        if withdrawn.is_none() && !hops.contains(&node2) {
            withdrawn = at;
        }
        if announced.is_none() && hops.contains(&node3) {
            announced = at;
        }
        if l2_moved.is_none() && lab.l2_owners(&l2_ip) == ["node3"] {
            l2_moved = at;
        }
        hops == [node3.clone()] && lab.l2_owners(&l2_ip) == ["node3"]
    });
    assert!(
        done.is_some(),
        "after the move to node3: {local} from {:?}, {l2_ip} owned by {:?}\n{}",
        lab.next_hops(&local),
        lab.l2_owners(&l2_ip),
        lab.logs()
    );
    let (_, macs) = wait_moved(client, std::slice::from_ref(&l2_ip), lab.mac_of("node1"))
        .unwrap_or_else(|| {
            panic!(
                "the client's entry for {l2_ip} still names node1:\n{}",
                lab.logs()
            )
        });
    assert_eq!(macs, [lab.mac_of("node3")]);
    assert_eq!(greeting(client, &l2_ip).as_deref(), Ok("node3"));
    // The Cluster Service did not move.
    assert_eq!(
        lab.next_hops(&cluster),
        hops_of(&["node1", "node2", "node3"])
    );
    let ms = |t: Option<Duration>| t.unwrap_or_default().as_millis();
    println!(
        "EndpointSlices rewritten to node3: node2's path of {local} withdrawn by FRR after {} ms, \
         node3's there after {} ms; {l2_ip}'s layer-2 owner node3 (status files) after {} ms",
        ms(withdrawn),
        ms(announced),
        ms(l2_moved)
    );
}

/// Cuts node3's link once every node's path of the Cluster Service is in
/// FRR, and returns how long FRR took to withdraw node3's path (the
/// others stay). Prints the time and FRR's reason.
fn link_cut_withdrawal(lab: &mut SpeakerLab, label: &str) -> Duration {
    let cluster = format!("{}/32", single_v4(lab, "cluster"));
    wait_hops(lab, &cluster, &["node1", "node2", "node3"]);
    let rest = hops_of(&["node1", "node2"]);
    lab.net().cut_link("node3");
    let cut_at = Instant::now();
    let took = time_until(cut_at, WITHDRAWAL_BOUND, || lab.next_hops(&cluster) == rest)
        .unwrap_or_else(|| {
            panic!(
                "{label}: node3's path of {cluster} still in FRR {WITHDRAWAL_BOUND:?} after its link was cut: {:?}\n{}",
                lab.next_hops(&cluster),
                lab.logs()
            )
        });
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    println!(
        "{label}: node3's link cut -> its path of {cluster} withdrawn by FRR after {} ms \
         (FRR: state {}, last reset {}, last notification {})",
        took.as_millis(),
        neighbor["bgpState"],
        neighbor["lastResetDueTo"],
        neighbor["lastNotificationReason"]
    );
    took
}

/// Without BFD: a node whose link is cut stops sending keepalives and
/// FRR withdraws its path when the 3 s hold time (the BGPPeer's
/// `holdTime: 3s`, which FRR accepts) expires.
#[test]
fn frr_link_cut_withdrawn_within_hold_time() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, &format!("{SHORT_HOLD}s"), false);
    let cluster = format!("{}/32", single_v4(&lab, "cluster"));
    wait_hops(&mut lab, &cluster, &["node1", "node2", "node3"]);
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    assert_eq!(
        neighbor["bgpTimerHoldTimeMsecs"],
        SHORT_HOLD * 1000,
        "{neighbor}"
    );
    let took = link_cut_withdrawal(&mut lab, "hold time 3 s, no BFD");
    assert!(
        took <= Duration::from_secs(SHORT_HOLD) + POLL_MARGIN,
        "withdrawn after {took:?}, later than the {SHORT_HOLD} s hold time"
    );
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    assert_eq!(
        neighbor["lastNotificationReason"], "Hold Timer Expired",
        "{neighbor}"
    );
}

/// With a BFDProfile (100 ms / 100 ms / ×3) on the BGPPeer and BFD on
/// FRR's neighbours: BFD is up between every node and FRR, and a cut link
/// is withdrawn on BFD's detection rather than the hold time (measured
/// and printed; only bounded by the withdrawal wait).
#[test]
fn frr_link_cut_withdrawn_sooner_with_bfd() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, &format!("{SHORT_HOLD}s"), true);
    let cluster = format!("{}/32", single_v4(&lab, "cluster"));
    wait_hops(&mut lab, &cluster, &["node1", "node2", "node3"]);
    for node in NODES {
        wait_bfd_peer_up(&mut lab, node.v4, BFD_TIMERS);
        let bgp_bfd = lab.frr().neighbor(node.v4)["peerBfdInfo"].clone();
        assert_eq!(bgp_bfd["status"], "Up", "{}: {bgp_bfd}", node.name);
    }
    let took = link_cut_withdrawal(&mut lab, "hold time 3 s, BFD 100 ms x 3");
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    let peer = lab.frr().bfd_peer(NODES[2].v4);
    assert_eq!(peer["status"], "down", "{peer}");
    println!(
        "BFD: withdrawn after {} ms (FRR's BFD peer: {}, diagnostic {}; bgpd: last reset {})",
        took.as_millis(),
        peer["status"],
        peer["diagnostic"],
        neighbor["lastResetDueTo"]
    );
}

/// A conflict: the client sends gratuitous ARP for a layer-2 Service
/// IP owned by a node. The owner's status (`SpeakerStatus.conflicts`)
/// names the client's MAC and its log says another host claims the IP;
/// no other node reports anything.
#[test]
fn layer2_conflict_names_the_claimants_mac() {
    let Some(net) = speaker_lab::network(&[("arping", "arping")]) else {
        return;
    };
    let config = BASE_CONFIG;
    let services = SERVICES
        .split("---")
        .find(|d| d.contains("name: web,"))
        .expect("web");
    let mut lab = SpeakerLab::start(
        &net,
        &[("config.yaml", config), ("services.yaml", services)],
        Router::None,
    );
    let ip = single_v4(&lab, "web");
    // The owner the speakers agree on (status and the client's neighbour
    // entry), not a first one about to hand the IP over.
    let owner = settled_owner(&lab, &ip)
        .unwrap_or_else(|| panic!("no single owner answering for {ip}:\n{}", lab.logs()));
    let client = &net.client.ns;

    // Gratuitous ARP requests from the client's MAC claiming the Service IP.
    let arping = gratuitous_arp(client, &ip);

    let mut conflicts = Value::Null;
    let seen = wait_until(SETTLE, || {
        conflicts = lab.status(owner)["conflicts"].clone();
        conflicts
            .as_array()?
            .iter()
            .find(|c| {
                c["ip"] == ip.as_str()
                    && c["otherMAC"]
                        .as_str()
                        .is_some_and(|m| m.eq_ignore_ascii_case(CLIENT_MAC))
            })
            .cloned()
    });
    let conflict = seen.unwrap_or_else(|| {
        panic!(
            "{owner}'s status names no conflict for {ip} from {CLIENT_MAC}: {conflicts}\narping: {arping}\n{}",
            lab.logs()
        )
    });
    assert_eq!(conflict["interface"], "eth0", "{conflict}");
    let log = lab.speaker(owner).log();
    let line = log
        .lines()
        .find(|l| l.contains("another host") && l.contains(&ip))
        .unwrap_or_else(|| panic!("no \"another host\" line in {owner}'s log:\n{log}"));
    for node in NODES.iter().filter(|n| n.name != owner) {
        let others = lab.status(node.name)["conflicts"].clone();
        assert_eq!(others, json!([]), "{}: {others}", node.name);
    }
    println!("{owner} reports: {conflict}\nlog: {line}");
}

/// iBGP: with FRR in the nodes' own AS, the BGPAdvertisement's `localPref`
/// arrives as LOCAL_PREF on every node's path, with the communities, and
/// the AS path is empty.
#[test]
fn frr_ibgp_carries_the_advertisements_local_preference() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let config = BASE_CONFIG.to_owned()
        + "---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: router, namespace: ferrolb-system}\n\
           spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.51.100.1, holdTime: 9s}\n";
    let neighbors = NODES
        .iter()
        .map(|n| ferrolb_e2e::routers::FrrNeighbor::new(n.v4, speaker_lab::NODE_ASN))
        .collect();
    let frr = ferrolb_e2e::routers::FrrConfig::new(
        speaker_lab::NODE_ASN,
        speaker_lab::ROUTER_V4,
        neighbors,
    );
    let slices = endpoint_slices("node2", "node1");
    let mut lab = SpeakerLab::start(
        &net,
        &[
            ("config.yaml", &config),
            ("services.yaml", SERVICES),
            ("endpointslices.yaml", &slices),
        ],
        Router::Frr(frr),
    );
    let cluster = format!("{}/32", single_v4(&lab, "cluster"));
    wait_hops(&mut lab, &cluster, &["node1", "node2", "node3"]);
    let paths = lab.frr_paths(&cluster);
    assert_eq!(paths.len(), 3, "{paths:?}");
    for path in &paths {
        assert_eq!(path["peer"]["type"], "internal", "{path}");
        assert_eq!(path["locPrf"], 200, "localPref: {path}");
        assert_eq!(path["community"]["list"], json!(["64512:100"]), "{path}");
        assert_eq!(
            path["aspath"]["segments"],
            json!([]),
            "an iBGP path carries no AS: {path}"
        );
    }
    // The aggregated pool's advertisement sets no localPref: the iBGP
    // default (100) is sent.
    wait_hops(&mut lab, "203.0.113.16/30", &["node1", "node2", "node3"]);
    for path in lab.frr_paths("203.0.113.16/30") {
        assert_eq!(path["locPrf"], 100, "{path}");
    }
    println!("iBGP: {cluster} from 3 nodes with LOCAL_PREF 200, the aggregate with 100");
}

/// Draining a node with the label `ferrolb.io/drain=true`: the other nodes
/// take its layer-2 IP over while it still answers (its log says so; a
/// client connecting in a loop meanwhile sees no failure), and FRR gets its
/// BGP path with GRACEFUL_SHUTDOWN (65535:0, RFC 8326) at once and loses it
/// after the speaker's `--drain-wait` (5 s by default); the other nodes'
/// paths stay as they were. Removing the label brings the path back.
#[test]
fn a_drained_node_hands_over_before_it_lets_go() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, "90s", false);
    let web = single_v4(&lab, "web");
    let cluster = single_v4(&lab, "cluster");
    let prefix = format!("{cluster}/32");
    wait_hops(&mut lab, &prefix, &["node1", "node2", "node3"]);
    let owner = settled_owner(&lab, &web)
        .unwrap_or_else(|| panic!("no settled owner of {web}:\n{}", lab.logs()));
    let others: Vec<&str> = NODES
        .iter()
        .map(|n| n.name)
        .filter(|n| *n != owner)
        .collect();
    let owner_v4 = NODES.iter().find(|n| n.name == owner).expect("node").v4;

    let client = &net.client.ns;
    let drain_loop = ConnectLoop {
        pause: Duration::from_millis(20),
        bound: Duration::from_secs(60),
        neighbour: true,
    };
    let ((), [seen]) = while_connecting(client, [&web], drain_loop, |loop_start| {
        let drained = speaker_lab::nodes_yaml(&[]).replace(
            &format!("metadata: {{name: {owner}}}"),
            &format!("metadata: {{name: {owner}, labels: {{ferrolb.io/drain: \"true\"}}}}"),
        );
        // A second of connections before the drain, as a baseline.
        std::thread::sleep(Duration::from_secs(1));
        let labelled = Instant::now();
        println!(
            "labelled {owner} at {} ms of the client loop",
            loop_start.elapsed().as_millis()
        );
        lab.write("nodes.yaml", &drained);

        // The path from the drained node carries GRACEFUL_SHUTDOWN.
        let marked = wait_until(SETTLE, || {
            lab.frr_paths(&prefix)
                .into_iter()
                .find(|p| {
                    p["nexthops"][0]["ip"] == owner_v4
                        && p["community"]["string"]
                            .as_str()
                            .is_some_and(|c| c.contains("graceful-shutdown"))
                })
                .map(|_| labelled.elapsed())
        });
        let marked = marked
            .unwrap_or_else(|| panic!("no graceful-shutdown path from {owner}:\n{}", lab.logs()));
        // The layer-2 IP moved to another node.
        let moved = wait_until(SETTLE, || {
            let owners = lab.l2_owners(&web);
            (owners.len() == 1 && owners[0] != owner).then_some(labelled.elapsed())
        });
        let moved =
            moved.unwrap_or_else(|| panic!("{web} did not move off {owner}:\n{}", lab.logs()));
        // The drained node's path goes after the drain wait; the others stay.
        let withdrawn = wait_until(Duration::from_secs(15), || {
            (lab.next_hops(&prefix) == hops_of(&others)).then_some(labelled.elapsed())
        });
        let withdrawn =
            withdrawn.unwrap_or_else(|| panic!("{owner}'s path never went:\n{}", lab.logs()));
        println!(
            "drained {owner}: path marked graceful-shutdown after {} ms, {web} moved after {} ms, path withdrawn after {} ms",
            marked.as_millis(),
            moved.as_millis(),
            withdrawn.as_millis()
        );
        assert!(
            withdrawn >= Duration::from_secs(4),
            "withdrawn after {withdrawn:?}, before the 5 s drain wait"
        );
        std::thread::sleep(Duration::from_millis(500));
    });
    // Every connection attempt succeeds: the address never goes
    // unanswered. A connection open at the very moment the client's
    // neighbour entry moves to the new owner can still be reset (its next
    // segment reaches a node that has no such connection): that is layer 2's
    // limit without connection state shared between nodes, counted apart.
    println!(
        "client TCP connects to {web} during the drain: {} attempts, {} failed to connect, {} reset after connecting {:?}",
        seen.attempts,
        seen.failed.len(),
        seen.reset.len(),
        seen.reset
    );
    assert!(seen.attempts > 50, "{} attempts", seen.attempts);
    assert!(seen.failed.is_empty(), "{:?}\n{}", seen.failed, lab.logs());
    let log = lab.speaker(owner).log();
    assert!(
        log.contains(&format!("draining: still answering for {web}")),
        "{owner} did not keep answering for {web}:\n{log}"
    );

    // Undrained: the path is back, without the community.
    lab.write("nodes.yaml", &speaker_lab::nodes_yaml(&[]));
    wait_hops(&mut lab, &prefix, &["node1", "node2", "node3"]);
    let paths = lab.frr_paths(&prefix);
    assert!(
        paths.iter().all(|p| !p["community"]["string"]
            .as_str()
            .unwrap_or_default()
            .contains("graceful-shutdown")),
        "{paths:#?}"
    );
}

/// A rolling restart of every speaker, one node at a time as a DaemonSet
/// update does (SIGTERM: the speaker drains, stops; a new one starts;
/// the next node only once the IPs are announced by all again), while
/// the client loops on TCP connects to the layer-2 IP of `web` and to the
/// BGP IP of `cluster` (routed through FRR, which forwards over its ECMP
/// routes). No connection attempt may fail; the counts are printed.
#[test]
fn a_rolling_restart_loses_no_connection() {
    let Some(net) = speaker_lab::network(Frr::TOOLS) else {
        return;
    };
    let mut lab = frr_lab(&net, "90s", false);
    let web = single_v4(&lab, "web");
    let cluster = single_v4(&lab, "cluster");
    let prefix = format!("{cluster}/32");
    wait_hops(&mut lab, &prefix, &["node1", "node2", "node3"]);
    settled_owner(&lab, &web).unwrap_or_else(|| panic!("no owner of {web}:\n{}", lab.logs()));
    // The client reaches the BGP pool through FRR, and only through it.
    let client = &net.client.ns;
    let router = &net.router.ns;
    router.sysctl("net.ipv4.ip_forward", "1");
    router.sysctl("net.ipv4.conf.all.send_redirects", "0");
    router.sysctl("net.ipv4.conf.eth0.send_redirects", "0");
    client.sysctl("net.ipv4.conf.all.accept_redirects", "0");
    client.sysctl("net.ipv4.conf.eth0.accept_redirects", "0");
    client.ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        speaker_lab::ROUTER_V4,
    ]);
    let reached = wait_until(SETTLE, || greeting(client, &cluster).ok());
    assert!(
        reached.is_some(),
        "the client cannot reach {cluster} through FRR: {:?}\n{}",
        greeting(client, &cluster),
        lab.logs()
    );

    let restart_loop = ConnectLoop {
        pause: Duration::from_millis(10),
        bound: Duration::from_secs(240),
        neighbour: false,
    };
    let ((), [l2, bgp]) = while_connecting(client, [&web, &cluster], restart_loop, |_| {
        std::thread::sleep(Duration::from_secs(1));
        for node in NODES {
            let began = Instant::now();
            let status = lab.restart_speaker(node.name);
            let stopped = began.elapsed();
            assert!(status.success(), "{}: {status}\n{}", node.name, lab.logs());
            wait_hops(&mut lab, &prefix, &["node1", "node2", "node3"]);
            let owner = settled_owner(&lab, &web)
                .unwrap_or_else(|| panic!("no owner of {web}:\n{}", lab.logs()));
            println!(
                "restarted {}: stopped after {} ms (drain), all paths and one owner ({owner}) after {} ms",
                node.name,
                stopped.as_millis(),
                began.elapsed().as_millis()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    });
    for (what, ip, counts) in [("layer-2", &web, &l2), ("BGP", &cluster, &bgp)] {
        println!(
            "rolling restart, client TCP connects to the {what} IP {ip}: {} attempts, {} failed, {} reset after connecting {:?}",
            counts.attempts,
            counts.failed.len(),
            counts.reset.len(),
            counts.reset
        );
    }
    for (ip, counts) in [(&web, &l2), (&cluster, &bgp)] {
        assert!(counts.attempts > 100, "{ip}: {counts:?}");
        assert!(
            counts.failed.is_empty(),
            "{ip}: {:?}\n{}",
            counts.failed,
            lab.logs()
        );
    }
}
