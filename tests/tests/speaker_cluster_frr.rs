//! End-to-end scenarios of the speaker in cluster mode against FRR 8.4
//! (zebra, bgpd, bfdd) as the router: the lab of
//! [`ferrolb_e2e::cluster_lab`] (a real Kubernetes v1.20 API server in a
//! lab namespace, the controller and three speakers watching it under
//! deploy/'s RBAC, no kubelet), FRR in AS 64513 with the three nodes as
//! eBGP neighbours (AS 64512) with BFD (100 ms × 3), each speaker peering
//! with it through one BGPPeer whose `bfdProfile` has the same timers and
//! whose hold time is 9 s.
//!
//! ```text
//!   [router] 198.51.100.1  FRR AS 64513, neighbours .11 .12 .13 with BFD
//!   [client] 198.51.100.2
//!   [api]    198.51.100.3  etcd, kube-apiserver, kube-controller-manager, ferrolb-controller
//!   [node1..3] 198.51.100.11-13  ferrolb-speaker --kubeconfig K --node nodeN
//!   layer-2 pool 198.51.100.100-119; BGP pool 203.0.113.0/28 (a standard
//!   community and a large one through a Community alias)
//! ```
//!
//! One control plane for the whole file: the scenarios run one after the
//! other in one test, the link cut last (it takes a node away):
//!
//! 1. BGP: a Cluster Service's route from all three nodes (ECMP in bgpd
//!    and zebra) with the advertisement's communities and large
//!    communities; a Local Service's route only from its endpoint's node;
//!    BFD up on every session (FRR's peers and the BGPPeer's status);
//!    deleting a Service withdraws it from every node.
//! 2. Layer 2, `externalTrafficPolicy: Local`: the v1beta1 EndpointSlice's
//!    ready endpoint moves from node1 to node3 (`kubectl replace`): the
//!    ServiceL2Status, the client's neighbour entry, a TCP connection and
//!    the Events follow; the Local BGP Service's endpoint moves too, and
//!    its route with it.
//! 3. A host that answers for an owned IP (the client's gratuitous ARP,
//!    Habets' `arping -U -S`) is reported as an `IPConflict` Warning Event
//!    on the Service naming the client's MAC.
//! 4. node3's link is cut: BFD takes its path of the Cluster Service out
//!    of FRR well before the 9 s hold time (the wait is bounded at 3 s;
//!    the time is printed).
//!
//! Needs root, `ip`, `ping`, `sysctl`, `etcd`, `curl`, `arping` and the
//! Debian package `frr`; the API server binaries are built once by
//! tests/apiserver/build-binaries.sh (tests/run-all.sh does it). Without
//! them the test prints `SKIPPED: …`, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test speaker_cluster_frr -- --test-threads 1 --nocapture`.

use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{sample_for, wait_until};
use ferrolb_e2e::cluster_lab::{self, Cluster, SETTLE, endpoint_slice_v1beta1, mac_of};
use ferrolb_e2e::lab_routes::{hops_of, time_until, wait_bfd_peer_up, wait_hops, wait_zebra_hops};
use ferrolb_e2e::routers::{BfdTimers, Frr};
use ferrolb_e2e::speaker_lab::{
    CLIENT_MAC, NODES, Router, frr_config, gratuitous_arp, greeting, wait_moved,
};
use serde_json::json;

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
/// The BGPPeer's hold time, seconds: well above BFD's detection time, so
/// that a withdrawal within [`WITHDRAWAL_BOUND`] is BFD's doing.
const HOLD_TIME: u64 = 9;
/// Bound of the wait for the withdrawal after the link cut (the hold time
/// of the standalone link-cut tests; a third of this one's).
const WITHDRAWAL_BOUND: Duration = Duration::from_secs(3);

