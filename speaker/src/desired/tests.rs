//! The decision function on small configurations written as YAML, without
//! sockets or a clock.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_bgp::{Community, LargeCommunity, Prefix};
use ferrolb_config::Config;
use ferrolb_config::manifest::parse_stream;

use super::*;

const BASE: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.0/24, 2001:db8:1::/120]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system, labels: {mode: bgp}}
spec: {addresses: [203.0.113.0/24]}
"#;

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {zone: a}}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {zone: b}}
---
apiVersion: v1
kind: Node
metadata: {name: node3, labels: {zone: b}}
"#;

fn config(extra: &str) -> Config {
    config_with_nodes(NODES, extra)
}

fn config_with_nodes(nodes: &str, extra: &str) -> Config {
    let text = format!("{BASE}\n---\n{nodes}\n---\n{extra}");
    let parsed = parse_stream(&text, "test.yaml");
    let mut problems = parsed.problems;
    let mut cfg = Config::default();
    cfg.add_objects(parsed.objects, &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    // Services go to the decision as the separate list.
    cfg
}

fn service(name: &str, ips: &[&str], extra_spec: &str) -> LbService {
    let ingress: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}\nspec: {{type: LoadBalancer{extra_spec}}}\nstatus: {{loadBalancer: {{ingress: [{}]}}}}\n",
        ingress.join(", ")
    );
    let svc: Service = serde_saphyr::from_str(&text).unwrap();
    LbService::from_service(&svc).unwrap()
}

