//! End-to-end tests of the speaker daemon in standalone mode: the
//! controller (`ferrolb-controller --standalone DIR --once`) assigns IPs,
//! and `ferrolb-speaker --standalone DIR --node NAME` runs in each of three
//! node namespaces; a client and a GoBGP router share the LAN.
//!
//! ```text
//!   [router] eth0 198.51.100.1/24 2001:db8::1/64  gobgpd AS 64513
//!   [client] eth0 198.51.100.2/24 2001:db8::2/64
//!   [node1]  eth0 198.51.100.11   2001:db8::11     speaker, AS 64512
//!   [node2]  eth0 198.51.100.12   2001:db8::12     speaker
//!   [node3]  eth0 198.51.100.13   2001:db8::13     speaker
//!         \________ br0 in its own namespace ________/
//!   layer-2 pool 198.51.100.100-119, 2001:db8::100-119; BGP pool 203.0.113.0/28
//! ```
//!
//! Each node holds the Service IPs on `lo` (with arp_ignore/arp_announce
//! so its kernel never answers ARP for them) and a TCP listener that
//! greets with the node's name, so the client can tell who answered (the
//! lab: [`ferrolb_e2e::speaker_lab`]).
//! A partition of the LAN between nodes (nftables in one node's
//! namespace) shows two owners answering, one per side, until it heals;
//! the client counts the MACs that answer (raw ARP/NDP,
//! [`ferrolb_e2e::answerers`]) until one remains.
//!
//! Needs root, `ip`, `ping`, `gobgpd`/`gobgp` (and `nft` for the partition):
//! without them each test prints `SKIPPED: …` (fails when `CI` is set).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_arp::MacAddr;
use ferrolb_e2e::answerers::answering_macs;
use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::speaker_lab::{
    self, GOBGP_TOOLS, NODES, Network, Router, SETTLE, SpeakerLab, assigned, greeting, nodes_yaml,
    run_controller, settled_owner, wait_moved,
};

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.100-198.51.100.119, 2001:db8::100-2001:db8::119]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.51.100.1
  holdTime: 9s
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
  communities: ["64512:100", "large:64512:1:2"]
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "e2e-test-key-0123456789abcdef"}
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: routed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
"#;

/// The namespaces, when root and the tools (GoBGP's too) are there (else
/// `None`, after `SKIPPED: …`; a failure under `CI`).
fn network() -> Option<Network> {
    speaker_lab::network(GOBGP_TOOLS)
}

/// Writes the configuration, runs the controller, starts GoBGP and a
/// speaker per node.
fn lab(net: &Network) -> SpeakerLab<'_> {
    let lab = SpeakerLab::start(
        net,
        &[("config.yaml", CONFIG), ("services.yaml", SERVICES)],
        Router::GoBgp,
    );
    let web = assigned(lab.dir(), "web");
    let routed = assigned(lab.dir(), "routed");
    assert_eq!(web.len(), 2, "{web:?}");
    assert_eq!(routed.len(), 1, "{routed:?}");
    lab
}

/// Layer-2 failover with the membership: the owner's speaker is killed
/// (kill -9: no goodbye), then the next owner's link is cut; each time the
/// client's neighbour entries move to a live node without the client
/// asking, and a new TCP connection reaches it.
#[test]
fn layer2_failover_on_kill_and_link_cut() {
    let Some(net) = network() else { return };
    let mut lab = lab(&net);
    let web = assigned(lab.dir(), "web");
    // Both IPs of one Service may have different owners; follow the IPv4 one.
    let v4 = web
        .iter()
        .find(|ip| !ip.contains(':'))
        .expect("IPv4")
        .clone();
    let owner = settled_owner(&lab, &v4)
        .unwrap_or_else(|| panic!("no single owner answering for {v4}:\n{}", lab.logs()));
    let status = lab.status(owner);
    assert!(
        status["membership"]
            .as_str()
            .is_some_and(|m| m.contains("running on UDP 198.51.100.")),
        "membership not running:\n{status}"
    );
    let client = &net.client.ns;

    // kill -9 the owner's speaker.
    lab.speaker(owner).kill();
    let (took, macs) = wait_moved(client, std::slice::from_ref(&v4), lab.mac_of(owner))
        .unwrap_or_else(|| {
            panic!(
                "{v4} did not move after kill -9 of {owner}:\n{}",
                lab.logs()
            )
        });
    println!(
        "kill -9 of {owner}'s speaker: {v4} moved to {} after {took:?}",
        macs[0]
    );
    let second = lab.node_with_mac(&macs[0]).expect("a node's MAC");
    assert_ne!(second, owner);
    assert_eq!(greeting(client, &v4).as_deref(), Ok(second));

    // Cut the new owner's link.
    net.cut_link(second);
    let (took, macs) = wait_moved(client, std::slice::from_ref(&v4), lab.mac_of(second))
        .unwrap_or_else(|| {
            panic!(
                "{v4} did not move after cutting {second}'s link:\n{}",
                lab.logs()
            )
        });
    println!(
        "link cut on {second}: {v4} moved to {} after {took:?}",
        macs[0]
    );
    let third = lab.node_with_mac(&macs[0]).expect("a node's MAC");
    assert!(third != owner && third != second, "{third}");
    assert_eq!(greeting(client, &v4).as_deref(), Ok(third));
}

