//! End-to-end test of the speaker in cluster mode: a real Kubernetes API
//! server (v1.20, tests/apiserver/) runs inside a lab namespace on the
//! bridge, the controller and three speakers watch it (no kubelet: the
//! lab writes the Node objects, the test the EndpointSlices), and a
//! client and a GoBGP router check what the speakers announce (the lab:
//! [`ferrolb_e2e::cluster_lab`]).
//!
//! ```text
//!   [router] 198.51.100.1  gobgpd AS 64513     [client] 198.51.100.2
//!   [api]    198.51.100.3  etcd, kube-apiserver, kube-controller-manager, ferrolb-controller
//!   [node1..3] 198.51.100.11-13  ferrolb-speaker --kubeconfig K --node nodeN
//! ```
//!
//! The controller and the speakers authenticate as their service accounts
//! with exactly the RBAC of deploy/rbac/.
//!
//! Needs root and `ip`, `ping`, `gobgpd`, `etcd`, `curl`; the API server
//! binaries are built once by tests/apiserver/build-binaries.sh
//! (tests/run-all.sh does it). Without them the test prints `SKIPPED: …`
//! (fails when `CI` is set). The FRR, BFD, link-cut, conflict and
//! moving-endpoint scenarios in cluster mode are in speaker_cluster_frr.rs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::cluster_lab::{self, Cluster, SETTLE, mac_of, node_with_mac};
use ferrolb_e2e::netns::tcp_fetch;
use ferrolb_e2e::speaker_lab::{GOBGP_TOOLS, NODES, Router, TCP_PORT};

/// The routed Service's address (the `routed` pool's only one).
const BGP_IP: &str = "203.0.113.200";

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.100-198.51.100.101]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.200/32], autoAssign: false}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1, holdTime: 9s}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: nowhere, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64514, peerAddress: 198.51.100.250, connectTime: 5s}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed], communities: ["64512:7"]}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "cluster-e2e-key-0123456789"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 8080}]}
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: local-1
  namespace: default
  labels: {kubernetes.io/service-name: local}
addressType: IPv4
endpoints:
- addresses: ["10.1.0.1"]
  conditions: {ready: true}
  topology: {kubernetes.io/hostname: node3}
---
apiVersion: v1
kind: Service
metadata:
  name: routed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

#[test]
fn speakers_in_cluster_mode_announce_and_fail_over() {
    let Some(net) = cluster_lab::network(GOBGP_TOOLS) else {
        return;
    };
    let mut lab = Cluster::start(&net, CONFIG, Router::GoBgp);
    let cns = lab.client();

    // The controller assigned the IPs; one speaker owns web's: one
    // ServiceL2Status names the owner, and the client reaches that node.
    let web_ip = lab.single_v4("web");
    let owner = lab
        .settled_owner("web", &web_ip)
        .unwrap_or_else(|| panic!("no single owner of {web_ip} answering:\n{}", lab.logs()));
    let owner_mac = mac_of(owner);
    let addr = SocketAddr::new(web_ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
    assert_eq!(
        tcp_fetch(cns, addr, Duration::from_secs(3)).as_deref(),
        Ok(owner)
    );

    // externalTrafficPolicy: Local follows the v1beta1 EndpointSlice (node3).
    let local = wait_until(SETTLE, || {
        let n = lab.l2_status_nodes("local");
        (n.len() == 1).then(|| n[0].clone())
    })
    .unwrap_or_else(|| panic!("no ServiceL2Status for local:\n{}", lab.logs()));
    assert_eq!(local, "node3");

    // BGP: the routed Service's route from every node, with the community.
    assert_eq!(lab.single_v4("routed"), BGP_IP);
    let prefix = format!("{BGP_IP}/32");
    let all: Vec<String> = NODES.iter().map(|n| n.v4.to_owned()).collect();
    let from_all = wait_until(SETTLE, || {
        (lab.router().gobgp_paths(&prefix).0 == all).then_some(())
    });
    assert!(
        from_all.is_some(),
        "{prefix} not from 3 nodes: {:?}\n{}",
        lab.router().gobgp_paths(&prefix),
        lab.logs()
    );
    // COMMUNITIES (type 8): 64512:7 = 4227858439.
    let attrs = lab.router().gobgp_paths(&prefix).1.to_string();
    assert!(attrs.contains("4227858439"), "communities: {attrs}");
    // Each speaker reports its session in the BGPPeer's status.
    let sessions = wait_until(SETTLE, || {
        let s = lab.peer_sessions("router");
        (s.len() == 3 && s.iter().all(|x| x["state"] == "Established")).then_some(s)
    });
    assert!(
        sessions.is_some(),
        "BGPPeer status sessions:\n{}",
        lab.logs()
    );
    // And its ConfigurationState.
    lab.cp().ok(&[
        "-n",
        "ferrolb-system",
        "get",
        "configurationstate",
        "speaker-node1",
    ]);

    // The owner records an Event on the Service.
    let announcing = lab.wait_event(
        "default",
        "web",
        "Announcing",
        &format!("announcing from {owner}"),
    );
    assert!(
        announcing.is_some(),
        "no Announcing Event on web:\n{}",
        lab.logs()
    );

    // A peer nobody answers for: a Warning Event on the BGPPeer per node.
    let problem = lab.wait_event("ferrolb-system", "nowhere", "BGPSessionProblem", "");
    assert!(
        problem.is_some(),
        "no BGPSessionProblem Event on BGPPeer nowhere:\n{}",
        lab.logs()
    );

    // Metrics and health on every speaker.
    let metrics = wait_until(SETTLE, || {
        let out = cns.exec(
            "curl",
            &["-fsS", "http://198.51.100.12:7472/metrics"],
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains("ferrolb_speaker_bgp_session_up{peer=\"router\"} 1")
            && text.contains("ferrolb_speaker_membership_members 3"))
        .then_some(text)
    });
    assert!(metrics.is_some(), "metrics of node2:\n{}", lab.logs());
    let ready = cns.exec(
        "curl",
        &["-fsS", "http://198.51.100.11:7472/readyz"],
        Duration::from_secs(5),
    );
    assert!(ready.status.success(), "readyz");

    // kill -9 the owner of web's IP: another node takes over.
    lab.speaker(owner).kill();
    let moved = wait_until(SETTLE, || {
        cns.neighbour(&web_ip, "eth0").filter(|m| m != owner_mac)
    })
    .unwrap_or_else(|| panic!("{web_ip} did not move off {owner}:\n{}", lab.logs()));
    let new_owner = node_with_mac(&moved).expect("a node's MAC");
    assert_eq!(
        tcp_fetch(cns, addr, Duration::from_secs(3)).as_deref(),
        Ok(new_owner)
    );
    // The new owner's ServiceL2Status replaces the dead speaker's.
    assert!(
        wait_until(SETTLE, || (lab.l2_status_nodes("web") == [new_owner])
            .then_some(()))
        .is_some(),
        "ServiceL2Status of web: {:?}, expected only {new_owner}:\n{}",
        lab.l2_status_nodes("web"),
        lab.logs()
    );
}