fn decide_on(
    cfg: &Config,
    services: &[LbService],
    node: &str,
    members: Option<&BTreeSet<String>>,
) -> Desired {
    decide(Inputs {
        config: cfg,
        services,
        members,
        node,
        lb_class: None,
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const L2_ALL: &str = "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all, namespace: ferrolb-system}\nspec: {}\n";

/// The node every speaker elects for `addr`.
fn owners(cfg: &Config, services: &[LbService], addr: &str) -> Vec<String> {
    ["node1", "node2", "node3"]
        .iter()
        .filter(|n| decide_on(cfg, services, n, None).l2.contains_key(&ip(addr)))
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn exactly_one_node_answers_each_layer2_ip_and_all_agree_who() {
    let cfg = config(L2_ALL);
    let svcs = [service("web", &["198.51.100.10", "2001:db8:1::10"], "")];
    for addr in ["198.51.100.10", "2001:db8:1::10"] {
        let owners = owners(&cfg, &svcs, addr);
        assert_eq!(owners.len(), 1, "{addr}: {owners:?}");
        for n in ["node1", "node2", "node3"] {
            let d = decide_on(&cfg, &svcs, n, None);
            let dec = d.services[0]
                .ips
                .iter()
                .find(|d| d.ip == Some(ip(addr)))
                .unwrap();
            assert_eq!(dec.l2_owner.as_deref(), Some(owners[0].as_str()));
            assert_eq!(dec.pool.as_deref(), Some("lan"));
            if n != owners[0] {
                assert!(
                    dec.reasons
                        .iter()
                        .any(|r| r.contains("is the elected owner")),
                    "{:?}",
                    dec.reasons
                );
            }
        }
    }
}

#[test]
fn a_dead_member_loses_its_ips_to_another_node() {
    let cfg = config(L2_ALL);
    let svcs = [service("web", &["198.51.100.10"], "")];
    let first = owners(&cfg, &svcs, "198.51.100.10")[0].clone();
    let live: BTreeSet<String> = ["node1", "node2", "node3"]
        .iter()
        .filter(|n| **n != first)
        .map(|n| n.to_string())
        .collect();
    let new_owners: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| {
            decide_on(&cfg, &svcs, n, Some(&live))
                .l2
                .contains_key(&ip("198.51.100.10"))
        })
        .collect();
    assert_eq!(new_owners.len(), 1);
    assert_ne!(new_owners[0], first);
}

#[test]
fn no_advertisement_means_nothing_is_announced_and_says_why() {
    let cfg = config("");
    let svcs = [service("web", &["198.51.100.10"], "")];
    let d = decide_on(&cfg, &svcs, "node1", None);
    assert!(d.l2.is_empty() && d.bgp.is_empty());
    assert_eq!(
        d.services[0].ips[0].reasons,
        [
            "not announcing 198.51.100.10: no L2Advertisement or BGPAdvertisement selects pool lan and Service default/web"
        ]
    );
    // An IP outside every pool.
    let svcs = [service("x", &["198.18.0.1"], "")];
    let d = decide_on(&cfg, &svcs, "node1", None);
    assert_eq!(
        d.services[0].ips[0].reasons,
        ["not announcing 198.18.0.1: no IPAddressPool holds it"]
    );
}

#[test]
fn advertisements_select_pools_services_and_nodes() {
    let cfg = config(
        "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: only-b, namespace: ferrolb-system}\nspec:\n  ipAddressPools: [lan]\n  serviceSelectors: [{matchLabels: {app: web}}]\n  nodeSelectors: [{matchLabels: {zone: b}}]\n  interfaces: [eth1]\n",
    );
    let svcs = [
        service("web", &["198.51.100.10"], ""),
        service("db", &["198.51.100.11"], ""),
        service("routed", &["203.0.113.5"], ""),
    ];
    let owners_web = owners(&cfg, &svcs, "198.51.100.10");
    assert_eq!(owners_web.len(), 1);
    assert!(owners_web[0] == "node2" || owners_web[0] == "node3");
    let d = decide_on(&cfg, &svcs, &owners_web[0], None);
    assert_eq!(d.l2[&ip("198.51.100.10")].interfaces, ["eth1"]);
    assert!(!d.l2.contains_key(&ip("198.51.100.11")), "service selector");
    assert!(!d.l2.contains_key(&ip("203.0.113.5")), "pool selection");
    let db = d.services.iter().find(|s| s.key.name == "db").unwrap();
    assert!(db.ips[0].reasons[0].contains(
        "no L2Advertisement or BGPAdvertisement selects pool lan and Service default/db"
    ));
}

#[test]
fn excluded_and_not_ready_nodes_are_not_eligible() {
    let extra = format!(
        "{L2_ALL}---\napiVersion: v1\nkind: Node\nmetadata: {{name: node1, labels: {{node.kubernetes.io/exclude-from-external-load-balancers: \"\"}}}}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: node2}}\nstatus: {{conditions: [{{type: Ready, status: \"False\"}}]}}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: node3}}\nstatus: {{conditions: [{{type: Ready, status: \"True\"}}]}}\n"
    );
    let cfg = config_with_nodes(&extra, "");
    let svcs: Vec<LbService> = (1..=20)
        .map(|i| service(&format!("s{i}"), &[&format!("198.51.100.{i}")], ""))
        .collect();
    let d1 = decide_on(&cfg, &svcs, "node1", None);
    assert!(d1.l2.is_empty());
    assert!(
        d1.node_excluded
            .as_deref()
            .unwrap()
            .contains("exclude-from-external-load-balancers")
    );
    let d2 = decide_on(&cfg, &svcs, "node2", None);
    assert!(d2.l2.is_empty());
    assert!(d2.node_excluded.as_deref().unwrap().contains("not Ready"));
    // node3 owns them all.
    let d3 = decide_on(&cfg, &svcs, "node3", None);
    assert_eq!(d3.l2.len(), 20);
    // No eligible node at all: the reason lists each node's.
    let d = decide_on(&cfg, &svcs, "node1", Some(&BTreeSet::new()));
    let r = &d.services[0].ips[0].reasons[0];
    assert!(
        r.starts_with("not announcing 198.51.100.1 on layer 2: no node is eligible"),
        "{r}"
    );
    assert!(r.contains("node node3 is not a live member"), "{r}");
}

/// An endpoint: node, and its `ready`, `serving`, `terminating` conditions.
type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>);

fn slice(svc: &str, endpoints: &[Ep<'_>]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (node, ready, serving, terminating))| {
            let mut cond = Vec::new();
            if let Some(r) = ready {
                cond.push(format!("ready: {r}"));
            }
            if let Some(s) = serving {
                cond.push(format!("serving: {s}"));
            }
            if let Some(t) = terminating {
                cond.push(format!("terminating: {t}"));
            }
            format!(
                "  - addresses: [\"10.0.0.{i}\"]\n    nodeName: {node}\n    conditions: {{{}}}\n",
                cond.join(", ")
            )
        })
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {svc}-x, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}\naddressType: IPv4\nendpoints:\n{}",
        eps.concat()
    )
}