/// Pools, advertisements (a Community alias for the large community), the
/// BGPPeer (with `bfdProfile: fast`, whose BFDProfile the test adds), the
/// membership Secret and the Services: `web` and `local-l2` (Local) on
/// layer 2; `cluster`, `local-bgp` (Local) and `doomed` over BGP.
const OBJECTS: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.100-198.51.100.119]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.0/28], autoAssign: false}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: ferrolb-system}
spec:
  communities:
  - {name: site-large, value: "large:64512:1:2"}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
  communities: ["64512:100", site-large]
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1, holdTime: 9s, bfdProfile: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "cluster-frr-e2e-key-0123456789"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: local-l2, namespace: default}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: cluster
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: local-bgp
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: doomed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

/// The EndpointSlices of the two Local Services (v1beta1, one ready
/// endpoint each, on the named nodes).
fn slices(local_l2_node: &str, local_bgp_node: &str) -> String {
    [
        endpoint_slice_v1beta1(
            "default",
            "local-l2",
            "local-l2-1",
            "10.1.0.1",
            local_l2_node,
        ),
        endpoint_slice_v1beta1(
            "default",
            "local-bgp",
            "local-bgp-1",
            "10.1.0.2",
            local_bgp_node,
        ),
    ]
    .join("---\n")
}

#[test]
fn cluster_mode_frr_bfd_local_moves_conflicts_and_link_cut() {
    let tools: Vec<(&str, &str)> = Frr::TOOLS
        .iter()
        .chain(&[("arping", "arping")])
        .copied()
        .collect();
    let Some(net) = cluster_lab::network(&tools) else {
        return;
    };
    // The BGPPeer's BFDProfile `fast`, with FRR's timers.
    let profile = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast, namespace: ferrolb-system}}\n\
         spec: {{receiveInterval: {BFD_INTERVAL_MS}, transmitInterval: {BFD_INTERVAL_MS}, detectMultiplier: {BFD_MULTIPLIER}}}\n"
    );
    let objects = format!("{OBJECTS}---\n{profile}---\n{}", slices("node1", "node2"));
    let started = Instant::now();
    let mut lab = Cluster::start(&net, &objects, Router::Frr(frr_config(Some(BFD_TIMERS))));
    println!("lab up after {} ms", started.elapsed().as_millis());

    bgp_from_every_node_local_from_its_node_and_deleted(&mut lab);
    layer2_local_owner_follows_the_moving_endpoint(&mut lab);
    conflicting_answerer_is_an_ipconflict_event(&lab);
    link_cut_withdrawn_by_bfd(&mut lab);
    println!("all scenarios after {} ms", started.elapsed().as_millis());
}