/// Layer 2: exactly one node answers each IP of the dual-stack Service;
/// the client reaches it by TCP; when the owner's Node goes NotReady
/// (membership is not running here, so readiness decides) another node
/// takes over and the client's neighbour entries move without asking.
#[test]
fn layer2_owner_answers_and_hands_over() {
    let Some(net) = network() else { return };
    let mut lab = lab(&net);
    let web = assigned(lab.dir(), "web");
    let client = &net.client.ns;
    for ip in &web {
        // Both IPs of one Service are elected independently; each gets one
        // owner, which the client reaches.
        let owner = settled_owner(&lab, ip)
            .unwrap_or_else(|| panic!("no single owner answering for {ip}:\n{}", lab.logs()));
        assert_eq!(greeting(client, ip).as_deref(), Ok(owner), "TCP to {ip}");
    }
    // The owner of the IPv4 address goes NotReady.
    let v4 = web
        .iter()
        .find(|ip| !ip.contains(':'))
        .expect("an IPv4")
        .clone();
    let first = lab.l2_owners(&v4)[0];
    lab.write("nodes.yaml", &nodes_yaml(&[first]));
    let moved = wait_until(SETTLE, || {
        let o = lab.l2_owners(&v4);
        (o.len() == 1 && o[0] != first).then(|| o[0])
    })
    .unwrap_or_else(|| panic!("{v4} did not move off {first}:\n{}", lab.logs()));
    let new_mac = lab.mac_of(moved);
    assert!(
        wait_until(SETTLE, || (client.neighbour(&v4, "eth0").as_deref()
            == Some(new_mac))
        .then_some(()))
        .is_some(),
        "the client's entry for {v4} did not move to {moved} ({new_mac}): {:?}\n{}",
        client.neighbour(&v4, "eth0"),
        lab.logs()
    );
    assert_eq!(greeting(client, &v4).as_deref(), Ok(moved));
    // A clean stop exits 0.
    for node in NODES {
        assert!(lab.speaker(node.name).terminate().success());
    }
}