#[test]
fn local_traffic_policy_follows_ready_endpoints() {
    let svcs = [service(
        "web",
        &["198.51.100.10"],
        ", externalTrafficPolicy: Local",
    )];
    let cfg = config(&format!(
        "{L2_ALL}---\n{}",
        slice("web", &[("node2", Some(true), None, None)])
    ));
    assert_eq!(owners(&cfg, &svcs, "198.51.100.10"), ["node2"]);
    // A node without the endpoint says so, not only who owns the IP.
    let d = decide_on(&cfg, &svcs, "node1", None);
    assert_eq!(
        d.services[0].ips[0].reasons,
        [
            "not answering for 198.51.100.10 on layer 2: externalTrafficPolicy is Local and node node1 has no ready endpoint; node node2 is the elected owner"
        ]
    );
    let cfg = config(&format!(
        "{L2_ALL}---\n{}",
        slice(
            "web",
            &[
                ("node3", Some(true), None, None),
                ("node2", Some(false), None, None)
            ]
        )
    ));
    assert_eq!(owners(&cfg, &svcs, "198.51.100.10"), ["node3"]);
    // Serving-but-terminating counts only when nothing is ready.
    let cfg = config(&format!(
        "{L2_ALL}---\n{}",
        slice("web", &[("node1", Some(false), Some(true), Some(true))])
    ));
    assert_eq!(owners(&cfg, &svcs, "198.51.100.10"), ["node1"]);
    let cfg = config(&format!(
        "{L2_ALL}---\n{}",
        slice(
            "web",
            &[
                ("node1", Some(false), Some(true), Some(true)),
                ("node3", Some(true), None, None)
            ]
        )
    ));
    assert_eq!(owners(&cfg, &svcs, "198.51.100.10"), ["node3"]);
    // No endpoint at all: nobody, with the reason.
    let cfg = config(L2_ALL);
    assert!(owners(&cfg, &svcs, "198.51.100.10").is_empty());
    let d = decide_on(&cfg, &svcs, "node1", None);
    assert!(
        d.services[0].ips[0].reasons[0]
            .contains("externalTrafficPolicy is Local and node node1 has no ready endpoint")
    );
    // Another Service's endpoints do not count.
    let cfg = config(&format!(
        "{L2_ALL}---\n{}",
        slice("other", &[("node2", Some(true), None, None)])
    ));
    assert!(owners(&cfg, &svcs, "198.51.100.10").is_empty());
}

#[test]
fn preferred_node_selectors_steer_the_owner() {
    let cfg = config(
        "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: pref, namespace: ferrolb-system}\nspec:\n  preferredNodeSelectors:\n  - {weight: 50, preference: {matchLabels: {zone: a}}}\n",
    );
    let svcs: Vec<LbService> = (1..=10)
        .map(|i| service(&format!("s{i}"), &[&format!("198.51.100.{i}")], ""))
        .collect();
    for i in 1..=10 {
        assert_eq!(owners(&cfg, &svcs, &format!("198.51.100.{i}")), ["node1"]);
    }
    // When node1 is not live, the others share them.
    let live: BTreeSet<String> = ["node2", "node3"].iter().map(|s| s.to_string()).collect();
    let d1 = decide_on(&cfg, &svcs, "node1", Some(&live));
    assert!(d1.l2.is_empty());
}

const PEERS: &str = r#"
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: ext, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: int, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.51.100.2, nodeSelectors: [{matchLabels: {zone: b}}]}
---
apiVersion: ferrolb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: ferrolb-system}
spec:
  communities: [{name: edge, value: "64512:300"}]
"#;

#[test]
fn bgp_announces_from_every_eligible_node_with_the_attributes() {
    let cfg = config(&format!(
        "{PEERS}---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: adv, namespace: ferrolb-system}}\nspec:\n  ipAddressPoolSelectors: [{{matchLabels: {{mode: bgp}}}}]\n  aggregationLength: 30\n  localPref: 200\n  communities: [\"64512:100\", edge, no-export, \"large:64512:1:2\"]\n"
    ));
    let svcs = [service("web", &["203.0.113.5"], "")];
    let prefix: Prefix = Prefix::new(ip("203.0.113.4"), 30).unwrap();
    for node in ["node1", "node2", "node3"] {
        let d = decide_on(&cfg, &svcs, node, None);
        assert!(d.l2.is_empty());
        let ext = &d.bgp["ext"][&prefix];
        assert_eq!(
            ext.communities,
            [
                Community(64512 << 16 | 100),
                Community(64512 << 16 | 300),
                Community(0xFFFF_FF01)
            ]
        );
        assert_eq!(
            ext.large_communities,
            [LargeCommunity {
                global_admin: 64512,
                local_data1: 1,
                local_data2: 2
            }]
        );
        assert_eq!(ext.local_pref, None, "localPref goes to iBGP peers only");
        if node == "node1" {
            assert!(
                !d.bgp.contains_key("int"),
                "the int peer selects zone b only"
            );
            assert_eq!(d.peers, ["ext"]);
        } else {
            assert_eq!(d.bgp["int"][&prefix].local_pref, Some(200));
        }
    }
}