/// Scenario 1: ECMP with communities, the Local Service from its
/// endpoint's node, BFD up, and a deleted Service withdrawn everywhere.
fn bgp_from_every_node_local_from_its_node_and_deleted(lab: &mut Cluster) {
    let all = ["node1", "node2", "node3"];
    let cluster = format!("{}/32", lab.single_v4("cluster"));
    wait_hops(lab, &cluster, &all);
    let paths = lab.router().frr_paths(&cluster);
    assert_eq!(paths.len(), 3, "{paths:?}");
    for path in &paths {
        assert_eq!(path["valid"], true, "{path}");
        assert_eq!(path["peer"]["type"], "external", "{path}");
        assert_eq!(path["community"]["list"], json!(["64512:100"]), "{path}");
        // Through the Community alias `site-large`.
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
    }
    // ECMP: one multipath set in bgpd, three next hops in zebra's route.
    let multipath = paths.iter().filter(|p| p["multipath"] == true).count();
    assert_eq!(multipath, 3, "not one multipath set: {paths:?}");
    let zebra_hops = wait_zebra_hops(lab, &cluster, &all);

    // The Local Service: only from node2, its endpoint's node, and it
    // stays so.
    let local = format!("{}/32", lab.single_v4("local-bgp"));
    wait_hops(lab, &local, &["node2"]);
    let samples = sample_for(Duration::from_secs(1), || lab.next_hops(&local));
    assert!(
        samples.iter().all(|h| *h == hops_of(&["node2"])),
        "{local}: {samples:?}"
    );

    // BFD with the profile's timers on every session: at FRR, and in the
    // BGPPeer's status each speaker writes.
    for node in NODES {
        wait_bfd_peer_up(lab, node.v4, BFD_TIMERS);
    }
    let mut sessions = Vec::new();
    let bfd_up = wait_until(SETTLE, || {
        sessions = lab.peer_sessions("router");
        (sessions.len() == 3
            && sessions
                .iter()
                .all(|s| s["state"] == "Established" && s["bfdState"] == "Up"))
        .then_some(())
    });
    assert!(
        bfd_up.is_some(),
        "BGPPeer router's sessions: {sessions:?}\n{}",
        lab.logs()
    );

    // Deleting a Service withdraws its route from every node.
    let doomed = format!("{}/32", lab.single_v4("doomed"));
    wait_hops(lab, &doomed, &all);
    lab.cp()
        .ok(&["-n", "default", "delete", "service", "doomed"]);
    let deleted_at = Instant::now();
    let gone = time_until(deleted_at, SETTLE, || {
        lab.router().frr_paths(&doomed).is_empty()
    });
    assert!(
        gone.is_some(),
        "{doomed} still in FRR after its Service was deleted: {:?}\n{}",
        lab.router().frr_paths(&doomed),
        lab.logs()
    );
    // The others stay.
    assert_eq!(lab.next_hops(&cluster), hops_of(&all));
    println!(
        "FRR: {cluster} from 3 nodes (multipath, zebra next hops {zebra_hops:?}) with 64512:100 \
         and large 64512:1:2; {local} only from node2; BFD up on 3 sessions; {doomed} withdrawn \
         by every node {} ms after its Service was deleted",
        gone.unwrap_or_default().as_millis()
    );
}

/// Scenario 2: the Local layer-2 Service's owner follows its endpoint
/// from node1 to node3 (and the Local BGP Service's route from node2 to
/// node3).
fn layer2_local_owner_follows_the_moving_endpoint(lab: &mut Cluster) {
    let ip = lab.single_v4("local-l2");
    let local_bgp = format!("{}/32", lab.single_v4("local-bgp"));
    let owner = lab.settled_owner("local-l2", &ip);
    assert_eq!(owner, Some("node1"), "{ip}\n{}", lab.logs());
    let client = lab.client();
    assert_eq!(greeting(client, &ip).as_deref(), Ok("node1"));

    // Both endpoints move to node3.
    lab.cp()
        .ok_with_input(&["replace", "-f", "-"], &slices("node3", "node3"));
    let moved_at = Instant::now();
    let (mut status_moved, mut route_moved) = (None, None);
    let done = time_until(moved_at, SETTLE, || {
        if status_moved.is_none() && lab.l2_status_nodes("local-l2") == ["node3"] {
            status_moved = Some(moved_at.elapsed());
        }
        if route_moved.is_none() && lab.next_hops(&local_bgp) == hops_of(&["node3"]) {
            route_moved = Some(moved_at.elapsed());
        }
        status_moved.is_some() && route_moved.is_some()
    });
    assert!(
        done.is_some(),
        "after the move to node3: ServiceL2Status of local-l2 names {:?}, {local_bgp} from {:?}\n{}",
        lab.l2_status_nodes("local-l2"),
        lab.next_hops(&local_bgp),
        lab.logs()
    );
    let (neighbour_took, macs) = wait_moved(client, std::slice::from_ref(&ip), mac_of("node1"))
        .unwrap_or_else(|| {
            panic!(
                "the client's entry for {ip} still names node1:\n{}",
                lab.logs()
            )
        });
    assert_eq!(macs, [mac_of("node3")]);
    assert_eq!(greeting(client, &ip).as_deref(), Ok("node3"));
    let withdrawn = lab.wait_event(
        "default",
        "local-l2",
        "Withdrawn",
        "node1 no longer announces it on layer 2",
    );
    let announcing = lab.wait_event("default", "local-l2", "Announcing", "announcing from node3");
    assert!(
        withdrawn.is_some() && announcing.is_some(),
        "local-l2's Events: Withdrawn {withdrawn:?}, Announcing {announcing:?}\n{}",
        lab.logs()
    );
    let ms = |t: Option<Duration>| t.unwrap_or_default().as_millis();
    println!(
        "EndpointSlices replaced (node1 -> node3): local-l2's ServiceL2Status names node3 after {} ms, \
         the client's neighbour entry for {ip} had node3's MAC {} ms after that; {local_bgp} from \
         node3 only after {} ms; Events: {:?} / {:?}",
        ms(status_moved),
        neighbour_took.as_millis(),
        ms(route_moved),
        withdrawn.as_ref().map(|e| e["message"].clone()),
        announcing.as_ref().map(|e| e["message"].clone()),
    );
}