/// BGP: the route of the BGP Service arrives at GoBGP from all three nodes
/// with the advertisement's communities; deleting the Service withdraws it
/// from every node; SIGTERM withdraws a node's routes.
#[test]
fn bgp_routes_from_every_node_and_withdrawals() {
    let Some(net) = network() else { return };
    let mut lab = lab(&net);
    let routed = assigned(lab.dir(), "routed");
    let prefix = format!("{}/32", routed[0]);
    let all: Vec<String> = {
        let mut v: Vec<String> = NODES.iter().map(|n| n.v4.to_string()).collect();
        v.sort();
        v
    };
    let hops = wait_until(SETTLE, || {
        let (hops, _) = lab.gobgp_paths(&prefix);
        (hops == all).then_some(hops)
    });
    assert!(
        hops.is_some(),
        "{prefix} not from all nodes: {:?}\n{}",
        lab.gobgp_paths(&prefix),
        lab.logs()
    );
    let (_, attrs) = lab.gobgp_paths(&prefix);
    let text = attrs.to_string();
    // COMMUNITIES (type 8): 64512:100 = 4227858532; LARGE_COMMUNITY (32).
    assert!(text.contains("4227858532"), "communities: {text}");
    assert!(
        text.contains(r#""ASN":64512,"LocalData1":1,"LocalData2":2"#),
        "large communities: {text}"
    );
    // The layer-2 Service is not announced over BGP.
    let rib = lab.gobgp().rib(&net.router.ns, "ipv4");
    assert_eq!(rib.len(), 1, "{rib:?}");

    // SIGTERM on node1: its path goes, the others stay.
    assert!(lab.speaker("node1").terminate().success(), "{}", lab.logs());
    let rest: Vec<String> = all[1..].to_vec();
    assert!(
        wait_until(SETTLE, || (lab.gobgp_paths(&prefix).0 == rest)
            .then_some(()))
        .is_some(),
        "after SIGTERM: {:?}",
        lab.gobgp_paths(&prefix)
    );

    // Deleting the Service withdraws it everywhere.
    lab.write("services.yaml", SERVICES.split("---").next().expect("web"));
    run_controller(lab.dir());
    assert!(
        wait_until(SETTLE, || lab
            .gobgp_paths(&prefix)
            .0
            .is_empty()
            .then_some(()))
        .is_some(),
        "not withdrawn: {:?}\n{}",
        lab.gobgp_paths(&prefix),
        lab.logs()
    );
}

/// How often the client asks who answers while a partition heals, and how
/// long it collects answers each time.
const ASK_WAIT: Duration = Duration::from_millis(60);
/// Consecutive single answers that count as settled.
const SETTLED_ASKS: usize = 5;

/// The MACs answering `ip` for the client, or a failure with the logs.
fn answerers(lab: &SpeakerLab<'_>, ip: &str) -> BTreeSet<MacAddr> {
    let addr: IpAddr = ip.parse().expect("ip");
    answering_macs(
        &lab.net().client.ns,
        &lab.net().client_asker(),
        addr,
        ASK_WAIT,
    )
    .unwrap_or_else(|e| panic!("asking who answers {ip}: {e}"))
}

/// One owner after a partition: the LAN is cut between the owner of the
/// IPv4 address of `web` and the two other nodes (nftables in its
/// namespace; the client still reaches all three). Both sides elect: the
/// isolated node keeps answering, the other side elects its own owner, so
/// the client sees two MACs answer. Once healed, the client asks (ARP and
/// NDP, every ~60 ms) until one MAC answers for each IP, that of the
/// owner the speakers' status names; the times are printed.
#[test]
fn one_owner_after_a_partition_heals() {
    let extra = [GOBGP_TOOLS, &[("nft", "nftables")]].concat();
    let Some(net) = speaker_lab::network(&extra) else {
        return;
    };
    let lab = lab(&net);
    let web = assigned(lab.dir(), "web");
    let v4 = web
        .iter()
        .find(|ip| !ip.contains(':'))
        .expect("IPv4")
        .clone();
    for ip in &web {
        settled_owner(&lab, ip)
            .unwrap_or_else(|| panic!("no single owner answering for {ip}:\n{}", lab.logs()));
        let macs = answerers(&lab, ip);
        assert_eq!(macs.len(), 1, "{ip} before the partition: {macs:?}");
    }
    let isolated = lab.l2_owners(&v4)[0];
    let others: Vec<&str> = NODES
        .iter()
        .map(|n| n.name)
        .filter(|n| *n != isolated)
        .collect();

    let cut = Instant::now();
    net.partition(isolated, &others);
    // Both sides elect: two MACs answer for each IP (the isolated node
    // owns every IP in its own view; the others elect one among them).
    for ip in &web {
        let both = wait_until(SETTLE, || {
            let macs = answerers(&lab, ip);
            (macs.len() == 2).then_some(macs)
        });
        let both = both.unwrap_or_else(|| {
            panic!(
                "{ip}: not two answers during the partition of {isolated} from {others:?}: {:?}\n{}",
                answerers(&lab, ip),
                lab.logs()
            )
        });
        let both: Vec<String> = both.iter().map(ToString::to_string).collect();
        println!(
            "partition {isolated} | {others:?}: {ip} answered by {} after {} ms",
            both.join(" and "),
            cut.elapsed().as_millis()
        );
    }

    let healed = Instant::now();
    net.heal(isolated);
    // Each IP is asked about in turn; per IP, the time of the first of
    // SETTLED_ASKS single answers in a row.
    let mut runs: Vec<(usize, Option<Duration>, BTreeSet<MacAddr>)> =
        web.iter().map(|_| (0, None, BTreeSet::new())).collect();
    let settled = wait_until(SETTLE, || {
        for (ip, (single, first, last)) in web.iter().zip(runs.iter_mut()) {
            if *single >= SETTLED_ASKS {
                continue;
            }
            let at = healed.elapsed();
            *last = answerers(&lab, ip);
            if last.len() == 1 {
                first.get_or_insert(at);
                *single += 1;
            } else {
                *first = None;
                *single = 0;
            }
        }
        runs.iter()
            .all(|(single, _, _)| *single >= SETTLED_ASKS)
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "answers never settled to one MAC per IP after the heal: {runs:?}\n{}",
        lab.logs()
    );
    for (ip, (_, first, last)) in web.iter().zip(&runs) {
        let took = first.expect("a single answer");
        let answering = last.iter().next().expect("one MAC").to_string();
        let node = lab
            .node_with_mac(&answering)
            .unwrap_or_else(|| panic!("{ip}: {answering} is no node's MAC"));
        // The status files follow within their publishing interval.
        let agreed = wait_until(SETTLE, || (lab.l2_owners(ip) == [node]).then_some(()));
        assert!(
            agreed.is_some(),
            "{ip}: {node} answers, the status files name {:?}\n{}",
            lab.l2_owners(ip),
            lab.logs()
        );
        let owners = [node];
        println!(
            "healed: {ip} answered by one MAC ({}) {} ms after the heal",
            owners[0],
            took.as_millis()
        );
    }
}