#[test]
fn bgp_local_policy_and_adv_peer_list() {
    let cfg = config(&format!(
        "{PEERS}---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: adv, namespace: ferrolb-system}}\nspec: {{ipAddressPools: [routed], peers: [ext]}}\n---\n{}",
        slice("web", &[("node2", Some(true), None, None)])
    ));
    let svcs = [
        service("web", &["203.0.113.5"], ", externalTrafficPolicy: Local"),
        service("any", &["203.0.113.6"], ""),
    ];
    let host = |s: &str| Prefix::new(ip(s), 32).unwrap();
    let d2 = decide_on(&cfg, &svcs, "node2", None);
    assert!(d2.bgp["ext"].contains_key(&host("203.0.113.5")));
    assert!(d2.bgp["ext"].contains_key(&host("203.0.113.6")));
    assert!(
        !d2.bgp.contains_key("int"),
        "the advertisement names ext only"
    );
    let d1 = decide_on(&cfg, &svcs, "node1", None);
    assert!(!d1.bgp["ext"].contains_key(&host("203.0.113.5")));
    assert!(d1.bgp["ext"].contains_key(&host("203.0.113.6")));
    let web = d1.services.iter().find(|s| s.key.name == "web").unwrap();
    assert!(
        web.ips[0].reasons[0].contains(
            "over BGP: externalTrafficPolicy is Local and node node1 has no ready endpoint"
        )
    );
}

#[test]
fn other_classes_and_non_load_balancers_are_ignored() {
    let cfg = config(L2_ALL);
    let svcs = [
        service(
            "classed",
            &["198.51.100.10"],
            ", loadBalancerClass: example.com/other",
        ),
        service("plain", &["198.51.100.11"], ""),
    ];
    let all: Vec<Desired> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| decide_on(&cfg, &svcs, n, None))
        .collect();
    assert!(all.iter().all(|d| !d.l2.contains_key(&ip("198.51.100.10"))));
    assert_eq!(
        all.iter()
            .filter(|d| d.l2.contains_key(&ip("198.51.100.11")))
            .count(),
        1
    );
    let classed = decide(Inputs {
        config: &cfg,
        services: &svcs,
        members: None,
        node: "node1",
        lb_class: Some("example.com/other"),
    });
    assert_eq!(classed.services.len(), 1);
    assert_eq!(classed.services[0].key.name, "classed");
}

#[test]
fn garbage_in_the_ingress_is_reported_not_fatal() {
    let cfg = config(L2_ALL);
    let svcs = [service("web", &["not-an-ip", "198.51.100.10"], "")];
    let d = decide_on(&cfg, &svcs, "node1", None);
    assert_eq!(d.services[0].ips.len(), 2);
    assert!(d.services[0].ips[0].reasons[0].contains("\"not-an-ip\", which is not an IP address"));
    assert_eq!(owners(&cfg, &svcs, "198.51.100.10").len(), 1);
}

#[test]
fn a_node_without_its_node_object_announces_nothing() {
    let cfg = config(L2_ALL);
    let svcs = [service("web", &["198.51.100.10"], "")];
    let d = decide_on(&cfg, &svcs, "ghost", None);
    assert!(d.l2.is_empty());
    assert!(
        d.node_excluded
            .as_deref()
            .unwrap()
            .contains("no Node object named ghost")
    );
}