/// Scenario 3: the client claims the layer-2 owner's IP with gratuitous
/// ARP; the owner records an `IPConflict` Warning Event on the Service
/// naming the client's MAC.
fn conflicting_answerer_is_an_ipconflict_event(lab: &Cluster) {
    let ip = lab.single_v4("web");
    let owner = lab
        .settled_owner("web", &ip)
        .unwrap_or_else(|| panic!("no single owner answering for {ip}:\n{}", lab.logs()));
    // Gratuitous ARP requests from the client's MAC claiming the Service IP.
    let arping = gratuitous_arp(lab.client(), &ip);
    let event = lab
        .wait_event("default", "web", "IPConflict", CLIENT_MAC)
        .unwrap_or_else(|| {
            panic!(
                "no IPConflict Event on web naming {CLIENT_MAC}: {:?}\narping: {arping}\n{}",
                lab.events("default", "web", "IPConflict"),
                lab.logs()
            )
        });
    assert_eq!(event["type"], "Warning", "{event}");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("claims {ip} on {owner}'s eth0")),
        "{message}"
    );
    println!("IPConflict on web (owner {owner}): {message}");
}

/// Scenario 4: node3's link is cut; FRR withdraws its path of the Cluster
/// Service on BFD's detection, well before the 9 s hold time.
fn link_cut_withdrawn_by_bfd(lab: &mut Cluster) {
    let cluster = format!("{}/32", lab.single_v4("cluster"));
    wait_hops(lab, &cluster, &["node1", "node2", "node3"]);
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    assert_eq!(
        neighbor["bgpTimerHoldTimeMsecs"],
        HOLD_TIME * 1000,
        "{neighbor}"
    );
    let rest = hops_of(&["node1", "node2"]);
    lab.net().net.cut_link("node3");
    let cut_at = Instant::now();
    let took = time_until(cut_at, WITHDRAWAL_BOUND, || lab.next_hops(&cluster) == rest)
        .unwrap_or_else(|| {
            panic!(
                "node3's path of {cluster} still in FRR {WITHDRAWAL_BOUND:?} after its link was cut \
                 (hold time {HOLD_TIME} s, BFD {BFD_INTERVAL_MS} ms x {BFD_MULTIPLIER}): {:?}\n\
                 BFD peer: {}\n{}",
                lab.next_hops(&cluster),
                lab.frr().bfd_peer(NODES[2].v4),
                lab.logs()
            )
        });
    let peer = lab.frr().bfd_peer(NODES[2].v4);
    let neighbor = lab.frr().neighbor(NODES[2].v4);
    assert_eq!(peer["status"], "down", "{peer}");
    println!(
        "node3's link cut -> its path of {cluster} withdrawn by FRR after {} ms (hold time \
         {HOLD_TIME} s; FRR's BFD peer {}, diagnostic {}; bgpd: state {}, last reset {})",
        took.as_millis(),
        peer["status"],
        peer["diagnostic"],
        neighbor["bgpState"],
        neighbor["lastResetDueTo"]
    );
}