#[test]
fn references_to_objects_that_do_not_exist_select_nothing() {
    let adv = |spec: &str| {
        format!(
            "{PEERS}---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: adv, namespace: ferrolb-system}}\nspec: {spec}\n"
        )
    };
    let svcs = [service("web", &["203.0.113.5"], "")];
    let host = Prefix::new(ip("203.0.113.5"), 32).unwrap();
    let reasons = |d: &Desired| d.services[0].ips[0].reasons.clone();

    // A pool that does not exist: the advertisement selects nothing.
    let cfg = config(&adv("{ipAddressPools: [later]}"));
    let d = decide_on(&cfg, &svcs, "node2", None);
    assert!(d.bgp.values().all(|r| r.is_empty()), "{d:#?}");
    assert!(
        reasons(&d)[0].contains("no L2Advertisement or BGPAdvertisement selects pool routed"),
        "{:?}",
        reasons(&d)
    );
    // A peer that does not exist: named, so not "all peers"; nothing sent.
    let cfg = config(&adv("{ipAddressPools: [routed], peers: [later]}"));
    let d = decide_on(&cfg, &svcs, "node2", None);
    assert!(d.bgp.values().all(|r| r.is_empty()), "{d:#?}");
    assert!(
        reasons(&d)[0]
            .contains("no BGPPeer it names selects node node2 (not defined yet: BGPPeer later)"),
        "{:?}",
        reasons(&d)
    );
    // An alias no Community defines: nothing is announced (never the route
    // without the community), until the alias is defined.
    let cfg = config(&adv(
        "{ipAddressPools: [routed], communities: [\"64512:1\", later]}",
    ));
    let d = decide_on(&cfg, &svcs, "node2", None);
    assert!(d.bgp.values().all(|r| r.is_empty()), "{d:#?}");
    assert!(
        reasons(&d)[0].contains(
            "for BGPAdvertisement adv: community alias \"later\" is not defined by any Community in namespace ferrolb-system"
        ),
        "{:?}",
        reasons(&d)
    );
    let cfg = config(&format!(
        "{}---\napiVersion: ferrolb.io/v1beta1\nkind: Community\nmetadata: {{name: more, namespace: ferrolb-system}}\nspec: {{communities: [{{name: later, value: \"64512:2\"}}]}}\n",
        adv("{ipAddressPools: [routed], communities: [\"64512:1\", later]}")
    ));
    let d = decide_on(&cfg, &svcs, "node2", None);
    assert_eq!(
        d.bgp["ext"][&host].communities,
        [Community(64512 << 16 | 1), Community(64512 << 16 | 2)]
    );
    assert_eq!(d.bgp["int"][&host].communities.len(), 2);
}

#[test]
fn a_draining_node_hands_its_layer2_ips_over_and_keeps_its_bgp_routes_marked() {
    let nodes = NODES.replace(
        "metadata: {name: node1, labels: {zone: a}}",
        "metadata: {name: node1, labels: {zone: a, ferrolb.io/drain: \"true\"}}",
    );
    let bgp = "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: ext, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 203.0.113.254}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: routed, namespace: ferrolb-system}\nspec: {ipAddressPools: [routed]}\n";
    let cfg = config_with_nodes(&nodes, &format!("{L2_ALL}---\n{bgp}"));
    let svcs: Vec<LbService> = (1..=20)
        .map(|i| service(&format!("s{i}"), &[&format!("198.51.100.{i}")], ""))
        .chain([service("routed", &["203.0.113.5"], "")])
        .collect();
    let d1 = decide_on(&cfg, &svcs, "node1", None);
    assert!(d1.l2.is_empty(), "a draining node answers for nothing");
    assert_eq!(
        d1.draining.as_deref(),
        Some("node node1 is draining (label ferrolb.io/drain=true)")
    );
    assert!(d1.node_excluded.is_none());
    // Its BGP routes stay (the adapter marks, then withdraws them).
    assert!(d1.bgp["ext"].contains_key(&"203.0.113.5/32".parse().unwrap()));
    let r = &d1.services[0].ips[0].reasons[0];
    assert!(r.contains("node node1 is draining"), "{r}");
    // The other nodes share the 21 IPs (L2_ALL selects the routed pool
    // too) and agree.
    let (d2, d3) = (
        decide_on(&cfg, &svcs, "node2", None),
        decide_on(&cfg, &svcs, "node3", None),
    );
    assert_eq!(d2.l2.len() + d3.l2.len(), 21);
    assert!(d2.draining.is_none() && d3.draining.is_none());
    // A label with another value drains nothing.
    let cfg = config_with_nodes(
        &nodes.replace("drain: \"true\"", "drain: \"false\""),
        L2_ALL,
    );
    assert!(decide_on(&cfg, &svcs, "node1", None).draining.is_none());
}
